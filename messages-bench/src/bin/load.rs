//! `cargo run --release -p messages-bench --bin load`: every row (axum and actix-web) at
//! concurrency 1, 16 and 64 on both workloads, three rounds, medians printed as Markdown
//! tables (one per workload and framework) and written as JSON to
//! `target/messages-bench/load.json`.
//!
//! `BENCH_SCALE=0.1` (say) scales the request counts down for a quick look.
//! `-- --rows postgres,sqlite` runs only the rows whose label holds one of the words (any
//! case), with the bare and floor rows of their frameworks and their axum-messages peers
//! on the same store, so that their ratios are filled in.
//!
//! `-- --quick` is the regression guard CI runs (`scripts/test`): every row (or those of
//! `--rows`), both workloads, 1 and 8 clients, a few dozen iterations, one round; it
//! prints counts, never times, and exits non-zero if a response broke the contract or a
//! row made more store calls than [`Row::expected_store_calls`]. A row whose server
//! (redis-server, PostgreSQL) is missing is an error when `CI` is set, and is reported
//! as SKIPPED otherwise.
//!
//! Warnings and errors of the libraries (a store call that failed, say) go to stderr;
//! `RUST_LOG` chooses others.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use messages_bench::BenchError;
use messages_bench::apps::{App, Backend, Row, Servers};
use messages_bench::client::{self, Cell, Sample, Workload};
use messages_bench::cpu::{CLIENT_THREADS, SERVER_THREADS, runtime};
use messages_bench::report::{Line, Machine, Report, add_ratios, load_average};
use messages_tests::postgres_server::PostgresServer;
use messages_tests::redis_server::RedisServer;

const CONCURRENCY: [usize; 3] = [1, 16, 64];
const ROUNDS: usize = 3;
/// Iterations measured per cell (pairs, or GETs), before `BENCH_SCALE`.
const ITERATIONS: [(Workload, usize); 2] =
    [(Workload::FlashPair, 10_000), (Workload::PlainGet, 20_000)];
/// Iterations of warm-up per cell.
const WARMUP: usize = 1_000;

/// `--quick`: iterations per cell, its warm-up, and its concurrencies.
const QUICK_ITERATIONS: usize = 48;
const QUICK_WARMUP: usize = 8;
const QUICK_CONCURRENCY: [usize; 2] = [1, 8];

const USAGE: &str = "usage: load [--quick] [--rows WORD,WORD,...]";

/// What the command line asks for.
#[derive(Debug, PartialEq)]
struct Args {
    rows: Vec<Row>,
    quick: bool,
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("load: {e}\n{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = if args.quick {
        quick(&args.rows)
    } else {
        run(&args.rows)
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("load: {e}");
            ExitCode::FAILURE
        }
    }
}

fn scale() -> f64 {
    std::env::var("BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(1.0)
}

#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]
fn scaled(n: usize, scale: f64) -> usize {
    ((n as f64 * scale).round() as usize).max(1)
}

/// Where the JSON goes: `$CARGO_TARGET_DIR` or the workspace's `target/`.
fn json_path() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(
            || {
                let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
                crate_dir
                    .parent()
                    .map_or(crate_dir.clone(), PathBuf::from)
                    .join("target")
            },
            PathBuf::from,
        )
        .join("messages-bench/load.json")
}

