//! The example application's HTTP contract, and the axum layer's behaviour, through real
//! HTTP on a loopback listener: every contract test runs against the memory, cookie and
//! fallback stores.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, VARY};
use axum::http::{Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use messages_core::{MemoryStore, Message, MessagesConfig, ViewId};
use messages_core::{Messages, axum::MessagesLayer};
use messages_tests::CountingStore;
use messages_tests::http::{Reply, TestServer};
use messages_tests::redis_server::RedisServer;
use tower::ServiceExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

#[path = "support/example.rs"]
mod example_app;

const SESSION: &str = "messages_session";
const COOKIE: &str = "messages";

/// Whether Redis rows can run: locally without `redis-server` the harness says SKIPPED
/// (in CI it fails instead).
fn redis_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| RedisServer::start().is_some())
}

/// The example on a row's store: `memory`, `cookie`, `fallback`, `redis`, or
/// `fallback-redis` (cookie first, spilling to Redis).
async fn example(store: &str) -> TestServer {
    example_app::serve(store)
        .await
        .expect("Redis rows run only when redis_available()")
}

/// `Vary: Cookie` and `Cache-Control: private`, as a touched response must carry.
fn is_private(r: &Reply) -> bool {
    let vary = r
        .all("vary")
        .iter()
        .any(|v| v.eq_ignore_ascii_case("cookie"));
    let private = r
        .header("cache-control")
        .is_some_and(|c| c.split(',').any(|d| d.trim() == "private"));
    vary && private
}

fn assert_untouched(r: &Reply) {
    assert!(
        r.set_cookies().is_empty(),
        "Set-Cookie on an untouched response: {:?}",
        r.set_cookies()
    );
    assert!(r.header("vary").is_none(), "Vary on an untouched response");
    assert!(
        !r.header("cache-control")
            .unwrap_or_default()
            .contains("private"),
        "private on an untouched response"
    );
}

/// The value of the cookie `name` set by a response, if any.
fn set_cookie_value(r: &Reply, name: &str) -> Option<String> {
    r.set_cookies().iter().find_map(|c| {
        let (n, v) = c.split(';').next()?.split_once('=')?;
        (n == name).then(|| v.to_owned())
    })
}

async fn post_redirect_get_shows_it_once(store: &str) {
    let server = example(store).await;
    let mut b = server.client();
    let posted = b.post_form("/settings", &[("name", "Ada")]).await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER);
    assert_eq!(posted.location(), Some("/settings"));
    assert!(
        b.cookie(SESSION).is_some(),
        "the first message starts a session"
    );

    let page = b.get("/settings").await;
    assert_eq!(page.status, StatusCode::OK);
    let shown = page.messages();
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert_eq!(shown[0].level, "success");
    assert_eq!(shown[0].text, "Settings saved for Ada.");
    assert_eq!(shown[0].title.as_deref(), Some("Saved"));
    assert!(shown[0].autoclose);
    assert_eq!(shown[0].id.len(), 32);

    let reload = b.get("/settings").await;
    assert_eq!(reload.status, StatusCode::OK);
    assert!(reload.messages().is_empty(), "shown twice");
    assert!(
        reload.body.contains("<ul id=\"messages\">"),
        "the empty list is present"
    );
}

async fn several_posts_keep_their_order(store: &str) {
    let server = example(store).await;
    let mut b = server.client();
    for name in ["one", "two", "three"] {
        b.post_form("/settings", &[("name", name)]).await;
    }
    b.post_form("/settings", &[("name", "  ")]).await;
    let page = b.get("/settings").await;
    let shown = page.messages();
    let texts: Vec<&str> = shown.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "Settings saved for one.",
            "Settings saved for two.",
            "Settings saved for three.",
            "Please enter a name."
        ]
    );
    assert_eq!(shown[3].level, "error");
}

async fn the_dashboard_never_shows_a_settings_message(store: &str) {
    let server = example(store).await;
    let mut b = server.client();
    b.post_form("/settings", &[("name", "Ada")]).await;
    assert!(b.get("/dashboard").await.messages().is_empty());
    assert!(b.get("/dashboard/messages").await.messages().is_empty());
    assert_eq!(b.get("/api/dashboard/messages").await.body, "[]");
    assert_eq!(
        b.get("/settings").await.texts(),
        ["Settings saved for Ada."]
    );
}

