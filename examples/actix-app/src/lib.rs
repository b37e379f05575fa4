//! The example application of `messages-core` on actix-web 4: the twin of the axum
//! example (`messages-example`), answering every request of their one HTTP contract the
//! same way — same routes, statuses, headers, pages (the same templates), JSON and
//! refusals of bad input.
//!
//! Run it with `cargo run -p messages-example-actix` (memory store,
//! `http://127.0.0.1:3000`); `MESSAGES_STORE=memory|cookie|fallback|redis|postgres|sqlite`,
//! `MESSAGES_KEY`, `REDIS_URL`, `DATABASE_URL` and `PORT` as for the axum app (see
//! [`config_from`]).
//!
//! **The HTTP contract** (routes, statuses, headers, the markup of messages, bad input,
//! view ids), the JSON shape and htmx use are documented once, in
//! [`messages_example_shared`]; `examples/compare.sh` serves both apps and diffs their
//! answers. This crate is only the actix-web part: routing, extractors and responses;
//! the templates, forms, texts, configuration and the import job come from the shared
//! crate.
//!
//! # How it is built
//!
//! - [`MessagesMiddleware`] wraps the [`App`]; handlers are `#[with_messages]` functions
//!   (the request's `Messages` is their hidden first argument, `self` the view's
//!   `ViewMessages`).
//! - Both ways of routing: the settings handlers carry actix-web's route attributes
//!   (`#[with_messages]` **above** `#[route]`/`#[post]`, so it sees the function
//!   first), the others are plain functions registered with
//!   `web::resource(..).route(..)`.
//! - The views have the contract's ids, stated: `#[with_messages(view =
//!   "messages_example::settings")]` (see "View ids" in the shared crate); `view_of!`
//!   names the dashboard's view for the import job.
//! - `GET` routes answer `HEAD` too, other methods get axum's `405` with `allow`, and
//!   form and query input is decoded by this crate's `Form` and `Query` extractors,
//!   which refuse bad input with axum's statuses and texts. They read a refused body to
//!   its end, as `POST /jobs/import` reads the body it ignores: actix-web answers a
//!   request whose body is left unread with `connection: close`, hyper does not. (A body
//!   sent with a `GET`, or to a `404` or `405`, still gets `connection: close` here: the
//!   one difference left, outside the contract.)
//!
//! # Serving it from a test
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use messages_core::{MemoryStore, MessagesConfig};
//!
//! let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
//! let addr = listener.local_addr()?;
//! let config = MessagesConfig::new(MemoryStore::new());
//! // A `Send` future: spawn it on any tokio runtime; dropping it stops the server.
//! let serving = tokio::spawn(messages_example_actix::serve(listener, config));
//! // ... requests to http://{addr}/ ...
//! serving.abort();
//! # Ok(()) }
//! ```
//!
//! In process, without a socket: `actix_web::test::init_service(app(config))`.

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use actix_web::{
    App, FromRequest, Handler, HttpRequest, HttpResponse, HttpServer, Resource, Responder, guard,
    post, route, web,
};
use messages_core::actix::{MessagesMiddleware, live_response};
use messages_core::prelude::*;
use messages_core::present::{HX_REQUEST, is_htmx};
use messages_example_shared::{
    self as shared, FragmentQuery, LoginForm, NotesForm, RenderError, SettingsForm, Templates,
    shown,
};

mod extract;

use extract::{Form, Ignored, Query};

pub use messages_example_shared::{
    ConfigError, IMPORT_DELAY, MAX_NOTES, config_from, config_from_env,
};

#[derive(Debug)]
struct AppState {
    templates: Templates,
    /// Where the background job delivers; `None` with cookie-only storage.
    jobs: Option<Arc<dyn MessageStore>>,
}

/// The application: every route of the contract ([`configure`]), behind
/// [`MessagesMiddleware`]. One per worker: `HttpServer::new(move || app(config.clone()))`
/// (the clones share one store).
pub fn app(
    config: MessagesConfig,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .configure(configure(&config))
        .wrap(MessagesMiddleware::new(config))
}

