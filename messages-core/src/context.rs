//! The request-scoped side: configuration, one request's messages, one view's context.
//!
//! Framework integrations call [`MessagesConfig::begin`] with the request's `Cookie`
//! headers, hand the [`RequestMessages`] to the handler, and call
//! [`RequestMessages::commit`] with the response status to get the `Set-Cookie` values.
//!
//! ```
//! use messages_core::{MemoryStore, Message, MessagesConfig, ViewId};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let config = MessagesConfig::new(MemoryStore::new());
//! let settings = ViewId::from_static("app::settings");
//!
//! // POST /settings: add, then redirect.
//! let request = config.begin([]);
//! request.context(&settings).add_message(Message::success("Saved."));
//! let done = request.commit(true).await;
//! let session_cookie = done.set_cookie[0].split(';').next().unwrap().to_owned();
//!
//! // GET /settings: the message is shown once.
//! let request = config.begin([session_cookie.as_str()]);
//! let shown: Vec<String> = request.context(&settings).messages().await.iter().map(|m| m.text().to_owned()).collect();
//! assert_eq!(shown, ["Saved."]);
//! assert!(request.commit(true).await.set_cookie.is_empty());
//!
//! // Reload: gone.
//! let request = config.begin([session_cookie.as_str()]);
//! assert!(request.context(&settings).messages().await.is_empty());
//! # }
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Serialize, Serializer};

use crate::message::now_ms;
use crate::store::cookie::{CookieError, CookiePayload, Keep, MAX_INCOMING_BYTES};
use crate::{
    CookieSettings, CookieStore, Error, FallbackStore, Lease, Level, Message, MessageStore, Result,
    SessionKey, ViewId,
};

/// Default bound on the messages one request may queue for one view.
const QUEUE_CAP: usize = 1000;

#[derive(Debug, Clone)]
enum Storage {
    Server(Arc<dyn MessageStore>),
    Cookie(CookieStore),
    Fallback(FallbackStore),
}

#[derive(Debug, Clone)]
struct ConfigInner {
    storage: Storage,
    cookies: CookieSettings,
    min_level: Level,
    queue_cap: usize,
}

/// Where messages are stored and how requests find them; cheap to clone.
///
/// ```
/// use messages_core::{CookieSettings, Level, MemoryStore, MessagesConfig};
///
/// let config = MessagesConfig::new(MemoryStore::new())
///     .min_level(Level::DEBUG)
///     .cookie_settings(CookieSettings { secure: true, ..CookieSettings::default() });
/// assert!(config.server_store().is_some());
/// ```
#[derive(Debug, Clone)]
pub struct MessagesConfig {
    inner: Arc<ConfigInner>,
}

impl MessagesConfig {
    fn with_storage(storage: Storage) -> MessagesConfig {
        MessagesConfig {
            inner: Arc::new(ConfigInner {
                storage,
                cookies: CookieSettings::default(),
                min_level: Level::INFO,
                queue_cap: QUEUE_CAP,
            }),
        }
    }

    /// Messages in a server store ([`MemoryStore`](crate::MemoryStore),
    /// [`RedisStore`](crate::RedisStore), your own).
    pub fn new(store: impl MessageStore) -> MessagesConfig {
        MessagesConfig::with_storage(Storage::Server(Arc::new(store)))
    }

    /// Like [`new`](MessagesConfig::new), sharing a store (with a background job, say).
    pub fn with_shared(store: Arc<dyn MessageStore>) -> MessagesConfig {
        MessagesConfig::with_storage(Storage::Server(store))
    }

    /// Messages in a signed cookie only.
    pub fn cookie(store: CookieStore) -> MessagesConfig {
        MessagesConfig::with_storage(Storage::Cookie(store))
    }

    /// Messages in a signed cookie, spilling to a server store.
    pub fn fallback(store: FallbackStore) -> MessagesConfig {
        MessagesConfig::with_storage(Storage::Fallback(store))
    }

    /// Cookie names and attributes.
    #[must_use]
    pub fn cookie_settings(mut self, settings: CookieSettings) -> MessagesConfig {
        Arc::make_mut(&mut self.inner).cookies = settings;
        self
    }

