//! axum 0.8 integration: the [`MessagesLayer`] and the [`Messages`] extractor.
//!
//! The layer starts every request's messages from its `Cookie` headers (no I/O), puts the
//! [`RequestMessages`] into the request extensions, and commits them when the handler has
//! returned its response: it appends the `Set-Cookie` headers (none when nothing changed)
//! and, when the request read or wrote messages, `Vary: Cookie` and
//! `Cache-Control: private`, so no shared cache serves one person's messages to another.
//!
//! Handlers take [`Messages`] (or use `#[with_messages]`, which takes it for them) and
//! work on one view's [`Context`].
//!
//! ```
//! use axum::{Router, body::Body, http::Request, response::Redirect, routing::{get, post}};
//! use messages_core::axum::{Messages, MessagesLayer};
//! use messages_core::{MemoryStore, Message, MessagesConfig, View};
//! use tower::ServiceExt as _;
//!
//! static INBOX: View = View::new("app::inbox", "inbox", file!(), line!());
//!
//! async fn archive(messages: Messages) -> Redirect {
//!     messages.context(&INBOX).add_message(Message::success("Archived."));
//!     Redirect::to("/inbox")
//! }
//!
//! async fn inbox(messages: Messages) -> String {
//!     let list = messages.context(&INBOX).messages().await;
//!     list.iter().map(|m| format!("{}: {}\n", m.level_tag(), m.text())).collect()
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let app = Router::new()
//!     .route("/inbox", get(inbox))
//!     .route("/archive", post(archive))
//!     .layer(MessagesLayer::new(MessagesConfig::new(MemoryStore::new())));
//!
//! let posted = app.clone().oneshot(Request::post("/archive").body(Body::empty()).unwrap()).await.unwrap();
//! assert_eq!(posted.status(), 303);
//! let session = posted.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
//! assert_eq!(posted.headers()["vary"], "Cookie");
//!
//! let shown = app.oneshot(Request::get("/inbox").header("cookie", session).body(Body::empty()).unwrap()).await.unwrap();
//! assert_eq!(shown.headers()["cache-control"], "private");
//! let body = axum::body::to_bytes(shown.into_body(), 1 << 16).await.unwrap();
//! assert_eq!(body, "success: Archived.\n");
//! # }
//! ```
//!
//! # When the commit happens
//!
//! The layer commits when the inner service returns its [`Response`], *before* the body
//! is sent. A streaming body must therefore read and iterate its messages in the handler,
//! not while it streams: messages iterated after the commit count as unread and are shown
//! again by the next request (never lost). A response with a 5xx status commits as a
//! failure, so the messages it read are kept for the next request. If the request is
//! cancelled before the handler returns (the client went away), the layer still commits,
//! as a failure, on a spawned task, so messages the handler took are not lost; if it is
//! cancelled while committing (a timeout layer outside this one), the commit finishes on
//! a spawned task, so nothing the handler added is lost either.
//!
//! Nesting is harmless: an inner `MessagesLayer` sees the outer one's
//! [`RequestMessages`] and leaves the request to it.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use ::axum::extract::{FromRequestParts, OptionalFromRequestParts};
use ::axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, COOKIE, SET_COOKIE, VARY};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use tower::{Layer, Service};

use crate::{Committed, Context, MessagesConfig, RequestMessages, View, ViewId};

/// The tower layer that gives every request its [`RequestMessages`] and commits them on
/// the response. See the [module docs](self).
///
/// ```no_run
/// use axum::{Router, routing::get};
/// use messages_core::axum::MessagesLayer;
/// use messages_core::{MemoryStore, MessagesConfig};
///
/// # #[tokio::main] async fn main() -> std::io::Result<()> {
/// let config = MessagesConfig::new(MemoryStore::new());
/// let app = Router::new().route("/", get(|| async { "hello" })).layer(MessagesLayer::new(config));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// axum::serve(listener, app).await
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct MessagesLayer {
    config: MessagesConfig,
}

impl MessagesLayer {
    /// A layer storing messages as `config` says.
    pub fn new(config: MessagesConfig) -> MessagesLayer {
        MessagesLayer { config }
    }

    /// The configuration in force.
    pub fn config(&self) -> &MessagesConfig {
        &self.config
    }
}

impl<S> Layer<S> for MessagesLayer {
    type Service = MessagesService<S>;

