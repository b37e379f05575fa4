// Free handler functions: every argument form, visibilities, other attributes, generic
// functions, and all of them as axum handlers on one router; then each one runs.
#[path = "../support/mod.rs"]
mod support;

use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::Router;
use messages_core::prelude::*;

/// The default view: `module_path!()::settings`.
#[with_messages]
pub async fn settings(headers: HeaderMap, body: String) -> String {
    self.add_message(Message::success(format!("{} bytes, {} headers", body.len(), headers.len())));
    String::new()
}

// GET and POST share one view.
#[with_messages(view = settings)]
async fn show_settings() -> String {
    let list = self.messages().await;
    list.iter().map(|m| m.text().to_owned()).collect()
}

// A stable id that survives refactors.
#[with_messages(view = "dashboard.v1")]
pub(crate) async fn dashboard() {
    self.add_message(Message::warning("from the dashboard"));
}

mod nested {
    use messages_core::prelude::*;

    // Shares a view through a longer path; and is shared in turn.
    #[with_messages(view = crate::dashboard)]
    pub(crate) async fn dashboard_json() -> String {
        self.count().await.to_string()
    }

    #[with_messages(view = super::nested::dashboard_json)]
    pub(super) async fn dashboard_again() -> String {
        self.messages().await.iter().map(|m| m.text().to_owned()).collect()
    }
}

// Other attributes stay on the function; `cfg` applies to the generated items too.
#[doc = "Generic handlers work: the view does not depend on the type parameters."]
#[allow(clippy::unused_async)]
#[cfg(not(any()))]
#[with_messages]
async fn generic<T: Default + ToString>() -> String
where
    T: Send,
{
    T::default().to_string()
}

#[cfg(any())]
#[with_messages]
async fn compiled_out() {}

#[with_messages]
async fn r#async() -> String {
    self.view().to_string()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let _app: Router = Router::new()
        .route("/settings", get(show_settings).post(settings))
        .route("/dashboard", get(dashboard))
        .route("/dashboard.json", get(nested::dashboard_json).post(nested::dashboard_again))
        .route("/generic", get(generic::<u8>))
        .route("/async", post(r#async));

    let here = module_path!();
    assert_eq!(view_of!(settings).id().as_str(), format!("{here}::settings"));
    assert_eq!(view_of!(settings).name(), "settings");
    assert_eq!(view_of!(settings).file(), file!());
    assert_eq!(view_of!(settings).line(), 13);
    assert_eq!(view_of!(show_settings), view_of!(settings));
    assert_eq!(view_of!(dashboard).id().as_str(), "dashboard.v1");
    assert_eq!(view_of!(nested::dashboard_again), view_of!(dashboard));
    assert_eq!(view_of!(generic).id().as_str(), format!("{here}::generic"));
    assert_eq!(view_of!(r#async).id().as_str(), format!("{here}::async"));

    // Registered once each; sharing handlers do not register again.
    let ids: Vec<&str> = messages_core::views().iter().map(|v| v.id().as_str()).collect();
    let expected = ["dashboard.v1".to_owned(), format!("{here}::async"), format!("{here}::generic"), format!("{here}::settings")];
    assert_eq!(ids, expected);
    assert!(messages_core::check_views().is_ok());

    // They run: what one handler adds, the handlers sharing its view read, once.
    let mut browser = support::Browser::new();
    let mut headers = HeaderMap::new();
    headers.insert("x-one", "1".parse().unwrap());
    let empty = browser.request(|m| settings(m, headers, "abc".to_owned())).await;
    assert_eq!(empty, "");
    assert_eq!(browser.request(nested::dashboard_json).await, "0", "another view");
    assert_eq!(browser.request(show_settings).await, "3 bytes, 1 headers");
    assert_eq!(browser.request(show_settings).await, "", "shown once");

    browser.request(dashboard).await;
    assert_eq!(browser.request(nested::dashboard_json).await, "1");
    assert_eq!(browser.request(nested::dashboard_again).await, "from the dashboard");
    assert_eq!(browser.request(nested::dashboard_json).await, "0");

    assert_eq!(browser.request(generic::<u8>).await, "0");
    assert_eq!(browser.request(r#async).await, format!("{here}::async"));
}