    /// Messages below this level are ignored by [`Context::add_message`] (default
    /// [`Level::INFO`], as in Django).
    #[must_use]
    pub fn min_level(mut self, level: Level) -> MessagesConfig {
        Arc::make_mut(&mut self.inner).min_level = level;
        self
    }

    /// Most messages one request may queue for one view before the oldest queued are
    /// dropped with a warning (default 1000; the store's own cap applies after).
    #[must_use]
    pub fn queue_cap(mut self, cap: usize) -> MessagesConfig {
        Arc::make_mut(&mut self.inner).queue_cap = cap.max(1);
        self
    }

    /// The cookie settings in force.
    pub fn cookies(&self) -> &CookieSettings {
        &self.inner.cookies
    }

    /// The server store that out-of-band messages go to: the store itself, the fallback's
    /// server store, or `None` for cookie-only storage (which needs a response to carry
    /// messages).
    pub fn server_store(&self) -> Option<Arc<dyn MessageStore>> {
        match &self.inner.storage {
            Storage::Server(s) => Some(Arc::clone(s)),
            Storage::Fallback(f) => Some(Arc::clone(&f.server)),
            Storage::Cookie(_) => None,
        }
    }

    /// Starts one request, given the values of its `Cookie` headers. Does no I/O.
    ///
    /// A malformed session cookie is treated as absent (and replaced or removed by the
    /// response). Messages cookies are checked only when messages are read or added;
    /// of several with the configured name, the first few are kept for that check.
    pub fn begin<'a>(&self, cookie_headers: impl IntoIterator<Item = &'a str>) -> RequestMessages {
        let names = &self.inner.cookies;
        let mut state = State::default();
        let mut bad_session = false;
        for header in cookie_headers {
            for c in cookie::Cookie::split_parse(header).flatten() {
                // Browsers send the most specific cookie first: the first valid session
                // key wins, so a garbage cookie planted beside ours (another path or a
                // sibling domain) neither hides it nor makes the response remove it. Of
                // the messages cookies, the valid one signed last wins.
                if c.name() == names.session_name {
                    if state.session.is_none() {
                        match c.value().parse::<SessionKey>() {
                            Ok(key) => state.session = Some(key),
                            Err(_) => bad_session = true,
                        }
                    }
                } else if c.name() == names.messages_name {
                    state.cookie.present = true;
                    if state.cookie.raw.len() < MAX_MESSAGES_COOKIES {
                        // Oversized values are refused when decoded, but not copied.
                        let value = c.value();
                        let too_long = value.len() > MAX_INCOMING_BYTES;
                        state.cookie.raw.push(if too_long {
                            Err(CookieError::Oversized)
                        } else {
                            Ok(value.to_owned())
                        });
                    }
                }
            }
        }
        state.bad_session_cookie = bad_session && state.session.is_none();
        RequestMessages {
            inner: Arc::new(RequestInner {
                config: Arc::clone(&self.inner),
                state: Mutex::new(state),
                load_lock: tokio::sync::Mutex::new(()),
            }),
        }
    }
}

#[derive(Debug, Default)]
struct CookieState {
    /// A messages cookie came with the request.
    present: bool,
    /// The values of the messages cookies, not yet checked.
    raw: Vec<Result<String, CookieError>>,
    /// `Some` once decoded (an invalid cookie decodes to empty).
    decoded: Option<CookiePayload>,
    /// When the newest valid messages cookie was signed, once decoded.
    newest: Option<u64>,
    /// The cookie must be written (or removed) by the response.
    dirty: bool,
}

#[derive(Debug, Default)]
#[allow(clippy::struct_excessive_bools)] // independent facts about one view in one request
struct ViewState {
    /// What the request holds of the view once loaded, in order: the stored messages,
    /// then the adds moved in by later loads. Only ever appended to (or cleared), so every
    /// list handed out is a prefix of it.
    loaded: Vec<Message>,
    is_loaded: bool,
    /// One entry per list handed out: its "rendered" flag and its length (a prefix of
    /// `loaded`). What was rendered is the longest rendered prefix, and only that is
    /// consumed: an add made after a list was rendered stays unshown.
    lists: Vec<(Arc<AtomicBool>, usize)>,
    queued: Vec<Message>,
    discard: bool,
    expect_later: bool,
    /// The queue cap was hit (warned once per request and view).
    overflowed: bool,
    /// The server store's lease on the messages loaded, and the session they were taken
    /// from: settled by the commit once they are shown or safely put back.
    lease: Option<(SessionKey, Lease)>,
}

