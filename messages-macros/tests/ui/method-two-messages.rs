use messages_core::Messages;
use messages_core::prelude::*;

struct Pages;

impl Pages {
    #[with_messages]
    async fn home(&self, first: Messages, second: &Messages) {
        first.discard();
    }
}

fn main() {}
