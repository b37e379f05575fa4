use messages_core::prelude::*;

#[with_messages]
struct Settings;

fn main() {
    let _ = Settings;
}