#[derive(Debug, Default)]
#[allow(clippy::struct_excessive_bools)] // independent facts about one request
struct State {
    session: Option<SessionKey>,
    session_new: bool,
    session_forced: bool,
    bad_session_cookie: bool,
    ended: Option<SessionKey>,
    cookie: CookieState,
    views: HashMap<ViewId, ViewState>,
    touched: bool,
    committed: bool,
}

impl State {
    fn session_or_new(&mut self) -> Result<SessionKey> {
        if let Some(s) = &self.session {
            return Ok(s.clone());
        }
        let s = SessionKey::generate()?;
        self.session = Some(s.clone());
        self.session_new = true;
        Ok(s)
    }

    /// The decoded cookie payload (decoding it on first use).
    ///
    /// A refused cookie logs one warning and marks the cookie for rewriting (removal if
    /// nothing is left). Of several cookies, the valid one signed last wins.
    fn payload(&mut self, store: &CookieStore, name: &str) -> &mut CookiePayload {
        if self.cookie.decoded.is_none() {
            let raw = std::mem::take(&mut self.cookie.raw);
            let decoded = match &self.session {
                _ if raw.is_empty() => CookiePayload::default(),
                None => {
                    tracing::warn!(
                        "messages: messages cookie without a valid session, no messages shown"
                    );
                    self.cookie.dirty = true;
                    CookiePayload::default()
                }
                Some(session) => {
                    let now = now_ms();
                    let mut best: Option<(u64, CookiePayload)> = None;
                    let mut refused = None;
                    for value in &raw {
                        match value
                            .as_deref()
                            .map_err(|e| *e)
                            .and_then(|v| store.decode(v, name, session, now))
                        {
                            Ok((p, at)) if best.as_ref().is_none_or(|(b, _)| at > *b) => {
                                best = Some((at, p));
                            }
                            Ok(_) => {}
                            Err(e) => refused = refused.or(Some(e)),
                        }
                    }
                    if let Some(reason) = refused {
                        tracing::warn!(
                            %reason,
                            cookies = raw.len(),
                            "messages: messages cookie refused, no messages shown from it"
                        );
                        self.cookie.dirty = true;
                    }
                    self.cookie.newest = best.as_ref().map(|(at, _)| *at);
                    best.map(|(_, p)| p).unwrap_or_default()
                }
            };
            self.cookie.decoded = Some(decoded);
        }
        self.cookie
            .decoded
            .get_or_insert_with(CookiePayload::default)
    }
}

impl ViewState {
    /// How many of `loaded` (a prefix) a rendered list held.
    fn shown(&self) -> usize {
        self.lists
            .iter()
            .filter(|(rendered, _)| rendered.load(Ordering::Acquire))
            .map(|(_, len)| *len)
            .max()
            .unwrap_or(0)
            .min(self.loaded.len())
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

/// The rest of a commit, boxed so that it can outlive a dropped [`RequestMessages::commit`].
type Finishing = Pin<Box<dyn Future<Output = Committed> + Send>>;

/// Runs the rest of a commit on a spawned task if the commit's future is dropped first,
/// marked as cancelled (the response never went out).
struct FinishOnDrop {
    rest: Option<Finishing>,
    cancelled: Arc<AtomicBool>,
}

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        let Some(rest) = self.rest.take() else { return };
        self.cancelled.store(true, Ordering::Release);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(rest);
        } else {
            tracing::error!(
                "messages: commit cancelled outside a tokio runtime, its remaining store writes are lost"
            );
        }
    }
}

/// At most this many messages cookies of one request are checked.
const MAX_MESSAGES_COOKIES: usize = 4;

/// A server store and the session to ask it for.
type ServerPart = (Arc<dyn MessageStore>, SessionKey);

struct RequestInner {
    config: Arc<ConfigInner>,
    state: Mutex<State>,
    /// Serializes loads within one request, so no view is taken twice.
    load_lock: tokio::sync::Mutex<()>,
}

/// One request's access to messages, for every view. Cheap to clone (shared).
///
/// Made by [`MessagesConfig::begin`]; framework integrations keep one per request and call
/// [`commit`](RequestMessages::commit) when the response is ready.
#[derive(Clone)]
pub struct RequestMessages {
    inner: Arc<RequestInner>,
}

