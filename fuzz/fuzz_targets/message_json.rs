//! `serde_json::from_slice::<Message>`: never panics; what decodes respects every size
//! limit, re-encodes, and decodes back equal (and re-encodes to the same bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use messages_core::{
    MAX_DATA_BYTES, MAX_TAG_BYTES, MAX_TAGS, MAX_TEXT_BYTES, MAX_TITLE_BYTES, Message,
};

fuzz_target!(|data: &[u8]| {
    let Ok(message) = serde_json::from_slice::<Message>(data) else {
        return;
    };
    assert!(message.text().len() <= MAX_TEXT_BYTES);
    assert!(
        message
            .title()
            .is_none_or(|t| t.len() <= MAX_TITLE_BYTES)
    );
    assert!(message.tags().len() <= MAX_TAGS);
    assert!(message.tags().iter().all(|t| t.len() <= MAX_TAG_BYTES));
    if let Some(value) = message.data() {
        let compact = serde_json::to_vec(value).expect("a decoded value encodes");
        assert!(
            compact.len() <= MAX_DATA_BYTES,
            "data of {} bytes",
            compact.len()
        );
    }

    let json = serde_json::to_vec(&message).expect("a message encodes");
    let back: Message = serde_json::from_slice(&json).unwrap_or_else(|e| {
        panic!(
            "re-encoded message does not decode ({e}): {}",
            String::from_utf8_lossy(&json)
        )
    });
    assert_eq!(back, message);
    assert_eq!(serde_json::to_vec(&back).expect("a message encodes"), json);

    // The accessors a template uses work on any decoded message.
    let _ = (
        message.css_classes(),
        message.level_tag(),
        message.order_key(),
    );
    let _ = (message.to_string(), format!("{message:?}"));
});
