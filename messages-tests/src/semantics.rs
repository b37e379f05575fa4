//! The request semantics, written once and run for every storage (memory, cookie,
//! fallback, Redis, ...): what a browser sees across requests through
//! [`MessagesConfig::begin`] → [`Messages::context`](messages_core::Messages::context) →
//! [`commit`](messages_core::Messages::commit), its cookies carried between requests by a
//! [`Browser`]. Django's test list adapted, plus the view binding and the rendered-list
//! cases only a view-bound design has.
//!
//! [`request_semantics_tests!`](crate::request_semantics_tests) makes one test per case
//! for a storage:
//!
//! ```no_run
//! use messages_core::{MemoryStore, MessagesConfig};
//!
//! // Tests `memory::post_redirect_get_shows_each_level_once`, ...
//! messages_tests::request_semantics_tests!(memory, || async {
//!     MessagesConfig::new(MemoryStore::new())
//! });
//! # fn main() {}
//! ```
//!
//! Every case holds for every storage, whatever it keeps messages in: a case whose
//! outcome depends on the storage says so (a messages cookie set beside the session
//! cookie, the server store emptied at logout) and checks each storage's own outcome
//! exactly. What holds only for server stores (exactly once across concurrent requests,
//! store call counts, out-of-band delivery) is in `tests/context.rs`; what is particular
//! to the cookie in `tests/cookie_store.rs` and `tests/fallback_store.rs`.
//!
//! Each case starts new browsers, so new sessions: the storage may hold other data (a
//! Redis server shared by the tests of a binary).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::missing_panics_doc
)]

use messages_core::{Level, Message, MessagesConfig, SessionKey, ViewId};

use crate::{Browser, shown_texts};

const SETTINGS: ViewId = ViewId::from_static("app::settings");
const DASHBOARD: ViewId = ViewId::from_static("app::dashboard");
const SESSION_COOKIE: &str = "messages_session";

fn texts(list: impl IntoIterator<Item = Message>) -> Vec<String> {
    list.into_iter().map(|m| m.text().to_owned()).collect()
}

/// The `Set-Cookie` values that set or remove the cookie `name`.
fn setting<'a>(set_cookie: &'a [String], name: &str) -> Vec<&'a str> {
    set_cookie
        .iter()
        .filter(|c| c.split_once('=').is_some_and(|(n, _)| n.trim() == name))
        .map(String::as_str)
        .collect()
}

/// What a storage setup gives [`request_semantics_tests!`](crate::request_semantics_tests):
/// a configuration, or `None` to skip the cases (a backend not installed here).
pub trait IntoConfig {
    /// The configuration, if the storage is available.
    fn into_config(self) -> Option<MessagesConfig>;
}

impl IntoConfig for MessagesConfig {
    fn into_config(self) -> Option<MessagesConfig> {
        Some(self)
    }
}

impl IntoConfig for Option<MessagesConfig> {
    fn into_config(self) -> Option<MessagesConfig> {
        self
    }
}

/// One test per case of the request semantics, in a module `$name`.
///
/// `$make` is an async function (or a closure returning a future) of no arguments that
/// returns a [`MessagesConfig`], or an `Option` of one (`None` skips the cases: a
/// backend not installed here). Each test runs on its own tokio runtime and calls
/// `$make` once; paths in it are resolved in the calling module (the module made has
/// `use super::*`). A new case is a `pub async fn` of
/// [`semantics`](crate::semantics) taking the configuration, and its name in the list
/// below.
#[macro_export]
macro_rules! request_semantics_tests {
    ($name:ident, $make:expr $(,)?) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            /// The configuration of one case, or `None` to skip it.
            async fn config_for_case()
            -> ::std::option::Option<$crate::__private::messages_core::MessagesConfig> {
                $crate::semantics::IntoConfig::into_config(($make)().await)
            }

            $crate::__request_semantics_cases!(
                post_redirect_get_shows_each_level_once,
                bound_to_its_view_and_session,
                an_anonymous_visitor_gets_a_session_only_when_something_is_stored,
                several_posts_before_one_get_keep_order,
                loading_is_not_consuming,
                a_failed_response_loses_nothing,
                reading_twice_in_one_request_returns_the_same,
                existing_then_add_then_read_stores_nothing,
                adds_after_a_read_persist,
                minimum_level_thresholds,
                end_session_clears_every_context_and_starts_fresh,
                discard_drops_stored_and_queued,
                a_garbage_session_cookie_is_replaced_not_an_error,
                a_garbage_session_cookie_beside_a_valid_one_neither_hides_nor_removes_it,
                an_add_after_rendering_survives_a_later_unrendered_load,
                only_the_messages_a_rendered_list_held_are_consumed,
                order_is_arrival_order_whatever_the_clocks_say,
            );
        }
    };
}

