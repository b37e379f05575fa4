use messages_core::prelude::*;

#[with_messages(view)]
async fn settings() {}

#[with_messages(view =)]
async fn dashboard() {}

fn main() {}
