//! actix-web 4 integration: the [`MessagesMiddleware`], and [`Messages`] as an extractor.
//!
//! A thin adapter over the [request core](crate::request), with the semantics of the
//! axum integration: the middleware begins every request's messages from its `Cookie`
//! headers (no I/O), puts the [`Messages`] into the request extensions, and commits them
//! when the handler has returned its response, writing what
//! [`Committed`](crate::request::Committed) says: the `Set-Cookie` headers (none when
//! nothing changed) and, when the request read or wrote messages, `Vary: Cookie` and
//! `Cache-Control: private`. A request that never touches messages gets no header at all,
//! so a side request (a favicon, an XHR) never wipes or rewrites anything.
//!
//! Handlers take [`Messages`] (or use `#[with_messages]`, which takes it for them) and
//! work on one view's [`ViewMessages`](crate::ViewMessages). With actix's route macros,
//! put `#[with_messages]` **above** `#[get(...)]`/`#[post(...)]`: the route macro turns
//! the function into a service type, and `#[with_messages]` must see the function first.
//!
//! ```
//! use actix_web::{App, HttpResponse, test, web};
//! use messages_core::actix::MessagesMiddleware;
//! use messages_core::{MemoryStore, Message, Messages, MessagesConfig, View};
//!
//! static INBOX: View = View::new("app::inbox", "inbox", file!(), line!());
//!
//! async fn archive(messages: Messages) -> HttpResponse {
//!     messages.context(&INBOX).add_message(Message::success("Archived."));
//!     HttpResponse::SeeOther().insert_header(("location", "/inbox")).finish()
//! }
//!
//! async fn inbox(messages: Messages) -> String {
//!     let list = messages.context(&INBOX).messages().await;
//!     list.iter().map(|m| format!("{}: {}\n", m.level_tag(), m.text())).collect()
//! }
//!
//! # #[actix_web::main] async fn main() {
//! let config = MessagesConfig::new(MemoryStore::new());
//! let app = test::init_service(
//!     App::new()
//!         .wrap(MessagesMiddleware::new(config))
//!         .route("/inbox", web::get().to(inbox))
//!         .route("/archive", web::post().to(archive)),
//! )
//! .await;
//!
//! let posted = test::call_service(&app, test::TestRequest::post().uri("/archive").to_request()).await;
//! assert_eq!(posted.status(), 303);
//! assert_eq!(posted.headers().get("vary").unwrap(), "Cookie");
//! let session = posted.headers().get("set-cookie").unwrap().to_str().unwrap().split(';').next().unwrap().to_owned();
//!
//! let shown = test::call_service(&app, test::TestRequest::get().uri("/inbox").insert_header(("cookie", session)).to_request()).await;
//! assert_eq!(shown.headers().get("cache-control").unwrap(), "private");
//! assert_eq!(test::read_body(shown).await, "success: Archived.\n");
//! # }
//! ```
//!
//! # When the commit happens
//!
//! As with axum: when the inner service returns its response, before the body is sent;
//! a 5xx response commits as a failure (what it read is kept); a request dropped before
//! or during the commit is committed as a failure on a spawned task, so nothing it added
//! or took is lost. Nesting is harmless: an inner middleware sees the outer one's
//! [`Messages`] and leaves the request to it.
//!
//! actix-web handlers need not be `Send`; [`Messages`] is cloned out of the request's
//! extensions (a `RefCell`), so no borrow is held across an await.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::StatusCode;
use actix_web::http::header::{COOKIE, HeaderMap, HeaderName, HeaderValue};
use actix_web::{FromRequest, HttpMessage as _, HttpRequest, HttpResponse, ResponseError};

use crate::live::{LAST_EVENT_ID, LiveRefused, LiveStream, SSE_HEADERS};
use crate::present::{HX_TRIGGER, Htmx};
use crate::request::{ResponseHeaders, valid_static};
use crate::{Messages, MessagesConfig, ViewId};

/// The middleware that gives every request its [`Messages`] and commits them on the
/// response. See the [module docs](self).
///
/// ```no_run
/// use actix_web::{App, HttpServer, web};
/// use messages_core::actix::MessagesMiddleware;
/// use messages_core::{MemoryStore, MessagesConfig};
///
/// # #[actix_web::main] async fn main() -> std::io::Result<()> {
/// let config = MessagesConfig::new(MemoryStore::new());
/// HttpServer::new(move || {
///     App::new()
///         .wrap(MessagesMiddleware::new(config.clone()))
///         .route("/", web::get().to(|| async { "hello" }))
/// })
/// .bind(("127.0.0.1", 3000))?
/// .run()
/// .await
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct MessagesMiddleware {
    config: MessagesConfig,
}

