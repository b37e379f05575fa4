// What `self` means inside a free handler: the view's `ViewMessages` in expressions, closures,
// async blocks and macro invocations; not in paths, `Self`, or nested items. Then it runs.
// The `impl` inside the handler is deliberate: nested items keep their own `self`.
#![allow(non_local_definitions)]
#[path = "../support/mod.rs"]
mod support;

use messages_core::prelude::*;

fn helper() -> Message {
    Message::info("from self::helper")
}

struct Counter(usize);

impl Counter {
    fn get(&self) -> usize {
        self.0
    }
}

#[with_messages]
async fn rewritten(__messages: u8) -> Vec<String> {
    #![allow(clippy::useless_vec)]

    // Paths and nested items keep their own meaning.
    self.add_message(self::helper());
    fn nested(c: &Counter) -> usize {
        c.get()
    }
    impl Counter {
        fn twice(&self) -> Self {
            Self(self.0 * 2)
        }
    }
    let counter = Counter(nested(&Counter(1))).twice();

    // Closures, async blocks, macros, plain values.
    let add = |text: &str| self.add_message(Message::info(text));
    add("from a closure");
    let ctx: ViewMessages = self.clone();
    let task = async move { ctx.count().await };
    let counted = task.await;
    let texts = vec![format!("{} {}", self.count().await, self.view()), format!("{counted} {}", counter.0)];
    assert!(self.view().as_str().ends_with("::rewritten"), "{}", self.view());

    // The hidden names are hygienic: these neither clash nor shadow.
    let __messages_ctx = __messages;
    self.add_message(Message::info(format!("{__messages_ctx}")));
    texts
}

#[with_messages(view = rewritten)]
async fn read() -> Vec<String> {
    self.messages().await.iter().map(|m| m.text().to_owned()).collect()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut browser = support::Browser::new();
    let texts = browser.request(|m| rewritten(m, 7)).await;
    let here = module_path!();
    assert_eq!(texts, [format!("2 {here}::rewritten"), "2 2".to_owned()]);
    assert_eq!(browser.request(read).await, ["from self::helper", "from a closure", "7"]);
    assert!(browser.request(read).await.is_empty());
}