impl fmt::Debug for RequestMessages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state();
        f.debug_struct("RequestMessages")
            .field("session", &st.session)
            .field("views", &st.views.len())
            .finish_non_exhaustive()
    }
}

/// What a request's messages need from the response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Committed {
    /// `Set-Cookie` header values, in order (empty when nothing changed).
    pub set_cookie: Vec<String>,
    /// Messages were read or written: the response must not be cached by shared caches
    /// (`Vary: Cookie`, `Cache-Control: private`).
    pub touched: bool,
}

fn log_store_error(op: &str, e: &Error) {
    tracing::error!(op, error = %e, source = ?std::error::Error::source(e), "messages: store operation failed");
}

impl RequestMessages {
    fn state(&self) -> MutexGuard<'_, State> {
        // State stays consistent between statements; a panic elsewhere cannot break it.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The context of one view in this request.
    pub fn context(&self, view: impl AsRef<ViewId>) -> Context {
        Context {
            request: self.clone(),
            view: view.as_ref().clone(),
        }
    }

    /// The session key, if the request has one (or one was made during it).
    pub fn session(&self) -> Option<SessionKey> {
        self.state().session.clone()
    }

    /// The session key, made now if the visitor has none; the response then sets the
    /// session cookie even if no message is stored (for a job that will deliver later).
    ///
    /// # Errors
    /// [`Error::Random`] if no key can be made.
    pub fn ensure_session(&self) -> Result<SessionKey> {
        let mut st = self.state();
        st.session_forced = true;
        st.touched = true;
        st.session_or_new()
    }

    /// Ends the browser session's messages (at logout): every context of the session is
    /// cleared, the session cookie removed. Messages added afterwards in this request go
    /// to a new session.
    pub fn end_session(&self) {
        let mut st = self.state();
        if let Some(old) = st.session.take()
            && !st.session_new
        {
            st.ended = Some(old);
        }
        st.session_new = false;
        st.session_forced = false;
        st.views.clear();
        st.cookie.raw.clear();
        st.cookie.decoded = Some(CookiePayload::default());
        st.cookie.dirty = st.cookie.present;
        st.touched = true;
    }