async fn two_browsers_never_see_each_others(store: &str) {
    let server = example(store).await;
    let (mut ada, mut bob, mut eve) = (server.client(), server.client(), server.client());
    ada.post_form("/settings", &[("name", "Ada")]).await;
    bob.post_form("/settings", &[("name", "Bob")]).await;
    assert_ne!(ada.cookie(SESSION), bob.cookie(SESSION));
    assert!(eve.get("/settings").await.messages().is_empty());
    assert_eq!(
        bob.get("/settings").await.texts(),
        ["Settings saved for Bob."]
    );
    assert_eq!(
        ada.get("/settings").await.texts(),
        ["Settings saved for Ada."]
    );
}

async fn notes_come_back_in_order(store: &str) {
    let server = example(store).await;
    let mut b = server.client();
    let posted = b
        .post_form("/notes", &[("text", "note"), ("count", "150")])
        .await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER);
    assert_eq!(posted.location(), Some("/dashboard"));
    if let Some(cookie) = set_cookie_value(&posted, COOKIE) {
        assert!(
            cookie.len() <= 2048,
            "messages cookie of {} bytes",
            cookie.len()
        );
    }
    let texts = b.get("/dashboard").await.texts();
    let all: Vec<String> = (1..=150).map(|i| format!("note #{i}")).collect();
    if store == "cookie" {
        // Cookie-only storage keeps what fits in the 2048-byte budget: the newest, in order.
        // (Compressed, 150 short notes fit; see `the_cookie_keeps_the_newest_that_fit`.)
        assert!(!texts.is_empty(), "nothing kept");
        assert_eq!(texts, all[150 - texts.len()..]);
    } else {
        assert_eq!(texts, all);
    }
    assert!(b.get("/dashboard").await.messages().is_empty());
}

async fn background_job_reports_on_the_dashboard_only(store: &str) {
    let server = example(store).await;
    let mut b = server.client();
    let posted = b.post_form("/jobs/import", &[]).await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER);
    assert_eq!(posted.location(), Some("/dashboard"));
    if store == "cookie" {
        let shown = b.get("/dashboard").await.messages();
        assert_eq!(shown.len(), 1);
        assert_eq!(shown[0].level, "warning");
        assert!(shown[0].text.contains("server store"), "{}", shown[0].text);
        return;
    }
    assert!(
        b.cookie(SESSION).is_some(),
        "the job's request starts the session"
    );
    let mut seen = Vec::new();
    for _ in 0..60 {
        seen.extend(b.get("/dashboard").await.messages());
        if !seen.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let texts: Vec<&str> = seen.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["Import finished"], "within 3 s");
    assert_eq!(seen[0].level, "info");
    assert!(b.get("/settings").await.messages().is_empty());
    assert!(b.get("/dashboard").await.messages().is_empty());
}

async fn the_json_endpoint_consumes(store: &str) {
    let server = example(store).await;
    let mut b = server.client();
    b.post_form("/notes", &[("text", "j"), ("count", "2")])
        .await;
    let reply = b.get("/api/dashboard/messages").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert!(is_private(&reply));
    let json: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    let list = json.as_array().unwrap();
    assert_eq!(list.len(), 2);
    for (i, m) in list.iter().enumerate() {
        assert_eq!(m["level"], "info");
        assert_eq!(m["text"], format!("j #{}", i + 1));
        assert!(m["title"].is_null());
        assert_eq!(m["id"].as_str().unwrap().len(), 32);
    }
    assert_eq!(b.get("/api/dashboard/messages").await.body, "[]");
    assert!(b.get("/dashboard").await.messages().is_empty());
}

async fn message_text_is_escaped(store: &str) {
    let server = example(store).await;
    let mut b = server.client();
    let attack = "<script>alert(\"x\")</script>";
    b.post_form("/settings", &[("name", attack)]).await;
    b.post_form(
        "/notes",
        &[("text", "<img src=x onerror=alert(1)>"), ("count", "1")],
    )
    .await;
    let settings = b.get("/settings").await;
    assert!(
        !settings.body.contains("<script>alert"),
        "{}",
        settings.body
    );
    assert_eq!(settings.texts(), [format!("Settings saved for {attack}.")]);
    let dashboard = b.get("/dashboard").await;
    assert!(!dashboard.body.contains("<img src=x"), "{}", dashboard.body);
    assert_eq!(dashboard.texts(), ["<img src=x onerror=alert(1)> #1"]);
}