/// Every route of the contract and the state they use (templates, the job's store), for
/// [`App::configure`] or `ServiceConfig::configure`. The caller wraps the app (or the
/// scope) in [`MessagesMiddleware::new(config)`](MessagesMiddleware), as [`app`] does.
pub fn configure(config: &MessagesConfig) -> impl FnOnce(&mut web::ServiceConfig) + use<> {
    let state = web::Data::new(AppState {
        templates: Templates::new(),
        jobs: config.server_store(),
    });
    move |cfg| {
        cfg.app_data(state)
            .service(get_resource("/", || async { see_other("/dashboard") }))
            // The settings handlers carry their routes (actix-web's route attributes);
            // they share the path, so another method falls through to the `405` after them.
            .service(settings)
            .service(save_settings)
            .service(resource("/settings", "GET,HEAD,POST"))
            .service(get_resource("/dashboard", dashboard))
            .service(get_resource("/dashboard/messages", dashboard_fragment))
            .service(get_resource("/dashboard/events", dashboard_events))
            .service(post_resource("/notes", add_notes))
            .service(post_resource("/jobs/import", start_import))
            .service(post_resource("/login", login))
            .service(post_resource("/logout", logout))
            .service(get_resource("/api/dashboard/messages", dashboard_json))
            .service(get_resource("/views", views))
            .service(get_resource("/static/app.css", stylesheet))
            .default_service(web::to(not_found));
    }
}

/// The HTTP server of [`app`] on `listener` (a bound `127.0.0.1` socket, say), with
/// actix-web's default workers (one per CPU core). Nothing runs until the [`Server`] is
/// awaited or spawned; its [`handle`](Server::handle) stops it, and so does dropping it.
/// It installs no signal handlers: the binary stops on Ctrl-C itself, and a test process
/// keeps its own Ctrl-C.
///
/// # Errors
/// The listener cannot be served (it is not listening, say).
pub fn server(listener: std::net::TcpListener, config: MessagesConfig) -> std::io::Result<Server> {
    Ok(HttpServer::new(move || app(config.clone()))
        .disable_signals()
        .listen(listener)?
        .run())
}

/// Serves [`app`] on `listener` until the future is dropped (or the server fails). The
/// future is `Send`: a test spawns it on its own tokio runtime, as with `axum::serve`
/// (`messages_tests::http::TestServer::serve(|l| messages_example_actix::serve(l, config))`).
///
/// # Errors
/// As [`server`], or the server stopped with an error.
pub async fn serve(listener: std::net::TcpListener, config: MessagesConfig) -> std::io::Result<()> {
    server(listener, config)?.await
}

/// `path`, answering `GET` and `HEAD` (actix-web sends the headers only) with `handler`.
fn get_resource<F, Args>(path: &str, handler: F) -> Resource
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    let get_or_head = guard::Any(guard::Get()).or(guard::Head());
    resource(path, "GET,HEAD").route(web::route().guard(get_or_head).to(handler))
}

/// `path`, answering `POST` with `handler`.
fn post_resource<F, Args>(path: &str, handler: F) -> Resource
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    resource(path, "POST").route(web::post().to(handler))
}

/// `path`, whose methods other than its routes' get axum's `405`: an empty body and
/// `allow`.
fn resource(path: &str, allow: &'static str) -> Resource {
    web::resource(path).default_service(web::to(move || async move {
        HttpResponse::MethodNotAllowed()
            .insert_header((ALLOW, allow))
            .finish()
    }))
}

/// axum's `404`: an empty body, and for `HEAD` no `content-length` either.
async fn not_found(req: HttpRequest) -> HttpResponse {
    let mut response = HttpResponse::NotFound();
    if req.method() == Method::HEAD {
        response.body(actix_web::body::None::new())
    } else {
        response.finish()
    }
}

fn see_other(location: &'static str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((LOCATION, location))
        .finish()
}

