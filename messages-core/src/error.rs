//! Errors.

/// What can go wrong in this crate.
///
/// Reading messages never fails a page: the request context logs read errors and shows no
/// messages. Errors reach the caller where the caller can act on them: adding out of band
/// ([`MessageStore::add`](crate::MessageStore::add)), flushing a request's adds
/// ([`Messages::flush`](crate::Messages::flush)), and configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The OS random source failed, so no session key could be made.
    #[error("OS random source failed: {0}")]
    Random(String),
    /// The store's backend (a Redis server, say) could not be reached or answered with an
    /// error. Transient: the store reconnects by itself.
    #[error("message store {store} unavailable")]
    Unavailable {
        /// Which store.
        store: &'static str,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Data read from a store could not be decoded.
    #[error("stored messages could not be decoded")]
    Decode(#[from] serde_json::Error),
    /// A configuration value was refused (a signing key shorter than 32 bytes, say).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A string is not a valid view id.
    #[error(transparent)]
    InvalidViewId(#[from] crate::InvalidViewId),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
