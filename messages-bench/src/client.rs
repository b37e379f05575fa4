//! The load: keep-alive HTTP/1 clients, each one browser with its own cookie jar.
//!
//! A [`Cell`] is one row at one concurrency on one workload: `concurrency` clients connect
//! (one connection each, kept alive), warm up, then share a fixed number of iterations.
//! Each response is checked — a redirect where one is due, the message shown exactly once
//! where it is due and nowhere else — so a row that silently drops messages shows up as
//! failures, not as speed.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::http::header::{CONTENT_TYPE, COOKIE, HOST, LOCATION, SET_COOKIE};
use axum::http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::BodyExt as _;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use messages_core::request::Committed;
use messages_tests::Browser;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::BenchError;
use crate::apps::{ABOUT, App, FORM, SAVED, SETTINGS};
use crate::cpu::CpuTimes;

/// What each client does, over and over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Workload {
    /// `POST /settings` (adds a message, 303) then `GET /settings` (shows it): two
    /// requests per iteration.
    FlashPair,
    /// `GET /about`, which never touches messages, by a browser that already holds the
    /// cookies of an earlier flash pair: one request per iteration.
    PlainGet,
}

impl Workload {
    /// Both workloads, in table order.
    pub const ALL: [Workload; 2] = [Workload::FlashPair, Workload::PlainGet];

    /// Requests per iteration.
    pub fn requests_per_iteration(self) -> usize {
        match self {
            Workload::FlashPair => 2,
            Workload::PlainGet => 1,
        }
    }
}

/// One measurement: a row, a workload, a concurrency, fixed counts.
#[derive(Debug, Clone, Copy)]
pub struct Cell {
    /// The workload.
    pub workload: Workload,
    /// Clients at once.
    pub concurrency: usize,
    /// Iterations measured, shared evenly by the clients (rounded down to a multiple of
    /// `concurrency`, at least one each).
    pub iterations: usize,
    /// Iterations before measuring, shared likewise (at least one each).
    pub warmup: usize,
}

/// What one cell measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sample {
    /// Requests measured.
    pub requests: usize,
    /// Wall time from the first request to the last response.
    pub elapsed: Duration,
    /// Latency of every measured request (send to last body byte), in nanoseconds.
    #[serde(skip)]
    pub latencies_ns: Vec<u64>,
    /// Bytes of `Cookie` header values sent.
    pub cookie_bytes: u64,
    /// Bytes of `Set-Cookie` header values received.
    pub set_cookie_bytes: u64,
    /// Calls to the row's server store, if it has one.
    pub store_calls: Option<usize>,
    /// Round trips our `RedisStore` sent, on our Redis rows.
    pub round_trips: Option<u64>,
    /// CPU time of the server threads, the client threads and the row's database.
    #[serde(skip)]
    pub cpu: Option<CpuTimes>,
    /// Responses that broke the contract (wrong status, message missing or repeated).
    pub failures: usize,
    /// The first of them, described.
    pub first_failure: Option<String>,
}

impl Sample {
    fn merge(&mut self, other: Sample) {
        self.requests += other.requests;
        self.latencies_ns.extend(other.latencies_ns);
        self.cookie_bytes += other.cookie_bytes;
        self.set_cookie_bytes += other.set_cookie_bytes;
        self.failures += other.failures;
        if self.first_failure.is_none() {
            self.first_failure = other.first_failure;
        }
    }

    fn fail(&mut self, what: String) {
        self.failures += 1;
        if self.first_failure.is_none() {
            self.first_failure = Some(what);
        }
    }
}

/// One browser: a kept-alive connection and a cookie jar.
#[derive(Debug)]
pub struct Client {
    sender: SendRequest<String>,
    connection: JoinHandle<()>,
    host: HeaderValue,
    jar: Browser,
    shows_messages: bool,
}

/// A response as the checks need it.
struct Reply {
    status: StatusCode,
    location: Option<HeaderValue>,
    body: hyper::body::Bytes,
}