/// The tests of [`request_semantics_tests!`]: one per case.
#[doc(hidden)]
#[macro_export]
macro_rules! __request_semantics_cases {
    ($($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let Some(config) = config_for_case().await else {
                    return;
                };
                $crate::semantics::$case(config).await;
            }
        )*
    };
}

/// Post, redirect, get: each level is shown once, on the GET after the redirect.
pub async fn post_redirect_get_shows_each_level_once(config: MessagesConfig) {
    let config = config.min_level(Level::DEBUG);
    for level in Level::STANDARD {
        let mut b = Browser::new();
        let req = b.begin(&config);
        req.context(&SETTINGS)
            .add_message(Message::new(level, "done"));
        b.finish(&req, true).await;
        let req = b.begin(&config);
        let shown = req.context(&SETTINGS).messages().await.into_vec();
        assert_eq!(shown.len(), 1);
        assert_eq!(shown[0].level(), level);
        b.finish(&req, true).await;
        assert!(
            b.read(&config, &SETTINGS).await.is_empty(),
            "second GET is empty"
        );
    }
}

/// A message is shown only in the view and the session (browser) it was added to.
pub async fn bound_to_its_view_and_session(config: MessagesConfig) {
    let (mut alice, mut bob) = (Browser::new(), Browser::new());
    alice.add(&config, &SETTINGS, &["for alice settings"]).await;
    bob.add(&config, &SETTINGS, &["for bob settings"]).await;
    assert!(
        alice.read(&config, &DASHBOARD).await.is_empty(),
        "dashboard never shows a settings message"
    );
    assert_eq!(bob.read(&config, &SETTINGS).await, ["for bob settings"]);
    assert_eq!(alice.read(&config, &SETTINGS).await, ["for alice settings"]);
}

/// A visitor without a session gets one (a session cookie, `HttpOnly`, `SameSite=Lax`,
/// `Path=/`) only when something is stored for it, and only once.
pub async fn an_anonymous_visitor_gets_a_session_only_when_something_is_stored(
    config: MessagesConfig,
) {
    // With a cookie part, a response that stores messages also sets the messages cookie.
    let with_cookie = config.storage().cookie().is_some();
    let mut b = Browser::new();
    let req = b.begin(&config);
    assert!(req.context(&SETTINGS).messages().await.is_empty());
    let done = b.finish(&req, true).await;
    assert!(done.set_cookie.is_empty(), "reading nothing sets no cookie");
    assert!(done.touched);
    let req = b.begin(&config);
    req.context(&SETTINGS).add_message(Message::info("hi"));
    let done = b.finish(&req, true).await;
    assert_eq!(
        done.set_cookie.len(),
        1 + usize::from(with_cookie),
        "{:?}",
        done.set_cookie
    );
    assert!(done.set_cookie[0].starts_with("messages_session="));
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(done.set_cookie[0].contains(attr), "{}", done.set_cookie[0]);
    }
    // An existing session is not set again.
    b.add(&config, &SETTINGS, &["again"]).await;
    let req = b.begin(&config);
    req.context(&SETTINGS).add_message(Message::info("third"));
    let done = b.finish(&req, true).await;
    assert!(
        setting(&done.set_cookie, SESSION_COOKIE).is_empty(),
        "{:?}",
        done.set_cookie
    );
    if !with_cookie {
        assert!(done.set_cookie.is_empty(), "{:?}", done.set_cookie);
    }
}

/// Several posts before one get: shown together, in the order they were posted.
pub async fn several_posts_before_one_get_keep_order(config: MessagesConfig) {
    let mut b = Browser::new();
    for t in ["one", "two", "three"] {
        b.add(&config, &SETTINGS, &[t]).await;
    }
    assert_eq!(b.read(&config, &SETTINGS).await, ["one", "two", "three"]);
}

