// Methods with a real receiver: `self` stays the receiver; the `Messages` (or
// `RequestMessages`) parameter becomes the view's `Context`.
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use messages_core::axum::Messages;
use messages_core::prelude::*;

#[with_messages]
async fn free() {}

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
    async fn account(self: Arc<Self>, mut messages: messages_core::axum::Messages) {
        let _: &Context = &messages;
        messages = messages.clone();
        messages.discard();
    }

    #[with_messages(view = free)]
    async fn shared(&self, _id: u32, messages: &RequestMessages) -> usize {
        messages.peek().await.len()
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

fn main() {
    let pages = Arc::new(Pages { greeting: "hi".into() });
    let (p1, p2) = (pages.clone(), pages.clone());
    let _app: Router = Router::new()
        .route("/", get(move |m: Messages| async move { p1.home(m).await }))
        .route("/account", get(move |m: Messages| async move { p2.clone().account(m).await }));
    let _ = Pages::shared;
    let _ = Generic::<u8>::get::<u16>;
}