    fn layer(&self, inner: S) -> MessagesService<S> {
        MessagesService {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service made by [`MessagesLayer`].
#[derive(Debug, Clone)]
pub struct MessagesService<S> {
    inner: S,
    config: MessagesConfig,
}

/// The response future of [`MessagesService`].
pub struct ResponseFuture<B, E> {
    inner: Pin<Box<dyn Future<Output = Result<http::Response<B>, E>> + Send>>,
}

impl<B, E> fmt::Debug for ResponseFuture<B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<B, E> Future for ResponseFuture<B, E> {
    type Output = Result<http::Response<B>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for MessagesService<S>
where
    S: Service<Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: 'static,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // The service that was polled ready is the one to call; leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);

        if req.extensions().get::<RequestMessages>().is_some() {
            // An outer MessagesLayer owns this request and will commit it.
            return ResponseFuture {
                inner: Box::pin(inner.call(req)),
            };
        }
        let cookies = req
            .headers()
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| std::str::from_utf8(v.as_bytes()).ok());
        let request = self.config.begin(cookies);
        req.extensions_mut().insert(request.clone());
        let mut guard = CommitOnDrop(Some(request));

        ResponseFuture {
            inner: Box::pin(async move {
                let mut response = inner.call(req).await?;
                // The guard stays armed through the commit, which finishes on its own
                // if dropped midway (see `RequestMessages::commit`).
                if let Some(request) = guard.0.as_ref() {
                    let committed = request.commit(!response.status().is_server_error()).await;
                    apply(committed, response.headers_mut());
                }
                // Committed: disarm the guard.
                drop(guard.0.take());
                Ok(response)
            }),
        }
    }
}

/// Commits a request whose future was dropped before the handler returned, as a failure,
/// so messages it took from the store are put back.
struct CommitOnDrop(Option<RequestMessages>);

impl Drop for CommitOnDrop {
    fn drop(&mut self) {
        let Some(request) = self.0.take() else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    request.commit(false).await;
                });
            }
            Err(_) => {
                tracing::warn!(
                    "messages: request cancelled outside a tokio runtime, its messages not committed"
                );
            }
        }
    }
}

/// Writes what the commit asks of the response headers.
fn apply(committed: Committed, headers: &mut HeaderMap) {
    for cookie in committed.set_cookie {
        match HeaderValue::try_from(cookie) {
            Ok(value) => {
                headers.append(SET_COOKIE, value);
            }
            Err(e) => {
                tracing::error!(error = %e, "messages: Set-Cookie value refused, cookie not sent");
            }
        }
    }
    if committed.touched {
        vary_on_cookie(headers);
        make_private(headers);
    }
}

/// Adds `Vary: Cookie` unless a `Vary` header already names `Cookie` (or `*`).
fn vary_on_cookie(headers: &mut HeaderMap) {
    let present = headers.get_all(VARY).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .map(str::trim)
                .any(|t| t == "*" || t.eq_ignore_ascii_case("cookie"))
        })
    });
    if !present {
        headers.append(VARY, HeaderValue::from_static("Cookie"));
    }
}

/// Makes `Cache-Control` private: `private` first, `public` and `s-maxage` dropped (so is a
/// field-qualified `private="..."`, which would leave the rest cacheable), the other
/// directives kept. Several `Cache-Control` headers become one.
fn make_private(headers: &mut HeaderMap) {
    let mut directives = vec!["private".to_owned()];
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(text) = value.to_str() else {
            tracing::warn!("messages: non-ASCII Cache-Control value dropped");
            continue;
        };
        for directive in split_directives(text) {
            let name = directive
                .split('=')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            if !matches!(name.as_str(), "public" | "private" | "s-maxage") {
                directives.push(directive.to_owned());
            }
        }
    }
    let value = HeaderValue::from_str(&directives.join(", "))
        .unwrap_or_else(|_| HeaderValue::from_static("private"));
    headers.insert(CACHE_CONTROL, value);
}

/// Splits a `Cache-Control` value at the commas outside quoted strings.
fn split_directives(text: &str) -> impl Iterator<Item = &str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts.into_iter().map(str::trim).filter(|d| !d.is_empty())
}