/// A list loaded but never iterated, a peek and a count consume nothing.
pub async fn loading_is_not_consuming(config: MessagesConfig) {
    let mut b = Browser::new();
    b.add(&config, &SETTINGS, &["keep me"]).await;
    // Loaded, len() asked, never iterated: still there.
    let req = b.begin(&config);
    let list = req.context(&SETTINGS).messages().await;
    assert_eq!(list.len(), 1);
    b.finish(&req, true).await;
    // Peek and count: still there.
    let req = b.begin(&config);
    assert_eq!(req.context(&SETTINGS).count().await, 1);
    assert_eq!(texts(req.context(&SETTINGS).peek().await), ["keep me"]);
    b.finish(&req, true).await;
    assert_eq!(b.read(&config, &SETTINGS).await, ["keep me"]);
}

/// A failed response (a 5xx) keeps what it read for the next request.
pub async fn a_failed_response_loses_nothing(config: MessagesConfig) {
    let mut b = Browser::new();
    b.add(&config, &SETTINGS, &["survives a 500"]).await;
    let req = b.begin(&config);
    assert_eq!(
        texts(req.context(&SETTINGS).messages().await),
        ["survives a 500"]
    );
    b.finish(&req, false).await;
    assert_eq!(b.read(&config, &SETTINGS).await, ["survives a 500"]);
}

/// Two reads of a view in one request return the same messages; both are consumed.
pub async fn reading_twice_in_one_request_returns_the_same(config: MessagesConfig) {
    let mut b = Browser::new();
    b.add(&config, &SETTINGS, &["a"]).await;
    let req = b.begin(&config);
    let ctx = req.context(&SETTINGS);
    assert_eq!(texts(ctx.messages().await), ["a"]);
    assert_eq!(texts(ctx.messages().await), ["a"]);
    b.finish(&req, true).await;
    assert!(b.read(&config, &SETTINGS).await.is_empty());
}

/// Stored messages, then an add, then a read: the request shows both, and nothing is
/// left for the next one.
pub async fn existing_then_add_then_read_stores_nothing(config: MessagesConfig) {
    let mut b = Browser::new();
    b.add(&config, &SETTINGS, &["old"]).await;
    let req = b.begin(&config);
    let ctx = req.context(&SETTINGS);
    ctx.add_message(Message::info("new"));
    assert_eq!(
        texts(ctx.messages().await),
        ["old", "new"],
        "the current request shows what it added"
    );
    b.finish(&req, true).await;
    assert!(b.read(&config, &SETTINGS).await.is_empty());
}

/// A message added after the request read its view is kept for the next request.
pub async fn adds_after_a_read_persist(config: MessagesConfig) {
    // Flask #5458 loses this message.
    let mut b = Browser::new();
    b.add(&config, &SETTINGS, &["old"]).await;
    let req = b.begin(&config);
    let ctx = req.context(&SETTINGS);
    assert_eq!(texts(ctx.messages().await), ["old"]);
    ctx.add_message(Message::info("added after read"));
    b.finish(&req, true).await;
    assert_eq!(b.read(&config, &SETTINGS).await, ["added after read"]);
}

/// Adds below the configured minimum level are ignored.
pub async fn minimum_level_thresholds(config: MessagesConfig) {
    // Django: default INFO keeps 5 of 6 (one DEBUG dropped) ... threshold 30 keeps 2.
    let all = [
        Level::DEBUG,
        Level::INFO,
        Level::SUCCESS,
        Level::WARNING,
        Level::ERROR,
        Level::custom(29),
    ];
    for (min, kept) in [
        (Level::INFO, 5),
        (Level::custom(5), 6),
        (Level::WARNING, 2),
        (Level::custom(29), 3),
    ] {
        let config = config.clone().min_level(min);
        let mut b = Browser::new();
        let req = b.begin(&config);
        for level in all {
            req.context(&SETTINGS).add_message(Message::new(level, "x"));
        }
        b.finish(&req, true).await;
        assert_eq!(b.read(&config, &SETTINGS).await.len(), kept, "min {min}");
    }
}

