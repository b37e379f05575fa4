//! The store and the port, chosen by environment variables.

use std::path::PathBuf;
use std::sync::Arc;

use messages_core::Storage;
use messages_core::{
    CookieStore, MemoryLimits, MemoryStore, MessageStore, MessagesConfig, PostgresStore,
    RedisOptions, RedisStore, SqlOptions, SqliteStore,
};

/// Bytes of the random signing key made when `MESSAGES_KEY` is not set.
const RANDOM_KEY_BYTES: usize = 32;

/// Most messages a server store keeps per view: the most `POST /notes` adds.
const PER_CONTEXT: usize = 200;

/// The SQLite file of `MESSAGES_STORE=sqlite` without `DATABASE_URL`, next to the binary.
pub const DEFAULT_SQLITE_FILE: &str = "messages.db";

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `MESSAGES_STORE` names no store this example knows.
    #[error("MESSAGES_STORE={0:?} is not one of memory, cookie, fallback, redis, postgres, sqlite")]
    UnknownStore(String),
    /// `MESSAGES_STORE=redis` without `REDIS_URL`.
    #[error("MESSAGES_STORE=redis needs REDIS_URL (for example redis://127.0.0.1:6379)")]
    RedisUrlMissing,
    /// `MESSAGES_STORE=postgres` without `DATABASE_URL`.
    #[error(
        "MESSAGES_STORE=postgres needs DATABASE_URL (for example postgres://app@127.0.0.1:5432/app)"
    )]
    DatabaseUrlMissing,
    /// `MESSAGES_STORE=sqlite` without `DATABASE_URL`, and the directory of the running
    /// binary (where the default file goes) is unknown.
    #[error(
        "MESSAGES_STORE=sqlite without DATABASE_URL: the directory of the running binary is unknown: {source}"
    )]
    BinaryDir {
        /// Why it is unknown.
        source: std::io::Error,
    },
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
///   or Redis when `REDIS_URL` is set), `redis` (needs `REDIS_URL`), `postgres` (needs
///   `DATABASE_URL`) or `sqlite`.
/// - `REDIS_URL`: the Redis server, e.g. `redis://127.0.0.1:6379`.
/// - `DATABASE_URL`: for `postgres` the server, e.g. `postgres://app@127.0.0.1:5432/app`;
///   for `sqlite` the file, as a URL (`sqlite:///var/lib/app/messages.db`) or a path,
///   created if missing. Without it `sqlite` uses [`DEFAULT_SQLITE_FILE`] in the
///   directory of the running binary ([`default_sqlite_path`]).
/// - `MESSAGES_KEY`: the cookie signing keys for `cookie` and `fallback`, comma-separated,
///   newest first, each at least 32 bytes. Without it a random key is made for this
///   process (with a warning): cookies then do not survive a restart.
///
/// Every server store keeps up to 200 messages per view, the most `POST /notes` adds. The
/// SQL stores create their tables if they are missing (`migrate`) before the
/// configuration is returned.
///
/// # Errors
/// An unknown store, a missing URL, a short key, no randomness for a key, or an
/// unreachable Redis or database.
pub async fn config_from(
    var: impl Fn(&str) -> Option<String>,
) -> Result<MessagesConfig, ConfigError> {
    let store = var("MESSAGES_STORE").unwrap_or_default();
    let redis_url = var("REDIS_URL").filter(|u| !u.is_empty());
    let database_url = var("DATABASE_URL").filter(|u| !u.is_empty());
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
        "postgres" => {
            let url = database_url.ok_or(ConfigError::DatabaseUrlMissing)?;
            let store = PostgresStore::connect(&url, sql_options()).await?;
            store.migrate().await?;
            MessagesConfig::new(store)
        }
        "sqlite" => {
            let store = match database_url {
                Some(url) if url.starts_with("sqlite:") => {
                    SqliteStore::connect(&created_if_missing(url), sql_options()).await?
                }
                Some(path) => SqliteStore::open(path, sql_options()).await?,
                None => SqliteStore::open(default_sqlite_path()?, sql_options()).await?,
            };
            store.migrate().await?;
            MessagesConfig::new(store)
        }
        other => return Err(ConfigError::UnknownStore(other.to_owned())),
    };
    Ok(config)
}

/// [`DEFAULT_SQLITE_FILE`] in the directory of the running binary
/// (`std::env::current_exe()`): where `MESSAGES_STORE=sqlite` keeps its messages without
/// `DATABASE_URL`.
///
/// # Errors
/// [`ConfigError::BinaryDir`] when the binary's path is unknown.
pub fn default_sqlite_path() -> Result<PathBuf, ConfigError> {
    let exe = std::env::current_exe().map_err(|source| ConfigError::BinaryDir { source })?;
    let dir = exe.parent().ok_or_else(|| ConfigError::BinaryDir {
        source: std::io::Error::other(format!("{} has no parent directory", exe.display())),
    })?;
    Ok(dir.join(DEFAULT_SQLITE_FILE))
}

