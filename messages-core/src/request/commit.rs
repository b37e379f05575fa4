//! The end of a request: what is stored, and what the response must carry.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::cookie::{CookieSettings, CookieStore, Keep};
use super::identity::SessionChange;
use super::state::State;
use super::{Messages, ResponseHeaders, log_store_error};
use crate::message::now_ms;
use crate::{Message, MessageStore, Result, SessionKey, ViewId};

/// What a request's messages need from the response: everything a framework adapter
/// writes. [`apply`](Committed::apply) writes it into an [`http::HeaderMap`];
/// adapters on other header types use [`set_cookie`](Committed::set_cookie),
/// [`vary_cookie`](Committed::vary_cookie) and [`cache_control`](Committed::cache_control).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Committed {
    /// `Set-Cookie` header values, in order (empty when nothing changed).
    pub set_cookie: Vec<String>,
    /// Messages were read or written: the response must not be cached by shared caches
    /// (`Vary: Cookie`, `Cache-Control: private`). A request that did not touch messages
    /// commits to nothing, whatever cookies it carried.
    pub touched: bool,
    /// What happened to the session, for an identity source that keeps the key
    /// elsewhere; the [`SessionSource`](super::SessionSource)'s cookie for it, if any, is
    /// already in [`set_cookie`](Committed::set_cookie).
    pub session: SessionChange,
}

/// Commits a request when the framework is done with it, and still commits it (as a
/// failure, on a spawned task) when the request is dropped first. Made by
/// [`MessagesConfig::begin_request`](super::MessagesConfig::begin_request).
///
/// ```
/// use messages_core::{MemoryStore, Message, MessagesConfig, ViewId};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let config = MessagesConfig::new(MemoryStore::new());
/// let guard = config.begin_request(None, []).unwrap();
/// guard.messages().context(ViewId::from_static("jobs")).add_message(Message::info("Queued."));
/// let committed = guard.commit(true).await;
/// assert!(committed.touched);
/// assert_eq!(committed.set_cookie.len(), 1); // the new session
/// # }
/// ```
#[derive(Debug)]
pub struct CommitGuard {
    messages: Messages,
    armed: bool,
}

impl CommitGuard {
    pub(crate) fn new(messages: Messages) -> CommitGuard {
        CommitGuard {
            messages,
            armed: true,
        }
    }

    /// The request's messages, to put where handlers find them.
    pub fn messages(&self) -> &Messages {
        &self.messages
    }

    /// Commits the request with the response a framework made, and writes what the
    /// commit says into the response's headers: what every adapter does once its
    /// handler has answered. The response shows the messages it read unless it is a
    /// redirect, an htmx redirect or a 5xx ([`ResponseHeaders::shows_messages`]); that is
    /// only worked out for a request that touched messages (one that did not commits to
    /// nothing whatever its response). Returns the commit, for an adapter that keeps the
    /// session elsewhere ([`Committed::session`]).
    ///
    /// ```
    /// use http::{HeaderMap, HeaderValue};
    /// use messages_core::{MemoryStore, Message, MessagesConfig, ViewId};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let config = MessagesConfig::new(MemoryStore::new());
    /// let guard = config.begin_request(None, []).unwrap();
    /// guard.messages().context(ViewId::from_static("jobs")).add_message(Message::info("Queued."));
    /// let mut headers = HeaderMap::new();
    /// headers.insert("location", HeaderValue::from_static("/jobs"));
    /// let committed = guard.commit_response(303, &mut headers).await;
    /// assert!(committed.touched);
    /// assert_eq!(headers["vary"], "Cookie");
    /// assert!(headers.contains_key("set-cookie")); // the new session
    /// # }
    /// ```
    pub async fn commit_response<H: ResponseHeaders>(
        self,
        status: u16,
        headers: &mut H,
    ) -> Committed {
        let touched = self.messages.state().touched;
        let success = touched && headers.shows_messages(status);
        let committed = self.commit(success).await;
        committed.write_to(headers);
        committed
    }