/// The arguments: `--quick`, and the rows — every row without `--rows`; with it, the
/// rows whose label holds one of its comma-separated words, the bare and floor rows of
/// their frameworks, and their store peers ([`Row::store_peer`]), in table order.
fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut words: Option<Vec<String>> = None;
    let mut quick = false;
    while let Some(arg) = args.next() {
        if arg == "--quick" {
            quick = true;
            continue;
        }
        let list = match arg.strip_prefix("--rows") {
            Some("") => args.next().ok_or("--rows needs a list")?,
            Some(rest) if rest.starts_with('=') => rest[1..].to_owned(),
            _ => return Err(format!("unknown argument {arg:?}")),
        };
        let list = list.split(',').map(|w| w.trim().to_lowercase());
        words
            .get_or_insert_with(Vec::new)
            .extend(list.filter(|w| !w.is_empty()));
    }
    let Some(words) = words else {
        return Ok(Args {
            rows: Row::ALL.to_vec(),
            quick,
        });
    };
    let chosen: Vec<Row> = Row::ALL
        .into_iter()
        .filter(|row| words.iter().any(|w| row.label().contains(w.as_str())))
        .collect();
    if chosen.is_empty() {
        return Err(format!("no row's label holds any of {words:?}"));
    }
    let rows = Row::ALL
        .into_iter()
        .filter(|row| {
            chosen.contains(row)
                || chosen.iter().any(|c| {
                    let framework = c.framework();
                    framework.bare() == *row
                        || framework.floor() == *row
                        || c.store_peer() == Some(*row)
                })
        })
        .collect();
    Ok(Args { rows, quick })
}

/// The database servers `rows` need, started once for the run.
fn start_servers(rows: &[Row]) -> (Option<RedisServer>, Option<PostgresServer>) {
    let needs = |backend| rows.iter().any(|r| r.backend() == backend);
    let redis = needs(Backend::Redis).then(RedisServer::start).flatten();
    let postgres = needs(Backend::Postgres)
        .then(PostgresServer::start)
        .flatten();
    (redis, postgres)
}

/// What broke in one cell of `--quick`: responses that broke the contract, and store
/// calls over the row's expected figure (or counted where none are expected, or not
/// counted where some are).
fn violations(row: Row, workload: Workload, sample: &Sample) -> Vec<String> {
    let mut found = Vec::new();
    if sample.failures > 0 {
        found.push(format!(
            "{} responses broke the contract, first: {}",
            sample.failures,
            sample.first_failure.as_deref().unwrap_or("?")
        ));
    }
    let iterations = sample.requests / workload.requests_per_iteration();
    match (row.expected_store_calls(workload), sample.store_calls) {
        (Some(per), Some(calls)) if calls > per * iterations => found.push(format!(
            "{calls} store calls in {iterations} iterations, more than the expected {per} each"
        )),
        (Some(_), Some(_)) | (None, None) => {}
        (expected, counted) => found.push(format!(
            "store calls expected {expected:?} per iteration, counted {counted:?}"
        )),
    }
    found
}

/// `--quick`: every row once, few iterations, counts checked; `Ok(false)` on a violation.
fn quick(rows: &[Row]) -> Result<bool, BenchError> {
    let started = Instant::now();
    let server_rt = runtime(SERVER_THREADS)?;
    let client_rt = runtime(CLIENT_THREADS)?;
    let (redis, postgres) = start_servers(rows);
    let servers = Servers {
        redis: redis.as_ref(),
        postgres: postgres.as_ref(),
    };
    let required = std::env::var_os("CI").is_some();
    let mut ok = true;
    println!(
        "| row | workload | clients | requests | store calls per iteration (expected at most) | Cookie B/req | Set-Cookie B/req | verdict |"
    );
    println!("|---|---|---:|---:|---|---:|---:|---|");
    for &row in rows {
        if let Some(server) = servers.missing_for(row) {
            if required {
                eprintln!(
                    "load --quick: {}: {server} is missing (CI is set)",
                    row.label()
                );
                ok = false;
            } else {
                eprintln!(
                    "load --quick: {} SKIPPED: {server} is not installed",
                    row.label()
                );
            }
            continue;
        }
        let app = server_rt.block_on(App::start(row, servers))?;
        for workload in Workload::ALL {
            for concurrency in QUICK_CONCURRENCY {
                let cell = Cell {
                    workload,
                    concurrency,
                    iterations: QUICK_ITERATIONS,
                    warmup: QUICK_WARMUP,
                };
                let sample = client_rt.block_on(client::measure(&app, cell))?;
                let found = violations(row, workload, &sample);
                ok &= found.is_empty();
                let requests = sample.requests.max(1) as u64;
                let iterations = sample.requests / workload.requests_per_iteration();
                #[allow(clippy::cast_precision_loss)]
                let calls = sample.store_calls.map_or_else(
                    || "–".to_owned(),
                    |c| format!("{:.2}", c as f64 / iterations.max(1) as f64),
                );
                let expected = row
                    .expected_store_calls(workload)
                    .map_or_else(|| "–".to_owned(), |e| e.to_string());
                println!(
                    "| {} | {workload:?} | {concurrency} | {} | {calls} ({expected}) | {} | {} | {} |",
                    row.label(),
                    sample.requests,
                    sample.cookie_bytes / requests,
                    sample.set_cookie_bytes / requests,
                    if found.is_empty() {
                        "ok".to_owned()
                    } else {
                        found.join("; ")
                    }
                );
            }
        }
    }
    eprintln!(
        "load --quick: {} rows in {:.0} s: {}",
        rows.len(),
        started.elapsed().as_secs_f64(),
        if ok { "ok" } else { "FAILED" }
    );
    Ok(ok)
}