impl Client {
    /// Connects to `app`, with an empty jar.
    pub async fn connect(app: &App) -> Result<Client, BenchError> {
        let stream = TcpStream::connect(app.addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        let connection = tokio::spawn(async move {
            // A failed connection surfaces as an error of the next request.
            let _ = connection.await;
        });
        Ok(Client {
            sender,
            connection,
            host: host_header(app.addr)?,
            jar: Browser::new(),
            shows_messages: app.row.shows_messages(),
        })
    }

    /// Sends one request with the jar's cookies, applies its `Set-Cookie`s, and records
    /// its latency and cookie bytes in `sample`.
    async fn send(
        &mut self,
        method: Method,
        path: &'static str,
        sample: &mut Sample,
    ) -> Result<Reply, BenchError> {
        let mut request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(HOST, self.host.clone());
        let cookie = self.jar.cookie_header();
        if let Some(cookie) = &cookie {
            request = request.header(COOKIE, cookie.as_str());
        }
        let body = if method == Method::POST {
            request = request.header(CONTENT_TYPE, "application/x-www-form-urlencoded");
            FORM.to_owned()
        } else {
            String::new()
        };
        let request = request.body(body)?;

        let started = Instant::now();
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        let latency = started.elapsed();

        let set_cookie: Vec<String> = parts
            .headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        sample.requests += 1;
        sample
            .latencies_ns
            .push(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
        sample.cookie_bytes += cookie.map_or(0, |c| c.len() as u64);
        sample.set_cookie_bytes += set_cookie.iter().map(|c| c.len() as u64).sum::<u64>();
        let mut committed = Committed::default();
        committed.set_cookie = set_cookie;
        self.jar.apply(&committed);
        Ok(Reply {
            status: parts.status,
            location: parts.headers.get(LOCATION).cloned(),
            body,
        })
    }

    /// One iteration of `workload`, checked.
    async fn iterate(&mut self, workload: Workload, sample: &mut Sample) -> Result<(), BenchError> {
        match workload {
            Workload::FlashPair => {
                let posted = self.send(Method::POST, SETTINGS, sample).await?;
                if posted.status != StatusCode::SEE_OTHER
                    || posted.location.as_ref().is_none_or(|l| l != SETTINGS)
                {
                    sample.fail(format!(
                        "POST {SETTINGS}: {} to {:?}",
                        posted.status, posted.location
                    ));
                }
                let shown = self.send(Method::GET, SETTINGS, sample).await?;
                let expected = usize::from(self.shows_messages);
                let times = count(&shown.body, SAVED);
                if shown.status != StatusCode::OK || times != expected {
                    sample.fail(format!(
                        "GET {SETTINGS}: {}, the message shown {times} times, not {expected}",
                        shown.status
                    ));
                }
            }
            Workload::PlainGet => {
                let page = self.send(Method::GET, ABOUT, sample).await?;
                if page.status != StatusCode::OK || count(&page.body, "<li") != 0 {
                    sample.fail(format!("GET {ABOUT}: {}, or a message shown", page.status));
                }
            }
        }
        Ok(())
    }

    /// `iterations` iterations of `workload`.
    async fn run(
        mut self,
        workload: Workload,
        iterations: usize,
    ) -> Result<(Client, Sample), BenchError> {
        let mut sample = Sample::default();
        for _ in 0..iterations {
            self.iterate(workload, &mut sample).await?;
        }
        Ok((self, sample))
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

fn host_header(addr: SocketAddr) -> Result<HeaderValue, BenchError> {
    Ok(HeaderValue::try_from(addr.to_string()).map_err(axum::http::Error::from)?)
}

/// How many times `needle` occurs in `body`.
fn count(body: &[u8], needle: &str) -> usize {
    let needle = needle.as_bytes();
    body.windows(needle.len()).filter(|w| *w == needle).count()
}

/// Runs `clients` concurrently, `iterations` each, on the current runtime's workers.
async fn run_all(
    clients: Vec<Client>,
    workload: Workload,
    iterations: usize,
) -> Result<(Vec<Client>, Sample), BenchError> {
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|c| tokio::spawn(c.run(workload, iterations)))
        .collect();
    let mut clients = Vec::with_capacity(tasks.len());
    let mut total = Sample::default();
    for task in tasks {
        let (client, sample) = task.await??;
        clients.push(client);
        total.merge(sample);
    }
    Ok((clients, total))
}

/// Measures one cell against `app`. Call it inside the client runtime: the clients run on
/// its worker threads, so their CPU time is counted apart from the server's.
pub async fn measure(app: &App, cell: Cell) -> Result<Sample, BenchError> {
    let concurrency = cell.concurrency.max(1);
    let mut clients = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        clients.push(Client::connect(app).await?);
    }
    // Warm up: connections, caches, and for the plain workload a browser that has been
    // here before (the cookies of one flash pair).
    if cell.workload == Workload::PlainGet {
        clients = run_all(clients, Workload::FlashPair, 1).await?.0;
    }
    let warmup = (cell.warmup / concurrency).max(1);
    let (clients, warm) = run_all(clients, cell.workload, warmup).await?;

    let per_client = (cell.iterations / concurrency).max(1);
    let calls_before = app.store_calls();
    let round_trips_before = app.redis_round_trips();
    let cpu_before = CpuTimes::now(app.database);
    let started = Instant::now();
    let (clients, mut sample) = run_all(clients, cell.workload, per_client).await?;
    sample.elapsed = started.elapsed();
    sample.cpu = cpu_before
        .zip(CpuTimes::now(app.database))
        .map(|(before, after)| after.since(before));
    sample.store_calls = calls_before
        .zip(app.store_calls())
        .map(|(before, after)| after - before);
    sample.round_trips = round_trips_before
        .zip(app.redis_round_trips())
        .map(|(before, after)| after - before);
    drop(clients);
    // A broken warm-up counts too: it is the same contract.
    sample.failures += warm.failures;
    if sample.first_failure.is_none() {
        sample.first_failure = warm.first_failure;
    }
    Ok(sample)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_occurrences() {
        assert_eq!(count(b"<li>a</li><li>b</li>", "<li"), 2);
        assert_eq!(count(b"", "<li"), 0);
        assert_eq!(count(b"Settings saved for Ada.", SAVED), 1);
    }
}
