//! The request semantics (`messages_tests::semantics`), one test per case and storage:
//! `<storage>::<case>`.
//!
//! | module | storage |
//! | --- | --- |
//! | `memory` | `MemoryStore` |
//! | `cookie` | `CookieStore` (default budget) |
//! | `fallback` | `Storage::fallback`: cookie (default budget), then a `MemoryStore` |
//! | `fallback_spilling` | the same with the smallest budget (256 bytes): a few messages already spill |
//! | `redis` | `RedisStore` on the binary's shared `redis-server` |
//! | `fallback_redis` | `Storage::fallback`: cookie (256 bytes), then Redis |
//!
//! Without `redis-server` the Redis modules say SKIPPED (in CI they fail instead).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use messages_core::{
    CookieStore, MemoryStore, MessagesConfig, RedisOptions, RedisStore, Storage, ViewId,
};
use messages_tests::{Browser, CountingStore, shared};

/// The cookie signing key of these tests.
const KEY: &[u8] = b"the signing key of the semantics tests: 32+ bytes";
/// The smallest cookie budget there is: a few messages already spill to the server store.
const SMALLEST_BUDGET: usize = 256;

fn cookie_store() -> CookieStore {
    CookieStore::new([KEY]).unwrap()
}

fn small_cookie_store() -> CookieStore {
    cookie_store().budget(SMALLEST_BUDGET).unwrap()
}

/// A store on the binary's shared `redis-server`, or `None` without one.
async fn redis_store() -> Option<RedisStore> {
    Some(shared::redis()?.store(RedisOptions::default()).await)
}

messages_tests::request_semantics_tests!(memory, || async {
    MessagesConfig::new(MemoryStore::new())
});

messages_tests::request_semantics_tests!(cookie, || async { MessagesConfig::new(cookie_store()) });

messages_tests::request_semantics_tests!(fallback, || async {
    MessagesConfig::new(Storage::fallback(cookie_store(), MemoryStore::new()))
});

messages_tests::request_semantics_tests!(fallback_spilling, || async {
    MessagesConfig::new(Storage::fallback(small_cookie_store(), MemoryStore::new()))
});

messages_tests::request_semantics_tests!(redis, || async {
    Some(MessagesConfig::new(redis_store().await?))
});

messages_tests::request_semantics_tests!(fallback_redis, || async {
    let redis = redis_store().await?;
    Some(MessagesConfig::new(Storage::fallback(
        small_cookie_store(),
        redis,
    )))
});

/// The spilling instances test what they claim: a few posts already reach the server
/// store, and come back from it in order.
#[tokio::test]
async fn with_the_smallest_budget_a_few_posts_spill_to_the_server_store() {
    let server = CountingStore::new(MemoryStore::new());
    let config = MessagesConfig::new(Storage::fallback(small_cookie_store(), server.clone()));
    let view = ViewId::from_static("app::settings");
    let mut b = Browser::new();
    for t in ["one", "two", "three"] {
        b.add(&config, &view, &[t]).await;
    }
    assert!(server.calls() > 0, "nothing spilled");
    assert_eq!(b.read(&config, &view).await, ["one", "two", "three"]);
}
