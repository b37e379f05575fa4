//! The change feed of a [`RedisStore`](super::RedisStore): sharded pub/sub.
//!
//! Every write that makes messages visible in a context publishes the view id on the
//! session's channel, `{namespace}:{<session>};live` (`SPUBLISH`, inside the write's
//! script). A task per store, started by the first [`watch`](Feed::watch), owns one
//! RESP3 connection (on Cluster, the cluster connection: one per node), subscribes
//! (`SSUBSCRIBE`) the channel of each session with an open watch and unsubscribes it when
//! the session's last watch closes, and wakes the store's [`LiveHub`] on each
//! notification. After the connection was lost it subscribes again and wakes every
//! watch, since adds may have been missed meanwhile.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use ::redis::aio::{ConnectionLike, MultiplexedConnection};
use ::redis::cluster::ClusterClientBuilder;
use ::redis::cluster_async::ClusterConnection;
use ::redis::{
    AsyncConnectionConfig, Client, ConnectionInfo, ProtocolVersion, PushInfo, PushKind, RedisError,
    RedisResult, Value,
};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::live::{Interest, LiveHub, Watch};
use crate::{SessionKey, ViewId};

/// Subscription commands in flight at once when many sessions change together.
const CONCURRENCY: usize = 64;
/// How often the subscriber connection is checked with `PING`: a connection that died
/// silently (no reset) is noticed within this and a response timeout.
const PING_EVERY: Duration = Duration::from_secs(10);
/// First pause after a failure; it doubles up to [`MAX_PAUSE`].
const MIN_PAUSE: Duration = Duration::from_millis(100);
const MAX_PAUSE: Duration = Duration::from_secs(5);
/// How often every watch is woken when the server has no sharded pub/sub.
const FALLBACK_WAKE: Duration = Duration::from_secs(1);

/// The suffix of a session's channel.
const CHANNEL_SUFFIX: &str = "};live";

/// The channel a session's adds are published on: `{namespace}:{<session>};live`, in
/// the session's hash slot.
pub(super) fn channel(namespace: &str, session: &SessionKey) -> String {
    format!("{namespace}:{{{}{CHANNEL_SUFFIX}", session.as_str())
}

/// The session of a channel of `namespace`, and the view of a notification's payload;
/// `None` for anything else.
fn notified(namespace: &str, data: &[Value]) -> Option<(SessionKey, ViewId)> {
    let [Value::BulkString(channel), Value::BulkString(payload)] = data else {
        return None;
    };
    let session = session_of(namespace, channel)?;
    let view = ViewId::new(std::str::from_utf8(payload).ok()?).ok()?;
    Some((session, view))
}

/// The session whose channel `channel` is.
fn session_of(namespace: &str, channel: &[u8]) -> Option<SessionKey> {
    std::str::from_utf8(channel)
        .ok()?
        .strip_prefix(namespace)?
        .strip_prefix(":{")?
        .strip_suffix(CHANNEL_SUFFIX)?
        .parse()
        .ok()
}

/// Where the subscriber connects.
#[derive(Clone)]
pub(super) enum Source {
    /// One server (its connection info, switched to RESP3).
    Single(ConnectionInfo),
    /// Redis Cluster, through these nodes.
    Cluster(Vec<ConnectionInfo>),
}

/// What the subscriber task needs to connect.
#[derive(Clone)]
pub(super) struct FeedConfig {
    pub(super) source: Source,
    pub(super) namespace: String,
    pub(super) connect_timeout: Duration,
    pub(super) response_timeout: Duration,
}

/// A store's change feed: its hub, and the subscriber task once started.
pub(super) struct Feed {
    hub: LiveHub,
    /// Until the first watch: what the subscriber task is started with.
    start: Mutex<Option<(mpsc::UnboundedReceiver<Interest>, FeedConfig)>>,
    /// The server has no sharded pub/sub (Redis before 7): new streams poll.
    unsupported: AtomicBool,
}

impl Feed {
    pub(super) fn new(config: FeedConfig) -> Feed {
        let (hub, interest) = LiveHub::with_interest();
        Feed {
            hub,
            start: Mutex::new(Some((interest, config))),
            unsupported: AtomicBool::new(false),
        }
    }

    /// A watch on the context, starting the subscriber task on the first call. `None`
    /// (the stream polls) outside a tokio runtime, or when the server turned out to have
    /// no sharded pub/sub.
    pub(super) fn watch(self: &Arc<Feed>, session: &SessionKey, view: &ViewId) -> Option<Watch> {
        if self.unsupported.load(Ordering::Relaxed) {
            return None;
        }
        {
            let mut start = self.start.lock().unwrap_or_else(PoisonError::into_inner);
            if start.is_some() {
                let runtime = tokio::runtime::Handle::try_current().ok()?;
                if let Some((interest, config)) = start.take() {
                    runtime.spawn(run(Arc::downgrade(self), interest, config));
                }
            }
        }
        Some(self.hub.watch(session, view))
    }
}

