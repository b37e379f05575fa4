//! The example application of `messages-core` on axum: view-bound flash messages in a
//! small site with a settings page, a dashboard, a background job and a JSON endpoint.
//!
//! Run it with `cargo run -p messages-example` (memory store, `http://127.0.0.1:3000`);
//! `MESSAGES_STORE=memory|cookie|fallback|redis`, `MESSAGES_KEY` and `PORT` change the
//! store, the cookie signing keys and the port (see [`config_from`]).
//!
//! # The HTTP contract
//!
//! | Route | What it does |
//! |---|---|
//! | `GET /settings` | a form (field `name`) and the settings view's messages |
//! | `POST /settings` | adds success "Settings saved for {name}." to the settings view, `303` to `/settings` |
//! | `GET /dashboard` | the dashboard view's messages, the notes form, the import button |
//! | `POST /notes` | adds `count` (1..=200) info messages "{text} #{i}" to the dashboard view, `303` to `/dashboard` |
//! | `POST /jobs/import` | a background task adds info "Import finished" to the dashboard view 300 ms later, `303` to `/dashboard` |
//! | `GET /api/dashboard/messages` | the dashboard view's messages as JSON (consuming, like the page) |
//! | `GET /dashboard/messages` | only the `<ul id="messages">` fragment of the dashboard (consuming) |
//! | `GET /views` | the registry of message-bearing views as JSON: `id`, `name`, `file`, `line` |
//!
//! Every page renders its view's messages as `<ul id="messages">` (present, empty or
//! not) with one `<li class="message {tag}" data-level="{tag}" data-id="{id}">{text}</li>`
//! per message, oldest first, the text HTML-escaped. A message with a title also carries
//! `data-title="{title}"` (the stylesheet shows it before the text), one that closes by
//! itself `data-autoclose` (a small inline script removes it after 3 s).
//!
//! Bad form input never fails a request: `POST /notes` with an empty text or a `count`
//! that is not a number from 1 to 200 redirects to the dashboard like a good one and
//! shows an error message there, and `POST /settings` with an empty name shows one on
//! the settings page. Only a body that is not a form at all gets axum's `4xx`.
//!
//! With cookie-only storage (`MESSAGES_STORE=cookie`) a background job has nowhere to put
//! its message, since only a response can carry the cookie: `POST /jobs/import` then
//! shows a warning instead of starting the job.
//!
//! # JSON, for scripts
//!
//! `GET /api/dashboard/messages` answers a JSON array, oldest first, and consumes the
//! messages like the page does:
//!
//! ```text
//! [{"id":"0000000000000005a3c1…","level":"success","text":"Saved.","title":null,
//!   "autoclose":false,"tags":[],"created_at":1767225600000}]
//! ```
//!
//! # HTMX
//!
//! `GET /dashboard/messages` returns only the list, so htmx can refresh it in place:
//!
//! ```html
//! <ul id="messages" hx-get="/dashboard/messages" hx-trigger="every 5s" hx-swap="outerHTML"></ul>
//! ```
//!
//! `GET /dashboard/messages?oob=true` adds `hx-swap-oob="true"` to the list, for a
//! response that updates the messages beside its main target. The page itself needs no
//! htmx: its "Check for new messages" button does the same with `fetch`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{Html, IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use messages_core::axum::MessagesLayer;
use messages_core::prelude::*;
use serde::Deserialize;

mod config;
mod render;

pub use config::{ConfigError, config_from, config_from_env};
use render::{RenderError, STYLESHEET, Templates, shown};

/// Most notes one `POST /notes` adds.
pub const MAX_NOTES: u32 = 200;

/// How long the import job runs before it reports.
pub const IMPORT_DELAY: Duration = Duration::from_millis(300);

#[derive(Debug, Clone)]
struct AppState {
    templates: Arc<Templates>,
    /// Where the background job delivers; `None` with cookie-only storage.
    jobs: Option<Arc<dyn MessageStore>>,
}

/// The application: every route of the contract, behind [`MessagesLayer`].
pub fn app(config: MessagesConfig) -> Router {
    let state = AppState {
        templates: Arc::new(Templates::new()),
        jobs: config.server_store(),
    };
    Router::new()
        .route("/", get(|| async { Redirect::to("/dashboard") }))
        .route("/settings", get(settings).post(save_settings))
        .route("/dashboard", get(dashboard))
        .route("/dashboard/messages", get(dashboard_fragment))
        .route("/notes", post(add_notes))
        .route("/jobs/import", post(start_import))
        .route("/api/dashboard/messages", get(dashboard_json))
        .route("/views", get(|| async { Json(messages_core::views()) }))
        .route("/static/app.css", get(stylesheet))
        .layer(MessagesLayer::new(config))
        .with_state(state)
}

