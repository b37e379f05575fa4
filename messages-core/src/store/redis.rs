//! Messages in Redis: one sorted set per context, for applications on several machines.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::ClusterClient;
use ::redis::cluster_async::ClusterConnection;
use ::redis::{
    Cmd, ConnectionInfo, IntoConnectionInfo, Pipeline, ProtocolVersion, RedisError, RedisFuture,
    Script, Value,
};
use async_trait::async_trait;

use super::{Lease, Taken};
use crate::live::Watch;
use crate::{Error, Message, MessageId, MessageStore, Result, SessionKey, ViewId};

mod args;
mod feed;
mod settles;

use args::{Eval, Key};
use feed::{Feed, FeedConfig, Source};
use settles::{Op, Queue};

/// Longest namespace, in bytes.
const MAX_NAMESPACE_BYTES: usize = 64;
/// Longest idle TTL sent to Redis (about 34 years): far below what `PEXPIRE` refuses.
const MAX_TTL_MS: u64 = 1 << 40;
/// Largest per-context cap sent to Redis: the scripts compute ranks from it as Lua
/// numbers, exact up to 2^53.
const MAX_PER_CONTEXT: usize = 1 << 40;

/// Adds messages to a context (`ARGV[1]` = `add`), or puts back messages a request took
/// (`back`), in one step; trims the context to the cap, oldest first; and refreshes the
/// idle TTL of **every** key of the session — each context in the view index, with its
/// lease set and reserves, the index, and the sequence — so a session lives `idle_ttl`
/// after its last write, whichever view was written. KEYS: the context, the session's
/// view index, the session's sequence; ARGV: the mode, the view id, the per-context cap,
/// the idle TTL in ms, the prefix of the session's context keys, the session's change-feed
/// channel, then each message's id and JSON. Other keys of the session are built here,
/// not declared, but share the hash slot. Returns how many members the cap trimmed.
///
/// When it stored something (an add, a put-back of a message not already there), it
/// publishes the view id on the channel (`SPUBLISH`: sharded pub/sub, in the session's
/// hash slot) for the live streams of other processes. `redis.pcall`: a server without
/// sharded pub/sub (before Redis 7) still stores the messages.
///
/// Scores are the session's arrival sequence, assigned here (`INCRBY` on the sequence
/// key), never an application clock. An add scores its messages after everything; a
/// message whose JSON is already in the context stays where it is (`ZADD NX`). A
/// put-back scores them below the context's lowest score (before everything it holds
/// now; with the next sequence numbers when it is empty) and skips messages whose id
/// is already in the context. A sequence key that is new — the session's first write,
/// or the key was lost (evicted) while messages remain — starts above every score in
/// the session's contexts and reserves, so new messages still go last.
static WRITE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"local context, index, seq = KEYS[1], KEYS[2], KEYS[3]
if redis.call('EXISTS', KEYS[4]) == 1 then return -1 end
local view, cap, ttl, prefix = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local n = (#ARGV - 6) / 2
local function highest(key)
  local top = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if #top > 0 then return tonumber(top[2]) end
  return 0
end
local function next_seq(k)
  local last = redis.call('INCRBY', seq, k)
  if last == k then
    local floor = highest(context)
    for _, v in ipairs(redis.call('SMEMBERS', index)) do
      local c = prefix .. v
      floor = math.max(floor, highest(c))
      for _, token in ipairs(redis.call('ZRANGE', c .. ';leases', 0, -1)) do
        floor = math.max(floor, highest(c .. ';taken:' .. token))
      end
    end
    if floor > 0 then
      last = redis.call('INCRBY', seq, string.format('%d', math.ceil(floor)))
    end
  end
  return last
end
if ARGV[1] == 'add' then
  local last = next_seq(n)
  for i = 1, n do
    redis.call('ZADD', context, 'NX', last - n + i, ARGV[6 + 2 * i])
  end
else
  local present = {}
  for _, m in ipairs(redis.call('ZRANGE', context, 0, -1)) do
    local id = string.match(m, '^{"id":"(%x+)"')
    if id then present[id] = true end
  end
  local fresh = {}
  for i = 1, n do
    local id = ARGV[5 + 2 * i]
    if not present[id] then
      present[id] = true
      fresh[#fresh + 1] = ARGV[6 + 2 * i]
    end
  end
  local k = #fresh
  if k == 0 then return 0 end
  local first = redis.call('ZRANGE', context, 0, 0, 'WITHSCORES')
  local last
  if #first > 0 then last = tonumber(first[2]) - 1 else last = next_seq(k) end
  for i = 1, k do redis.call('ZADD', context, last - k + i, fresh[i]) end
end
local trimmed = redis.call('ZREMRANGEBYRANK', context, 0, -(cap + 1))
redis.call('SADD', index, view)
for _, v in ipairs(redis.call('SMEMBERS', index)) do
  local c = prefix .. v
  local leases = c .. ';leases'
  redis.call('PEXPIRE', c, ttl)
  if redis.call('PEXPIRE', leases, ttl) == 1 then
    for _, token in ipairs(redis.call('ZRANGE', leases, 0, -1)) do
      redis.call('PEXPIRE', c .. ';taken:' .. token, ttl)
    end
  end
end
redis.call('PEXPIRE', index, ttl)
redis.call('PEXPIRE', seq, ttl)
redis.pcall('SPUBLISH', ARGV[6], view)
return trimmed"#,
    )
});

