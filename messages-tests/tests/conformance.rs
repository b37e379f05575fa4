//! The store contract (`messages_tests::conformance`) against `MemoryStore`, one test per
//! case (`memory::<case>`); the Redis runs are in `redis_store.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use messages_core::{MemoryLimits, MemoryStore};

/// A store with the default limits; with `Some(ttl)`, sessions idle for `ttl` expire.
fn memory_store(idle_ttl: Option<Duration>) -> MemoryStore {
    let limits = MemoryLimits::default();
    MemoryStore::with_limits(MemoryLimits {
        idle_ttl: idle_ttl.unwrap_or(limits.idle_ttl),
        ..limits
    })
}

messages_tests::store_conformance_tests!(
    memory,
    |idle_ttl| async move { Some(memory_store(idle_ttl)) },
    MemoryLimits::default().per_context
);
