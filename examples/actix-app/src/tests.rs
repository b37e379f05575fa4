//! The actix-web app against the contract, in process (`actix_web::test`) and on a socket
//! ([`serve`]). `examples/compare.sh` diffs every route against the axum app.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use actix_http::Request;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::test::{self, TestRequest};
use messages_core::{CookieStore, MemoryStore};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::*;

const KEY: &str = "the signing key of the actix example in tests: 32+ bytes";

/// The ids are the contract's, the same as the axum app derives from its module path.
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
    let listed: Vec<_> = messages_core::views()
        .into_iter()
        .map(|v| (v.id().as_str(), v.name()))
        .collect();
    assert_eq!(
        listed,
        [
            ("messages_example::dashboard", "dashboard"),
            ("messages_example::settings", "settings")
        ]
    );
    assert!(messages_core::check_views().is_ok());
}

/// One browser: keeps the cookies responses set.
#[derive(Default)]
struct Browser {
    cookies: BTreeMap<String, String>,
}

/// What a test looks at in a response.
struct Reply {
    status: StatusCode,
    headers: actix_web::http::header::HeaderMap,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// The texts of the `<li>`s of the messages list.
    fn texts(&self) -> Vec<String> {
        self.body
            .split("<li ")
            .skip(1)
            .map(|li| {
                let text = &li[li.find('>').unwrap() + 1..];
                text[..text.find("</li>").unwrap()].to_owned()
            })
            .collect()
    }
}

impl Browser {
    async fn send<S, B>(&mut self, app: &S, request: TestRequest) -> Reply
    where
        S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
        B: MessageBody,
    {
        let mut request = request;
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            request = request.insert_header(("cookie", jar.join("; ")));
        }
        let response = test::call_service(app, request.to_request()).await;
        for set in response.headers().get_all("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || set.to_str().unwrap().contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let status = response.status();
        let headers = response.headers().clone();
        let body = String::from_utf8(test::read_body(response).await.to_vec()).unwrap();
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn get<S, B>(&mut self, app: &S, path: &str) -> Reply
    where
        S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
        B: MessageBody,
    {
        self.send(app, TestRequest::get().uri(path)).await
    }

    async fn post_form<S, B>(&mut self, app: &S, path: &str, form: &str) -> Reply
    where
        S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
        B: MessageBody,
    {
        let request = TestRequest::post()
            .uri(path)
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload(form.to_owned());
        self.send(app, request).await
    }
}

fn memory() -> MessagesConfig {
    MessagesConfig::new(MemoryStore::new())
}

#[actix_web::test]
async fn settings_show_what_was_saved_once() {
    let app = test::init_service(app(memory())).await;
    let mut b = Browser::default();
    let page = b.get(&app, "/settings").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        page.body.contains("<ul id=\"messages\">\n</ul>"),
        "{}",
        page.body
    );

    let saved = b.post_form(&app, "/settings", "name=Ada").await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER);
    assert_eq!(saved.header("location"), Some("/settings"));
    assert_eq!(saved.header("vary"), Some("Cookie"));
    assert_eq!(saved.header("cache-control"), Some("private"));
    assert!(saved.body.is_empty());

    // Bound to the settings view: the dashboard does not show it.
    assert!(b.get(&app, "/dashboard").await.texts().is_empty());
    let page = b.get(&app, "/settings").await;
    assert_eq!(page.texts(), ["Settings saved for Ada."]);
    assert!(page.body.contains("data-title=\"Saved\" data-autoclose>"));
    assert!(b.get(&app, "/settings").await.texts().is_empty(), "once");

    b.post_form(&app, "/settings", "name=+").await;
    assert_eq!(
        b.get(&app, "/settings").await.texts(),
        [shared::NAME_MISSING]
    );
}

#[actix_web::test]
async fn notes_fragment_and_json() {
    let app = test::init_service(app(memory())).await;
    let mut b = Browser::default();
    let posted = b.post_form(&app, "/notes", "text=hi&count=3").await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER);
    assert_eq!(posted.header("location"), Some("/dashboard"));
    let fragment = b.get(&app, "/dashboard/messages?oob=true").await;
    assert!(
        fragment
            .body
            .starts_with("<ul id=\"messages\" hx-swap-oob=\"true\">")
    );
    assert_eq!(fragment.texts(), ["hi #1", "hi #2", "hi #3"]);

    b.post_form(&app, "/notes", "text=x&count=201").await;
    let json = b.get(&app, "/api/dashboard/messages").await;
    assert_eq!(json.header("content-type"), Some("application/json"));
    let json: serde_json::Value = serde_json::from_str(&json.body).unwrap();
    assert_eq!(json[0]["level"], "error");
    assert_eq!(json[0]["text"], "Count must be a number from 1 to 200.");
    let keys: Vec<&String> = json[0].as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 7, "{keys:?}");
    assert_eq!(b.get(&app, "/api/dashboard/messages").await.body, "[]");
}

