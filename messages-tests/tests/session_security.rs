//! Session security: the fixation attack end to end on every storage, rotation under
//! concurrent requests of one browser, the cookie-setting validations, and eviction
//! fairness.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use messages_core::{
    CookieSettings, CookieStore, MemoryStore, Message, MessagesConfig, RedisOptions, RedisStore,
    SameSite, Storage, ViewId,
};
use messages_tests::{Browser, security, shared};

const KEY: &[u8] = b"the signing key of the session security tests";
const DASHBOARD: ViewId = ViewId::from_static("app::dashboard");
const SETTINGS: ViewId = ViewId::from_static("app::settings");

fn texts(list: impl IntoIterator<Item = Message>) -> Vec<String> {
    list.into_iter().map(|m| m.text().to_owned()).collect()
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
                security::fixation_is_defeated_by_rotation(&config).await;
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
            security::rotation_under_concurrent_requests_loses_and_repeats_nothing(
                &MessagesConfig::new(MemoryStore::new()),
            )
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
            security::rotation_under_concurrent_requests_loses_and_repeats_nothing(
                &MessagesConfig::new(Arc::clone(&store)),
            )
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
            security::rotation_under_concurrent_requests_loses_and_repeats_nothing(
                &MessagesConfig::new(Arc::clone(&store)),
            )
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
        other
            .add(&config, &SETTINGS, &[&format!("other {i}")])
            .await;
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
            other.read(&config, &SETTINGS).await,
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