async fn only_touched_responses_are_private(store: &str) {
    let server = example(store).await;
    let mut b = server.client();
    assert_untouched(&b.get("/").await);
    let css = b.get("/static/app.css").await;
    assert_untouched(&css);
    assert_eq!(css.header("cache-control"), Some("public, max-age=3600"));

    let posted = b.post_form("/settings", &[("name", "Ada")]).await;
    assert!(is_private(&posted), "a write is private");
    // With a session now, a request that reads nothing is still untouched.
    assert_untouched(&b.get("/").await);
    assert_untouched(&b.get("/views").await);
    let read = b.get("/settings").await;
    assert!(is_private(&read), "a read is private");
    assert_eq!(read.all("vary"), ["Cookie"]);
    assert_eq!(read.header("cache-control"), Some("private"));
    let empty_read = b.get("/dashboard").await;
    assert!(
        is_private(&empty_read),
        "reading nothing still varies on the cookie"
    );
}

async fn a_garbage_session_cookie_is_replaced(store: &str) {
    let server = example(store).await;
    let mut b = server.client();
    b.cookies
        .jar
        .insert(SESSION.into(), "not-a-session-key".into());
    b.cookies
        .jar
        .insert("messages".into(), "garbage-too".into());
    // Lazy: requests that do not touch messages leave a malformed cookie alone (it may
    // belong to another Path or Domain, where no removal of ours could reach it).
    for path in ["/", "/static/app.css", "/views"] {
        assert_untouched(&b.get(path).await);
    }
    assert_eq!(b.cookie(SESSION), Some("not-a-session-key"));
    let page = b.get("/settings").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.messages().is_empty());
    assert!(b.cookie(SESSION).is_none(), "the garbage cookie is removed");

    b.cookies
        .jar
        .insert(SESSION.into(), "not-a-session-key".into());
    let posted = b.post_form("/settings", &[("name", "Ada")]).await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER);
    let fresh = b.cookie(SESSION).expect("a new session cookie");
    assert_ne!(fresh, "not-a-session-key");
    assert_eq!(
        b.get("/settings").await.texts(),
        ["Settings saved for Ada."]
    );
}

async fn a_forged_messages_cookie_shows_nothing(store: &str) {
    let server = example(store).await;
    let mut b = server.client();
    b.post_form("/settings", &[("name", "Ada")]).await;
    let forged = "v1.eyJ2Ijp7fX0.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned();
    b.cookies.jar.insert(COOKIE.into(), forged);
    let page = b.get("/settings").await;
    assert_eq!(page.status, StatusCode::OK);
    if store == "memory" || store == "redis" {
        // A server store never reads a messages cookie: the stray one changes nothing.
        assert_eq!(page.texts(), ["Settings saved for Ada."]);
    } else {
        assert!(page.messages().is_empty(), "{:?}", page.messages());
        assert!(b.cookie(COOKIE).is_none(), "the forged cookie is removed");
    }
}

macro_rules! per_store {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test] async fn $test() { super::$test("memory").await })*
        }
        mod cookie {
            $(#[tokio::test] async fn $test() { super::$test("cookie").await })*
        }
        mod fallback {
            $(#[tokio::test] async fn $test() { super::$test("fallback").await })*
        }
        mod redis {
            $(#[tokio::test] async fn $test() {
                if super::redis_available() { super::$test("redis").await }
            })*
        }
        mod fallback_redis {
            $(#[tokio::test] async fn $test() {
                if super::redis_available() { super::$test("fallback-redis").await }
            })*
        }
    };
}

per_store!(
    post_redirect_get_shows_it_once,
    several_posts_keep_their_order,
    the_dashboard_never_shows_a_settings_message,
    two_browsers_never_see_each_others,
    notes_come_back_in_order,
    background_job_reports_on_the_dashboard_only,
    the_json_endpoint_consumes,
    message_text_is_escaped,
    only_touched_responses_are_private,
    a_garbage_session_cookie_is_replaced,
    a_forged_messages_cookie_shows_nothing,
);

/// Text that does not compress: 200 letters from a xorshift generator.
fn incompressible(seed: u64) -> String {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..200)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + u8::try_from(x % 26).unwrap())
        })
        .collect()
}

