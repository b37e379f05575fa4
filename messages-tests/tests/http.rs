//! The example applications' HTTP contract through real HTTP on a loopback listener, run
//! against both apps of the contract — `http::axum::*` (`messages-example`) and
//! `http::actix::*` (`messages-example-actix`) — each case written once: every
//! per-store case on the memory, cookie, fallback, Redis, fallback-on-Redis, PostgreSQL
//! and SQLite stores (`http::{axum,actix}::<store>::<case>`; PostgreSQL a fresh database
//! per test on one server per binary, SQLite a fresh file, each through the example's
//! `DATABASE_URL`), the others once per framework. Then a
//! reusable component called from both frameworks (`http::reusable::*`, see
//! `support/reusable_apps.rs`), and the axum layer's own behaviour (the tests at the root).
//!
//! This binary links both apps, so the registry holds each of the contract's view ids
//! twice, once per app: `views_lists_settings_and_dashboard` checks exactly that.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::axum::Router;
use ::axum::body::Body;
use ::axum::extract::State;
use ::axum::http::header::{CACHE_CONTROL, VARY};
use ::axum::http::{Method, Request, StatusCode};
use ::axum::response::IntoResponse;
use ::axum::routing::{get, post};
use messages_core::{MemoryStore, Message, MessagesConfig, ViewId};
use messages_core::{Messages, axum::MessagesLayer};
use messages_tests::CountingStore;
use messages_tests::http::{HttpClient, Reply, TestServer};
use tower::ServiceExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

#[path = "support/example.rs"]
mod example_app;
#[path = "support/reusable_apps.rs"]
mod reusable;

use example_app::Framework;

const SESSION: &str = "messages_session";
const COOKIE: &str = "messages";

/// Whether a row's store keeps every message on the server: no messages cookie.
fn server_only(store: &str) -> bool {
    matches!(store, "memory" | "redis" | "postgres" | "sqlite")
}

