//! `#[with_messages]` at run time: the view registry it fills, and annotated handlers
//! served over real HTTP by an axum `Router` with the messages layer (`self.add_message`,
//! `self.messages().await`, shared views, a receiver method, `view_of!` for out-of-band
//! messages).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use messages_core::prelude::*;
use messages_core::{Messages, axum::MessagesLayer};
use messages_tests::http::TestServer;
use tower::ServiceExt;

mod pages {
    use std::collections::HashMap;
    use std::fmt::Write;

    use axum::Form;
    use axum::response::Redirect;
    use messages_core::prelude::*;

    /// The line of `save_settings`' name, for the registry's `line`.
    pub(crate) const SAVE_SETTINGS_LINE: u32 = line!() + 3;

    #[with_messages]
    pub(crate) async fn save_settings(Form(form): Form<HashMap<String, String>>) -> Redirect {
        let name = form.get("name").map_or("nobody", String::as_str);
        self.add_message(Message::success(format!("Settings saved for {name}.")));
        Redirect::to("/settings")
    }

    /// GET and POST share one view: `save_settings`' messages are shown here.
    #[with_messages(view = save_settings)]
    pub(crate) async fn show_settings() -> String {
        render(&self.messages().await)
    }

    #[with_messages(view = "app.dashboard")]
    pub(crate) async fn dashboard() -> String {
        // Rewritten inside macros too.
        format!("{} {}", self.view(), render(&self.messages().await))
    }

    pub(crate) fn render(list: &MessageList) -> String {
        let mut out = String::new();
        for m in list {
            writeln!(out, "[{}] {}", m.level(), m.text()).unwrap();
        }
        out
    }
}

mod api {
    use messages_core::Messages;
    use messages_core::prelude::*;

    pub(crate) struct Status {
        pub(crate) greeting: &'static str,
    }

    impl Status {
        /// A method: `self` is the receiver, `messages` the view's context.
        #[with_messages]
        pub(crate) async fn status(&self, messages: Messages) -> String {
            messages.add_message(Message::info(self.greeting));
            messages.count().await.to_string()
        }
    }
}

/// The handlers' routes, without the messages layer.
fn routes() -> Router {
    let status = Arc::new(api::Status { greeting: "hello" });
    Router::new()
        .route(
            "/settings",
            get(pages::show_settings).post(pages::save_settings),
        )
        .route("/dashboard", get(pages::dashboard))
        .route(
            "/status",
            get(move |m: Messages| async move { status.status(m).await }),
        )
}

async fn serve(config: &MessagesConfig) -> TestServer {
    TestServer::start(routes().layer(MessagesLayer::new(config.clone()))).await
}

#[test]
fn views_lists_each_declaration_once() {
    let views = messages_core::views();
    let ids: Vec<&str> = views.iter().map(|v| v.id().as_str()).collect();
    // Sorted by id; `show_settings` shares `save_settings`' view and is not listed.
    assert_eq!(
        ids,
        [
            "app.dashboard",
            "registry::api::status",
            "registry::pages::save_settings"
        ]
    );

    let save = views[2];
    assert_eq!(save.name(), "save_settings");
    assert_eq!(save.file(), file!());
    assert_eq!(save.line(), pages::SAVE_SETTINGS_LINE);
    assert_eq!(views[0].name(), "dashboard");
    assert_eq!(views[1].name(), "status");

    assert_eq!(view_of!(pages::save_settings), save);
    assert_eq!(view_of!(pages::show_settings), save);
    assert!(messages_core::check_views().is_ok());
}

#[tokio::test]
async fn handlers_add_and_show_messages_over_http() {
    let store = Arc::new(MemoryStore::new());
    let config = MessagesConfig::new(store.clone());
    let server = serve(&config).await;
    let mut browser = server.client();

    // POST adds, 303; the session cookie is set because something was stored.
    let posted = browser.post_form("/settings", &[("name", "Ada")]).await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER);
    let session: SessionKey = browser
        .cookie(&config.cookies().session_name)
        .expect("a session cookie for the stored message")
        .parse()
        .unwrap();
    assert_eq!(
        store
            .count(&session, view_of!(pages::save_settings).id())
            .await
            .unwrap(),
        1
    );

    // Another view never shows it.
    assert_eq!(browser.get("/dashboard").await.body, "app.dashboard ");

    // The shared view shows it, once.
    let page = browser.get("/settings").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.body, "[success] Settings saved for Ada.\n");
    assert_eq!(browser.get("/settings").await.body, "");

    // Out of band, named with `view_of!`: shown on the next visit of that view.
    let add_out_of_band = |view: &'static View, text: &'static str| {
        let (store, session) = (store.clone(), session.clone());
        async move { store.add(&session, view.id(), Message::info(text)).await }
    };
    add_out_of_band(view_of!(pages::show_settings), "Import finished")
        .await
        .unwrap();
    assert_eq!(
        browser.get("/settings").await.body,
        "[info] Import finished\n"
    );

    // Another browser sees none of the first one's messages.
    add_out_of_band(view_of!(pages::save_settings), "for the first browser")
        .await
        .unwrap();
    assert_eq!(server.client().get("/settings").await.body, "");
}

#[tokio::test]
async fn a_receiver_method_gets_its_own_view() {
    let config = MessagesConfig::new(MemoryStore::new());
    let server = serve(&config).await;
    let mut browser = server.client();
    // The message added in this request is counted by this request, then kept.
    assert_eq!(browser.get("/status").await.body, "1");
    assert_eq!(browser.get("/status").await.body, "2");
    assert_eq!(browser.get("/dashboard").await.body, "app.dashboard ");
}

#[tokio::test]
async fn without_the_layer_a_handler_answers_500_naming_it() {
    let req = Request::get("/settings").body(Body::empty()).unwrap();
    let res = routes().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = axum::body::to_bytes(res.into_body(), 1 << 16)
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&body).contains("MessagesLayer"),
        "{body:?}"
    );
}
