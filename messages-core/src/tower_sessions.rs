//! tower-sessions as the identity source (feature `tower-sessions`): an app that already
//! has a tower-sessions session sends one cookie, tower-sessions' own, and messages follow
//! that session through login and logout.
//!
//! # How it works
//!
//! - **Identity.** The messages of a browser live under a [`SessionKey`] derived from its
//!   tower-sessions session id: HMAC-SHA256 under an app secret
//!   ([`TowerSessionsIdentity`]), so the store's key is not the session id, and an id
//!   cannot be worked out from a store key. The id is the one tower-sessions parsed from
//!   its cookie ([`Session::id`], no I/O), signed or private cookies included. Messages
//!   stay in the [`MessageStore`] (atomic take, leases), never in the session record.
//! - **Lazy.** Deriving the key reads no session record. A request that never touches
//!   messages makes no call to either store; one that reads or adds messages calls the
//!   message store only. The session record is loaded or written by this layer only when
//!   the app changed its session (see below) or a new visitor's first messages must be
//!   kept.
//! - **A new visitor** has no session until the app stores something in it. When a
//!   request of a visitor without one keeps messages (or calls
//!   [`Messages::ensure_session`]), the layer inserts one small marker,
//!   [`SESSION_MARKER`], into the [`Session`] (no load: the record is new), so
//!   tower-sessions creates the session and sets its cookie, and the messages move to the
//!   new session's key. Nothing else is ever written into the record.
//! - **Login** (`session.cycle_id()`): the pending messages of every view move to the new
//!   id's key ([`MessageStore::rotate`]), with what the login request added; the old key
//!   sees nothing afterwards, and refuses later adds where the store retires rotated keys
//!   (as [`MemoryStore`](crate::MemoryStore) and `RedisStore` do).
//!   [`Messages::rotate_session`] cycles the tower-sessions id too.
//! - **Logout** (`session.flush()`): the messages the session had pending end (cleared,
//!   and the old key retired as above). What the logout request itself adds ("You have
//!   been logged out.") is kept, in a new session made for it under a fresh id
//!   (tower-sessions would otherwise save it under the id that just ended); if it adds
//!   nothing, tower-sessions removes its cookie as usual. A session tower-sessions finds
//!   expired or unknown ends its messages the same way, once the app reads it.
//!   [`Messages::end_session`] clears the messages and keeps the app's session.
//!
//! A flush is told from a cycle by the record: after a flush it is empty, after a cycle
//! the data is kept. A logout handler that writes into the session after flushing it
//! looks like a cycle, and the old messages would follow; such a handler also calls
//! [`Messages::end_session`].
//!
//! Like the default session cookie, an id a client brings is taken as it is until the app
//! reads its session (checking it would load the record on every request): a planted id
//! reaches the messages added under it, and the login's `cycle_id` ends that.
//!
//! # What each request costs
//!
//! | request | message store | session store, beyond what the app does |
//! |---|---|---|
//! | does not use messages (with a session or not) | nothing | nothing |
//! | reads or adds messages, the session exists | the reads and writes | nothing |
//! | a new visitor's first messages | the write, one `rotate` | `create` (the marker) |
//! | login (`cycle_id`) | one `rotate` | nothing |
//! | logout (`flush`) | `clear_session`, one `rotate` (retiring the old key); `pending_views` if it used messages | nothing; with messages added: a `delete` (the fresh id) and `create` |
//!
//! # Layer order
//!
//! [`SessionMessagesLayer`] **takes the app's session layer** and puts it in the one place
//! that works, so there is no order to get wrong: tower-sessions' cookie layer and
//! session manager outside, the messages part inside them (it needs the request's
//! [`Session`]), and a last step outside them (it needs the id tower-sessions gave a new
//! or cycled session when it saved it):
//!
//! ```text
//! SessionMessagesService → CookieManager → SessionManager → SessionMessagesInner → handler
//!   (moves messages to        (tower-sessions: Set-Cookie,    (derives the key,
//!    the saved id's key)        loads and saves the record)    commits the messages)
//! ```
//!
//! It replaces both `.layer(session_layer)` and [`MessagesLayer`](crate::axum::MessagesLayer):
//! add neither beside it (a `MessagesLayer` outside it would own every request, with its
//! own cookie).
//! The session layer may be one built around tower-sessions', such as axum-login's
//! `AuthManagerLayer` (which wraps the `SessionManagerLayer` it is given). Without a
//! `Session` in the request (a layer that provides none) every request answers `500`
//! and logs why.
//!
//! ```
//! use axum::{Router, routing::get};
//! use messages_core::tower_sessions::{SessionMessagesLayer, TowerSessionsIdentity};
//! use messages_core::{MemoryStore, MessagesConfig};
//! use tower_sessions::{MemoryStore as SessionStore, SessionManagerLayer};
//!
//! # fn main() -> messages_core::Result<()> {
//! let sessions = SessionManagerLayer::new(SessionStore::default());
//! // Your secret (at least 32 bytes), the same in every process and across restarts.
//! let identity = TowerSessionsIdentity::new([7u8; 32])?;
//! let messages =
//!     SessionMessagesLayer::new(MessagesConfig::new(MemoryStore::new()), identity, sessions)?;
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "hello" })) // and /login calling session.cycle_id()
//!     .layer(messages); // instead of .layer(sessions) and MessagesLayer
//! # Ok(()) }
//! ```
//!
//! # Limits
//!
//! - Storage must be a server store only: a messages cookie would be a second cookie
//!   ([`SessionMessagesLayer::new`] refuses a [`CookieStore`](crate::CookieStore) part).
//! - The key of a new visitor exists once tower-sessions has saved the session: a key
//!   handed out during that visitor's first request ([`Messages::session`],
//!   [`Messages::ensure_session`]) is moved away from when the request ends. Hand a
//!   background job [`TowerSessionsIdentity::key_for`] of a saved session instead.
//! - tower-sessions saves no session for a `5xx` response: what a new visitor's failed
//!   request added is lost, and a login that fails after `cycle_id` keeps the messages
//!   under the old key.
//! - The secret must be the same in every process sharing a message store, and kept
//!   across restarts (with [`TowerSessionsIdentity::random`], each start is a new set of
//!   keys).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use http::{HeaderMap, Request, Response, StatusCode};
use sha2::Sha256;
use tower::{Layer, Service};
use tower_sessions_core::Session;
use tower_sessions_core::session::Id;

