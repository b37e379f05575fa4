//! Session-security scenarios written once and run on every storage
//! (`tests/session_security.rs`, and the SQL stores in `tests/sql_store.rs`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::missing_panics_doc
)]

use std::collections::BTreeMap;

use messages_core::request::SessionChange;
use messages_core::{Message, MessagesConfig, ViewId};

use crate::Browser;

const DASHBOARD: ViewId = ViewId::from_static("app::dashboard");
const SETTINGS: ViewId = ViewId::from_static("app::settings");

/// The attacker gets a valid session key from the site, plants it in the victim's
/// browser, and waits; the victim leaves a message pending, logs in (rotation), and gets
/// sensitive messages. Afterwards the attacker's key sees nothing of the victim's, and
/// what the attacker adds under it never reaches the victim.
pub async fn fixation_is_defeated_by_rotation(config: &MessagesConfig) {
    let mut attacker = Browser::new();
    attacker.add(config, &SETTINGS, &["attacker's own"]).await;
    assert_eq!(attacker.read(config, &SETTINGS).await, ["attacker's own"]);
    let planted = attacker.jar["messages_session"].clone();

    let mut victim = Browser::new();
    victim.set("messages_session", planted.clone());
    victim.add(config, &SETTINGS, &["saved before login"]).await;
    victim.add(config, &DASHBOARD, &["pending one"]).await;
    victim.add(config, &DASHBOARD, &["pending two"]).await;

    // POST /login: rotate, then add the welcome under the new key.
    let req = victim.begin(config);
    let fresh = req.rotate_session().unwrap();
    req.context(&DASHBOARD)
        .add_message(Message::success("Welcome, victim."));
    let done = victim.finish(&req, true).await;
    let SessionChange::Rotated { from, to } = done.session else {
        panic!("{:?}", done.session)
    };
    assert_eq!((from.as_str(), &to), (planted.as_str(), &fresh));
    assert_eq!(victim.jar["messages_session"], fresh.as_str());
    victim
        .add(config, &DASHBOARD, &["Payment sent to Bob."])
        .await;

    // The attacker, with the planted key, sees nothing and injects a message.
    assert!(attacker.read(config, &DASHBOARD).await.is_empty());
    assert!(attacker.read(config, &SETTINGS).await.is_empty());
    attacker
        .add(config, &DASHBOARD, &["Click evil.example to confirm"])
        .await;
    assert_eq!(attacker.jar["messages_session"], planted);

    // The victim sees everything that was pending, on its own views, in order, and
    // nothing of the attacker's.
    assert_eq!(
        victim.read(config, &DASHBOARD).await,
        [
            "pending one",
            "pending two",
            "Welcome, victim.",
            "Payment sent to Bob."
        ]
    );
    assert_eq!(victim.read(config, &SETTINGS).await, ["saved before login"]);
    assert!(victim.read(config, &DASHBOARD).await.is_empty());
}

/// A browser with messages pending on many views rotates its session while other
/// requests of it, still carrying the old key, read those views: each message is shown
/// exactly once, by an old-key reader or after the rotation under the new key.
pub async fn rotation_under_concurrent_requests_loses_and_repeats_nothing(config: &MessagesConfig) {
    const VIEWS: usize = 12;
    let views: Vec<ViewId> = (0..VIEWS)
        .map(|i| ViewId::new(format!("app::v{i}")).unwrap())
        .collect();
    let mut browser = Browser::new();
    let req = browser.begin(config);
    for (i, view) in views.iter().enumerate() {
        for j in 0..3 {
            req.context(view)
                .add_message(Message::info(format!("v{i}.{j}")));
        }
    }
    browser.finish(&req, true).await;
    let old_jar = browser.clone();

    let login = {
        let config = config.clone();
        let mut browser = browser.clone();
        tokio::spawn(async move {
            let req = browser.begin(&config);
            req.rotate_session().unwrap();
            browser.finish(&req, true).await;
            browser
        })
    };
    let readers: Vec<_> = views
        .iter()
        .cloned()
        .map(|view| {
            let (config, mut browser) = (config.clone(), old_jar.clone());
            tokio::spawn(async move { browser.read(&config, &view).await })
        })
        .collect();
    let mut shown: BTreeMap<String, usize> = BTreeMap::new();
    for reader in readers {
        for text in reader.await.unwrap() {
            *shown.entry(text).or_default() += 1;
        }
    }
    let mut browser = login.await.unwrap();
    for view in &views {
        for text in browser.read(config, view).await {
            *shown.entry(text).or_default() += 1;
        }
    }
    let expected: BTreeMap<String, usize> = (0..VIEWS)
        .flat_map(|i| (0..3).map(move |j| (format!("v{i}.{j}"), 1)))
        .collect();
    assert_eq!(shown, expected, "every message exactly once");
}