/// Reads and deletes a context in one step, so two concurrent readers never both get a
/// message. With a lease token it moves the context to a reserve key
/// (`<context>;taken:<token>`) instead and records the lease's deadline in the context's
/// lease set (`<context>;leases`); first it puts back the reserves whose lease is up.
/// The view stays in the session's index while leases are out, so `PENDING_VIEWS` and
/// `CLEAR_SESSION` find them. A reserve keeps its members' scores (their place in the
/// session's arrival sequence), so a restored reserve comes back before what arrived
/// after it. Whatever this script makes live longer (a reserve, a restored context), it
/// makes the index and the sequence live as long, so they never expire before another
/// key of the session. KEYS: the context, the session's view index, the context's lease
/// set, the session's sequence; ARGV: the view id, the lease token (empty: no reserve),
/// the lease in ms, the per-context cap, the idle TTL in ms. The reserve keys are built
/// here, not declared, but share the context's hash slot. Reads the server's clock
/// (`TIME`) only when leases are out or one is made, so a plain take of a context
/// without leases costs `EXISTS`, `ZRANGE`, `DEL`, `SREM`.
static TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local now
local function clock()
  if not now then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now
end
local leased = redis.call('EXISTS', KEYS[3]) == 1
if leased then
  local lapsed = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', clock())
  for _, token in ipairs(lapsed) do
    local reserve = KEYS[1] .. ';taken:' .. token
    local kept = redis.call('ZRANGE', reserve, 0, -1, 'WITHSCORES')
    for i = 1, #kept, 2 do redis.call('ZADD', KEYS[1], kept[i + 1], kept[i]) end
    redis.call('DEL', reserve)
    redis.call('ZREM', KEYS[3], token)
  end
  if #lapsed > 0 then
    leased = redis.call('EXISTS', KEYS[3]) == 1
    if redis.call('EXISTS', KEYS[1]) == 1 then
      redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[4]) + 1))
      redis.call('PEXPIRE', KEYS[1], ARGV[5])
      redis.call('PEXPIRE', KEYS[2], ARGV[5])
      redis.call('PEXPIRE', KEYS[4], ARGV[5])
    end
  end
end
local m = redis.call('ZRANGE', KEYS[1], 0, -1)
if #m > 0 then
  if ARGV[2] == '' then
    redis.call('DEL', KEYS[1])
  else
    local reserve = KEYS[1] .. ';taken:' .. ARGV[2]
    redis.call('RENAME', KEYS[1], reserve)
    redis.call('PEXPIRE', reserve, ARGV[5])
    redis.call('ZADD', KEYS[3], clock() + tonumber(ARGV[3]), ARGV[2])
    redis.call('PEXPIRE', KEYS[3], ARGV[5])
    redis.call('PEXPIRE', KEYS[2], ARGV[5])
    redis.call('PEXPIRE', KEYS[4], ARGV[5])
    leased = true
  end
end
if not leased then redis.call('SREM', KEYS[2], ARGV[1]) end
return m",
    )
});

/// Drops a lease's reserve. KEYS and the first two ARGV as for `TAKE`. Settling twice,
/// or after the lease is up and the reserve was put back, finds nothing and does nothing.
const SETTLE_LUA: &str = r"redis.call('DEL', KEYS[1] .. ';taken:' .. ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[2])
if redis.call('EXISTS', KEYS[3], KEYS[1]) == 0 then
  redis.call('SREM', KEYS[2], ARGV[1])
end
return 0";
static SETTLE: LazyLock<Script> = LazyLock::new(|| Script::new(SETTLE_LUA));

/// Drops a context's messages unread. Its reserves (leases out) stay, and so does its
/// entry in the view index while they do, so they are still found, refreshed and put
/// back. KEYS and the first ARGV as for `TAKE`.
static DISCARD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"redis.call('DEL', KEYS[1])
if redis.call('EXISTS', KEYS[3]) == 0 then redis.call('SREM', KEYS[2], ARGV[1]) end
return 0",
    )
});

/// The views of a session that still hold messages — stored, or in a reserve whose
/// lease is up (the next take puts them back); prunes index entries with neither a
/// context nor a lease left (expired). KEYS: the view index; ARGV: the prefix of the
/// session's context keys. The context keys are built here, not declared, but share the
/// index's hash slot.
static PENDING_VIEWS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local live = {}
for _, v in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local context = ARGV[1] .. v
  local leases = context .. ';leases'
  if redis.call('EXISTS', context) == 1 or redis.call('ZCOUNT', leases, '-inf', now) > 0 then
    table.insert(live, v)
  elseif redis.call('EXISTS', leases) == 0 then
    redis.call('SREM', KEYS[1], v)
  end
end
return live",
    )
});

/// Deletes every context of a session, with its reserves, its index and its sequence.
/// KEYS: the view index, the sequence; ARGV as for `PENDING_VIEWS`.
static CLEAR_SESSION: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local views = redis.call('SMEMBERS', KEYS[1])
for _, v in ipairs(views) do
  local context = ARGV[1] .. v
  for _, token in ipairs(redis.call('ZRANGE', context .. ';leases', 0, -1)) do
    redis.call('DEL', context .. ';taken:' .. token)
  end
  redis.call('DEL', context, context .. ';leases')
