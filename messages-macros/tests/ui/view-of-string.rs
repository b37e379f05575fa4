use messages_core::prelude::*;

fn main() {
    let _ = view_of!("app::settings");
    let _ = view_of!();
    let _ = view_of!(a::b, c);
}
