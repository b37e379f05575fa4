use messages_core::prelude::*;

async fn plain() {}

fn main() {
    let _ = view_of!(plain);
    let _ = view_of!(String);
}
