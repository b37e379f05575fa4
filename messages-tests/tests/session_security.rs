//! Session security: the fixation attack end to end on every storage, rotation under
//! concurrent requests of one browser, the cookie-setting validations, and eviction
//! fairness.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;

use messages_core::request::SessionChange;
use messages_core::{
    CookieSettings, CookieStore, MemoryStore, Message, MessagesConfig, RedisOptions, RedisStore,
    SameSite, Storage, ViewId,
};
use messages_tests::{Browser, shared};

const KEY: &[u8] = b"the signing key of the session security tests";
const DASHBOARD: ViewId = ViewId::from_static("app::dashboard");
const SETTINGS: ViewId = ViewId::from_static("app::settings");

fn texts(list: impl IntoIterator<Item = Message>) -> Vec<String> {
    list.into_iter().map(|m| m.text().to_owned()).collect()
}

/// One request of `browser` that reads (renders) `view`.
async fn read(browser: &mut Browser, config: &MessagesConfig, view: &ViewId) -> Vec<String> {
    let req = browser.begin(config);
    let shown = texts(req.context(view).messages().await.into_vec());
    browser.finish(&req, true).await;
    shown
}

/// One request of `browser` that adds `text` to `view`.
async fn add(browser: &mut Browser, config: &MessagesConfig, view: &ViewId, text: &str) {
    let req = browser.begin(config);
    req.context(view).add_message(Message::info(text));
    browser.finish(&req, true).await;
}

/// The attacker gets a valid session key from the site, plants it in the victim's
/// browser, and waits; the victim leaves a message pending, logs in (rotation), and gets
/// sensitive messages. Afterwards the attacker's key sees nothing of the victim's, and
/// what the attacker adds under it never reaches the victim.
async fn fixation_is_defeated_by_rotation(config: MessagesConfig) {
    let mut attacker = Browser::new();
    add(&mut attacker, &config, &SETTINGS, "attacker's own").await;
    assert_eq!(
        read(&mut attacker, &config, &SETTINGS).await,
        ["attacker's own"]
    );
    let planted = attacker.jar["messages_session"].clone();

    let mut victim = Browser::new();
    victim
        .jar
        .insert("messages_session".into(), planted.clone());
    add(&mut victim, &config, &SETTINGS, "saved before login").await;
    add(&mut victim, &config, &DASHBOARD, "pending one").await;
    add(&mut victim, &config, &DASHBOARD, "pending two").await;

    // POST /login: rotate, then add the welcome under the new key.
    let req = victim.begin(&config);
    let fresh = req.rotate_session().unwrap();
    req.context(&DASHBOARD)
        .add_message(Message::success("Welcome, victim."));
    let done = victim.finish(&req, true).await;
    let SessionChange::Rotated { from, to } = done.session else {
        panic!("{:?}", done.session)
    };
    assert_eq!((from.as_str(), &to), (planted.as_str(), &fresh));
    assert_eq!(victim.jar["messages_session"], fresh.as_str());
    add(&mut victim, &config, &DASHBOARD, "Payment sent to Bob.").await;

    // The attacker, with the planted key, sees nothing and injects a message.
    assert!(read(&mut attacker, &config, &DASHBOARD).await.is_empty());
    assert!(read(&mut attacker, &config, &SETTINGS).await.is_empty());
    add(
        &mut attacker,
        &config,
        &DASHBOARD,
        "Click evil.example to confirm",
    )
    .await;
    assert_eq!(attacker.jar["messages_session"], planted);

    // The victim sees everything that was pending, on its own views, in order, and
    // nothing of the attacker's.
    assert_eq!(
        read(&mut victim, &config, &DASHBOARD).await,
        [
            "pending one",
            "pending two",
            "Welcome, victim.",
            "Payment sent to Bob."
        ]
    );
    assert_eq!(
        read(&mut victim, &config, &SETTINGS).await,
        ["saved before login"]
    );
    assert!(read(&mut victim, &config, &DASHBOARD).await.is_empty());
}

