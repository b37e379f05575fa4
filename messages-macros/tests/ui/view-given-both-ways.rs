use messages_core::prelude::*;

#[with_messages]
async fn dashboard() {}

#[with_messages(view = "settings", view = dashboard)]
async fn settings() {}

fn main() {}
