//! The [`MessageStore`] contract, written once and run against every backend
//! ([`MemoryStore`](messages_core::MemoryStore), `RedisStore` on one server and on Redis
//! Cluster): bound, ordered by arrival, put back first, exactly once under concurrency,
//! capped oldest-first, discard, session clearing, pending views, idle expiry.
//!
//! [`store_conformance_tests!`](crate::store_conformance_tests) makes one test per case
//! for a backend, so one failing case does not hide the others:
//!
//! ```no_run
//! use std::time::Duration;
//! use messages_core::{MemoryLimits, MemoryStore};
//!
//! /// The store under test; with `Some(ttl)`, one whose idle TTL is `ttl`.
//! fn memory_store(idle_ttl: Option<Duration>) -> MemoryStore {
//!     let limits = MemoryLimits::default();
//!     let idle_ttl = idle_ttl.unwrap_or(limits.idle_ttl);
//!     MemoryStore::with_limits(MemoryLimits { idle_ttl, ..limits })
//! }
//!
//! // Tests `memory::bound_to_session_and_view`, `memory::ordered_by_arrival`, ...
//! messages_tests::store_conformance_tests!(
//!     memory,
//!     |idle_ttl| async move { Some(memory_store(idle_ttl)) },
//!     MemoryLimits::default().per_context
//! );
//! # fn main() {}
//! ```
//!
//! Every case uses fresh random sessions, so the suite can run on a store that holds
//! other data (a server shared by the tests of a binary, say). The concurrency case runs
//! on a multi-threaded runtime, at full strength when the store's per-context cap is at
//! least [`CONCURRENT_ADDS`].
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::missing_panics_doc
)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use messages_core::{Message, MessageId, MessageStore, SessionKey, ViewId};

/// Tasks taking one context at once in [`exactly_once_under_concurrency`].
pub const TAKERS: usize = 16;
/// Messages added while they take (bounded by the store's cap).
pub const CONCURRENT_ADDS: usize = 64;

fn session() -> SessionKey {
    SessionKey::generate().unwrap()
}

/// The texts of `messages`, in order.
pub fn texts(messages: &[Message]) -> Vec<String> {
    messages.iter().map(|m| m.text().to_owned()).collect()
}

const A: ViewId = ViewId::from_static("app::a");
const B: ViewId = ViewId::from_static("app::b");
const C: ViewId = ViewId::from_static("app::c");

/// The idle TTL of the store [`idle_expiry`] runs on (the macro asks the backend for a
/// store with this TTL).
pub const IDLE_TTL: Duration = Duration::from_millis(200);

/// `store` behind an `Arc` (not a second one around an `Arc`).
pub fn shared(store: impl MessageStore) -> Arc<dyn MessageStore> {
    store.into_shared()
}

/// One test per case of the store contract, in a module `$name`.
///
/// `$make` is an async function (or a closure returning a future) of
/// `Option<Duration>`, the idle TTL the case needs (`None`: the backend's usual store;
/// `Some(ttl)` for [`idle_expiry`]: a store whose sessions expire `ttl` after their last
/// write), returning `Option<impl MessageStore>`: `None` skips the case (a backend that
/// is not installed here). `$per_context` is the store's per-context cap. Paths in both
/// are resolved in the calling module (the module made has `use super::*`).
///
/// Each test runs on its own tokio runtime (the concurrency case on a multi-threaded
/// one) and asks `$make` for its own store; see [`conformance`](crate::conformance). A
/// new case of the contract is a `pub async fn` of that module and one line here.
#[macro_export]
macro_rules! store_conformance_tests {
    ($name:ident, $make:expr, $per_context:expr $(,)?) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            /// The store of one case, or `None` to skip it.
            async fn store_for_case(
                idle_ttl: ::std::option::Option<::std::time::Duration>,
            ) -> ::std::option::Option<
                ::std::sync::Arc<dyn $crate::__private::messages_core::MessageStore>,
            > {
                let store = ($make)(idle_ttl).await?;
                ::std::option::Option::Some($crate::conformance::shared(store))
            }

            $crate::__store_conformance_case!(bound_to_session_and_view);
            $crate::__store_conformance_case!(ordered_by_arrival);
            $crate::__store_conformance_case!(put_back_goes_before_newer_messages);
            $crate::__store_conformance_case!(exactly_once_in_sequence);
            $crate::__store_conformance_case!(readding_a_message_does_not_duplicate_it);
            $crate::__store_conformance_case!(discard_removes_one_view);
            $crate::__store_conformance_case!(clear_session_removes_every_view);
            $crate::__store_conformance_case!(pending_views_lists_views_with_messages);

            #[tokio::test]
            async fn cap_drops_oldest() {
                let Some(store) = store_for_case(None).await else {
                    return;
                };
                $crate::conformance::cap_drops_oldest(&*store, $per_context).await;
            }

            #[tokio::test]
            async fn batches_skip_stored_ids_and_keep_the_cap() {
                let Some(store) = store_for_case(None).await else {
                    return;
                };
                $crate::conformance::batches_skip_stored_ids_and_keep_the_cap(
                    &*store,
                    $per_context,
                )
                .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn exactly_once_under_concurrency() {
                let Some(store) = store_for_case(None).await else {
                    return;
                };
                $crate::conformance::exactly_once_under_concurrency(&store, $per_context).await;
            }

            #[tokio::test]
            async fn idle_expiry() {
                let ttl = $crate::conformance::IDLE_TTL;
                let Some(store) = store_for_case(Some(ttl)).await else {
                    return;
                };
                $crate::conformance::idle_expiry(&*store, ttl).await;
            }
        }
    };
}

