//! From samples to the table: per-request figures, medians over rounds, ratios to the
//! framework's bare floor (bare axum, bare actix-web), to its other flash libraries
//! (axum-messages on its memory store; actix-web-flash-messages on its two stores) and to
//! axum-messages on the same kind of store ([`Row::store_peer`]), Markdown and JSON.

use std::fmt::Write as _;

use serde::Serialize;

use crate::apps::{Framework, Row};
use crate::client::{Sample, Workload};

/// One sample's figures, per request.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Metrics {
    /// Requests per second (wall clock, all clients together).
    pub requests_per_s: f64,
    /// Median latency, µs.
    pub p50_us: f64,
    /// 99th percentile latency, µs.
    pub p99_us: f64,
    /// Bytes of `Cookie` sent per request.
    pub cookie_bytes: f64,
    /// Bytes of `Set-Cookie` received per request.
    pub set_cookie_bytes: f64,
    /// Server-store calls per request; `None` without a server store.
    pub store_calls: Option<f64>,
    /// Round trips to Redis per request, for our Redis rows (`RedisStore::round_trips`):
    /// a settle is a store call the store holds back and sends with its next command.
    pub round_trips: Option<f64>,
    /// CPU µs of the server threads per request.
    pub server_cpu_us: Option<f64>,
    /// CPU µs of the client threads per request.
    pub client_cpu_us: Option<f64>,
    /// CPU µs of the row's database per request: `redis-server`, PostgreSQL's processes
    /// or SQLite's threads ([`crate::cpu::Database`]); `None` without one.
    pub db_cpu_us: Option<f64>,
}

#[allow(clippy::cast_precision_loss)]
fn per_request(total: f64, requests: usize) -> f64 {
    total / requests.max(1) as f64
}

impl Metrics {
    /// The figures of one sample.
    #[allow(clippy::cast_precision_loss)]
    pub fn of(sample: &Sample) -> Metrics {
        let mut latencies = sample.latencies_ns.clone();
        latencies.sort_unstable();
        let n = sample.requests;
        let cpu = sample.cpu;
        let us = |ns: u64| per_request(ns as f64 / 1000.0, n);
        Metrics {
            requests_per_s: n as f64 / sample.elapsed.as_secs_f64().max(f64::MIN_POSITIVE),
            p50_us: percentile(&latencies, 0.50) as f64 / 1000.0,
            p99_us: percentile(&latencies, 0.99) as f64 / 1000.0,
            cookie_bytes: per_request(sample.cookie_bytes as f64, n),
            set_cookie_bytes: per_request(sample.set_cookie_bytes as f64, n),
            store_calls: sample.store_calls.map(|c| per_request(c as f64, n)),
            round_trips: sample.round_trips.map(|c| per_request(c as f64, n)),
            server_cpu_us: cpu.map(|c| us(c.server_ns)),
            client_cpu_us: cpu.map(|c| us(c.client_ns)),
            db_cpu_us: cpu.and_then(|c| c.db_ns).map(us),
        }
    }

    /// The median of each figure over rounds (each figure on its own).
    pub fn median(rounds: &[Metrics]) -> Metrics {
        let m = |f: fn(&Metrics) -> f64| median(rounds.iter().map(f).collect());
        let o = |f: fn(&Metrics) -> Option<f64>| {
            let values: Vec<f64> = rounds.iter().filter_map(f).collect();
            (!values.is_empty()).then(|| median(values))
        };
        Metrics {
            requests_per_s: m(|r| r.requests_per_s),
            p50_us: m(|r| r.p50_us),
            p99_us: m(|r| r.p99_us),
            cookie_bytes: m(|r| r.cookie_bytes),
            set_cookie_bytes: m(|r| r.set_cookie_bytes),
            store_calls: o(|r| r.store_calls),
            round_trips: o(|r| r.round_trips),
            server_cpu_us: o(|r| r.server_cpu_us),
            client_cpu_us: o(|r| r.client_cpu_us),
            db_cpu_us: o(|r| r.db_cpu_us),
        }
    }
}

