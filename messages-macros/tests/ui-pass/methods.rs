// Methods with a real receiver: `self` stays the receiver; the `Messages` (or `&Messages`)
// parameter becomes the view's `ViewMessages`. Associated functions without a receiver are
// handlers like free functions (`self` is the view's `ViewMessages`). Then each one runs.
#[path = "../support/mod.rs"]
mod support;

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use messages_core::Messages;
use messages_core::prelude::*;

#[with_messages]
async fn free() -> Vec<String> {
    self.messages().await.iter().map(|m| m.text().to_owned()).collect()
}

struct Pages {
    greeting: String,
}

impl Pages {
    #[with_messages]
    async fn home(&self, messages: Messages) -> String {
        messages.add_message(Message::info(self.greeting.clone()));
        messages.count().await.to_string()
    }

    #[with_messages(view = "pages.account")]
    async fn account(self: Arc<Self>, mut messages: messages_core::Messages) {
        let _: &ViewMessages = &messages;
        messages = messages.clone();
        messages.discard();
    }

    #[with_messages(view = free)]
    async fn shared(&self, _id: u32, messages: &Messages) -> usize {
        messages.peek().await.len()
    }

    // No receiver: a handler like a free function, named by `Type::function`.
    #[with_messages(view = "pages.list")]
    pub async fn list(page: u32) {
        self.add_message(Message::info(format!("page {page}")));
    }

    #[with_messages(view = Self::list)]
    async fn list_again() -> String {
        self.messages().await.iter().map(|m| m.text().to_owned()).collect()
    }
}

struct Generic<T>(T);

impl<T: Send + Sync> Generic<T> {
    #[with_messages]
    async fn get<U>(&self, _u: U, messages: &Messages) {
        let _ = &self.0;
        messages.add_message(Message::info("generic"));
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let pages = Arc::new(Pages { greeting: "hi".into() });
    let (p1, p2) = (pages.clone(), pages.clone());
    let _app: Router = Router::new()
        .route("/", get(move |m: Messages| async move { p1.home(m).await }))
        .route("/account", get(move |m: Messages| async move { p2.clone().account(m).await }))
        .route("/list/{page}", get(|m: Messages| async move { Pages::list(m, 1).await }))
        .route("/list", get(Pages::list_again));
    assert_eq!(view_of!(Pages::list).id().as_str(), "pages.list");
    assert_eq!(view_of!(Pages::list_again), view_of!(Pages::list));

    let mut browser = support::Browser::new();
    // `home`'s view is its own, registered from its body.
    assert_eq!(browser.request(|m| pages.home(m)).await, "1");
    assert_eq!(browser.request(|m| pages.home(m)).await, "2", "the first was not read");
    let here = module_path!();
    let home = messages_core::views().into_iter().find(|v| v.name() == "home").unwrap();
    assert_eq!(home.id().as_str(), format!("{here}::home"));

    // `shared` peeks at `free`'s view; `account` discards its own.
    browser
        .request(|m| async move { m.context(view_of!(free)).add_message(Message::info("for free")) })
        .await;
    let shared = |m: Messages| {
        let pages = pages.clone();
        async move { pages.shared(7, &m).await }
    };
    assert_eq!(browser.request(&shared).await, 1);
    assert_eq!(browser.request(&shared).await, 1, "peeked only");
    assert_eq!(browser.request(free).await, ["for free"]);
    browser
        .request(|m| async move { m.context(ViewId::new("pages.account").unwrap()).add_message(Message::info("x")) })
        .await;
    browser.request(|m| pages.clone().account(m)).await;
    let left = browser
        .request(|m| async move { m.context(ViewId::new("pages.account").unwrap()).count().await })
        .await;
    assert_eq!(left, 0, "discarded");

    // Associated functions without a receiver share through `Self::`.
    browser.request(|m| Pages::list(m, 3)).await;
    assert_eq!(browser.request(Pages::list_again).await, "page 3");

    browser.request(|m| async move { Generic(1u8).get(2u16, &m).await }).await;
    let generic = messages_core::views().into_iter().find(|v| v.name() == "get").unwrap();
    assert_eq!(browser.request(|m| async move { m.context(generic).count().await }).await, 1);
}
