//! The signed messages cookie's codec beside its floor, in one run.
//!
//! For 1, 5 and 20 messages of one view:
//! - `encode/codec`: what a commit of cookie storage runs for those messages
//!   (`CookieStore`'s encode within the budget: JSON, deflate where the store applies it,
//!   HMAC-SHA256 over the length-prefixed inputs, base64url, the value).
//!   `encode/floor`: the same JSON with `serde_json`, the same deflate (`miniz_oxide`,
//!   same level and codes, a reused compressor) when the codec's value is deflated, one
//!   HMAC-SHA256 over the same MAC input, base64url of the same bytes: the work no
//!   implementation of the format can skip. The bench checks that both make the same
//!   value.
//! - `decode/codec`: what a request's first read runs on the value (`CookieStore`'s
//!   decode: the checks, base64url, verify, inflate, JSON). `decode/floor`: base64url,
//!   one HMAC-SHA256 verify, the same inflate (a reused decompressor, into a reused
//!   buffer), `serde_json` into the same types.
//! - `encode/request` and `decode/request`, for context: a whole request through the
//!   public API (`begin`, add the messages and `commit` with its `Set-Cookie` value; or
//!   `begin` with the `Cookie` header and read the view).
//!
//! Then the deflate choice: for the JSON bodies of 1, 2, 5 and 20 messages, deflate with
//! fixed and with dynamic Huffman codes at levels 1 and 6, and inflate of each level-1
//! result, with the sizes they give.
//!
//! Times are the benchmark thread's CPU time, not wall time (the machine is shared).
//!
//! `cargo bench -p messages-tests --bench cookie -- --quick` prints criterion's figures,
//! then the tables of the medians and ratios.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::hint::black_box;
use std::path::PathBuf;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{Criterion, Throughput};
use hmac::{Hmac, Mac as _};
use messages_core::__bench::{CookieCodec, DEFLATE_LEVEL};
use messages_core::{CookieStore, Message, MessagesConfig, SessionKey, ViewId};
use messages_tests::Browser;
use messages_tests::store_harness::{PURPOSE, WireValue};
use miniz_oxide::deflate::core::{
    CompressionStrategy, CompressorOxide, TDEFLFlush, TDEFLStatus, compress_to_output,
    create_comp_flags_from_zip_params,
};
use miniz_oxide::inflate::TINFLStatus;
use miniz_oxide::inflate::core::inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
use miniz_oxide::inflate::core::{DecompressorOxide, decompress};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

const SIZES: [usize; 3] = [1, 5, 20];
const KEY: [u8; 32] = [0x5a; 32];
const NAME: &str = "messages";
/// The signing time of every value (the decode checks age against it).
const NOW: u64 = 1_750_000_000_000;

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

/// The cookie body as the wire format documents it, with the store's own field rules.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    v: BTreeMap<ViewId, Vec<Message>>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    s: BTreeSet<ViewId>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    a: bool,
}

/// Huffman codes and level of a deflate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Deflate {
    fixed: bool,
    level: u8,
}

impl Deflate {
    /// What the store uses first.
    const STORE: Deflate = Deflate {
        fixed: true,
        level: DEFLATE_LEVEL,
    };

    fn name(self) -> String {
        let codes = if self.fixed { "fixed" } else { "dynamic" };
        format!("{codes}_{}", self.level)
    }

    fn compressor(self) -> Box<CompressorOxide> {
        let strategy = if self.fixed {
            CompressionStrategy::Fixed
        } else {
            CompressionStrategy::Default
        };
        let flags = create_comp_flags_from_zip_params(self.level.into(), -15, strategy.into());
        Box::new(CompressorOxide::new(flags))
    }
}

/// Appends `data` raw-deflated by the reused `compressor` to `out`.
fn deflate(compressor: &mut CompressorOxide, data: &[u8], out: &mut Vec<u8>) {
    compressor.reset();
    let (status, _) = compress_to_output(compressor, data, TDEFLFlush::Finish, |chunk| {
        out.extend_from_slice(chunk);
        true
    });
    assert_eq!(status, TDEFLStatus::Done);
}

