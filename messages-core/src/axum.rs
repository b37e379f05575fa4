//! axum 0.8 integration: the [`MessagesLayer`], and [`Messages`] as an extractor.
//!
//! A thin adapter over the [request core](crate::request): the layer begins every
//! request's messages from its `Cookie` headers (no I/O), puts the [`Messages`] into the
//! request extensions, and commits them when the handler has returned its response,
//! writing what [`Committed`](crate::request::Committed) says: the `Set-Cookie` headers
//! (none when nothing changed) and, when the request read or wrote messages,
//! `Vary: Cookie` and `Cache-Control: private`, so no shared cache serves one person's
//! messages to another.
//!
//! Handlers take [`Messages`] (or use `#[with_messages]`, which takes it for them) and
//! work on one view's [`ViewMessages`](crate::ViewMessages).
//!
//! ```
//! use axum::{Router, body::Body, http::Request, response::Redirect, routing::{get, post}};
//! use messages_core::axum::MessagesLayer;
//! use messages_core::{MemoryStore, Message, Messages, MessagesConfig, View};
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
//! Nesting is harmless: an inner `MessagesLayer` sees the outer one's [`Messages`] and
//! leaves the request to it.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use ::axum::extract::{FromRequestParts, OptionalFromRequestParts};
use ::axum::response::{IntoResponse, Response};
use http::header::COOKIE;
use http::request::Parts;
use http::{Request, StatusCode};
use tower::{Layer, Service};

use crate::live::{LAST_EVENT_ID, LiveRefused, LiveStream, SSE_HEADERS};
use crate::present::{HX_TRIGGER, Htmx};
use crate::{Messages, MessagesConfig, ViewId};

/// The tower layer that gives every request its [`Messages`] and commits them on
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

        let cookies = req
            .headers()
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| std::str::from_utf8(v.as_bytes()).ok());
        let Some(guard) = self
            .config
            .begin_request(req.extensions().get::<Messages>(), cookies)
        else {
            // An outer MessagesLayer owns this request and will commit it.
            return ResponseFuture {
                inner: Box::pin(inner.call(req)),
            };
        };
        req.extensions_mut().insert(guard.messages().clone());
        ResponseFuture {
            inner: Box::pin(async move {
                let mut response = inner.call(req).await?;
                let status = response.status().as_u16();
                guard.commit_response(status, response.headers_mut()).await;
                Ok(response)
            }),
        }
    }
}

/// This request's messages, as put there by [`MessagesLayer`]. Without the layer,
/// extraction fails with [`MissingMessagesLayer`]: an error in the log and a `500` whose
/// body names the layer. `Option<Messages>` extracts `None` instead.
impl<S: Send + Sync> FromRequestParts<S> for Messages {
    type Rejection = MissingMessagesLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(request) = parts.extensions.get::<Messages>() else {
            tracing::error!(
                method = %parts.method,
                path = parts.uri.path(),
                error = %MissingMessagesLayer,
                "messages: a handler needs MessagesLayer, which is not installed"
            );
            return Err(MissingMessagesLayer);
        };
        Ok(request.clone())
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Messages {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Infallible> {
        Ok(parts.extensions.get::<Messages>().cloned())
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

/// The `200` answer to an htmx request: the fragment as `text/html; charset=utf-8` and
/// the messages in `HX-Trigger` (see [`ViewMessages::htmx`](crate::ViewMessages::htmx)).
impl IntoResponse for Htmx {
    fn into_response(self) -> Response {
        let mut response = (
            [(http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
            self.body,
        )
            .into_response();
        if let Some(value) = self
            .hx_trigger
            .and_then(|v| http::HeaderValue::try_from(v).ok())
        {
            response.headers_mut().insert(HX_TRIGGER, value);
        }
        response
    }
}

/// Serves `view`'s messages to this request's session as Server-Sent Events, one
/// `message` event per message as it arrives (see [`live`](crate::live)), with the
/// request's `Last-Event-ID`; or the refusal's status with its reason as text.
///
/// ```
/// use axum::{Router, http::HeaderMap, response::Response, routing::get};
/// use messages_core::axum::{MessagesLayer, live_response};
/// use messages_core::{MemoryStore, Messages, MessagesConfig, ViewId};
///
/// const DASHBOARD: ViewId = ViewId::from_static("app::dashboard");
///
/// async fn events(messages: Messages, headers: HeaderMap) -> Response {
///     live_response(&messages, &DASHBOARD, &headers)
/// }
///
/// let config = MessagesConfig::new(MemoryStore::new());
/// let app: Router = Router::new()
///     .route("/dashboard/events", get(events))
///     .layer(MessagesLayer::new(config.clone()));
/// // At shutdown: config.close_live_streams(), so graceful shutdown does not wait on them.
/// ```
pub fn live_response(
    messages: &Messages,
    view: impl AsRef<ViewId>,
    request_headers: &http::HeaderMap,
) -> Response {
    let last_event_id = request_headers
        .get(LAST_EVENT_ID)
        .and_then(|v| v.to_str().ok());
    match messages.live(view, last_event_id) {
        Ok(stream) => sse(stream),
        Err(refused) => refusal(&refused),
    }
}

fn sse(stream: LiveStream) -> Response {
    let mut response = ::axum::body::Body::from_stream(stream.into_sse()).into_response();
    for (name, value) in SSE_HEADERS {
        response.headers_mut().insert(
            http::HeaderName::from_static(name),
            http::HeaderValue::from_static(value),
        );
    }
    response
}

fn refusal(refused: &LiveRefused) -> Response {
    let status =
        StatusCode::from_u16(refused.logged_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, refused.to_string()).into_response()
}
