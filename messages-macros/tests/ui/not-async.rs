use messages_core::prelude::*;

#[with_messages]
fn settings() -> String {
    self.add_message(Message::info("sync"));
    String::new()
}

fn main() {}