/// Nearest-rank percentile of sorted values; 0 for none.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median (mean of the middle two for an even count); 0 for none.
pub fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        f64::midpoint(values[mid - 1], values[mid])
    }
}

/// One line of the table: a row at a concurrency on a workload, over all rounds.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    /// The row.
    pub row: Row,
    /// Its label.
    pub label: &'static str,
    /// The workload.
    pub workload: Workload,
    /// Clients at once.
    pub concurrency: usize,
    /// Requests measured per round.
    pub requests: usize,
    /// Medians over the rounds.
    pub median: Metrics,
    /// Each round.
    pub rounds: Vec<Metrics>,
    /// Beside the bare row of its framework, same workload and concurrency.
    pub vs_bare: Option<Ratios>,
    /// Beside the floor row of its framework ([`Framework::floor`]), same workload and
    /// concurrency.
    pub vs_floor: Option<Ratios>,
    /// Beside each other flash library of its framework ([`Framework::peers`]), same
    /// workload and concurrency.
    pub vs_peers: Vec<PeerRatios>,
    /// Beside axum-messages on the same kind of store ([`Row::store_peer`]), same
    /// workload and concurrency.
    pub vs_store_peer: Option<Ratios>,
    /// Responses that broke the contract, all rounds.
    pub failures: usize,
    /// The first such response.
    pub first_failure: Option<String>,
}

impl Line {
    /// A line from its rounds' samples.
    pub fn new(row: Row, workload: Workload, concurrency: usize, samples: &[Sample]) -> Line {
        let rounds: Vec<Metrics> = samples.iter().map(Metrics::of).collect();
        Line {
            row,
            label: row.label(),
            workload,
            concurrency,
            requests: samples.first().map_or(0, |s| s.requests),
            median: Metrics::median(&rounds),
            rounds,
            vs_bare: None,
            vs_floor: None,
            vs_peers: Vec::new(),
            vs_store_peer: None,
            failures: samples.iter().map(|s| s.failures).sum(),
            first_failure: samples.iter().find_map(|s| s.first_failure.clone()),
        }
    }
}

/// A line's figures over another line's of the same workload and concurrency: the ratio
/// in each round (the rows of one round ran back to back, under the same outside load),
/// then the median over rounds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Ratios {
    /// Requests per second over the other's (above 1: faster).
    pub requests_per_s: f64,
    /// Server-side CPU per request (with the database's) over the other's (above 1:
    /// costlier).
    pub server_cpu: Option<f64>,
}

impl Metrics {
    /// CPU per request on the server side: the server threads and the database.
    pub fn server_side_cpu_us(&self) -> Option<f64> {
        self.server_cpu_us
            .map(|s| s + self.db_cpu_us.unwrap_or(0.0))
    }
}

impl Ratios {
    /// `line` over `base`, round by round, then the medians.
    pub fn of(line: &Line, base: &Line) -> Option<Ratios> {
        let pairs: Vec<(&Metrics, &Metrics)> = line.rounds.iter().zip(&base.rounds).collect();
        let rates: Vec<f64> = pairs
            .iter()
            .filter(|(_, b)| b.requests_per_s > 0.0)
            .map(|(l, b)| l.requests_per_s / b.requests_per_s)
            .collect();
        let cpus: Vec<f64> = pairs
            .iter()
            .filter_map(|(l, b)| {
                let (l, b) = (l.server_side_cpu_us()?, b.server_side_cpu_us()?);
                (b > 0.0).then(|| l / b)
            })
            .collect();
        (!rates.is_empty()).then(|| Ratios {
            requests_per_s: median(rates),
            server_cpu: (!cpus.is_empty()).then(|| median(cpus)),
        })
    }
}

/// A line's ratios to one of its framework's other flash libraries.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PeerRatios {
    /// The other library's row.
    pub peer: Row,
    /// The line over that row's line.
    pub ratios: Ratios,
}