/// The subscriber's connection.
#[derive(Clone)]
enum Conn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl Conn {
    /// Connects, with pushes (notifications, confirmations, disconnections) sent to the
    /// returned receiver.
    async fn open(config: &FeedConfig) -> RedisResult<(Conn, mpsc::UnboundedReceiver<PushInfo>)> {
        let (tx, rx) = mpsc::unbounded_channel();
        let bound = config.connect_timeout + config.response_timeout;
        let connect = async {
            match &config.source {
                Source::Single(info) => {
                    let settings = AsyncConnectionConfig::new()
                        .set_connection_timeout(Some(config.connect_timeout))
                        .set_response_timeout(Some(config.response_timeout))
                        .set_push_sender(tx);
                    let client = Client::open(info.clone())?;
                    let c = client
                        .get_multiplexed_async_connection_with_config(&settings)
                        .await?;
                    Ok(Conn::Single(c))
                }
                Source::Cluster(nodes) => {
                    let client = ClusterClientBuilder::new(nodes.clone())
                        .use_protocol(ProtocolVersion::RESP3)
                        .connection_timeout(config.connect_timeout)
                        .response_timeout(config.response_timeout)
                        .retries(2)
                        .push_sender(tx)
                        .build()?;
                    Ok(Conn::Cluster(client.get_async_connection().await?))
                }
            }
        };
        match tokio::time::timeout(bound, connect).await {
            Ok(conn) => conn.map(|c| (c, rx)),
            Err(_) => Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no connection within {bound:?}"),
            ))),
        }
    }

    /// Whether the connection mends itself after an error (the cluster connection
    /// reconnects to each node), rather than being made again.
    fn mends_itself(&self) -> bool {
        matches!(self, Conn::Cluster(_))
    }

    /// `SSUBSCRIBE` (`subscribe`) or `SUNSUBSCRIBE` one channel.
    async fn change(&mut self, channel: &str, subscribe: bool) -> RedisResult<()> {
        match self {
            // One channel: one confirmation, which the connection takes as the reply.
            Conn::Single(c) => {
                let name = if subscribe {
                    "SSUBSCRIBE"
                } else {
                    "SUNSUBSCRIBE"
                };
                let mut cmd = ::redis::cmd(name);
                cmd.arg(channel);
                c.req_packed_command(&cmd).await?.extract_error().map(drop)
            }
            Conn::Cluster(c) if subscribe => c.ssubscribe(channel).await,
            Conn::Cluster(c) => c.sunsubscribe(channel).await,
        }
    }

    async fn ping(&mut self) -> RedisResult<()> {
        let cmd = ::redis::cmd("PING");
        let reply = match self {
            Conn::Single(c) => c.req_packed_command(&cmd).await,
            Conn::Cluster(c) => c.req_packed_command(&cmd).await,
        };
        reply?.extract_error().map(drop)
    }
}

/// Whether the server does not know the command: Redis before 7 has no sharded pub/sub
/// (and Redis before 6 no RESP3).
fn is_unknown_command(e: &RedisError) -> bool {
    e.to_string()
        .to_ascii_lowercase()
        .contains("unknown command")
}

/// Pauses after failures, doubling, with jitter; logs sparingly.
struct Backoff {
    failures: u32,
    pause: Duration,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff {
            failures: 0,
            pause: MIN_PAUSE,
        }
    }

    /// Logs the failure (the first of an outage and then ever more rarely as a warning)
    /// and returns how long to pause.
    fn failed(&mut self, what: &str, e: &RedisError) -> Duration {
        self.failures += 1;
        if self.failures.is_power_of_two() {
            tracing::warn!(error = %e, failures = self.failures, "messages: redis change feed: {what} failed; live streams fall back to their keep-alive poll until it is back");
        } else {
            tracing::debug!(error = %e, failures = self.failures, "messages: redis change feed: {what} failed");
        }
        let pause = self.pause;
        self.pause = (self.pause * 2).min(MAX_PAUSE);
        // Up to a quarter more, so that many processes do not reconnect in step.
        let jitter = getrandom::u32().unwrap_or(0) % 256;
        pause + pause * jitter / 1024
    }

    fn succeeded(&mut self) {
        if self.failures > 0 {
            tracing::info!(
                failures = self.failures,
                "messages: redis change feed is back"
            );
        }
        *self = Backoff::new();
    }
}