end
redis.call('DEL', KEYS[1], KEYS[2])
return #views",
    )
});

/// Settings of a [`RedisStore`].
///
/// ```
/// use std::time::Duration;
/// use messages_core::RedisOptions;
///
/// let options = RedisOptions { namespace: "shop".into(), idle_ttl: Duration::from_secs(600), ..RedisOptions::default() };
/// assert_eq!(options.per_context, 100);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisOptions {
    /// The first part of every key (default `msg`), so several applications can share a
    /// server: 1 to 64 bytes of printable ASCII without space, `{` or `}`.
    pub namespace: String,
    /// Most messages in one context (default 100); adding more drops the first arrived,
    /// with a `tracing` warning.
    pub per_context: usize,
    /// A session's messages — every view's — expire this long after the last write
    /// (add or put-back) to any view of the session (default 1 hour). Must be longer than
    /// [`read_lease`](RedisOptions::read_lease).
    pub idle_ttl: Duration,
    /// How long to wait for a connection to a server (default 1 s).
    pub connect_timeout: Duration,
    /// How long to wait for a server's answer (default 1 s).
    pub response_timeout: Duration,
    /// How long a request may hold the messages it read before they count as undelivered
    /// (default 60 s; see [`MessageStore::take_leased`]). Messages read by a process that
    /// died, or whose answer a crashing server never sent, are shown again by the first
    /// read of their view after this time. A request still running after it may see
    /// them shown twice, so it should be well above the longest request. Must be shorter
    /// than [`idle_ttl`](RedisOptions::idle_ttl) (a reserve lives `idle_ttl` from the
    /// read, so a longer lease would let the messages of a crashed request expire before
    /// they are put back): building a store with `read_lease >= idle_ttl` fails with
    /// [`Error::Config`].
    pub read_lease: Duration,
    /// How long the [`settle`](MessageStore::settle) of a read lease may wait for a
    /// command of the store to carry it before it is sent alone (default 20 ms; see the
    /// type's docs on settles). Zero sends each settle at once, a round trip of its own.
    /// Must be shorter than half the [`read_lease`](RedisOptions::read_lease), or building
    /// a store fails with [`Error::Config`].
    pub settle_delay: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            namespace: "msg".to_owned(),
            per_context: 100,
            idle_ttl: Duration::from_secs(3600),
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            read_lease: Duration::from_secs(60),
            settle_delay: Duration::from_millis(20),
        }
    }
}

/// The store's view of the `redis` connection it was given.
#[derive(Clone)]
enum Connection {
    /// One server, reconnecting by itself.
    Single(ConnectionManager),
    /// Redis Cluster: commands go to the node serving the session's slot.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

/// An operation did not finish within the store's time bound.
#[derive(Debug, thiserror::Error)]
#[error("redis did not answer within {0:?}")]
struct TimedOut(Duration);

fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Unavailable {
        store: "redis",
        source: Box::new(e),
    }
}