impl MessagesMiddleware {
    /// A middleware storing messages as `config` says.
    pub fn new(config: MessagesConfig) -> MessagesMiddleware {
        MessagesMiddleware { config }
    }

    /// The configuration in force.
    pub fn config(&self) -> &MessagesConfig {
        &self.config
    }
}

impl<S, B> Transform<S, ServiceRequest> for MessagesMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = MessagesService<S>;
    type InitError = ();
    type Future = Ready<Result<MessagesService<S>, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(MessagesService {
            service: Rc::new(service),
            config: self.config.clone(),
        }))
    }
}

/// The service made by [`MessagesMiddleware`].
#[derive(Debug)]
pub struct MessagesService<S> {
    service: Rc<S>,
    config: MessagesConfig,
}

impl<S, B> Service<ServiceRequest> for MessagesService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<ServiceResponse<B>, actix_web::Error>>>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let guard = {
            let installed = req.extensions().get::<Messages>().cloned();
            let cookies = req
                .headers()
                .get_all(COOKIE)
                .filter_map(|v| std::str::from_utf8(v.as_bytes()).ok());
            self.config.begin_request(installed.as_ref(), cookies)
        };
        let Some(guard) = guard else {
            // An outer MessagesMiddleware owns this request and will commit it.
            return Box::pin(self.service.call(req));
        };
        req.extensions_mut().insert(guard.messages().clone());
        let response = self.service.call(req);
        Box::pin(async move {
            // An error here drops the guard, which commits as a failure.
            let mut response = response.await?;
            let status = response.status().as_u16();
            guard
                .commit_response(status, &mut ActixHeaders(response.headers_mut()))
                .await;
            Ok(response)
        })
    }
}

/// actix's response headers, for core's header policy
/// ([`Committed::write_to`](crate::request::Committed::write_to)).
struct ActixHeaders<'a>(&'a mut HeaderMap);

crate::request::policy_header_names!(HeaderName);

impl ResponseHeaders for ActixHeaders<'_> {
    fn values(&self, name: &'static str) -> Vec<Option<&str>> {
        self.0
            .get_all(header_name(name))
            .map(|v| v.to_str().ok())
            .collect()
    }

    fn append(&mut self, name: &'static str, value: &str) -> bool {
        HeaderValue::from_str(value).is_ok_and(|v| {
            self.0.append(header_name(name), v);
            true
        })
    }

    fn replace(&mut self, name: &'static str, value: &str) -> bool {
        HeaderValue::from_str(value).is_ok_and(|v| {
            self.0.insert(header_name(name), v);
            true
        })
    }

    fn append_static(&mut self, name: &'static str, value: &'static str) -> bool {
        valid_static(value) && {
            self.0
                .append(header_name(name), HeaderValue::from_static(value));
            true
        }
    }

    fn replace_static(&mut self, name: &'static str, value: &'static str) -> bool {
        valid_static(value) && {
            self.0
                .insert(header_name(name), HeaderValue::from_static(value));
            true
        }
    }
}

/// This request's messages, as put there by [`MessagesMiddleware`]. Without the
/// middleware, extraction fails with [`MissingMessagesMiddleware`]: an error in the log
/// and a `500` whose body names the middleware. `Option<Messages>` extracts `None`
/// instead.
impl FromRequest for Messages {
    type Error = MissingMessagesMiddleware;
    type Future = Ready<Result<Messages, MissingMessagesMiddleware>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let found = req.extensions().get::<Messages>().cloned();
        ready(found.ok_or_else(|| {
            tracing::error!(
                method = %req.method(),
                path = req.path(),
                error = %MissingMessagesMiddleware,
                "messages: a handler needs MessagesMiddleware, which is not installed"
            );
            MissingMessagesMiddleware
        }))
    }
}

/// A handler asked for [`Messages`] on a route without [`MessagesMiddleware`]; the
/// response is a `500` that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "messages: no MessagesMiddleware on this route; add `.wrap(messages_core::actix::MessagesMiddleware::new(config))` to the app"
)]
#[non_exhaustive]
pub struct MissingMessagesMiddleware;

impl ResponseError for MissingMessagesMiddleware {
    fn status_code(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::InternalServerError().body(self.to_string())
    }
}