/// Inflates raw-deflated `data` into `out` by the reused `decompressor`; the length.
fn inflate(decompressor: &mut DecompressorOxide, data: &[u8], out: &mut [u8]) -> usize {
    decompressor.init();
    let (status, read, written) = decompress(
        decompressor,
        data,
        out,
        0,
        TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF,
    );
    assert_eq!((status, read), (TINFLStatus::Done, data.len()));
    written
}

/// The floor: the format's unavoidable work, done directly.
struct Floor {
    mac: Hmac<Sha256>,
    session: SessionKey,
    deflate: Box<CompressorOxide>,
    inflate: Box<DecompressorOxide>,
    json: Vec<u8>,
    inflated: Vec<u8>,
}

impl Floor {
    fn new(session: SessionKey) -> Floor {
        Floor {
            mac: Hmac::new_from_slice(&KEY).unwrap(),
            session,
            deflate: Deflate::STORE.compressor(),
            inflate: Box::default(),
            json: Vec::with_capacity(8192),
            inflated: vec![0; 64 * 1024],
        }
    }

    /// HMAC-SHA256 over the length-prefixed purpose, name, session and payload.
    fn tag(&self, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        for part in [
            PURPOSE,
            NAME.as_bytes(),
            self.session.as_str().as_bytes(),
            payload,
        ] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac
    }

    fn encode(&mut self, body: &Body, deflated: bool) -> String {
        let mut payload = Vec::with_capacity(1024);
        payload.push(u8::from(deflated));
        payload.extend_from_slice(&NOW.to_be_bytes());
        if deflated {
            self.json.clear();
            serde_json::to_writer(&mut self.json, body).unwrap();
            deflate(&mut self.deflate, &self.json, &mut payload);
        } else {
            serde_json::to_writer(&mut payload, body).unwrap();
        }
        let tag = self.tag(&payload).finalize().into_bytes();
        let mut out = String::with_capacity(3 + (payload.len() + tag.len()).div_ceil(3) * 4 + 1);
        out.push_str("v1.");
        URL_SAFE_NO_PAD.encode_string(&payload, &mut out);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(tag, &mut out);
        out
    }

    fn decode(&mut self, value: &str) -> Body {
        let (payload, tag) = value.strip_prefix("v1.").unwrap().split_once('.').unwrap();
        let payload = URL_SAFE_NO_PAD.decode(payload).unwrap();
        let mut mac = [0u8; 33];
        assert_eq!(URL_SAFE_NO_PAD.decode_slice(tag, &mut mac), Ok(32));
        self.tag(&payload).verify_slice(&mac[..32]).unwrap();
        let body = &payload[9..];
        if payload[0] & 1 == 0 {
            return serde_json::from_slice(body).unwrap();
        }
        let len = inflate(&mut self.inflate, body, &mut self.inflated);
        serde_json::from_slice(&self.inflated[..len]).unwrap()
    }
}

/// Bytes of a cookie value with a body of `body` bytes.
fn value_len(body: usize) -> usize {
    3 + (9 + body).saturating_mul(4).div_ceil(3) + 1 + 43
}

