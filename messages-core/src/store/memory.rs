//! The embedded default store.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::{Message, MessageId, MessageStore, Result, SessionKey, ViewId};

const SHARDS: usize = 16;

/// Bounds of a [`MemoryStore`].
///
/// When a context holds more than `per_context` messages the oldest are dropped; when a
/// session holds more than `per_session` messages or about `per_session_bytes` bytes, its
/// own oldest are dropped (those of the view being written first), so one session — a
/// flood of adds from one browser — can only evict its own messages. When the store
/// holds more than `max_messages` messages or about `max_bytes` bytes, whole sessions
/// are dropped, least recently written first: a client that makes many sessions (many
/// anonymous requests) can push out the sessions written least recently, so size the
/// totals for your peak of pending messages (the defaults hold 100 000). A session
/// nobody wrote to for `idle_ttl` is gone. Each drop logs a `tracing` warning. The totals are enforced per
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
    /// Most messages in one session, all views together (default 1000).
    pub per_session: usize,
    /// Most bytes of messages in one session, estimated (default 1 MiB).
    pub per_session_bytes: usize,
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
            per_session: 1000,
            per_session_bytes: 1 << 20,
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
    /// Wakes live streams on adds (in process).
    live: crate::live::LiveHub,
}

#[derive(Debug, Default)]
struct Shard {
    sessions: HashMap<SessionKey, Entry>,
    /// Write stamp -> session, oldest first: eviction and expiry order.
    by_write: BTreeMap<u64, SessionKey>,
    next_stamp: u64,
    messages: usize,
    bytes: usize,
    /// Sessions rotated away from, refused until the instant given.
    retired: HashMap<SessionKey, Instant>,
    /// The same, in the order they were retired, for expiry.
    retired_order: VecDeque<(Instant, SessionKey)>,
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
        + m.title().map_or(0, str::len)
        + m.tags().iter().map(|t| t.len() + 24).sum::<usize>()
        + m.data().map_or(0, |d| d.to_string().len() * 2)
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
        while let Some((until, _)) = self.retired_order.front() {
            if *until > now {
                break;
            }
            if let Some((until, session)) = self.retired_order.pop_front()
                && self.retired.get(&session) == Some(&until)
            {
                self.retired.remove(&session);
            }
        }
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

    /// Whether adds to `session` are refused (it was rotated away from).
    fn is_retired(&self, session: &SessionKey, now: Instant) -> bool {
        self.retired.get(session).is_some_and(|until| *until > now)
    }

    fn retire(&mut self, session: &SessionKey, until: Instant) {
        self.retired.insert(session.clone(), until);
        self.retired_order.push_back((until, session.clone()));
    }

    /// Drops `session`'s oldest messages — of `view` first, then of its other views in
    /// id order — while `over` says the session or the shard is over a bound. Returns how
    /// many were dropped.
    fn drop_oldest(
        &mut self,
        session: &SessionKey,
        view: &ViewId,
        over: impl Fn(&Shard, &Entry) -> bool,
    ) -> usize {
        let mut dropped = 0;
        while let Some(entry) = self.sessions.get(session) {
            if !over(self, entry) {
                break;
            }
            let victim = if entry.views.get(view).is_some_and(|l| !l.is_empty()) {
                view.clone()
            } else {
                match entry
                    .views
                    .iter()
                    .filter(|(_, l)| !l.is_empty())
                    .map(|(v, _)| v)
                    .min()
                {
                    Some(v) => v.clone(),
                    None => break,
                }
            };
            let Some(entry) = self.sessions.get_mut(session) else {
                break;
            };
            let Some(list) = entry.views.get_mut(&victim) else {
                break;
            };
            let m = list.remove(0);
            if list.is_empty() {
                entry.views.remove(&victim);
            }
            let bytes = size_of(&m);
            entry.messages -= 1;
            entry.bytes -= bytes;
            self.messages -= 1;
            self.bytes -= bytes;
            dropped += 1;
        }
        if self
            .sessions
            .get(session)
            .is_some_and(|e| e.views.is_empty())
        {
            self.remove_session(session);
        }
        dropped
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
            per_session: limits.per_session.max(1),
            per_session_bytes: limits.per_session_bytes.max(1),
            max_messages: limits.max_messages.max(1),
            max_bytes: limits.max_bytes.max(1),
            idle_ttl: limits.idle_ttl,
        };
        MemoryStore {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            limits,
            live: crate::live::LiveHub::new(),
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
        if shard.is_retired(session, now) {
            tracing::warn!(
                dropped = messages.len(),
                "messages: session rotated away from, its adds are refused"
            );
            return;
        }

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

        // One session can only evict its own messages: over its own bounds it loses its
        // oldest.
        let dropped = shard.drop_oldest(session, view, |_, e| {
            e.messages > limits.per_session || e.bytes > limits.per_session_bytes
        });
        if dropped > 0 {
            tracing::warn!(
                dropped,
                cap = limits.per_session,
                "messages: session full, its oldest messages dropped"
            );
        }
        // The store's totals: whole sessions go, least recently written first (the
        // writing session is the most recent, so it goes last).
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
        self.live.wake(session, view);
        Ok(())
    }

    async fn put_back(
        &self,
        session: &SessionKey,
        view: &ViewId,
        messages: Vec<Message>,
    ) -> Result<()> {
        self.insert(session, view, messages, Place::Front);
        self.live.wake(session, view);
        Ok(())
    }

    fn watch(&self, session: &SessionKey, view: &ViewId) -> Option<crate::live::Watch> {
        Some(self.live.watch(session, view))
    }