    /// Commits the request; `success` is false for a failed (5xx) response. See
    /// [`Messages::commit`]. Cancel-safe: the guard stays armed until the commit is done,
    /// and the commit finishes on its own if dropped midway.
    pub async fn commit(mut self, success: bool) -> Committed {
        let committed = self.messages.commit(success).await;
        self.armed = false;
        committed
    }
}

impl Drop for CommitGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // Cancelled before the response: commit as a failure, so messages the handler
        // took from the store are put back and its adds are kept.
        let messages = self.messages.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                messages.commit(false).await;
            });
        } else {
            tracing::warn!(
                "messages: request cancelled outside a tokio runtime, its messages not committed"
            );
        }
    }
}

/// The messages cookie of a response that leaves no messages in it: nothing if the request
/// brought none; a tombstone (a signed empty value, see [`CookieStore`]) if it brought a
/// valid one of its session, so no stale copy of that cookie can outrank it; otherwise a
/// removal (no valid cookie, or the session changed: old copies are bound to the old key).
/// A tombstone stores nothing: it never causes a new session cookie.
fn cleared_cookie(names: &CookieSettings, st: &State, cs: &CookieStore) -> Option<String> {
    if !st.cookie.present {
        return None;
    }
    match (&st.session, st.cookie.newest) {
        (Some(session), Some(newest)) if !st.session_new => {
            let now = now_ms();
            let signed_at = CookieStore::signing_time(now, Some(newest));
            let (value, max_age) = cs.tombstone(&names.messages_name, session, signed_at, now);
            Some(names.set_cookie_for(&names.messages_name, &value, max_age))
        }
        _ => Some(names.set_cookie(&names.messages_name, None)),
    }
}

/// What a commit writes for one view.
#[derive(Debug, Default)]
struct Pending {
    /// Loaded and not shown: goes back before everything the store holds now.
    back: Vec<Message>,
    /// Added by the request, in order.
    added: Vec<Message>,
}

impl Pending {
    /// Everything, in display order.
    fn into_list(self) -> Vec<Message> {
        let mut list = self.back;
        list.extend(self.added);
        list
    }

    /// Writes to a server store: one call, a put-back when anything goes back.
    async fn write(
        self,
        store: &dyn MessageStore,
        session: &SessionKey,
        view: &ViewId,
    ) -> Result<()> {
        if self.back.is_empty() {
            store.add_all(session, view, self.added).await
        } else {
            store.put_back(session, view, self.into_list()).await
        }
    }
}

/// The rest of a commit, boxed so that it can outlive a dropped [`Messages::commit`].
type Finishing = Pin<Box<dyn Future<Output = Committed> + Send>>;

/// Runs the rest of a commit on a spawned task if the commit's future is dropped first,
/// marked as cancelled (the response never went out).
struct FinishOnDrop {
    rest: Option<Finishing>,
    /// The request, whose `cancelled` flag the rest reads.
    request: Messages,
}

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        let Some(rest) = self.rest.take() else { return };
        self.request.inner.cancelled.store(true, Ordering::Release);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(rest);
        } else {
            tracing::error!(
                "messages: commit cancelled outside a tokio runtime, its remaining store writes are lost"
            );
        }
    }
}

impl Messages {
    /// Finishes the request: stores what must be kept and returns the cookies to set.
    ///
    /// `success` is false for a failed response (a 5xx): then messages read by the request
    /// are kept for the next one, since the person did not see them. Messages loaded but
    /// never rendered are kept either way. Store errors are logged, never returned: the
    /// response goes out. A second call does nothing; a request that never touched
    /// messages commits to nothing, whatever cookies it carried.
    ///
    /// Cancel-safe: if this future is dropped before it completes (a timeout outside the
    /// framework's layer, a reset stream), the rest of the commit runs on a task spawned
    /// on the current tokio runtime, so nothing the request added is lost. Since that
    /// response never went out, the rest runs as a failure where it still can: a store
    /// with read leases is not told the read was shown (it puts the messages back when
    /// the lease is up), and another server store gets back what the request rendered.
    pub async fn commit(&self, success: bool) -> Committed {
        let st = {
            let mut guard = self.state();
            if guard.committed {
                return Committed::default();
            }
            let st = std::mem::take(&mut *guard);
            guard.committed = true;
            st
        };
        if !st.touched {
            return Committed::default();
        }
        let mut finishing = FinishOnDrop {
            rest: Some(Box::pin(self.clone().finish(st, success))),
            request: self.clone(),
        };
        let committed = match finishing.rest.as_mut() {
            Some(rest) => rest.await,
            None => Committed::default(),
        };
        finishing.rest = None;
        committed
    }

