//! The forms and the query string of the contract, and the messages each form adds.

use messages_core::{Message, ViewMessages};
use serde::Deserialize;

use crate::MAX_NOTES;

/// The body of `POST /settings`. A missing field is an empty name (a message, not a
/// rejection).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct SettingsForm {
    /// The name to save.
    #[serde(default)]
    pub name: String,
}

impl SettingsForm {
    /// What saving this form adds to the settings view: success "Settings saved for
    /// {name}." (titled "Saved", closing by itself), or error [`NAME_MISSING`] for a blank
    /// name.
    pub fn message(&self) -> Message {
        let name = self.name.trim();
        if name.is_empty() {
            Message::error(NAME_MISSING)
        } else {
            Message::success(format!("Settings saved for {name}."))
                .with_title("Saved")
                .with_autoclose(true)
        }
    }
}

/// The body of `POST /login`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct LoginForm {
    /// Who logs in.
    #[serde(default)]
    pub name: String,
}

impl LoginForm {
    /// The name, trimmed; `None` for a blank one (then the app adds error
    /// [`NAME_MISSING`] to the dashboard and rotates nothing).
    pub fn name(&self) -> Option<&str> {
        Some(self.name.trim()).filter(|n| !n.is_empty())
    }

    /// What logging in as `name` adds to the dashboard view: success "Welcome, {name}.".
    pub fn welcome(name: &str) -> Message {
        Message::success(format!("Welcome, {name}."))
    }

    /// `POST /login` on the dashboard's messages: for a name, a new session key (against
    /// session fixation; pending messages are carried over) and the welcome; for a blank
    /// name, error [`NAME_MISSING`] and no rotation.
    pub fn log_in(&self, dashboard: &ViewMessages) {
        let Some(name) = self.name() else {
            dashboard.add_message(Message::error(NAME_MISSING));
            return;
        };
        match dashboard.request().rotate_session() {
            Ok(_) => dashboard.add_message(LoginForm::welcome(name)),
            Err(e) => {
                tracing::error!(error = %e, "no new session key at login");
                dashboard.add_message(Message::error(crate::LOGIN_FAILED));
            }
        }
    }
}

/// The error shown for a blank name (settings page, or the dashboard for a login).
pub const NAME_MISSING: &str = "Please enter a name.";

/// The body of `POST /notes`: both fields as text, so a bad count is a message, not a
/// rejection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct NotesForm {
    /// The text of each note.
    #[serde(default)]
    pub text: String,
    /// How many notes, `1..=`[`MAX_NOTES`], as typed.
    #[serde(default)]
    pub count: String,
}

impl NotesForm {
    /// What posting this form adds to the dashboard view: `count` info messages
    /// "{text} #{i}", or one error saying what is wrong with the form.
    pub fn messages(&self) -> Vec<Message> {
        match parse_notes(self) {
            Ok((text, count)) => (1..=count)
                .map(|i| Message::info(format!("{text} #{i}")))
                .collect(),
            Err(problem) => vec![Message::error(problem)],
        }
    }
}

/// The text and count of a notes form, or what is wrong with it.
///
/// # Errors
/// The text shown as an error message: an empty text, or a count that is not a number
/// from 1 to [`MAX_NOTES`].
pub fn parse_notes(form: &NotesForm) -> Result<(&str, u32), String> {
    let text = form.text.trim();
    if text.is_empty() {
        return Err("A note needs a text.".to_owned());
    }
    match form.count.trim().parse::<u32>() {
        Ok(count) if (1..=MAX_NOTES).contains(&count) => Ok((text, count)),
        _ => Err(format!("Count must be a number from 1 to {MAX_NOTES}.")),
    }
}

/// The query string of `GET /dashboard/messages`: `?oob=true` adds `hx-swap-oob="true"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct FragmentQuery {
    /// An out-of-band swap.
    #[serde(default)]
    pub oob: bool,
}

#[cfg(test)]
mod tests {
    use messages_core::Level;

    use super::*;

    fn form(text: &str, count: &str) -> NotesForm {
        NotesForm {
            text: text.to_owned(),
            count: count.to_owned(),
        }
    }

    #[test]
    fn notes_form_is_checked() {
        assert_eq!(parse_notes(&form(" hi ", "3")), Ok(("hi", 3)));
        assert_eq!(parse_notes(&form("hi", "200")), Ok(("hi", 200)));
        for bad in ["0", "201", "-1", "", "abc", "1.5", "99999999999999999999"] {
            assert!(parse_notes(&form("hi", bad)).is_err(), "{bad}");
        }
        assert!(parse_notes(&form("  ", "1")).is_err());
    }

    #[test]
    fn forms_say_what_they_add() {
        let notes = form(" hi ", "2").messages();
        let texts: Vec<&str> = notes.iter().map(Message::text).collect();
        assert_eq!(texts, ["hi #1", "hi #2"]);
        assert!(notes.iter().all(|m| m.level() == Level::INFO));
        let bad = form("hi", "0").messages();
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].level(), Level::ERROR);

        let saved = SettingsForm {
            name: " Ada ".to_owned(),
        }
        .message();
        assert_eq!(saved.text(), "Settings saved for Ada.");
        assert_eq!(saved.title(), Some("Saved"));
        assert!(saved.is_autoclose());
        let blank = SettingsForm::default().message();
        assert_eq!((blank.level(), blank.text()), (Level::ERROR, NAME_MISSING));
    }
}
