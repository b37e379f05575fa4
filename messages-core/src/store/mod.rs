//! Where messages live between requests: the [`MessageStore`] trait and its
//! implementations.
//!
//! [`MessageStore`] is the small async trait every server-side backend implements:
//! [`MemoryStore`] (embedded, the default), [`RedisStore`] (feature `redis`),
//! `PostgresStore` and `SqliteStore` (features `postgres`, `sqlite`), or your own. A
//! configuration takes any of them, an `Arc` of one (to share it with a background
//! job), or combines one with the signed cookie
//! ([`Storage`](crate::Storage)). This module also holds what store authors need:
//! [`Lease`], [`Taken`] and the re-exported [`async_trait`](macro@async_trait) attribute.
//!
//! # A custom store
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::Mutex;
//! use messages_core::store::{MessageStore, async_trait};
//! use messages_core::{Message, Result, SessionKey, ViewId};
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
use std::sync::Arc;

use crate::{Message, Result, SessionKey, ViewId};

mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use async_trait::async_trait;

/// Whether a store's background flush of held settles is scheduled (Redis and the SQL
/// stores hold settles back: [`MessageStore::flush`]).
#[cfg(any(feature = "redis", feature = "postgres", feature = "sqlite"))]
#[derive(Debug, Default)]
struct FlushMark(Arc<std::sync::atomic::AtomicBool>);

#[cfg(any(feature = "redis", feature = "postgres", feature = "sqlite"))]
impl FlushMark {
    /// Marks a flush scheduled. `Some(guard)` when none was: move it into the flush task,
    /// which drops it when its wait ends. Dropped with the task too — its runtime shut
    /// down, even before the task first ran — it clears the mark, so that the next
    /// settle held schedules another flush instead of waiting for one that never comes.
    fn arm(&self) -> Option<Disarm> {
        (!self.0.swap(true, std::sync::atomic::Ordering::AcqRel))
            .then(|| Disarm(Arc::clone(&self.0)))
    }
}

/// Clears its [`FlushMark`] when dropped.
#[cfg(any(feature = "redis", feature = "postgres", feature = "sqlite"))]
struct Disarm(Arc<std::sync::atomic::AtomicBool>);

#[cfg(any(feature = "redis", feature = "postgres", feature = "sqlite"))]
impl Drop for Disarm {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::Release);
    }
}

/// The waits between tries of failed settles sent again in the background: from 100 ms,
/// doubling, at most 2 s, for as long as a try still comes before the deadline (the
/// lease is up then, and a late settle finds nothing to drop).
#[cfg(any(feature = "redis", feature = "postgres", feature = "sqlite"))]
struct Backoff {
    pause: std::time::Duration,
    deadline: tokio::time::Instant,
    /// Tries so far, the first (before the backoff) included.
    tries: u32,
}

#[cfg(any(feature = "redis", feature = "postgres", feature = "sqlite"))]
impl Backoff {
    fn until(deadline: tokio::time::Instant) -> Backoff {
        Backoff {
            pause: std::time::Duration::from_millis(100),
            deadline,
            tries: 1,
        }
    }

    /// Waits for the next try; `false`, at once, when it would not come before the
    /// deadline.
    async fn next(&mut self) -> bool {
        if tokio::time::Instant::now() + self.pause >= self.deadline {
            return false;
        }
        tokio::time::sleep(self.pause).await;
        self.pause = (self.pause * 2).min(std::time::Duration::from_secs(2));
        self.tries += 1;
        true
    }
}

#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use self::postgres::PostgresStore;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::{RedisOptions, RedisStore};
#[cfg(any(feature = "postgres", feature = "sqlite"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "postgres", feature = "sqlite"))))]
pub use self::sql::SqlOptions;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use self::sqlite::SqliteStore;
pub use memory::{MemoryLimits, MemoryStore};