/// Messages in Redis, shared by every process of an application — a single server (with
/// a reconnecting connection) or Redis Cluster.
///
/// Each context is one sorted set, `{namespace}:{<session>}:{view}`, of the messages'
/// JSON scored by their place in the session's arrival sequence, a counter
/// `{namespace}:{<session>};seq` that Redis increments as messages arrive — never an
/// application server's clock, so servers whose clocks disagree, or a clock stepped back,
/// cannot reorder two adds to one view. The braces make the session a hash tag, so all
/// keys of a session live in one cluster slot. A set `{namespace}:{<session>};views`
/// indexes the session's views for [`pending_views`](MessageStore::pending_views) and
/// [`clear_session`](MessageStore::clear_session) (`;` never occurs in a view id, so
/// neither key can collide with a context).
///
/// - An add is one round trip: a Lua script that scores the messages with the next
///   sequence numbers (in the order given), adds them, trims the context to
///   [`per_context`](RedisOptions::per_context) (first arrived first, with a warning), and
///   refreshes the [`idle_ttl`](RedisOptions::idle_ttl) of every key of the session: all
///   its contexts, their reserves and lease sets, the index and the sequence. A session
///   expires `idle_ttl` after its last write, whichever view was written. The script's
///   work grows with the session's views holding messages and leases out (usually a
///   handful).
/// - [`put_back`](MessageStore::put_back) is one round trip too: the messages are scored
///   below the context's lowest score, before everything it holds now, in the order
///   given, leaving out those whose id is already there.
/// - A take is one round trip: a Lua script reads and deletes the context atomically, so
///   concurrent takes never both return a message.
/// - A request's read ([`take_leased`](MessageStore::take_leased)) moves the context into
///   a reserve, `<context>;taken:<token>`, under a lease of
///   [`read_lease`](RedisOptions::read_lease) recorded in `<context>;leases`; committing
///   the request drops the reserve ([`settle`](MessageStore::settle), only for reads that
///   found messages), which costs no round trip of its own on the request's path: see
///   *Settles* below. A reserve never settled — the application process died mid-request
///   or with the settle still held back, or the server died after the take but before
///   its answer arrived — goes back into the context at the first read of the view after
///   the lease is up: messages are shown at least once, never lost to a crash. The lease
///   deadline is on the server's clock (`TIME`), so application clocks do not matter;
///   Redis 5 or later.
/// - Messages come back in the order they arrived. A reserve keeps its scores, so one
///   put back after its lease comes back before the messages that arrived after it.
///   A message added again whole (same JSON) stays stored once, in its place.
/// - A stored member that does not decode is skipped with a warning.
/// - When Redis cannot be reached or answers with an error, operations fail with
///   [`Error::Unavailable`] after at most `connect_timeout + response_timeout`; the
///   request context then shows no messages and logs the error. The connection is made
///   again by itself once Redis is back.
///
/// # Settles: one round trip per request
///
/// A flash pair — a request that adds, then one that reads and shows — costs one round
/// trip per request: [`settle`](MessageStore::settle) does not send the settle; it holds
/// it back (in a queue shared by the store's clones) and returns at once, and the next
/// command the store sends carries it, in the same pipeline (one write, one answer):
///
/// - On one server, every command carries every held settle.
/// - On Redis Cluster a pipeline stays in one slot, so a command carries the held
///   settles of its own session (whose keys share its hash tag, so its slot); a session's
///   next request carries them when it comes soon enough. Which node has the settle
///   script loaded is not known there, so such a pipeline starts with `SCRIPT LOAD` of
///   it (a few hundred bytes more, no round trip more); on one server that happens until
///   the script is known loaded, and again after the server answered `NOSCRIPT`.
/// - Settles no command carried within [`settle_delay`](RedisOptions::settle_delay)
///   (default 20 ms) are sent by a background task, started on the current tokio runtime
///   by the first settle held: as one pipeline on one server, one per session (sent at
///   once) on Cluster. That is still off the requests' path, and far inside the read
///   lease (`settle_delay` must be under half of it). Without a tokio runtime, with a
///   zero `settle_delay`, or when 1024 settles are held already, `settle` sends now.
/// - A held settle that fails (Redis away, a timeout, a command's future dropped
///   mid-flight puts them back in the queue instead) is logged with `tracing` and tried
///   again in the background, backing off from 100 ms to 2 s, until its lease would be
///   up: it cannot fail the commit that made it, which has returned.
/// - [`flush`](MessageStore::flush) sends what is held; call it
///   ([`MessagesConfig::flush`](crate::MessagesConfig::flush)) at shutdown, once the
///   server stopped serving. A process that exits or dies with settles held leaves them
///   to their leases: their messages are shown again after the lease, at least once,
///   as for a crash mid-request. Nothing is lost.
///
/// [`round_trips`](RedisStore::round_trips) counts what the store sends.
///
/// # Live streams: the change feed
///
/// [Live streams](crate::live) are pushed what any process adds, through sharded pub/sub
/// (Redis 7 or later):
///
/// - Every write that makes messages visible in a context — an add, a put-back, the
///   destination views of a [`rotate`](MessageStore::rotate) — publishes the view id on
///   the session's channel, [`live_channel`](RedisStore::live_channel)
///   (`{namespace}:{<session>};live`), with `SPUBLISH` inside the write's script: no
///   extra round trip. The channel carries the session's hash tag, so on Redis Cluster
///   it lives in the session's slot, is published on the node that holds the session,
///   and reaches only the subscribers connected there. When the slot moves to another
///   node (resharding, failover) the server drops the subscription; the feed subscribes
///   again, where the slot is now, and wakes the session's streams.
/// - The first live stream a store opens starts a background task with one more
///   connection (RESP3; on Cluster a cluster connection, one per node), for the whole
///   store and all its clones, whatever the number of streams. It subscribes
///   (`SSUBSCRIBE`) the channel of each session with an open stream in this process, and
///   unsubscribes it when the session's last stream closes: subscriptions are bounded by
///   the streams ([`LiveOptions`](crate::live::LiveOptions) caps them). A notification
///   wakes the streams of its context, which then take the messages: of several streams
///   (in any processes) exactly one gets each message.
/// - Pub/sub is at most once: a notification sent while the subscriber is disconnected,
///   or before its subscription is confirmed, is lost. The feed makes up for it: a new
///   subscription wakes its session's streams, which take again; after its connection
///   is lost the task reconnects (backing off from 100 ms to 5 s, with a warning),
///   subscribes every watched session again and wakes every stream; a `PING` every 10 s
///   notices a connection that died silently; and every stream polls the store at each
///   [`keep_alive`](crate::live::LiveOptions::keep_alive). A lost notification delays a
///   message until then; it never loses it.
/// - On a server without sharded pub/sub (before Redis 7) the adds still work (the
///   publish is a `redis.pcall`); the task notices, warns, wakes the streams it has
///   every second, and later streams poll every
///   [`poll_interval`](crate::live::LiveOptions::poll_interval).
/// - The task ends when the store and its clones are dropped. A store made by
///   [`from_manager`](RedisStore::from_manager) or [`from_cluster`](RedisStore::from_cluster)
///   has no feed: its streams poll.
///
/// ```no_run
/// use messages_core::{Message, MessageStore, MessagesConfig, RedisOptions, RedisStore, SessionKey, ViewId};
///
/// # async fn run() -> messages_core::Result<()> {
/// let store = RedisStore::connect("redis://127.0.0.1:6379", RedisOptions::default()).await?;
/// // Or Redis Cluster:
/// // RedisStore::connect_cluster(["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"], RedisOptions::default()).await?;
///
/// // Out of band, from a job:
/// let (session, view) = (SessionKey::generate()?, ViewId::new("app::dashboard")?);
/// store.add(&session, &view, Message::info("Import finished")).await?;
///
/// // For requests (the store is a cheap handle; clones share the connection):
/// let config = MessagesConfig::new(store.clone());
/// # let _ = config; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    connection: Connection,
    /// The change feed, for a store that made its own connection.
    feed: Option<Arc<Feed>>,
    namespace: String,
    per_context: usize,
    ttl_ms: u64,
    lease_ms: u64,
    time_bound: Duration,
    /// Settles held back to go with the next command, shared by clones.
    queue: Arc<Queue>,
    settle_delay: Duration,
    /// Round trips sent, shared by clones (see [`round_trips`](RedisStore::round_trips)).
    round_trips: Arc<AtomicU64>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.connection {
            Connection::Single(_) => "single",
            Connection::Cluster(_) => "cluster",
        };
        f.debug_struct("RedisStore")
            .field("connection", &kind)
            .field("namespace", &self.namespace)
            .field("per_context", &self.per_context)
            .field("idle_ttl_ms", &self.ttl_ms)
            .field("read_lease_ms", &self.lease_ms)
            .field("settle_delay", &self.settle_delay)
            .field("settles_held", &self.queue.len())
            .field("change_feed", &self.feed.is_some())
            .finish_non_exhaustive()
    }
}

