//! The embedded default store.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::{Message, MessageId, MessageStore, Result, SessionKey, ViewId};

const SHARDS: usize = 16;

/// Bounds of a [`MemoryStore`].
///
/// When a context holds more than `per_context` messages the oldest are dropped; when the
/// store holds more than `max_messages` messages or about `max_bytes` bytes, whole
/// sessions are dropped, least recently written first; a session nobody wrote to for
/// `idle_ttl` is gone. Each drop logs a `tracing` warning. The totals are enforced per
/// shard (the store has 16), so each shard holds at most a sixteenth of them.
///
/// ```
/// use std::time::Duration;
/// use messages_core::MemoryLimits;
///
/// let limits = MemoryLimits { idle_ttl: Duration::from_secs(600), ..MemoryLimits::default() };
/// assert_eq!(limits.per_context, 100);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLimits {
    /// Most messages in one context (default 100).
    pub per_context: usize,
    /// Most messages in the store (default 100 000).
    pub max_messages: usize,
    /// Most bytes of messages in the store, estimated (default 64 MiB).
    pub max_bytes: usize,
    /// A session is dropped this long after its last write (default 1 hour).
    pub idle_ttl: Duration,
}

impl Default for MemoryLimits {
    fn default() -> Self {
        MemoryLimits {
            per_context: 100,
            max_messages: 100_000,
            max_bytes: 64 << 20,
            idle_ttl: Duration::from_secs(3600),
        }
    }
}

/// Messages in this process's memory: concurrent, bounded, no server needed.
///
/// The default store. It is lost on restart and not shared between processes: use
/// [`RedisStore`](crate::RedisStore) for applications on several machines. Bounds are in
/// [`MemoryLimits`].
///
/// ```
/// use messages_core::{MemoryStore, Message, MessageStore, SessionKey, ViewId};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> messages_core::Result<()> {
/// let store = MemoryStore::new();
/// let (session, view) = (SessionKey::generate()?, ViewId::new("dashboard")?);
/// store.add(&session, &view, Message::info("one")).await?;
/// store.add(&session, &view, Message::info("two")).await?;
/// let texts: Vec<String> = store.take(&session, &view).await?.iter().map(|m| m.text().to_owned()).collect();
/// assert_eq!(texts, ["one", "two"]);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    hasher: std::collections::hash_map::RandomState,
    limits: MemoryLimits,
}

#[derive(Debug, Default)]
struct Shard {
    sessions: HashMap<SessionKey, Entry>,
    /// Write stamp -> session, oldest first: eviction and expiry order.
    by_write: BTreeMap<u64, SessionKey>,
    next_stamp: u64,
    messages: usize,
    bytes: usize,
}

#[derive(Debug)]
struct Entry {
    views: HashMap<ViewId, Vec<Message>>,
    stamp: u64,
    written: Instant,
    messages: usize,
    bytes: usize,
}

/// Estimated heap size of a message, for the byte bound.
fn size_of(m: &Message) -> usize {
    128 + m.text().len()
        + m.title_text().map_or(0, str::len)
        + m.tags().iter().map(|t| t.len() + 24).sum::<usize>()
        + m.data_value().map_or(0, |d| d.to_string().len() * 2)
}

impl Shard {
    fn remove_session(&mut self, session: &SessionKey) -> Option<Entry> {
        let entry = self.sessions.remove(session)?;
        self.by_write.remove(&entry.stamp);
        self.messages -= entry.messages;
        self.bytes -= entry.bytes;
        Some(entry)
    }

    fn expire(&mut self, ttl: Duration, now: Instant) {
        while let Some((_, session)) = self.by_write.first_key_value() {
            let expired = self
                .sessions
                .get(session)
                .is_none_or(|e| now.duration_since(e.written) >= ttl);
            if !expired {
                break;
            }
            let session = session.clone();
            self.remove_session(&session);
        }
    }