/// A `sqlite:` URL that creates its file if missing (`mode=rwc`), unless it says a
/// `mode` of its own.
fn created_if_missing(url: String) -> String {
    match url.split_once('?') {
        Some((_, query)) if query.split('&').any(|p| p.starts_with("mode=")) => url,
        Some(_) => format!("{url}&mode=rwc"),
        None => format!("{url}?mode=rwc"),
    }
}

fn redis_options() -> RedisOptions {
    RedisOptions {
        per_context: PER_CONTEXT,
        ..RedisOptions::default()
    }
}

fn sql_options() -> SqlOptions {
    SqlOptions {
        per_context: PER_CONTEXT,
        ..SqlOptions::default()
    }
}

fn memory() -> MemoryStore {
    MemoryStore::with_limits(MemoryLimits {
        per_context: PER_CONTEXT,
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
        let err = from(&[("MESSAGES_STORE", "disk")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "MESSAGES_STORE=\"disk\" is not one of memory, cookie, fallback, redis, postgres, sqlite"
        );
        let ConfigError::UnknownStore(name) = err else {
            panic!("unknown store accepted")
        };
        assert_eq!(name, "disk");
    }

    #[test]
    fn postgres_needs_a_reachable_database_url() {
        let err = from(&[("MESSAGES_STORE", "postgres")]).unwrap_err();
        assert!(matches!(err, ConfigError::DatabaseUrlMissing), "{err}");
        assert!(err.to_string().contains("DATABASE_URL"), "{err}");
        // An empty DATABASE_URL is no URL; REDIS_URL is not a database.
        let err = from(&[
            ("MESSAGES_STORE", "postgres"),
            ("DATABASE_URL", ""),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
        ])
        .unwrap_err();
        assert!(matches!(err, ConfigError::DatabaseUrlMissing), "{err}");
        // Nothing listens on port 1: a typed error, not a hang or a panic.
        let err = from(&[
            ("MESSAGES_STORE", "postgres"),
            ("DATABASE_URL", "postgres://app@127.0.0.1:1/app"),
        ])
        .unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Store(messages_core::Error::Unavailable {
                    store: "postgres",
                    ..
                })
            ),
            "{err}"
        );
        let err = from(&[
            ("MESSAGES_STORE", "postgres"),
            ("DATABASE_URL", "postgres://app@127.0.0.1:port/app"),
        ])
        .unwrap_err();
        assert!(
            matches!(err, ConfigError::Store(messages_core::Error::Config(_))),
            "{err}"
        );
    }

    /// Adds a message through the configuration's store, then opens the same
    /// `DATABASE_URL` again and finds it there.
    fn sqlite_keeps_messages(database_url: &str, file: &std::path::Path) {
        use messages_core::{Message, SessionKey, ViewId};
        let vars = [("MESSAGES_STORE", "sqlite"), ("DATABASE_URL", database_url)];
        let (session, view) = (SessionKey::generate().unwrap(), ViewId::from_static("t::v"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let store = from(&vars).unwrap().server_store().unwrap();
        rt.block_on(store.add(&session, &view, Message::info("kept")))
            .unwrap();
        drop(store);
        assert!(file.is_file(), "{} not created", file.display());
        let store = from(&vars).unwrap().server_store().unwrap();
        let taken = rt.block_on(store.take(&session, &view)).unwrap();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].text(), "kept");
    }

    #[test]
    fn sqlite_on_a_file_by_path_or_url() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("by-path.db");
        sqlite_keeps_messages(path.to_str().unwrap(), &path);
        let path = dir.path().join("by-url.db");
        sqlite_keeps_messages(&format!("sqlite://{}", path.display()), &path);
        // A directory that does not exist: a typed error.
        let missing = dir.path().join("no/such/dir/messages.db");
        let err = from(&[
            ("MESSAGES_STORE", "sqlite"),
            ("DATABASE_URL", missing.to_str().unwrap()),
        ])
        .unwrap_err();
        assert!(matches!(err, ConfigError::Store(_)), "{err}");
    }

    #[test]
    fn sqlite_defaults_to_a_file_next_to_the_binary() {
        let path = default_sqlite_path().unwrap();
        assert_eq!(path.file_name().unwrap(), DEFAULT_SQLITE_FILE);
        let exe = std::env::current_exe().unwrap();
        assert_eq!(path.parent(), exe.parent());
    }

    #[test]
    fn sqlite_urls_create_their_file_unless_they_say_a_mode() {
        let url = |u: &str| created_if_missing(u.to_owned());
        assert_eq!(url("sqlite:///a/b.db"), "sqlite:///a/b.db?mode=rwc");
        assert_eq!(
            url("sqlite:///a/b.db?cache=shared"),
            "sqlite:///a/b.db?cache=shared&mode=rwc"
        );
        assert_eq!(url("sqlite:///a/b.db?mode=ro"), "sqlite:///a/b.db?mode=ro");
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