fn config_error(what: &str, e: &RedisError) -> Error {
    Error::Config(format!("{what}: {e}"))
}

impl RedisStore {
    /// Connects to one Redis server, e.g. `redis://127.0.0.1:6379` or
    /// `redis://:password@host:6379/2`. The connection reconnects by itself.
    ///
    /// # Errors
    /// [`Error::Config`] for a bad URL, namespace, or a read lease not shorter than the
    /// idle TTL (checked before connecting), [`Error::Unavailable`] if the server cannot
    /// be reached now.
    pub async fn connect(url: &str, options: RedisOptions) -> Result<RedisStore> {
        Settings::check(&options)?;
        let client = ::redis::Client::open(url).map_err(|e| config_error("redis url", &e))?;
        let feed = Source::Single(resp3(client.get_connection_info()));
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.response_timeout))
            // Few, short retries: a request waits at most about one connect timeout, and
            // the next request tries again.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(200));
        let connect = ConnectionManager::new_with_config(client, config);
        let bound = time_bound(&options);
        let manager = match tokio::time::timeout(bound, connect).await {
            Ok(m) => m.map_err(unavailable)?,
            Err(_) => return Err(unavailable(TimedOut(bound))),
        };
        RedisStore::new(Connection::Single(manager), options, Some(feed))
    }

    /// Connects to Redis Cluster through any of its nodes (`redis://host:port` each).
    ///
    /// # Errors
    /// [`Error::Config`] for bad URLs or options (as for [`connect`](RedisStore::connect)),
    /// [`Error::Unavailable`] if the cluster cannot be reached now.
    pub async fn connect_cluster<'a>(
        nodes: impl IntoIterator<Item = &'a str>,
        options: RedisOptions,
    ) -> Result<RedisStore> {
        Settings::check(&options)?;
        let nodes = nodes
            .into_iter()
            .map(IntoConnectionInfo::into_connection_info)
            .collect::<std::result::Result<Vec<ConnectionInfo>, RedisError>>()
            .map_err(|e| config_error("redis cluster nodes", &e))?;
        let feed = Source::Cluster(nodes.clone());
        let client = ClusterClient::builder(nodes)
            .connection_timeout(options.connect_timeout)
            .response_timeout(options.response_timeout)
            .retries(2)
            .build()
            .map_err(|e| config_error("redis cluster nodes", &e))?;
        let bound = time_bound(&options);
        let connection = match tokio::time::timeout(bound, client.get_async_connection()).await {
            Ok(c) => c.map_err(unavailable)?,
            Err(_) => return Err(unavailable(TimedOut(bound))),
        };
        RedisStore::new(Connection::Cluster(connection), options, Some(feed))
    }

    /// A store on a connection manager you configured yourself. Its timeouts apply; the
    /// store additionally bounds each operation by `connect_timeout + response_timeout`.
    ///
    /// Such a store has no change feed (it cannot open the connection one needs): its
    /// adds are still announced to other processes, but its own live streams poll
    /// every [`poll_interval`](crate::live::LiveOptions::poll_interval). Use
    /// [`connect`](RedisStore::connect) for streams that are pushed to.
    ///
    /// # Errors
    /// [`Error::Config`] for bad options (as for [`connect`](RedisStore::connect)).
    pub fn from_manager(manager: ConnectionManager, options: RedisOptions) -> Result<RedisStore> {
        RedisStore::new(Connection::Single(manager), options, None)
    }

    /// A store on a cluster connection you made yourself (see
    /// [`from_manager`](RedisStore::from_manager) for timeouts; like it, without a change
    /// feed: use [`connect_cluster`](RedisStore::connect_cluster) for that).
    ///
    /// # Errors
    /// [`Error::Config`] for bad options (as for [`connect`](RedisStore::connect)).
    pub fn from_cluster(
        connection: ClusterConnection,
        options: RedisOptions,
    ) -> Result<RedisStore> {
        RedisStore::new(Connection::Cluster(connection), options, None)
    }

    fn new(
        connection: Connection,
        options: RedisOptions,
        feed: Option<Source>,
    ) -> Result<RedisStore> {
        let Settings {
            ttl_ms,
            lease_ms,
            settle_delay,
        } = Settings::check(&options)?;
        let feed = feed.map(|source| {
            Arc::new(Feed::new(FeedConfig {
                source,
                namespace: options.namespace.clone(),
                connect_timeout: options.connect_timeout,
                response_timeout: options.response_timeout,
            }))
        });
        Ok(RedisStore {
            lease_ms,
            connection,
            feed,
            time_bound: time_bound(&options),
            round_trips: Arc::new(AtomicU64::new(0)),
            queue: Arc::new(Queue::default()),
            settle_delay,
            per_context: options.per_context.clamp(1, MAX_PER_CONTEXT),
            ttl_ms,
            namespace: options.namespace,
        })
    }

    /// How many round trips to Redis this store and its clones have sent: each command or
    /// pipeline sent and awaited counts one, whatever it carries — a request's operation,
    /// settles of read leases, a retry. (The change feed's own connection, and a script
    /// that `redis` loads again after a server lost its script cache, are not counted.)
    /// For measuring, e.g. round trips per request:
    ///
    /// ```no_run
    /// # use messages_core::{Message, MessageStore, RedisOptions, RedisStore, SessionKey, ViewId};
    /// # async fn run() -> messages_core::Result<()> {
    /// let store = RedisStore::connect("redis://127.0.0.1:6379", RedisOptions::default()).await?;
    /// let before = store.round_trips();
    /// store.add(&SessionKey::generate()?, &ViewId::new("app::inbox")?, Message::info("Hi")).await?;
    /// assert_eq!(store.round_trips() - before, 1);
    /// # Ok(()) }
    /// ```
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    /// A key of `session` (of a context of it with `view`): see [`Key`].
    fn key<'a>(
        &'a self,
        session: &'a SessionKey,
        view: Option<&'a ViewId>,
        suffix: &'static str,
    ) -> Key<'a> {
        Key {
            namespace: &self.namespace,
            session: session.as_str(),
            view: view.map(ViewId::as_str),
            suffix,
        }
    }

    /// The key that marks a session rotated away from: `{namespace}:{<session>};retired`.
    /// While it lives (`idle_ttl`), the write script refuses adds to the session.
    fn retired_key<'a>(&'a self, session: &'a SessionKey) -> Key<'a> {
        self.key(session, None, ";retired")
    }

    /// The key of a session's arrival sequence: `{namespace}:{<session>};seq`.
    fn seq_key<'a>(&'a self, session: &'a SessionKey) -> Key<'a> {
        self.key(session, None, ";seq")
    }

    /// The key of a context's sorted set: `{namespace}:{<session>}:{view}`.
    pub fn context_key(&self, session: &SessionKey, view: &ViewId) -> String {
        self.ctx_key(session, view).to_string()
    }

    /// The key of a session's view index: `{namespace}:{<session>};views`.
    pub fn views_key(&self, session: &SessionKey) -> String {
        self.index_key(session).to_string()
    }

    /// [`context_key`](RedisStore::context_key), written in place where it is sent.
    fn ctx_key<'a>(&'a self, session: &'a SessionKey, view: &'a ViewId) -> Key<'a> {
        self.key(session, Some(view), "")
    }

    /// [`views_key`](RedisStore::views_key), written in place where it is sent.
    fn index_key<'a>(&'a self, session: &'a SessionKey) -> Key<'a> {
        self.key(session, None, ";views")
    }

    /// The key of a context's lease set: `{namespace}:{<session>}:{view};leases`.
    fn lease_set_key<'a>(&'a self, session: &'a SessionKey, view: &'a ViewId) -> Key<'a> {
        self.key(session, Some(view), ";leases")
    }

    /// The channel a session's adds are announced on, with sharded pub/sub (`SPUBLISH`),
    /// for live streams: `{namespace}:{<session>};live`, in the session's hash slot.
    /// The message is the view id.
    pub fn live_channel(&self, session: &SessionKey) -> String {
        feed::channel(&self.namespace, session)
    }

    /// The prefix of a session's context keys (the Lua scripts append the view).
    fn context_prefix<'a>(&'a self, session: &'a SessionKey) -> Key<'a> {
        self.key(session, None, ":")
    }

    /// Runs one operation on a clone of the connection, within the store's time bound.
    async fn run<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: Future<Output = std::result::Result<T, RedisError>>,
    {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        match tokio::time::timeout(self.time_bound, op(self.connection.clone())).await {
            Ok(result) => result.map_err(unavailable),
            Err(_) => Err(unavailable(TimedOut(self.time_bound))),
        }
    }

    /// Decodes members, skipping (with one warning) those that are not our messages.
    fn decode(members: Vec<Vec<u8>>, view: &ViewId) -> Vec<Message> {
        let mut skipped = 0usize;
        let mut first_error = None;
        let messages = members
            .into_iter()
            .filter_map(|raw| {
                serde_json::from_slice::<Message>(&raw)
                    .map_err(|e| {
                        skipped += 1;
                        first_error.get_or_insert(e);
                    })
                    .ok()
            })
            .collect();
        if let Some(error) = first_error {
            tracing::warn!(view = %view, skipped, %error, "messages: undecodable members in redis skipped");
        }
        messages
    }

    /// A call of `TAKE`, `SETTLE` or `DISCARD` on a context: its keys (the context, the
    /// view index, the lease set, the sequence), the view and the token.
    fn on_context<'a>(
        &self,
        script: &'a Script,
        session: &SessionKey,
        view: &ViewId,
        token: &str,
    ) -> Eval<'a> {
        let keys = [
            self.ctx_key(session, view),
            self.index_key(session),
            self.lease_set_key(session, view),
            self.seq_key(session),
        ];
        let mut eval = Eval::new(script, &keys);
        eval.arg(view.as_str()).arg(token);
        eval
    }

    /// Runs `WRITE` in `mode` (`add` or `back`) with `messages`, which are not empty.
    async fn write(
        &self,
        mode: &str,
        session: &SessionKey,
        view: &ViewId,
        messages: &[Message],
    ) -> Result<()> {
        let keys = [
            self.ctx_key(session, view),
            self.index_key(session),
            self.seq_key(session),
            self.retired_key(session),
        ];
        let mut eval = Eval::new(&WRITE, &keys);
        eval.arg(mode)
            .arg(view.as_str())
            .arg(self.per_context)
            .arg(self.ttl_ms)
            .arg(self.context_prefix(session))
            .arg(self.live_channel(session));
        for m in messages {
            eval.arg_display(m.id()).arg_json(m)?;
        }
        let trimmed: i64 = self.send(session, Op::Script(eval)).await?;
        if trimmed < 0 {
            tracing::warn!(
                dropped = messages.len(),
                "messages: session rotated away from, its adds are refused"
            );
        } else if trimmed > 0 {
            tracing::warn!(view = %view, dropped = trimmed, cap = self.per_context, "messages: context full, oldest messages dropped");
        }
        Ok(())
    }

    /// Runs `TAKE`: with an empty token a plain take, else into a reserve under it.
    async fn take_with(
        &self,
        session: &SessionKey,
        view: &ViewId,
        token: &str,
    ) -> Result<Vec<Message>> {
        let mut eval = self.on_context(&TAKE, session, view, token);
        eval.arg(self.lease_ms)
            .arg(self.per_context)
            .arg(self.ttl_ms);
        let members: Vec<Vec<u8>> = self.send(session, Op::Script(eval)).await?;
        Ok(RedisStore::decode(members, view))
    }

    /// Runs `SETTLE` once.
    async fn settle_once(&self, session: &SessionKey, view: &ViewId, lease: &Lease) -> Result<()> {
        let eval = self.on_context(&SETTLE, session, view, lease.token());
        self.run(|mut c| async move { eval.invoke_async::<()>(&mut c).await })
            .await
    }
}