/// One test of [`store_conformance_tests!`]: a case taking only the store.
#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_case {
    ($case:ident) => {
        #[tokio::test]
        async fn $case() {
            let Some(store) = store_for_case(None).await else {
                return;
            };
            $crate::conformance::$case(&*store).await;
        }
    };
}

/// A message is only returned for the (session, view) it was added to.
pub async fn bound_to_session_and_view(store: &dyn MessageStore) {
    let (s1, s2) = (session(), session());
    store.add(&s1, &A, Message::info("for s1 a")).await.unwrap();
    assert!(store.take(&s1, &B).await.unwrap().is_empty(), "other view");
    assert!(
        store.take(&s2, &A).await.unwrap().is_empty(),
        "other session"
    );
    assert_eq!(store.count(&s2, &A).await.unwrap(), 0);
    assert!(store.peek(&s2, &A).await.unwrap().is_empty());
    assert_eq!(texts(&store.take(&s1, &A).await.unwrap()), ["for s1 a"]);
    assert!(store.take(&s1, &A).await.unwrap().is_empty());
    // Nothing to add is not an error and stores nothing.
    store.add_all(&s1, &A, Vec::new()).await.unwrap();
    assert!(store.pending_views(&s1).await.unwrap().is_empty());
}

/// Messages come back in the order they arrived in the store — never by `created_at`
/// (the clock of whichever application server made them: two servers' clocks may
/// disagree, or one may step back) — and one `add_all` keeps its order.
pub async fn ordered_by_arrival(store: &dyn MessageStore) {
    let s = session();
    let now = Message::info("clock").created_at();
    let (ahead, behind) = (now + 60_000, now - 60_000);
    store
        .add(&s, &A, Message::info("a").with_created_at(ahead))
        .await
        .unwrap();
    store
        .add(&s, &A, Message::info("b").with_created_at(behind))
        .await
        .unwrap();
    let batch = vec![
        Message::info("c").with_created_at(ahead),
        Message::info("d").with_created_at(behind),
        Message::info("e").with_created_at(now),
    ];
    store.add_all(&s, &A, batch).await.unwrap();
    store.add(&s, &A, Message::info("f")).await.unwrap();
    let all = ["a", "b", "c", "d", "e", "f"];
    assert_eq!(texts(&store.peek(&s, &A).await.unwrap()), all);
    assert_eq!(store.count(&s, &A).await.unwrap(), all.len());

    // One batch keeps its order, even against the ids' and the timestamps' order.
    let made: Vec<Message> = (0..20)
        .map(|i| Message::info(format!("t{i:02}")).with_created_at(5_000 + (i % 3)))
        .collect();
    let mut shuffled = made;
    shuffled.reverse();
    shuffled.swap(3, 11);
    let want: Vec<MessageId> = shuffled.iter().map(Message::id).collect();
    store.add_all(&s, &B, shuffled).await.unwrap();
    let got: Vec<MessageId> = store
        .take(&s, &B)
        .await
        .unwrap()
        .iter()
        .map(Message::id)
        .collect();
    assert_eq!(got, want, "a batch comes back in the order given");
    assert_eq!(texts(&store.take(&s, &A).await.unwrap()), all);
}

