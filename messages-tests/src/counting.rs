//! A [`MessageStore`] wrapper that counts calls, to prove which requests do store I/O.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use messages_core::store::{Lease, Taken};
use messages_core::{Message, MessageStore, Result, SessionKey, ViewId};

/// How many times each [`MessageStore`] method was called.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallCounts {
    /// [`MessageStore::add_all`] (and `add`, which calls it) and [`MessageStore::put_back`]:
    /// the writes.
    pub add_all: usize,
    /// [`MessageStore::take`] and [`MessageStore::take_leased`].
    pub take: usize,
    /// [`MessageStore::settle`].
    pub settle: usize,
    /// [`MessageStore::peek`].
    pub peek: usize,
    /// [`MessageStore::count`].
    pub count: usize,
    /// [`MessageStore::discard`].
    pub discard: usize,
    /// [`MessageStore::clear_session`].
    pub clear_session: usize,
    /// [`MessageStore::pending_views`].
    pub pending_views: usize,
}

impl CallCounts {
    /// Calls of every method together.
    pub fn total(&self) -> usize {
        self.add_all
            + self.take
            + self.settle
            + self.peek
            + self.count
            + self.discard
            + self.clear_session
            + self.pending_views
    }
}

impl fmt::Display for CallCounts {
    /// The methods called, with how often, in trait order: `add_all 1, take 1`, or `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all = [
            ("add_all", self.add_all),
            ("take", self.take),
            ("settle", self.settle),
            ("peek", self.peek),
            ("count", self.count),
            ("discard", self.discard),
            ("clear_session", self.clear_session),
            ("pending_views", self.pending_views),
        ];
        let called: Vec<String> = all
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(m, n)| format!("{m} {n}"))
            .collect();
        if called.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&called.join(", "))
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    add_all: AtomicUsize,
    take: AtomicUsize,
    settle: AtomicUsize,
    peek: AtomicUsize,
    count: AtomicUsize,
    discard: AtomicUsize,
    clear_session: AtomicUsize,
    pending_views: AtomicUsize,
}

impl Counters {
    fn all(&self) -> [&AtomicUsize; 8] {
        [
            &self.add_all,
            &self.take,
            &self.settle,
            &self.peek,
            &self.count,
            &self.discard,
            &self.clear_session,
            &self.pending_views,
        ]
    }
}

/// Wraps a store and counts every call made through it, per method. Clones share the
/// store and the counters.
///
/// ```
/// use messages_core::{MemoryStore, Message, MessageStore, SessionKey, ViewId};
/// use messages_tests::CountingStore;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> messages_core::Result<()> {
/// let store = CountingStore::new(MemoryStore::new());
/// let (s, v) = (SessionKey::generate()?, ViewId::new("v")?);
/// store.add(&s, &v, Message::info("hi")).await?;
/// assert_eq!(store.take(&s, &v).await?.len(), 1);
/// assert_eq!(store.counts().to_string(), "add_all 1, take 1");
/// assert_eq!(store.calls(), 2);
/// store.reset();
/// assert_eq!(store.counts().to_string(), "none");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct CountingStore {
    inner: Arc<dyn MessageStore>,
    counters: Arc<Counters>,
}

impl CountingStore {
    /// Counts calls to `inner`.
    pub fn new(inner: impl MessageStore) -> CountingStore {
        CountingStore {
            inner: Arc::new(inner),
            counters: Arc::default(),
        }
    }

    /// Calls made so far, of every method.
    pub fn calls(&self) -> usize {
        self.counts().total()
    }

    /// Calls made so far, per method.
    pub fn counts(&self) -> CallCounts {
        let [
            add_all,
            take,
            settle,
            peek,
            count,
            discard,
            clear_session,
            pending_views,
        ] = self.counters.all().map(|a| a.load(Ordering::SeqCst));
        CallCounts {
            add_all,
            take,
            settle,
            peek,
            count,
            discard,
            clear_session,
            pending_views,
        }
    }

    /// Sets every counter back to zero.
    pub fn reset(&self) {
        for a in self.counters.all() {
            a.store(0, Ordering::SeqCst);
        }
    }
}

fn hit(counter: &AtomicUsize) {
    counter.fetch_add(1, Ordering::SeqCst);
}

#[async_trait]
impl MessageStore for CountingStore {
    async fn add_all(&self, s: &SessionKey, v: &ViewId, m: Vec<Message>) -> Result<()> {
        hit(&self.counters.add_all);
        self.inner.add_all(s, v, m).await
    }
    async fn put_back(&self, s: &SessionKey, v: &ViewId, m: Vec<Message>) -> Result<()> {
        hit(&self.counters.add_all);
        self.inner.put_back(s, v, m).await
    }
    async fn take(&self, s: &SessionKey, v: &ViewId) -> Result<Vec<Message>> {
        hit(&self.counters.take);
        self.inner.take(s, v).await
    }
    async fn take_leased(&self, s: &SessionKey, v: &ViewId) -> Result<Taken> {
        hit(&self.counters.take);
        self.inner.take_leased(s, v).await
    }
    async fn settle(&self, s: &SessionKey, v: &ViewId, lease: Lease) -> Result<()> {
        hit(&self.counters.settle);
        self.inner.settle(s, v, lease).await
    }
    /// Not counted: what it sends was counted as the calls that deferred it.
    async fn flush(&self) -> Result<()> {
        self.inner.flush().await
    }
    async fn peek(&self, s: &SessionKey, v: &ViewId) -> Result<Vec<Message>> {
        hit(&self.counters.peek);
        self.inner.peek(s, v).await
    }
    async fn count(&self, s: &SessionKey, v: &ViewId) -> Result<usize> {
        hit(&self.counters.count);
        self.inner.count(s, v).await
    }
    async fn discard(&self, s: &SessionKey, v: &ViewId) -> Result<()> {
        hit(&self.counters.discard);
        self.inner.discard(s, v).await
    }
    async fn clear_session(&self, s: &SessionKey) -> Result<()> {
        hit(&self.counters.clear_session);
        self.inner.clear_session(s).await
    }
    async fn pending_views(&self, s: &SessionKey) -> Result<Vec<ViewId>> {
        hit(&self.counters.pending_views);
        self.inner.pending_views(s).await
    }

    /// Counted as `clear_session`: one call that rewrites a whole session.
    async fn rotate(&self, from: &SessionKey, to: &SessionKey) -> Result<()> {
        hit(&self.counters.clear_session);
        self.inner.rotate(from, to).await
    }

    /// Not counted: a subscription, no store round trip.
    fn watch(&self, s: &SessionKey, v: &ViewId) -> Option<messages_core::live::Watch> {
        self.inner.watch(s, v)
    }
}