/// The settings view (`messages_example::settings`): GET shows what POST added.
#[with_messages]
async fn settings(State(app): State<AppState>) -> Result<Html<String>, RenderError> {
    let list = self.messages().await;
    app.templates
        .page("settings.html", "Settings", &shown(list))
}

#[derive(Debug, Deserialize)]
struct SettingsForm {
    #[serde(default)]
    name: String,
}

#[with_messages(view = settings)]
async fn save_settings(Form(form): Form<SettingsForm>) -> Redirect {
    let name = form.name.trim();
    if name.is_empty() {
        self.add_message(Message::error("Please enter a name."));
    } else {
        self.add_message(
            Message::success(format!("Settings saved for {name}."))
                .title("Saved")
                .autoclose(true),
        );
    }
    Redirect::to("/settings")
}

/// The dashboard view (`messages_example::dashboard`), shared by the fragment, the JSON
/// endpoint, the notes form and the import job.
#[with_messages]
async fn dashboard(State(app): State<AppState>) -> Result<Html<String>, RenderError> {
    let list = self.messages().await;
    app.templates
        .page("dashboard.html", "Dashboard", &shown(list))
}

#[derive(Debug, Deserialize)]
struct FragmentQuery {
    #[serde(default)]
    oob: bool,
}

#[with_messages(view = dashboard)]
async fn dashboard_fragment(
    State(app): State<AppState>,
    Query(query): Query<FragmentQuery>,
) -> Result<Html<String>, RenderError> {
    let list = self.messages().await;
    app.templates.fragment(&shown(list), query.oob)
}

#[with_messages(view = dashboard)]
async fn dashboard_json() -> impl IntoResponse {
    Json(shown(self.messages().await))
}

/// The notes form: both fields as text, so a bad count is a message, not a rejection.
#[derive(Debug, Deserialize)]
struct NotesForm {
    #[serde(default)]
    text: String,
    #[serde(default)]
    count: String,
}

/// The text and count of a notes form, or what is wrong with it.
fn parse_notes(form: &NotesForm) -> Result<(&str, u32), String> {
    let text = form.text.trim();
    if text.is_empty() {
        return Err("A note needs a text.".to_owned());
    }
    match form.count.trim().parse::<u32>() {
        Ok(count) if (1..=MAX_NOTES).contains(&count) => Ok((text, count)),
        _ => Err(format!("Count must be a number from 1 to {MAX_NOTES}.")),
    }
}

#[with_messages(view = dashboard)]
async fn add_notes(Form(form): Form<NotesForm>) -> Redirect {
    match parse_notes(&form) {
        Ok((text, count)) => {
            for i in 1..=count {
                self.add_message(Message::info(format!("{text} #{i}")));
            }
        }
        Err(problem) => self.add_message(Message::error(problem)),
    }
    Redirect::to("/dashboard")
}

#[with_messages(view = dashboard)]
async fn start_import(State(app): State<AppState>) -> Redirect {
    let Some(store) = app.jobs else {
        self.add_message(Message::warning(
            "Background jobs need a server store: with MESSAGES_STORE=cookie only a response can carry a message.",
        ));
        return Redirect::to("/dashboard");
    };
    // The job needs the session key, so this response sets the session cookie; with
    // fallback storage the cookie also tells the dashboard to look in the server store.
    match self.expect_later() {
        Ok(session) => {
            tokio::spawn(async move {
                tokio::time::sleep(IMPORT_DELAY).await;
                let done = Message::info("Import finished");
                // Out of band: no request in hand, the view named by the compiler.
                if let Err(e) = store.add(&session, view_of!(dashboard).id(), done).await {
                    tracing::error!(error = %e, "import job could not deliver its message");
                }
            });
        }
        Err(e) => {
            tracing::error!(error = %e, "no session for the import job");
            self.add_message(Message::error("The import could not be started."));
        }
    }
    Redirect::to("/dashboard")
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
}

#[cfg(test)]
mod tests {
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
}