/// Interest not yet acted on: per session, whether it should be subscribed.
type Pending = HashMap<SessionKey, bool>;

fn record(pending: &mut Pending, interest: Interest) {
    match interest {
        Interest::Watched(s) => pending.insert(s, true),
        Interest::Unwatched(s) => pending.insert(s, false),
    };
}

/// Sleeps for `pause` while recording interest; `false` when the store is gone.
async fn pause(
    pause: Duration,
    interest: &mut mpsc::UnboundedReceiver<Interest>,
    pending: &mut Pending,
) -> bool {
    let until = tokio::time::Instant::now() + pause;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(until) => return true,
            event = interest.recv() => match event {
                Some(event) => record(pending, event),
                None => return false,
            },
        }
    }
}

/// Subscribes (`true`) or unsubscribes each session, [`CONCURRENCY`] at a time. Returns
/// the changes made, those that failed, and the first error.
async fn change_all(
    conn: &Conn,
    namespace: &str,
    changes: Vec<(SessionKey, bool)>,
) -> (
    Vec<(SessionKey, bool)>,
    Vec<(SessionKey, bool)>,
    Option<RedisError>,
) {
    let mut done = Vec::with_capacity(changes.len());
    let mut failed = Vec::new();
    let mut error = None;
    let mut changes = changes.into_iter();
    let mut tasks = JoinSet::new();
    loop {
        while tasks.len() < CONCURRENCY {
            let Some((session, subscribe)) = changes.next() else {
                break;
            };
            let mut conn = conn.clone();
            let channel = channel(namespace, &session);
            tasks.spawn(async move {
                let result = conn.change(&channel, subscribe).await;
                (session, subscribe, result)
            });
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        match joined {
            Ok((session, subscribe, Ok(()))) => done.push((session, subscribe)),
            Ok((session, subscribe, Err(e))) => {
                failed.push((session, subscribe));
                error.get_or_insert(e);
            }
            Err(e) => {
                // A task that panicked or was cancelled: its session is unknown here, so
                // the caller subscribes everything again.
                error.get_or_insert(RedisError::from(std::io::Error::other(e.to_string())));
            }
        }
    }
    (done, failed, error)
}

/// The subscriber task: runs until the store (its [`Feed`]) is dropped.
async fn run(
    feed: Weak<Feed>,
    mut interest: mpsc::UnboundedReceiver<Interest>,
    config: FeedConfig,
) {
    let namespace = config.namespace.as_str();
    let mut backoff = Backoff::new();
    let mut pending = Pending::new();
    // The sessions whose channel is subscribed on the current connection.
    let mut subscribed: HashSet<SessionKey> = HashSet::new();
    let mut conn: Option<(Conn, mpsc::UnboundedReceiver<PushInfo>)> = None;
    // Subscribe every watched session and wake every watch: after (re)connecting.
    let mut resync = true;
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        let Some((c, pushes)) = &mut conn else {
            match Conn::open(&config).await {
                Ok(opened) => {
                    conn = Some(opened);
                    subscribed.clear();
                    resync = true;
                }
                Err(e) if is_unknown_command(&e) => {
                    return fall_back(&feed, &mut interest, &e).await;
                }
                Err(e) => {
                    let wait = backoff.failed("connecting", &e);
                    if !pause(wait, &mut interest, &mut pending).await {
                        return;
                    }
                }
            }
            continue;
        };

        // After a failure: the connection is made again, or mends itself (Cluster).
        let mut failure = None;
        if resync {
            let Some(sessions) = feed.upgrade().map(|f| f.hub.sessions()) else {
                return;
            };
            let changes = sessions.into_iter().map(|s| (s, true)).collect();
            let (done, _, error) = change_all(c, namespace, changes).await;
            subscribed.extend(done.into_iter().map(|(s, _)| s));
            match error {
                None => {
                    resync = false;
                    backoff.succeeded();
                    // Adds while the feed was down were not heard.
                    let Some(feed) = feed.upgrade() else { return };
                    feed.hub.wake_all();
                    // Then what was recorded meanwhile.
                    continue;
                }
                Some(e) => failure = Some(("subscribing", e)),
            }
        } else if !pending.is_empty() {
            let changes: Vec<(SessionKey, bool)> = pending.drain().collect();
            let (done, failed, error) = change_all(c, namespace, changes).await;
            let Some(feed) = feed.upgrade() else { return };
            for (session, subscribe) in done {
                if subscribe {
                    // An add between the stream's first take and this subscription was
                    // not heard: take again.
                    feed.hub.wake_session(&session);
                    subscribed.insert(session);
                } else {
                    subscribed.remove(&session);
                }
            }
            for (session, subscribe) in failed {
                pending.entry(session).or_insert(subscribe);
            }
            if let Some(e) = error {
                failure = Some(("subscribing", e));
            }
        }
        if let Some((what, e)) = failure {
            if is_unknown_command(&e) {
                return fall_back(&feed, &mut interest, &e).await;
            }
            if !c.mends_itself() {
                conn = None;
            }
            resync = true;
            let wait = backoff.failed(what, &e);
            if !pause(wait, &mut interest, &mut pending).await {
                return;
            }
            continue;
        }

        tokio::select! {
            event = interest.recv() => {
                let Some(event) = event else { return };
                record(&mut pending, event);
                while let Ok(event) = interest.try_recv() {
                    record(&mut pending, event);
                }
            }
            push = pushes.recv() => match push {
                Some(PushInfo { kind: PushKind::SMessage, data }) => {
                    if let Some((session, view)) = notified(namespace, &data) {
                        let Some(feed) = feed.upgrade() else { return };
                        feed.hub.wake(&session, &view);
                    }
                }
                // The server dropped a subscription (its slot moved to another node):
                // subscribe again, where the slot is now.
                Some(PushInfo { kind: PushKind::SUnsubscribe, data }) => {
                    if let Some(session) = data.first().and_then(|c| match c {
                        Value::BulkString(c) => session_of(namespace, c),
                        _ => None,
                    }) && subscribed.remove(&session)
                    {
                        pending.entry(session).or_insert(true);
                    }
                }
                Some(PushInfo { kind: PushKind::Disconnection, .. }) | None => {
                    let e = RedisError::from(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "subscriber connection lost",
                    ));
                    if !c.mends_itself() || push.is_none() {
                        conn = None;
                    }
                    resync = true;
                    let wait = backoff.failed("listening", &e);
                    if !pause(wait, &mut interest, &mut pending).await {
                        return;
                    }
                }
                Some(_) => {}
            },
            _ = ping.tick() => {
                if let Err(e) = c.ping().await {
                    if !c.mends_itself() {
                        conn = None;
                    }
                    resync = true;
                    let wait = backoff.failed("checking the connection", &e);
                    if !pause(wait, &mut interest, &mut pending).await {
                        return;
                    }
                }
            }
        }
    }
}

