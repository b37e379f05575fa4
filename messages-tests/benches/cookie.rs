//! The cost of the signed messages cookie beside its floor.
//!
//! For 1, 5 and 20 messages of one view:
//! - `encode/ours`: a request that adds the messages and commits — JSON, compression
//!   when it shrinks, HMAC-SHA256 over the length-prefixed inputs, base64url, the
//!   `Set-Cookie` value; `encode/floor`: `serde_json::to_vec` of the same payload plus one
//!   HMAC-SHA256 over those bytes.
//! - `decode/ours`: a request that carries the cookie and reads the view — parse the
//!   `Cookie` header, base64url, verify, inflate, JSON; `decode/floor`: HMAC-SHA256 verify
//!   and `serde_json::from_slice` of the same bytes.
//!
//! `cargo bench -p messages-tests --bench cookie -- --quick` prints criterion's figures,
//! then a table of the means and their ratio.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::SystemTime;

use criterion::Criterion;
use hmac::{Hmac, Mac as _};
use messages_core::{CookieStore, Message, MessagesConfig, ViewId};
use messages_tests::Browser;
use messages_tests::store_harness::WireValue;
use sha2::Sha256;

const SIZES: [usize; 3] = [1, 5, 20];
const KEY: [u8; 32] = [0x5a; 32];

fn messages(n: usize) -> Vec<Message> {
    (0..n)
        .map(|i| {
            Message::success(format!(
                "Your settings have been changed ({i}); the new address is confirmed."
            ))
            .with_title("Saved")
            .with_autoclose(i % 2 == 0)
        })
        .collect()
}

/// The JSON body of the cookie, as the wire format documents it: `{"v":{view:[...]}}`.
fn floor_json(view: &ViewId, messages: &[Message]) -> Vec<u8> {
    let body = BTreeMap::from([("v", BTreeMap::from([(view.clone(), messages.to_vec())]))]);
    serde_json::to_vec(&body).unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let config = MessagesConfig::new(CookieStore::new([KEY]).unwrap());
    let view = ViewId::from_static("bench::settings");
    // A session: the first response of a visit sets it.
    let mut jar = Browser::new();
    let first = jar.begin(&config);
    first.ensure_session().unwrap();
    rt.block_on(jar.finish(&first, true));
    let session_header = jar.cookie_header().unwrap();

    for n in SIZES {
        let msgs = messages(n);
        // The cookie a request adding `msgs` sends, and what the next request carries.
        let mut with_cookie = jar.clone();
        let req = with_cookie.begin(&config);
        for m in &msgs {
            req.context(&view).add_message(m.clone());
        }
        rt.block_on(with_cookie.finish(&req, true));
        let value = with_cookie.cookie("messages").unwrap().to_owned();
        let cookie_header = with_cookie.cookie_header().unwrap();
        let json = floor_json(&view, &msgs);
        assert_eq!(
            WireValue::parse(&value).unwrap().json().unwrap(),
            json,
            "the floor works on the cookie's own bytes"
        );
        let mac = Hmac::<Sha256>::new_from_slice(&KEY).unwrap();
        let tag = mac.clone().chain_update(&json).finalize().into_bytes();
        println!(
            "{n:>2} messages: JSON {} bytes, cookie value {} bytes",
            json.len(),
            value.len()
        );

        let mut group = c.benchmark_group(format!("encode_{n}"));
        group.bench_function("ours", |b| {
            b.iter(|| {
                let req = config.begin([session_header.as_str()]);
                let ctx = req.context(&view);
                for m in &msgs {
                    ctx.add_message(m.clone());
                }
                black_box(rt.block_on(req.commit(true)))
            });
        });
        group.bench_function("floor", |b| {
            b.iter(|| {
                let json = serde_json::to_vec(black_box(&BTreeMap::from([(
                    "v",
                    BTreeMap::from([(view.clone(), msgs.clone())]),
                )])))
                .unwrap();
                black_box(mac.clone().chain_update(&json).finalize().into_bytes())
            });
        });
        group.finish();

        let mut group = c.benchmark_group(format!("decode_{n}"));
        group.bench_function("ours", |b| {
            b.iter(|| {
                let req = config.begin([cookie_header.as_str()]);
                let list = rt.block_on(req.context(&view).messages());
                assert_eq!(list.len(), n);
                black_box(list)
            });
        });
        group.bench_function("floor", |b| {
            b.iter(|| {
                mac.clone()
                    .chain_update(black_box(&json))
                    .verify_slice(&tag)
                    .unwrap();
                let back: BTreeMap<String, BTreeMap<ViewId, Vec<Message>>> =
                    serde_json::from_slice(&json).unwrap();
                assert_eq!(back["v"][&view].len(), n);
                black_box(back)
            });
        });
        group.finish();
    }
}

/// Where criterion writes its estimates (its own lookup, short of `cargo metadata`).
fn criterion_home() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return home.into();
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    // The bench runs as <target>/<profile>/deps/cookie-<hash>.
    let exe = std::env::current_exe().unwrap();
    exe.ancestors()
        .nth(3)
        .map_or_else(|| "target".into(), PathBuf::from)
        .join("criterion")
}

/// The mean of one benchmark in nanoseconds, if this run (started at `since`) measured
/// it: `cargo test` runs each benchmark once and writes no estimates.
fn mean_ns(group: &str, bench: &str, since: SystemTime) -> Option<f64> {
    let path = criterion_home()
        .join(group)
        .join(bench)
        .join("new/estimates.json");
    if std::fs::metadata(&path).ok()?.modified().ok()? < since {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["mean"]["point_estimate"].as_f64()
}

fn main() {
    let started = SystemTime::now();
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
    let mut rows = Vec::new();
    for op in ["encode", "decode"] {
        for n in SIZES {
            let group = format!("{op}_{n}");
            if let (Some(ours), Some(floor)) = (
                mean_ns(&group, "ours", started),
                mean_ns(&group, "floor", started),
            ) {
                rows.push(format!(
                    "{op:<8}{n:>9}{:>12.2}{:>12.2}{:>9.1}x",
                    ours / 1000.0,
                    floor / 1000.0,
                    ours / floor
                ));
            }
        }
    }
    if !rows.is_empty() {
        println!(
            "\n{:<8}{:>9}{:>12}{:>12}{:>10}",
            "op", "messages", "ours µs", "floor µs", "ratio"
        );
        for row in rows {
            println!("{row}");
        }
    }
}