use crate::request::{CommitGuard, Incoming, SessionChange, SessionSource, log_store_error};
use crate::{Error, MessageStore, Messages, MessagesConfig, Result, SessionKey};

/// The one key this layer ever writes into a tower-sessions record (value `true`): when
/// messages must be kept for a visitor who has no session yet, so that tower-sessions
/// creates one.
pub const SESSION_MARKER: &str = "messages.session";

/// Shortest secret [`TowerSessionsIdentity::new`] takes.
const MIN_SECRET_BYTES: usize = 32;

/// Separates this use of the secret from any other the app makes of it.
const DERIVATION: &[u8] = b"messages-core tower-sessions identity v1\0";

/// The name of the one cookie the layer hands the request core: the derived key. The core
/// never sees the request's own cookies, so a client cannot choose the key.
const HANDOFF: &str = "k";

/// Derives a browser's messages [`SessionKey`] from its tower-sessions session id:
/// HMAC-SHA256 of the id under a secret, as unpadded base64url.
///
/// The same secret and id always give the same key; every process that shares a message
/// store must use the same secret. `Debug` does not print it.
///
/// ```
/// use messages_core::tower_sessions::TowerSessionsIdentity;
/// use tower_sessions_core::session::Id;
///
/// let identity = TowerSessionsIdentity::new([7u8; 32]).unwrap();
/// let id = Id(42);
/// assert_eq!(identity.key_of(&id), identity.key_of(&id));
/// assert_ne!(identity.key_of(&id), identity.key_of(&Id(43)));
/// assert_ne!(identity.key_of(&id).as_str(), id.to_string());
/// assert!(TowerSessionsIdentity::new(b"short").is_err());
/// ```
#[derive(Clone)]
pub struct TowerSessionsIdentity {
    mac: Hmac<Sha256>,
}

impl fmt::Debug for TowerSessionsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TowerSessionsIdentity")
            .finish_non_exhaustive()
    }
}

impl TowerSessionsIdentity {
    /// Keys derived under `secret` (at least 32 bytes; random, and kept secret).
    ///
    /// # Errors
    /// [`Error::Config`] for a secret shorter than 32 bytes.
    pub fn new(secret: impl AsRef<[u8]>) -> Result<TowerSessionsIdentity> {
        let secret = secret.as_ref();
        if secret.len() < MIN_SECRET_BYTES {
            return Err(Error::Config(format!(
                "the tower-sessions identity secret has {} bytes, it needs at least {MIN_SECRET_BYTES}",
                secret.len()
            )));
        }
        let mac = Hmac::<Sha256>::new_from_slice(secret)
            .map_err(|e| Error::Config(format!("the tower-sessions identity secret: {e}")))?;
        Ok(TowerSessionsIdentity { mac })
    }

