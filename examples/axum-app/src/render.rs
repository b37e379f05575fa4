//! Pages and fragments, rendered with minijinja from templates embedded in the binary.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use messages_core::MessageList;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, context};
use serde::Serialize;

const TEMPLATES: [(&str, &str); 4] = [
    ("base.html", include_str!("../templates/base.html")),
    ("messages.html", include_str!("../templates/messages.html")),
    ("settings.html", include_str!("../templates/settings.html")),
    (
        "dashboard.html",
        include_str!("../templates/dashboard.html"),
    ),
];

/// The page stylesheet.
pub(crate) const STYLESHEET: &str = include_str!("../static/app.css");

/// One message as templates and the JSON endpoint see it: the level as its tag string.
#[derive(Debug, Serialize)]
pub(crate) struct ShownMessage {
    id: String,
    level: &'static str,
    text: String,
    title: Option<String>,
    autoclose: bool,
    tags: Vec<String>,
    created_at: u64,
}

/// Turns a view's messages into what is shown; consumes them (they will not be shown
/// again unless the response fails).
pub(crate) fn shown(list: MessageList) -> Vec<ShownMessage> {
    list.into_iter()
        .map(|m| ShownMessage {
            id: m.id().to_string(),
            level: m.level_tag(),
            text: m.text().to_owned(),
            title: m.title_text().map(str::to_owned),
            autoclose: m.is_autoclose(),
            tags: m.tags().to_vec(),
            created_at: m.created_at(),
        })
        .collect()
}

/// The template environment.
#[derive(Debug)]
pub(crate) struct Templates {
    env: Environment<'static>,
}

impl Templates {
    pub(crate) fn new() -> Templates {
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

    /// A full page.
    pub(crate) fn page(
        &self,
        template: &str,
        title: &str,
        messages: &[ShownMessage],
    ) -> Result<Html<String>, RenderError> {
        let html = self
            .env
            .get_template(template)?
            .render(context! { title, messages, oob => false })?;
        Ok(Html(html))
    }

    /// Only the `<ul id="messages">` list, for `hx-get` or (with `oob`) an out-of-band swap.
    pub(crate) fn fragment(
        &self,
        messages: &[ShownMessage],
        oob: bool,
    ) -> Result<Html<String>, RenderError> {
        let html = self
            .env
            .get_template("messages.html")?
            .render(context! { messages, oob })?;
        Ok(Html(html))
    }
}

/// A template failed; the response is a 500, so the messages it read are kept.
#[derive(Debug, thiserror::Error)]
#[error("rendering failed: {0}")]
pub(crate) struct RenderError(#[from] minijinja::Error);

impl IntoResponse for RenderError {
    fn into_response(self) -> Response {
        tracing::error!(error = %self.0, detail = %self.0.display_debug_info(), "page not rendered");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal error: the page could not be rendered.",
        )
            .into_response()
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
                Message::success("ok").title("T'<").autoclose(true),
            ])
            .await,
        );
        for page in ["settings.html", "dashboard.html"] {
            let html = t.page(page, "Title", &msgs).unwrap().0;
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
        let empty = t.fragment(&[], false).unwrap().0;
        assert_eq!(empty, "<ul id=\"messages\">\n</ul>");
        let oob = t.fragment(&[], true).unwrap().0;
        assert!(oob.starts_with("<ul id=\"messages\" hx-swap-oob=\"true\">"));
    }
}
