//! The actix-web rows: the same three routes, handler shapes and page as the axum rows
//! ([`crate::apps`]), on actix-web 4 — bare, this library on each of its stores, and
//! `actix-web-flash-messages` 0.5 on its cookie store and on `actix-session` 0.10.
//!
//! Each row is served as an actix application is deployed: an `actix_rt::System` on a
//! thread of its own (what `#[actix_web::main]` makes of `main`), in which the store is
//! built and an `HttpServer` started with [`WORKERS`] workers, each an actix arbiter (a
//! thread and a single-threaded runtime of its own), behind actix-server's acceptor
//! thread. The System's thread is named [`SERVER_THREADS`], the others are actix's
//! (`actix-rt|system:…`, `actix-server acceptor`), so [`crate::cpu`] counts all of them as
//! the server's.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use actix_session::SessionMiddleware;
use actix_session::storage::{
    LoadError, SaveError, SessionKey, SessionStore, UpdateError, generate_session_key,
};
use actix_web::cookie::Key;
use actix_web::cookie::time::Duration;
use actix_web::dev::Server;
use actix_web::http::header::{
    CACHE_CONTROL, COOKIE, ContentType, HeaderValue, LOCATION, SET_COOKIE, VARY,
};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use actix_web_flash_messages::storage::{CookieMessageStore, SessionMessageStore};
use actix_web_flash_messages::{FlashMessage, FlashMessagesFramework, IncomingFlashMessages};
use messages_core::actix::MessagesMiddleware;
use messages_core::{Message, with_messages};
use tokio::sync::oneshot;

use crate::BenchError;
use crate::apps::{
    ABOUT, Counter, Row, SAVED, SETTINGS, SettingsForm, Shown, Target, floor_session, ours_config,
    render, saved,
};
use crate::cpu::SERVER_THREADS;

/// actix-web workers per row: as many as the axum rows' server runtime has threads.
pub const WORKERS: usize = 2;

fn page(title: &str, messages: &[Shown]) -> HttpResponse {
    match render(title, messages) {
        // `text/html; charset=utf-8`, as axum's `Html`.
        Some(html) => HttpResponse::Ok()
            .content_type(ContentType::html())
            .body(html),
        None => HttpResponse::InternalServerError().finish(),
    }
}

fn see_other() -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((LOCATION, SETTINGS))
        .finish()
}

async fn about() -> HttpResponse {
    page("About", &[])
}

// --- bare actix-web: the same routes, no flash library -----------------------------------

async fn bare_settings() -> HttpResponse {
    page("Settings", &[])
}

async fn bare_save(_form: web::Form<SettingsForm>) -> HttpResponse {
    see_other()
}

// --- the floor: ours' responses with no flash library (as `apps::Row::Floor`) -----------------

/// `Vary: Cookie`, `Cache-Control: private` and, on a first visit, the session cookie, as
/// ours writes them on a response that used messages.
fn floor_headers(mut response: HttpResponse, set_cookie: Option<String>) -> HttpResponse {
    let headers = response.headers_mut();
    headers.insert(VARY, HeaderValue::from_static("Cookie"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("private"));
    if let Some(value) = set_cookie.and_then(|v| HeaderValue::try_from(v).ok()) {
        headers.insert(SET_COOKIE, value);
    }
    response
}

fn floor_set_cookie(request: &HttpRequest) -> Option<String> {
    floor_session(request.headers().get(COOKIE).map(HeaderValue::as_bytes)).1
}

async fn floor_settings(request: HttpRequest) -> HttpResponse {
    let set_cookie = floor_set_cookie(&request);
    let shown = [Shown {
        level: "success",
        text: SAVED.to_owned(),
    }];
    floor_headers(page("Settings", &shown), set_cookie)
}

async fn floor_save(request: HttpRequest, form: web::Form<SettingsForm>) -> HttpResponse {
    let set_cookie = floor_set_cookie(&request);
    drop(saved(&form));
    floor_headers(see_other(), set_cookie)
}

// --- this library -------------------------------------------------------------------------

#[with_messages]
async fn settings() -> HttpResponse {
    let shown: Vec<Shown> = self
        .messages()
        .await
        .into_iter()
        .map(|m| Shown {
            level: m.level_tag(),
            text: m.text().to_owned(),
        })
        .collect();
    page("Settings", &shown)
}

#[with_messages(view = settings)]
async fn save_settings(form: web::Form<SettingsForm>) -> HttpResponse {
    self.add_message(Message::success(saved(&form)));
    see_other()
}

// --- actix-web-flash-messages 0.5 -----------------------------------------------------------

fn awfm_level(level: actix_web_flash_messages::Level) -> &'static str {
    match level {
        actix_web_flash_messages::Level::Debug => "debug",
        actix_web_flash_messages::Level::Info => "info",
        actix_web_flash_messages::Level::Success => "success",
        actix_web_flash_messages::Level::Warning => "warning",
        actix_web_flash_messages::Level::Error => "error",
    }
}

