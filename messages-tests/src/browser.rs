//! A simulated browser for tests below the HTTP layer: a cookie jar that sends `Cookie`
//! to [`MessagesConfig::begin`] and applies the `Set-Cookie` values of
//! [`Messages::commit`], as the axum layer does.

use std::collections::BTreeMap;

use messages_core::request::Committed;
use messages_core::{Message, Messages, MessagesConfig, ViewId};

/// One browser: its cookies (name → value).
#[derive(Debug, Clone, Default)]
pub struct Browser {
    /// The cookies the browser holds.
    pub jar: BTreeMap<String, String>,
}

impl Browser {
    /// A browser with no cookies.
    pub fn new() -> Browser {
        Browser::default()
    }

    /// The `Cookie` header this browser would send, if any.
    pub fn cookie_header(&self) -> Option<String> {
        (!self.jar.is_empty()).then(|| {
            self.jar
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    /// Starts a request with this browser's cookies.
    pub fn begin(&self, config: &MessagesConfig) -> Messages {
        let header = self.cookie_header();
        config.begin(header.as_deref())
    }

    /// Applies `Set-Cookie` values: set, replace, or remove (`Max-Age=0` or empty value).
    pub fn apply(&mut self, committed: &Committed) {
        for set in &committed.set_cookie {
            let first = set.split(';').next().unwrap_or_default();
            let Some((name, value)) = first.split_once('=') else {
                continue;
            };
            let removal = value.is_empty()
                || set
                    .split(';')
                    .any(|a| a.trim().eq_ignore_ascii_case("Max-Age=0"));
            if removal {
                self.jar.remove(name.trim());
            } else {
                self.jar.insert(name.trim().to_owned(), value.to_owned());
            }
        }
    }

    /// Commits a request and applies its cookies; returns what the response carried.
    pub async fn finish(&mut self, request: &Messages, success: bool) -> Committed {
        let committed = request.commit(success).await;
        self.apply(&committed);
        committed
    }

    /// One request that adds `texts` to `view` as info messages and commits (a form's
    /// POST); returns what the response carried.
    pub async fn add(
        &mut self,
        config: &MessagesConfig,
        view: &ViewId,
        texts: &[&str],
    ) -> Committed {
        let req = self.begin(config);
        for t in texts {
            req.context(view).add_message(Message::info(*t));
        }
        self.finish(&req, true).await
    }

    /// One request that renders `view`'s messages and commits (the GET after the
    /// redirect); returns the texts shown.
    pub async fn read(&mut self, config: &MessagesConfig, view: &ViewId) -> Vec<String> {
        let req = self.begin(config);
        let shown = shown_texts(&req, view).await;
        self.finish(&req, true).await;
        shown
    }

    /// A cookie's value.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.jar.get(name).map(String::as_str)
    }

    /// Sets a cookie as a client may: forged, copied from elsewhere, garbage.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.jar.insert(name.to_owned(), value.into());
    }

    /// Removes a cookie, as a client may.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        self.jar.remove(name)
    }
}

/// Renders `view`'s messages in `req` (consuming them); returns their texts.
pub async fn shown_texts(req: &Messages, view: &ViewId) -> Vec<String> {
    req.context(view)
        .messages()
        .await
        .iter()
        .map(|m| m.text().to_owned())
        .collect()
}
