//! `MessagesConfig::begin` with arbitrary `Cookie` headers, for memory, cookie and
//! fallback storage, then a request's operations and `commit`; the response's cookies are
//! sent back by two more requests, as a browser would.
//!
//! Input: one byte of operation flags, then the header text; `\n` separates several
//! `Cookie` header values (not valid UTF-8 is replaced, as `&str` is all `begin` takes).
//!
//! Checked: no panic; every `Set-Cookie` is `HttpOnly`, `SameSite=Lax`, within the
//! budget, a valid key or a removal (`messages_fuzz::commit_checked`); what request 1
//! added and did not consume is delivered to request 2 on its own view, once, and what
//! request 2 consumed is gone for request 3. (No header can carry messages of its own: a
//! valid messages cookie needs the signing key, and every store starts empty.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use messages_core::{Message, ViewId};
use messages_fuzz::{BUDGET, Jar, Storage, commit_checked, header, runtime};

const ADD: u8 = 1;
const ADD_BIG: u8 = 1 << 1;
const READ: u8 = 1 << 2;
const ITERATE: u8 = 1 << 3;
const PEEK: u8 = 1 << 4;
const END_SESSION: u8 = 1 << 5;
const FAIL: u8 = 1 << 6;
const ADD_OTHER_VIEW: u8 = 1 << 7;

const VIEW: ViewId = ViewId::from_static("fuzz::view");
const OTHER_VIEW: ViewId = ViewId::from_static("fuzz::other");
const SMALL: &str = "small";
const OTHER: &str = "other";

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let headers: Vec<&str> = text.split('\n').collect();
    runtime().block_on(async {
        for storage in Storage::ALL {
            exercise(storage, flags, &headers).await;
        }
    });
});

async fn exercise(storage: Storage, flags: u8, headers: &[&str]) {
    let on = |flag: u8| flags & flag != 0;
    // Over the cookie budget on its own (cut to the text cap).
    let big = "B".repeat(5000);
    let config = storage.config();

    // Request 1: the hostile header, then the operations the flags ask for.
    let request = config.begin(headers.iter().copied());
    let context = request.context(&VIEW);
    let mut added = 0;
    if on(ADD) {
        context.add_message(Message::info(SMALL));
        added += 1;
    }
    if on(ADD_BIG) {
        context.add_message(Message::warning(big.clone()));
        added += 1;
    }
    let added_other = usize::from(on(ADD_OTHER_VIEW));
    if on(ADD_OTHER_VIEW) {
        request
            .context(&OTHER_VIEW)
            .add_message(Message::info(OTHER));
    }
    if on(READ) {
        let list = context.messages().await;
        assert_eq!(
            list.len(),
            added,
            "{storage:?}: a forged header delivered messages"
        );
        if on(ITERATE) {
            assert_eq!(list.iter().count(), added);
        }
    }
    if on(PEEK) {
        assert_eq!(context.peek().await.len(), added, "{storage:?}");
        assert_eq!(context.count().await, added, "{storage:?}");
    }
    if on(END_SESSION) {
        request.end_session();
    }
    let mut jar = Jar::new();
    commit_checked(&request, !on(FAIL), BUDGET, &mut jar).await;

    // What must survive to request 2.
    let consumed = on(READ) && on(ITERATE) && !on(FAIL);
    let (expected, expected_other) = if on(END_SESSION) {
        (0, 0)
    } else if consumed {
        (0, added_other)
    } else {
        (added, added_other)
    };
    // The cookie store drops the oldest messages when the big one does not fit.
    let exact = storage != Storage::Cookie || !on(ADD_BIG);

    // Request 2: the cookies the browser now holds, then the hostile header again (a
    // browser still sends its other cookies; the first session cookie wins).
    let own = header(&jar);
    let request = config.begin(std::iter::once(own.as_str()).chain(headers.iter().copied()));
    let shown: Vec<Message> = request.context(&VIEW).messages().await.into_vec();
    for m in &shown {
        assert!(
            m.text() == SMALL || m.text().starts_with('B'),
            "{storage:?}: a message from elsewhere: {m:?}"
        );
    }
    commit_checked(&request, true, BUDGET, &mut jar).await;
    if exact {
        assert_eq!(shown.len(), expected, "{storage:?}: flags {flags:#010b}");
    } else {
        assert!(shown.len() <= expected, "{storage:?}: flags {flags:#010b}");
    }

    // Request 3: the view read by request 2 is empty, the other view still waits.
    let own = header(&jar);
    let request = config.begin(std::iter::once(own.as_str()).chain(headers.iter().copied()));
    assert!(
        request.context(&VIEW).messages().await.is_empty(),
        "{storage:?}: shown twice"
    );
    let other: Vec<Message> = request.context(&OTHER_VIEW).messages().await.into_vec();
    assert!(other.iter().all(|m| m.text() == OTHER), "{storage:?}");
    if exact {
        assert_eq!(
            other.len(),
            expected_other,
            "{storage:?}: flags {flags:#010b}"
        );
    } else {
        assert!(other.len() <= expected_other, "{storage:?}");
    }
    commit_checked(&request, true, BUDGET, &mut jar).await;
}