#[actix_web::test]
async fn bad_input_gets_axums_refusals() {
    let app = test::init_service(app(memory())).await;
    let mut b = Browser::default();
    let text = |r: &Reply| {
        (
            r.status.as_u16(),
            r.header("content-type").map(str::to_owned),
            r.body.clone(),
        )
    };
    let plain = Some("text/plain; charset=utf-8".to_owned());

    let not_a_form = TestRequest::post()
        .uri("/notes")
        .insert_header(("content-type", "application/json"))
        .set_payload("{}");
    let r = b.send(&app, not_a_form).await;
    assert_eq!(
        text(&r),
        (
            415,
            plain.clone(),
            "Form requests must have `Content-Type: application/x-www-form-urlencoded`".to_owned()
        )
    );
    let r = b.send(&app, TestRequest::post().uri("/settings")).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let r = b.post_form(&app, "/settings", "name=a&name=b").await;
    assert_eq!(
        text(&r),
        (
            422,
            plain.clone(),
            "Failed to deserialize form body: duplicate field `name`".to_owned()
        )
    );
    let big = "a".repeat(shared::MAX_FORM_BYTES + 1);
    let r = b.post_form(&app, "/notes", &big).await;
    assert_eq!(
        text(&r),
        (
            413,
            plain.clone(),
            "Failed to buffer the request body: length limit exceeded".to_owned()
        )
    );
    let r = b.get(&app, "/dashboard/messages?oob=maybe").await;
    assert_eq!(
        text(&r),
        (
            400,
            plain,
            "Failed to deserialize query string: oob: provided string was not `true` or `false`"
                .to_owned()
        )
    );
    // A refused request touched no messages: no cookie, no cache headers.
    assert!(r.header("vary").is_none() && r.header("cache-control").is_none());
    assert!(b.cookies.is_empty());
}

#[actix_web::test]
async fn other_methods_and_paths() {
    let app = test::init_service(app(memory())).await;
    let mut b = Browser::default();
    for (method, path, allow) in [
        (Method::POST, "/", "GET,HEAD"),
        (Method::PUT, "/settings", "GET,HEAD,POST"),
        (Method::DELETE, "/dashboard", "GET,HEAD"),
        (Method::POST, "/dashboard/messages", "GET,HEAD"),
        (Method::GET, "/notes", "POST"),
        (Method::GET, "/jobs/import", "POST"),
        (Method::POST, "/api/dashboard/messages", "GET,HEAD"),
        (Method::POST, "/views", "GET,HEAD"),
        (Method::OPTIONS, "/static/app.css", "GET,HEAD"),
    ] {
        let r = b
            .send(
                &app,
                TestRequest::default().method(method.clone()).uri(path),
            )
            .await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
        assert!(r.body.is_empty());
    }
    let r = b.get(&app, "/nope").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::NOT_FOUND, ""));

    let r = b.get(&app, "/").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.header("location"), Some("/dashboard"));
    let css = b.get(&app, "/static/app.css").await;
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    assert_eq!(css.header("cache-control"), Some("public, max-age=3600"));
    assert_eq!(css.body, shared::STYLESHEET);
    assert!(css.header("vary").is_none());
    let views: serde_json::Value = serde_json::from_str(&b.get(&app, "/views").await.body).unwrap();
    assert_eq!(views[0]["id"], "messages_example::dashboard");
    assert_eq!(views[0]["file"], "examples/actix-app/src/lib.rs");
    assert!(b.cookies.is_empty(), "nothing read, nothing set");
}

#[actix_web::test]
async fn the_import_job_reports_on_the_dashboard() {
    let app = test::init_service(app(memory())).await;
    let mut b = Browser::default();
    let started = b.send(&app, TestRequest::post().uri("/jobs/import")).await;
    assert_eq!(started.status, StatusCode::SEE_OTHER);
    assert!(
        b.cookies.contains_key("messages_session"),
        "{:?}",
        b.cookies
    );
    assert!(b.get(&app, "/dashboard").await.texts().is_empty());
    actix_web::rt::time::sleep(IMPORT_DELAY * 2).await;
    assert_eq!(
        b.get(&app, "/dashboard").await.texts(),
        [shared::IMPORT_FINISHED]
    );
}

#[actix_web::test]
async fn cookie_storage_has_no_jobs() {
    let config = MessagesConfig::new(CookieStore::new([KEY.as_bytes().to_vec()]).unwrap());
    let app = test::init_service(app(config)).await;
    let mut b = Browser::default();
    b.send(&app, TestRequest::post().uri("/jobs/import")).await;
    assert_eq!(
        b.get(&app, "/dashboard").await.texts(),
        [shared::JOBS_NEED_SERVER_STORE]
    );
}

/// What a test harness does: serve on a bound listener from a plain tokio runtime, speak
/// HTTP/1.1 to it, drop it.
#[tokio::test]
async fn serves_a_listener_from_any_tokio_runtime() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = tokio::spawn(serve(listener, memory()));

    let raw = |request: &'static str| async move {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.unwrap();
        reply
    };
    let css = raw("GET /static/app.css HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await;
    assert!(css.starts_with("HTTP/1.1 200 OK\r\n"), "{css}");
    assert!(css.ends_with(shared::STYLESHEET), "{css}");
    // HEAD: the GET's headers (its length too), no body.
    let head = raw("HEAD /settings HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("content-type: text/html; charset=utf-8\r\n"),
        "{head}"
    );
    assert!(head.ends_with("\r\n\r\n"), "{head}");
    let get = raw("GET /settings HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await;
    let length = |reply: &str| {
        reply
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map(str::to_owned)
    };
    assert_eq!(length(&head), length(&get));
    // axum's 404 to HEAD has no content-length at all.
    let missing = raw("HEAD /nope HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await;
    assert!(
        missing.starts_with("HTTP/1.1 404 Not Found\r\n"),
        "{missing}"
    );
    assert_eq!(length(&missing), None, "{missing}");
    // A body refused or not used is read, so the connection stays open, as with hyper.
    for request in [
        "POST /notes HTTP/1.1\r\nhost: x\r\ncontent-type: text/plain\r\ncontent-length: 3\r\n\r\nabc",
        "POST /jobs/import HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc",
    ] {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut reply = vec![0; 4096];
        let n = stream.read(&mut reply).await.unwrap();
        let reply = String::from_utf8_lossy(&reply[..n]).to_lowercase();
        assert!(!reply.contains("connection: close"), "{reply}");
    }

    serving.abort();
    assert!(serving.await.unwrap_err().is_cancelled());
}