/// Messages a request took and did not show go back before everything the context
/// holds now (all of it arrived after they were taken), in the order given, and a
/// message already there (same id) is not added twice.
pub async fn put_back_goes_before_newer_messages(store: &dyn MessageStore) {
    let s = session();
    let now = Message::info("clock").created_at();
    store
        .add_all(
            &s,
            &A,
            vec![
                Message::info("a").with_created_at(now + 60_000),
                Message::info("b").with_created_at(now - 60_000),
            ],
        )
        .await
        .unwrap();
    let taken = store.take(&s, &A).await.unwrap();
    assert_eq!(texts(&taken), ["a", "b"]);
    store
        .add(&s, &A, Message::info("c").with_created_at(now - 120_000))
        .await
        .unwrap();
    store.put_back(&s, &A, taken.clone()).await.unwrap();
    assert_eq!(texts(&store.peek(&s, &A).await.unwrap()), ["a", "b", "c"]);
    // Already present: nothing added, nothing moved.
    store
        .put_back(&s, &A, vec![taken[1].clone()])
        .await
        .unwrap();
    assert_eq!(texts(&store.peek(&s, &A).await.unwrap()), ["a", "b", "c"]);
    store.add(&s, &A, Message::info("d")).await.unwrap();
    assert_eq!(
        texts(&store.take(&s, &A).await.unwrap()),
        ["a", "b", "c", "d"]
    );

    // Into an empty context: in the order given, before what is added next.
    let back = vec![
        Message::info("x").with_created_at(now + 60_000),
        Message::info("y").with_created_at(now - 60_000),
    ];
    store.put_back(&s, &B, back).await.unwrap();
    store.add(&s, &B, Message::info("z")).await.unwrap();
    assert_eq!(texts(&store.take(&s, &B).await.unwrap()), ["x", "y", "z"]);
    // Nothing to put back stores nothing.
    store.put_back(&s, &C, Vec::new()).await.unwrap();
    assert!(store.pending_views(&s).await.unwrap().is_empty());
}

/// Peek and count do not consume; take does, once.
pub async fn exactly_once_in_sequence(store: &dyn MessageStore) {
    let s = session();
    let m = Message::warning("once")
        .with_title("t")
        .with_tag("x")
        .with_autoclose(true);
    store.add(&s, &A, m.clone()).await.unwrap();
    assert_eq!(store.peek(&s, &A).await.unwrap(), std::slice::from_ref(&m));
    assert_eq!(store.count(&s, &A).await.unwrap(), 1);
    assert_eq!(
        store.take(&s, &A).await.unwrap(),
        [m],
        "the message round-trips whole"
    );
    assert!(store.take(&s, &A).await.unwrap().is_empty());
    assert_eq!(store.count(&s, &A).await.unwrap(), 0);
}

/// Ids are unique: adding the same message twice stores it once.
pub async fn readding_a_message_does_not_duplicate_it(store: &dyn MessageStore) {
    let s = session();
    let m = Message::info("same");
    store.add(&s, &A, m.clone()).await.unwrap();
    store.add(&s, &A, m.clone()).await.unwrap();
    assert_eq!(store.take(&s, &A).await.unwrap(), [m]);
}

/// Beyond the cap the oldest go, by one add at a time and by one large batch.
pub async fn cap_drops_oldest(store: &dyn MessageStore, per_context: usize) {
    let s = session();
    let extra = 3;
    let all: Vec<String> = (0..per_context + extra)
        .map(|i| format!("m{i:04}"))
        .collect();
    for t in &all {
        store.add(&s, &A, Message::info(t.clone())).await.unwrap();
    }
    assert_eq!(store.count(&s, &A).await.unwrap(), per_context);
    assert_eq!(
        texts(&store.take(&s, &A).await.unwrap()),
        all[extra..],
        "one by one"
    );

    let batch: Vec<Message> = all.iter().map(|t| Message::info(t.clone())).collect();
    store.add_all(&s, &B, batch).await.unwrap();
    assert_eq!(
        texts(&store.take(&s, &B).await.unwrap()),
        all[extra..],
        "in one batch"
    );
}