/// The connection info with RESP3, which the change feed's pushes need.
fn resp3(info: &ConnectionInfo) -> ConnectionInfo {
    let redis = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    info.clone().set_redis_settings(redis)
}

fn time_bound(options: &RedisOptions) -> Duration {
    options.connect_timeout + options.response_timeout
}

/// The options a store keeps, checked.
struct Settings {
    ttl_ms: u64,
    lease_ms: u64,
    settle_delay: Duration,
}

impl Settings {
    /// Refuses a bad namespace, and a read lease not shorter than the idle TTL: a
    /// reserve lives `idle_ttl` from the read that made it, so with a longer lease it
    /// would expire before the lease is up and a crashed request's messages be lost.
    fn check(options: &RedisOptions) -> Result<Settings> {
        let ns = &options.namespace;
        let valid = !ns.is_empty()
            && ns.len() <= MAX_NAMESPACE_BYTES
            && ns
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'{' && b != b'}');
        if !valid {
            return Err(Error::Config(format!(
                "redis namespace {ns:?}: 1 to {MAX_NAMESPACE_BYTES} bytes of printable ASCII without space or braces"
            )));
        }
        let ms = |d: Duration| {
            u64::try_from(d.as_millis())
                .unwrap_or(u64::MAX)
                .clamp(1, MAX_TTL_MS)
        };
        let (ttl_ms, lease_ms) = (ms(options.idle_ttl), ms(options.read_lease));
        if lease_ms >= ttl_ms {
            return Err(Error::Config(format!(
                "redis read_lease ({lease_ms} ms) must be shorter than idle_ttl ({ttl_ms} ms): \
                 the reserve of a read would expire before its lease is up"
            )));
        }
        if options.settle_delay.saturating_mul(2) >= options.read_lease {
            return Err(Error::Config(format!(
                "redis settle_delay ({:?}) must be shorter than half the read_lease ({:?}): \
                 a held settle must be sent well before its lease is up",
                options.settle_delay, options.read_lease
            )));
        }
        Ok(Settings {
            ttl_ms,
            lease_ms,
            settle_delay: options.settle_delay,
        })
    }
}

