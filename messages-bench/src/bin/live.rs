//! Live delivery at scale: the axum example (`target/release/messages-example`, memory
//! store) as a child process, `--streams` concurrent `GET /dashboard/events` streams
//! from this process (one browser session each, loopback), then `--pushes` messages,
//! each added with `POST /notes` to one stream's session and timed from the request to
//! its event on the stream.
//!
//! ```sh
//! cargo build --release -p messages-example -p messages-bench
//! target/release/live --streams 10000 --pushes 1000
//! ```
//!
//! Prints the server's resident memory before and after opening the streams (per
//! stream), and the push latency p50/p90/p99/max. Needs a file-descriptor limit above
//! the stream count (`ulimit -n`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

/// The server's resident set in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// One open stream: its session cookie and the read half of its connection.
struct Stream {
    cookie: String,
    reader: OwnedReadHalf,
    _writer: tokio::net::tcp::OwnedWriteHalf,
    buffer: Vec<u8>,
}

async fn open(addr: SocketAddr) -> Stream {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = tcp.into_split();
    writer
        .write_all(
            b"GET /dashboard/events HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n",
        )
        .await
        .unwrap();
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    // Headers, and the first chunk (`retry:`).
    while !contains(&buffer, b"retry:") {
        let n = reader.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the server closed a stream at open");
        buffer.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buffer);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let cookie = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: messages_session=")
                .then(|| {
                    l["set-cookie: ".len()..]
                        .split(';')
                        .next()
                        .unwrap()
                        .to_owned()
                })
        })
        .expect("a session cookie");
    buffer.clear();
    Stream {
        cookie,
        reader,
        _writer: writer,
        buffer,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Adds one note to the stream's session and waits for its event.
async fn push(addr: SocketAddr, stream: &mut Stream, text: &str) -> Duration {
    let body = format!("text={text}&count=1");
    let request = format!(
        "POST /notes HTTP/1.1\r\nHost: bench\r\nCookie: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        stream.cookie,
        body.len()
    );
    let started = Instant::now();
    let mut post = TcpStream::connect(addr).await.unwrap();
    post.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    post.read_to_end(&mut answer).await.unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 303"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let mut chunk = [0u8; 4096];
    while !contains(&stream.buffer, text.as_bytes()) {
        let n = tokio::time::timeout(Duration::from_secs(30), stream.reader.read(&mut chunk))
            .await
            .expect("the event within 30 s")
            .unwrap();
        assert!(n > 0, "the stream closed");
        stream.buffer.extend_from_slice(&chunk[..n]);
    }
    let took = started.elapsed();
    stream.buffer.clear();
    took
}

/// The `per_mille`th of a sorted sample (nearest rank).
fn percentile(sorted: &[Duration], per_mille: usize) -> Duration {
    sorted[(sorted.len() - 1) * per_mille / 1000]
}

#[tokio::main]
async fn main() {
    let streams = arg("--streams", 1000);
    let pushes = arg("--pushes", 1000);
    let exe = std::env::current_exe().unwrap();
    let server_bin = exe.with_file_name("messages-example");
    let mut server = Command::new(&server_bin)
        .env("PORT", "0")
        .env("MESSAGES_STORE", "memory")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (cargo build --release -p messages-example)",
                server_bin.display()
            )
        });
    let pid = server.id();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: SocketAddr = line
        .trim()
        .rsplit("http://")
        .next()
        .and_then(|a| a.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss_kib(pid);

    let opened = Instant::now();
    let mut open_streams = Vec::with_capacity(streams);
    for batch in 0..streams.div_ceil(200) {
        let n = (streams - batch * 200).min(200);
        let handles: Vec<_> = (0..n).map(|_| tokio::spawn(open(addr))).collect();
        for h in handles {
            open_streams.push(h.await.unwrap());
        }
    }
    let open_time = opened.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib(pid);
    let per_stream = after.saturating_sub(before) * 1024 / u64::try_from(streams).unwrap();

    let mut latencies = Vec::with_capacity(pushes);
    for i in 0..pushes {
        let stream = &mut open_streams[(i * 7919) % streams];
        latencies.push(push(addr, stream, &format!("p{i}x")).await);
    }
    latencies.sort();
    println!(
        "streams={streams} opened_in={open_time:.2?} server_rss_before={before}KiB after={after}KiB per_stream={per_stream}B"
    );
    println!(
        "pushes={pushes} (one at a time, POST /notes -> event) p50={:.2?} p90={:.2?} p99={:.2?} max={:.2?}",
        percentile(&latencies, 500),
        percentile(&latencies, 900),
        percentile(&latencies, 990),
        latencies[latencies.len() - 1]
    );
    drop(open_streams);
    let _ = server.kill();
    let _ = server.wait();
}