/// A batch holding a message already stored adds the others once, after it; a batch that
/// crosses the cap from a partly filled context keeps the newest. (The SQL stores add in
/// a light statement when the context has room and no id is there, and otherwise in the
/// full one: this crosses between them.)
pub async fn batches_skip_stored_ids_and_keep_the_cap(
    store: &dyn MessageStore,
    per_context: usize,
) {
    let s = session();
    let old = Message::info("old");
    store.add(&s, &A, old.clone()).await.unwrap();
    let batch = vec![old, Message::info("new1"), Message::info("new2")];
    store.add_all(&s, &A, batch.clone()).await.unwrap();
    store.add_all(&s, &A, batch).await.unwrap();
    assert_eq!(
        texts(&store.take(&s, &A).await.unwrap()),
        ["old", "new1", "new2"]
    );

    let all: Vec<String> = (0..per_context + 2).map(|i| format!("m{i:04}")).collect();
    for t in &all[..per_context - 1] {
        store.add(&s, &B, Message::info(t.clone())).await.unwrap();
    }
    let over: Vec<Message> = all[per_context - 1..]
        .iter()
        .map(|t| Message::info(t.clone()))
        .collect();
    store.add_all(&s, &B, over).await.unwrap();
    assert_eq!(texts(&store.take(&s, &B).await.unwrap()), all[2..]);
}

/// Discard drops one context unread and leaves the others.
pub async fn discard_removes_one_view(store: &dyn MessageStore) {
    let s = session();
    store.add(&s, &A, Message::info("a")).await.unwrap();
    store.add(&s, &B, Message::info("b")).await.unwrap();
    store.discard(&s, &A).await.unwrap();
    assert!(store.take(&s, &A).await.unwrap().is_empty());
    assert_eq!(store.pending_views(&s).await.unwrap(), [B]);
    assert_eq!(texts(&store.take(&s, &B).await.unwrap()), ["b"]);
    // Discarding what is not there is fine.
    store.discard(&s, &C).await.unwrap();
}

/// Clearing a session removes all its views and nothing of other sessions.
pub async fn clear_session_removes_every_view(store: &dyn MessageStore) {
    let (s, other) = (session(), session());
    for v in [&A, &B, &C] {
        store.add(&s, v, Message::info(v.as_str())).await.unwrap();
    }
    store.add(&other, &A, Message::info("other")).await.unwrap();
    store.clear_session(&s).await.unwrap();
    for v in [&A, &B, &C] {
        assert!(store.take(&s, v).await.unwrap().is_empty(), "{v} cleared");
    }
    assert!(store.pending_views(&s).await.unwrap().is_empty());
    assert_eq!(texts(&store.take(&other, &A).await.unwrap()), ["other"]);
    // The session can be used again.
    store.add(&s, &A, Message::info("again")).await.unwrap();
    assert_eq!(texts(&store.take(&s, &A).await.unwrap()), ["again"]);
    store.clear_session(&session()).await.unwrap();
}

/// Pending views: sorted, exactly the views holding messages.
pub async fn pending_views_lists_views_with_messages(store: &dyn MessageStore) {
    let s = session();
    assert!(store.pending_views(&s).await.unwrap().is_empty());
    for v in [&C, &A, &B] {
        store.add(&s, v, Message::info("x")).await.unwrap();
    }
    assert_eq!(store.pending_views(&s).await.unwrap(), [A, B, C]);
    store.take(&s, &B).await.unwrap();
    assert_eq!(store.pending_views(&s).await.unwrap(), [A, C]);
    // An empty take of a view does not disturb the others.
    store.take(&s, &B).await.unwrap();
    assert_eq!(store.pending_views(&s).await.unwrap(), [A, C]);
    assert!(store.pending_views(&session()).await.unwrap().is_empty());
}

