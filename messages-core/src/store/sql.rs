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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::{Error, Message, MessageId, Result, ViewId};

/// Longest namespace, in bytes.
const MAX_NAMESPACE_BYTES: usize = 64;
/// Longest table name, in bytes: PostgreSQL keeps 63 bytes of an identifier, and the
/// longest name made from it is `{table}_sessions_expiry`.
const MAX_TABLE_BYTES: usize = 40;
/// Names a table cannot have: the names of the common table expressions of the stores'
/// statements (a CTE of the same name would shadow the table in them), and PostgreSQL's
/// reserved key words (a table of that name would have to be quoted).
const RESERVED_TABLES: &[&str] = &[
    // CTEs
    "batch",
    "dead_from",
    "dead_to",
    "firsts",
    "fits",
    "inserted",
    "kept",
    "kept_alive",
    "leased",
    "locked",
    "moved",
    "moving",
    "notified",
    "picked",
    "present",
    "prior",
    "purged",
    "reaped",
    "refreshed",
    "retired",
    "settled",
    "sizes",
    "stale",
    "swept",
    "trimmed",
    "upserted",
    "was_live",
    // key words
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "binary",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "false",
    "fetch",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "group",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "intersect",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "natural",
    "not",
    "notnull",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "outer",
    "overlaps",
    "placing",
    "primary",
    "references",
    "returning",
    "right",
    "select",
    "session_user",
    "similar",
    "some",
    "symmetric",
    "system_user",
    "table",
    "tablesample",
    "then",
    "to",
    "trailing",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
];
/// Longest idle TTL or lease, in ms (about 34 years).
const MAX_TTL_MS: u64 = 1 << 40;
/// Largest per-context cap.
const MAX_PER_CONTEXT: usize = 1 << 40;

/// One write in this many (per store, clones together) also sweeps expired sessions.
const SWEEP_EVERY: i64 = 4;
/// Expired sessions a sweeping write removes at most: 8 per write on average, so that
/// sessions cannot expire faster than writes remove them (a write makes one at most).
/// PostgreSQL's bound; SQLite's sweep is bounded by [`SWEEP_ROWS`] for both.
#[cfg(feature = "postgres")]
pub(super) const SWEEP_SESSIONS: i64 = 8 * SWEEP_EVERY;
/// Rows of expired sessions a sweeping write removes at most (256 per write on average).
pub(super) const SWEEP_ROWS: i64 = 256 * SWEEP_EVERY;

