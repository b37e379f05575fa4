//! The request core, framework-free: configuration, one request's messages, one view's
//! messages, and the commit that tells a framework adapter what to write.
//!
//! One request flows through it like this:
//!
//! 1. [`MessagesConfig::begin_request`] (or [`begin`](MessagesConfig::begin)) with the
//!    values of the request's `Cookie` headers: the [`SessionSource`] reads the session
//!    key, the messages cookie is kept undecoded. No I/O.
//! 2. The handler works on [`Messages`] → [`ViewMessages`] → [`MessageList`]: adds are
//!    queued, a read takes the view's messages from the cookie and/or the server store
//!    (lazily, once), and only what a rendered list held is consumed.
//! 3. [`CommitGuard::commit`] (or [`Messages::commit`]) with the response's success:
//!    stores what must be kept, settles the store's read leases, and returns
//!    [`Committed`]: the `Set-Cookie` values, the [`SessionChange`], and the header policy
//!    (`Vary: Cookie`, `Cache-Control: private`) for responses that used messages.
//!    Dropped before or during the commit (a cancelled request), the guard finishes it
//!    on a spawned task as a failure, so nothing is lost.
//!
//! A framework adapter is those three calls plus its framework's way of putting
//! [`Messages`] into the request and headers into the response:
//!
//! ```
//! use messages_core::{MemoryStore, Message, MessagesConfig, ViewId};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let config = MessagesConfig::new(MemoryStore::new());
//! let settings = ViewId::from_static("app::settings");
//!
//! // POST /settings: add, then redirect.
//! let guard = config.begin_request(None, []).unwrap();
//! guard.messages().context(&settings).add_message(Message::success("Saved."));
//! let done = guard.commit(true).await;
//! assert_eq!(done.cache_control([]).as_deref(), Some("private"));
//! let session_cookie = done.set_cookie[0].split(';').next().unwrap().to_owned();
//!
//! // GET /settings: the message is shown once.
//! let guard = config.begin_request(None, [session_cookie.as_str()]).unwrap();
//! let shown: Vec<String> = guard.messages().context(&settings).messages().await.iter().map(|m| m.text().to_owned()).collect();
//! assert_eq!(shown, ["Saved."]);
//! assert!(guard.commit(true).await.set_cookie.is_empty());
//!
//! // Reload: gone.
//! let request = config.begin([session_cookie.as_str()]);
//! assert!(request.context(&settings).messages().await.is_empty());
//! # }
//! ```

use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

mod commit;
mod config;
pub(crate) mod cookie;
mod headers;
mod identity;
mod state;
mod storage;
mod view;

pub use commit::{CommitGuard, Committed};
pub use config::MessagesConfig;
pub use cookie::{CookieSettings, CookieStore, SameSite};
pub use headers::ResponseHeaders;
#[cfg(feature = "actix")]
pub(crate) use headers::policy_header_names;
#[cfg(feature = "actix")]
pub(crate) use headers::valid_static;
pub use identity::{Incoming, SessionChange, SessionCookie, SessionSource};
pub use storage::Storage;
pub use view::{MessageList, ViewMessages};

use config::ConfigInner;
use state::State;

use crate::{Error, Message, Result, SessionKey, ViewId};

pub(crate) struct RequestInner {
    config: Arc<ConfigInner>,
    state: Mutex<State>,
    /// Serializes loads within one request, so no view is taken twice.
    load_lock: tokio::sync::Mutex<()>,
    /// Set when the commit's future is dropped before it completes: the rest of the
    /// commit, run on a spawned task, then treats the response as never sent.
    cancelled: AtomicBool,
}

/// One request's messages, for every view: what handlers take (the extractor of every
/// framework integration, and what `#[with_messages]` injects). Cheap to clone (shared).
///
/// Made by [`MessagesConfig::begin`]; [`context`](Messages::context) gives one view's
/// [`ViewMessages`].
#[derive(Clone)]
pub struct Messages {
    inner: Arc<RequestInner>,
}