    /// Keys under a secret made now from the OS random source: for one process whose
    /// message store lives and dies with it ([`MemoryStore`](crate::MemoryStore)). After
    /// a restart no browser finds its messages again.
    ///
    /// # Errors
    /// [`Error::Random`] if the OS random source fails.
    pub fn random() -> Result<TowerSessionsIdentity> {
        let mut secret = [0u8; MIN_SECRET_BYTES];
        getrandom::fill(&mut secret).map_err(|e| Error::Random(e.to_string()))?;
        TowerSessionsIdentity::new(secret)
    }

    /// The messages key of the session with this id.
    pub fn key_of(&self, id: &Id) -> SessionKey {
        let mut mac = self.mac.clone();
        mac.update(DERIVATION);
        mac.update(&id.0.to_le_bytes());
        let digest = mac.finalize().into_bytes();
        match URL_SAFE_NO_PAD.encode(digest).parse() {
            Ok(key) => key,
            // 32 bytes of unpadded base64url are a session key's exact form.
            Err(_) => unreachable!("an HMAC-SHA256 digest encodes to a session key"),
        }
    }

    /// The messages key of `session`, once it has an id (a session of a new visitor has
    /// none until tower-sessions saved it). For a background job that delivers later.
    pub fn key_for(&self, session: &Session) -> Option<SessionKey> {
        session.id().map(|id| self.key_of(&id))
    }
}

/// The session source of a [`SessionMessagesLayer`]'s requests: the key the layer
/// derived, handed over as the only "cookie" the core sees. Nothing to write back:
/// tower-sessions owns the cookie.
#[derive(Debug)]
struct Handoff;

impl SessionSource for Handoff {
    fn incoming(&self, cookies: &[(&str, &str)]) -> Incoming {
        match cookies.first() {
            Some((HANDOFF, value)) => value.parse().map_or(Incoming::Absent, Incoming::Key),
            _ => Incoming::Absent,
        }
    }

    fn outgoing(&self, _change: &SessionChange) -> Option<String> {
        None
    }
}

/// What the layer shares between its two parts.
struct Shared {
    config: MessagesConfig,
    identity: TowerSessionsIdentity,
    store: Arc<dyn MessageStore>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What tower-sessions' session went through during the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// The id is the one the request came with (or the app saved a new visitor's).
    Kept,
    /// The id changed and the data stayed: `cycle_id` (login).
    Cycled,
    /// The id is gone and the record empty: `flush` (logout), or a session the store no
    /// longer has.
    Flushed,
}

/// Left in the response's extensions by the inner part for the outer one, which knows
/// the id tower-sessions saved `session` under: the messages under `from` go to its key,
/// and `retire` (the key the request came with, when the session moved or ended) is
/// retired unless it is that key still (tower-sessions saves a session written after a
/// flush under the id it had).
#[derive(Clone)]
struct Remap {
    session: Session,
    from: Option<SessionKey>,
    retire: Option<SessionKey>,
}

