use messages_core::prelude::*;

#[with_messages]
async fn settings() {
    self.add_mesage(Message::info("typo"));
    let n: String = self.count().await;
}

fn main() {}
