//! The store contract (`messages_tests::conformance`) against `MemoryStore`; the Redis
//! runs are in `redis_store.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use messages_core::{MemoryLimits, MemoryStore};
use messages_tests::conformance;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_follows_the_store_contract() {
    let limits = MemoryLimits::default();
    conformance::run(
        Arc::new(MemoryStore::with_limits(limits)),
        limits.per_context,
    )
    .await;
    let ttl = Duration::from_millis(200);
    let short = MemoryStore::with_limits(MemoryLimits {
        idle_ttl: ttl,
        ..limits
    });
    conformance::idle_expiry(&short, ttl).await;
}