/// The `200` answer to an htmx request: the fragment as `text/html; charset=utf-8` and
/// the messages in `HX-Trigger` (see [`ViewMessages::htmx`](crate::ViewMessages::htmx)).
impl actix_web::Responder for Htmx {
    type Body = actix_web::body::BoxBody;

    fn respond_to(self, _req: &HttpRequest) -> HttpResponse {
        let mut response = HttpResponse::Ok();
        response.content_type("text/html; charset=utf-8");
        if let Some(value) = self.hx_trigger.and_then(|v| HeaderValue::try_from(v).ok()) {
            response.insert_header((HX_TRIGGER, value));
        }
        response.body(self.body)
    }
}

/// Serves `view`'s messages to this request's session as Server-Sent Events, one
/// `message` event per message as it arrives (see [`live`](crate::live)), with the
/// request's `Last-Event-ID`; or the refusal's status with its reason as text.
///
/// ```
/// use actix_web::{App, HttpRequest, HttpResponse, web};
/// use messages_core::actix::{MessagesMiddleware, live_response};
/// use messages_core::{MemoryStore, Messages, MessagesConfig, ViewId};
///
/// const DASHBOARD: ViewId = ViewId::from_static("app::dashboard");
///
/// async fn events(messages: Messages, req: HttpRequest) -> HttpResponse {
///     live_response(&messages, &DASHBOARD, &req)
/// }
///
/// let config = MessagesConfig::new(MemoryStore::new());
/// let app = App::new()
///     .route("/dashboard/events", web::get().to(events))
///     .wrap(MessagesMiddleware::new(config.clone()));
/// // At shutdown: config.close_live_streams(), so a graceful stop does not wait on them.
/// ```
pub fn live_response(
    messages: &Messages,
    view: impl AsRef<ViewId>,
    request: &HttpRequest,
) -> HttpResponse {
    let last_event_id = request
        .headers()
        .get(LAST_EVENT_ID)
        .and_then(|v| v.to_str().ok());
    match messages.live(view, last_event_id) {
        Ok(stream) => sse(stream),
        Err(refused) => refusal(&refused),
    }
}

fn sse(stream: LiveStream) -> HttpResponse {
    use futures_util::StreamExt as _;
    let body = stream
        .into_sse()
        .map(|chunk| chunk.map(actix_web::web::Bytes::from));
    let mut response = HttpResponse::Ok();
    for header in SSE_HEADERS {
        response.insert_header(header);
    }
    response.streaming(body)
}