async fn awfm_settings(messages: IncomingFlashMessages) -> HttpResponse {
    let shown: Vec<Shown> = messages
        .iter()
        .map(|m| Shown {
            level: awfm_level(m.level()),
            text: m.content().to_owned(),
        })
        .collect();
    page("Settings", &shown)
}

async fn awfm_save(form: web::Form<SettingsForm>) -> HttpResponse {
    FlashMessage::success(saved(&form)).send();
    see_other()
}

/// An in-memory `actix-session` store that counts the calls made to it.
///
/// actix-session 0.10 ships a cookie store and Redis stores, no memory store; this is the
/// peer of `tower-sessions`' `MemoryStore` behind the axum-messages row and of our
/// `MemoryStore`: one map behind a mutex, keys from actix-session's own
/// `generate_session_key`, no expiry (no run lasts a day, actix-session's default TTL).
#[derive(Debug, Clone, Default)]
pub struct MemorySessions {
    sessions: Arc<Mutex<HashMap<String, HashMap<String, String>>>>,
    calls: Arc<AtomicUsize>,
}

impl MemorySessions {
    /// Calls made so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }

    /// Counts a call and locks the map.
    fn hit(&self) -> MutexGuard<'_, HashMap<String, HashMap<String, String>>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl SessionStore for MemorySessions {
    async fn load(
        &self,
        session_key: &SessionKey,
    ) -> Result<Option<HashMap<String, String>>, LoadError> {
        Ok(self.hit().get(session_key.as_ref()).cloned())
    }

    async fn save(
        &self,
        session_state: HashMap<String, String>,
        _ttl: &Duration,
    ) -> Result<SessionKey, SaveError> {
        let key = generate_session_key();
        self.hit().insert(key.as_ref().to_owned(), session_state);
        Ok(key)
    }

    async fn update(
        &self,
        session_key: SessionKey,
        session_state: HashMap<String, String>,
        _ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        let mut sessions = self.hit();
        if let Some(state) = sessions.get_mut(session_key.as_ref()) {
            *state = session_state;
            Ok(session_key)
        } else {
            // Gone meanwhile: a new session, as actix-session's Redis store does.
            let key = generate_session_key();
            sessions.insert(key.as_ref().to_owned(), session_state);
            Ok(key)
        }
    }

    async fn update_ttl(
        &self,
        _session_key: &SessionKey,
        _ttl: &Duration,
    ) -> Result<(), anyhow::Error> {
        drop(self.hit());
        Ok(())
    }

    async fn delete(&self, session_key: &SessionKey) -> Result<(), anyhow::Error> {
        self.hit().remove(session_key.as_ref());
        Ok(())
    }
}

// --- serving ------------------------------------------------------------------------------

/// A row's actix-web server, running until [`Running::stop`] or until this is dropped:
/// either stops the server (not gracefully) and ends its System and thread.
#[derive(Debug)]
pub(crate) struct Running {
    stop: Option<oneshot::Sender<()>>,
}

