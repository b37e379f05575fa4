//! Arbitrary messages go into a signed messages cookie (cookie storage, a fixed session
//! and signing key, an arbitrary budget in the accepted range); the cookie comes back mutated by the fuzzer.
//!
//! Checked: the unmutated cookie delivers the newest messages that fit, unchanged and in
//! order; the mutated one delivers exactly those too, or nothing — never a part, never
//! other data — and nothing at all under another session; every `Set-Cookie` stays
//! within the budget and `HttpOnly`.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeSet;

use messages_core::{CookieStore, Level, Message, MessageId, MessagesConfig, ViewId};
use messages_fuzz::{
    Jar, MESSAGES_COOKIE, OTHER_SESSION, SESSION, SESSION_COOKIE, commit_checked, cookie_store,
    runtime,
};

const VIEWS: [ViewId; 2] = [
    ViewId::from_static("fuzz::a"),
    ViewId::from_static("fuzz::b"),
];

#[derive(Debug, Arbitrary)]
enum Data {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    List(Vec<String>),
    Map(Vec<(String, u32)>),
}

impl Data {
    fn to_json(&self) -> serde_json::Value {
        match self {
            Data::Null => serde_json::Value::Null,
            Data::Bool(b) => (*b).into(),
            Data::Int(i) => (*i).into(),
            Data::Float(f) => (*f).into(),
            Data::Text(s) => s.as_str().into(),
            Data::List(l) => l.clone().into(),
            Data::Map(m) => m
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::from(*v)))
                .collect(),
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Msg {
    level: u8,
    text: String,
    title: Option<String>,
    autoclose: bool,
    tags: Vec<String>,
    data: Option<Data>,
    second_view: bool,
}

impl Msg {
    fn build(&self) -> Message {
        let mut m =
            Message::new(Level::custom(self.level), self.text.as_str()).with_autoclose(self.autoclose);
        if let Some(t) = &self.title {
            m = m.with_title(t.as_str());
        }
        for t in &self.tags {
            m = m.with_tag(t.as_str());
        }
        if let Some(d) = &self.data {
            m = m.with_data(d.to_json());
        }
        m
    }
}

#[derive(Debug, Arbitrary)]
enum Mutation {
    Flip { at: u16, bit: u8 },
    Set { at: u16, byte: u8 },
    Insert { at: u16, bytes: Vec<u8> },
    Remove { at: u16, len: u8 },
    Truncate { at: u16 },
    Swap { a: u16, b: u16 },
}

impl Mutation {
    fn apply(&self, v: &mut Vec<u8>) {
        let at = |i: u16, len: usize| usize::from(i) % len.max(1);
        match *self {
            Mutation::Flip { at: i, bit } if !v.is_empty() => {
                let i = at(i, v.len());
                v[i] ^= 1 << (bit % 8);
            }
            Mutation::Set { at: i, byte } if !v.is_empty() => {
                let i = at(i, v.len());
                v[i] = byte;
            }
            Mutation::Insert { at: i, ref bytes } => {
                let i = at(i, v.len() + 1);
                v.splice(i..i, bytes.iter().copied());
            }
            Mutation::Remove { at: i, len } if !v.is_empty() => {
                let i = at(i, v.len());
                let end = (i + usize::from(len).max(1)).min(v.len());
                v.drain(i..end);
            }
            Mutation::Truncate { at: i } => v.truncate(at(i, v.len() + 1)),
            Mutation::Swap { a, b } if !v.is_empty() => {
                let (a, b) = (at(a, v.len()), at(b, v.len()));
                v.swap(a, b);
            }
            _ => {}
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Input {
    messages: Vec<Msg>,
    budget: u16,
    compression: bool,
    mutations: Vec<Mutation>,
    other_session: bool,
}

fuzz_target!(|input: Input| {
    if input.messages.is_empty() || input.messages.len() > 32 || input.mutations.len() > 16 {
        return;
    }
    runtime().block_on(roundtrip(&input));
});

/// Full JSON, for failure messages (`Debug` leaves fields out).
fn json<'a>(messages: impl Iterator<Item = &'a Message>) -> String {
    let all: Vec<&Message> = messages.collect();
    serde_json::to_string(&all).unwrap_or_default()
}

async fn read_all(config: &MessagesConfig, header: &str, budget: usize) -> Vec<Vec<Message>> {
    let request = config.begin([header]);
    let mut shown = Vec::new();
    for view in &VIEWS {
        shown.push(request.context(view).messages().await.into_vec());
    }
    commit_checked(&request, true, budget, &mut Jar::new()).await;
    shown
}

async fn roundtrip(input: &Input) {
    // Any budget the store accepts; the ones it refuses are refused as a config error.
    let asked = usize::from(input.budget);
    let range = CookieStore::MIN_BUDGET..=CookieStore::MAX_BUDGET;
    assert_eq!(
        cookie_store().budget(asked).is_ok(),
        range.contains(&asked),
        "budget {asked}"
    );
    let in_range = range.start() + asked % (range.end() - range.start() + 1);
    let store = cookie_store()
        .budget(in_range)
        .expect("a budget in range")
        .compression(input.compression);
    let budget = store.byte_budget();
    let config = MessagesConfig::new(store).min_level(Level::custom(0));
    let session = format!("{SESSION_COOKIE}={SESSION}");

    // Request 1 adds the messages under the fixed session.
    let request = config.begin([session.as_str()]);
    let mut added = Vec::new();
    for msg in &input.messages {
        let m = msg.build();
        added.push(m.clone());
        request
            .context(&VIEWS[usize::from(msg.second_view)])
            .add_message(m);
    }
    let mut jar = Jar::new();
    commit_checked(&request, true, budget, &mut jar).await;
    let Some(value) = jar.get(MESSAGES_COOKIE).map(String::as_str) else {
        return; // The newest message alone is over the budget: nothing stored.
    };

    // The unmutated cookie: for each view, the newest of its messages that fit (a tail
    // of what was added to it), unchanged, in order; the budget is filled newest first,
    // so the newest message of all (which fit: a cookie was written) is always there.
    let header = format!("{session}; {MESSAGES_COOKIE}={value}");
    let baseline = read_all(&config, &header, budget).await;
    let delivered: usize = baseline.iter().map(Vec::len).sum();
    assert!(delivered > 0, "a written cookie delivers something");
    for (i, view) in baseline.iter().enumerate() {
        let added_here: Vec<&Message> = added
            .iter()
            .zip(&input.messages)
            .filter(|(_, msg)| usize::from(msg.second_view) == i)
            .map(|(m, _)| m)
            .collect();
        let tail = &added_here[added_here.len() - view.len()..];
        assert!(
            view.iter().eq(tail.iter().copied()),
            "view {i}: delivered {} expected a tail of {}",
            json(view.iter()),
            json(added_here.iter().copied())
        );
    }
    // Across views the budget keeps the newest by creation time (each view's running
    // maximum, so a view's order is never re-sorted), ties by place in the view: the
    // delivered messages are exactly the top `delivered` of that ranking.
    let mut ranked: Vec<(u64, usize, MessageId)> = Vec::new();
    for i in 0..VIEWS.len() {
        let mut latest = 0;
        let here = added
            .iter()
            .zip(&input.messages)
            .filter(|(_, msg)| usize::from(msg.second_view) == i);
        for (position, (m, _)) in here.enumerate() {
            latest = latest.max(m.created_at());
            ranked.push((latest, position, m.id()));
        }
    }
    ranked.sort_unstable();
    let top: BTreeSet<MessageId> = ranked[ranked.len() - delivered..]
        .iter()
        .map(|r| r.2)
        .collect();
    let got: BTreeSet<MessageId> = baseline.iter().flatten().map(Message::id).collect();
    assert_eq!(got, top, "the budget kept other messages than the newest that fit");

    // The mutated cookie, possibly under another session.
    let mut bytes = value.as_bytes().to_vec();
    for m in &input.mutations {
        m.apply(&mut bytes);
    }
    let mutated = String::from_utf8_lossy(&bytes);
    let session_key = if input.other_session {
        OTHER_SESSION
    } else {
        SESSION
    };
    let header = format!("{SESSION_COOKIE}={session_key}; {MESSAGES_COOKIE}={mutated}");
    let got = read_all(&config, &header, budget).await;
    if input.other_session {
        assert!(
            got.iter().all(Vec::is_empty),
            "delivered to another session"
        );
    } else if got.iter().any(|v| !v.is_empty()) {
        assert_eq!(got, baseline, "a mutated cookie delivered other data");
    } else {
        assert_ne!(mutated, value, "the unmutated cookie was refused");
    }
}
