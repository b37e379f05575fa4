//! The example application of `messages-core` on axum: view-bound flash messages in a
//! small site with a settings page, a dashboard, a background job and a JSON endpoint.
//!
//! Run it with `cargo run -p messages-example` (memory store, `http://127.0.0.1:3000`);
//! `MESSAGES_STORE=memory|cookie|fallback|redis|postgres|sqlite`, `MESSAGES_KEY`,
//! `REDIS_URL`, `DATABASE_URL` and `PORT` change the store, the cookie signing keys, the
//! Redis server, the database and the port (see [`config_from`]).
//!
//! **The HTTP contract** (routes, statuses, headers, the markup of messages, bad input,
//! view ids), the JSON shape and htmx use are documented once, in
//! [`messages_example_shared`], for this app and for its actix-web twin
//! (`messages-example-actix`), which answers every request the same way. This crate is
//! only the axum part: routing, extractors and responses; the templates, forms, texts,
//! configuration and the import job come from the shared crate.
//!
//! Its views are the contract's ids, derived by `#[with_messages]` from this crate's
//! module path: `messages_example::settings` and `messages_example::dashboard`.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use messages_core::axum::{MessagesLayer, live_response};
use messages_core::prelude::*;
use messages_core::present::{HX_REQUEST, is_htmx};
use messages_core::tower_sessions::{SessionMessagesLayer, TowerSessionsIdentity};
use messages_example_shared::{
    self as shared, FragmentQuery, LoginForm, NotesForm, RenderError, SettingsForm, Templates,
    shown,
};

pub use messages_example_shared::{
    ConfigError, IMPORT_DELAY, MAX_NOTES, config_from, config_from_env,
};

#[derive(Debug, Clone)]
struct AppState {
    templates: Arc<Templates>,
    /// Where the background job delivers; `None` with cookie-only storage.
    jobs: Option<Arc<dyn MessageStore>>,
}

/// The application: every route of the contract, behind [`MessagesLayer`].
pub fn app(config: MessagesConfig) -> Router {
    let jobs = config.server_store();
    routes(jobs).layer(MessagesLayer::new(config))
}

/// The application with the app's own tower-sessions session as the messages identity
/// (`MESSAGES_SESSION=tower-sessions`; axum only): one cookie, tower-sessions' `id`, and
/// messages follow that session through login (`cycle_id`, done by
/// `Messages::rotate_session`) and logout. Sessions live in tower-sessions' in-process
/// `MemoryStore`; `config` must be a server store.
///
/// # Errors
/// [`messages_core::Error::Config`] for cookie storage.
pub fn app_with_tower_sessions(
    config: MessagesConfig,
    identity: TowerSessionsIdentity,
) -> Result<Router, messages_core::Error> {
    let jobs = config.server_store();
    let sessions = tower_sessions::SessionManagerLayer::new(tower_sessions::MemoryStore::default())
        .with_secure(false);
    Ok(routes(jobs).layer(SessionMessagesLayer::new(config, identity, sessions)?))
}

fn routes(jobs: Option<Arc<dyn MessageStore>>) -> Router {
    let state = AppState {
        templates: Arc::new(Templates::new()),
        jobs,
    };
    Router::new()
        .route("/", get(|| async { Redirect::to("/dashboard") }))
        .route("/settings", get(settings).post(save_settings))
        .route("/dashboard", get(dashboard))
        .route("/dashboard/messages", get(dashboard_fragment))
        .route("/dashboard/events", get(dashboard_events))
        .route("/notes", post(add_notes))
        .route("/jobs/import", post(start_import))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/api/dashboard/messages", get(dashboard_json))
        .route("/views", get(|| async { Json(messages_core::views()) }))
        .route("/static/app.css", get(stylesheet))
        .with_state(state)
}

/// A rendered page, or the `500` of a failed template (which keeps the messages read).
fn html(rendered: Result<String, RenderError>) -> Response {
    match rendered {
        Ok(page) => Html(page).into_response(),
        Err(e) => {
            e.log();
            (StatusCode::INTERNAL_SERVER_ERROR, RenderError::BODY).into_response()
        }
    }
}