/// [`TAKERS`] tasks take one context at once while messages are added: every message is
/// delivered exactly once in total, and each take returns its messages in order.
pub async fn exactly_once_under_concurrency(store: &Arc<dyn MessageStore>, per_context: usize) {
    let s = session();
    let adds = CONCURRENT_ADDS.min(per_context);
    let messages: Vec<Message> = (0..adds).map(|i| Message::info(format!("c{i}"))).collect();
    // Where each message is in the order of the adds.
    let position: Arc<HashMap<MessageId, usize>> = Arc::new(
        messages
            .iter()
            .enumerate()
            .map(|(i, m)| (m.id(), i))
            .collect(),
    );
    let done = Arc::new(AtomicBool::new(false));
    let takers: Vec<_> = (0..TAKERS)
        .map(|_| {
            let (store, s, done) = (Arc::clone(store), s.clone(), Arc::clone(&done));
            let position = Arc::clone(&position);
            tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let finished = done.load(Ordering::Acquire);
                    let batch = store.take(&s, &A).await.unwrap();
                    let at: Vec<Option<usize>> = batch
                        .iter()
                        .map(|m| position.get(&m.id()).copied())
                        .collect();
                    assert!(
                        at.windows(2).all(|w| w[0] < w[1]),
                        "one take is in the order of the adds: {at:?}"
                    );
                    got.extend(batch.iter().map(Message::id));
                    if finished {
                        return got;
                    }
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let mut added = Vec::with_capacity(adds);
    for (i, m) in messages.into_iter().enumerate() {
        added.push(m.id());
        store.add(&s, &A, m).await.unwrap();
        if i % 8 == 0 {
            tokio::task::yield_now().await;
        }
    }
    done.store(true, Ordering::Release);
    let mut seen: HashMap<MessageId, usize> = HashMap::new();
    let mut takers_with_messages = 0;
    for t in takers {
        let got = t.await.unwrap();
        takers_with_messages += usize::from(!got.is_empty());
        for id in got {
            *seen.entry(id).or_default() += 1;
        }
    }
    for id in &added {
        assert_eq!(
            seen.get(id).copied(),
            Some(1),
            "message {id} delivered exactly once"
        );
    }
    assert_eq!(
        seen.len(),
        added.len(),
        "nothing delivered that was not added"
    );
    assert!(takers_with_messages >= 1);
    assert!(store.take(&s, &A).await.unwrap().is_empty());
}

/// A context expires `ttl` after its last write, and a write refreshes it: `store` must
/// have an idle TTL of `ttl` (200 ms, say). Sleeps about 3 × `ttl`; retries when the
/// machine was too slow for the timing to prove anything.
pub async fn idle_expiry(store: &dyn MessageStore, ttl: Duration) {
    for _ in 0..5 {
        if idle_expiry_once(store, ttl).await {
            return;
        }
    }
    panic!("idle expiry could not be checked: every attempt overslept");
}

/// One attempt; false when a sleep overshot so far that the result proves nothing.
async fn idle_expiry_once(store: &dyn MessageStore, ttl: Duration) -> bool {
    let s = session();
    let add_started = Instant::now();
    store.add(&s, &A, Message::info("first")).await.unwrap();
    let first_written = Instant::now();
    tokio::time::sleep(ttl * 7 / 10).await;
    let refresh_started = Instant::now();
    store.add(&s, &A, Message::info("second")).await.unwrap();
    let refreshed = Instant::now();
    if refreshed >= add_started + ttl {
        // The first write may have expired before the refresh reached the store.
        return false;
    }
    // Past the first write's expiry, well before the refreshed one.
    tokio::time::sleep((first_written + ttl * 23 / 20).saturating_duration_since(Instant::now()))
        .await;
    let read_started = Instant::now();
    let count = store.count(&s, &A).await.unwrap();
    let views = store.pending_views(&s).await.unwrap();
    let read_done = Instant::now();
    if read_started < first_written + ttl || read_done >= refresh_started + ttl {
        return false;
    }
    assert_eq!(count, 2, "a write refreshes the context's TTL");
    assert_eq!(views, [A]);
    tokio::time::sleep((refreshed + ttl * 3 / 2).saturating_duration_since(Instant::now())).await;
    assert_eq!(
        store.count(&s, &A).await.unwrap(),
        0,
        "idle context expired"
    );
    assert!(store.take(&s, &A).await.unwrap().is_empty());
    assert!(store.pending_views(&s).await.unwrap().is_empty());
    true
}