/// Logout (`end_session`) clears every context of the session, and messages added
/// afterwards go to a new session; with nothing added, the session cookie is removed.
pub async fn end_session_clears_every_context_and_starts_fresh(config: MessagesConfig) {
    let mut b = Browser::new();
    b.add(&config, &SETTINGS, &["private to the old session"])
        .await;
    b.add(&config, &DASHBOARD, &["also private"]).await;
    let old_session = b.jar[SESSION_COOKIE].clone();
    let req = b.begin(&config);
    req.end_session();
    req.context(&SETTINGS)
        .add_message(Message::info("You have been logged out."));
    let done = b.finish(&req, true).await;
    // The new session's cookie, first; with a cookie part, the messages cookie too.
    let with_cookie = usize::from(config.storage().cookie().is_some());
    assert_eq!(
        done.set_cookie.len(),
        1 + with_cookie,
        "{:?}",
        done.set_cookie
    );
    assert!(
        done.set_cookie[0].starts_with("messages_session="),
        "{:?}",
        done.set_cookie
    );
    let new_session = b.jar[SESSION_COOKIE].clone();
    assert_ne!(
        old_session, new_session,
        "messages after logout go to a new session"
    );
    assert_eq!(
        b.read(&config, &SETTINGS).await,
        ["You have been logged out."]
    );
    assert!(b.read(&config, &DASHBOARD).await.is_empty());
    // The old session's contexts are gone from the server store too.
    if let Some(store) = config.server_store() {
        let old: SessionKey = old_session.parse().unwrap();
        assert!(store.pending_views(&old).await.unwrap().is_empty());
    }

    // Logout with nothing added: the session cookie is removed (and the messages cookie).
    b.add(&config, &SETTINGS, &["x"]).await;
    let req = b.begin(&config);
    req.end_session();
    let done = b.finish(&req, true).await;
    assert!(
        done.set_cookie[0].contains("Max-Age=0"),
        "{:?}",
        done.set_cookie
    );
    assert!(b.jar.is_empty(), "{:?}", b.jar);
}

/// `discard` drops a view's stored messages and this request's adds, unread.
pub async fn discard_drops_stored_and_queued(config: MessagesConfig) {
    let mut b = Browser::new();
    b.add(&config, &SETTINGS, &["stored"]).await;
    let req = b.begin(&config);
    let ctx = req.context(&SETTINGS);
    ctx.add_message(Message::info("queued"));
    ctx.discard();
    b.finish(&req, true).await;
    assert!(b.read(&config, &SETTINGS).await.is_empty());
}

/// A malformed session cookie is no session: replaced by a valid key when something is
/// stored, removed when not; never an error.
pub async fn a_garbage_session_cookie_is_replaced_not_an_error(config: MessagesConfig) {
    for garbage in [
        "",
        "x",
        "../../etc/passwd",
        &"A".repeat(5000),
        "%zz%",
        "a\u{7f}b",
    ] {
        let req = config.begin([format!("messages_session={garbage}").as_str()]);
        assert!(req.session().is_none());
        assert!(req.context(&SETTINGS).messages().await.is_empty());
        req.context(&SETTINGS).add_message(Message::info("fresh"));
        let done = req.commit(true).await;
        let set = &done.set_cookie[0];
        let value = set
            .split(';')
            .next()
            .unwrap()
            .strip_prefix("messages_session=")
            .unwrap();
        assert!(
            value.parse::<SessionKey>().is_ok(),
            "replaced by a valid key: {set}"
        );
    }
    // Garbage and nothing stored: removed.
    let req = config.begin(["messages_session=garbage"]);
    assert!(req.context(&SETTINGS).messages().await.is_empty());
    assert!(req.commit(true).await.set_cookie[0].contains("Max-Age=0"));
}

/// A planted session cookie of the same name (another path, a sibling domain) sent
/// before the visitor's valid one neither hides its messages nor removes it.
pub async fn a_garbage_session_cookie_beside_a_valid_one_neither_hides_nor_removes_it(
    config: MessagesConfig,
) {
    let mut b = Browser::new();
    b.add(&config, &SETTINGS, &["kept"]).await;
    let valid = b.jar[SESSION_COOKIE].clone();
    // The planted cookie first, then every cookie of the browser (the messages cookie,
    // if the storage has one, and the valid session cookie).
    let header = format!("messages_session=planted; {}", b.cookie_header().unwrap());
    let req = config.begin([header.as_str()]);
    assert_eq!(req.session().unwrap().as_str(), valid);
    assert_eq!(texts(req.context(&SETTINGS).messages().await), ["kept"]);
    let done = req.commit(true).await;
    assert!(
        setting(&done.set_cookie, SESSION_COOKIE).is_empty(),
        "no removal of the visitor's real session: {:?}",
        done.set_cookie
    );
    if config.storage().cookie().is_none() {
        // A server store only: nothing changed in the browser.
        assert!(done.set_cookie.is_empty(), "{:?}", done.set_cookie);
    }
}

