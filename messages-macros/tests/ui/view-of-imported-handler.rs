use messages_core::prelude::*;

mod handlers {
    use messages_core::prelude::*;

    #[with_messages]
    pub async fn settings() {}
}

// A `use` of the handler alone does not bring its view along: name it by its path,
// `view_of!(handlers::settings)` (or glob-import the module).
use handlers::settings;

fn main() {
    let _ = settings;
    let _ = view_of!(settings);
}