/// The example of `framework` on a row's store: `memory`, `cookie`, `fallback`, `redis`,
/// `fallback-redis` (cookie first, spilling to Redis), `postgres` or `sqlite`.
async fn example(framework: Framework, store: &str) -> TestServer {
    example_app::serve(framework, store)
        .await
        .expect("Redis and PostgreSQL rows run only when store_available()")
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

/// The value of the cookie `name` set by a response, if any (empty for a removal).
fn set_cookie_value(r: &Reply, name: &str) -> Option<String> {
    r.set_cookies().iter().find_map(|c| {
        let (n, v) = c.split(';').next()?.split_once('=')?;
        (n == name).then(|| v.to_owned())
    })
}

/// The whole `Set-Cookie` line for the cookie `name`, if any.
fn set_cookie_line(r: &Reply, name: &str) -> Option<String> {
    r.set_cookies()
        .into_iter()
        .find(|c| c.split_once('=').is_some_and(|(n, _)| n == name))
}

/// A `HEAD` (or any body-less request) with `method`.
async fn send(b: &mut HttpClient, method: Method, path: &str) -> Reply {
    b.send(Request::builder().method(method).uri(path), String::new())
        .await
}

// ---------------------------------------------------------------------------------------
// Cases run on every store, against both frameworks.

async fn post_redirect_get_shows_it_once(fw: Framework, store: &str) {
    let server = example(fw, store).await;
    let mut b = server.client();
    let posted = b.post_form("/settings", &[("name", "Ada")]).await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER);
    assert_eq!(posted.location(), Some("/settings"));
    assert!(posted.body.is_empty(), "a redirect has an empty body");
    assert!(
        b.cookie(SESSION).is_some(),
        "the first message starts a session"
    );

    let page = b.get("/settings").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
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

async fn several_posts_keep_their_order(fw: Framework, store: &str) {
    let server = example(fw, store).await;
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

async fn the_dashboard_never_shows_a_settings_message(fw: Framework, store: &str) {
    let server = example(fw, store).await;
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

async fn two_browsers_never_see_each_others(fw: Framework, store: &str) {
    let server = example(fw, store).await;
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

async fn notes_come_back_in_order(fw: Framework, store: &str) {
    let server = example(fw, store).await;
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

async fn background_job_reports_on_the_dashboard_only(fw: Framework, store: &str) {
    let server = example(fw, store).await;
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

async fn the_json_endpoint_consumes(fw: Framework, store: &str) {
    let server = example(fw, store).await;
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

async fn message_text_is_escaped(fw: Framework, store: &str) {
    let server = example(fw, store).await;
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

async fn only_touched_responses_are_private(fw: Framework, store: &str) {
    let server = example(fw, store).await;
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

async fn a_garbage_session_cookie_is_replaced(fw: Framework, store: &str) {
    let server = example(fw, store).await;
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

async fn a_forged_messages_cookie_shows_nothing(fw: Framework, store: &str) {
    let server = example(fw, store).await;
    let mut b = server.client();
    b.post_form("/settings", &[("name", "Ada")]).await;
    let forged = "v1.eyJ2Ijp7fX0.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned();
    b.cookies.jar.insert(COOKIE.into(), forged);
    let page = b.get("/settings").await;
    assert_eq!(page.status, StatusCode::OK);
    if server_only(store) {
        // A server store never reads a messages cookie: the stray one changes nothing.
        assert_eq!(page.texts(), ["Settings saved for Ada."]);
    } else {
        assert!(page.messages().is_empty(), "{:?}", page.messages());
        assert!(b.cookie(COOKIE).is_none(), "the forged cookie is removed");
    }
}

/// A browser with messages pending on both views: a settings message, then two notes.
async fn with_pending_messages(b: &mut HttpClient) {
    b.post_form("/settings", &[("name", "Ada")]).await;
    b.post_form("/notes", &[("text", "before login"), ("count", "2")])
        .await;
}

/// `POST /login` gives the browser a new session cookie value and carries every pending
/// message over, each on its own view, in order, the welcome after them.
async fn login_rotates_the_session_and_carries_pending_messages(fw: Framework, store: &str) {
    let server = example(fw, store).await;
    let mut b = server.client();
    with_pending_messages(&mut b).await;
    let old = b.cookie(SESSION).expect("a session").to_owned();

    let login = b.post_form("/login", &[("name", "Ada")]).await;
    assert_eq!(login.status, StatusCode::SEE_OTHER);
    assert_eq!(login.location(), Some("/dashboard"));
    assert!(login.body.is_empty());
    assert!(is_private(&login), "{:?}", login.headers);
    let line = set_cookie_line(&login, SESSION).expect("login sets the session cookie");
    let fresh = set_cookie_value(&login, SESSION).unwrap();
    assert!(
        !fresh.is_empty() && fresh != old,
        "a new session value: {line}"
    );
    assert!(
        line.contains("HttpOnly") && line.contains("SameSite=Lax"),
        "{line}"
    );
    assert_eq!(b.cookie(SESSION), Some(fresh.as_str()));

    assert_eq!(
        b.get("/dashboard").await.texts(),
        ["before login #1", "before login #2", "Welcome, Ada."]
    );
    let settings = b.get("/settings").await.messages();
    assert_eq!(settings.len(), 1, "{settings:?}");
    assert_eq!(
        (settings[0].text.as_str(), settings[0].level.as_str()),
        ("Settings saved for Ada.", "success")
    );
    assert!(b.get("/dashboard").await.messages().is_empty());
    assert!(b.get("/settings").await.messages().is_empty());
    assert_eq!(b.cookie(SESSION), Some(fresh.as_str()), "rotated once");
}

/// A copy of the session cookie taken before login (planted by an attacker, say) sees
/// nothing of the logged-in browser's afterwards, and what is added under it never shows
/// up for that browser.
async fn the_old_session_cookie_sees_and_reaches_nothing_after_login(fw: Framework, store: &str) {
    let server = example(fw, store).await;
    let mut b = server.client();
    with_pending_messages(&mut b).await;
    let old = b.cookie(SESSION).expect("a session").to_owned();
    let mut attacker = server.client();
    attacker.cookies.jar.insert(SESSION.into(), old.clone());

    b.post_form("/login", &[("name", "Ada")]).await;
    assert_ne!(b.cookie(SESSION), Some(old.as_str()));

    // Before the browser has read anything: the old key shows none of it.
    assert!(attacker.get("/dashboard").await.messages().is_empty());
    assert_eq!(attacker.get("/api/dashboard/messages").await.body, "[]");
    assert!(attacker.get("/settings").await.messages().is_empty());
    // What the old key adds stays away from the logged-in browser.
    for posted in [
        attacker
            .post_form(
                "/notes",
                &[("text", "Click evil.example to confirm"), ("count", "1")],
            )
            .await,
        attacker
            .post_form("/settings", &[("name", "Mallory")])
            .await,
    ] {
        assert_eq!(posted.status, StatusCode::SEE_OTHER);
    }
    if server_only(store) {
        // A server store retires the old key: it accepts nothing either, so the attacker
        // is shown none of its own adds. (With a cookie part they travel in the attacker's
        // own cookie, which the login did not touch.)
        assert_eq!(attacker.cookie(SESSION), Some(old.as_str()));
        assert!(attacker.get("/dashboard").await.messages().is_empty());
        assert!(attacker.get("/settings").await.messages().is_empty());
    }

    assert_eq!(
        b.get("/dashboard").await.texts(),
        ["before login #1", "before login #2", "Welcome, Ada."]
    );
    assert_eq!(
        b.get("/settings").await.texts(),
        ["Settings saved for Ada."]
    );
    // Nothing of the attacker's arrives later either.
    assert!(b.get("/dashboard").await.messages().is_empty());
    assert!(b.get("/settings").await.messages().is_empty());
}

/// A blank name is an error on the dashboard and rotates nothing.
async fn a_blank_login_name_is_an_error_and_rotates_nothing(fw: Framework, store: &str) {
    let server = example(fw, store).await;
    let mut b = server.client();
    with_pending_messages(&mut b).await;
    let old = b.cookie(SESSION).expect("a session").to_owned();
    let login = b.post_form("/login", &[("name", "  ")]).await;
    assert_eq!(login.status, StatusCode::SEE_OTHER);
    assert_eq!(login.location(), Some("/dashboard"));
    assert!(
        set_cookie_value(&login, SESSION).is_none_or(|v| v == old),
        "{:?}",
        login.set_cookies()
    );
    assert_eq!(b.cookie(SESSION), Some(old.as_str()), "not rotated");
    let shown = b.get("/dashboard").await.messages();
    let seen: Vec<(&str, &str)> = shown
        .iter()
        .map(|m| (m.text.as_str(), m.level.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("before login #1", "info"),
            ("before login #2", "info"),
            ("Please enter a name.", "error")
        ]
    );
    // A missing field is the same mistake; the settings message waits where it was.
    b.post_form("/login", &[]).await;
    assert_eq!(b.get("/dashboard").await.texts(), ["Please enter a name."]);
    assert_eq!(
        b.get("/settings").await.texts(),
        ["Settings saved for Ada."]
    );
    assert_eq!(b.cookie(SESSION), Some(old.as_str()), "not rotated");
}

/// `POST /logout` removes the session cookie and drops the session's messages: neither
/// the browser nor a copy of its old session cookie sees them again.
async fn logout_removes_the_cookie_and_drops_the_messages(fw: Framework, store: &str) {
    let server = example(fw, store).await;
    let mut b = server.client();
    with_pending_messages(&mut b).await;
    let old = b.cookie(SESSION).expect("a session").to_owned();

    let out = b.post_form("/logout", &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location(), Some("/settings"));
    assert!(out.body.is_empty());
    assert!(is_private(&out), "{:?}", out.headers);
    let removal = set_cookie_line(&out, SESSION).expect("a removal of the session cookie");
    assert_eq!(
        set_cookie_value(&out, SESSION).as_deref(),
        Some(""),
        "{removal}"
    );
    assert!(removal.contains("Max-Age=0"), "{removal}");
    assert!(b.cookie(SESSION).is_none());
    assert!(b.cookie(COOKIE).is_none(), "{:?}", b.cookies.jar);

    assert!(b.get("/settings").await.messages().is_empty());
    assert!(b.get("/dashboard").await.messages().is_empty());
    assert_eq!(b.get("/api/dashboard/messages").await.body, "[]");
    // The old key's messages are gone from the store too (with cookie storage they were in
    // the cookie the logout removed).
    let mut copy = server.client();
    copy.cookies.jar.insert(SESSION.into(), old);
    assert!(copy.get("/settings").await.messages().is_empty());
    assert!(copy.get("/dashboard").await.messages().is_empty());

    // The next message starts a new session.
    b.post_form("/settings", &[("name", "Bea")]).await;
    assert_eq!(
        b.get("/settings").await.texts(),
        ["Settings saved for Bea."]
    );
}

// ---------------------------------------------------------------------------------------
// Cases run once per framework.

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

async fn the_cookie_keeps_the_newest_that_fit(fw: Framework) {
    let server = example(fw, "cookie").await;
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

async fn a_bad_count_is_a_message_not_an_error(fw: Framework) {
    let server = example(fw, "memory").await;
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

/// `GET /views` lists every message-bearing view of the program, sorted by id. An app
/// alone lists `settings` and `dashboard` once each; this test binary links both apps,
/// so each id is declared twice — once in each app's source, at its own handler — and
/// the list holds exactly those four declarations, whichever app serves it. That the two
/// declarations of an id are the only duplicates is what `check_views()` reports.
async fn views_lists_settings_and_dashboard(fw: Framework) {
    let server = example(fw, "memory").await;
    let reply = server.client().get("/views").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_untouched(&reply);
    let views: Vec<serde_json::Value> = serde_json::from_str(&reply.body).unwrap();
    let listed: Vec<(String, String, &'static str)> = views
        .iter()
        .map(|v| {
            let file = v["file"].as_str().unwrap();
            let app = Framework::ALL
                .into_iter()
                .find(|f| file.ends_with(f.source()))
                .unwrap_or_else(|| panic!("a view declared outside the apps: {v}"));
            assert!(v["line"].as_u64().unwrap() > 0, "{v}");
            let id = v["id"].as_str().unwrap().to_owned();
            (id, v["name"].as_str().unwrap().to_owned(), app.source())
        })
        .collect();
    let mut expected = Vec::new();
    for name in ["dashboard", "settings"] {
        for app in Framework::ALL {
            expected.push((
                format!("messages_example::{name}"),
                name.to_owned(),
                app.source(),
            ));
        }
    }
    expected.sort();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(sorted, expected, "each id once per app");
    let ids: Vec<&str> = listed.iter().map(|(id, ..)| id.as_str()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] <= w[1]),
        "sorted by id: {ids:?}"
    );
    assert!(
        listed.iter().any(|(_, _, source)| *source == fw.source()),
        "{fw}'s own views"
    );

    let duplicates = messages_core::check_views().unwrap_err();
    let reported: BTreeSet<(String, usize)> = duplicates
        .iter()
        .map(|d| (d.id.to_string(), d.places.len()))
        .collect();
    let both_apps: BTreeSet<(String, usize)> = ["dashboard", "settings"]
        .iter()
        .map(|name| (format!("messages_example::{name}"), 2))
        .collect();
    assert_eq!(reported, both_apps, "{duplicates:?}");
    for d in &duplicates {
        for app in Framework::ALL {
            assert!(d.places.iter().any(|p| p.contains(app.source())), "{d:?}");
        }
    }
}

async fn a_request_that_never_reads_does_no_store_call(fw: Framework) {
    let store = CountingStore::new(MemoryStore::new());
    let server = fw.serve(MessagesConfig::new(store.clone())).await;
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

/// Other methods on the contract's routes are a `405` with an empty body and `allow`;
/// other paths a `404` with an empty body; `HEAD` answers like `GET` without the body
/// (and a `HEAD` of a page consumes its messages like a `GET`).
async fn methods_heads_and_unknown_paths(fw: Framework) {
    let server = example(fw, "memory").await;
    let mut b = server.client();
    for (method, path, allow) in [
        (Method::POST, "/", "GET,HEAD"),
        (Method::PUT, "/settings", "GET,HEAD,POST"),
        (Method::DELETE, "/dashboard", "GET,HEAD"),
        (Method::POST, "/dashboard/messages", "GET,HEAD"),
        (Method::GET, "/notes", "POST"),
        (Method::GET, "/jobs/import", "POST"),
        (Method::GET, "/login", "POST"),
        (Method::PUT, "/login", "POST"),
        (Method::GET, "/logout", "POST"),
        (Method::HEAD, "/logout", "POST"),
        (Method::POST, "/api/dashboard/messages", "GET,HEAD"),
        (Method::POST, "/views", "GET,HEAD"),
        (Method::OPTIONS, "/static/app.css", "GET,HEAD"),
    ] {
        let r = send(&mut b, method.clone(), path).await;
        let what = format!("[{fw}] {method} {path}");
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{what}");
        assert_eq!(r.header("allow"), Some(allow), "{what}");
        assert_eq!(r.body, "", "{what}");
        assert_untouched(&r);
    }
    for (method, path) in [
        (Method::GET, "/nope"),
        (Method::POST, "/nope"),
        (Method::HEAD, "/nope"),
        (Method::GET, "/settings/extra"),
        (Method::GET, "/static/other.css"),
    ] {
        let r = send(&mut b, method.clone(), path).await;
        let what = format!("[{fw}] {method} {path}");
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{what}");
        assert_eq!(r.body, "", "{what}");
        assert_untouched(&r);
    }

    let root = send(&mut b, Method::HEAD, "/").await;
    assert_eq!(
        (root.status, root.location()),
        (StatusCode::SEE_OTHER, Some("/dashboard"))
    );
    let css = send(&mut b, Method::HEAD, "/static/app.css").await;
    assert_eq!(css.status, StatusCode::OK);
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    assert_eq!(css.header("cache-control"), Some("public, max-age=3600"));
    assert_eq!(css.body, "");
    assert_untouched(&css);

    b.post_form("/settings", &[("name", "Ada")]).await;
    let head = send(&mut b, Method::HEAD, "/settings").await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(
        head.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(head.body, "");
    assert!(is_private(&head), "{:?}", head.headers);
    assert!(
        b.get("/settings").await.messages().is_empty(),
        "HEAD consumed the message"
    );
}

// ---------------------------------------------------------------------------------------
// The suites, per framework and store.

/// One test per case of `$cases` on one store, for the framework `$fw`.
macro_rules! store_row {
    ($fw:ident, $store:literal; $($case:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $case() {
            if crate::example_app::store_available($store) {
                crate::$case(crate::Framework::$fw, $store).await;
            }
        }
    )*};
}

/// The cases run on every store, passed to `$row!($($args)*; cases...)`.
macro_rules! per_store_cases {
    ($row:ident!($($args:tt)*)) => {
        $row!($($args)*;
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
            login_rotates_the_session_and_carries_pending_messages,
            the_old_session_cookie_sees_and_reaches_nothing_after_login,
            a_blank_login_name_is_an_error_and_rotates_nothing,
            logout_removes_the_cookie_and_drops_the_messages,
        );
    };
}

/// The whole contract suite against one framework's app: `mod $module { <store>::<case>,
/// <case> }`.
macro_rules! contract_suite {
    ($module:ident, $fw:ident) => {
        mod $module {
            mod memory {
                per_store_cases!(store_row!($fw, "memory"));
            }
            mod cookie {
                per_store_cases!(store_row!($fw, "cookie"));
            }
            mod fallback {
                per_store_cases!(store_row!($fw, "fallback"));
            }
            mod redis {
                per_store_cases!(store_row!($fw, "redis"));
            }
            mod fallback_redis {
                per_store_cases!(store_row!($fw, "fallback-redis"));
            }
            mod postgres {
                per_store_cases!(store_row!($fw, "postgres"));
            }
            mod sqlite {
                per_store_cases!(store_row!($fw, "sqlite"));
            }

            #[tokio::test]
            async fn the_cookie_keeps_the_newest_that_fit() {
                crate::the_cookie_keeps_the_newest_that_fit(crate::Framework::$fw).await;
            }

            #[tokio::test]
            async fn a_bad_count_is_a_message_not_an_error() {
                crate::a_bad_count_is_a_message_not_an_error(crate::Framework::$fw).await;
            }

            #[tokio::test]
            async fn views_lists_settings_and_dashboard() {
                crate::views_lists_settings_and_dashboard(crate::Framework::$fw).await;
            }

            #[tokio::test]
            async fn a_request_that_never_reads_does_no_store_call() {
                crate::a_request_that_never_reads_does_no_store_call(crate::Framework::$fw).await;
            }

            #[tokio::test]
            async fn methods_heads_and_unknown_paths() {
                crate::methods_heads_and_unknown_paths(crate::Framework::$fw).await;
            }
        }
    };
}

contract_suite!(axum, Axum);
contract_suite!(actix, Actix);

// ---------------------------------------------------------------------------------------
// The axum layer's own behaviour (framework-specific: not part of the contract).

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
