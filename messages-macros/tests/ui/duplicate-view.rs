use messages_core::prelude::*;

#[with_messages(view = "a", view = "b")]
async fn settings() {}

fn main() {}
