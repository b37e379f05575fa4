//! What the fuzz targets share: a runtime built once, the storage configurations under
//! test, and the checks every response's `Set-Cookie` values must pass.
//!
//! The targets use only the public API of `messages-core`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use messages_core::{
    CookieStore, MemoryStore, MessagesConfig, Messages, SessionKey,
};

/// Signing key of the cookie stores under test (a fixed one: inputs must replay).
pub const SIGNING_KEY: &[u8] = b"messages-fuzz signing key, 32+ bytes long";
/// A valid session key (bytes 0..32), so targets can start from a known session.
pub const SESSION: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
/// Another valid session key (bytes 100..132): a cookie signed for [`SESSION`] must not
/// verify under it.
pub const OTHER_SESSION: &str = "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1-f4CBgoM";
/// Default names of the session and messages cookies.
pub const SESSION_COOKIE: &str = "messages_session";
/// See [`SESSION_COOKIE`].
pub const MESSAGES_COOKIE: &str = "messages";
/// Byte budget of the messages cookie in the configurations of [`Storage`].
pub const BUDGET: usize = 2048;

/// The current-thread runtime every input runs on, built once per process.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime")
    })
}

/// A cookie store with the fuzzing key.
pub fn cookie_store() -> CookieStore {
    CookieStore::new([SIGNING_KEY]).expect("the fuzzing key is long enough")
}

/// [`cookie_store`] with the [`BUDGET`].
fn budgeted() -> CookieStore {
    cookie_store()
        .budget(BUDGET)
        .expect("the fuzzing budget is in range")
}

/// The storages a request can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// `MessagesConfig::new(MemoryStore)`.
    Memory,
    /// `MessagesConfig::new(CookieStore)`.
    Cookie,
    /// `MessagesConfig::new(CookieStore + MemoryStore)`.
    Fallback,
}

impl Storage {
    /// Every storage.
    pub const ALL: [Storage; 3] = [Storage::Memory, Storage::Cookie, Storage::Fallback];

    /// A fresh configuration (a fresh memory store: inputs must not depend on each other).
    pub fn config(self) -> MessagesConfig {
        match self {
            Storage::Memory => MessagesConfig::new(MemoryStore::new()),
            Storage::Cookie => MessagesConfig::new(budgeted()),
            Storage::Fallback => {
                MessagesConfig::new(messages_core::Storage::fallback(budgeted(), MemoryStore::new()))
            }
        }
    }
}

/// Commits `request` and checks its `Set-Cookie` values: each parses, is one of our two
/// cookies (at most once each), `HttpOnly`, `SameSite=Lax`, `Path=/`; a session value is a
/// valid key, a messages value fits `budget`. Applies them to `jar`, as a browser would
/// (a removal deletes).
pub async fn commit_checked(
    request: &Messages,
    success: bool,
    budget: usize,
    jar: &mut Jar,
) {
    let committed = request.commit(success).await;
    let mut names = Vec::new();
    for set in &committed.set_cookie {
        let c = cookie::Cookie::parse(set.as_str())
            .unwrap_or_else(|e| panic!("unparsable Set-Cookie {set:?}: {e}"));
        assert_eq!(c.http_only(), Some(true), "not HttpOnly: {set}");
        assert_eq!(c.same_site(), Some(cookie::SameSite::Lax), "{set}");
        assert_eq!(c.path(), Some("/"), "{set}");
        let removal = c.max_age().is_some_and(cookie::time::Duration::is_zero);
        match c.name() {
            SESSION_COOKIE => assert!(
                removal || c.value().parse::<SessionKey>().is_ok(),
                "session cookie with an invalid key: {set}"
            ),
            MESSAGES_COOKIE => assert!(
                c.value().len() <= budget,
                "messages cookie of {} bytes over the budget",
                c.value().len()
            ),
            other => panic!("unexpected cookie {other:?}"),
        }
        assert_eq!(removal, c.value().is_empty(), "{set}");
        assert!(!names.contains(&c.name().to_owned()), "set twice: {set}");
        names.push(c.name().to_owned());
        if removal {
            jar.remove(c.name());
        } else {
            jar.insert(c.name().to_owned(), c.value().to_owned());
        }
    }
    assert!(
        committed.touched || committed.set_cookie.is_empty(),
        "a response that sets cookies is marked touched"
    );
}

/// A browser's cookies, by name.
pub type Jar = BTreeMap<String, String>;

/// The `Cookie` header a browser sends with `jar` (empty when it holds nothing).
pub fn header(jar: &Jar) -> String {
    let pairs: Vec<String> = jar.iter().map(|(n, v)| format!("{n}={v}")).collect();
    pairs.join("; ")
}
