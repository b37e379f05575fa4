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
//!         map.entry((s.clone(), v.clone())).or_default().extend(msgs); // arrival order
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

/// A reserve a store keeps of a context's messages, taken by
/// [`take_leased`](MessageStore::take_leased), until the request that took them calls
/// [`settle`](MessageStore::settle). A store that gives one out puts the messages back by
/// itself if the lease is never settled — the process taking them died, say — once the
/// lease's time is up. An opaque token, meaningful only to the store that issued it.
///
/// ```
/// use messages_core::Lease;
///
/// let lease = Lease::new("0000000000000001c0ffee0000000000");
/// assert_eq!(lease.token(), "0000000000000001c0ffee0000000000");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lease(String);

impl Lease {
    /// A lease with the store's own token.
    pub fn new(token: impl Into<String>) -> Lease {
        Lease(token.into())
    }

    /// The store's token.
    pub fn token(&self) -> &str {
        &self.0
    }
}

/// A context's messages taken for delivery by [`MessageStore::take_leased`], with the
/// store's [`Lease`] on them if it keeps a reserve.
///
/// ```
/// use messages_core::{Message, Taken};
///
/// let taken = Taken { messages: vec![Message::info("Saved")], lease: None };
/// assert_eq!(taken.messages.len(), 1);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Taken {
    /// The messages, oldest first.
    pub messages: Vec<Message>,
    /// The lease to [`settle`](MessageStore::settle), if the store keeps a reserve.
    pub lease: Option<Lease>,
}

/// A server-side home for messages, keyed by context: (session, view).
///
/// Implementations keep each context's messages in the order they **arrived in the
/// store** (a sequence the store assigns, never the app's clock: two app servers with
/// skewed clocks, or a clock stepped back, must not reorder two adds to one view; the
/// messages of one [`add_all`](MessageStore::add_all) keep their order),
/// apply their per-context cap oldest-first, and make [`take`](MessageStore::take)
/// atomic: two concurrent takes of one context never both return a message. All methods
/// are cancel-safe in the sense that a dropped future leaves the store consistent.
#[async_trait]
pub trait MessageStore: Send + Sync + fmt::Debug + 'static {
    /// Adds messages to a context, after every message it holds, in the order given.
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

    /// Puts back messages a request took from this context and did not show (the
    /// response failed, or the list was never rendered): they go **before** every message
    /// the context holds now, in the order given, since everything there now arrived
    /// after they were taken. Messages already present (by id) are not added twice.
    ///
    /// The default adds them at the end with [`add_all`](MessageStore::add_all), which is
    /// right for a store that orders by [`Message::order_key`] and only slightly off
    /// (put-back messages after newer ones) for one that orders by arrival.
    async fn put_back(
        &self,
        session: &SessionKey,
        view: &ViewId,
        messages: Vec<Message>,
    ) -> Result<()> {
        self.add_all(session, view, messages).await
    }

    /// Removes and returns a context's messages, oldest first, atomically.
    async fn take(&self, session: &SessionKey, view: &ViewId) -> Result<Vec<Message>>;

    /// Takes a context's messages for delivery, like [`take`](MessageStore::take), and
    /// may keep them in reserve under a [`Lease`] until [`settle`](MessageStore::settle):
    /// a store shared by processes (Redis) does, so that messages taken by a process that
    /// dies before its response is committed, or whose answer a crashing server never
    /// sent, come back once the lease is up instead of being lost. Until then other takes
    /// do not see them. The default takes and gives no lease (a store inside the process
    /// dies with the process anyway). A store that wraps another should forward this and
    /// [`settle`](MessageStore::settle), or the inner store's leases are lost.
    async fn take_leased(&self, session: &SessionKey, view: &ViewId) -> Result<Taken> {
        Ok(Taken {
            messages: self.take(session, view).await?,
            lease: None,
        })
    }

    /// Drops the reserve of a [`take_leased`](MessageStore::take_leased): its messages
    /// were shown, or put back with [`add_all`](MessageStore::add_all). Settling a lease
    /// that is already settled or up does nothing. The default does nothing.
    async fn settle(&self, session: &SessionKey, view: &ViewId, lease: Lease) -> Result<()> {
        let _ = (session, view, lease);
        Ok(())
    }

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
