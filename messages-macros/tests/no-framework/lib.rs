//! Checked by `tests/no_framework.rs` against `messages-core` without a framework feature:
//! a free-function handler is one error, at its attribute; a method (its `Messages`
//! comes from the caller) and `view_of!` compile.
use messages_core::prelude::*;

#[with_messages]
pub async fn settings() -> usize {
    self.count().await
}

pub const SETTINGS: &View = view_of!(settings);

pub struct Pages;

impl Pages {
    #[with_messages(view = "pages.home")]
    pub async fn home(&self, messages: Messages) -> usize {
        messages.count().await
    }
}