/// A line's ratios to its bare and floor lines, to its framework's peers and to its
/// store peer.
type LineRatios = (
    Option<Ratios>,
    Option<Ratios>,
    Vec<PeerRatios>,
    Option<Ratios>,
);

/// Fills in each line's ratios to the bare and floor lines and to the peer lines of its
/// framework ([`Framework::bare`], [`Framework::floor`], [`Framework::peers`]), and to
/// its store peer
/// ([`Row::store_peer`]), at its workload and concurrency.
pub fn add_ratios(lines: &mut [Line]) {
    let base = |lines: &[Line], row: Row, l: &Line| {
        lines
            .iter()
            .find(|b| b.row == row && b.workload == l.workload && b.concurrency == l.concurrency)
            .and_then(|b| Ratios::of(l, b))
    };
    let ratios: Vec<LineRatios> = lines
        .iter()
        .map(|l| {
            let framework = l.row.framework();
            let peers = framework
                .peers()
                .iter()
                .filter_map(|&peer| base(lines, peer, l).map(|ratios| PeerRatios { peer, ratios }))
                .collect();
            let store_peer = l.row.store_peer().and_then(|peer| base(lines, peer, l));
            (
                base(lines, framework.bare(), l),
                base(lines, framework.floor(), l),
                peers,
                store_peer,
            )
        })
        .collect();
    for (line, (bare, floor, peers, store_peer)) in lines.iter_mut().zip(ratios) {
        line.vs_bare = bare;
        line.vs_floor = floor;
        line.vs_peers = peers;
        line.vs_store_peer = store_peer;
    }
}

/// The machine and the conditions of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Logical CPUs (`nproc`).
    pub cpus: usize,
    /// `model name` from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// `/proc/loadavg` when the run started.
    pub load_before: String,
    /// `/proc/loadavg` when it ended.
    pub load_after: String,
}

impl Machine {
    /// What this machine says about itself now (`load_after` left empty).
    pub fn now() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        Machine {
            cpus: std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
            cpu_model: cpuinfo
                .lines()
                .find_map(|l| l.strip_prefix("model name"))
                .and_then(|l| l.split_once(':'))
                .map_or_else(|| "unknown".to_owned(), |(_, m)| m.trim().to_owned()),
            load_before: load_average(),
            load_after: String::new(),
        }
    }
}

/// The first three fields of `/proc/loadavg`.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Where it ran.
    pub machine: Machine,
    /// Rounds per line (the table shows medians).
    pub rounds: usize,
    /// Wall time of the run, seconds.
    pub seconds: f64,
    /// The lines, by workload, then concurrency, then row.
    pub lines: Vec<Line>,
    /// Rows left out, and why.
    pub notes: Vec<String>,
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.digits$}"))
}

fn ratio(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.2}×"))
}

fn ratios(r: Option<Ratios>) -> (String, String) {
    (
        ratio(r.map(|r| r.requests_per_s)),
        ratio(r.and_then(|r| r.server_cpu)),
    )
}

impl Report {
    /// The report as Markdown: per workload, one table per framework.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(
            out,
            "{} CPUs ({}), load average {} before and {} after; medians of {} rounds; {:.0} s.\n",
            m.cpus, m.cpu_model, m.load_before, m.load_after, self.rounds, self.seconds
        );
        for workload in Workload::ALL {
            let _ = writeln!(
                out,
                "{}\n",
                match workload {
                    Workload::FlashPair =>
                        "**(a) Flash pair** — `POST /settings` adds one message and answers 303, then `GET /settings` renders it; figures per request (a pair is 2 requests).",
                    Workload::PlainGet =>
                        "**(b) Plain GET** — `GET /about` never touches messages, sent by a browser holding the cookies of an earlier pair.",
                }
            );
            for framework in Framework::ALL {
                let lines: Vec<&Line> = self
                    .lines
                    .iter()
                    .filter(|l| l.workload == workload && l.row.framework() == framework)
                    .collect();
                if !lines.is_empty() {
                    table(&mut out, framework, &lines);
                }
            }
        }
        for note in &self.notes {
            let _ = writeln!(out, "- {note}");
        }
        out
    }
}

