//! `check_views()` finds two handlers that claim one view id — the copied
//! `#[with_messages(view = "...")]` line. A test binary of its own, so the registry of
//! `registry.rs` stays clean.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::Router;
use axum::routing::get;
use messages_core::prelude::*;

mod account {
    use messages_core::prelude::*;

    pub(crate) const LINE: u32 = line!() + 3;

    #[with_messages(view = "app.settings")]
    pub(crate) async fn account_settings() -> String {
        self.count().await.to_string()
    }
}

mod profile {
    use messages_core::prelude::*;

    pub(crate) const LINE: u32 = line!() + 3;

    #[with_messages(view = "app.settings")]
    pub(crate) async fn profile_settings() -> String {
        self.count().await.to_string()
    }

    // Sharing is not claiming: no third declaration.
    #[with_messages(view = profile_settings)]
    pub(crate) async fn profile_form() -> String {
        self.count().await.to_string()
    }
}

#[test]
fn two_declarations_of_one_id_are_reported() {
    let views = messages_core::views();
    assert_eq!(views.len(), 2, "{views:?}");
    assert!(views.iter().all(|v| v.id().as_str() == "app.settings"));

    let dups = messages_core::check_views().unwrap_err();
    assert_eq!(dups.len(), 1);
    assert_eq!(dups[0].id.as_str(), "app.settings");
    let file = file!();
    assert_eq!(
        dups[0].places,
        [
            format!("{file}:{} (account_settings)", account::LINE),
            format!("{file}:{} (profile_settings)", profile::LINE),
        ]
    );
    assert_eq!(
        view_of!(profile::profile_form),
        view_of!(profile::profile_settings)
    );
    assert_ne!(
        view_of!(account::account_settings),
        view_of!(profile::profile_settings)
    );
    // They are handlers all the same.
    let _app: Router = Router::new()
        .route("/account", get(account::account_settings))
        .route(
            "/profile",
            get(profile::profile_form).post(profile::profile_settings),
        );
}
