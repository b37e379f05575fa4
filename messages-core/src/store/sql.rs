//! What [`PostgresStore`](crate::PostgresStore) and [`SqliteStore`](crate::SqliteStore)
//! share: their options, the checks on them, the schema's names, and how stored rows
//! become a context's messages.
//!
//! Both keep one row per message in a table `{table}`, keyed by (namespace, session,
//! view) and ordered by a sequence the database assigns, and one row per session in
//! `{table}_sessions` holding when the session expires (the database's clock, in
//! milliseconds since the Unix epoch) and until when it is retired (rotated away from).

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::{Error, Message, MessageId, Result, ViewId};

/// Longest namespace, in bytes.
const MAX_NAMESPACE_BYTES: usize = 64;
/// Longest table name, in bytes: PostgreSQL keeps 63 bytes of an identifier, and the
/// longest name made from it is `{table}_sessions_expiry`.
const MAX_TABLE_BYTES: usize = 40;
/// Longest idle TTL or lease, in ms (about 34 years).
const MAX_TTL_MS: u64 = 1 << 40;
/// Largest per-context cap.
const MAX_PER_CONTEXT: usize = 1 << 40;

/// Rows of expired sessions a write removes at most.
pub(super) const SWEEP_ROWS: i64 = 256;

/// Settings of a [`PostgresStore`](crate::PostgresStore) or a
/// [`SqliteStore`](crate::SqliteStore).
///
/// ```
/// use std::time::Duration;
/// use messages_core::SqlOptions;
///
/// let options = SqlOptions { table: "flash".into(), idle_ttl: Duration::from_secs(600), ..SqlOptions::default() };
/// assert_eq!(options.per_context, 100);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlOptions {
    /// The messages table (default `messages`); the sessions table is
    /// `{table}_sessions`. 1 to 40 bytes of lowercase ASCII letters, digits and `_`,
    /// not starting with a digit; anything else is an [`Error::Config`].
    pub table: String,
    /// Written into every row (default `msg`), so several applications can share a
    /// table: 1 to 64 bytes of printable ASCII without space.
    pub namespace: String,
    /// Most messages in one context (default 100); adding more drops the first arrived,
    /// with a `tracing` warning.
    pub per_context: usize,
    /// A session's messages — every view's — expire this long after the last write
    /// (add or put-back) to any view of the session (default 1 hour). A read that takes
    /// messages under a lease keeps the session at least this long from then, so that
    /// messages a crashed request held outlive its lease. Must be longer than
    /// [`read_lease`](SqlOptions::read_lease).
    pub idle_ttl: Duration,
    /// How long a request may hold the messages it read before they count as undelivered
    /// (default 60 s; see [`MessageStore::take_leased`](crate::MessageStore::take_leased)).
    /// Messages read by a process that died are shown again by the first read of their
    /// view after this time. Must be shorter than [`idle_ttl`](SqlOptions::idle_ttl):
    /// `read_lease >= idle_ttl` is an [`Error::Config`].
    pub read_lease: Duration,
    /// How long to wait for a connection, from the pool or a new one (default 1 s).
    /// Only for stores that make their own pool (`connect`).
    pub connect_timeout: Duration,
    /// How long one operation may take once it has a connection (default 1 s): each
    /// operation gives up after `connect_timeout + response_timeout` with
    /// [`Error::Unavailable`]. PostgreSQL connections made by `connect` also get it as
    /// their `statement_timeout`; SQLite ones as their busy timeout.
    pub response_timeout: Duration,
    /// Most connections in a pool the store makes (default 8).
    pub max_connections: u32,
}

impl Default for SqlOptions {
    fn default() -> Self {
        SqlOptions {
            table: "messages".to_owned(),
            namespace: "msg".to_owned(),
            per_context: 100,
            idle_ttl: Duration::from_secs(3600),
            read_lease: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            max_connections: 8,
        }
    }
}

/// The options a store keeps, checked.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    /// The messages table.
    pub(super) table: String,
    /// The sessions table, `{table}_sessions`.
    pub(super) sessions: String,
    pub(super) namespace: String,
    pub(super) per_context: usize,
    pub(super) ttl_ms: i64,
    pub(super) lease_ms: i64,
    /// `connect_timeout + response_timeout`.
    pub(super) time_bound: Duration,
    pub(super) connect_timeout: Duration,
    pub(super) response_timeout: Duration,
    pub(super) max_connections: u32,
}

