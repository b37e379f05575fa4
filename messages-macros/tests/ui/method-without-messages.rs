use messages_core::prelude::*;

struct Pages;

impl Pages {
    #[with_messages]
    async fn home(&self) {}
}

fn main() {}
