// `view_of!` names a handler's view from anywhere (through paths, after a glob import),
// in constants too; what is added to that view, the handler shows.
#[path = "../support/mod.rs"]
mod support;

use messages_core::prelude::*;

mod handlers {
    use messages_core::prelude::*;

    #[with_messages(view = "app.settings")]
    pub async fn settings() -> Vec<String> {
        self.messages().await.iter().map(|m| m.text().to_owned()).collect()
    }

    pub mod admin {
        use messages_core::prelude::*;

        #[with_messages(view = super::settings)]
        pub async fn settings_admin() {
            self.add_message(Message::info("from admin"));
        }

        pub fn parent() -> &'static View {
            view_of!(super::settings)
        }
    }
}

// A glob import brings the views along.
mod glob {
    use super::handlers::admin::*;
    use messages_core::prelude::*;

    pub const ADMIN: &View = view_of!(settings_admin);
}

const SETTINGS: &View = view_of!(handlers::settings);

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(SETTINGS.id().as_str(), "app.settings");
    assert_eq!(view_of!(crate::handlers::admin::settings_admin), SETTINGS);
    assert_eq!(handlers::admin::parent(), SETTINGS);
    assert_eq!(glob::ADMIN, SETTINGS);
    let _for_a_store: &ViewId = view_of!(handlers::settings).id();

    let mut browser = support::Browser::new();
    browser.request(handlers::admin::settings_admin).await;
    // By the view alone, as a job would.
    browser.request(|m| async move { m.context(SETTINGS).add_message(Message::info("by view_of!")) }).await;
    assert_eq!(browser.request(handlers::settings).await, ["from admin", "by view_of!"]);
}