    /// Atomic for the old key: its entry leaves the store and the key is retired (adds
    /// refused for `idle_ttl`) in one step; the views then go into `to`, each before
    /// what `to` holds, within `to`'s caps.
    async fn rotate(&self, from: &SessionKey, to: &SessionKey) -> Result<()> {
        let now = Instant::now();
        let moved = {
            let mut shard = self.shard(from);
            shard.expire(self.limits.idle_ttl, now);
            let moved = shard.remove_session(from);
            shard.retire(from, now + self.limits.idle_ttl);
            moved
        };
        if let Some(entry) = moved {
            let mut views: Vec<(ViewId, Vec<Message>)> = entry.views.into_iter().collect();
            views.sort_by(|a, b| a.0.cmp(&b.0));
            for (view, list) in views {
                self.insert(to, &view, list, Place::Front);
            }
            self.live.wake_session(to);
        }
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
    async fn a_flood_from_one_session_leaves_other_sessions_in_place() {
        let store = MemoryStore::with_limits(MemoryLimits {
            per_session: 100,
            max_messages: SHARDS * 200,
            ..MemoryLimits::default()
        });
        let shard_of = |s: &SessionKey| store.hasher.hash_one(s) % SHARDS as u64;
        let flood = key();
        // The victim shares the flood's shard, where the totals would bite.
        let victim = std::iter::repeat_with(key)
            .find(|k| shard_of(k) == shard_of(&flood))
            .unwrap();
        store
            .add(&victim, &view("v"), Message::info("mine"))
            .await
            .unwrap();
        for i in 0..20_000 {
            store
                .add(&flood, &view(&format!("v{}", i % 50)), Message::info("x"))
                .await
                .unwrap();
        }
        assert_eq!(store.count(&victim, &view("v")).await.unwrap(), 1);
        assert_eq!(store.len(), 101);
    }

    #[tokio::test]
    async fn a_session_over_its_own_bound_loses_only_its_own_oldest() {
        let store = MemoryStore::with_limits(MemoryLimits {
            per_session: 5,
            ..MemoryLimits::default()
        });
        let (flood, other) = (key(), key());
        store
            .add(&other, &view("a"), Message::info("kept"))
            .await
            .unwrap();
        for i in 0..3 {
            store
                .add(&flood, &view("a"), Message::info(format!("a{i}")))
                .await
                .unwrap();
        }
        let b: Vec<Message> = (0..4).map(|i| Message::info(format!("b{i}"))).collect();
        store.add_all(&flood, &view("b"), b).await.unwrap();
        // The view being written loses its oldest first; the other view is untouched.
        let texts = |list: Vec<Message>| -> Vec<String> {
            list.iter().map(|m| m.text().to_owned()).collect()
        };
        assert_eq!(
            texts(store.peek(&flood, &view("a")).await.unwrap()),
            ["a0", "a1", "a2"]
        );
        assert_eq!(
            texts(store.peek(&flood, &view("b")).await.unwrap()),
            ["b2", "b3"]
        );
        assert_eq!(
            texts(store.peek(&other, &view("a")).await.unwrap()),
            ["kept"]
        );
        // The byte bound works the same way.
        let store = MemoryStore::with_limits(MemoryLimits {
            per_session_bytes: 3 * size_of(&Message::info("z".repeat(100))) + 10,
            ..MemoryLimits::default()
        });
        for _ in 0..10 {
            store
                .add(&flood, &view("a"), Message::info("z".repeat(100)))
                .await
                .unwrap();
        }
        assert_eq!(store.count(&flood, &view("a")).await.unwrap(), 3);
    }

    #[tokio::test]
    async fn rotate_moves_every_view_and_retires_the_old_key() {
        let store = MemoryStore::new();
        let (old, new) = (key(), key());
        store
            .add(&new, &view("a"), Message::info("already new"))
            .await
            .unwrap();
        for (v, t) in [("a", "a1"), ("a", "a2"), ("b", "b1")] {
            store.add(&old, &view(v), Message::info(t)).await.unwrap();
        }
        store.rotate(&old, &new).await.unwrap();
        let texts = |list: Vec<Message>| -> Vec<String> {
            list.iter().map(|m| m.text().to_owned()).collect()
        };
        assert_eq!(
            texts(store.take(&new, &view("a")).await.unwrap()),
            ["a1", "a2", "already new"]
        );
        assert_eq!(texts(store.take(&new, &view("b")).await.unwrap()), ["b1"]);
        assert!(store.pending_views(&old).await.unwrap().is_empty());
        // The old key accepts nothing afterwards.
        store
            .add(&old, &view("a"), Message::info("planted"))
            .await
            .unwrap();
        assert_eq!(store.count(&old, &view("a")).await.unwrap(), 0);
        assert!(store.is_empty());
    }

    #[tokio::test]
    async fn a_retired_key_is_forgotten_after_the_idle_ttl() {
        let store = MemoryStore::with_limits(MemoryLimits {
            idle_ttl: Duration::from_millis(50),
            ..MemoryLimits::default()
        });
        let (old, new) = (key(), key());
        store.rotate(&old, &new).await.unwrap();
        store
            .add(&old, &view("a"), Message::info("refused"))
            .await
            .unwrap();
        assert_eq!(store.count(&old, &view("a")).await.unwrap(), 0);
        tokio::time::sleep(Duration::from_millis(120)).await;
        store
            .add(&old, &view("a"), Message::info("accepted"))
            .await
            .unwrap();
        assert_eq!(store.count(&old, &view("a")).await.unwrap(), 1);
        // The write after the TTL found the retirement expired and dropped it.
        assert_eq!(
            store
                .shards
                .iter()
                .map(|s| lock(s).retired.len())
                .sum::<usize>(),
            0
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