/// How long a deferred settle waits for a statement to go with before it is sent alone.
const FLUSH_AFTER: Duration = Duration::from_millis(20);
/// Most rows whose settles are held back; a settle beyond is sent at once with them.
const MAX_DEFERRED_ROWS: usize = 1024;

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
    /// not starting with a digit, and neither an SQL key word (`order`, `user`, …) nor a
    /// name the store's statements give their parts (`settled`, `picked`, …); anything
    /// else is an [`Error::Config`].
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
        if RESERVED_TABLES.contains(&table.as_str()) {
            return Err(Error::Config(format!(
                "{store} table {table:?}: an SQL key word or a name the store's statements use"
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
pub(super) async fn settle_later<F, Fut>(
    lease_ms: i64,
    view: &(impl fmt::Display + ?Sized),
    mut settle: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let lease = Duration::from_millis(u64::try_from(lease_ms).unwrap_or(0));
    let mut backoff = super::Backoff::until(tokio::time::Instant::now() + lease);
    while backoff.next().await {
        if settle().await.is_ok() {
            tracing::info!(view = %view, tries = backoff.tries, "messages: read lease settled after a retry");
            return;
        }
    }
    tracing::warn!(view = %view, tries = backoff.tries, "messages: read lease not settled; its messages will be shown again");
}

/// A fresh lease token: 128 random bits in hex, as message ids.
pub(super) fn lease_token() -> String {
    MessageId::new().to_string()
}

/// The [`Lease`](super::Lease) of rows taken under `token`: the token, `:` and the rows'
/// sequence numbers, so that a settle finds them by primary key.
pub(super) fn lease(token: &str, seqs: impl IntoIterator<Item = i64>) -> super::Lease {
    let seqs: Vec<String> = seqs.into_iter().map(|s| s.to_string()).collect();
    super::Lease::new(format!("{token}:{}", seqs.join(",")))
}

/// The rows a [`Lease`](super::Lease) of [`lease`] names: `(seq, token)` each; `None` for a
/// token this store did not make.
pub(super) fn leased_rows(lease: &super::Lease) -> Option<Vec<(i64, String)>> {
    let (token, seqs) = lease.token().split_once(':')?;
    if token.is_empty() || seqs.is_empty() {
        return None;
    }
    seqs.split(',')
        .map(|s| s.parse::<i64>().ok().map(|seq| (seq, token.to_owned())))
        .collect()
}

/// Whether this write is one of those that sweep expired sessions: the first of a store,
/// then one in [`SWEEP_EVERY`].
pub(super) fn sweeps(writes: &AtomicU64) -> bool {
    writes
        .fetch_add(1, Ordering::Relaxed)
        .is_multiple_of(SWEEP_EVERY.unsigned_abs())
}

/// Settles of read leases held back to go with the store's next statement: the rows as
/// `(seq, token)`. A statement that carries them deletes those it can; what it could not
/// (rows locked by another transaction), and what no statement carried within
/// [`FLUSH_AFTER`], a background task sends alone.
#[derive(Debug, Default)]
pub(super) struct Deferred {
    /// Settles for the next statement.
    fold: Mutex<Vec<(i64, String)>>,
    /// Settles to send alone (a statement could not).
    alone: Mutex<Vec<(i64, String)>>,
    /// Whether a background flush is scheduled.
    armed: super::FlushMark,
}

impl Deferred {
    /// Holds `rows` to settle; returns them back when too many are held, to send now
    /// (with everything held).
    pub(super) fn defer(&self, rows: Vec<(i64, String)>) -> Option<Vec<(i64, String)>> {
        let mut fold = lock(&self.fold);
        fold.extend(rows);
        if fold.len() >= MAX_DEFERRED_ROWS {
            drop(fold);
            return Some(self.all());
        }
        None
    }

    /// The settles for a statement to carry (PostgreSQL's; SQLite sends them alone).
    #[cfg(feature = "postgres")]
    pub(super) fn for_statement(&self) -> Vec<(i64, String)> {
        std::mem::take(&mut *lock(&self.fold))
    }

    /// After a statement carried `carried`: those whose sequence number is not in
    /// `settled` are to be sent alone. Returns whether there are such.
    pub(super) fn carried(&self, carried: Vec<(i64, String)>, settled: &[i64]) -> bool {
        if carried.is_empty() {
            return false;
        }
        let settled: HashSet<i64> = settled.iter().copied().collect();
        let left: Vec<_> = carried
            .into_iter()
            .filter(|(seq, _)| !settled.contains(seq))
            .collect();
        let any = !left.is_empty();
        if any {
            lock(&self.alone).extend(left);
        }
        any
    }

    /// Everything held, to send alone.
    pub(super) fn all(&self) -> Vec<(i64, String)> {
        let mut rows = std::mem::take(&mut *lock(&self.alone));
        rows.append(&mut lock(&self.fold));
        rows
    }

    /// Marks a background flush scheduled: `Some(guard)`, for the flush task, when none
    /// was.
    fn arm(&self) -> Option<super::Disarm> {
        self.armed.arm()
    }

    /// The store's background flush: after [`FLUSH_AFTER`], sends what is held (with
    /// `send`); if that fails, retries as [`settle_later`] does. A settle deferred after
    /// it took the list arms another.
    async fn flush_later<F, Fut>(&self, disarm: super::Disarm, lease_ms: i64, send: F)
    where
        F: Fn(Vec<(i64, String)>) -> Fut,
        Fut: Future<Output = Result<()>>,
    {
        tokio::time::sleep(FLUSH_AFTER).await;
        drop(disarm);
        let rows = self.all();
        if !rows.is_empty() && send(rows.clone()).await.is_err() {
            settle_later(lease_ms, &"(deferred settles)", || send(rows.clone())).await;
        }
    }
}

/// A store that defers its settles: what [`settle`], [`flush`] and [`carried`] need.
pub(super) trait Settling: Clone + Send + Sync + 'static {
    /// The store's name, for logs.
    const STORE: &'static str;
    /// The settles it holds back.
    fn deferred(&self) -> &Deferred;
    /// Its read lease, in ms.
    fn lease_ms(&self) -> i64;
    /// Sends settles alone: deletes the rows `(seq, token)`.
    fn settle_rows(&self, rows: Vec<(i64, String)>) -> impl Future<Output = Result<()>> + Send;
}

/// [`MessageStore::settle`](crate::MessageStore::settle) for a [`Settling`] store: held
/// for its next statement, or alone after [`FLUSH_AFTER`]. Without a tokio runtime, or
/// with [`MAX_DEFERRED_ROWS`] held, sent at once (and on failure tried again in the
/// background, when on a runtime, until the lease would be up; the error is returned).
pub(super) async fn settle<S: Settling>(
    store: &S,
    view: &ViewId,
    lease: &super::Lease,
) -> Result<()> {
    let Some(rows) = leased_rows(lease) else {
        tracing::warn!(view = %view, store = S::STORE, "messages: a lease this store did not make is ignored");
        return Ok(());
    };
    let now = if tokio::runtime::Handle::try_current().is_ok() {
        let now = store.deferred().defer(rows);
        if now.is_none() {
            flush_later(store);
        }
        now
    } else {
        Some(rows)
    };
    let Some(rows) = now else {
        return Ok(());
    };
    let result = store.settle_rows(rows.clone()).await;
    if result.is_err()
        && let Ok(runtime) = tokio::runtime::Handle::try_current()
    {
        let (store, view) = (store.clone(), view.clone());
        runtime.spawn(async move {
            let lease_ms = store.lease_ms();
            settle_later(lease_ms, &view, || store.settle_rows(rows.clone())).await;
        });
    }
    result
}

/// [`MessageStore::flush`](crate::MessageStore::flush) for a [`Settling`] store: sends
/// what it holds; on failure leaves it to the background flush.
pub(super) async fn flush<S: Settling>(store: &S) -> Result<()> {
    let rows = store.deferred().all();
    let result = store.settle_rows(rows.clone()).await;
    if result.is_err() {
        carried(store, rows, &[]);
    }
    result
}

/// After a statement carried deferred settles `carried`: those not `settled` (all, if the
/// statement failed) are sent alone by the background flush.
pub(super) fn carried<S: Settling>(store: &S, carried: Vec<(i64, String)>, settled: &[i64]) {
    if store.deferred().carried(carried, settled) {
        flush_later(store);
    }
}

/// Starts the store's background flush of deferred settles, unless one is scheduled or
/// there is no tokio runtime.
fn flush_later<S: Settling>(store: &S) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current()
        && let Some(disarm) = store.deferred().arm()
    {
        let store = store.clone();
        runtime.spawn(async move {
            let lease_ms = store.lease_ms();
            store
                .deferred()
                .flush_later(disarm, lease_ms, |rows| store.settle_rows(rows))
                .await;
        });
    }
}

/// A mutex's value, even if a thread panicked holding it (the lists stay valid).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Splits rows to settle into bind arrays.
pub(super) fn settle_binds(rows: &[(i64, String)]) -> (Vec<i64>, Vec<String>) {
    let seqs = rows.iter().map(|(s, _)| *s).collect();
    let mut tokens: Vec<String> = rows.iter().map(|(_, t)| t.clone()).collect();
    tokens.sort();
    tokens.dedup();
    (seqs, tokens)
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
    fn leases_name_their_rows() {
        let lease = lease("abc", [7, 3, 12]);
        assert_eq!(lease.token(), "abc:7,3,12");
        let rows = leased_rows(&lease).unwrap();
        assert_eq!(
            rows,
            [(7, "abc".to_owned()), (3, "abc".into()), (12, "abc".into())]
        );
        for foreign in ["abc", "abc:", ":1", "abc:1,x", "abc:1,,2"] {
            assert_eq!(
                leased_rows(&super::super::Lease::new(foreign)),
                None,
                "{foreign}"
            );
        }
    }

    #[test]
    fn one_write_in_four_sweeps_starting_with_the_first() {
        let writes = AtomicU64::new(0);
        let pattern: Vec<bool> = (0..8).map(|_| sweeps(&writes)).collect();
        assert_eq!(
            pattern,
            [true, false, false, false, true, false, false, false]
        );
    }

    #[test]
    #[cfg(feature = "postgres")]
    fn deferred_settles_go_to_a_statement_or_alone() {
        let deferred = Deferred::default();
        let row = |seq: i64| (seq, format!("t{seq}"));
        assert_eq!(deferred.defer(vec![row(1), row(2)]), None);
        let flush = deferred.arm();
        assert!(flush.is_some(), "the first settle arms the flush");
        assert!(deferred.arm().is_none(), "once");
        drop(flush);
        assert!(
            deferred.arm().is_some(),
            "a flush dropped (done, or its runtime gone) lets the next settle arm one"
        );
        let carried = deferred.for_statement();
        assert_eq!(carried, [row(1), row(2)]);
        assert!(deferred.for_statement().is_empty(), "carried once");
        // Row 2 was locked elsewhere: it is sent alone.
        assert!(deferred.carried(carried, &[1]));
        assert!(deferred.for_statement().is_empty());
        assert_eq!(deferred.all(), [row(2)]);
        assert!(!deferred.carried(vec![row(3)], &[3]));
        assert!(deferred.all().is_empty());
        // Too many held: all go now.
        let many: Vec<_> = (0..i64::try_from(MAX_DEFERRED_ROWS).unwrap())
            .map(row)
            .collect();
        assert_eq!(
            deferred.defer(many).map(|rows| rows.len()),
            Some(MAX_DEFERRED_ROWS)
        );
        assert!(deferred.all().is_empty());
        let (seqs, tokens) = settle_binds(&[(1, "b".into()), (2, "a".into()), (3, "b".into())]);
        assert_eq!(
            (seqs, tokens),
            (vec![1, 2, 3], vec!["a".to_owned(), "b".into()])
        );
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
