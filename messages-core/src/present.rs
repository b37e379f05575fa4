//! Messages as a page, a script or htmx sees them: one JSON shape ([`Shown`]), the
//! `<ul id="messages">` fragment ([`fragment`]) and the `HX-Trigger` value
//! ([`hx_trigger`]), shared by the htmx responses and the live stream's events so that
//! every channel shows a message the same way.
//!
//! ```
//! use messages_core::Message;
//! use messages_core::present::{Shown, fragment, hx_trigger};
//!
//! let shown = vec![Shown::from(&Message::success("Saved <b>now</b>"))];
//! let html = fragment(&shown, false);
//! assert!(html.starts_with("<ul id=\"messages\">\n<li class=\"message success\" data-level=\"success\" data-id=\""));
//! assert!(html.ends_with(">Saved &lt;b&gt;now&lt;&#x2f;b&gt;</li>\n</ul>"));
//! let header = hx_trigger(&shown).unwrap();
//! assert!(header.starts_with(r#"{"messages":[{"id":""#));
//! ```

use std::fmt::Write as _;

use serde::Serialize;

use crate::{Message, Result};

/// The request header htmx sends with every request it makes (`HX-Request: true`).
pub const HX_REQUEST: &str = "hx-request";
/// The response header htmx turns into client-side events.
pub const HX_TRIGGER: &str = "hx-trigger";
/// A response header that makes htmx navigate away: the page is replaced, so a response
/// carrying it does not show messages (the adapters keep them for the next page).
pub const HX_REDIRECT: &str = "hx-redirect";
/// Like [`HX_REDIRECT`], without a full reload; the response is not shown either.
pub const HX_LOCATION: &str = "hx-location";

/// Whether a request's `HX-Request` header value says htmx made it.
///
/// ```
/// assert!(messages_core::present::is_htmx(Some("true")));
/// assert!(!messages_core::present::is_htmx(None));
/// ```
pub fn is_htmx(hx_request: Option<&str>) -> bool {
    hx_request.is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// Whether a response shows the messages it read to the person: a `2xx` (or `4xx`) page
/// does; a redirect (`3xx`), an htmx redirect ([`HX_REDIRECT`], [`HX_LOCATION`]) or a
/// server error does not, so the adapters commit it as not shown and the messages stay
/// for the next page.
///
/// ```
/// use messages_core::present::response_shows_messages;
///
/// assert!(response_shows_messages(200, false));
/// assert!(!response_shows_messages(303, false));
/// assert!(!response_shows_messages(200, true));
/// assert!(!response_shows_messages(502, false));
/// ```
pub fn response_shows_messages(status: u16, htmx_redirect: bool) -> bool {
    !(300..400).contains(&status) && status < 500 && !htmx_redirect
}

/// One message as it is shown: the level as its tag string (`"success"`, or the
/// number of a custom level as a string).
///
/// Serialized as `{"id","level","text","title","autoclose","tags","created_at"}`, in
/// that order, `title` `null` when there is none: the JSON of an API that lists
/// messages, of the live stream's `message` events and of `HX-Trigger`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shown {
    /// The message id (32 hex digits).
    pub id: String,
    /// The level's tag.
    pub level: String,
    /// The text, unescaped.
    pub text: String,
    /// The title, if any.
    pub title: Option<String>,
    /// Whether it closes by itself.
    pub autoclose: bool,
    /// Extra tags.
    pub tags: Vec<String>,
    /// Milliseconds since the Unix epoch when it was made.
    pub created_at: u64,
}

impl From<&Message> for Shown {
    fn from(m: &Message) -> Shown {
        Shown {
            id: m.id().to_string(),
            level: m.level_tag().to_owned(),
            text: m.text().to_owned(),
            title: m.title().map(str::to_owned),
            autoclose: m.is_autoclose(),
            tags: m.tags().to_vec(),
            created_at: m.created_at(),
        }
    }
}

impl From<Message> for Shown {
    fn from(m: Message) -> Shown {
        Shown::from(&m)
    }
}

/// Escapes text for HTML content and quoted attribute values (`& < > " ' /`, as
/// minijinja and Django do).
pub fn escape_html(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            '/' => out.push_str("&#x2f;"),
            c => out.push(c),
        }
    }
}

/// The messages as `<ul id="messages">` with one
/// `<li class="message {level}" data-level="{level}" data-id="{id}">{text}</li>` each
/// (plus `data-title="{title}"` and `data-autoclose` when set), text and attributes
/// escaped; with `oob`, the list carries `hx-swap-oob="true"` for an out-of-band swap.
pub fn fragment(messages: &[Shown], oob: bool) -> String {
    let mut html = String::with_capacity(32 + messages.len() * 128);
    html.push_str("<ul id=\"messages\"");
    if oob {
        html.push_str(" hx-swap-oob=\"true\"");
    }
    html.push('>');
    for m in messages {
        html.push_str("\n<li class=\"message ");
        escape_html(&m.level, &mut html);
        html.push_str("\" data-level=\"");
        escape_html(&m.level, &mut html);
        // Ids are hex digits: nothing to escape.
        let _ = write!(html, "\" data-id=\"{}\"", m.id);
        if let Some(title) = m.title.as_deref().filter(|t| !t.is_empty()) {
            html.push_str(" data-title=\"");
            escape_html(title, &mut html);
            html.push('"');
        }
        if m.autoclose {
            html.push_str(" data-autoclose");
        }
        html.push('>');
        escape_html(&m.text, &mut html);
        html.push_str("</li>");
    }
    html.push_str("\n</ul>");
    html
}