impl Shared {
    /// Rotates `from` into `to` on a task of its own, so a request dropped meanwhile does
    /// not strand the messages.
    async fn rotate(&self, from: SessionKey, to: SessionKey) {
        let store = Arc::clone(&self.store);
        match tokio::spawn(async move { store.rotate(&from, &to).await }).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => log_store_error("rotate", &e),
            Err(e) => tracing::error!(error = %e, "messages: moving a session's messages failed"),
        }
    }

    /// Makes `old` refuse what comes later (a key that moved or ended), where the store
    /// retires rotated keys; what it still holds goes nowhere.
    async fn retire(&self, old: &SessionKey) {
        match SessionKey::generate() {
            Ok(nowhere) => self.rotate(old.clone(), nowhere).await,
            Err(e) => tracing::error!(error = %e, "messages: a session key could not be retired"),
        }
    }

    async fn has_pending(&self, session: &SessionKey) -> bool {
        match self.store.pending_views(session).await {
            Ok(views) => !views.is_empty(),
            Err(e) => {
                log_store_error("pending_views", &e);
                false
            }
        }
    }

    /// After the handler, before tower-sessions saves: commits the messages under the key
    /// the request came with (a logout first ends what that key held), follows what the
    /// app did to its session, and says which key's messages must move to the key of the
    /// id tower-sessions will save (if any).
    async fn after_handler(
        &self,
        session: Session,
        before: Option<(Id, SessionKey)>,
        guard: CommitGuard,
        status: u16,
        headers: &mut HeaderMap,
    ) -> Option<Remap> {
        let came_with = before.as_ref().map(|(_, key)| key.clone());
        let change = match (before.as_ref().map(|(id, _)| *id), session.id()) {
            (Some(id), now) if now != Some(id) => {
                if now.is_none() && session.is_empty().await {
                    Change::Flushed
                } else {
                    Change::Cycled
                }
            }
            _ => Change::Kept,
        };
        if let (Change::Flushed, Some(old)) = (change, &came_with)
            && let Err(e) = self.store.clear_session(old).await
        {
            log_store_error("clear_session", &e);
        }

        let committed = guard.commit_response(status, headers).await;

        // Where the core put what the request keeps, when not under the key it came with:
        // a new visitor's first messages, or after `rotate_session` / `end_session`.
        let made = match &committed.session {
            SessionChange::Started(key) | SessionChange::Rotated { to: key, .. } => {
                Some(key.clone())
            }
            _ => None,
        };
        let ended = matches!(committed.session, SessionChange::Ended(_));
        let rotated_by_core = matches!(
            &committed.session,
            SessionChange::Rotated { from, .. } if Some(from) == came_with.as_ref()
        );
        let carry = match change {
            Change::Kept => match (&came_with, made) {
                (Some(_), Some(made)) if rotated_by_core => {
                    // `Messages::rotate_session`: the browser's session is tower-sessions'.
                    if let Err(e) = session.cycle_id().await {
                        tracing::error!(error = %e, "messages: rotate_session could not cycle the tower-sessions id");
                    }
                    Some(made)
                }
                (Some(old), Some(made)) => {
                    // `end_session`, then messages for the session: back under its key.
                    self.rotate(made, old.clone()).await;
                    None
                }
                (None, made) => made,
                (Some(_), None) => None,
            },
            Change::Cycled if ended => None,
            Change::Cycled => made.or_else(|| came_with.clone()),
            Change::Flushed => match (&committed.session, &came_with) {
                (SessionChange::Unchanged, Some(old))
                    if committed.touched && self.has_pending(old).await =>
                {
                    Some(old.clone())
                }
                _ => made,
            },
        };
        let retire = came_with.filter(|old| {
            change != Change::Kept && carry.as_ref() != Some(old) && !rotated_by_core
        });
        if carry.is_none() && retire.is_none() {
            return None;
        }
        // tower-sessions saves (and so gives an id to) only a session with data.
        if carry.is_some() && session.id().is_none() && session.is_empty().await {
            if let Err(e) = session.insert(SESSION_MARKER, true).await {
                tracing::error!(error = %e, "messages: the tower-sessions session could not be started");
            }
            // A flushed record keeps its id, and tower-sessions would save the new session
            // under the id that just ended: give it a fresh one.
            if change == Change::Flushed
                && let Err(e) = session.cycle_id().await
            {
                tracing::error!(error = %e, "messages: the session after a logout could not get a new id");
            }
        }
        Some(Remap {
            session,
            from: carry,
            retire,
        })
    }

    /// After tower-sessions saved the session: moves the request's messages to the key of
    /// the id it was saved under, and retires the key the request came with if that is
    /// not it.
    async fn remap(
        &self,
        Remap {
            session,
            from,
            retire,
        }: Remap,
    ) {
        let to = session.id().map(|id| self.identity.key_of(&id));
        match (from, &to) {
            (Some(from), Some(to)) if from != *to => self.rotate(from, to.clone()).await,
            (Some(_), None) => tracing::warn!(
                "messages: tower-sessions saved no session (a failed response?), the request's messages stay under their old key"
            ),
            _ => {}
        }
        if let Some(old) = retire
            && to.as_ref() != Some(&old)
        {
            self.retire(&old).await;
        }
    }
}

/// The tower layer that gives every request its [`Messages`], keyed by the request's
/// tower-sessions session, around the app's session layer. See the [module docs](self).
#[derive(Clone)]
pub struct SessionMessagesLayer<L> {
    shared: Arc<Shared>,
    sessions: L,
}