/// Deflate with fixed and dynamic codes at levels 1 and 6, and inflate, on the JSON of
/// `n` messages; prints the sizes.
fn bench_deflate(c: &mut Criterion<ThreadCpu>, n: usize, json: &[u8]) {
    let mut group = c.benchmark_group(format!("deflate_{n}"));
    let mut sizes = vec![format!(
        "plain {} (value {})",
        json.len(),
        value_len(json.len())
    )];
    let mut inflated = vec![0u8; 64 * 1024];
    let mut decompressor: Box<DecompressorOxide> = Box::default();
    for fixed in [true, false] {
        for level in [1, 6] {
            let how = Deflate { fixed, level };
            let mut compressor = how.compressor();
            let mut out = Vec::with_capacity(json.len());
            deflate(&mut compressor, json, &mut out);
            sizes.push(format!(
                "{} {} (value {})",
                how.name(),
                out.len(),
                value_len(out.len())
            ));
            group.bench_function(how.name(), |b| {
                b.iter(|| {
                    out.clear();
                    deflate(&mut compressor, black_box(json), &mut out);
                });
            });
            if level == 1 {
                group.bench_function(format!("inflate_{}", how.name()), |b| {
                    b.iter(|| {
                        black_box(inflate(&mut decompressor, black_box(&out), &mut inflated))
                    });
                });
            }
        }
    }
    group.finish();
    println!("{n:>2} messages, body bytes: {}", sizes.join(", "));
}

fn bench(c: &mut Criterion<ThreadCpu>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let store = CookieStore::new([KEY]).unwrap();
    let config = MessagesConfig::new(store.clone());
    let view = ViewId::from_static("bench::settings");
    // A session: the first response of a visit sets it.
    let mut jar = Browser::new();
    let first = jar.begin(&config);
    first.ensure_session().unwrap();
    rt.block_on(jar.finish(&first, true));
    let session_header = jar.cookie_header().unwrap();
    let session = SessionKey::generate().unwrap();
    let mut floor = Floor::new(session.clone());

    for n in SIZES {
        let msgs = messages(n);
        let body = Body {
            v: BTreeMap::from([(view.clone(), msgs.clone())]),
            s: BTreeSet::new(),
            a: false,
        };
        let codec = CookieCodec::new(store.clone(), NAME, session.clone(), body.v.clone());
        let value = codec.encode(NOW).unwrap();
        let wire = WireValue::parse(&value).unwrap();
        let deflated = wire.flag & 1 == 1;
        // Both sides make and read the same bytes.
        assert_eq!(floor.encode(&body, deflated), value);
        assert_eq!(floor.decode(&value).v, body.v);
        assert_eq!(codec.decode(&value, NOW).unwrap(), body.v);
        println!(
            "{n:>2} messages: JSON {} bytes, body {} bytes ({}), cookie value {} bytes",
            serde_json::to_vec(&body).unwrap().len(),
            wire.body.len(),
            if deflated { "deflated" } else { "plain" },
            value.len()
        );

        // The request rows: the cookie a request adding `msgs` sends, which the next
        // request carries.
        let mut with_cookie = jar.clone();
        let req = with_cookie.begin(&config);
        for m in &msgs {
            req.context(&view).add_message(m.clone());
        }
        rt.block_on(with_cookie.finish(&req, true));
        let cookie_header = with_cookie.cookie_header().unwrap();

        let mut group = c.benchmark_group(format!("encode_{n}"));
        group.bench_function("codec", |b| {
            b.iter(|| black_box(codec.encode(black_box(NOW))));
        });
        group.bench_function("floor", |b| {
            b.iter(|| black_box(floor.encode(black_box(&body), deflated)));
        });
        group.bench_function("request", |b| {
            b.iter(|| {
                let req = config.begin([session_header.as_str()]);
                let ctx = req.context(&view);
                for m in &msgs {
                    ctx.add_message(m.clone());
                }
                black_box(rt.block_on(req.commit(true)))
            });
        });
        group.finish();

        let mut group = c.benchmark_group(format!("decode_{n}"));
        group.bench_function("codec", |b| {
            b.iter(|| black_box(codec.decode(black_box(&value), NOW)));
        });
        group.bench_function("floor", |b| {
            b.iter(|| black_box(floor.decode(black_box(&value))));
        });
        group.bench_function("request", |b| {
            b.iter(|| {
                let req = config.begin([cookie_header.as_str()]);
                let list = rt.block_on(req.context(&view).messages());
                assert_eq!(list.len(), n);
                black_box(list)
            });
        });
        group.finish();
    }

    for n in [1, 2, 5, 20] {
        let body = Body {
            v: BTreeMap::from([(view.clone(), messages(n))]),
            s: BTreeSet::new(),
            a: false,
        };
        bench_deflate(c, n, &serde_json::to_vec(&body).unwrap());
    }
}

