use messages_core::prelude::*;

#[with_messages(view = "")]
async fn empty() {}

#[with_messages(view = "has space")]
async fn space() {}

#[with_messages(view = "app::{settings}")]
async fn braces() {}

#[with_messages(view = "café")]
async fn not_ascii() {}

#[with_messages(view = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")]
async fn too_long() {}

fn main() {}