/// The server has no sharded pub/sub: streams opened from now on poll, and those already
/// watching are woken every [`FALLBACK_WAKE`] until the store is dropped.
async fn fall_back(
    feed: &Weak<Feed>,
    interest: &mut mpsc::UnboundedReceiver<Interest>,
    e: &RedisError,
) {
    tracing::warn!(error = %e, "messages: redis has no sharded pub/sub (Redis 7 or later); live streams poll instead");
    if let Some(feed) = feed.upgrade() {
        feed.unsupported.store(true, Ordering::Relaxed);
    }
    loop {
        tokio::select! {
            event = interest.recv() => if event.is_none() { return },
            () = tokio::time::sleep(FALLBACK_WAKE) => {
                let Some(feed) = feed.upgrade() else { return };
                feed.hub.wake_all();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn channels_name_their_session_and_notifications_their_view() {
        let s = SessionKey::generate().unwrap();
        let ch = channel("msg", &s);
        assert_eq!(ch, format!("msg:{{{}}};live", s.as_str()));
        assert_eq!(session_of("msg", ch.as_bytes()), Some(s.clone()));
        assert_eq!(
            notified("msg", &[bulk(&ch), bulk("app::dashboard")]),
            Some((s.clone(), ViewId::from_static("app::dashboard")))
        );
        // Another namespace, a prefix of it, a bad session, a bad view, other shapes.
        assert_eq!(session_of("ms", ch.as_bytes()), None);
        assert_eq!(session_of("msg:x", ch.as_bytes()), None);
        assert_eq!(session_of("msg", b"msg:{short};live"), None);
        assert_eq!(session_of("msg", &[0xff, 0xfe]), None);
        let other = channel("msg:x", &s);
        assert_eq!(session_of("msg", other.as_bytes()), None);
        for data in [
            vec![bulk(&ch), bulk("bad view;id")],
            vec![bulk(&ch), bulk("")],
            vec![bulk(&ch), Value::BulkString(vec![0xff])],
            vec![bulk(&ch)],
            vec![bulk(&ch), bulk("app::x"), bulk("more")],
            vec![Value::Int(1), bulk("app::x")],
        ] {
            assert_eq!(notified("msg", &data), None, "{data:?}");
        }
    }
}