impl Settings {
    /// Refuses a bad table name or namespace, and a read lease not shorter than the idle
    /// TTL: a lapsed reserve must still be in a live session to come back.
    pub(super) fn check(options: SqlOptions, store: &str) -> Result<Settings> {
        let table = &options.table;
        let valid_table = !table.is_empty()
            && table.len() <= MAX_TABLE_BYTES
            && !table.starts_with(|c: char| c.is_ascii_digit())
            && table
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid_table {
            return Err(Error::Config(format!(
                "{store} table {table:?}: 1 to {MAX_TABLE_BYTES} bytes of lowercase ASCII letters, digits and '_', not starting with a digit"
            )));
        }
        let ns = &options.namespace;
        let valid_ns = !ns.is_empty()
            && ns.len() <= MAX_NAMESPACE_BYTES
            && ns.bytes().all(|b| b.is_ascii_graphic());
        if !valid_ns {
            return Err(Error::Config(format!(
                "{store} namespace {ns:?}: 1 to {MAX_NAMESPACE_BYTES} bytes of printable ASCII without space"
            )));
        }
        let ms = |d: Duration| {
            let ms = u64::try_from(d.as_millis())
                .unwrap_or(u64::MAX)
                .clamp(1, MAX_TTL_MS);
            i64::try_from(ms).unwrap_or(i64::MAX)
        };
        let (ttl_ms, lease_ms) = (ms(options.idle_ttl), ms(options.read_lease));
        if lease_ms >= ttl_ms {
            return Err(Error::Config(format!(
                "{store} read_lease ({lease_ms} ms) must be shorter than idle_ttl ({ttl_ms} ms): \
                 the messages of a read would expire before its lease is up"
            )));
        }
        Ok(Settings {
            sessions: format!("{table}_sessions"),
            per_context: options.per_context.clamp(1, MAX_PER_CONTEXT),
            ttl_ms,
            lease_ms,
            time_bound: options.connect_timeout + options.response_timeout,
            connect_timeout: options.connect_timeout,
            response_timeout: options.response_timeout,
            max_connections: options.max_connections.max(1),
            table: options.table,
            namespace: options.namespace,
        })
    }
}

/// An operation did not finish within the store's time bound.
#[derive(Debug, thiserror::Error)]
#[error("{store} did not answer within {bound:?}")]
pub(super) struct TimedOut {
    store: &'static str,
    bound: Duration,
}

/// `e` as the store's [`Error::Unavailable`], keeping it as the source.
pub(super) fn unavailable(
    store: &'static str,
    e: impl std::error::Error + Send + Sync + 'static,
) -> Error {
    Error::Unavailable {
        store,
        source: Box::new(e),
    }
}

/// Runs `op` within `bound`: its database error, or running out of time, is the store's
/// [`Error::Unavailable`]. A dropped `sqlx` future leaves its connection to be cleaned up
/// by the pool (a transaction is rolled back).
pub(super) async fn bounded<T, F>(store: &'static str, bound: Duration, op: F) -> Result<T>
where
    F: Future<Output = std::result::Result<T, sqlx::Error>>,
{
    match tokio::time::timeout(bound, op).await {
        Ok(result) => result.map_err(|e| unavailable(store, e)),
        Err(_) => Err(unavailable(store, TimedOut { store, bound })),
    }
}

/// Tries a failed settle again, backing off from 100 ms to 2 s, until the lease would be
/// up (counted from now: a late settle finds nothing to drop and does no harm).
pub(super) async fn settle_later<F, Fut>(lease_ms: i64, view: &ViewId, mut settle: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let lease = Duration::from_millis(u64::try_from(lease_ms).unwrap_or(0));
    let deadline = tokio::time::Instant::now() + lease;
    let mut pause = Duration::from_millis(100);
    let mut tries = 1u32;
    while tokio::time::Instant::now() + pause < deadline {
        tokio::time::sleep(pause).await;
        tries += 1;
        if settle().await.is_ok() {
            tracing::info!(view = %view, tries, "messages: read lease settled after a retry");
            return;
        }
        pause = (pause * 2).min(Duration::from_secs(2));
    }
    tracing::warn!(view = %view, tries, "messages: read lease not settled; its messages will be shown again");
}

/// A fresh lease token: 128 random bits in hex, as message ids.
pub(super) fn lease_token() -> String {
    MessageId::new().to_string()
}

/// One stored message: its row's sequence number (the database's arrival order), its
/// place in the context (the sequence number, or below the context's first for a
/// put-back), its id and its JSON.
#[derive(Debug, Clone)]
pub(super) struct StoredRow {
    pub(super) seq: i64,
    pub(super) ord: i64,
    pub(super) id: String,
    pub(super) body: String,
}

/// The messages of a context's rows: in order, each id once (a reserve that came back
/// beside a put-back copy of the same message, say), the newest `cap` (a reserve that
/// came back can take a context over its cap; the oldest go, with a warning), decoded
/// (rows that do not decode are skipped, with one warning).
pub(super) fn deliver(
    store: &'static str,
    mut rows: Vec<StoredRow>,
    cap: usize,
    view: &ViewId,
) -> Vec<Message> {
    rows.sort_by_key(|r| (r.ord, r.seq));
    let mut seen = HashSet::with_capacity(rows.len());
    rows.retain(|r| seen.insert(r.id.clone()));
    if rows.len() > cap {
        let dropped = rows.len() - cap;
        rows.drain(..dropped);
        tracing::warn!(view = %view, dropped, cap, store, "messages: context full, oldest messages dropped");
    }
    let mut skipped = 0usize;
    let mut first_error = None;
    let messages = rows
        .into_iter()
        .filter_map(|r| {
            serde_json::from_str::<Message>(&r.body)
                .map_err(|e| {
                    skipped += 1;
                    first_error.get_or_insert(e);
                })
                .ok()
        })
        .collect();
    if let Some(error) = first_error {
        tracing::warn!(view = %view, skipped, %error, store, "messages: undecodable rows skipped");
    }
    messages
}

/// Views read from a table, sorted; invalid ones skipped with a warning.
pub(super) fn views(store: &'static str, names: Vec<String>) -> Vec<ViewId> {
    let mut views: Vec<ViewId> = names
        .into_iter()
        .filter_map(|n| match ViewId::new(n) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(error = %e, store, "messages: invalid view id in the table skipped");
                None
            }
        })
        .collect();
    views.sort();
    views.dedup();
    views
}

