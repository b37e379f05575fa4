use messages_core::prelude::*;

#[with_messages(views = "settings")]
async fn settings() {
    self.discard();
}

fn main() {}