/// Runs `rows`; `Ok(false)` if some response broke the contract.
fn run(rows: &[Row]) -> Result<bool, BenchError> {
    let started = Instant::now();
    let machine = Machine::now();
    let scale = scale();
    let server_rt = runtime(SERVER_THREADS)?;
    let client_rt = runtime(CLIENT_THREADS)?;

    let mut notes = vec![
        "axum-flash 0.8.0 is left out: it is built on axum-core 0.4 (axum 0.7), and its extractors are not axum 0.8 handlers' (see BENCHMARKS.md).".to_owned(),
    ];
    // One server of each kind for the run, started if a row needs it; each PostgreSQL
    // row gets a database of its own there.
    let (redis, postgres) = start_servers(rows);
    let servers = Servers {
        redis: redis.as_ref(),
        postgres: postgres.as_ref(),
    };
    let mut apps = Vec::new();
    for &row in rows {
        if let Some(server) = servers.missing_for(row) {
            notes.push(format!(
                "{} left out: {server} is not installed.",
                row.label()
            ));
            continue;
        }
        apps.push(server_rt.block_on(App::start(row, servers))?);
    }

    // Rounds outermost, and the rows of one cell back to back: a burst of load from
    // elsewhere hits one round of every row alike rather than every round of one row.
    let mut samples: Vec<((Row, Workload, usize), Vec<Sample>)> = Vec::new();
    let labels: Vec<&str> = apps.iter().map(|a| a.row.label()).collect();
    eprintln!("req/s of: {}", labels.join(", "));
    for round in 1..=ROUNDS {
        for (workload, iterations) in ITERATIONS {
            for concurrency in CONCURRENCY {
                let cell = Cell {
                    workload,
                    concurrency,
                    iterations: scaled(iterations, scale),
                    warmup: scaled(WARMUP, scale),
                };
                let mut rates = Vec::new();
                for app in &apps {
                    let sample = client_rt.block_on(client::measure(app, cell))?;
                    #[allow(clippy::cast_precision_loss)]
                    rates.push(format!(
                        "{:.0}",
                        sample.requests as f64 / sample.elapsed.as_secs_f64()
                    ));
                    let key = (app.row, workload, concurrency);
                    match samples.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, list)) => list.push(sample),
                        None => samples.push((key, vec![sample])),
                    }
                }
                eprintln!(
                    "round {round}/{ROUNDS} {workload:?} c={concurrency:<2} req/s {} ({:.0} s)",
                    rates.join(" "),
                    started.elapsed().as_secs_f64()
                );
            }
        }
    }
    drop(apps);

    let mut lines: Vec<Line> = Vec::new();
    for workload in Workload::ALL {
        for concurrency in CONCURRENCY {
            for ((row, w, c), list) in &samples {
                if *w == workload && *c == concurrency {
                    lines.push(Line::new(*row, workload, concurrency, list));
                }
            }
        }
    }
    add_ratios(&mut lines);
    let failures: usize = lines.iter().map(|l| l.failures).sum();
    for line in lines.iter().filter(|l| l.failures > 0) {
        eprintln!(
            "{} {:?} c={}: {} failures, first: {}",
            line.label,
            line.workload,
            line.concurrency,
            line.failures,
            line.first_failure.as_deref().unwrap_or("?")
        );
    }
    let report = Report {
        machine: Machine {
            load_after: load_average(),
            ..machine
        },
        rounds: ROUNDS,
        seconds: started.elapsed().as_secs_f64(),
        lines,
        notes,
    };
    println!("{}", report.markdown());
    let path = json_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    eprintln!("wrote {}", path.display());
    Ok(failures == 0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn args(list: &[&str]) -> Result<Vec<Row>, String> {
        parse(list.iter().map(|a| (*a).to_owned())).map(|a| a.rows)
    }

    #[test]
    fn quick_is_a_flag_beside_rows() {
        let quick = |list: &[&str]| parse(list.iter().map(|a| (*a).to_owned())).unwrap();
        assert!(!quick(&[]).quick);
        assert_eq!(
            quick(&["--quick", "--rows", "redis"]),
            Args {
                rows: vec![
                    Row::Bare,
                    Row::Floor,
                    Row::Redis,
                    Row::FloorRedis,
                    Row::FloorRedisLeased,
                    Row::AxumMessagesRedis,
                    Row::ActixBare,
                    Row::ActixFloor,
                    Row::ActixRedis
                ],
                quick: true
            }
        );
    }

    fn sample(requests: usize, store_calls: Option<usize>, failures: usize) -> Sample {
        Sample {
            requests,
            store_calls,
            failures,
            first_failure: (failures > 0).then(|| "GET /settings: no message".to_owned()),
            ..Sample::default()
        }
    }

    #[test]
    fn quick_fails_on_more_store_calls_than_expected_or_a_broken_contract() {
        let pair = Workload::FlashPair;
        // 10 pairs (20 requests) on Redis: 3 calls each expected.
        assert!(violations(Row::Redis, pair, &sample(20, Some(30), 0)).is_empty());
        assert!(violations(Row::Redis, pair, &sample(20, Some(20), 0)).is_empty());
        assert_eq!(
            violations(Row::Redis, pair, &sample(20, Some(31), 0)).len(),
            1
        );
        // A plain GET on our stores makes none.
        let plain = Workload::PlainGet;
        assert_eq!(
            violations(Row::Memory, plain, &sample(8, Some(1), 0)).len(),
            1
        );
        assert!(violations(Row::Memory, plain, &sample(8, Some(0), 0)).is_empty());
        // A broken response, a count where none is expected, none where one is.
        assert_eq!(violations(Row::Cookie, pair, &sample(20, None, 1)).len(), 1);
        assert_eq!(
            violations(Row::Cookie, pair, &sample(20, Some(0), 0)).len(),
            1
        );
        assert_eq!(violations(Row::Memory, pair, &sample(20, None, 0)).len(), 1);
    }

    #[test]
    fn rows_are_chosen_by_label_with_their_bases() {
        assert_eq!(args(&[]).unwrap(), Row::ALL.to_vec());
        assert_eq!(
            args(&["--rows", "Postgres,sqlite"]).unwrap(),
            [
                Row::Bare,
                Row::Floor,
                Row::Postgres,
                Row::Sqlite,
                Row::AxumMessagesPostgres,
                Row::AxumMessagesSqlite
            ]
        );
        assert_eq!(
            args(&["--rows=ours: memory"]).unwrap(),
            [Row::Bare, Row::Floor, Row::Memory, Row::AxumMessages]
        );
        assert_eq!(
            args(&["--rows", "floor axum: memory"]).unwrap(),
            [Row::Bare, Row::Floor, Row::FloorMemory, Row::AxumMessages]
        );
        assert_eq!(
            args(&["--rows", "on actix: redis"]).unwrap(),
            [Row::ActixBare, Row::ActixFloor, Row::ActixRedis]
        );
        assert!(args(&["--rows", "nothing"]).is_err());
        assert!(args(&["--rows"]).is_err());
        assert!(args(&["--fast"]).is_err());
    }
}
