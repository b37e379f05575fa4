//! Live delivery and htmx through real HTTP, against both example apps of the contract
//! (`live::{axum,actix}::<store>::<case>`): `GET /dashboard/events` pushes each dashboard
//! message once across tabs, a closed stream leaves messages for the next page, a
//! reconnect with `Last-Event-ID` neither repeats nor loses one; `POST /notes` with
//! `HX-Request: true` answers the fragment and `HX-Trigger`. Every server store the
//! examples take runs the stream cases (memory, Redis, Redis Cluster, PostgreSQL and
//! SQLite, which is polled; `fallback` only for a job's message, since a request's
//! messages ride in the cookie); cookie-only storage refuses the stream.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::time::Duration;

use messages_tests::http::{EventStream, HttpClient, SseEvent};

#[path = "support/example.rs"]
mod example_app;

use example_app::Framework;

/// Generous: a loaded 2-core machine, a cluster, a restart.
const PATIENCE: Duration = Duration::from_secs(15);
/// How long a test watches for an event that must not come (a duplicate).
const QUIET: Duration = Duration::from_millis(700);

async fn open(b: &mut HttpClient, last_event_id: Option<&str>) -> EventStream {
    let stream = b.events("/dashboard/events", last_event_id).await;
    assert_eq!(stream.status, 200);
    assert_eq!(stream.headers["content-type"], "text/event-stream");
    stream
}

/// The message JSON of an event, checked against the contract: event `message`, `id`
/// the message id, `data` an item of `GET /api/dashboard/messages`.
fn message(event: &SseEvent) -> serde_json::Value {
    assert_eq!(event.event, "message");
    let data: serde_json::Value = serde_json::from_str(&event.data).unwrap();
    let keys: Vec<&str> = data
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut want = [
        "id",
        "level",
        "text",
        "title",
        "autoclose",
        "tags",
        "created_at",
    ];
    want.sort_unstable();
    let mut keys = keys;
    keys.sort_unstable();
    assert_eq!(keys, want, "{}", event.data);
    assert_eq!(event.id.as_deref(), data["id"].as_str());
    data
}

async fn next_text(stream: &mut EventStream) -> String {
    let event = stream
        .next_within(PATIENCE)
        .await
        .unwrap_or_else(|| panic!("no event; read so far: {:?}", stream.pending()));
    message(&event)["text"].as_str().unwrap().to_owned()
}

async fn dashboard_texts(b: &mut HttpClient) -> Vec<String> {
    let page = b.get("/dashboard").await;
    assert_eq!(page.status, 200);
    page.texts()
}

// Cases run on every server store, against both frameworks.

async fn the_import_is_pushed_to_the_open_dashboard_once(fw: Framework, store: &str) {
    let server = example_app::serve(fw, store).await.unwrap();
    let mut b = server.client().tab();
    assert!(dashboard_texts(&mut b).await.is_empty());
    let mut stream = open(&mut b, None).await;
    assert_eq!(b.post_form("/jobs/import", &[]).await.status, 303);
    assert_eq!(next_text(&mut stream).await, "Import finished");
    // Consumed when pushed: the page does not show it again.
    assert!(dashboard_texts(&mut b).await.is_empty());
    assert_eq!(stream.next_within(QUIET).await, None, "pushed once");
}

async fn of_two_tabs_exactly_one_shows_each(fw: Framework, store: &str) {
    let server = example_app::serve(fw, store).await.unwrap();
    let mut b = server.client().tab();
    let mut one = open(&mut b, None).await;
    let mut two = open(&mut b, None).await;
    let posted = b
        .post_form("/notes", &[("text", "note"), ("count", "6")])
        .await;
    assert_eq!(posted.status, 303);
    let mut seen = Vec::new();
    while seen.len() < 6 {
        let event = tokio::select! {
            e = one.next_within(PATIENCE) => e,
            e = two.next_within(PATIENCE) => e,
        };
        let event = event.unwrap_or_else(|| panic!("only {seen:?} arrived"));
        seen.push(message(&event)["text"].as_str().unwrap().to_owned());
    }
    // Nothing more on either tab: each note went to exactly one.
    assert_eq!(one.next_within(QUIET).await, None);
    assert_eq!(two.next_within(QUIET).await, None);
    let distinct: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(distinct.len(), 6, "{seen:?}");
    assert!(dashboard_texts(&mut b).await.is_empty());
}

async fn with_no_stream_open_the_next_page_shows_it(fw: Framework, store: &str) {
    let server = example_app::serve(fw, store).await.unwrap();
    let mut b = server.client().tab();
    let mut stream = open(&mut b, None).await;
    b.post_form("/notes", &[("text", "first"), ("count", "1")])
        .await;
    assert_eq!(next_text(&mut stream).await, "first #1");
    // The tab closes; the server notices and its stream takes nothing more.
    drop(stream);
    let_the_tab_close().await;
    b.post_form("/notes", &[("text", "later"), ("count", "1")])
        .await;
    assert_eq!(dashboard_texts(&mut b).await, ["later #1"]);
}

