//! Pages and fragments, rendered with minijinja from templates embedded in the binary.
//!
//! Framework-free: every method answers the HTML as a `String` (or a [`RenderError`]);
//! each app wraps it in its framework's response, with
//! [`HTML_CONTENT_TYPE`](crate::HTML_CONTENT_TYPE), or answers
//! [`RenderError::BODY`] with a `500`.

use messages_core::MessageList;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, context};

const TEMPLATES: [(&str, &str); 4] = [
    ("base.html", include_str!("../templates/base.html")),
    ("messages.html", include_str!("../templates/messages.html")),
    ("settings.html", include_str!("../templates/settings.html")),
    (
        "dashboard.html",
        include_str!("../templates/dashboard.html"),
    ),
];

/// The page stylesheet, served at `GET /static/app.css`.
pub const STYLESHEET: &str = include_str!("../static/app.css");

/// One message as templates, the JSON endpoint, the live stream's events and
/// `HX-Trigger` see it: messages-core's [`Shown`](messages_core::present::Shown), so every
/// channel has one shape. Serialized (the JSON of `GET /api/dashboard/messages`) as
/// `{"id","level","text","title","autoclose","tags","created_at"}`, in that order.
pub use messages_core::present::Shown as ShownMessage;

/// Turns a view's messages into what is shown; consumes them (they will not be shown
/// again unless the response fails).
pub fn shown(list: MessageList) -> Vec<ShownMessage> {
    list.into_iter().map(ShownMessage::from).collect()
}

/// The template environment. Make one per application (or per worker) and share it.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
}

impl Default for Templates {
    fn default() -> Templates {
        Templates::new()
    }
}

impl Templates {
    /// Compiles the embedded templates. A template that does not compile is logged, and
    /// its pages answer a `500` ([`RenderError`]): start-up does not fail.
    pub fn new() -> Templates {
        let mut env = Environment::new();
        // Escaping is on for every template, whatever its name: message text is plain
        // text, and nothing printed into a page may become markup.
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        for (name, source) in TEMPLATES {
            // A broken template fails its pages with a 500 (and this log line), not start-up.
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(template = name, error = %e, "template does not compile");
            }
        }
        Templates { env }
    }

    /// The page of `GET /settings`.
    ///
    /// # Errors
    /// A template failed (answer a `500`).
    pub fn settings(&self, messages: &[ShownMessage]) -> Result<String, RenderError> {
        self.page("settings.html", "Settings", messages)
    }

    /// The page of `GET /dashboard`.
    ///
    /// # Errors
    /// A template failed (answer a `500`).
    pub fn dashboard(&self, messages: &[ShownMessage]) -> Result<String, RenderError> {
        self.page("dashboard.html", "Dashboard", messages)
    }

    fn page(
        &self,
        template: &str,
        title: &str,
        messages: &[ShownMessage],
    ) -> Result<String, RenderError> {
        Ok(self
            .env
            .get_template(template)?
            .render(context! { title, messages, oob => false })?)
    }

    /// Only the `<ul id="messages">` list, for `hx-get` or (with `oob`) an out-of-band swap.
    ///
    /// # Errors
    /// A template failed (answer a `500`).
    pub fn fragment(&self, messages: &[ShownMessage], oob: bool) -> Result<String, RenderError> {
        Ok(self
            .env
            .get_template("messages.html")?
            .render(context! { messages, oob })?)
    }
}

/// A template failed. Answer a `500` with [`RenderError::BODY`] (`text/plain`), so the
/// messages the page read are kept for the next request; [`log`](RenderError::log) says
/// why.
#[derive(Debug, thiserror::Error)]
#[error("rendering failed: {0}")]
pub struct RenderError(#[from] minijinja::Error);

impl RenderError {
    /// The body of the `500` response.
    pub const BODY: &str = "Internal error: the page could not be rendered.";

    /// Logs the failure with minijinja's details (call it once, when answering).
    pub fn log(&self) {
        tracing::error!(error = %self.0, detail = %self.0.display_debug_info(), "page not rendered");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use messages_core::{MemoryStore, Message, MessagesConfig, ViewId};

    use super::*;

    async fn list(messages: Vec<Message>) -> MessageList {
        let config = MessagesConfig::new(MemoryStore::new());
        let request = config.begin([]);
        let ctx = request.context(ViewId::from_static("test::view"));
        for m in messages {
            ctx.add_message(m);
        }
        ctx.messages().await
    }

    #[tokio::test]
    async fn every_template_renders_and_escapes() {
        let t = Templates::new();
        let msgs = shown(
            list(vec![
                Message::info("<b>&\"x\"</b>"),
                Message::success("ok")
                    .with_title("T'<")
                    .with_autoclose(true),
            ])
            .await,
        );
        for html in [t.settings(&msgs).unwrap(), t.dashboard(&msgs).unwrap()] {
            assert!(
                html.contains("&lt;b&gt;&amp;&quot;x&quot;&lt;&#x2f;b&gt;"),
                "{html}"
            );
            assert!(!html.contains("<b>"));
            assert!(
                html.contains("data-title=\"T&#x27;&lt;\" data-autoclose>ok</li>"),
                "{html}"
            );
        }
        assert!(t.settings(&[]).unwrap().contains("<title>Settings · "));
        assert!(t.dashboard(&[]).unwrap().contains("<title>Dashboard · "));
        let empty = t.fragment(&[], false).unwrap();
        assert_eq!(empty, "<ul id=\"messages\">\n</ul>");
        let oob = t.fragment(&[], true).unwrap();
        assert!(oob.starts_with("<ul id=\"messages\" hx-swap-oob=\"true\">"));
    }

    /// The htmx answer of `POST /notes` (messages-core's fragment) and the template's
    /// fragment of `GET /dashboard/messages` are one markup.
    #[tokio::test]
    async fn the_template_fragment_is_the_core_fragment() {
        let t = Templates::new();
        let msgs = shown(
            list(vec![
                Message::info("<b>&\"x\"</b> / 'q' é"),
                Message::success("ok")
                    .with_title("T'<\"")
                    .with_autoclose(true),
                Message::error("plain").with_title(""),
            ])
            .await,
        );
        for oob in [false, true] {
            assert_eq!(
                t.fragment(&msgs, oob).unwrap(),
                messages_core::present::fragment(&msgs, oob)
            );
        }
    }
}
