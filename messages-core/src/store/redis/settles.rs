//! Settles of read leases held back to ride with the store's next command.
//!
//! [`MessageStore::settle`](crate::MessageStore::settle) queues the settle (shared by
//! the store's clones) and returns at once. The next command the store sends carries the
//! queue in the same pipeline (one write, one answer): all of it on one server; on Redis
//! Cluster, where a pipeline stays in one slot, the settles of the command's own session
//! (its hash tag, so its slot). A flusher task, armed by the first settle queued, sends
//! whatever is still queued after [`settle_delay`](super::RedisOptions::settle_delay):
//! one pipeline on one server, one per session (concurrently) on Cluster. A settle that
//! fails is tried again in the background until its lease would be up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use ::redis::{FromRedisValue, Pipeline, RedisError, ServerErrorKind, Value};
use tokio::time::{Duration, Instant};

use super::{Connection, Eval, RedisStore, SETTLE, SETTLE_LUA, unavailable};
use crate::store::{Backoff, Disarm, FlushMark, Lease};
use crate::{Result, SessionKey, ViewId};

/// Most settles held back: one more sends them all at once, from the settle that found
/// the queue full.
pub(super) const MAX_HELD: usize = 1024;

/// A settle held back.
pub(super) struct Held {
    session: SessionKey,
    view: ViewId,
    lease: Lease,
    /// When its lease is up, counted from the settle: retries stop there.
    deadline: Instant,
}

/// The settles a store and its clones hold back, and whether a flusher waits to send them.
#[derive(Default)]
pub(super) struct Queue {
    held: Mutex<Vec<Held>>,
    armed: FlushMark,
    /// Whether the settle script is known to be loaded on the (one) server, so a command
    /// can carry settles without loading it first.
    loaded: AtomicBool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Vec<Held>> {
        // The queue is a plain list: one left behind by a panic is still whole.
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many settles are held back.
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Settles taken from the queue to ride with a command: if the command's future is
/// dropped before its answer (a cancelled request), they go back to the queue.
struct Carried<'a> {
    store: &'a RedisStore,
    settles: Vec<Held>,
}

impl Drop for Carried<'_> {
    fn drop(&mut self) {
        if !self.settles.is_empty() {
            // Perhaps sent already: settling twice does no harm.
            self.store.queue.lock().append(&mut self.settles);
            self.store.arm();
        }
    }
}

/// One of the store's operations: a command, or a script call.
pub(super) enum Op<'a> {
    Cmd(::redis::Cmd),
    Script(Eval<'a>),
}

impl Op<'_> {
    /// Sends it alone (a script is loaded first if the server does not have it).
    async fn send<T: FromRedisValue>(&self, c: &mut Connection) -> ::redis::RedisResult<T> {
        match self {
            Op::Cmd(cmd) => cmd.query_async(c).await,
            Op::Script(eval) => eval.invoke_async(c).await,
        }
    }

    fn add_to(&self, pipe: &mut Pipeline) {
        match self {
            Op::Cmd(cmd) => pipe.add_command(cmd.clone()),
            Op::Script(eval) => pipe.add_command(eval.cmd().clone()),
        };
    }
}

/// Whether a command answered with this error was not run, so sending it again cannot
/// run it twice: the script was not loaded, or Redis Cluster sent it elsewhere or was
/// not ready.
fn not_run(kind: Option<ServerErrorKind>) -> bool {
    matches!(
        kind,
        Some(
            ServerErrorKind::NoScript
                | ServerErrorKind::Moved
                | ServerErrorKind::Ask
                | ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::MasterDown
                | ServerErrorKind::BusyLoading
                | ServerErrorKind::ReadOnly
                | ServerErrorKind::CrossSlot
        )
    )
}

/// Redis's answer to a pipeline did not have one reply per command.
#[derive(Debug, thiserror::Error)]
#[error("redis answered {got} replies to a pipeline of {sent} commands")]
struct ShortAnswer {
    sent: usize,
    got: usize,
}