/// The extractor: this request's messages, as put there by [`MessagesLayer`].
///
/// [`context`](Messages::context) gives one view's [`Context`]; it also derefs to the
/// [`RequestMessages`] ([`ensure_session`](RequestMessages::ensure_session),
/// [`end_session`](RequestMessages::end_session), [`flush`](RequestMessages::flush)).
///
/// Without the layer, extraction fails with [`MissingMessagesLayer`]: an error in the log
/// and a `500` whose body names the layer. `Option<Messages>` extracts `None` instead.
#[derive(Debug, Clone)]
pub struct Messages(RequestMessages);

impl Messages {
    /// The context of one view in this request.
    pub fn context(&self, view: impl AsRef<ViewId>) -> Context {
        self.0.context(view)
    }

    /// The request's messages.
    pub fn as_request(&self) -> &RequestMessages {
        &self.0
    }

    /// The request's messages, owned.
    pub fn into_inner(self) -> RequestMessages {
        self.0
    }
}

impl Deref for Messages {
    type Target = RequestMessages;

    fn deref(&self) -> &RequestMessages {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Messages {
    type Rejection = MissingMessagesLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(request) = parts.extensions.get::<RequestMessages>() else {
            tracing::error!(
                method = %parts.method,
                path = parts.uri.path(),
                error = %MissingMessagesLayer,
                "messages: a handler needs MessagesLayer, which is not installed"
            );
            return Err(MissingMessagesLayer);
        };
        Ok(Messages(request.clone()))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Messages {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Infallible> {
        Ok(parts
            .extensions
            .get::<RequestMessages>()
            .map(|r| Messages(r.clone())))
    }
}

/// A handler asked for [`Messages`] on a route without [`MessagesLayer`]; the response is
/// a `500` that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "messages: no MessagesLayer on this route; add `.layer(messages_core::axum::MessagesLayer::new(config))` to the router"
)]
#[non_exhaustive]
pub struct MissingMessagesLayer;

impl IntoResponse for MissingMessagesLayer {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

impl crate::__private::IntoContext for Messages {
    fn into_context(self, view: &'static View) -> Context {
        self.0.context(view)
    }
}

impl crate::__private::IntoContext for &Messages {
    fn into_context(self, view: &'static View) -> Context {
        self.0.context(view)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn cache_control(values: &[&str]) -> String {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(CACHE_CONTROL, HeaderValue::from_str(v).unwrap());
        }
        make_private(&mut headers);
        assert_eq!(headers.get_all(CACHE_CONTROL).iter().count(), 1);
        headers[CACHE_CONTROL].to_str().unwrap().to_owned()
    }

    #[test]
    fn cache_control_becomes_private() {
        assert_eq!(cache_control(&[]), "private");
        assert_eq!(cache_control(&["private"]), "private");
        assert_eq!(
            cache_control(&["Public, max-age=60"]),
            "private, max-age=60"
        );
        assert_eq!(
            cache_control(&["public, s-maxage=600, max-age=60", "no-store"]),
            "private, max-age=60, no-store"
        );
        assert_eq!(
            cache_control(&["private=\"set-cookie, x\", no-cache=\"a,b\""]),
            "private, no-cache=\"a,b\""
        );
        assert_eq!(cache_control(&["no-store, , "]), "private, no-store");
    }

    #[test]
    fn vary_cookie_is_added_once() {
        let vary = |values: &[&str]| {
            let mut headers = HeaderMap::new();
            for v in values {
                headers.append(VARY, HeaderValue::from_str(v).unwrap());
            }
            vary_on_cookie(&mut headers);
            headers
                .get_all(VARY)
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(vary(&[]), ["Cookie"]);
        assert_eq!(vary(&["Accept-Encoding"]), ["Accept-Encoding", "Cookie"]);
        assert_eq!(
            vary(&["accept-encoding, cookie"]),
            ["accept-encoding, cookie"]
        );
        assert_eq!(vary(&["*"]), ["*"]);
        assert_eq!(vary(&["Cookie2"]), ["Cookie2", "Cookie"]);
    }

    #[test]
    fn untouched_commit_leaves_headers_alone() {
        let mut headers = HeaderMap::new();
        headers.insert(
            CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=60"),
        );
        apply(Committed::default(), &mut headers);
        assert_eq!(headers.len(), 1);
        assert_eq!(headers[CACHE_CONTROL], "public, max-age=60");
    }
}