/// Messages to write as (id, JSON), each id once (the first), in the order given.
pub(super) fn encode(messages: &[Message]) -> Result<Vec<(String, String)>> {
    let mut seen = HashSet::with_capacity(messages.len());
    let mut out = Vec::with_capacity(messages.len());
    for m in messages {
        if seen.insert(m.id()) {
            out.push((m.id().to_string(), serde_json::to_string(m)?));
        }
    }
    Ok(out)
}

/// Logs what a write dropped.
pub(super) fn log_write(
    store: &'static str,
    view: &ViewId,
    accepted: bool,
    dropped: usize,
    cap: usize,
) {
    if !accepted {
        tracing::warn!(view = %view, store, "messages: session rotated away from, its adds are refused");
    } else if dropped > 0 {
        tracing::warn!(view = %view, dropped, cap, store, "messages: context full, oldest messages dropped");
    }
}

/// The SQL of one store, made once from its settings: shared cheaply by clones.
pub(super) type Sql = Arc<str>;

/// Formats a statement template: `{m}` the messages table, `{s}` the sessions table,
/// `{now}` the database's clock in ms.
pub(super) fn sql(template: &str, settings: &Settings, now: &str) -> Sql {
    template
        .replace("{m}", &settings.table)
        .replace("{s}", &settings.sessions)
        .replace("{now}", now)
        .into()
}

/// A store's name and settings in `Debug` output.
pub(super) fn debug_store(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    settings: &Settings,
) -> fmt::Result {
    f.debug_struct(name)
        .field("table", &settings.table)
        .field("namespace", &settings.namespace)
        .field("per_context", &settings.per_context)
        .field("idle_ttl_ms", &settings.ttl_ms)
        .field("read_lease_ms", &settings.lease_ms)
        .finish_non_exhaustive()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn rows_are_ordered_deduplicated_capped_and_decoded() {
        let (a, b, c) = (Message::info("a"), Message::info("b"), Message::info("c"));
        let row = |seq, ord, m: &Message| StoredRow {
            seq,
            ord,
            id: m.id().to_string(),
            body: serde_json::to_string(m).unwrap(),
        };
        let junk = StoredRow {
            seq: 4,
            ord: 4,
            id: "junk".into(),
            body: "not json".into(),
        };
        let rows = vec![
            row(3, 3, &c),
            row(2, -1, &b),
            junk,
            row(1, 1, &a),
            row(9, 9, &b),
        ];
        let got = deliver("test", rows.clone(), 10, &ViewId::from_static("v"));
        assert_eq!(got, [b.clone(), a.clone(), c.clone()]);
        let got = deliver("test", rows, 3, &ViewId::from_static("v"));
        assert_eq!(got, [a, c], "the newest three rows, one of them junk");
    }

    #[test]
    fn table_names_and_namespaces_are_checked() {
        for bad in [
            "",
            "Messages",
            "1st",
            "a-b",
            "a b",
            "x;drop",
            &"t".repeat(41),
        ] {
            let options = SqlOptions {
                table: bad.to_owned(),
                ..SqlOptions::default()
            };
            assert!(
                matches!(Settings::check(options, "sql"), Err(Error::Config(_))),
                "{bad:?}"
            );
        }
        for bad in ["", "has space", &"n".repeat(65)] {
            let options = SqlOptions {
                namespace: bad.to_owned(),
                ..SqlOptions::default()
            };
            assert!(
                matches!(Settings::check(options, "sql"), Err(Error::Config(_))),
                "{bad:?}"
            );
        }
        let long_lease = SqlOptions {
            read_lease: Duration::from_secs(3600),
            ..SqlOptions::default()
        };
        assert!(matches!(
            Settings::check(long_lease, "sql"),
            Err(Error::Config(_))
        ));
        let s = Settings::check(SqlOptions::default(), "sql").unwrap();
        assert_eq!(
            (s.table.as_str(), s.sessions.as_str()),
            ("messages", "messages_sessions")
        );
    }
}
