// A handler compiles beside a module, a type or an import of its own name (the view
// lives in a hidden constant, not under the handler's name); `view_of!` and
// `view = ...` still find it, from here and through module paths. Then they run.
#[path = "../support/mod.rs"]
mod support;

use messages_core::prelude::*;

mod login {
    pub const TITLE: &str = "Log in";
}

#[with_messages]
async fn login() {
    self.add_message(Message::info(login::TITLE));
}

// A type of the handler's name (braced: a unit struct would take the value namespace,
// like any function of that name would clash with it).
#[allow(non_camel_case_types)]
struct show_login {
    title: &'static str,
}

#[with_messages(view = login)]
async fn show_login() -> Vec<String> {
    let _ = show_login { title: "" }.title;
    self.messages().await.iter().map(|m| m.text().to_owned()).collect()
}

// An import of the handler's name.
use std::fmt as format_login;

#[with_messages(view = crate::login)]
async fn format_login() -> usize {
    let _: Option<format_login::Error> = None;
    self.count().await
}

mod pages {
    // The same beside a `use` of a module and a trait, inside a module.
    pub mod account {}
    pub trait Settings {}

    use messages_core::prelude::*;

    #[with_messages]
    pub async fn account() {
        self.add_message(Message::success("account"));
    }

    #[with_messages(view = account)]
    #[allow(non_snake_case)]
    pub(crate) async fn Settings() -> usize {
        self.count().await
    }
}

mod elsewhere {
    use messages_core::prelude::*;

    // Through paths into other modules.
    #[with_messages(view = super::pages::account)]
    pub async fn account_summary() -> usize {
        self.count().await
    }

    pub fn views() -> [&'static View; 2] {
        [view_of!(super::login), view_of!(crate::pages::Settings)]
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let here = module_path!();
    assert_eq!(view_of!(login).id().as_str(), format!("{here}::login"));
    assert_eq!(view_of!(show_login), view_of!(login));
    assert_eq!(view_of!(format_login), view_of!(self::login));
    assert_eq!(view_of!(pages::account).id().as_str(), format!("{here}::pages::account"));
    assert_eq!(view_of!(elsewhere::account_summary), view_of!(pages::account));
    assert_eq!(elsewhere::views(), [view_of!(login), view_of!(pages::account)]);

    let mut ids: Vec<&str> = messages_core::views().iter().map(|v| v.id().as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, [format!("{here}::login"), format!("{here}::pages::account")]);

    let mut browser = support::Browser::new();
    browser.request(login).await;
    assert_eq!(browser.request(format_login).await, 1);
    assert_eq!(browser.request(show_login).await, ["Log in"]);
    browser.request(pages::account).await;
    assert_eq!(browser.request(pages::Settings).await, 1);
    assert_eq!(browser.request(elsewhere::account_summary).await, 1);
}
