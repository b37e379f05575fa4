use messages_core::Messages;
use messages_core::prelude::*;

struct Pages;

impl Pages {
    #[with_messages]
    async fn home(&self, _: Messages) {}
}

fn main() {}