/// A browser with messages pending on many views rotates its session while other
/// requests of it, still carrying the old key, read those views: each message is shown
/// exactly once, by an old-key reader or after the rotation under the new key.
async fn rotation_under_concurrent_requests_loses_and_repeats_nothing(config: MessagesConfig) {
    const VIEWS: usize = 12;
    let views: Vec<ViewId> = (0..VIEWS)
        .map(|i| ViewId::new(format!("app::v{i}")).unwrap())
        .collect();
    let mut browser = Browser::new();
    let req = browser.begin(&config);
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
            tokio::spawn(async move { read(&mut browser, &config, &view).await })
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
        for text in read(&mut browser, &config, view).await {
            *shown.entry(text).or_default() += 1;
        }
    }
    let expected: BTreeMap<String, usize> = (0..VIEWS)
        .flat_map(|i| (0..3).map(move |j| (format!("v{i}.{j}"), 1)))
        .collect();
    assert_eq!(shown, expected, "every message exactly once");
}

fn cookie_store() -> CookieStore {
    CookieStore::new([KEY]).unwrap()
}

async fn redis_store() -> Option<RedisStore> {
    Some(shared::redis()?.store(RedisOptions::default()).await)
}

async fn cluster_store() -> Option<RedisStore> {
    Some(
        shared::redis_cluster()?
            .store(RedisOptions::default())
            .await,
    )
}

macro_rules! on_every_storage {
    ($($storage:ident => $make:expr;)*) => {$(
        mod $storage {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn fixation_is_defeated_by_rotation() {
                let Some(config) = $make.await else { return };
                super::fixation_is_defeated_by_rotation(config).await;
            }
        }
    )*};
}

on_every_storage! {
    memory => async { Some(MessagesConfig::new(MemoryStore::new())) };
    cookie => async { Some(MessagesConfig::new(cookie_store())) };
    fallback => async { Some(MessagesConfig::new(Storage::fallback(cookie_store(), MemoryStore::new()))) };
    fallback_spilling => async {
        Some(MessagesConfig::new(Storage::fallback(cookie_store().budget(256).unwrap(), MemoryStore::new())))
    };
    redis => async { Some(MessagesConfig::new(redis_store().await?)) };
    redis_cluster => async { Some(MessagesConfig::new(cluster_store().await?)) };
    fallback_redis => async {
        Some(MessagesConfig::new(Storage::fallback(cookie_store().budget(256).unwrap(), redis_store().await?)))
    };
}

