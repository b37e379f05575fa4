// `#[with_messages]` with other attribute macros on one handler. `#[axum::debug_handler]`
// goes below it: it then checks the handler as axum will call it (hidden extractor first,
// `self` already the context). `#[tracing::instrument]` works in either order; above
// `#[with_messages]` its span records only the handler's own arguments.
#[path = "../support/mod.rs"]
mod support;

use axum::routing::{get, post};
use axum::Router;
use messages_core::prelude::*;

#[with_messages]
#[axum::debug_handler]
async fn checked(body: String) -> String {
    self.add_message(Message::info(body));
    self.count().await.to_string()
}

#[tracing::instrument]
#[with_messages(view = checked)]
async fn traced(page: u32) -> String {
    tracing::info!("reading");
    let list = self.messages().await;
    list.iter().map(|m| format!("{page}: {}", m.text())).collect()
}

#[with_messages(view = checked)]
#[tracing::instrument(skip_all)]
async fn traced_inside() -> String {
    self.count().await.to_string()
}

#[tracing::instrument(level = "debug")]
#[with_messages]
#[axum::debug_handler]
async fn all_three() {
    self.discard();
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let _app: Router = Router::new()
        .route("/", post(checked).get(all_three))
        .route("/traced", get(|m| traced(m, 1)))
        .route("/inside", get(traced_inside));

    let mut browser = support::Browser::new();
    assert_eq!(browser.request(|m| checked(m, "saved".to_owned())).await, "1");
    assert_eq!(browser.request(traced_inside).await, "1");
    assert_eq!(browser.request(|m| traced(m, 2)).await, "2: saved");
    assert_eq!(browser.request(traced_inside).await, "0");
    browser.request(all_three).await;
    assert_eq!(view_of!(all_three).id().as_str(), format!("{}::all_three", module_path!()));
}