impl fmt::Debug for Messages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state();
        f.debug_struct("Messages")
            .field("session", &st.session)
            .field("views", &st.views.len())
            .finish_non_exhaustive()
    }
}

pub(crate) fn log_store_error(op: &str, e: &Error) {
    tracing::error!(op, error = %e, source = ?std::error::Error::source(e), "messages: store operation failed");
}

impl Messages {
    fn state(&self) -> MutexGuard<'_, State> {
        // State stays consistent between statements; a panic elsewhere cannot break it.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The messages of one view in this request.
    pub fn context(&self, view: impl AsRef<ViewId>) -> ViewMessages {
        ViewMessages::new(self.clone(), view.as_ref().clone())
    }

    /// Opens a live stream of `view`'s messages for this request's session (made now,
    /// with its cookie on this response, if the visitor has none): see
    /// [`live`](crate::live). `last_event_id` is the request's `Last-Event-ID` header.
    /// The framework adapters serve it (`messages_core::axum::live_response`,
    /// `messages_core::actix::live_response`).
    ///
    /// ```
    /// use messages_core::live::LiveEvent;
    /// use messages_core::{MemoryStore, Message, MessagesConfig, ViewId};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let config = MessagesConfig::new(MemoryStore::new());
    /// let dashboard = ViewId::from_static("app::dashboard");
    /// let request = config.begin([]);
    /// let mut stream = request.live(&dashboard, None).unwrap();
    ///
    /// // A background job adds to the session: the stream takes it at once.
    /// let store = config.server_store().unwrap();
    /// store.add(stream.session(), &dashboard, Message::info("Import finished")).await.unwrap();
    /// let Some(LiveEvent::Message(m)) = stream.next().await else { panic!() };
    /// assert_eq!(m.text(), "Import finished");
    /// assert_eq!(store.count(stream.session(), &dashboard).await.unwrap(), 0);
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`LiveRefused`](crate::live::LiveRefused): no server store, too many streams,
    /// shutting down, or no session key could be made.
    pub fn live(
        &self,
        view: impl AsRef<ViewId>,
        last_event_id: Option<&str>,
    ) -> std::result::Result<crate::live::LiveStream, crate::live::LiveRefused> {
        use crate::live::LiveRefused;
        let config = &self.inner.config;
        let store = config
            .storage
            .server()
            .cloned()
            .ok_or(LiveRefused::NoServerStore)?;
        let session = self.ensure_session().map_err(LiveRefused::Session)?;
        crate::live::LiveStream::open(
            &config.live,
            store,
            session,
            view.as_ref().clone(),
            last_event_id,
        )
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

    /// Gives the browser a fresh session key (at login, or any change of privilege) and
    /// carries every pending message of the old key over to it: all views, order kept.
    /// Afterwards the old key holds nothing, and the stores refuse adds to it (a key an
    /// attacker planted before login reaches nothing of the logged-in session).
    ///
    /// The move happens when the request commits: the server store's part with
    /// [`MessageStore::rotate`](crate::MessageStore::rotate), the cookie part re-signed
    /// under the new key. Messages this request loaded and did not render go to the new
    /// key too; adds of this request, before or after the call, go to the new key. The
    /// response sets the new session cookie ([`SessionChange::Rotated`]).
    ///
    /// ```
    /// use messages_core::{MemoryStore, Message, MessagesConfig, ViewId};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let config = MessagesConfig::new(MemoryStore::new());
    /// let inbox = ViewId::from_static("app::inbox");
    /// let first = config.begin([]);
    /// first.context(&inbox).add_message(Message::info("before login"));
    /// let planted = first.commit(true).await.set_cookie[0].split(';').next().unwrap().to_owned();
    ///
    /// // POST /login
    /// let login = config.begin([planted.as_str()]);
    /// let fresh = login.rotate_session().unwrap();
    /// let done = login.commit(true).await;
    /// assert!(done.set_cookie[0].starts_with(&format!("messages_session={}", fresh.as_str())));
    ///
    /// // The old key sees nothing; the new one sees what was pending.
    /// assert!(config.begin([planted.as_str()]).context(&inbox).peek().await.is_empty());
    /// let cookie = format!("messages_session={}", fresh.as_str());
    /// assert_eq!(config.begin([cookie.as_str()]).context(&inbox).peek().await[0].text(), "before login");
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::Random`] if no key can be made; nothing changes then.
    pub fn rotate_session(&self) -> Result<SessionKey> {
        let config = &self.inner.config;
        let fresh = SessionKey::generate()?;
        let mut st = self.state();
        st.touched = true;
        // The cookie part is bound to the old key: read it before the key changes.
        let carried = st.cookie_part(config).is_some_and(|p| !p.is_empty());
        if let Some(old) = st.session.replace(fresh.clone())
            && !st.session_new
            && st.rotated_from.is_none()
        {
            st.rotated_from = Some(old);
        }
        st.session_new = true;
        st.session_forced = true;
        if carried || st.cookie.present {
            st.cookie.dirty = true;
        }
        Ok(fresh)
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
        // A rotation earlier in this request: the key it came with ends too.
        if let Some(from) = st.rotated_from.take() {
            st.ended = Some(from);
        }
        st.session_new = false;
        st.session_forced = false;
        st.views.clear();
        st.cookie.raw.clear();
        st.cookie.decoded = Some(cookie::CookiePayload::default());
        st.cookie.dirty = st.cookie.present;
        st.touched = true;
    }

    /// Writes the adds queued so far to the server store now, so the caller learns of a
    /// failure (commit only logs it). When the storage has a cookie part the adds travel
    /// in the response, and this does nothing.
    ///
    /// # Errors
    /// The store's error; the messages it could not store are dropped.
    pub async fn flush(&self) -> Result<()> {
        let Some(store) = self.inner.config.storage.server_only() else {
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

    /// Loads (takes) a view's stored messages into the request, once.
    async fn load(&self, view: &ViewId) {
        let _guard = self.inner.load_lock.lock().await;
        let config = &self.inner.config;
        let (session, ask_server, mut found) = {
            let mut st = self.state();
            st.touched = true;
            if st.views.get(view).is_some_and(|v| v.is_loaded) {
                return;
            }
            let mut found = Vec::new();
            let mut spilled = None;
            if let Some(p) = st.cookie_part(config) {
                found = p.views.remove(view).unwrap_or_default();
                spilled = Some(p.is_spilled(view));
            }
            if !found.is_empty() {
                st.cookie.dirty = true;
            }
            let ask = config.storage.asks_server(spilled);
            (st.session.clone(), ask, found)
        };
        // With fallback storage a view marked in the cookie keeps its mark until the server
        // store has delivered: a job announced with `expect_later` may not have written yet,
        // and a failed take must not strand what the server holds. The mark stays in the
        // decoded cookie, so an undelivered read does not rewrite the cookie.
        let mut delivered = false;
        let mut lease = None;
        if let (Some(server), Some(session), true) = (config.storage.server(), session, ask_server)
        {
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
    /// store's part (loaded, or in the cookie), whether to ask the server store and with
    /// which session, and the adds queued by this request.
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
        let mut spilled = None;
        if let Some(p) = st.cookie_part(config) {
            before.extend(p.views.get(view).cloned().unwrap_or_default());
            spilled = Some(p.is_spilled(view));
        }
        let server = config
            .storage
            .server()
            .filter(|_| config.storage.asks_server(spilled))
            .cloned();
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

/// What a request holds of one view, in display order; see [`Messages::held`].
struct Held {
    before: Vec<Message>,
    server: Option<(Arc<dyn crate::MessageStore>, SessionKey)>,
    queued: Vec<Message>,
}
