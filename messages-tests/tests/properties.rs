//! The semantics of DESIGN.md checked against a reference model, for every storage.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use messages_core::Storage;
use messages_core::{CookieStore, MemoryLimits, MemoryStore, MessagesConfig};
use messages_tests::model::{check, ops};
use proptest::prelude::*;

const CASES: u32 = 2000;
const BROWSERS: usize = 3;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn cookie_store() -> CookieStore {
    CookieStore::new(vec![b"0123456789abcdef0123456789abcdef-test".to_vec()]).unwrap()
}

proptest! {
    #![proptest_config(messages_tests::model::config(CASES))]

    #[test]
    fn memory_store_follows_the_model(ops in ops(BROWSERS, 40)) {
        let config = MessagesConfig::new(MemoryStore::new());
        rt().block_on(check(&config, &ops, BROWSERS, usize::MAX))?;
    }

    #[test]
    fn memory_store_cap_drops_oldest(ops in ops(BROWSERS, 40)) {
        let config = MessagesConfig::new(MemoryStore::with_limits(MemoryLimits { per_context: 4, ..MemoryLimits::default() }));
        rt().block_on(check(&config, &ops, BROWSERS, 4))?;
    }

    // Exactly-once for sequential requests of one browser; the byte budget is large
    // enough here that nothing is dropped (dropping is checked in cookie_store.rs).
    #[test]
    fn cookie_store_follows_the_model(ops in ops(BROWSERS, 25)) {
        let config = MessagesConfig::new(cookie_store().budget(CookieStore::MAX_BUDGET).unwrap());
        rt().block_on(check(&config, &ops, BROWSERS, usize::MAX))?;
    }

    // The smallest budget: most requests spill to the server store and read it back.
    #[test]
    fn fallback_store_follows_the_model_when_spilling(ops in ops(BROWSERS, 40)) {
        let config = MessagesConfig::new(Storage::fallback(cookie_store().budget(256).unwrap(), MemoryStore::new()));
        rt().block_on(check(&config, &ops, BROWSERS, usize::MAX))?;
    }

    #[test]
    fn fallback_store_follows_the_model(ops in ops(BROWSERS, 40)) {
        let config = MessagesConfig::new(Storage::fallback(cookie_store(), MemoryStore::new()));
        rt().block_on(check(&config, &ops, BROWSERS, usize::MAX))?;
    }
}
