use axum::response::Redirect;
use messages_core::prelude::*;

// Wrong order: `#[axum::debug_handler]` expands first and checks the function as written,
// before `#[with_messages]` has added its extractor and replaced `self`. Its checks fail,
// and `#[with_messages]` cannot see that it ran. Put `#[with_messages]` above it.
#[axum::debug_handler]
#[with_messages]
async fn settings() -> Redirect {
    self.add_message(Message::success("Saved."));
    Redirect::to("/settings")
}

fn main() {}