/// The settings view (`messages_example::settings`): GET shows what POST added.
#[with_messages]
async fn settings(State(app): State<AppState>) -> Response {
    let list = self.messages().await;
    html(app.templates.settings(&shown(list)))
}

#[with_messages(view = settings)]
async fn save_settings(Form(form): Form<SettingsForm>) -> Redirect {
    self.add_message(form.message());
    Redirect::to("/settings")
}

/// The dashboard view (`messages_example::dashboard`), shared by the fragment, the JSON
/// endpoint, the notes form and the import job.
#[with_messages]
async fn dashboard(State(app): State<AppState>) -> Response {
    let list = self.messages().await;
    html(app.templates.dashboard(&shown(list)))
}

#[with_messages(view = dashboard)]
async fn dashboard_fragment(
    State(app): State<AppState>,
    Query(query): Query<FragmentQuery>,
) -> Response {
    let list = self.messages().await;
    html(app.templates.fragment(&shown(list), query.oob))
}

#[with_messages(view = dashboard)]
async fn dashboard_json() -> impl IntoResponse {
    Json(shown(self.messages().await))
}

/// The dashboard's messages as they arrive (Server-Sent Events), taken when pushed.
#[with_messages(view = dashboard)]
async fn dashboard_events(headers: HeaderMap) -> Response {
    live_response(self.request(), self.view(), &headers)
}

/// Adds the notes; an htmx request gets the dashboard's messages back at once (the
/// fragment and `HX-Trigger`), any other a redirect to the dashboard.
#[with_messages(view = dashboard)]
async fn add_notes(headers: HeaderMap, Form(form): Form<NotesForm>) -> Response {
    for message in form.messages() {
        self.add_message(message);
    }
    let hx_request = headers.get(HX_REQUEST).and_then(|v| v.to_str().ok());
    if is_htmx(hx_request) {
        return self.htmx(false).await.into_response();
    }
    Redirect::to("/dashboard").into_response()
}

#[with_messages(view = dashboard)]
async fn start_import(State(app): State<AppState>) -> Redirect {
    let Some(store) = app.jobs else {
        self.add_message(Message::warning(shared::JOBS_NEED_SERVER_STORE));
        return Redirect::to("/dashboard");
    };
    // The job needs the session key, so this response sets the session cookie; with
    // fallback storage the cookie also tells the dashboard to look in the server store.
    match self.expect_later() {
        // Out of band: no request in hand, the view named by the compiler.
        Ok(session) => drop(shared::spawn_import(store, session, view_of!(dashboard))),
        Err(e) => {
            tracing::error!(error = %e, "no session for the import job");
            self.add_message(Message::error(shared::IMPORT_NOT_STARTED));
        }
    }
    Redirect::to("/dashboard")
}

/// Login: a new session key (against session fixation), pending messages carried over.
#[with_messages(view = dashboard)]
async fn login(Form(form): Form<LoginForm>) -> Redirect {
    form.log_in(&self);
    Redirect::to("/dashboard")
}

/// Logout: the session and its messages end.
async fn logout(messages: Messages) -> Redirect {
    messages.end_session();
    Redirect::to("/settings")
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, shared::STYLESHEET_CONTENT_TYPE),
            (CACHE_CONTROL, shared::STYLESHEET_CACHE_CONTROL),
        ],
        shared::STYLESHEET,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The derived ids are the contract's: the actix-web app states the same ones.
    #[test]
    fn views_have_the_contract_ids() {
        assert_eq!(view_of!(settings).id(), &shared::SETTINGS_VIEW);
        assert_eq!(view_of!(save_settings), view_of!(settings));
        assert_eq!(view_of!(dashboard).id(), &shared::DASHBOARD_VIEW);
        for shares in [
            view_of!(dashboard_fragment),
            view_of!(dashboard_json),
            view_of!(dashboard_events),
            view_of!(add_notes),
            view_of!(start_import),
            view_of!(login),
        ] {
            assert_eq!(shares, view_of!(dashboard));
        }
        assert_eq!(view_of!(settings).name(), "settings");
        assert_eq!(view_of!(dashboard).name(), "dashboard");
    }
}
