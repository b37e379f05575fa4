//! The reusable component (`messages_tests::reusable`, framework-free) called from an
//! axum handler and from an actix-web handler: two small apps built here, behind
//! `MessagesLayer` and `MessagesMiddleware`, with the same two routes —
//!
//! - `POST /import` (form field `rows`): `record_import`, answers the count it returns;
//! - `GET /imports`: `recent`, one line per report —
//!
//! and one scenario that both must pass, with the same answers. A browser's reports are
//! also read through the other framework's app on the same store: the component's
//! messages mean the same to either.
//!
//! Included by `tests/http.rs` (which links both frameworks already), not a test binary
//! of its own.

use std::net::TcpListener;

use ::actix_web::dev::Server;
use ::actix_web::{App, HttpResponse, HttpServer, web};
use ::axum::extract::Form;
use ::axum::http::StatusCode;
use ::axum::routing::{get, post};
use messages_core::actix::MessagesMiddleware;
use messages_core::axum::MessagesLayer;
use messages_core::{MemoryStore, Messages, MessagesConfig};
use messages_tests::http::{HttpClient, TestServer};
use messages_tests::reusable::{recent, record_import};
use serde::Deserialize;

/// The form of `POST /import`.
#[derive(Debug, Deserialize)]
struct Import {
    rows: usize,
}

/// The component on axum: plain handlers taking `Messages`.
fn axum_app(config: MessagesConfig) -> ::axum::Router {
    ::axum::Router::new()
        .route(
            "/import",
            post(|m: Messages, Form(f): Form<Import>| async move {
                record_import(&m, f.rows).await.to_string()
            }),
        )
        .route(
            "/imports",
            get(|m: Messages| async move { recent(&m).await.join("\n") }),
        )
        .layer(MessagesLayer::new(config))
}

/// The component on actix-web: the same handlers, actix-web's extractors and responses.
/// (Built outside the serving future, which must be `Send`: `HttpServer` is not.)
fn actix_server(listener: TcpListener, config: MessagesConfig) -> std::io::Result<Server> {
    Ok(HttpServer::new(move || {
        App::new()
            .wrap(MessagesMiddleware::new(config.clone()))
            .route(
                "/import",
                web::post().to(|m: Messages, f: web::Form<Import>| async move {
                    HttpResponse::Ok().body(record_import(&m, f.rows).await.to_string())
                }),
            )
            .route(
                "/imports",
                web::get().to(|m: Messages| async move {
                    HttpResponse::Ok().body(recent(&m).await.join("\n"))
                }),
            )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run())
}

/// The app of `framework` (`axum` or `actix`) on `config`.
async fn serve(framework: &str, config: MessagesConfig) -> TestServer {
    match framework {
        "axum" => TestServer::axum(axum_app(config)).await,
        "actix" => {
            TestServer::serve(|listener| async move { actix_server(listener, config)?.await }).await
        }
        other => panic!("no framework {other}"),
    }
}

/// `POST /import` with `rows`: the count answered.
async fn import(b: &mut HttpClient, rows: &str) -> String {
    let reply = b.post_form("/import", &[("rows", rows)]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(
        reply.all("vary").iter().any(|v| v == "Cookie"),
        "{:?}",
        reply.headers
    );
    reply.body
}

/// What both frameworks must show: counts without consuming, reports once, in order,
/// to their own browser only, with the cache headers of a touched response.
async fn the_component_reports_once_in_order(framework: &str) {
    let server = serve(framework, MessagesConfig::new(MemoryStore::new())).await;
    let (mut b, mut other) = (server.client(), server.client());
    assert_eq!(import(&mut b, "3").await, "1");
    assert!(
        b.cookie("messages_session").is_some(),
        "[{framework}] the first report starts a session"
    );
    assert_eq!(
        import(&mut b, "0").await,
        "2",
        "[{framework}] counted, kept"
    );
    assert_eq!(import(&mut b, "1").await, "3");

    assert_eq!(other.get("/imports").await.body, "", "[{framework}]");
    let shown = b.get("/imports").await;
    assert_eq!(shown.status, StatusCode::OK);
    assert_eq!(
        shown.body,
        "success: Imported 3 rows.\nwarning: The file held no rows.\nsuccess: Imported 1 row.",
        "[{framework}]"
    );
    assert_eq!(shown.all("vary"), ["Cookie"], "[{framework}]");
    assert_eq!(shown.header("cache-control"), Some("private"));
    assert_eq!(b.get("/imports").await.body, "", "[{framework}] shown once");
    assert_eq!(import(&mut b, "2").await, "1", "[{framework}]");
    assert_eq!(b.get("/imports").await.body, "success: Imported 2 rows.");
    // A bad form is the framework's refusal, and records nothing.
    let refused = b.post_form("/import", &[("rows", "many")]).await;
    assert!(
        refused.status.is_client_error(),
        "[{framework}] {refused:?}"
    );
    assert_eq!(b.get("/imports").await.body, "", "[{framework}]");
}

#[tokio::test]
async fn through_axum() {
    the_component_reports_once_in_order("axum").await;
}

#[tokio::test]
async fn through_actix() {
    the_component_reports_once_in_order("actix").await;
}

/// One store behind both apps (one domain, two frameworks): what the component recorded
/// through one is shown through the other, once.
#[tokio::test]
async fn recorded_through_one_framework_shown_through_the_other() {
    let config = MessagesConfig::new(MemoryStore::new());
    let axum = serve("axum", config.clone()).await;
    let actix = serve("actix", config).await;
    let mut via_axum = axum.client();
    assert_eq!(import(&mut via_axum, "5").await, "1");
    let mut via_actix = actix.client();
    via_actix.cookies = via_axum.cookies.clone();
    assert_eq!(import(&mut via_actix, "0").await, "2");
    assert_eq!(
        via_actix.get("/imports").await.body,
        "success: Imported 5 rows.\nwarning: The file held no rows."
    );
    via_axum.cookies = via_actix.cookies.clone();
    assert_eq!(via_axum.get("/imports").await.body, "");
}
