//! `MemoryStore` under churn: a million sessions, one message each, some read back, with
//! caps of 20 000 messages / 8 MiB. The store's size and the process's resident memory
//! must level off at the caps instead of growing with the number of sessions.
//!
//! One test in its own binary, so no other test allocates while it measures. Figures:
//! `cargo test -p messages-tests --test memory_churn -- --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use messages_core::{MemoryLimits, MemoryStore, Message, MessageStore, SessionKey, ViewId};

const SESSIONS: usize = 1_000_000;
const CHECKPOINT: usize = 200_000;
const MAX_MESSAGES: usize = 20_000;
const MAX_BYTES: usize = 8 << 20;
/// Resident growth allowed between the checkpoint and the end: by then the store is long
/// full, so anything beyond allocator noise would be a leak.
const MAX_GROWTH_MIB: f64 = 8.0;
/// Resident growth allowed over the whole run: the store at its caps, with its real
/// (not estimated) per-message overhead, plus allocator slack.
const MAX_TOTAL_MIB: f64 = 64.0;
/// Sessions whose message is read back: one in three, 1536 sessions later (well within
/// what the caps keep, so every one of them must be delivered).
const READ_EVERY: usize = 3;
const READ_LAG: usize = 512;
/// The first sessions, which the caps must have evicted by the end.
const FIRST: usize = 100;

const VIEWS: [ViewId; 3] = [
    ViewId::from_static("churn::dashboard"),
    ViewId::from_static("churn::settings"),
    ViewId::from_static("churn::upload"),
];

/// Resident memory of this process (`VmRSS`), in MiB.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    kib / 1024.0
}

#[tokio::test(flavor = "current_thread")]
async fn a_million_sessions_stay_within_the_caps() {
    let store = MemoryStore::with_limits(MemoryLimits {
        per_context: 100,
        max_messages: MAX_MESSAGES,
        max_bytes: MAX_BYTES,
        idle_ttl: Duration::from_secs(3600),
        ..MemoryLimits::default()
    });
    // One message in five is long, so the byte cap is what binds.
    let long = "L".repeat(2000);
    let started = Instant::now();
    let rss_start = rss_mib();
    let mut recent: VecDeque<(SessionKey, usize)> = VecDeque::with_capacity(READ_LAG + 1);
    let mut first: Vec<(SessionKey, usize)> = Vec::with_capacity(FIRST);
    let (mut read, mut delivered, mut max_len) = (0usize, 0usize, 0usize);
    let mut rss_checkpoint = 0.0;
    for i in 0..SESSIONS {
        let session = SessionKey::generate().unwrap();
        let text = if i % 5 == 0 {
            long.clone()
        } else {
            format!("message {i}")
        };
        store
            .add(&session, &VIEWS[i % VIEWS.len()], Message::info(text))
            .await
            .unwrap();
        if i < FIRST {
            first.push((session.clone(), i % VIEWS.len()));
        }
        if i % READ_EVERY == 0 {
            recent.push_back((session, i % VIEWS.len()));
            if recent.len() > READ_LAG {
                let (old, view) = recent.pop_front().unwrap();
                read += 1;
                delivered += store.take(&old, &VIEWS[view]).await.unwrap().len();
            }
        }
        if i % 10_000 == 0 {
            max_len = max_len.max(store.len());
        }
        if i + 1 == CHECKPOINT {
            rss_checkpoint = rss_mib();
        }
    }
    let rss_end = rss_mib();
    let len = store.len();
    max_len = max_len.max(len);
    println!(
        "memory_churn: {SESSIONS} sessions in {:.1?}; store holds {len} messages (most seen {max_len}, cap {MAX_MESSAGES}); \
         {read} read back, {delivered} delivered; VmRSS start {rss_start:.1} MiB, after {CHECKPOINT} sessions \
         {rss_checkpoint:.1} MiB, after {SESSIONS} {rss_end:.1} MiB (growth {:.1} MiB, cap {MAX_GROWTH_MIB})",
        started.elapsed(),
        rss_end - rss_checkpoint,
    );

    assert!(max_len <= MAX_MESSAGES, "message cap broken: {max_len}");
    assert_eq!(delivered, read, "a recent message was lost");
    for (session, view) in &first {
        assert_eq!(
            store.count(session, &VIEWS[*view]).await.unwrap(),
            0,
            "the least recently written sessions are evicted"
        );
    }
    for (session, view) in &recent {
        assert_eq!(store.count(session, &VIEWS[*view]).await.unwrap(), 1);
    }
    assert!(
        rss_end - rss_checkpoint < MAX_GROWTH_MIB,
        "resident memory kept growing: {rss_checkpoint:.1} -> {rss_end:.1} MiB"
    );
    assert!(
        rss_end - rss_start < MAX_TOTAL_MIB,
        "resident memory over the caps: {rss_start:.1} -> {rss_end:.1} MiB"
    );
}
