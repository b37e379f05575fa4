use messages_core::prelude::*;

#[with_messages]
const async fn settings() {}

fn main() {}
