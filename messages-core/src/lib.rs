//! View-bound flash messages.
//!
//! A flash message ("Your settings have been changed.") is bound to a **context** — the
//! browser session and the view it is meant for — and shown there exactly once, for
//! anonymous visitors too, even when it is added later by a background job.
//!
//! - [`Message`] and [`Level`]: what is shown.
//! - [`MessagesConfig`] → [`RequestMessages`] → [`Context`]: one request's access,
//!   lazy (no store I/O unless messages are read) and consumed only when rendered.
//! - Stores: [`MemoryStore`] (the embedded default), [`CookieStore`] (signed cookie),
//!   [`FallbackStore`] (cookie first, server for the rest), `RedisStore` (feature
//!   `redis`), or your own [`MessageStore`].
//! - [`views()`] lists every message-bearing view; [`check_views`] finds two handlers
//!   claiming one id.
//! - `#[with_messages]` (feature `macros`, on by default) and the axum integration
//!   (feature `axum`).
//!
//! ```
//! use messages_core::prelude::*;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> messages_core::Result<()> {
//! let store = MemoryStore::new();
//! // Out of band, from a job: no request in hand.
//! let session = SessionKey::generate()?;
//! let dashboard = ViewId::new("app::dashboard")?;
//! store.add(&session, &dashboard, Message::info("Import finished")).await?;
//! assert_eq!(store.count(&session, &dashboard).await?, 1);
//! # Ok(()) }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
mod context;
mod error;
mod level;
mod message;
mod session;
mod store;
mod view;

/// The `redis` client crate [`RedisStore`] is built on, re-exported so versions match
/// (to build a [`ConnectionManager`](redis_client::aio::ConnectionManager) yourself, say).
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use ::redis as redis_client;
pub use async_trait::async_trait;
pub use context::{Committed, Context, MessageList, MessagesConfig, RequestMessages};
pub use error::{Error, Result};
pub use level::Level;
pub use message::{
    MAX_DATA_BYTES, MAX_TAG_BYTES, MAX_TAGS, MAX_TEXT_BYTES, MAX_TITLE_BYTES, Message, MessageId,
    ParseMessageIdError,
};
pub use session::{ParseSessionKeyError, SessionKey};
pub use store::{
    CookieSettings, CookieStore, FallbackStore, Lease, MemoryLimits, MemoryStore, MessageStore,
    SameSite, Taken,
};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use store::{RedisOptions, RedisStore};
pub use view::{DuplicateView, InvalidViewId, MAX_VIEW_ID_BYTES, View, ViewId, check_views, views};

#[cfg(feature = "macros")]
pub use messages_macros::{view_of, with_messages};

/// The names most handlers need.
pub mod prelude {
    pub use crate::{
        Context, Level, MemoryStore, Message, MessageList, MessageStore, MessagesConfig,
        RequestMessages, SessionKey, View, ViewId,
    };
    #[cfg(feature = "macros")]
    pub use crate::{view_of, with_messages};
}

/// Not public API: what `#[with_messages]` and `view_of!` expand to.
#[doc(hidden)]
pub mod __private {
    pub use crate::view::ViewRegistration;
    pub use inventory;

    /// The extractor a `#[with_messages]` handler takes.
    #[cfg(feature = "axum")]
    pub type Extractor = crate::axum::Messages;

    /// What a `#[with_messages]` handler's messages parameter turns into the view's
    /// [`Context`](crate::Context).
    pub trait IntoContext {
        /// The context of `view` in this request.
        fn into_context(self, view: &'static crate::View) -> crate::Context;
    }

    impl IntoContext for crate::RequestMessages {
        fn into_context(self, view: &'static crate::View) -> crate::Context {
            self.context(view)
        }
    }

    impl IntoContext for &crate::RequestMessages {
        fn into_context(self, view: &'static crate::View) -> crate::Context {
            self.context(view)
        }
    }
}