/// Settles that could not be sent now (they are tried again in the background).
#[derive(Debug, thiserror::Error)]
#[error("{0} settles of read leases not sent; trying again until their leases are up")]
struct NotSettled(usize);

impl RedisStore {
    /// Sends `op` for `session`, carrying the held settles it can (see the module docs):
    /// one round trip either way.
    pub(super) async fn send<T: FromRedisValue>(
        &self,
        session: &SessionKey,
        op: Op<'_>,
    ) -> Result<T> {
        let op = &op;
        let carried = Carried {
            store: self,
            settles: self.carriable(session),
        };
        if carried.settles.is_empty() {
            return self.run(|mut c| async move { op.send(&mut c).await }).await;
        }
        let mut pipe = ::redis::pipe();
        // On Cluster, whether the node has the script is not known: load it each time.
        let load = matches!(self.connection, Connection::Cluster(_))
            || !self.queue.loaded.load(Ordering::Acquire);
        if load {
            pipe.cmd("SCRIPT").arg("LOAD").arg(SETTLE_LUA).ignore();
        }
        for held in &carried.settles {
            pipe.add_command(self.settle_call(held).into_cmd());
        }
        op.add_to(&mut pipe);
        pipe.ignore_errors();
        let sent = carried.settles.len() + 1;
        let answer = self
            .run(|mut c| async move { pipe.query_async::<Vec<Value>>(&mut c).await })
            .await;
        let mut carried = carried;
        let settles = std::mem::take(&mut carried.settles);
        let mut replies = match answer {
            Ok(replies) if replies.len() == sent => replies,
            Ok(replies) => {
                let short = ShortAnswer {
                    sent,
                    got: replies.len(),
                };
                self.retry_later(settles, &short);
                return Err(unavailable(short));
            }
            Err(e) => {
                self.retry_later(settles, &e);
                return Err(e);
            }
        };
        let own = replies.pop().unwrap_or(Value::Nil);
        let (mut unloaded, mut failed, mut first_error) = (Vec::new(), Vec::new(), None);
        for (held, reply) in settles.into_iter().zip(replies) {
            match reply {
                Value::ServerError(e) if e.kind() == Some(ServerErrorKind::NoScript) => {
                    unloaded.push(held);
                }
                Value::ServerError(e) => {
                    first_error.get_or_insert(e);
                    failed.push(held);
                }
                _ => {}
            }
        }
        if !unloaded.is_empty() {
            // The server lost its scripts (restarted, `SCRIPT FLUSH`): back to the queue,
            // for the flusher (which loads it) or the next command (which loads it now).
            self.queue.loaded.store(false, Ordering::Release);
            self.queue.lock().append(&mut unloaded);
            self.arm();
        } else if load {
            self.queue.loaded.store(true, Ordering::Release);
        }
        if let Some(e) = first_error {
            self.retry_later(failed, &RedisError::from(e));
        }
        match own {
            Value::ServerError(e) if not_run(e.kind()) => {
                self.run(|mut c| async move { op.send(&mut c).await }).await
            }
            Value::ServerError(e) => Err(unavailable(RedisError::from(e))),
            reply => ::redis::from_redis_value(reply).map_err(|e| unavailable(RedisError::from(e))),
        }
    }

    /// Takes the held settles a command for `session` can carry.
    fn carriable(&self, session: &SessionKey) -> Vec<Held> {
        let mut held = self.queue.lock();
        if held.is_empty() {
            return Vec::new();
        }
        match self.connection {
            Connection::Single(_) => std::mem::take(&mut *held),
            Connection::Cluster(_) => {
                let (mine, others) = std::mem::take(&mut *held)
                    .into_iter()
                    .partition(|h| &h.session == session);
                *held = others;
                mine
            }
        }
    }