/// The `HX-Trigger` value that hands the messages to the page's script:
/// `{"messages":[…]}` with one [`Shown`] each (listen with
/// `document.body.addEventListener("messages", e => e.detail.value)`). The JSON is
/// ASCII: control characters and every non-ASCII character are `\u` escapes, so the
/// value is a valid header value that browsers read back unchanged.
///
/// # Errors
/// [`Error::Decode`](crate::Error::Decode) if serialization fails (it does not for these
/// types).
pub fn hx_trigger(messages: &[Shown]) -> Result<String> {
    #[derive(Serialize)]
    struct Trigger<'a> {
        messages: &'a [Shown],
    }
    let mut out = Vec::with_capacity(64 + messages.len() * 160);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, AsciiJson);
    Trigger { messages }.serialize(&mut ser)?;
    // Only ASCII was written.
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// serde_json's compact output with every non-ASCII character as a `\u` escape
/// (surrogate pairs beyond the BMP).
struct AsciiJson;

impl serde_json::ser::Formatter for AsciiJson {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if c.is_ascii() {
                continue;
            }
            writer.write_all(&fragment.as_bytes()[start..i])?;
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                write!(writer, "\\u{unit:04x}")?;
            }
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

/// A view's messages ready for an htmx request: the [`fragment`] as the body and the
/// same messages in [`HX_TRIGGER`]. Made by [`ViewMessages::htmx`](crate::ViewMessages::htmx),
/// which consumes them; the axum and actix-web adapters answer it as a `200` with
/// `content-type: text/html; charset=utf-8` and the `HX-Trigger` header.
///
/// ```
/// use messages_core::{MemoryStore, Message, MessagesConfig, ViewId};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let config = MessagesConfig::new(MemoryStore::new());
/// let request = config.begin([]);
/// let notes = request.context(ViewId::from_static("app::notes"));
/// notes.add_message(Message::info("Note added"));
/// let htmx = notes.htmx(false).await;
/// assert!(htmx.body.contains(">Note added</li>"));
/// assert!(htmx.hx_trigger.as_deref().unwrap().contains(r#""text":"Note added""#));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Htmx {
    /// The `<ul id="messages">` fragment.
    pub body: String,
    /// The `HX-Trigger` value, `None` if it could not be made (logged).
    pub hx_trigger: Option<String>,
    /// The messages shown.
    pub messages: Vec<Shown>,
}

impl Htmx {
    /// The fragment (with `oob`, for an out-of-band swap) and trigger of `messages`.
    pub fn new(messages: Vec<Shown>, oob: bool) -> Htmx {
        let hx_trigger = hx_trigger(&messages)
            .inspect_err(|e| tracing::error!(error = %e, "messages: HX-Trigger not made"))
            .ok();
        Htmx {
            body: fragment(&messages, oob),
            hx_trigger,
            messages,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_fragment_escapes_everything_it_writes() {
        let m = Message::warning("<script>alert('x')</script> & \"q\"")
            .with_title("<T>")
            .with_autoclose(true);
        let html = fragment(&[Shown::from(&m)], true);
        assert!(html.starts_with("<ul id=\"messages\" hx-swap-oob=\"true\">\n<li "));
        assert!(!html.contains("<script>"));
        assert!(html.contains(
            " data-title=\"&lt;T&gt;\" data-autoclose>&lt;script&gt;alert(&#x27;x&#x27;)&lt;&#x2f;script&gt; &amp; &quot;q&quot;</li>"
        ));
        assert_eq!(fragment(&[], false), "<ul id=\"messages\">\n</ul>");
    }

    #[test]
    fn the_trigger_is_a_header_safe_json_object() {
        let text = "line\nbreak\u{7} Café ✓ 🎉";
        let m = Message::info(text);
        let value = hx_trigger(&[Shown::from(&m)]).unwrap();
        assert!(value.is_ascii(), "{value}");
        assert!(http::HeaderValue::from_str(&value).is_ok(), "{value}");
        assert!(value.contains(r"Caf\u00e9 \u2713 \ud83c\udf89"), "{value}");
        let back: serde_json::Value = serde_json::from_str(&value).unwrap();
        assert_eq!(back["messages"][0]["text"], text);
        assert_eq!(back["messages"][0]["title"], serde_json::Value::Null);
        assert_eq!(back["messages"][0]["level"], "info");
    }
}
