use messages_core::prelude::*;

// The signature is enough to expand: only the syntax error is reported, not `self`.
#[with_messages]
async fn settings() -> usize {
    self.add_message(Message::info("saved"));
    let n = ;
    self.count().await
}

fn main() {}
