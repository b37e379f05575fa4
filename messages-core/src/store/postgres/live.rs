//! The change feed of a [`PostgresStore`](super::PostgresStore): every write that makes
//! messages visible in a context sends `NOTIFY` on the table's channel, in its own
//! statement (so it is delivered at commit, and only then); each store that live streams
//! watch keeps one connection of its own `LISTEN`ing on that channel and wakes its
//! [`LiveHub`].

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::super::sql::{self, Settings};
use super::STORE;
use crate::live::{LiveHub, Watch};
use crate::{SessionKey, ViewId};

/// The `application_name` of the listening connection, to tell it apart in
/// `pg_stat_activity`.
pub(super) const APPLICATION_NAME: &str = "messages-live";

/// How often the listener checks that its connection still answers: a connection whose
/// server vanished without closing it (a partition, a frozen host) would otherwise wait
/// for notifications forever.
const PING: Duration = Duration::from_secs(30);

/// Pauses between attempts to connect again: from the first to the longest, doubling.
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const LONGEST_PAUSE: Duration = Duration::from_secs(5);

/// A connection that listened at least this long was a success: the next loss reconnects
/// at once instead of backing off further.
const STEADY: Duration = Duration::from_secs(5);

/// The channel of a messages table: `{table}_live` (the table name is checked, so this is
/// a valid identifier of at most 45 bytes).
pub(super) fn channel(table: &str) -> String {
    format!("{table}_live")
}

/// The context of a notification's payload, `<session> <view>` (as the statements write
/// it), or `None` for anything else.
fn parse(payload: &str) -> Option<(SessionKey, ViewId)> {
    let (session, view) = payload.split_once(' ')?;
    Some((session.parse().ok()?, ViewId::new(view).ok()?))
}

/// A store's hub and, once something watches, its listener task.
#[derive(Debug)]
pub(super) struct Feed {
    hub: LiveHub,
    channel: String,
    /// Held by every clone of the store (through an `Arc`); dropped with the last one,
    /// which ends the listener task.
    stop: Mutex<Option<oneshot::Sender<()>>>,
}

impl Feed {
    pub(super) fn new(channel: String) -> Feed {
        Feed {
            hub: LiveHub::new(),
            channel,
            stop: Mutex::new(None),
        }
    }

    pub(super) fn channel(&self) -> &str {
        &self.channel
    }

    /// A watch on a context; starts the listener if it does not run (the first watch, or
    /// the runtime it ran on is gone). `None` outside a tokio runtime: the stream then
    /// polls.
    pub(super) fn watch(
        &self,
        pool: &PgPool,
        settings: &Settings,
        session: &SessionKey,
        view: &ViewId,
    ) -> Option<Watch> {
        let mut stop = self.stop.lock().unwrap_or_else(PoisonError::into_inner);
        if stop.as_ref().is_none_or(oneshot::Sender::is_closed) {
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                tracing::warn!(
                    "messages: postgres live feed needs a tokio runtime; this stream polls"
                );
                return None;
            };
            let (tx, rx) = oneshot::channel();
            let listener = Listener {
                hub: self.hub.clone(),
                channel: self.channel.clone(),
                options: pool
                    .connect_options()
                    .as_ref()
                    .clone()
                    .application_name(APPLICATION_NAME),
                connect_timeout: settings.connect_timeout,
                bound: settings.time_bound,
            };
            runtime.spawn(listener.run(rx));
            *stop = Some(tx);
        }
        Some(self.hub.watch(session, view))
    }
}

/// The listener task's state.
struct Listener {
    hub: LiveHub,
    channel: String,
    options: PgConnectOptions,
    connect_timeout: Duration,
    /// Bound on connecting and `LISTEN`, and on a ping.
    bound: Duration,
}

impl Listener {
    /// Listens until `stop`'s sender is dropped (the store is).
    async fn run(self, mut stop: oneshot::Receiver<()>) {
        tokio::select! {
            _ = &mut stop => {}
            () = self.listen() => {}
        }
        tracing::debug!(channel = %self.channel, "messages: postgres live listener stopped");
    }

