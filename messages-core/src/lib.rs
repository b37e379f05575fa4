//! View-bound flash messages.
//!
//! A flash message ("Your settings have been changed.") is bound to a **context** — the
//! browser session and the view it is meant for — and shown there exactly once, for
//! anonymous visitors too, even when it is added later by a background job.
//!
//! - [`Message`] and [`Level`]: what is shown.
//! - [`MessagesConfig`] → [`Messages`] (one request) → [`ViewMessages`] (one view) →
//!   [`MessageList`]: lazy (no store I/O unless messages are read) and consumed only
//!   when rendered.
//! - [`Storage`]: a server store ([`MemoryStore`], the embedded default; `RedisStore`,
//!   feature `redis`; `PostgresStore` and `SqliteStore`, features `postgres` and
//!   `sqlite`; or your own [`MessageStore`], see [`store`]), a signed cookie
//!   ([`CookieStore`]), or both ([`Storage::fallback`]).
//! - [`request`]: the framework-free request core that integrations adapt (begin,
//!   commit, the header policy, the session seam).
//! - [`views()`] lists every message-bearing view; [`check_views`] finds two handlers
//!   claiming one id.
//! - `#[with_messages]` (feature `macros`, on by default) and the integrations for axum
//!   (feature `axum`) and actix-web (feature `actix`). Handlers of every framework take
//!   the same [`Messages`].
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

#[cfg(feature = "actix")]
#[cfg_attr(docsrs, doc(cfg(feature = "actix")))]
pub mod actix;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
mod error;
mod level;
pub mod live;
mod message;
pub mod present;
pub mod request;
mod session;
pub mod store;
#[cfg(feature = "tower-sessions")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower-sessions")))]
pub mod tower_sessions;
mod view;

/// The `redis` client crate [`RedisStore`] is built on, re-exported so versions match
/// (to build a [`ConnectionManager`](redis_client::aio::ConnectionManager) yourself, say).
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use ::redis as redis_client;
/// The `sqlx` crate `PostgresStore` and `SqliteStore` are built on, re-exported so
/// versions match (to build a pool yourself for `from_pool`, say).
#[cfg(any(feature = "postgres", feature = "sqlite"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "postgres", feature = "sqlite"))))]
pub use ::sqlx;
pub use error::{Error, Result};
pub use level::Level;
pub use message::{
    MAX_DATA_BYTES, MAX_TAG_BYTES, MAX_TAGS, MAX_TEXT_BYTES, MAX_TITLE_BYTES, Message, MessageId,
    ParseMessageIdError,
};
pub use request::{
    CookieSettings, CookieStore, MessageList, Messages, MessagesConfig, SameSite, Storage,
    ViewMessages,
};
pub use session::{ParseSessionKeyError, SessionKey};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use store::PostgresStore;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "postgres", feature = "sqlite"))))]
pub use store::SqlOptions;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use store::SqliteStore;
pub use store::{MemoryLimits, MemoryStore, MessageStore};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use store::{RedisOptions, RedisStore};
pub use view::{DuplicateView, InvalidViewId, MAX_VIEW_ID_BYTES, View, ViewId, check_views, views};

#[cfg(feature = "macros")]
pub use messages_macros::{view_of, with_messages};

/// The names most handlers need.
pub mod prelude {
    pub use crate::{
        Level, MemoryStore, Message, MessageList, MessageStore, Messages, MessagesConfig,
        SessionKey, View, ViewId, ViewMessages,
    };
    #[cfg(feature = "macros")]
    pub use crate::{view_of, with_messages};
}

/// Not public API: the cookie codec alone, for `messages-tests`' cookie benchmark.
#[doc(hidden)]
pub mod __bench {
    pub use crate::request::cookie::{CookieCodec, DEFLATE_LEVEL};
}

/// Not public API: what `#[with_messages]` and `view_of!` expand to.
#[doc(hidden)]
pub mod __private {
    pub use crate::view::ViewRegistration;
    pub use inventory;

    /// The extractor a `#[with_messages]` handler takes: the same type for every
    /// framework.
    pub type Extractor = crate::Messages;

    /// What a `#[with_messages]` handler's messages parameter turns into the view's
    /// [`ViewMessages`](crate::ViewMessages).
    pub trait IntoContext {
        /// The messages of `view` in this request.
        fn into_context(self, view: &'static crate::View) -> crate::ViewMessages;
    }

    impl IntoContext for crate::Messages {
        fn into_context(self, view: &'static crate::View) -> crate::ViewMessages {
            self.context(view)
        }
    }

    impl IntoContext for &crate::Messages {
        fn into_context(self, view: &'static crate::View) -> crate::ViewMessages {
            self.context(view)
        }
    }

    /// Expanded beside every free-function `#[with_messages]` handler: a handler is
    /// called by a framework, so one must be enabled.
    #[cfg(any(feature = "axum", feature = "actix"))]
    #[macro_export]
    #[doc(hidden)]
    macro_rules! __require_framework {
        () => {};
    }

    /// Expanded beside every free-function `#[with_messages]` handler: a handler is
    /// called by a framework, so one must be enabled.
    #[cfg(not(any(feature = "axum", feature = "actix")))]
    #[macro_export]
    #[doc(hidden)]
    macro_rules! __require_framework {
        () => {
            ::core::compile_error!(
                "`#[with_messages]` handlers need a framework integration: enable a framework feature of `messages-core`: `axum` or `actix`"
            );
        };
    }

    pub use crate::__require_framework as require_framework;
}