#[tokio::test]
async fn the_cookie_keeps_the_newest_that_fit() {
    let server = example("cookie").await;
    let mut b = server.client();
    let texts: Vec<String> = (1..=30).map(incompressible).collect();
    for text in &texts {
        let posted = b
            .post_form("/notes", &[("text", text), ("count", "1")])
            .await;
        let cookie = set_cookie_value(&posted, COOKIE).expect("a messages cookie");
        assert!(
            cookie.len() <= 2048,
            "messages cookie of {} bytes",
            cookie.len()
        );
    }
    let shown = b.get("/dashboard").await.texts();
    let all: Vec<String> = texts.iter().map(|t| format!("{t} #1")).collect();
    assert!(
        !shown.is_empty() && shown.len() < 30,
        "{} of 30 kept",
        shown.len()
    );
    assert_eq!(shown, all[30 - shown.len()..], "the newest, in order");
}

#[tokio::test]
async fn a_bad_count_is_a_message_not_an_error() {
    let server = example("memory").await;
    let mut b = server.client();
    for (text, count) in [
        ("x", "0"),
        ("x", "201"),
        ("x", "many"),
        ("x", ""),
        ("", "3"),
    ] {
        let posted = b
            .post_form("/notes", &[("text", text), ("count", count)])
            .await;
        assert_eq!(posted.status, StatusCode::SEE_OTHER, "{text:?} {count:?}");
        let shown = b.get("/dashboard").await.messages();
        assert_eq!(shown.len(), 1, "{text:?} {count:?}: {shown:?}");
        assert_eq!(shown[0].level, "error");
    }
    // Fields missing altogether are the same mistake.
    let posted = b.post_form("/notes", &[]).await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER);
    assert_eq!(b.get("/dashboard").await.messages()[0].level, "error");
}