/// A reserve a store keeps of a context's messages, taken by
/// [`take_leased`](MessageStore::take_leased), until the request that took them calls
/// [`settle`](MessageStore::settle). A store that gives one out puts the messages back by
/// itself if the lease is never settled — the process taking them died, say — once the
/// lease's time is up. An opaque token, meaningful only to the store that issued it.
///
/// ```
/// use messages_core::store::Lease;
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
/// use messages_core::Message;
/// use messages_core::store::Taken;
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
    /// that is already settled or up does nothing. A store may hold the settle back to
    /// send it with its next command (`RedisStore` does; [`flush`](MessageStore::flush)
    /// sends what is held): `Ok` then means it is held, and a later failure is the
    /// store's to log and retry. The default does nothing.
    async fn settle(&self, session: &SessionKey, view: &ViewId, lease: Lease) -> Result<()> {
        let _ = (session, view, lease);
        Ok(())
    }

    /// Sends what the store has deferred — a store may hold back the
    /// [`settle`](MessageStore::settle)s of read leases to send them with its next
    /// command — and returns once it is written. Call it at shutdown, after the server
    /// has stopped serving requests ([`MessagesConfig::flush`](crate::MessagesConfig::flush)
    /// does): a settle still held when the process exits is lost, and its messages are
    /// shown again once their lease is up. The default has nothing to send. A store that
    /// wraps another should forward it.
    ///
    /// # Errors
    /// The store's error if it cannot be reached; what it held is then left to the
    /// leases.
    async fn flush(&self) -> Result<()> {
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

    /// Moves every context of `from` to `to` (a session rotated at login), each view's
    /// messages before anything `to` holds, in order; afterwards `from` holds nothing.
    /// A store should also make `from` **refuse** what comes later — adds are dropped and
    /// reads find nothing until it would have expired — so that a key an attacker planted
    /// before login reaches nothing of the session after it: [`MemoryStore`] and
    /// [`RedisStore`] do.
    ///
    /// The default moves view by view with [`take_leased`](MessageStore::take_leased),
    /// [`put_back`](MessageStore::put_back) and [`settle`](MessageStore::settle), so
    /// concurrent readers of `from` and the move never both get a message; it does not
    /// retire `from`.
    async fn rotate(&self, from: &SessionKey, to: &SessionKey) -> Result<()> {
        for view in self.pending_views(from).await? {
            let taken = self.take_leased(from, &view).await?;
            if !taken.messages.is_empty() {
                self.put_back(to, &view, taken.messages).await?;
            }
            if let Some(lease) = taken.lease {
                self.settle(from, &view, lease).await?;
            }
        }
        Ok(())
    }

    /// A subscription to the adds of a context, for live delivery
    /// ([`live`](crate::live)): the [`Watch`](crate::live::Watch) is woken when messages
    /// may have arrived, and the live stream then takes them with
    /// [`take_leased`](MessageStore::take_leased). `None` (the default): this store has
    /// no change feed, and live streams poll it every
    /// [`poll_interval`](crate::live::LiveOptions::poll_interval).
    ///
    /// A store implements it with a [`LiveHub`](crate::live::LiveHub): it hands out the
    /// hub's watches and wakes the hub on every add that may reach this process. A missed
    /// wake delays a message until the stream's next keep-alive, which also polls.
    fn watch(&self, session: &SessionKey, view: &ViewId) -> Option<crate::live::Watch> {
        let _ = (session, view);
        None
    }

    /// This store behind an `Arc`, without a second `Arc` around one that is already
    /// shared. Not for overriding.
    #[doc(hidden)]
    fn into_shared(self) -> Arc<dyn MessageStore>
    where
        Self: Sized,
    {
        Arc::new(self)
    }
}

/// Forwards every method, so an `Arc` of a store (shared with a background job) is a
/// store: `MessagesConfig::new(Arc::clone(&store))`.
macro_rules! forward_store {
    ($($generics:tt)*) => {
        #[async_trait]
        impl $($generics)* {
            async fn add_all(&self, s: &SessionKey, v: &ViewId, m: Vec<Message>) -> Result<()> {
                (**self).add_all(s, v, m).await
            }
            async fn add(&self, s: &SessionKey, v: &ViewId, m: Message) -> Result<()> {
                (**self).add(s, v, m).await
            }
            async fn put_back(&self, s: &SessionKey, v: &ViewId, m: Vec<Message>) -> Result<()> {
                (**self).put_back(s, v, m).await
            }
            async fn take(&self, s: &SessionKey, v: &ViewId) -> Result<Vec<Message>> {
                (**self).take(s, v).await
            }
            async fn take_leased(&self, s: &SessionKey, v: &ViewId) -> Result<Taken> {
                (**self).take_leased(s, v).await
            }
            async fn settle(&self, s: &SessionKey, v: &ViewId, lease: Lease) -> Result<()> {
                (**self).settle(s, v, lease).await
            }
            async fn flush(&self) -> Result<()> {
                (**self).flush().await
            }
            async fn peek(&self, s: &SessionKey, v: &ViewId) -> Result<Vec<Message>> {
                (**self).peek(s, v).await
            }
            async fn count(&self, s: &SessionKey, v: &ViewId) -> Result<usize> {
                (**self).count(s, v).await
            }
            async fn discard(&self, s: &SessionKey, v: &ViewId) -> Result<()> {
                (**self).discard(s, v).await
            }
            async fn clear_session(&self, s: &SessionKey) -> Result<()> {
                (**self).clear_session(s).await
            }
            async fn pending_views(&self, s: &SessionKey) -> Result<Vec<ViewId>> {
                (**self).pending_views(s).await
            }
            async fn rotate(&self, from: &SessionKey, to: &SessionKey) -> Result<()> {
                (**self).rotate(from, to).await
            }
            fn watch(&self, s: &SessionKey, v: &ViewId) -> Option<crate::live::Watch> {
                (**self).watch(s, v)
            }
            fn into_shared(self) -> Arc<dyn MessageStore> {
                self
            }
        }
    };
}

forward_store!(<S: MessageStore> MessageStore for Arc<S>);
forward_store!(MessageStore for Arc<dyn MessageStore>);