fn refusal(refused: &LiveRefused) -> HttpResponse {
    let status =
        StatusCode::from_u16(refused.logged_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status)
        .content_type("text/plain; charset=utf-8")
        .body(refused.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::sync::Arc;
    use std::time::Duration;

    use actix_web::dev::Service as _;
    use actix_web::{App, HttpResponse, test, web};

    use super::*;
    use crate::{MemoryStore, Message, MessageStore, SessionKey, View};

    static INBOX: View = View::new("app::inbox", "inbox", file!(), line!());

    fn cookie_of(key: &SessionKey) -> (&'static str, String) {
        ("cookie", format!("messages_session={}", key.as_str()))
    }

    async fn stored(store: &MemoryStore, key: &SessionKey) -> Vec<String> {
        let list = store.peek(key, INBOX.id()).await.unwrap();
        list.iter().map(|m| m.text().to_owned()).collect()
    }

    async fn render(messages: Messages) -> String {
        let list = messages.context(&INBOX).messages().await;
        list.iter().map(Message::text).collect::<Vec<_>>().join(",")
    }

    #[actix_web::test]
    async fn a_failed_response_keeps_what_it_read_and_headers_follow_the_policy() {
        let store = Arc::new(MemoryStore::new());
        let key = SessionKey::generate().unwrap();
        store
            .add(&key, INBOX.id(), Message::info("kept"))
            .await
            .unwrap();
        let app = test::init_service(
            App::new()
                .wrap(MessagesMiddleware::new(MessagesConfig::new(Arc::clone(
                    &store,
                ))))
                .route(
                    "/fail",
                    web::get().to(|m: Messages| async move {
                        let shown = render(m).await;
                        HttpResponse::InternalServerError().body(shown)
                    }),
                )
                .route(
                    "/page",
                    web::get().to(|m: Messages| async move {
                        HttpResponse::Ok()
                            .insert_header(("cache-control", "public, max-age=60"))
                            .body(render(m).await)
                    }),
                )
                .route(
                    "/plain",
                    web::get().to(|| async {
                        HttpResponse::Ok()
                            .insert_header(("cache-control", "public, max-age=60"))
                            .finish()
                    }),
                ),
        )
        .await;
        let req = || test::TestRequest::get().insert_header(cookie_of(&key));
        let failed = test::call_service(&app, req().uri("/fail").to_request()).await;
        assert_eq!(failed.status(), 500);
        assert_eq!(test::read_body(failed).await, "kept");
        assert_eq!(stored(&store, &key).await, ["kept"]);

        let shown = test::call_service(&app, req().uri("/page").to_request()).await;
        assert_eq!(
            shown.headers().get("cache-control").unwrap(),
            "private, max-age=60"
        );
        assert_eq!(shown.headers().get("vary").unwrap(), "Cookie");
        assert!(shown.headers().get("set-cookie").is_none());
        assert_eq!(test::read_body(shown).await, "kept");
        assert!(stored(&store, &key).await.is_empty());

        // Untouched: no header of ours, whatever cookies came.
        let plain = test::call_service(
            &app,
            req()
                .uri("/plain")
                .insert_header(("cookie", "messages_session=garbage"))
                .to_request(),
        )
        .await;
        assert_eq!(
            plain.headers().get("cache-control").unwrap(),
            "public, max-age=60"
        );
        assert!(plain.headers().get("vary").is_none());
        assert!(plain.headers().get("set-cookie").is_none());
    }

    #[actix_web::test]
    async fn nested_middleware_commits_once_and_a_missing_one_is_a_clear_500() {
        let store = Arc::new(MemoryStore::new());
        let config = MessagesConfig::new(Arc::clone(&store));
        let app = test::init_service(
            App::new()
                .wrap(MessagesMiddleware::new(config.clone()))
                .wrap(MessagesMiddleware::new(config))
                .route(
                    "/add",
                    web::post().to(|m: Messages| async move {
                        m.context(&INBOX).add_message(Message::info("once"));
                        HttpResponse::Ok().finish()
                    }),
                ),
        )
        .await;
        let added =
            test::call_service(&app, test::TestRequest::post().uri("/add").to_request()).await;
        let cookies: Vec<_> = added.headers().get_all("set-cookie").collect();
        assert_eq!(cookies.len(), 1, "{cookies:?}");
        let value = cookies[0].to_str().unwrap();
        let key: SessionKey = value
            .strip_prefix("messages_session=")
            .and_then(|v| v.split(';').next())
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(stored(&store, &key).await, ["once"]);
        assert_eq!(added.headers().get_all("vary").count(), 1);

        let bare = test::init_service(
            App::new()
                .route(
                    "/needs",
                    web::get().to(|_m: Messages| async { HttpResponse::Ok().finish() }),
                )
                .route(
                    "/optional",
                    web::get().to(|m: Option<Messages>| async move { format!("{}", m.is_some()) }),
                ),
        )
        .await;
        let missing =
            test::call_service(&bare, test::TestRequest::get().uri("/needs").to_request()).await;
        assert_eq!(missing.status(), 500);
        let body = test::read_body(missing).await;
        assert!(
            std::str::from_utf8(&body)
                .unwrap()
                .contains("MessagesMiddleware")
        );
        let optional = test::call_service(
            &bare,
            test::TestRequest::get().uri("/optional").to_request(),
        )
        .await;
        assert_eq!(test::read_body(optional).await, "false");
    }

    #[actix_web::test]
    async fn a_request_dropped_in_its_handler_loses_nothing() {
        let store = Arc::new(MemoryStore::new());
        let key = SessionKey::generate().unwrap();
        store
            .add(&key, INBOX.id(), Message::info("taken"))
            .await
            .unwrap();
        let app = test::init_service(
            App::new()
                .wrap(MessagesMiddleware::new(MessagesConfig::new(Arc::clone(
                    &store,
                ))))
                .route(
                    "/hang",
                    web::get().to(|m: Messages| async move {
                        let _ = render(m.clone()).await; // rendered, never sent
                        m.context(&INBOX).add_message(Message::info("added"));
                        std::future::pending::<()>().await;
                        HttpResponse::Ok().finish()
                    }),
                ),
        )
        .await;
        let req = test::TestRequest::get()
            .uri("/hang")
            .insert_header(cookie_of(&key))
            .to_request();
        let call = app.call(req);
        assert!(
            tokio::time::timeout(Duration::from_millis(100), call)
                .await
                .is_err()
        );
        // The guard commits as a failure on a spawned task: wait for it, generously.
        let mut texts = Vec::new();
        for _ in 0..200 {
            texts = stored(&store, &key).await;
            if texts.len() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(texts, ["taken", "added"]);
    }
}