// Regression: the consumed state was kept per view for everything loaded, so a second
// `messages()` after an add (not iterated) swallowed the add.
/// A message added after a rendered list, then loaded again in a list never rendered,
/// is kept.
pub async fn an_add_after_rendering_survives_a_later_unrendered_load(config: MessagesConfig) {
    let mut b = Browser::new();
    b.add(&config, &SETTINGS, &["old"]).await;
    let req = b.begin(&config);
    let ctx = req.context(&SETTINGS);
    assert_eq!(texts(ctx.messages().await), ["old"]); // rendered
    ctx.add_message(Message::info("new"));
    assert_eq!(ctx.messages().await.len(), 2, "loaded again, not rendered");
    b.finish(&req, true).await;
    assert_eq!(b.read(&config, &SETTINGS).await, ["new"]);
}

// What was shown is consumed even when a later load of the same view is not rendered, and
// only that: a list rendered before an add does not consume the add.
/// Exactly the messages a rendered list held are consumed.
pub async fn only_the_messages_a_rendered_list_held_are_consumed(config: MessagesConfig) {
    let mut b = Browser::new();
    b.add(&config, &SETTINGS, &["a", "b"]).await;
    let req = b.begin(&config);
    let ctx = req.context(&SETTINGS);
    let first = ctx.messages().await;
    ctx.add_message(Message::info("c"));
    let second = ctx.messages().await; // a, b, c: never rendered
    assert_eq!(second.len(), 3);
    assert_eq!(texts(first), ["a", "b"]); // rendered after the second load
    b.finish(&req, true).await;
    assert_eq!(b.read(&config, &SETTINGS).await, ["c"]);
}

// Order is arrival order, not the app's clock: two app servers with skewed clocks (or a
// clock stepped back) must not reorder two posts to one view.
/// Messages are shown in the order they arrived, whatever their `created_at` says.
pub async fn order_is_arrival_order_whatever_the_clocks_say(config: MessagesConfig) {
    // Two application servers on one storage, one clock ahead and one behind: the clock
    // is in the messages they make.
    let (ahead, behind) = (config.clone(), config);
    let now = Message::info("").created_at();
    let mut b = Browser::new();
    let req = b.begin(&ahead);
    req.context(&SETTINGS)
        .add_message(Message::info("first").with_created_at(now + 60_000));
    b.finish(&req, true).await;
    let req = b.begin(&behind);
    req.context(&SETTINGS)
        .add_message(Message::info("second").with_created_at(now - 60_000));
    b.finish(&req, true).await;
    let req = b.begin(&behind);
    let ctx = req.context(&SETTINGS);
    assert_eq!(texts(ctx.peek().await), ["first", "second"]);
    ctx.add_message(Message::info("third").with_created_at(now - 120_000));
    assert_eq!(texts(ctx.peek().await), ["first", "second", "third"]);
    assert_eq!(texts(ctx.messages().await), ["first", "second", "third"]);
    b.finish(&req, true).await;
    assert!(b.read(&behind, &SETTINGS).await.is_empty());
    // Across views of one session, too: each its own arrival order.
    for (i, t) in ["d1", "s1", "d2", "s2"].into_iter().enumerate() {
        let (config, view) = if i % 2 == 0 {
            (&ahead, &DASHBOARD)
        } else {
            (&behind, &SETTINGS)
        };
        let created = if i < 2 { now + 60_000 } else { now - 60_000 };
        let req = b.begin(config);
        req.context(view)
            .add_message(Message::info(t).with_created_at(created));
        b.finish(&req, true).await;
    }
    let req = b.begin(&ahead);
    assert_eq!(shown_texts(&req, &SETTINGS).await, ["s1", "s2"]);
    assert_eq!(shown_texts(&req, &DASHBOARD).await, ["d1", "d2"]);
    b.finish(&req, true).await;
}