/// The header of the ratio columns to axum-messages on the same kind of store.
const SAME_STORE: &str = "same-store peer";

/// One framework's lines of one workload as a Markdown table, with a ratio column for
/// its bare row, its floor row, each of its peers and, where a line has one, its store
/// peer.
fn table(out: &mut String, framework: Framework, lines: &[&Line]) {
    let mut bases: Vec<&str> = vec![framework.bare().column(), framework.floor().column()];
    bases.extend(framework.peers().iter().map(|p| p.column()));
    if lines.iter().any(|l| l.row.store_peer().is_some()) {
        bases.push(SAME_STORE);
    }
    let _ = writeln!(out, "{}:\n", framework.label());
    let mut header = "| c | row | req/s |".to_owned();
    for base in &bases {
        let _ = write!(header, " req/s × {base} |");
    }
    header.push_str(" p50 µs | p99 µs | Cookie B/req | Set-Cookie B/req | store calls/req (Redis round trips) | server CPU µs/req | DB CPU µs/req |");
    for base in &bases {
        let _ = write!(header, " CPU × {base} |");
    }
    let _ = writeln!(out, "{header}");
    // c and row, then 8 figures and 2 ratio columns per base.
    let mut rule = "|---:|---|".to_owned();
    rule.push_str(&"---:|".repeat(8 + 2 * bases.len()));
    let _ = writeln!(out, "{rule}");
    for line in lines {
        let d = &line.median;
        // In the order of `bases`: bare, floor, the peers, the store peer.
        let mut of_bases: Vec<(String, String)> = vec![ratios(line.vs_bare), ratios(line.vs_floor)];
        for peer in framework.peers() {
            let r = line.vs_peers.iter().find(|p| p.peer == *peer);
            of_bases.push(ratios(r.map(|p| p.ratios)));
        }
        if bases.len() > of_bases.len() {
            of_bases.push(ratios(line.vs_store_peer));
        }
        let mut row = format!(
            "| {} | {} | {:.0} |",
            line.concurrency, line.label, d.requests_per_s
        );
        for (rate, _) in &of_bases {
            let _ = write!(row, " {rate} |");
        }
        let _ = write!(
            row,
            " {:.0} | {:.0} | {:.0} | {:.0} | {} | {} | {} |",
            d.p50_us,
            d.p99_us,
            d.cookie_bytes,
            d.set_cookie_bytes,
            match d.round_trips {
                Some(rt) => format!("{} ({rt:.2})", opt(d.store_calls, 2)),
                None => opt(d.store_calls, 2),
            },
            opt(d.server_cpu_us, 1),
            opt(d.db_cpu_us, 1),
        );
        for (_, cpu) in &of_bases {
            let _ = write!(row, " {cpu} |");
        }
        if line.failures > 0 {
            let _ = write!(row, " **{} failures**", line.failures);
        }
        let _ = writeln!(out, "{row}");
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::cpu::CpuTimes;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.50), 50);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&v, 1.0), 100);
        assert_eq!(percentile(&[7], 0.99), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert!((median(vec![3.0, 1.0, 2.0]) - 2.0).abs() < f64::EPSILON);
        assert!((median(vec![4.0, 1.0, 2.0, 3.0]) - 2.5).abs() < f64::EPSILON);
        assert!(median(Vec::new()).abs() < f64::EPSILON);
    }

    fn sample(requests: usize, millis: u64, calls: Option<usize>) -> Sample {
        Sample {
            requests,
            elapsed: Duration::from_millis(millis),
            latencies_ns: (1..=requests as u64).map(|i| i * 1000).collect(),
            cookie_bytes: 40 * requests as u64,
            set_cookie_bytes: 0,
            store_calls: calls,
            round_trips: calls.map(|c| c as u64 / 2),
            cpu: Some(CpuTimes {
                server_ns: 20_000 * requests as u64,
                client_ns: 10_000 * requests as u64,
                db_ns: None,
            }),
            failures: 0,
            first_failure: None,
        }
    }

    /// The report of one round of `lines`.
    fn markdown(lines: Vec<Line>) -> String {
        Report {
            machine: Machine::now(),
            rounds: 1,
            seconds: 1.0,
            lines,
            notes: Vec::new(),
        }
        .markdown()
    }

    #[test]
    fn figures_are_per_request_and_ratios_per_cell() {
        let bare = Line::new(Row::Bare, Workload::PlainGet, 16, &[sample(100, 10, None)]);
        let ours = Line::new(
            Row::Memory,
            Workload::PlainGet,
            16,
            &[
                sample(100, 20, Some(0)),
                sample(100, 25, Some(0)),
                sample(100, 50, Some(0)),
            ],
        );
        let other_c = Line::new(Row::Bare, Workload::PlainGet, 1, &[sample(100, 100, None)]);
        let floor = Line::new(Row::Floor, Workload::PlainGet, 16, &[sample(50, 2, None)]);
        let mut lines = vec![bare, ours, other_c, floor];
        add_ratios(&mut lines);
        let d = lines[1].median;
        assert!((d.requests_per_s - 4000.0).abs() < 1e-6, "{d:?}");
        assert!((d.p50_us - 50.0).abs() < 1e-9);
        assert!((d.p99_us - 99.0).abs() < 1e-9);
        assert!((d.cookie_bytes - 40.0).abs() < 1e-9);
        assert_eq!(d.store_calls, Some(0.0));
        assert_eq!(d.server_cpu_us, Some(20.0));
        assert_eq!(d.db_cpu_us, None);
        // Bare at c=16 did 10 000 req/s in its one round: ours did 5000, 4000 and 2000 in
        // its three, the first of which is compared; no axum-messages line.
        let vs_bare = lines[1].vs_bare.unwrap();
        assert!((vs_bare.requests_per_s - 0.5).abs() < 1e-9, "{vs_bare:?}");
        assert_eq!(vs_bare.server_cpu, Some(1.0));
        assert!(lines[1].vs_peers.is_empty());
        assert!((lines[2].vs_bare.unwrap().requests_per_s - 1.0).abs() < 1e-9);
        // Over the floor's line of the same cell (25 000 req/s, 20 µs), none at c=1.
        let vs_floor = lines[1].vs_floor.unwrap();
        assert!((vs_floor.requests_per_s - 0.2).abs() < 1e-9, "{vs_floor:?}");
        assert_eq!(vs_floor.server_cpu, Some(1.0));
        assert_eq!(lines[2].vs_floor, None);
        assert!(lines[3].vs_bare.is_some());
    }

    #[test]
    fn ratios_are_medians_of_rounds_and_count_redis_server_cpu() {
        let mut redis = sample(100, 20, Some(100));
        redis.cpu = redis.cpu.map(|c| CpuTimes {
            db_ns: Some(c.server_ns),
            ..c
        });
        let base = Line::new(
            Row::AxumMessages,
            Workload::FlashPair,
            1,
            &[
                sample(100, 10, Some(200)),
                sample(100, 10, Some(200)),
                sample(100, 40, Some(200)),
            ],
        );
        // Round by round: 0.5, 0.25 and 1.0 of axum-messages' rate; the median is 0.5,
        // not the ratio of the medians (2500 / 10 000).
        let line = Line::new(
            Row::Redis,
            Workload::FlashPair,
            1,
            &[
                redis.clone(),
                sample(100, 40, Some(100)),
                sample(100, 40, Some(100)),
            ],
        );
        let r = Ratios::of(&line, &base).unwrap();
        assert!((r.requests_per_s - 0.5).abs() < 1e-9, "{r:?}");
        // Round 1 costs twice the CPU with redis-server's; the others as much.
        assert_eq!(r.server_cpu, Some(1.0));
        assert_eq!(line.rounds[0].server_side_cpu_us(), Some(40.0));
    }

    #[test]
    fn actix_lines_are_compared_within_their_framework() {
        let line =
            |row, millis| Line::new(row, Workload::FlashPair, 16, &[sample(100, millis, None)]);
        let mut lines = vec![
            line(Row::Bare, 5),
            line(Row::AxumMessages, 40),
            line(Row::ActixBare, 10),
            line(Row::ActixMemory, 20),
            line(Row::AwfmCookie, 20),
            line(Row::AwfmSession, 40),
        ];
        add_ratios(&mut lines);
        let ours = &lines[3];
        // Over bare actix-web (10 ms), not bare axum (5 ms); no axum-messages column.
        assert!((ours.vs_bare.unwrap().requests_per_s - 0.5).abs() < 1e-9);
        let peers: Vec<(Row, f64)> = ours
            .vs_peers
            .iter()
            .map(|p| (p.peer, p.ratios.requests_per_s))
            .collect();
        assert_eq!(peers, vec![(Row::AwfmCookie, 1.0), (Row::AwfmSession, 2.0)]);
        assert_eq!(lines[0].vs_peers.len(), 1);
        let report = markdown(lines);
        assert!(
            report.contains("| req/s × AWFM cookie | req/s × AWFM session |"),
            "{report}"
        );
        assert!(report.contains("actix-web 4:") && report.contains("axum 0.8:"));
        let actix = report.split("actix-web 4:").nth(1).unwrap();
        assert!(!actix.contains(SAME_STORE), "{actix}");
    }

    #[test]
    fn database_rows_are_compared_with_axum_messages_on_the_same_store() {
        let line = |row, millis, db_ns| {
            let mut s = sample(100, millis, Some(300));
            s.cpu = s.cpu.map(|c| CpuTimes { db_ns, ..c });
            Line::new(row, Workload::FlashPair, 16, &[s])
        };
        let mut lines = vec![
            line(Row::Bare, 5, None),
            line(Row::Memory, 10, None),
            line(Row::Cookie, 10, None),
            line(Row::Postgres, 30, Some(3_000_000)),
            line(Row::AxumMessages, 20, None),
            line(Row::AxumMessagesPostgres, 60, Some(7_000_000)),
            line(Row::ActixMemory, 10, None),
        ];
        add_ratios(&mut lines);
        let postgres = &lines[3];
        assert_eq!(postgres.median.db_cpu_us, Some(30.0));
        // 30 ms against its peer's 60 and the memory peer's 20; CPU 20 + 30 against
        // 20 + 70 and 20.
        let same = postgres.vs_store_peer.unwrap();
        assert!((same.requests_per_s - 2.0).abs() < 1e-9, "{same:?}");
        assert_eq!(same.server_cpu, Some(50.0 / 90.0));
        let memory_peer = postgres.vs_peers[0].ratios;
        assert!((memory_peer.requests_per_s - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(memory_peer.server_cpu, Some(2.5));
        assert!((lines[1].vs_store_peer.unwrap().requests_per_s - 2.0).abs() < 1e-9);
        assert_eq!(
            lines[2].vs_store_peer, None,
            "axum-messages keeps no cookies"
        );
        assert_eq!(lines[6].vs_store_peer, None, "actix-web");
        let report = markdown(lines);
        let axum = report.split("actix-web 4:").next().unwrap();
        assert!(
            axum.contains("| req/s × axum-messages | req/s × same-store peer | p50 µs"),
            "{report}"
        );
        // As many columns in the rule as in the header and the rows.
        let columns: Vec<usize> = axum
            .lines()
            .filter(|l| l.starts_with('|'))
            .map(|l| l.matches('|').count())
            .collect();
        assert!(columns.windows(2).all(|w| w[0] == w[1]), "{columns:?}");
        assert!(axum.contains("| server CPU µs/req | DB CPU µs/req | CPU × bare |"));
        assert!(
            axum.contains("| 20.0 | 30.0 | 2.50× | – | 2.50× | 0.56× |"),
            "{report}"
        );
        let actix = report.split("actix-web 4:").nth(1).unwrap();
        assert!(!actix.contains(SAME_STORE), "{actix}");
    }
}