    /// The commit's store I/O and cookies, on the state taken out of the request.
    async fn finish(self, mut st: State, success: bool) -> Committed {
        let config = Arc::clone(&self.inner.config);
        let mut touched = st.touched;

        let mut to_store: BTreeMap<ViewId, Pending> = BTreeMap::new();
        let mut shown_lists = Vec::new();
        let mut discards = Vec::new();
        let mut expect = Vec::new();
        let mut leases = Vec::new();
        // Views whose messages could not be stored: their leases stay unsettled, so the
        // server store puts back what this request had taken once the lease is up.
        let mut failed = BTreeSet::new();
        for (view, mut vs) in std::mem::take(&mut st.views) {
            if let Some(lease) = vs.lease.take() {
                leases.push((view.clone(), lease));
            }
            let shown = if success { vs.shown() } else { 0 };
            let back = vs.loaded.split_off(shown);
            if vs.discard {
                discards.push(view.clone());
            }
            if vs.expect_later {
                expect.push(view.clone());
            }
            if !vs.loaded.is_empty() {
                shown_lists.push((view.clone(), vs.loaded));
            }
            if !back.is_empty() || !vs.queued.is_empty() {
                to_store.insert(
                    view,
                    Pending {
                        back,
                        added: vs.queued,
                    },
                );
            }
        }

        let storage = &config.storage;
        let mut set_cookie = Vec::new();
        let mut stored = false;
        if let (Some(server), Some(old)) = (storage.server(), &st.ended)
            && let Err(e) = server.clear_session(old).await
        {
            log_store_error("clear_session", &e);
        }
        // A rotation moves the server part before anything is written under the new key.
        if let (Some(server), Some(from), Some(to)) =
            (storage.server(), &st.rotated_from, &st.session)
            && let Err(e) = server.rotate(from, to).await
        {
            log_store_error("rotate", &e);
        }
        if let Some(cs) = storage.cookie() {
            // The cookie holds the messages; what does not fit spills to the server part.
            let changed = st.cookie.dirty
                || !to_store.is_empty()
                || !discards.is_empty()
                || (storage.server().is_some() && !expect.is_empty());
            if changed {
                let written = self
                    .write_cookie(&mut st, cs, storage.server(), to_store, &discards, &expect)
                    .await;
                stored = written.0;
                set_cookie.extend(written.1);
                failed = written.2;
            }
        } else if let Some(store) = storage.server() {
            if let Some(session) = st.session.clone().filter(|_| !discards.is_empty()) {
                for view in &discards {
                    if let Err(e) = store.discard(&session, view).await {
                        log_store_error("discard", &e);
                    }
                }
            }
            if !to_store.is_empty() {
                match st.session_or_new() {
                    Ok(session) => {
                        for (view, pending) in to_store {
                            match pending.write(store.as_ref(), &session, &view).await {
                                Ok(()) => stored = true,
                                Err(e) => {
                                    log_store_error("add", &e);
                                    failed.insert(view);
                                }
                            }
                        }
                    }
                    Err(e) => {
                        log_store_error("session", &e);
                        failed.extend(to_store.into_keys());
                    }
                }
            }
        }
        let cancelled = self.inner.cancelled.load(Ordering::Acquire);
        if let Some(server) = storage.server() {
            for (view, (session, lease)) in leases {
                // A cancelled response was never seen: leave the lease to run out.
                if failed.contains(&view) || cancelled {
                    continue;
                }
                if let Err(e) = server.settle(&session, &view, lease).await {
                    log_store_error("settle", &e);
                }
            }
        }
        if cancelled && let (Some(store), Some(session)) = (storage.server_only(), &st.session) {
            // Without a lease the store no longer holds what the request rendered, and the
            // response that rendered it never went out: give it back.
            for (view, list) in shown_lists {
                if let Err(e) = store.put_back(session, &view, list).await {
                    log_store_error("put_back", &e);
                }
            }
        }

        // Only a request that touched messages gets here (see `commit`): a malformed
        // session cookie is not removed by responses that never use it.
        let session = match &st.session {
            Some(key) if st.session_new && (stored || st.session_forced) => {
                match st.rotated_from.clone() {
                    Some(from) => SessionChange::Rotated {
                        from,
                        to: key.clone(),
                    },
                    None => SessionChange::Started(key.clone()),
                }
            }
            _ if (st.ended.is_some() || st.bad_session) && !st.session_new => {
                SessionChange::Ended(st.ended.clone())
            }
            _ => SessionChange::Unchanged,
        };
        // The session cookie goes first: the messages cookie is bound to it.
        if let Some(c) = config.session_source().outgoing(&session) {
            set_cookie.insert(0, c);
        }
        touched |= !set_cookie.is_empty();
        Committed {
            set_cookie,
            touched,
            session,
        }
    }

