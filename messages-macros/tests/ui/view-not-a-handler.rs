use messages_core::prelude::*;

async fn plain() {}

#[with_messages(view = plain)]
async fn settings() {}

#[with_messages(view = String)]
async fn dashboard() {}

#[with_messages(view = missing)]
async fn account() {}

fn main() {}