    /// Writes the adds queued so far to a server store now, so the caller learns of a
    /// failure (commit only logs it). With cookie storage the adds travel in the response
    /// and this does nothing.
    ///
    /// # Errors
    /// The store's error; the messages it could not store are dropped.
    pub async fn flush(&self) -> Result<()> {
        let Storage::Server(store) = &self.inner.config.storage else {
            return Ok(());
        };
        let (session, work) = {
            let mut st = self.state();
            let work: Vec<(ViewId, Vec<Message>)> = st
                .views
                .iter_mut()
                .filter(|(_, vs)| !vs.queued.is_empty())
                .map(|(v, vs)| (v.clone(), std::mem::take(&mut vs.queued)))
                .collect();
            if work.is_empty() {
                return Ok(());
            }
            (st.session_or_new()?, work)
        };
        let mut result = Ok(());
        for (view, list) in work {
            if let Err(e) = store.add_all(&session, &view, list).await {
                result = Err(e);
            } else {
                self.state().session_forced = true;
            }
        }
        result
    }

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
        let cancelled = Arc::new(AtomicBool::new(false));
        let mut finishing = FinishOnDrop {
            rest: Some(Box::pin(self.clone().finish(
                st,
                success,
                Arc::clone(&cancelled),
            ))),
            cancelled,
        };
        let committed = match finishing.rest.as_mut() {
            Some(rest) => rest.await,
            None => Committed::default(),
        };
        finishing.rest = None;
        committed
    }

    /// The commit's store I/O and cookies, on the state taken out of the request.
    async fn finish(self, mut st: State, success: bool, cancelled: Arc<AtomicBool>) -> Committed {
        let config = Arc::clone(&self.inner.config);
        let names = &config.cookies;
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

        let mut set_cookie = Vec::new();
        let mut stored = false;
        match &config.storage {
            Storage::Server(store) => {
                if let Some(old) = &st.ended
                    && let Err(e) = store.clear_session(old).await
                {
                    log_store_error("clear_session", &e);
                }
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
            Storage::Cookie(cs) => {
                let changed = st.cookie.dirty || !to_store.is_empty() || !discards.is_empty();
                if changed {
                    let written = self
                        .write_cookie(&mut st, cs, None, to_store, &discards, &expect)
                        .await;
                    stored = written.0;
                    set_cookie.extend(written.1);
                }
            }
            Storage::Fallback(fb) => {
                if let Some(old) = &st.ended
                    && let Err(e) = fb.server.clear_session(old).await
                {
                    log_store_error("clear_session", &e);
                }
                let changed = st.cookie.dirty
                    || !to_store.is_empty()
                    || !discards.is_empty()
                    || !expect.is_empty();
                if changed {
                    let written = self
                        .write_cookie(
                            &mut st,
                            &fb.cookie,
                            Some(&fb.server),
                            to_store,
                            &discards,
                            &expect,
                        )
                        .await;
                    stored = written.0;
                    set_cookie.extend(written.1);
                    failed = written.2;
                }
            }
        }
        let server = match &config.storage {
            Storage::Server(store) => Some(store),
            Storage::Fallback(fb) => Some(&fb.server),
            Storage::Cookie(_) => None,
        };
        if let Some(server) = server {
            for (view, (session, lease)) in leases {
                // A cancelled response was never seen: leave the lease to run out.
                if failed.contains(&view) || cancelled.load(Ordering::Acquire) {
                    continue;
                }
                if let Err(e) = server.settle(&session, &view, lease).await {
                    log_store_error("settle", &e);
                }
            }
        }
        if cancelled.load(Ordering::Acquire)
            && let (Storage::Server(store), Some(session)) = (&config.storage, &st.session)
        {
            // Without a lease the store no longer holds what the request rendered, and the
            // response that rendered it never went out: give it back.
            for (view, list) in shown_lists {
                if let Err(e) = store.put_back(session, &view, list).await {
                    log_store_error("put_back", &e);
                }
            }
        }

        // The session cookie goes first: the messages cookie is bound to it.
        let session_cookie = match (&st.session, st.session_new && (stored || st.session_forced)) {
            (Some(session), true) => {
                Some(names.set_cookie(&names.session_name, Some(session.as_str())))
            }
            // Only a request that touched messages gets here (see `commit`): a malformed
            // session cookie is not removed by responses that never use it.
            _ if (st.ended.is_some() || st.bad_session_cookie) && !st.session_new => {
                Some(names.set_cookie(&names.session_name, None))
            }
            _ => None,
        };
        if let Some(c) = session_cookie {
            set_cookie.insert(0, c);
        }
        touched |= !set_cookie.is_empty();
        Committed {
            set_cookie,
            touched,
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

    /// Loads (takes) a view's stored messages into the request, once.
    async fn load(&self, view: &ViewId) {
        let _guard = self.inner.load_lock.lock().await;
        let config = &self.inner.config;
        let (session, server, mut found) = {
            let mut st = self.state();
            st.touched = true;
            if st.views.get(view).is_some_and(|v| v.is_loaded) {
                return;
            }
            let mut found = Vec::new();
            let mut server = None;
            match &config.storage {
                Storage::Server(store) => server = Some(Arc::clone(store)),
                Storage::Cookie(cs) => {
                    let p = st.payload(cs, &config.cookies.messages_name);
                    found = p.views.remove(view).unwrap_or_default();
                    if !found.is_empty() {
                        st.cookie.dirty = true;
                    }
                }
                Storage::Fallback(fb) => {
                    let p = st.payload(&fb.cookie, &config.cookies.messages_name);
                    found = p.views.remove(view).unwrap_or_default();
                    if p.is_spilled(view) {
                        server = Some(Arc::clone(&fb.server));
                    }
                    if !found.is_empty() {
                        st.cookie.dirty = true;
                    }
                }
            }
            (st.session.clone(), server, found)
        };
        // With fallback storage a view marked in the cookie keeps its mark until the server
        // store has delivered: a job announced with `expect_later` may not have written yet,
        // and a failed take must not strand what the server holds. The mark stays in the
        // decoded cookie, so an undelivered read does not rewrite the cookie.
        let mut delivered = false;
        let mut lease = None;
        if let (Some(server), Some(session)) = (server, session) {
            match server.take_leased(&session, view).await {
                Ok(taken) => {
                    delivered = !taken.messages.is_empty();
                    found.extend(taken.messages);
                    lease = taken.lease.map(|l| (session, l));
                }
                Err(e) => log_store_error("take", &e),
            }
        }
        let mut st = self.state();
        if delivered
            && st
                .cookie
                .decoded
                .as_mut()
                .is_some_and(|p| p.spilled.remove(view))
        {
            st.cookie.dirty = true;
        }
        let vs = st.views.entry(view.clone()).or_default();
        vs.loaded.append(&mut found);
        vs.is_loaded = true;
        vs.lease = lease;
    }

    /// What the request holds of a view, in order: the messages before the server
    /// store's part (loaded, or in the cookie), the server store with the session to ask
    /// it for (if it holds a part), and the adds queued by this request.
    fn held(&self, view: &ViewId) -> Held {
        let config = &self.inner.config;
        let mut st = self.state();
        st.touched = true;
        let queued = st
            .views
            .get(view)
            .map(|vs| vs.queued.clone())
            .unwrap_or_default();
        if let Some(vs) = st.views.get(view).filter(|vs| vs.is_loaded) {
            return Held {
                before: vs.loaded.clone(),
                server: None,
                queued,
            };
        }
        let mut before = Vec::new();
        let mut server = None;
        match &config.storage {
            Storage::Server(store) => server = Some(Arc::clone(store)),
            Storage::Cookie(cs) => {
                let p = st.payload(cs, &config.cookies.messages_name);
                before.extend(p.views.get(view).cloned().unwrap_or_default());
            }
            Storage::Fallback(fb) => {
                let p = st.payload(&fb.cookie, &config.cookies.messages_name);
                before.extend(p.views.get(view).cloned().unwrap_or_default());
                if p.is_spilled(view) {
                    server = Some(Arc::clone(&fb.server));
                }
            }
        }
        Held {
            before,
            server: server.zip(st.session.clone()),
            queued,
        }
    }

    /// A view's messages without taking them (store I/O unless already loaded).
    async fn peek(&self, view: &ViewId) -> Vec<Message> {
        let Held {
            mut before,
            server,
            queued,
        } = self.held(view);
        if let Some((server, session)) = server {
            match server.peek(&session, view).await {
                Ok(more) => before.extend(more),
                Err(e) => log_store_error("peek", &e),
            }
        }
        before.extend(queued);
        before
    }

    /// How many messages a view holds (store I/O unless already loaded, without fetching
    /// the stored messages).
    async fn count(&self, view: &ViewId) -> usize {
        let held = self.held(view);
        let mut stored = 0;
        if let Some((server, session)) = &held.server {
            match server.count(session, view).await {
                Ok(n) => stored = n,
                Err(e) => log_store_error("count", &e),
            }
        }
        held.before.len() + stored + held.queued.len()
    }
}

/// What a request holds of one view, in display order; see [`RequestMessages::held`].
struct Held {
    before: Vec<Message>,
    server: Option<ServerPart>,
    queued: Vec<Message>,
}

/// The messages of one view in one request — what `self` is inside a
/// `#[with_messages]` handler.
///
/// Adding is synchronous and queued until the response; reading is lazy: nothing is read
/// from the store until [`messages`](Context::messages), [`peek`](Context::peek) or
/// [`count`](Context::count) is called, and a request that calls none of them does no
/// store I/O and sends no messages cookie.
#[derive(Clone)]
pub struct Context {
    request: RequestMessages,
    view: ViewId,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("view", &self.view)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// The view this context is bound to.
    pub fn view(&self) -> &ViewId {
        &self.view
    }

    /// The request this context belongs to.
    pub fn request(&self) -> &RequestMessages {
        &self.request
    }

    /// Adds a message for this view, stored when the response is committed — for the next
    /// request of the view, or for this one if it reads messages afterwards. Messages
    /// below the configured minimum level are ignored.
    pub fn add_message(&self, message: Message) {
        let config = &self.request.inner.config;
        if message.level() < config.min_level {
            tracing::debug!(level = %message.level(), "messages: below the minimum level, ignored");
            return;
        }
        let mut st = self.request.state();
        st.touched = true;
        let vs = st.views.entry(self.view.clone()).or_default();
        vs.queued.push(message);
        if vs.queued.len() > config.queue_cap {
            let excess = vs.queued.len() - config.queue_cap;
            vs.queued.drain(..excess);
            if !vs.overflowed {
                vs.overflowed = true;
                tracing::warn!(view = %self.view, cap = config.queue_cap, "messages: too many adds in one request, oldest dropped");
            }
        }
    }

    /// This view's messages, in arrival order: the stored ones, then those added so far
    /// in this request. Loading reserves them for this request (a concurrent request does not get
    /// them); iterating or serializing the list consumes them. A list never iterated, or
    /// a failed response, keeps them for the next request.
    pub async fn messages(&self) -> MessageList {
        self.request.load(&self.view).await;
        let mut st = self.request.state();
        let vs = st.views.entry(self.view.clone()).or_default();
        let mut queued = std::mem::take(&mut vs.queued);
        vs.loaded.append(&mut queued);
        let rendered = Arc::new(AtomicBool::new(false));
        vs.lists.push((Arc::clone(&rendered), vs.loaded.len()));
        MessageList {
            messages: vs.loaded.clone(),
            rendered,
        }
    }

    /// This view's messages without consuming or reserving them.
    pub async fn peek(&self) -> Vec<Message> {
        self.request.peek(&self.view).await
    }

    /// How many messages [`messages`](Context::messages) would return now.
    pub async fn count(&self) -> usize {
        self.request.count(&self.view).await
    }

    /// Drops this view's messages unread, stored and queued.
    pub fn discard(&self) {
        let mut st = self.request.state();
        st.touched = true;
        let vs = st.views.entry(self.view.clone()).or_default();
        vs.loaded.clear();
        vs.lists.clear();
        vs.queued.clear();
        vs.is_loaded = true;
        vs.discard = true;
    }

    /// Announces messages that will be added out of band (by a background job) for this
    /// view: with [`FallbackStore`] the cookie then tells a later read to ask the server
    /// store, and keeps telling every read of the view until the server store has
    /// delivered (a read before the job has written loses nothing). Other storage needs no
    /// announcement. Makes sure the session exists.
    ///
    /// # Errors
    /// [`Error::Random`] if no session key can be made.
    pub fn expect_later(&self) -> Result<SessionKey> {
        let session = self.request.ensure_session()?;
        let mut st = self.request.state();
        st.views.entry(self.view.clone()).or_default().expect_later = true;
        Ok(session)
    }
}

/// The messages of a view, read by [`Context::messages`].
///
/// Iterating (`for m in &list`, [`iter`](MessageList::iter)), serializing, or
/// [`into_vec`](MessageList::into_vec) consumes them: they will not be shown again.
/// Exactly the messages this list holds are consumed: one added to the view after the list
/// was loaded is not, even if a later list of the view holding it is never rendered.
/// [`len`](MessageList::len) and [`is_empty`](MessageList::is_empty) do not.
#[derive(Clone)]
pub struct MessageList {
    messages: Vec<Message>,
    /// Shared with the request (and with clones of this list): set once rendered.
    rendered: Arc<AtomicBool>,
}

impl fmt::Debug for MessageList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.messages).finish()
    }
}

impl MessageList {
    fn consume(&self) {
        self.rendered.store(true, Ordering::Release);
    }
    /// How many messages; does not consume.
    pub fn len(&self) -> usize {
        self.messages.len()
    }
    /// Whether there are none; does not consume.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
    /// Iterates, oldest first; consumes.
    pub fn iter(&self) -> std::slice::Iter<'_, Message> {
        self.consume();
        self.messages.iter()
    }
    /// The messages, oldest first; consumes.
    pub fn into_vec(self) -> Vec<Message> {
        self.consume();
        self.messages
    }
}

impl<'a> IntoIterator for &'a MessageList {
    type Item = &'a Message;
    type IntoIter = std::slice::Iter<'a, Message>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl IntoIterator for MessageList {
    type Item = Message;
    type IntoIter = std::vec::IntoIter<Message>;
    fn into_iter(self) -> Self::IntoIter {
        self.into_vec().into_iter()
    }
}

impl Serialize for MessageList {
    /// A JSON array of the messages; consumes.
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        self.consume();
        self.messages.serialize(serializer)
    }
}
