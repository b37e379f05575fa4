//! Where messages live between requests.
//!
//! [`MessageStore`] is the small async trait every server-side backend implements:
//! [`MemoryStore`] (embedded, the default), [`RedisStore`](crate::RedisStore) (feature
//! `redis`). Cookie storage ([`CookieStore`]) lives in the response instead and is not a
//! `MessageStore`; [`FallbackStore`] combines it with one.
//!
//! # A custom store
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::Mutex;
//! use messages_core::{Message, MessageStore, SessionKey, ViewId, Result, async_trait};
//!
//! #[derive(Debug, Default)]
//! struct MapStore(Mutex<HashMap<(SessionKey, ViewId), Vec<Message>>>);
//!
//! #[async_trait]
//! impl MessageStore for MapStore {
//!     async fn add_all(&self, s: &SessionKey, v: &ViewId, msgs: Vec<Message>) -> Result<()> {
//!         let mut map = self.0.lock().unwrap();
//!         let list = map.entry((s.clone(), v.clone())).or_default();
//!         list.extend(msgs);
//!         list.sort_by_key(Message::order_key);
//!         Ok(())
//!     }
//!     async fn take(&self, s: &SessionKey, v: &ViewId) -> Result<Vec<Message>> {
//!         Ok(self.0.lock().unwrap().remove(&(s.clone(), v.clone())).unwrap_or_default())
//!     }
//!     async fn peek(&self, s: &SessionKey, v: &ViewId) -> Result<Vec<Message>> {
//!         Ok(self.0.lock().unwrap().get(&(s.clone(), v.clone())).cloned().unwrap_or_default())
//!     }
//!     async fn discard(&self, s: &SessionKey, v: &ViewId) -> Result<()> {
//!         self.0.lock().unwrap().remove(&(s.clone(), v.clone()));
//!         Ok(())
//!     }
//!     async fn clear_session(&self, s: &SessionKey) -> Result<()> {
//!         self.0.lock().unwrap().retain(|(k, _), _| k != s);
//!         Ok(())
//!     }
//!     async fn pending_views(&self, s: &SessionKey) -> Result<Vec<ViewId>> {
//!         let map = self.0.lock().unwrap();
//!         let mut views: Vec<ViewId> = map.keys().filter(|(k, _)| k == s).map(|(_, v)| v.clone()).collect();
//!         views.sort();
//!         Ok(views)
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
//! let store = MapStore::default();
//! let (session, view) = (SessionKey::generate()?, ViewId::new("jobs")?);
//! store.add(&session, &view, Message::info("Import finished")).await?;
//! assert_eq!(store.count(&session, &view).await?, 1);
//! assert_eq!(store.take(&session, &view).await?[0].text(), "Import finished");
//! assert!(store.take(&session, &view).await?.is_empty());
//! # Ok(()) }
//! ```

use std::fmt;

use async_trait::async_trait;

use crate::{Message, Result, SessionKey, ViewId};

pub(crate) mod cookie;
pub(crate) mod fallback;
pub(crate) mod memory;
#[cfg(feature = "redis")]
pub(crate) mod redis;

#[cfg(feature = "redis")]
pub use self::redis::{RedisOptions, RedisStore};
pub use cookie::{CookieSettings, CookieStore, SameSite};
pub use fallback::FallbackStore;
pub use memory::{MemoryLimits, MemoryStore};

/// A server-side home for messages, keyed by context: (session, view).
///
/// Implementations keep each context's messages ordered by
/// [`Message::order_key`], apply their per-context cap oldest-first, and make
/// [`take`](MessageStore::take) atomic: two concurrent takes of one context never both
/// return a message. All methods are cancel-safe in the sense that a dropped future
/// leaves the store consistent.
#[async_trait]
pub trait MessageStore: Send + Sync + fmt::Debug + 'static {
    /// Adds messages to a context (they may be older than the ones present: each context
    /// stays ordered).
    async fn add_all(
        &self,
        session: &SessionKey,
        view: &ViewId,
        messages: Vec<Message>,
    ) -> Result<()>;

    /// Adds one message to a context — out of band, from a background job, say.
    async fn add(&self, session: &SessionKey, view: &ViewId, message: Message) -> Result<()> {
        self.add_all(session, view, vec![message]).await
    }

    /// Removes and returns a context's messages, oldest first, atomically.
    async fn take(&self, session: &SessionKey, view: &ViewId) -> Result<Vec<Message>>;

    /// Returns a context's messages without removing them.
    async fn peek(&self, session: &SessionKey, view: &ViewId) -> Result<Vec<Message>>;

    /// How many messages a context holds.
    async fn count(&self, session: &SessionKey, view: &ViewId) -> Result<usize> {
        Ok(self.peek(session, view).await?.len())
    }

    /// Removes a context's messages unread.
    async fn discard(&self, session: &SessionKey, view: &ViewId) -> Result<()>;

    /// Removes every context of a session (at logout).
    async fn clear_session(&self, session: &SessionKey) -> Result<()>;

    /// The views of a session that hold messages, sorted.
    async fn pending_views(&self, session: &SessionKey) -> Result<Vec<ViewId>>;
}
