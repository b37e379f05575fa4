//! Shared helpers of the integration tests: a simulated browser, a counting store, the
//! reference model of the semantics, an HTTP client with a cookie jar ([`http`]).

pub mod browser;
pub mod browser_driver;
pub mod conformance;
pub mod counting;
pub mod http;
pub mod model;
pub mod redis_server;
pub mod store_harness;

pub use browser::{Browser, shown_texts};
pub use counting::{CallCounts, CountingStore};