impl<L> fmt::Debug for SessionMessagesLayer<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionMessagesLayer")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl<L> SessionMessagesLayer<L> {
    /// Messages stored as `config` says, keyed by `identity` from the session that
    /// `sessions` (the app's `SessionManagerLayer`, or a layer built around it) provides.
    /// `config`'s session source is replaced; its storage must be a server store only.
    ///
    /// # Errors
    /// [`Error::Config`] if the storage has a cookie part.
    pub fn new(
        config: MessagesConfig,
        identity: TowerSessionsIdentity,
        sessions: L,
    ) -> Result<SessionMessagesLayer<L>> {
        let (None, Some(store)) = (config.storage().cookie(), config.server_store()) else {
            return Err(Error::Config(
                "with tower-sessions as the identity, messages need a server store only (a messages cookie would be a second cookie)".into(),
            ));
        };
        let config = config.session_source(Arc::new(Handoff));
        Ok(SessionMessagesLayer {
            shared: Arc::new(Shared {
                config,
                identity,
                store,
            }),
            sessions,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &MessagesConfig {
        &self.shared.config
    }

    /// How keys are derived: for a job that adds messages to a saved session
    /// ([`TowerSessionsIdentity::key_for`]).
    pub fn identity(&self) -> &TowerSessionsIdentity {
        &self.shared.identity
    }
}

impl<S, L> Layer<S> for SessionMessagesLayer<L>
where
    L: Layer<SessionMessagesInner<S>>,
{
    type Service = SessionMessagesService<L::Service>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionMessagesService {
            inner: self.sessions.layer(SessionMessagesInner {
                inner,
                shared: Arc::clone(&self.shared),
            }),
            shared: Arc::clone(&self.shared),
        }
    }
}

/// A boxed response future.
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The outer part of [`SessionMessagesLayer`], around the session layer: once
/// tower-sessions has saved the session, moves the request's messages to the key of its
/// id (after a login, or a new visitor's first messages). Does nothing, and no I/O, for
/// every other request.
#[derive(Debug, Clone)]
pub struct SessionMessagesService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SessionMessagesService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    ResBody: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<std::result::Result<Response<ResBody>, S::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut TaskContext<'_>,
    ) -> Poll<std::result::Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let response = self.inner.call(req);
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            let mut response = response.await?;
            if let Some(remap) = response.extensions_mut().remove::<Remap>() {
                shared.remap(remap).await;
            }
            Ok(response)
        })
    }
}

/// The inner part of [`SessionMessagesLayer`], inside the session layer: begins the
/// request's [`Messages`] under the key of its tower-sessions id (no I/O), and after the
/// handler commits them and follows what the app did to its session.
#[derive(Debug, Clone)]
pub struct SessionMessagesInner<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SessionMessagesInner<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<std::result::Result<Response<ResBody>, S::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut TaskContext<'_>,
    ) -> Poll<std::result::Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let Some(session) = req.extensions().get::<Session>().cloned() else {
            tracing::error!(
                method = %req.method(),
                path = req.uri().path(),
                "messages: SessionMessagesLayer was given a layer that provides no tower-sessions `Session`; give it the app's `SessionManagerLayer`"
            );
            let mut response = Response::new(ResBody::default());
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            return Box::pin(async move { Ok(response) });
        };
        let before = session
            .id()
            .map(|id| (id, self.shared.identity.key_of(&id)));
        let handoff = before
            .as_ref()
            .map(|(_, key)| format!("{HANDOFF}={}", key.as_str()));
        let Some(guard) = self
            .shared
            .config
            .begin_request(req.extensions().get::<Messages>(), handoff.as_deref())
        else {
            // An outer messages layer owns this request and will commit it.
            return Box::pin(self.inner.call(req));
        };
        req.extensions_mut().insert(guard.messages().clone());
        let response = self.inner.call(req);
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            let mut response = response.await?;
            let status = response.status().as_u16();
            let remap = shared
                .after_handler(session, before, guard, status, response.headers_mut())
                .await;
            if let Some(remap) = remap {
                response.extensions_mut().insert(remap);
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_handoff_is_the_only_cookie_read() {
        let key = SessionKey::generate().unwrap();
        assert_eq!(
            Handoff.incoming(&[(HANDOFF, key.as_str())]),
            Incoming::Key(key.clone())
        );
        assert_eq!(
            Handoff.incoming(&[("messages_session", key.as_str())]),
            Incoming::Absent
        );
        assert_eq!(Handoff.incoming(&[(HANDOFF, "junk")]), Incoming::Absent);
        assert_eq!(Handoff.outgoing(&SessionChange::Started(key)), None);
    }

    #[test]
    fn keys_depend_on_the_secret_and_the_id() {
        let a = TowerSessionsIdentity::new([1u8; 32]).unwrap();
        let b = TowerSessionsIdentity::new([2u8; 32]).unwrap();
        let id = Id::default();
        assert_eq!(a.key_of(&id), a.key_of(&id));
        assert_ne!(a.key_of(&id), b.key_of(&id));
        assert_ne!(a.key_of(&id), a.key_of(&Id::default()));
        assert!(!format!("{a:?}").contains('1'));
        assert!(TowerSessionsIdentity::new([0u8; 31]).is_err());
    }
}