    /// Rewrites the messages cookie. Returns whether anything is stored, the `Set-Cookie`
    /// value (none when the cookie neither was nor will be present), and the views whose
    /// spill to the server store failed.
    async fn write_cookie(
        &self,
        st: &mut State,
        cs: &CookieStore,
        server: Option<&Arc<dyn MessageStore>>,
        to_store: BTreeMap<ViewId, Pending>,
        discards: &[ViewId],
        expect: &[ViewId],
    ) -> (bool, Option<String>, BTreeSet<ViewId>) {
        let names = &self.inner.config.cookies;
        let mut failed = BTreeSet::new();
        let mut payload = std::mem::take(st.payload(cs, &names.messages_name));
        for view in discards {
            payload.views.remove(view);
            if (payload.spilled.remove(view) || payload.all_spilled)
                && let (Some(server), Some(session)) = (server, &st.session)
                && let Err(e) = server.discard(session, view).await
            {
                log_store_error("discard", &e);
            }
        }
        let mut stored = false;
        for (view, pending) in to_store {
            // A view whose later part is in the server store gets its adds there too,
            // after that part, so arrival order holds across the two.
            if let (Some(server), Some(session)) = (server, &st.session)
                && payload.is_spilled(&view)
            {
                match pending.write(server.as_ref(), session, &view).await {
                    Ok(()) => stored = true,
                    Err(e) => {
                        log_store_error("add", &e);
                        failed.insert(view);
                    }
                }
            } else {
                payload
                    .views
                    .entry(view)
                    .or_default()
                    .extend(pending.into_list());
            }
        }
        if server.is_some() {
            payload.spilled.extend(expect.iter().cloned());
        }
        if payload.is_empty() {
            return (stored, cleared_cookie(names, st, cs), failed);
        }
        let session = match st.session_or_new() {
            Ok(s) => s,
            Err(e) => {
                log_store_error("session", &e);
                failed.extend(payload.views.into_keys());
                return (stored, None, failed);
            }
        };
        let keep = if server.is_some() {
            Keep::OldestAndMark
        } else {
            Keep::Newest
        };
        let signed_at = CookieStore::signing_time(now_ms(), st.cookie.newest);
        let (value, overflow) =
            cs.encode_within_budget(payload, &names.messages_name, &session, signed_at, keep);
        stored |= value.is_some();
        if !overflow.is_empty() {
            let count: usize = overflow.values().map(Vec::len).sum();
            match server {
                None => tracing::warn!(
                    dropped = count,
                    budget = cs.byte_budget(),
                    "messages: cookie full, oldest messages dropped"
                ),
                Some(server) => {
                    // What spills is the cookie's part, which comes before anything the
                    // server store already holds of the view.
                    for (view, list) in overflow {
                        match server.put_back(&session, &view, list).await {
                            Ok(()) => stored = true,
                            Err(e) => {
                                log_store_error("add", &e);
                                failed.insert(view);
                            }
                        }
                    }
                }
            }
        }
        let cookie = match value {
            Some(v) => Some(names.set_cookie(&names.messages_name, Some(&v))),
            None => cleared_cookie(names, st, cs),
        };
        (stored, cookie, failed)
    }
}