/// Concurrent requests of one browser need a server store: with cookies the later
/// response's cookie wins (documented), so exactly-once across concurrent requests is a
/// server-store promise.
mod concurrent {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn memory() {
        for _ in 0..20 {
            rotation_under_concurrent_requests_loses_and_repeats_nothing(MessagesConfig::new(
                MemoryStore::new(),
            ))
            .await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn redis() {
        let Some(store) = redis_store().await else {
            return;
        };
        let store = Arc::new(store);
        for _ in 0..10 {
            rotation_under_concurrent_requests_loses_and_repeats_nothing(MessagesConfig::new(
                Arc::clone(&store),
            ))
            .await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn redis_cluster() {
        let Some(store) = cluster_store().await else {
            return;
        };
        let store = Arc::new(store);
        for _ in 0..5 {
            rotation_under_concurrent_requests_loses_and_repeats_nothing(MessagesConfig::new(
                Arc::clone(&store),
            ))
            .await;
        }
    }
}

#[test]
fn cookie_settings_browsers_would_drop_are_config_errors() {
    let config = || MessagesConfig::new(MemoryStore::new());
    let refused = [
        CookieSettings {
            secure: false,
            ..CookieSettings::behind_tls()
        },
        CookieSettings {
            path: "/app".into(),
            ..CookieSettings::behind_tls()
        },
        CookieSettings {
            domain: Some("example.com".into()),
            ..CookieSettings::behind_tls()
        },
        CookieSettings {
            session_name: "__Secure-sid".into(),
            ..CookieSettings::default()
        },
        CookieSettings {
            same_site: SameSite::None,
            ..CookieSettings::default()
        },
        CookieSettings {
            session_name: "bad name".into(),
            ..CookieSettings::default()
        },
        CookieSettings {
            messages_name: "messages_session".into(),
            ..CookieSettings::default()
        },
        CookieSettings {
            path: "app".into(),
            ..CookieSettings::default()
        },
        CookieSettings {
            path: "/; Domain=evil.example".into(),
            ..CookieSettings::default()
        },
        CookieSettings {
            domain: Some(String::new()),
            ..CookieSettings::default()
        },
    ];
    for settings in refused {
        let err = config().cookie_settings(settings.clone()).unwrap_err();
        assert!(
            matches!(err, messages_core::Error::Config(_)),
            "{settings:?}: {err}"
        );
    }
    let accepted = [
        CookieSettings::default(),
        CookieSettings::behind_tls(),
        CookieSettings {
            same_site: SameSite::None,
            ..CookieSettings::behind_tls()
        },
        CookieSettings {
            session_name: "__Secure-sid".into(),
            secure: true,
            domain: Some("example.com".into()),
            path: "/app".into(),
            ..CookieSettings::default()
        },
    ];
    for settings in accepted {
        assert!(
            config().cookie_settings(settings.clone()).is_ok(),
            "{settings:?}"
        );
    }
}

#[tokio::test]
async fn the_tls_preset_sets_host_prefixed_secure_cookies() {
    let config = MessagesConfig::new(Storage::fallback(cookie_store(), MemoryStore::new()))
        .cookie_settings(CookieSettings::behind_tls())
        .unwrap();
    let req = config.begin([]);
    req.context(&DASHBOARD).add_message(Message::info("hi"));
    let done = req.commit(true).await;
    assert_eq!(done.set_cookie.len(), 2, "{done:?}");
    for c in &done.set_cookie {
        assert!(c.starts_with("__Host-messages"), "{c}");
        for attribute in ["HttpOnly", "Secure", "Path=/", "SameSite=Lax"] {
            assert!(c.contains(attribute), "{c}: {attribute}");
        }
        assert!(!c.contains("Domain"), "{c}");
    }
}

#[tokio::test]
async fn a_flood_from_one_session_leaves_other_sessions_messages_in_place() {
    use messages_core::MemoryLimits;
    // Small totals, so a flood would fill the store; the per-session cap stops it first.
    let store = MemoryStore::with_limits(MemoryLimits {
        per_session: 200,
        max_messages: 16 * 300,
        ..MemoryLimits::default()
    });
    let config = MessagesConfig::new(store).queue_cap(200);
    // Enough other sessions that some share the flood's shard (16 shards).
    let mut others: Vec<Browser> = Vec::new();
    for i in 0..200 {
        let mut other = Browser::new();
        add(&mut other, &config, &SETTINGS, &format!("other {i}")).await;
        others.push(other);
    }
    // One browser posts 200 notes to 100 views, over and over.
    let mut flood = Browser::new();
    for round in 0..20 {
        let req = flood.begin(&config);
        for v in 0..100 {
            let view = ViewId::new(format!("app::flood{v}")).unwrap();
            for n in 0..200 {
                req.context(&view)
                    .add_message(Message::info(format!("flood {round}.{n}")));
            }
        }
        flood.finish(&req, true).await;
    }
    for (i, other) in others.iter_mut().enumerate() {
        assert_eq!(
            read(other, &config, &SETTINGS).await,
            [format!("other {i}")],
            "another session's message was evicted"
        );
    }
}

/// After a rotation the server stores refuse adds to the old key (a job started before
/// login still holding it, or an attacker who planted it): nothing lands where the old
/// key's holder could read it.
mod old_key_accepts_nothing {
    use messages_core::{MessageStore, SessionKey};

    use super::*;

    async fn case(store: &dyn MessageStore) {
        let (old, new) = (
            SessionKey::generate().unwrap(),
            SessionKey::generate().unwrap(),
        );
        store
            .add(&old, &DASHBOARD, Message::info("before login"))
            .await
            .unwrap();
        store.rotate(&old, &new).await.unwrap();
        store
            .add(
                &old,
                &DASHBOARD,
                Message::info("from a job holding the old key"),
            )
            .await
            .unwrap();
        store
            .add(&old, &SETTINGS, Message::info("planted"))
            .await
            .unwrap();
        assert!(store.pending_views(&old).await.unwrap().is_empty());
        assert_eq!(store.count(&old, &DASHBOARD).await.unwrap(), 0);
        assert_eq!(
            texts(store.take(&new, &DASHBOARD).await.unwrap()),
            ["before login"]
        );
    }

    #[tokio::test]
    async fn memory() {
        case(&MemoryStore::new()).await;
    }

    #[tokio::test]
    async fn redis() {
        let Some(store) = redis_store().await else {
            return;
        };
        case(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_cluster() {
        let Some(store) = cluster_store().await else {
            return;
        };
        case(&store).await;
    }
}