impl Running {
    /// Tells the server to stop; it does not wait for it.
    pub(crate) fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts `row` (an actix row) on `127.0.0.1:0` on a new System thread; returns once the
/// server is listening. `target` is where its store keeps its data.
pub(crate) async fn start(
    row: Row,
    target: Target,
) -> Result<(SocketAddr, Counter, Running), BenchError> {
    let (ready_tx, ready_rx) = oneshot::channel();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    std::thread::Builder::new()
        .name(SERVER_THREADS.to_owned())
        .spawn(move || {
            actix_rt::System::new().block_on(async move {
                let (server, addr, counter) = match serve(row, &target).await {
                    Ok(started) => started,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let handle = server.handle();
                let serving = actix_rt::spawn(server);
                let _ = ready_tx.send(Ok((addr, counter)));
                // Sent, or the sender dropped with its `App`: stop either way.
                let _ = stop_rx.await;
                handle.stop(false).await;
                let _ = serving.await;
            });
        })?;
    let (addr, counter) = ready_rx
        .await
        .map_err(|_| std::io::Error::other("the actix server thread died"))??;
    Ok((
        addr,
        counter,
        Running {
            stop: Some(stop_tx),
        },
    ))
}

/// An `HttpServer` of `factory`'s apps on `listener`: [`WORKERS`] workers, no signal
/// handlers, `TCP_NODELAY` like the axum rows, actix-web's defaults otherwise.
macro_rules! http_server {
    ($listener:expr, $factory:expr) => {
        HttpServer::new($factory)
            .workers(WORKERS)
            .disable_signals()
            .tcp_nodelay(true)
            .listen($listener)?
            .run()
    };
}

/// Builds the row's store and server inside the running System.
async fn serve(row: Row, target: &Target) -> Result<(Server, SocketAddr, Counter), BenchError> {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let addr = listener.local_addr()?;
    let (server, counter) = match row {
        Row::ActixBare => (
            http_server!(listener, || {
                App::new()
                    .service(
                        web::resource(SETTINGS)
                            .route(web::get().to(bare_settings))
                            .route(web::post().to(bare_save)),
                    )
                    .route(ABOUT, web::get().to(about))
            }),
            Counter::Nothing,
        ),
        Row::ActixFloor => (
            http_server!(listener, || {
                App::new()
                    .service(
                        web::resource(SETTINGS)
                            .route(web::get().to(floor_settings))
                            .route(web::post().to(floor_save)),
                    )
                    .route(ABOUT, web::get().to(about))
            }),
            Counter::Nothing,
        ),
        Row::AwfmCookie => {
            // Signed with a fresh key; `SameSite=Lax`, its default (the cookie is always
            // `Secure`, which the harness's cookie jar does not filter on).
            let store = CookieMessageStore::builder(Key::generate()).build();
            let framework = FlashMessagesFramework::builder(store).build();
            (
                http_server!(listener, move || {
                    App::new()
                        .service(
                            web::resource(SETTINGS)
                                .route(web::get().to(awfm_settings))
                                .route(web::post().to(awfm_save)),
                        )
                        .route(ABOUT, web::get().to(about))
                        .wrap(framework.clone())
                }),
                Counter::Nothing,
            )
        }
        Row::AwfmSession => {
            let framework = FlashMessagesFramework::builder(SessionMessageStore::default()).build();
            let sessions = MemorySessions::default();
            let key = Key::generate();
            let counter = Counter::ActixSessions(sessions.clone());
            (
                http_server!(listener, move || {
                    // actix-session's defaults (`SameSite=Lax`, the session key encrypted
                    // in its cookie) but not `Secure` on plain http, like the axum rows.
                    let session = SessionMiddleware::builder(sessions.clone(), key.clone())
                        .cookie_secure(false)
                        .build();
                    App::new()
                        .service(
                            web::resource(SETTINGS)
                                .route(web::get().to(awfm_settings))
                                .route(web::post().to(awfm_save)),
                        )
                        .route(ABOUT, web::get().to(about))
                        .wrap(framework.clone())
                        .wrap(session)
                }),
                counter,
            )
        }
        row => {
            let (config, counter) = ours_config(row, target).await?;
            (
                http_server!(listener, move || {
                    App::new()
                        .service(
                            web::resource(SETTINGS)
                                .route(web::get().to(settings))
                                .route(web::post().to(save_settings)),
                        )
                        .route(ABOUT, web::get().to(about))
                        .wrap(MessagesMiddleware::new(config.clone()))
                }),
                counter,
            )
        }
    };
    Ok((server, addr, counter))
}
