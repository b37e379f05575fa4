//! The store and the port, chosen by environment variables.

use std::sync::Arc;

use messages_core::Storage;
use messages_core::{
    CookieStore, MemoryLimits, MemoryStore, MessageStore, MessagesConfig, RedisOptions, RedisStore,
};

/// Bytes of the random signing key made when `MESSAGES_KEY` is not set.
const RANDOM_KEY_BYTES: usize = 32;

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `MESSAGES_STORE` names no store this example knows.
    #[error("MESSAGES_STORE={0:?} is not one of memory, cookie, fallback, redis")]
    UnknownStore(String),
    /// `MESSAGES_STORE=redis` without `REDIS_URL`.
    #[error("MESSAGES_STORE=redis needs REDIS_URL (for example redis://127.0.0.1:6379)")]
    RedisUrlMissing,
    /// The OS random source failed while making a signing key.
    #[error("no random signing key could be made: {0}")]
    Random(getrandom::Error),
    /// The store refused its configuration (a `MESSAGES_KEY` shorter than 32 bytes, say).
    #[error(transparent)]
    Store(#[from] messages_core::Error),
    /// `PORT` is not a port number.
    #[error("PORT={value:?} is not a port number: {source}")]
    Port {
        /// The value of `PORT`.
        value: String,
        /// Why it is not a port number.
        source: std::num::ParseIntError,
    },
    /// The port could not be bound (in use, say).
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// The port when `PORT` is not set.
pub const DEFAULT_PORT: u16 = 3000;

/// The port from `PORT` looked up with `var`: [`DEFAULT_PORT`] when it is not set, `0`
/// for any free port.
///
/// # Errors
/// [`ConfigError::Port`] when `PORT` is set to something else than a port number.
pub fn port_from(var: impl Fn(&str) -> Option<String>) -> Result<u16, ConfigError> {
    match var("PORT") {
        Some(value) => value
            .parse::<u16>()
            .map_err(|source| ConfigError::Port { value, source }),
        None => Ok(DEFAULT_PORT),
    }
}

/// The configuration from the process environment; see [`config_from`].
///
/// # Errors
/// As [`config_from`].
pub async fn config_from_env() -> Result<MessagesConfig, ConfigError> {
    config_from(|name| std::env::var(name).ok()).await
}

/// The configuration from variables looked up with `var`:
///
/// - `MESSAGES_STORE`: `memory` (the default), `cookie`, `fallback` (cookie, then memory,
///   or Redis when `REDIS_URL` is set) or `redis` (needs `REDIS_URL`).
/// - `REDIS_URL`: the Redis server, e.g. `redis://127.0.0.1:6379`.
/// - `MESSAGES_KEY`: the cookie signing keys for `cookie` and `fallback`, comma-separated,
///   newest first, each at least 32 bytes. Without it a random key is made for this
///   process (with a warning): cookies then do not survive a restart.
///
/// The memory store keeps up to 200 messages per view, the most `POST /notes` adds.
///
/// # Errors
/// An unknown store, a short key, no randomness for a key, or an unreachable Redis.
pub async fn config_from(
    var: impl Fn(&str) -> Option<String>,
) -> Result<MessagesConfig, ConfigError> {
    let store = var("MESSAGES_STORE").unwrap_or_default();
    let redis_url = var("REDIS_URL").filter(|u| !u.is_empty());
    let config = match store.trim() {
        "" | "memory" => MessagesConfig::new(memory()),
        "cookie" => MessagesConfig::new(cookie(&var)?),
        "fallback" => {
            let server: Arc<dyn MessageStore> = match &redis_url {
                Some(url) => Arc::new(RedisStore::connect(url, redis_options()).await?),
                None => Arc::new(memory()),
            };
            MessagesConfig::new(Storage::fallback(cookie(&var)?, server))
        }
        "redis" => {
            let url = redis_url.ok_or(ConfigError::RedisUrlMissing)?;
            MessagesConfig::new(RedisStore::connect(&url, redis_options()).await?)
        }
        other => return Err(ConfigError::UnknownStore(other.to_owned())),
    };
    Ok(config)
}

fn redis_options() -> RedisOptions {
    RedisOptions {
        per_context: 200,
        ..RedisOptions::default()
    }
}

fn memory() -> MemoryStore {
    MemoryStore::with_limits(MemoryLimits {
        per_context: 200,
        ..MemoryLimits::default()
    })
}

fn cookie(var: &impl Fn(&str) -> Option<String>) -> Result<CookieStore, ConfigError> {
    let keys: Vec<Vec<u8>> = if let Some(keys) = var("MESSAGES_KEY").filter(|k| !k.is_empty()) {
        keys.split(',').map(|k| k.as_bytes().to_vec()).collect()
    } else {
        let mut key = vec![0; RANDOM_KEY_BYTES];
        getrandom::fill(&mut key).map_err(ConfigError::Random)?;
        tracing::warn!(
            "MESSAGES_KEY is not set: signing cookies with a random key; they will not survive a restart"
        );
        vec![key]
    };
    Ok(CookieStore::new(keys)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    fn from(pairs: &[(&str, &str)]) -> Result<MessagesConfig, ConfigError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(config_from(|name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }))
    }

    #[test]
    fn stores_by_name() {
        assert!(from(&[]).unwrap().server_store().is_some());
        assert!(
            from(&[("MESSAGES_STORE", "memory")])
                .unwrap()
                .server_store()
                .is_some()
        );
        assert!(
            from(&[("MESSAGES_STORE", "cookie")])
                .unwrap()
                .server_store()
                .is_none()
        );
        assert!(
            from(&[("MESSAGES_STORE", "fallback")])
                .unwrap()
                .server_store()
                .is_some()
        );
        assert!(matches!(
            from(&[("MESSAGES_STORE", "redis")]),
            Err(ConfigError::RedisUrlMissing)
        ));
        // Nothing listens on port 1: a typed error, not a hang or a panic.
        let err = from(&[
            ("MESSAGES_STORE", "redis"),
            ("REDIS_URL", "redis://127.0.0.1:1"),
        ])
        .unwrap_err();
        assert!(matches!(err, ConfigError::Store(_)), "{err}");
        let Err(ConfigError::UnknownStore(name)) = from(&[("MESSAGES_STORE", "disk")]) else {
            panic!("unknown store accepted")
        };
        assert_eq!(name, "disk");
    }

    #[test]
    fn keys_are_checked() {
        let long = "k".repeat(32);
        assert!(from(&[("MESSAGES_STORE", "cookie"), ("MESSAGES_KEY", &long)]).is_ok());
        let rotated = format!("{long},{}", "o".repeat(40));
        assert!(from(&[("MESSAGES_STORE", "fallback"), ("MESSAGES_KEY", &rotated)]).is_ok());
        let err = from(&[("MESSAGES_STORE", "cookie"), ("MESSAGES_KEY", "short")]).unwrap_err();
        assert!(err.to_string().contains("32"), "{err}");
    }

    #[test]
    fn port_by_name() {
        let port = |value: Option<&str>| port_from(|_| value.map(str::to_owned));
        assert_eq!(port(None).unwrap(), DEFAULT_PORT);
        assert_eq!(port(Some("0")).unwrap(), 0);
        assert_eq!(port(Some("3901")).unwrap(), 3901);
        let err = port(Some("http")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "PORT=\"http\" is not a port number: invalid digit found in string"
        );
        assert!(port(Some("70000")).is_err());
    }
}