    /// The live entry of a session; an expired one is removed first.
    fn live(&mut self, session: &SessionKey, ttl: Duration) -> Option<&mut Entry> {
        let expired = self
            .sessions
            .get(session)
            .is_some_and(|e| e.written.elapsed() >= ttl);
        if expired {
            self.remove_session(session);
        }
        self.sessions.get_mut(session)
    }

    fn remove_view(&mut self, session: &SessionKey, view: &ViewId, ttl: Duration) -> Vec<Message> {
        let Some(entry) = self.live(session, ttl) else {
            return Vec::new();
        };
        let list = entry.views.remove(view).unwrap_or_default();
        let bytes: usize = list.iter().map(size_of).sum();
        entry.messages -= list.len();
        entry.bytes -= bytes;
        let empty = entry.views.is_empty();
        self.messages -= list.len();
        self.bytes -= bytes;
        if empty {
            self.remove_session(session);
        }
        list
    }
}

impl MemoryStore {
    /// A store with the default [`MemoryLimits`].
    pub fn new() -> MemoryStore {
        MemoryStore::with_limits(MemoryLimits::default())
    }

    /// A store with the given limits (zeros are raised to one).
    pub fn with_limits(limits: MemoryLimits) -> MemoryStore {
        let limits = MemoryLimits {
            per_context: limits.per_context.max(1),
            max_messages: limits.max_messages.max(1),
            max_bytes: limits.max_bytes.max(1),
            idle_ttl: limits.idle_ttl,
        };
        MemoryStore {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            limits,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> MemoryLimits {
        self.limits
    }

    /// Messages held right now, in all sessions (expired ones may still count until the
    /// next write to their shard).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).messages).sum()
    }

    /// Whether the store holds no messages.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, session: &SessionKey) -> MutexGuard<'_, Shard> {
        let i = usize::try_from(self.hasher.hash_one(session)).unwrap_or(0) % SHARDS;
        lock(&self.shards[i])
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

// A panic while holding the lock cannot leave a shard half-updated in a way that matters
// more than losing the process's messages, so a poisoned lock is used as it is.
fn lock(m: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where [`MemoryStore::insert`] puts new messages in a context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// After everything (an add).
    Back,
    /// Before everything (a put-back).
    Front,
}

impl MemoryStore {
    /// Adds messages to a context at `place`, in the order given, skipping ids already
    /// there; then applies the caps.
    fn insert(&self, session: &SessionKey, view: &ViewId, messages: Vec<Message>, place: Place) {
        if messages.is_empty() {
            return;
        }
        let limits = self.limits;
        let shard_messages = limits.max_messages.div_ceil(SHARDS);
        let shard_bytes = limits.max_bytes.div_ceil(SHARDS);
        let now = Instant::now();
        let mut shard = self.shard(session);
        let shard = &mut *shard;
        shard.expire(limits.idle_ttl, now);

        let stamp = shard.next_stamp;
        shard.next_stamp += 1;
        let entry = shard
            .sessions
            .entry(session.clone())
            .or_insert_with(|| Entry {
                views: HashMap::new(),
                stamp,
                written: now,
                messages: 0,
                bytes: 0,
            });
        shard.by_write.remove(&entry.stamp);
        shard.by_write.insert(stamp, session.clone());
        entry.stamp = stamp;
        entry.written = now;

        let list = entry.views.entry(view.clone()).or_default();
        let before_len = list.len();
        let before_bytes: usize = list.iter().map(size_of).sum();
        // Arrival order, not the messages' clocks; a message already here is not added
        // twice (a put-back of what another path restored, say).
        let present: HashSet<MessageId> = list.iter().map(Message::id).collect();
        let new = messages.into_iter().filter(|m| !present.contains(&m.id()));
        match place {
            Place::Back => list.extend(new),
            Place::Front => {
                let mut front: Vec<Message> = new.collect();
                front.append(list);
                *list = front;
            }
        }
        if list.len() > limits.per_context {
            let dropped = list.len() - limits.per_context;
            list.drain(..dropped);
            tracing::warn!(view = %view, dropped, cap = limits.per_context, "messages: context full, oldest messages dropped");
        }
        let after_bytes: usize = list.iter().map(size_of).sum();
        let after_len = list.len();
        entry.messages = entry.messages + after_len - before_len;
        entry.bytes = entry.bytes + after_bytes - before_bytes;
        shard.messages = shard.messages + after_len - before_len;
        shard.bytes = shard.bytes + after_bytes - before_bytes;

        while shard.messages > shard_messages || shard.bytes > shard_bytes {
            let Some((_, oldest)) = shard.by_write.first_key_value() else {
                break;
            };
            let oldest = oldest.clone();
            if let Some(e) = shard.remove_session(&oldest) {
                tracing::warn!(
                    messages = e.messages,
                    "messages: memory store full, least recently written session dropped"
                );
            }
        }
    }
}

#[async_trait]
impl MessageStore for MemoryStore {
    async fn add_all(
        &self,
        session: &SessionKey,
        view: &ViewId,
        messages: Vec<Message>,
    ) -> Result<()> {
        self.insert(session, view, messages, Place::Back);
        Ok(())
    }

    async fn put_back(
        &self,
        session: &SessionKey,
        view: &ViewId,
        messages: Vec<Message>,
    ) -> Result<()> {
        self.insert(session, view, messages, Place::Front);
        Ok(())
    }

    async fn take(&self, session: &SessionKey, view: &ViewId) -> Result<Vec<Message>> {
        Ok(self
            .shard(session)
            .remove_view(session, view, self.limits.idle_ttl))
    }

    async fn peek(&self, session: &SessionKey, view: &ViewId) -> Result<Vec<Message>> {
        let mut shard = self.shard(session);
        Ok(shard
            .live(session, self.limits.idle_ttl)
            .and_then(|e| e.views.get(view).cloned())
            .unwrap_or_default())
    }

    async fn count(&self, session: &SessionKey, view: &ViewId) -> Result<usize> {
        let mut shard = self.shard(session);
        Ok(shard
            .live(session, self.limits.idle_ttl)
            .and_then(|e| e.views.get(view))
            .map_or(0, Vec::len))
    }

    async fn discard(&self, session: &SessionKey, view: &ViewId) -> Result<()> {
        self.shard(session)
            .remove_view(session, view, self.limits.idle_ttl);
        Ok(())
    }

    async fn clear_session(&self, session: &SessionKey) -> Result<()> {
        self.shard(session).remove_session(session);
        Ok(())
    }

    async fn pending_views(&self, session: &SessionKey) -> Result<Vec<ViewId>> {
        let mut shard = self.shard(session);
        let mut views: Vec<ViewId> = shard
            .live(session, self.limits.idle_ttl)
            .map(|e| e.views.keys().cloned().collect())
            .unwrap_or_default();
        views.sort();
        Ok(views)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SessionKey {
        SessionKey::generate().unwrap()
    }
    fn view(s: &str) -> ViewId {
        ViewId::new(s).unwrap()
    }

    #[tokio::test]
    async fn per_context_cap_drops_oldest() {
        let store = MemoryStore::with_limits(MemoryLimits {
            per_context: 3,
            ..MemoryLimits::default()
        });
        let (s, v) = (key(), view("v"));
        for i in 0..5 {
            store
                .add(&s, &v, Message::info(format!("m{i}")))
                .await
                .unwrap();
        }
        let texts: Vec<_> = store
            .take(&s, &v)
            .await
            .unwrap()
            .iter()
            .map(|m| m.text().to_owned())
            .collect();
        assert_eq!(texts, ["m2", "m3", "m4"]);
        assert!(store.is_empty());
    }

    #[tokio::test]
    async fn arrival_order_not_the_clock_and_put_back_goes_first() {
        let store = MemoryStore::new();
        let (s, v) = (key(), view("v"));
        let texts = async |store: &MemoryStore| -> Vec<String> {
            let list = store.peek(&s, &v).await.unwrap();
            list.iter().map(|m| m.text().to_owned()).collect()
        };
        store.add(&s, &v, Message::info("first")).await.unwrap();
        // A clock stepped back (or another server's) does not reorder.
        let early = Message::info("second").with_created_at(1);
        store.add(&s, &v, early.clone()).await.unwrap();
        assert_eq!(texts(&store).await, ["first", "second"]);
        let taken = store.take(&s, &v).await.unwrap();
        store.add(&s, &v, Message::info("third")).await.unwrap();
        store.put_back(&s, &v, taken).await.unwrap();
        assert_eq!(texts(&store).await, ["first", "second", "third"]);
        // An id already present is not added twice, wherever it is put.
        store.put_back(&s, &v, vec![early.clone()]).await.unwrap();
        store.add(&s, &v, early).await.unwrap();
        assert_eq!(store.count(&s, &v).await.unwrap(), 3);
    }

    #[tokio::test]
    async fn total_cap_evicts_least_recently_written_sessions() {
        let store = MemoryStore::with_limits(MemoryLimits {
            max_messages: SHARDS * 2,
            ..MemoryLimits::default()
        });
        let sessions: Vec<_> = (0..200).map(|_| key()).collect();
        for s in &sessions {
            store.add(s, &view("v"), Message::info("x")).await.unwrap();
        }
        assert!(store.len() <= SHARDS * 2, "len {}", store.len());
        // The newest session always survives.
        assert_eq!(
            store
                .count(sessions.last().unwrap(), &view("v"))
                .await
                .unwrap(),
            1
        );
    }

    #[tokio::test]
    async fn byte_cap_bounds_the_store() {
        let store = MemoryStore::with_limits(MemoryLimits {
            max_bytes: SHARDS * 10_000,
            ..MemoryLimits::default()
        });
        for _ in 0..500 {
            store
                .add(&key(), &view("v"), Message::info("y".repeat(1000)))
                .await
                .unwrap();
        }
        let bytes: usize = store.shards.iter().map(|s| lock(s).bytes).sum();
        assert!(bytes <= SHARDS * 10_000, "{bytes}");
    }

    #[tokio::test]
    async fn idle_sessions_expire() {
        let store = MemoryStore::with_limits(MemoryLimits {
            idle_ttl: Duration::from_millis(200),
            ..MemoryLimits::default()
        });
        let (s, v) = (key(), view("v"));
        let before = Instant::now();
        store.add(&s, &v, Message::info("x")).await.unwrap();
        let fresh = store.count(&s, &v).await.unwrap();
        // A stalled test thread may have let the session lapse already; only a
        // prompt count has to see the message.
        if before.elapsed() < Duration::from_millis(200) {
            assert_eq!(fresh, 1);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(store.count(&s, &v).await.unwrap(), 0);
        assert!(store.take(&s, &v).await.unwrap().is_empty());
        assert!(store.pending_views(&s).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn views_clear_and_counts_stay_consistent() {
        let store = MemoryStore::new();
        let s = key();
        store.add(&s, &view("b"), Message::info("1")).await.unwrap();
        store.add(&s, &view("a"), Message::info("2")).await.unwrap();
        assert_eq!(
            store.pending_views(&s).await.unwrap(),
            [view("a"), view("b")]
        );
        store.discard(&s, &view("a")).await.unwrap();
        assert_eq!(store.pending_views(&s).await.unwrap(), [view("b")]);
        assert_eq!(store.len(), 1);
        store.clear_session(&s).await.unwrap();
        assert!(store.is_empty());
        assert!(store.pending_views(&s).await.unwrap().is_empty());
    }
}