/// Criterion's measurement: the CPU time of this thread (`CLOCK_THREAD_CPUTIME_ID`), in
/// nanoseconds. The machine is shared; wall time would count the time the thread waits
/// for a core.
struct ThreadCpu;

fn thread_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    u64::try_from(t.tv_sec).unwrap() * 1_000_000_000 + u64::try_from(t.tv_nsec).unwrap()
}

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, started: u64) -> u64 {
        thread_cpu_ns().saturating_sub(started)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    #[allow(clippy::cast_precision_loss)]
    fn to_f64(&self, ns: &u64) -> f64 {
        *ns as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

/// Nanoseconds of CPU time, shown in ns, µs or ms.
struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if typical < 1e3 {
            (1.0, "ns cpu")
        } else if typical < 1e6 {
            (1e-3, "µs cpu")
        } else {
            (1e-6, "ms cpu")
        };
        for v in values {
            *v *= factor;
        }
        unit
    }
    fn scale_throughputs(&self, _: f64, _: &Throughput, _: &mut [f64]) -> &'static str {
        // No benchmark here sets a throughput: the values stay nanoseconds.
        "ns cpu"
    }
    fn scale_for_machines(&self, _: &mut [f64]) -> &'static str {
        "ns"
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

/// The median of one benchmark in nanoseconds, if this run (started at `since`) measured
/// it: `cargo test` runs each benchmark once and writes no estimates. The median, not the
/// mean: other processes on the machine interfere in bursts.
fn median_ns(group: &str, bench: &str, since: SystemTime) -> Option<f64> {
    let path = criterion_home()
        .join(group)
        .join(bench)
        .join("new/estimates.json");
    if std::fs::metadata(&path).ok()?.modified().ok()? < since {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["median"]["point_estimate"].as_f64()
}

fn main() {
    let started = SystemTime::now();
    let mut c = Criterion::default()
        .with_measurement(ThreadCpu)
        .configure_from_args();
    bench(&mut c);
    c.final_summary();
    let mut rows = Vec::new();
    for op in ["encode", "decode"] {
        for n in SIZES {
            let group = format!("{op}_{n}");
            let us = |bench| median_ns(&group, bench, started).map(|ns| ns / 1000.0);
            if let (Some(codec), Some(floor)) = (us("codec"), us("floor")) {
                let request = us("request").map_or_else(|| "–".into(), |r| format!("{r:.2}"));
                rows.push(format!(
                    "| {op} | {n} | {codec:.2} | {floor:.2} | {:.2}× | {request} |",
                    codec / floor
                ));
            }
        }
    }
    if !rows.is_empty() {
        println!("\n| op | messages | codec µs | floor µs | codec / floor | request µs |");
        println!("|---|---:|---:|---:|---:|---:|");
        for row in rows {
            println!("{row}");
        }
    }
    let mut rows = Vec::new();
    for n in [1, 2, 5, 20] {
        let group = format!("deflate_{n}");
        let us = |bench: &str| {
            median_ns(&group, bench, started)
                .map_or_else(|| "–".into(), |ns| format!("{:.2}", ns / 1000.0))
        };
        rows.push(format!(
            "| {n} | {} | {} | {} | {} | {} | {} |",
            us("fixed_1"),
            us("fixed_6"),
            us("dynamic_1"),
            us("dynamic_6"),
            us("inflate_fixed_1"),
            us("inflate_dynamic_1"),
        ));
    }
    if median_ns("deflate_1", "fixed_1", started).is_some() {
        println!(
            "\n| messages | fixed 1 µs | fixed 6 µs | dynamic 1 µs | dynamic 6 µs | inflate fixed 1 µs | inflate dynamic 1 µs |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|");
        for row in rows {
            println!("{row}");
        }
    }
}
