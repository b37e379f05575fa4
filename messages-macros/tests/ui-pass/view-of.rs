// `view_of!` names a handler's view from anywhere, in constants too.
use messages_core::prelude::*;

mod handlers {
    use messages_core::prelude::*;

    #[with_messages(view = "app.settings")]
    pub async fn settings() {}

    pub mod admin {
        use messages_core::prelude::*;

        #[with_messages(view = super::settings)]
        pub async fn settings_admin() {}

        pub fn parent() -> &'static View {
            view_of!(super::settings)
        }
    }
}

const SETTINGS: &View = view_of!(handlers::settings);

fn main() {
    assert_eq!(SETTINGS.id().as_str(), "app.settings");
    assert_eq!(view_of!(crate::handlers::admin::settings_admin), SETTINGS);
    assert_eq!(handlers::admin::parent(), SETTINGS);
    let _for_a_store: &ViewId = view_of!(handlers::settings).id();
}
