use messages_core::prelude::*;

#[with_messages]
async fn réglages() {}

fn main() {}