    fn settle_call(&self, held: &Held) -> Eval<'static> {
        self.on_context(&SETTLE, &held.session, &held.view, held.lease.token())
    }

    /// Sends a settle now, alone; on failure also tries again in the background (when on
    /// a tokio runtime) until the lease would be up, so that a short outage does not make
    /// the messages come back; the error is still returned.
    pub(super) async fn settle_alone(
        &self,
        session: &SessionKey,
        view: &ViewId,
        lease: Lease,
    ) -> Result<()> {
        let result = self.settle_once(session, view, &lease).await;
        if let Err(e) = &result {
            self.retry_later(vec![self.held(session, view, lease)], e);
        }
        result
    }

    fn held(&self, session: &SessionKey, view: &ViewId, lease: Lease) -> Held {
        Held {
            session: session.clone(),
            view: view.clone(),
            lease,
            deadline: Instant::now() + Duration::from_millis(self.lease_ms),
        }
    }

    /// Holds a settle back for the next command or the flusher. On a tokio runtime it
    /// returns at once — unless the queue is full, then it sends the whole queue; without
    /// one (no flusher could run) it sends the settle now, alone.
    pub(super) async fn hold(
        &self,
        session: &SessionKey,
        view: &ViewId,
        lease: Lease,
    ) -> Result<()> {
        if tokio::runtime::Handle::try_current().is_err() {
            return self.settle_alone(session, view, lease).await;
        }
        let held = self.held(session, view, lease);
        let full = {
            let mut queue = self.queue.lock();
            queue.push(held);
            (queue.len() >= MAX_HELD).then(|| std::mem::take(&mut *queue))
        };
        if let Some(all) = full {
            return self.settle_now(all).await;
        }
        self.arm();
        Ok(())
    }

    /// Starts the flusher unless one is waiting already (or there is no runtime: then
    /// the next command, `flush`, or a full queue sends what is held).
    fn arm(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if let Some(disarm) = self.queue.armed.arm() {
            let store = self.clone();
            runtime.spawn(async move { store.flush_later(disarm).await });
        }
    }

    /// The flusher: after the delay, sends what no command carried meanwhile.
    async fn flush_later(self, disarm: Disarm) {
        tokio::time::sleep(self.settle_delay).await;
        drop(disarm);
        // Disarmed before taking the queue: a settle held from now on arms a new flusher.
        let held = std::mem::take(&mut *self.queue.lock());
        if !held.is_empty() {
            // A failure is logged and tried again inside.
            let _ = self.settle_now(held).await;
        }
    }

    /// Sends everything held now (`MessageStore::flush`).
    pub(super) async fn flush_held(&self) -> Result<()> {
        let held = std::mem::take(&mut *self.queue.lock());
        if held.is_empty() {
            return Ok(());
        }
        self.settle_now(held).await
    }

    /// Sends `settles` now; those that fail are tried again in the background.
    pub(super) async fn settle_now(&self, settles: Vec<Held>) -> Result<()> {
        let (failed, error) = self.send_settles(settles).await;
        match error {
            None => Ok(()),
            Some(e) => {
                let n = failed.len();
                self.retry_later(failed, &e);
                Err(unavailable(NotSettled(n)))
            }
        }
    }

    /// Sends `settles`: one pipeline on one server, one per session (at once) on Redis
    /// Cluster. Returns those that failed, with the first error.
    async fn send_settles(&self, settles: Vec<Held>) -> (Vec<Held>, Option<crate::Error>) {
        if let Connection::Single(_) = self.connection {
            return self.settle_pipeline(settles).await;
        }
        let mut by_session: HashMap<SessionKey, Vec<Held>> = HashMap::new();
        for held in settles {
            by_session
                .entry(held.session.clone())
                .or_default()
                .push(held);
        }
        let sent = by_session
            .into_values()
            .map(|group| self.settle_pipeline(group));
        let mut failed = Vec::new();
        let mut first_error = None;
        for (group, error) in futures_util::future::join_all(sent).await {
            failed.extend(group);
            if let Some(e) = error {
                first_error.get_or_insert(e);
            }
        }
        (failed, first_error)
    }

    /// One pipeline: `SCRIPT LOAD` of the settle script (so a server that lost its
    /// scripts runs them), then each settle. Returns those that failed, with the first
    /// error.
    async fn settle_pipeline(&self, settles: Vec<Held>) -> (Vec<Held>, Option<crate::Error>) {
        let mut pipe = ::redis::pipe();
        pipe.cmd("SCRIPT").arg("LOAD").arg(SETTLE_LUA).ignore();
        for held in &settles {
            pipe.add_command(self.settle_call(held).into_cmd());
        }
        pipe.ignore_errors();
        let sent = settles.len();
        let answer = self
            .run(|mut c| async move { pipe.query_async::<Vec<Value>>(&mut c).await })
            .await;
        match answer {
            Ok(replies) if replies.len() == sent => {
                self.queue.loaded.store(true, Ordering::Release);
                let mut first_error = None;
                let failed = settles
                    .into_iter()
                    .zip(replies)
                    .filter_map(|(held, reply)| match reply {
                        Value::ServerError(e) => {
                            first_error.get_or_insert(unavailable(RedisError::from(e)));
                            Some(held)
                        }
                        _ => None,
                    })
                    .collect();
                (failed, first_error)
            }
            Ok(replies) => {
                let got = replies.len();
                (settles, Some(unavailable(ShortAnswer { sent, got })))
            }
            Err(e) => (settles, Some(e)),
        }
    }

    /// Tries failed settles again in the background (when on a tokio runtime), with a
    /// warning: see [`settle_later`](RedisStore::settle_later).
    fn retry_later(&self, settles: Vec<Held>, error: &dyn std::error::Error) {
        let Some(first) = settles.first() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(view = %first.view, settles = settles.len(), %error, "messages: read leases not settled (no runtime to try again on); their messages will be shown again");
            return;
        };
        tracing::warn!(view = %first.view, settles = settles.len(), %error, "messages: read leases not settled; trying again");
        let store = self.clone();
        runtime.spawn(async move { store.settle_later(settles).await });
    }

    /// Tries failed settles again, backing off from 100 ms to 2 s, until the last of
    /// their leases would be up (a late settle finds nothing to drop and does no harm).
    async fn settle_later(&self, mut settles: Vec<Held>) {
        let Some(deadline) = settles.iter().map(|h| h.deadline).max() else {
            return;
        };
        let mut backoff = Backoff::until(deadline);
        while backoff.next().await {
            settles = self.send_settles(settles).await.0;
            if settles.is_empty() {
                tracing::info!(
                    tries = backoff.tries,
                    "messages: read leases settled after a retry"
                );
                return;
            }
        }
        if let Some(first) = settles.first() {
            tracing::warn!(view = %first.view, settles = settles.len(), tries = backoff.tries, "messages: read leases not settled; their messages will be shown again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RedisOptions;
    use crate::store::redis::Settings;

    #[test]
    fn only_commands_that_did_not_run_are_sent_again() {
        for kind in [
            ServerErrorKind::NoScript,
            ServerErrorKind::Moved,
            ServerErrorKind::Ask,
            ServerErrorKind::TryAgain,
            ServerErrorKind::ClusterDown,
        ] {
            assert!(not_run(Some(kind)), "{kind:?}");
        }
        // A script that failed part way may have written: never run twice.
        assert!(!not_run(Some(ServerErrorKind::ResponseError)));
        assert!(!not_run(None));
    }

    #[test]
    fn the_settle_delay_must_be_under_half_the_lease() {
        let with = |settle_delay: Duration| RedisOptions {
            settle_delay,
            read_lease: Duration::from_secs(60),
            ..RedisOptions::default()
        };
        assert!(Settings::check(&with(Duration::ZERO)).is_ok());
        assert!(Settings::check(&with(Duration::from_millis(29_999))).is_ok());
        for refused in [Duration::from_secs(30), Duration::MAX] {
            assert!(
                matches!(
                    Settings::check(&with(refused)),
                    Err(crate::Error::Config(_))
                ),
                "{refused:?}"
            );
        }
        assert_eq!(
            RedisOptions::default().settle_delay,
            Duration::from_millis(20)
        );
    }
}