#[tokio::test]
async fn views_lists_settings_and_dashboard() {
    let server = example("memory").await;
    let reply = server.client().get("/views").await;
    assert_eq!(reply.status, StatusCode::OK);
    let views: Vec<serde_json::Value> = serde_json::from_str(&reply.body).unwrap();
    for name in ["settings", "dashboard"] {
        let v = views
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing from {views:?}"));
        assert_eq!(v["id"], format!("messages_example::{name}"));
        assert!(v["file"].as_str().unwrap().ends_with("lib.rs"), "{v}");
        assert!(v["line"].as_u64().unwrap() > 0);
    }
    let ids: Vec<&str> = views.iter().map(|v| v["id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(ids, sorted, "listed once each, sorted");
}

#[tokio::test]
async fn a_request_that_never_reads_does_no_store_call() {
    let store = CountingStore::new(MemoryStore::new());
    let server = TestServer::axum(messages_example::app(MessagesConfig::new(store.clone()))).await;
    let mut b = server.client();
    for path in ["/", "/static/app.css", "/views", "/settings"] {
        let reply = b.get(path).await;
        assert!(reply.set_cookies().is_empty(), "{path}");
    }
    assert_eq!(
        store.calls(),
        0,
        "an anonymous visitor has nothing to look up"
    );

    b.post_form("/settings", &[("name", "Ada")]).await;
    assert_eq!(store.calls(), 1, "one add");
    for path in ["/", "/static/app.css", "/views"] {
        let reply = b.get(path).await;
        assert!(reply.set_cookies().is_empty(), "{path}");
    }
    assert_eq!(
        store.calls(),
        1,
        "requests that never read make no store call"
    );
    assert_eq!(
        b.get("/settings").await.texts(),
        ["Settings saved for Ada."]
    );
    assert_eq!(store.calls(), 2, "one take");
}

/// A `MakeWriter` that keeps what is logged.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[tokio::test]
async fn a_missing_layer_is_a_500_naming_it() {
    let logs = Captured::default();
    let _guard = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish()
        .set_default();
    let app = Router::new()
        .route(
            "/needs",
            get(|m: Messages| async move {
                m.context(ViewId::from_static("x"))
                    .count()
                    .await
                    .to_string()
            }),
        )
        .route(
            "/optional",
            get(|m: Option<Messages>| async move { if m.is_some() { "layer" } else { "none" } }),
        );
    // The server runs on this thread (current-thread runtime), so its logs are captured.
    let server = TestServer::axum(app).await;
    let mut b = server.client();
    let reply = b.get("/needs").await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(reply.body.contains("MessagesLayer"), "{}", reply.body);
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("ERROR") && logged.contains("MessagesLayer"),
        "{logged}"
    );
    assert_eq!(b.get("/optional").await.body, "none");
}

const INBOX: ViewId = ViewId::from_static("tests::inbox");

async fn show(m: Messages) -> String {
    let list = m.context(INBOX).messages().await;
    list.iter().fold(String::new(), |mut out, m| {
        out.push_str(m.text());
        out.push('\n');
        out
    })
}

async fn add(m: Messages) -> StatusCode {
    m.context(INBOX).add_message(Message::info("hello"));
    StatusCode::NO_CONTENT
}

/// A small app of its own: adds, reads, fails, and hangs, for the layer's edge cases.
fn inbox_app(config: MessagesConfig, hung: tokio::sync::mpsc::Sender<()>) -> Router {
    Router::new()
        .route("/add", post(add))
        .route("/show", get(show))
        .route(
            "/fail",
            get(|m: Messages| async move { (StatusCode::INTERNAL_SERVER_ERROR, show(m).await) }),
        )
        .route(
            "/hang",
            get(
                |State(hung): State<tokio::sync::mpsc::Sender<()>>, m: Messages| async move {
                    let shown = show(m).await;
                    hung.send(()).await.unwrap();
                    std::future::pending::<()>().await;
                    shown
                },
            ),
        )
        .route(
            "/public",
            get(|| async { ([(CACHE_CONTROL, "public, max-age=60")], "static") }),
        )
        .route(
            "/public-read",
            get(|m: Messages| async move {
                let body = show(m).await;
                (
                    [
                        (CACHE_CONTROL, "public, s-maxage=600, max-age=60"),
                        (VARY, "Accept-Encoding"),
                    ],
                    body,
                )
                    .into_response()
            }),
        )
        .layer(MessagesLayer::new(config))
        .with_state(hung)
}

#[tokio::test]
async fn a_failed_response_keeps_what_it_read() {
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    let server = TestServer::axum(inbox_app(MessagesConfig::new(MemoryStore::new()), tx)).await;
    let mut b = server.client();
    assert_eq!(
        b.post_form("/add", &[]).await.status,
        StatusCode::NO_CONTENT
    );
    let failed = b.get("/fail").await;
    assert_eq!(
        (failed.status, failed.body.as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, "hello\n")
    );
    assert_eq!(
        b.get("/show").await.body,
        "hello\n",
        "the person never saw it"
    );
    assert_eq!(b.get("/show").await.body, "");
}

#[tokio::test]
async fn a_cancelled_request_keeps_what_it_took() {
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    let app = inbox_app(MessagesConfig::new(MemoryStore::new()), tx);
    let server = TestServer::axum(app.clone()).await;
    let mut b = server.client();
    b.post_form("/add", &[]).await;
    let cookie = b.cookies.cookie_header().unwrap();

    let hang = app.oneshot(
        Request::get("/hang")
            .header("cookie", cookie)
            .body(Body::empty())
            .unwrap(),
    );
    tokio::select! {
        _ = hang => panic!("/hang answered"),
        Some(()) = rx.recv() => {}
    }
    // The handler took and rendered the message, then its request was dropped: the layer
    // commits it as failed on a task, and the message is there for the next request.
    let mut shown = String::new();
    for _ in 0..40 {
        shown = b.get("/show").await.body;
        if !shown.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(shown, "hello\n");
}

#[tokio::test]
async fn cache_headers_of_the_handler_are_made_private() {
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    let server = TestServer::axum(inbox_app(MessagesConfig::new(MemoryStore::new()), tx)).await;
    let mut b = server.client();
    let public = b.get("/public").await;
    assert_eq!(public.header("cache-control"), Some("public, max-age=60"));
    assert_untouched(&public);
    let read = b.get("/public-read").await;
    assert_eq!(read.all("cache-control"), ["private, max-age=60"]);
    assert_eq!(read.all("vary"), ["Accept-Encoding", "Cookie"]);
}

#[tokio::test]
async fn nested_layers_commit_once() {
    let config = MessagesConfig::new(MemoryStore::new());
    let app = Router::new()
        .route("/add", post(add))
        .route("/show", get(show))
        .route_layer(MessagesLayer::new(config.clone()))
        .layer(MessagesLayer::new(config));
    let server = TestServer::axum(app).await;
    let mut b = server.client();
    let posted = b.post_form("/add", &[]).await;
    assert_eq!(posted.set_cookies().len(), 1, "{:?}", posted.set_cookies());
    assert_eq!(posted.all("vary"), ["Cookie"]);
    assert_eq!(b.get("/show").await.body, "hello\n");
}
