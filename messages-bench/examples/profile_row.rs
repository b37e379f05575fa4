//! One row of the load harness under steady load, for a profiler: 40 000 iterations from
//! 16 clients, then the request count, time and server CPU per request. Arguments: the
//! row's label (as in the tables, `"ours: memory"`; default `ours: redis`) and the workload
//! (`pair`, the default, or `plain`).
//!
//! ```text
//! CARGO_TARGET_DIR=target/fp RUSTFLAGS="-C force-frame-pointers=yes" \
//!   CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
//!   cargo build --release -p messages-bench --example profile_row
//! perf record -F 4000 --call-graph fp target/fp/release/examples/profile_row redis
//! perf report --comm bench-server --children --sort sym
//! ```

use std::process::ExitCode;

use messages_bench::BenchError;
use messages_bench::apps::{App, Row, Servers};
use messages_bench::client::{self, Cell, Workload};
use messages_bench::cpu::{CLIENT_THREADS, SERVER_THREADS, runtime};
use messages_tests::redis_server::RedisServer;

fn run() -> Result<(), BenchError> {
    let mut args = std::env::args().skip(1);
    let label = args.next().unwrap_or_else(|| Row::Redis.label().to_owned());
    let Some(row) = Row::ALL.into_iter().find(|r| r.label() == label) else {
        return Err(std::io::Error::other(format!("no row is labelled {label:?}")).into());
    };
    let workload = match args.next().as_deref() {
        Some("plain") => Workload::PlainGet,
        _ => Workload::FlashPair,
    };
    let (server_rt, client_rt) = (runtime(SERVER_THREADS)?, runtime(CLIENT_THREADS)?);
    let redis = RedisServer::start();
    let servers = Servers {
        redis: redis.as_ref(),
        postgres: None,
    };
    let app = server_rt.block_on(App::start(row, servers))?;
    let cell = Cell {
        workload,
        concurrency: 16,
        iterations: 40_000,
        warmup: 1_000,
    };
    let sample = client_rt.block_on(client::measure(&app, cell))?;
    #[allow(clippy::cast_precision_loss)]
    let server_us = sample.cpu.map_or(0.0, |c| {
        c.server_ns as f64 / 1e3 / sample.requests.max(1) as f64
    });
    eprintln!(
        "{}: {} requests in {:?}, {} failed, server CPU {server_us:.2} µs/request",
        row.label(),
        sample.requests,
        sample.elapsed,
        sample.failures
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("profile_row: {e}");
            ExitCode::FAILURE
        }
    }
}
