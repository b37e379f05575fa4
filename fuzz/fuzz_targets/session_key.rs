//! `str::parse::<SessionKey>`: never panics; accepts exactly the canonical unpadded
//! base64url text of 32 bytes; an accepted key round-trips, and the session cookie
//! carrying it is recognised by `MessagesConfig::begin`.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use messages_core::{MemoryStore, MessagesConfig, SessionKey};
use messages_fuzz::SESSION_COOKIE;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // An independent statement of the rule: 32 bytes whose canonical text is `text`.
    let canonical = URL_SAFE_NO_PAD
        .decode(text)
        .ok()
        .filter(|bytes| bytes.len() == 32 && URL_SAFE_NO_PAD.encode(bytes) == text);
    match text.parse::<SessionKey>() {
        Ok(key) => {
            assert!(canonical.is_some(), "accepted a non-canonical key {text:?}");
            assert_eq!(key.as_str(), text);
            assert_eq!(key.to_string(), format!("{}…", &text[..6]));
            assert_eq!(key.as_str().parse::<SessionKey>().as_ref(), Ok(&key));
            assert!(!format!("{key:?}").contains(text), "Debug leaks the key");
            let request = MessagesConfig::new(MemoryStore::new())
                .begin([format!("{SESSION_COOKIE}={text}").as_str()]);
            assert_eq!(request.session().as_ref(), Some(&key));
        }
        Err(_) => assert!(canonical.is_none(), "refused a canonical key {text:?}"),
    }
});