/// A rendered page, or the `500` of a failed template (which keeps the messages read).
fn html(rendered: Result<String, RenderError>) -> HttpResponse {
    match rendered {
        Ok(page) => HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, shared::HTML_CONTENT_TYPE))
            .body(page),
        Err(e) => {
            e.log();
            HttpResponse::InternalServerError()
                .insert_header((CONTENT_TYPE, shared::TEXT_CONTENT_TYPE))
                .body(RenderError::BODY)
        }
    }
}

/// The settings view (`messages_example::settings`, the contract's id): GET shows what
/// POST added.
#[with_messages(view = "messages_example::settings")]
#[route("/settings", method = "GET", method = "HEAD")]
async fn settings(app: web::Data<AppState>) -> HttpResponse {
    let list = self.messages().await;
    html(app.templates.settings(&shown(list)))
}

#[with_messages(view = settings)]
#[post("/settings")]
async fn save_settings(Form(form): Form<SettingsForm>) -> HttpResponse {
    self.add_message(form.message());
    see_other("/settings")
}

/// The dashboard view (`messages_example::dashboard`, the contract's id), shared by the
/// fragment, the JSON endpoint, the notes form and the import job.
#[with_messages(view = "messages_example::dashboard")]
async fn dashboard(app: web::Data<AppState>) -> HttpResponse {
    let list = self.messages().await;
    html(app.templates.dashboard(&shown(list)))
}

#[with_messages(view = dashboard)]
async fn dashboard_fragment(
    app: web::Data<AppState>,
    Query(query): Query<FragmentQuery>,
) -> HttpResponse {
    let list = self.messages().await;
    html(app.templates.fragment(&shown(list), query.oob))
}

#[with_messages(view = dashboard)]
async fn dashboard_json() -> HttpResponse {
    HttpResponse::Ok().json(shown(self.messages().await))
}

/// The dashboard's messages as they arrive (Server-Sent Events), taken when pushed.
#[with_messages(view = dashboard)]
async fn dashboard_events(req: HttpRequest) -> HttpResponse {
    live_response(self.request(), self.view(), &req)
}

/// Adds the notes; an htmx request gets the dashboard's messages back at once (the
/// fragment and `HX-Trigger`), any other a redirect to the dashboard.
#[with_messages(view = dashboard)]
async fn add_notes(req: HttpRequest, Form(form): Form<NotesForm>) -> HttpResponse {
    for message in form.messages() {
        self.add_message(message);
    }
    let hx_request = req.headers().get(HX_REQUEST).and_then(|v| v.to_str().ok());
    if is_htmx(hx_request) {
        return self.htmx(false).await.respond_to(&req);
    }
    see_other("/dashboard")
}

#[with_messages(view = dashboard)]
async fn start_import(app: web::Data<AppState>, _body: Ignored) -> HttpResponse {
    let Some(store) = app.jobs.clone() else {
        self.add_message(Message::warning(shared::JOBS_NEED_SERVER_STORE));
        return see_other("/dashboard");
    };
    // The job needs the session key, so this response sets the session cookie; with
    // fallback storage the cookie also tells the dashboard to look in the server store.
    match self.expect_later() {
        // Out of band: no request in hand, the view named by the compiler. The task runs
        // on this worker's tokio runtime.
        Ok(session) => drop(shared::spawn_import(store, session, view_of!(dashboard))),
        Err(e) => {
            tracing::error!(error = %e, "no session for the import job");
            self.add_message(Message::error(shared::IMPORT_NOT_STARTED));
        }
    }
    see_other("/dashboard")
}

/// Login: a new session key (against session fixation), pending messages carried over.
#[with_messages(view = dashboard)]
async fn login(Form(form): Form<LoginForm>) -> HttpResponse {
    form.log_in(&self);
    see_other("/dashboard")
}

/// Logout: the session and its messages end.
async fn logout(messages: Messages, _body: Ignored) -> HttpResponse {
    messages.end_session();
    see_other("/settings")
}

async fn views() -> HttpResponse {
    HttpResponse::Ok().json(messages_core::views())
}

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, shared::STYLESHEET_CONTENT_TYPE))
        .insert_header((CACHE_CONTROL, shared::STYLESHEET_CACHE_CONTROL))
        .body(shared::STYLESHEET)
}

#[cfg(test)]
mod tests;