#[async_trait]
impl MessageStore for RedisStore {
    async fn add_all(
        &self,
        session: &SessionKey,
        view: &ViewId,
        messages: Vec<Message>,
    ) -> Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        self.write("add", session, view, &messages).await
    }

    /// Before everything the context holds now, in the order given, leaving out messages
    /// whose id is already there; one round trip.
    async fn put_back(
        &self,
        session: &SessionKey,
        view: &ViewId,
        messages: Vec<Message>,
    ) -> Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        self.write("back", session, view, &messages).await
    }

    async fn take(&self, session: &SessionKey, view: &ViewId) -> Result<Vec<Message>> {
        self.take_with(session, view, "").await
    }

    /// Takes the context into a reserve under a fresh lease, when it holds messages.
    async fn take_leased(&self, session: &SessionKey, view: &ViewId) -> Result<Taken> {
        let token = MessageId::new().to_string();
        let messages = self.take_with(session, view, &token).await?;
        let lease = (!messages.is_empty()).then(|| Lease::new(token));
        Ok(Taken { messages, lease })
    }

    /// Held back, on a tokio runtime, to go with the store's next command or after
    /// [`settle_delay`](RedisOptions::settle_delay) (see the type's docs): returns `Ok`
    /// at once, and a failure to send it later is logged and tried again in the
    /// background until the lease would be up. Sent now, as before, when
    /// `settle_delay` is zero, without a runtime, or when the held queue is full; then a
    /// failure is also tried again in the background (on a runtime) and returned.
    async fn settle(&self, session: &SessionKey, view: &ViewId, lease: Lease) -> Result<()> {
        if self.settle_delay.is_zero() {
            return self.settle_alone(session, view, lease).await;
        }
        self.hold(session, view, lease).await
    }

    /// Sends the settles held back: on one server one pipeline, on Redis Cluster one per
    /// session, at once. Those that fail are tried again in the background.
    async fn flush(&self) -> Result<()> {
        self.flush_held().await
    }

    async fn peek(&self, session: &SessionKey, view: &ViewId) -> Result<Vec<Message>> {
        let mut cmd = ::redis::cmd("ZRANGE");
        cmd.arg(self.ctx_key(session, view)).arg(0).arg(-1);
        let members: Vec<Vec<u8>> = self.send(session, Op::Cmd(cmd)).await?;
        Ok(RedisStore::decode(members, view))
    }

    /// The number of members, including any that would fail to decode.
    async fn count(&self, session: &SessionKey, view: &ViewId) -> Result<usize> {
        let mut cmd = ::redis::cmd("ZCARD");
        cmd.arg(self.ctx_key(session, view));
        self.send(session, Op::Cmd(cmd)).await
    }

    async fn discard(&self, session: &SessionKey, view: &ViewId) -> Result<()> {
        let eval = self.on_context(&DISCARD, session, view, "");
        self.send(session, Op::Script(eval)).await
    }

    async fn clear_session(&self, session: &SessionKey) -> Result<()> {
        let keys = [self.index_key(session), self.seq_key(session)];
        let mut eval = Eval::new(&CLEAR_SESSION, &keys);
        eval.arg(self.context_prefix(session));
        let _cleared: usize = self.send(session, Op::Script(eval)).await?;
        Ok(())
    }

    /// Retires `from` first (`SET {ns}:{<from>};retired PX idle_ttl`: the write script
    /// refuses adds to it from then on), then moves view by view like the trait's default
    /// (`take_leased` on `from`'s slot, `put_back` on `to`'s, `settle`), so a concurrent
    /// reader of `from` and the move never both get a message. On Redis Cluster the two
    /// keys live in different slots: a process that dies between a take and its put-back
    /// leaves that view's messages in `from`'s reserve, which returns to `from` when the
    /// lease is up (lost to the browser, never shown twice).
    async fn rotate(&self, from: &SessionKey, to: &SessionKey) -> Result<()> {
        let retire = Cmd::set_options(
            self.retired_key(from),
            1,
            ::redis::SetOptions::default().with_expiration(::redis::SetExpiry::PX(self.ttl_ms)),
        );
        self.send::<()>(from, Op::Cmd(retire)).await?;
        for view in self.pending_views(from).await? {
            let taken = self.take_leased(from, &view).await?;
            if !taken.messages.is_empty() {
                self.put_back(to, &view, taken.messages).await?;
            }
            if let Some(lease) = taken.lease {
                self.settle(from, &view, lease).await?;
            }
        }
        Ok(())
    }

    /// A watch woken through the store's change feed (sharded pub/sub; see the type's
    /// docs); `None` for a store made with [`from_manager`](RedisStore::from_manager) or
    /// [`from_cluster`](RedisStore::from_cluster), whose streams poll.
    fn watch(&self, session: &SessionKey, view: &ViewId) -> Option<Watch> {
        self.feed.as_ref()?.watch(session, view)
    }

    async fn pending_views(&self, session: &SessionKey) -> Result<Vec<ViewId>> {
        let mut eval = Eval::new(&PENDING_VIEWS, &[self.index_key(session)]);
        eval.arg(self.context_prefix(session));
        let names: Vec<String> = self.send(session, Op::Script(eval)).await?;
        let mut views: Vec<ViewId> = names
            .into_iter()
            .filter_map(|n| match ViewId::new(n) {
                Ok(v) => Some(v),
                Err(e) => {
                    tracing::warn!(error = %e, "messages: invalid view id in redis index skipped");
                    None
                }
            })
            .collect();
        views.sort();
        Ok(views)
    }
}