async fn a_reconnect_with_last_event_id_neither_repeats_nor_loses(fw: Framework, store: &str) {
    let server = example_app::serve(fw, store).await.unwrap();
    let mut b = server.client().tab();
    let mut stream = open(&mut b, None).await;
    b.post_form("/notes", &[("text", "before"), ("count", "2")])
        .await;
    let first = stream.next_within(PATIENCE).await.unwrap();
    let second = stream.next_within(PATIENCE).await.unwrap();
    assert_eq!(message(&first)["text"], "before #1");
    assert_eq!(message(&second)["text"], "before #2");
    drop(stream);
    let_the_tab_close().await;
    // Added while the browser reconnects.
    b.post_form("/notes", &[("text", "between"), ("count", "2")])
        .await;
    let mut again = open(&mut b, second.id.as_deref()).await;
    assert_eq!(next_text(&mut again).await, "between #1");
    assert_eq!(next_text(&mut again).await, "between #2");
    assert_eq!(again.next_within(QUIET).await, None, "nothing repeated");
}

/// Gives the client's connection task time to close the dropped stream's connection (a
/// server may not notice: actix-web sees it only when a write fails, which the stream's
/// probe before each take provokes).
async fn let_the_tab_close() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

// Cases run once per framework.

async fn cookie_storage_refuses_the_stream(fw: Framework) {
    let server = example_app::serve(fw, "cookie").await.unwrap();
    let mut b = server.client();
    let stream = b.events("/dashboard/events", None).await;
    assert_eq!(stream.status, 501);
    assert!(
        stream.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
    );
}

async fn an_htmx_post_answers_the_fragment_and_the_trigger(fw: Framework) {
    let server = example_app::serve(fw, "memory").await.unwrap();
    let mut b = server.client();
    b.post_form("/notes", &[("text", "waiting"), ("count", "1")])
        .await;
    let request = ::axum::http::Request::post("/notes")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("hx-request", "true");
    let reply = b
        .send(request, "text=Caf%C3%A9+%3Cb%3E&count=2".into())
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        reply.body.starts_with("<ul id=\"messages\">"),
        "{}",
        reply.body
    );
    assert_eq!(reply.texts(), ["waiting #1", "Café <b> #1", "Café <b> #2"]);
    let trigger: serde_json::Value =
        serde_json::from_str(reply.header("hx-trigger").expect("HX-Trigger")).unwrap();
    let texts: Vec<&str> = trigger["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["waiting #1", "Café <b> #1", "Café <b> #2"]);
    assert_eq!(trigger["messages"][0]["level"], "info");
    // Consumed: the page has nothing left.
    assert!(dashboard_texts(&mut b).await.is_empty());
    // Without HX-Request it is the usual redirect.
    let plain = b
        .post_form("/notes", &[("text", "x"), ("count", "1")])
        .await;
    assert_eq!(plain.status, 303);
}

/// The stream cases for a store whose messages all live on the server.
macro_rules! server_store_cases {
    ($case:ident) => {
        $case!(the_import_is_pushed_to_the_open_dashboard_once);
        $case!(of_two_tabs_exactly_one_shows_each);
        $case!(with_no_stream_open_the_next_page_shows_it);
        $case!(a_reconnect_with_last_event_id_neither_repeats_nor_loses);
    };
}

/// With `fallback` storage a request's messages ride in the browser's cookie, which
/// nothing can push; only the server part (a job's messages) is live.
macro_rules! fallback_cases {
    ($case:ident) => {
        $case!(the_import_is_pushed_to_the_open_dashboard_once);
    };
}

macro_rules! live_suite {
    ($module:ident, $fw:ident; $($store:ident => $name:literal: $cases:ident),* $(,)?) => {
        mod $module {
            $(mod $store {
                use crate::Framework;
                macro_rules! case {
                    ($case:ident) => {
                        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                        async fn $case() {
                            if crate::example_app::store_available($name) {
                                crate::$case(Framework::$fw, $name).await;
                            }
                        }
                    };
                }
                $cases!(case);
            })*

            #[tokio::test]
            async fn cookie_storage_refuses_the_stream() {
                crate::cookie_storage_refuses_the_stream(crate::Framework::$fw).await;
            }

            #[tokio::test]
            async fn an_htmx_post_answers_the_fragment_and_the_trigger() {
                crate::an_htmx_post_answers_the_fragment_and_the_trigger(crate::Framework::$fw)
                    .await;
            }
        }
    };
}

