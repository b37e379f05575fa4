// The default view id is `module::path::function_name`: core's `ViewId` rules refuse a
// non-ASCII name (or module), at the function's name; `view = "..."` is the way out.
use messages_core::prelude::*;

#[with_messages]
async fn réglages() {}

mod modèles {
    use messages_core::prelude::*;

    #[with_messages]
    pub async fn list() {}
}

struct Pages;

impl Pages {
    #[with_messages]
    async fn café(&self, messages: Messages) {
        messages.discard();
    }
}

fn main() {}