    /// Connects, listens, and connects again whenever the connection is lost, backing off
    /// while attempts fail. Never returns.
    async fn listen(&self) {
        // Failed attempts in a row (a connection lost before it was steady counts).
        let mut failures: u32 = 0;
        let mut lost = false;
        loop {
            if failures > 0 {
                let pause = FIRST_PAUSE.saturating_mul(1 << (failures - 1).min(6));
                tokio::time::sleep(pause.min(LONGEST_PAUSE)).await;
            }
            let mut listener = match self.connect().await {
                Ok(listener) => listener,
                Err(e) => {
                    failures = failures.saturating_add(1);
                    if failures == 1 {
                        tracing::warn!(error = %e, channel = %self.channel, "messages: postgres live listener cannot connect; live streams poll at each keep-alive until it does");
                    } else {
                        tracing::debug!(error = %e, failures, "messages: postgres live listener still cannot connect");
                    }
                    continue;
                }
            };
            if lost {
                tracing::info!(channel = %self.channel, failures, "messages: postgres live listener connected again");
            } else {
                tracing::debug!(channel = %self.channel, "messages: postgres live listener connected");
            }
            // Adds committed while nobody listened (before the first `LISTEN`, or since
            // the connection was lost) sent no notification here: every stream takes now.
            self.hub.wake_all();
            let since = Instant::now();
            self.serve(&mut listener).await;
            lost = true;
            failures = if since.elapsed() >= STEADY {
                0
            } else {
                failures.saturating_add(1)
            };
        }
    }

    /// A connection of its own (a pool of one, not the store's) listening on the channel.
    async fn connect(&self) -> crate::Result<PgListener> {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(self.connect_timeout)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with(self.options.clone());
        let listen = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            // A lost connection is reported (`Ok(None)`), and connected again by
            // `listen`, which then wakes every stream.
            listener.eager_reconnect(false);
            listener.listen(&self.channel).await?;
            Ok(listener)
        };
        sql::bounded(STORE, self.bound, listen).await
    }

    /// Wakes the hub for each notification until the connection is lost (or stops
    /// answering a ping); logs why.
    async fn serve(&self, listener: &mut PgListener) {
        let mut ping = tokio::time::interval_at(Instant::now() + PING, PING);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                received = listener.try_recv() => match received {
                    Ok(Some(notification)) => self.wake(notification.payload()),
                    Ok(None) => {
                        tracing::warn!(channel = %self.channel, "messages: postgres live listener lost its connection; connecting again");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, channel = %self.channel, "messages: postgres live listener failed; connecting again");
                        return;
                    }
                },
                _ = ping.tick() => {
                    let pinged = sql::bounded(STORE, self.bound, sqlx::query("SELECT 1").execute(&mut *listener)).await;
                    if let Err(e) = pinged {
                        tracing::warn!(error = %e, channel = %self.channel, "messages: postgres live listener's connection does not answer; connecting again");
                        return;
                    }
                }
            }
        }
    }

    fn wake(&self, payload: &str) {
        let Some((session, view)) = parse(payload) else {
            tracing::debug!(
                channel = %self.channel,
                bytes = payload.len(),
                "messages: malformed postgres live notification ignored"
            );
            return;
        };
        self.hub.wake(&session, &view);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn payloads_are_parsed_as_the_statements_write_them() {
        let session = SessionKey::generate().unwrap();
        let view = ViewId::from_static("app::dashboard");
        let payload = format!("{} {}", session.as_str(), view.as_str());
        assert_eq!(parse(&payload), Some((session.clone(), view)));
        let longest = format!(
            "{} {}",
            session.as_str(),
            "v".repeat(crate::view::MAX_VIEW_ID_BYTES)
        );
        assert!(longest.len() < 8000, "within NOTIFY's payload limit");
        assert!(parse(&longest).is_some());
        for bad in [
            String::new(),
            " ".into(),
            session.as_str().to_owned(),
            format!("{} ", session.as_str()),
            "short app::dashboard".into(),
            format!("{} two words", session.as_str()),
            format!("{}  app::dashboard", session.as_str()),
        ] {
            assert_eq!(parse(&bad), None, "{bad:?}");
        }
        assert_eq!(channel("messages"), "messages_live");
    }
}