live_suite!(axum, Axum;
    memory => "memory": server_store_cases,
    fallback => "fallback": fallback_cases,
    redis => "redis": server_store_cases,
    redis_cluster => "redis-cluster": server_store_cases,
    postgres => "postgres": server_store_cases,
    sqlite => "sqlite": server_store_cases,
);
live_suite!(actix, Actix;
    memory => "memory": server_store_cases,
    fallback => "fallback": fallback_cases,
    redis => "redis": server_store_cases,
    redis_cluster => "redis-cluster": server_store_cases,
    postgres => "postgres": server_store_cases,
    sqlite => "sqlite": server_store_cases,
);

// A response that leaves the page never consumes what it read: a redirect or an htmx
// redirect keeps the messages for the page it leads to (both adapters).

const INBOX: messages_core::ViewId = messages_core::ViewId::from_static("live_test::inbox");

/// The inbox's texts, comma-separated, rendered (so consumed if the response shows them).
/// The apps' `/read/{how}` renders them, then answers `how`: `303`, `hx-redirect` (a
/// `200` with `HX-Redirect`) or `page` (a `200`).
async fn rendered_texts(messages: &messages_core::Messages) -> String {
    let list = messages.context(INBOX).messages().await;
    list.iter()
        .map(|m| m.text().to_owned())
        .collect::<Vec<_>>()
        .join(",")
}

async fn axum_app() -> messages_tests::http::TestServer {
    use ::axum::response::{IntoResponse, Redirect, Response};
    use ::axum::routing::{get, post};
    use messages_core::{MemoryStore, Message, Messages, MessagesConfig};
    async fn add(messages: Messages) -> Redirect {
        messages.context(INBOX).add_message(Message::info("kept"));
        Redirect::to("/page")
    }
    async fn read_then(
        messages: Messages,
        ::axum::extract::Path(how): ::axum::extract::Path<String>,
    ) -> Response {
        let texts = rendered_texts(&messages).await;
        match how.as_str() {
            "303" => Redirect::to("/page").into_response(),
            "hx-redirect" => ([("hx-redirect", "/page")], texts).into_response(),
            _ => texts.into_response(),
        }
    }
    let app = ::axum::Router::new()
        .route("/add", post(add))
        .route("/read/{how}", get(read_then))
        .layer(messages_core::axum::MessagesLayer::new(
            MessagesConfig::new(MemoryStore::new()),
        ));
    messages_tests::http::TestServer::axum(app).await
}

async fn actix_app() -> messages_tests::http::TestServer {
    use actix_web::{HttpResponse, web};
    use messages_core::{MemoryStore, Message, Messages, MessagesConfig};
    async fn add(messages: Messages) -> HttpResponse {
        messages.context(INBOX).add_message(Message::info("kept"));
        HttpResponse::SeeOther()
            .insert_header(("location", "/page"))
            .finish()
    }
    async fn read_then(messages: Messages, how: web::Path<String>) -> HttpResponse {
        let texts = rendered_texts(&messages).await;
        match how.as_str() {
            "303" => HttpResponse::SeeOther()
                .insert_header(("location", "/page"))
                .finish(),
            "hx-redirect" => HttpResponse::Ok()
                .insert_header(("hx-redirect", "/page"))
                .body(texts),
            _ => HttpResponse::Ok().body(texts),
        }
    }
    // Built outside the serving future, which must be `Send` (`HttpServer` is not).
    fn server(
        listener: std::net::TcpListener,
        config: MessagesConfig,
    ) -> std::io::Result<actix_web::dev::Server> {
        Ok(actix_web::HttpServer::new(move || {
            actix_web::App::new()
                .route("/add", web::post().to(add))
                .route("/read/{how}", web::get().to(read_then))
                .wrap(messages_core::actix::MessagesMiddleware::new(
                    config.clone(),
                ))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run())
    }
    let config = MessagesConfig::new(MemoryStore::new());
    messages_tests::http::TestServer::serve(move |listener| async move {
        server(listener, config)?.await
    })
    .await
}

async fn redirects_keep_what_they_read(server: messages_tests::http::TestServer) {
    let mut b = server.client();
    assert_eq!(b.post_form("/add", &[]).await.status, 303);
    assert_eq!(b.get("/read/303").await.status, 303);
    let hx = b.get("/read/hx-redirect").await;
    assert_eq!(hx.header("hx-redirect"), Some("/page"));
    assert_eq!(hx.body, "kept", "read and rendered, but the page is left");
    assert_eq!(b.get("/read/page").await.body, "kept", "kept for the page");
    assert_eq!(b.get("/read/page").await.body, "", "shown once");
}

#[tokio::test]
async fn axum_redirects_keep_what_they_read() {
    redirects_keep_what_they_read(axum_app().await).await;
}

#[tokio::test]
async fn actix_redirects_keep_what_they_read() {
    redirects_keep_what_they_read(actix_app().await).await;
}
