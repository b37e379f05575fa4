//! Shared by the `ui-pass` cases (`#[path = "../support/mod.rs"] mod support;`): one
//! browser session whose requests run handlers, so every case executes what it declares.
#![allow(dead_code)]

use std::future::Future;

use axum::extract::FromRequestParts;
use axum::http::Request;
use messages_core::Messages;
use messages_core::{MemoryStore, MessagesConfig};

/// One browser against one `MemoryStore`: its cookies travel from response to request.
pub struct Browser {
    config: MessagesConfig,
    cookies: Vec<String>,
}

impl Browser {
    pub fn new() -> Browser {
        Browser {
            config: MessagesConfig::new(MemoryStore::new()),
            cookies: Vec::new(),
        }
    }

    /// One request: `handler` gets the request's `Messages` (what `MessagesLayer` gives
    /// the extractor a `#[with_messages]` handler takes first), then the request commits
    /// and its `Set-Cookie`s are kept for the next one.
    pub async fn request<F, T>(&mut self, handler: impl FnOnce(Messages) -> F) -> T
    where
        F: Future<Output = T>,
    {
        let request = self.config.begin(self.cookies.iter().map(String::as_str));
        let (mut parts, ()) = Request::builder()
            .extension(request.clone())
            .body(())
            .expect("a request")
            .into_parts();
        let messages = Messages::from_request_parts(&mut parts, &())
            .await
            .expect("the messages of the request");
        let out = handler(messages).await;
        let committed = request.commit(true).await;
        for set_cookie in committed.set_cookie {
            let pair = set_cookie.split(';').next().unwrap_or_default();
            let (name, value) = pair.split_once('=').expect("name=value");
            self.cookies.retain(|c| !c.starts_with(&format!("{name}=")));
            if !value.is_empty() {
                self.cookies.push(pair.to_owned());
            }
        }
        out
    }
}
