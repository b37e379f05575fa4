use messages_core::prelude::*;

#[with_messages(view = 5)]
async fn settings() {
    self.discard();
}

fn main() {}
