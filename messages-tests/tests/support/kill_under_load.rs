//! A store's server killed with SIGKILL under load, and started again: the harness of
//! `load_faults.rs` (Redis) and `postgres_faults.rs` (PostgreSQL). A test binary includes
//! it with `#[path = "support/kill_under_load.rs"] mod kill_under_load;`.
//!
//! [`SESSIONS`] sessions × [`TABS`] concurrent tabs add and read notes over real HTTP. The
//! handlers are `#[with_messages]` handlers of this file: `POST /notes` flushes its add
//! and answers `200 stored` only once the store has it, `503 unavailable` when it could
//! not be stored, so the client knows which adds were confirmed. `GET /notes` shows the
//! notes as JSON, consuming them. After [`WARM_UP`] the server is killed, and started
//! again on its port [`Target::outage`] later; the load goes on until [`ADDS_AFTER_RESTART`] adds
//! are confirmed after the restart. The final read of every session waits for the read
//! lease, so reserves left by reads cut by the kill are back.
//!
//! With `hold_reads`, no read is in flight at the instant of the kill (reads go on through
//! the outage); without, reads are in flight too. The figures are printed on stderr (seen
//! without `--nocapture` too), with a one-line summary.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use messages_core::MessagesConfig;
use messages_core::axum::MessagesLayer;
use messages_tests::http::{HttpClient, Ledger, Tally, TestServer};

/// Browser sessions.
pub(crate) const SESSIONS: usize = 16;
/// Concurrent tabs per session, sharing its cookie jar.
pub(crate) const TABS: usize = 3;
/// Load before the kill.
pub(crate) const WARM_UP: Duration = Duration::from_secs(1);
/// Confirmed adds after the restart before the load stops.
const ADDS_AFTER_RESTART: usize = SESSIONS * TABS * 3;
/// Longest the load runs after the restart, if adds are never confirmed again.
const RECOVERY_LIMIT: Duration = Duration::from_secs(20);

mod notes {
    use axum::Form;
    use axum::Json;
    use axum::http::StatusCode;
    use messages_core::prelude::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    pub(crate) struct Note {
        text: String,
    }

    /// Adds a note and says whether it is stored: `200 stored`, or `503 unavailable`.
    #[with_messages]
    pub(crate) async fn add_note(Form(note): Form<Note>) -> (StatusCode, &'static str) {
        self.add_message(Message::info(note.text));
        match self.request().flush().await {
            Ok(()) => (StatusCode::OK, "stored"),
            Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        }
    }

    /// The notes as a JSON array of texts, oldest first; consumes them.
    #[with_messages(view = add_note)]
    pub(crate) async fn notes() -> Json<Vec<String>> {
        let list = self.messages().await;
        Json(list.iter().map(|m| m.text().to_owned()).collect())
    }
}

/// Where the server is in its fault, as the load sees it.
const UP: u8 = 0;
/// Being killed: a request in flight now may be cut.
const KILLING: u8 = 1;
const DOWN: u8 = 2;
/// Started again, not yet answering for sure.
const RESTARTING: u8 = 3;
const BACK: u8 = 4;

/// The counts of a run, updated by every tab.
#[derive(Debug, Default)]
struct Load {
    phase: AtomicU8,
    stop: AtomicBool,
    /// While set, tabs start no read.
    reads_held: AtomicBool,
    reads_in_flight: AtomicUsize,
    ledger: Ledger,
    requests: AtomicUsize,
    /// 5xx other than an add's `503 unavailable`.
    server_errors: AtomicUsize,
    /// Adds answered `503 unavailable`.
    refused: AtomicUsize,
    /// When the kill began, when the first refusal after it arrived, and the longest a
    /// refused add took.
    killed_at: Mutex<Option<Instant>>,
    first_refusal: Mutex<Option<Instant>>,
    slowest_refusal: Mutex<Duration>,
    /// Reads that started and ended while the server was dead, and those of them that
    /// showed messages.
    outage_reads: AtomicUsize,
    outage_reads_with_messages: AtomicUsize,
    /// Sessions whose read was in flight at the kill and showed nothing.
    cut_reads: Mutex<BTreeSet<String>>,
    /// Sessions with a read in flight at the kill, whatever it showed.
    reads_at_kill: Mutex<BTreeSet<String>>,
    /// Adds confirmed since the restart, and when the first was.
    stored_after_restart: Mutex<BTreeSet<String>>,
    first_stored_after_restart: Mutex<Option<Instant>>,
    unexpected: Mutex<Vec<String>>,
}

/// The earlier of `slot` and now, in `slot`.
fn earliest(slot: &Mutex<Option<Instant>>) {
    let now = Instant::now();
    let mut slot = slot.lock().unwrap();
    *slot = Some(slot.map_or(now, |t| t.min(now)));
}

impl Load {
    fn phase(&self) -> u8 {
        self.phase.load(Ordering::SeqCst)
    }

    fn unexpected(&self, what: &str, status: StatusCode, body: &str) {
        if status.is_server_error() {
            self.server_errors.fetch_add(1, Ordering::Relaxed);
        }
        let line = format!("{what}: {status} {body}");
        self.unexpected.lock().unwrap().push(line);
    }

    async fn add(&self, tab: &mut HttpClient, context: &str, text: &str) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let reply = tab.post_form("/notes", &[("text", text)]).await;
        match (reply.status, reply.body.as_str()) {
            (StatusCode::OK, "stored") => {
                self.ledger.confirmed(context, text);
                if self.phase() >= RESTARTING {
                    let mut after = self.stored_after_restart.lock().unwrap();
                    after.insert(text.to_owned());
                    earliest(&self.first_stored_after_restart);
                }
            }
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable") => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                self.ledger.unconfirmed(context, text);
                earliest(&self.first_refusal);
                let took = started.elapsed();
                {
                    let mut slowest = self.slowest_refusal.lock().unwrap();
                    *slowest = (*slowest).max(took);
                }
                // A client backs off a little before trying again.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (status, body) => {
                self.ledger.unconfirmed(context, text);
                self.unexpected("POST /notes", status, body);
            }
        }
    }

    /// Reads the session's notes, unless reads are held back; whether it read.
    async fn read(&self, tab: &mut HttpClient, context: &str) -> bool {
        // Counted in flight before looking at the hold, so that once the hold is set
        // and the count is zero, no read can be in flight.
        self.reads_in_flight.fetch_add(1, Ordering::SeqCst);
        if self.reads_held.load(Ordering::SeqCst) {
            self.reads_in_flight.fetch_sub(1, Ordering::SeqCst);
            return false;
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let before = self.phase();
        let reply = tab.get("/notes").await;
        let after = self.phase();
        self.reads_in_flight.fetch_sub(1, Ordering::SeqCst);
        if reply.status != StatusCode::OK {
            self.unexpected("GET /notes", reply.status, &reply.body);
            return true;
        }
        let texts: Vec<String> = serde_json::from_str(&reply.body).unwrap();
        if before == DOWN && after == DOWN {
            self.outage_reads.fetch_add(1, Ordering::Relaxed);
            if !texts.is_empty() {
                self.outage_reads_with_messages
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        if before <= KILLING && after >= KILLING {
            self.reads_at_kill
                .lock()
                .unwrap()
                .insert(context.to_owned());
            if texts.is_empty() {
                self.cut_reads.lock().unwrap().insert(context.to_owned());
            }
        }
        for text in texts {
            self.ledger.shown(context, &text);
        }
        true
    }
}

/// A tab: three adds, two reads, over and over, until the load stops.
async fn tab_loop(mut tab: HttpClient, load: Arc<Load>, session: usize, tab_index: usize) {
    let context = format!("s{session}");
    let mut round = 0;
    while !load.stop.load(Ordering::SeqCst) {
        if round % 5 < 3 {
            let text = format!("s{session}.t{tab_index}.r{round}");
            load.add(&mut tab, &context, &text).await;
        } else if !load.read(&mut tab, &context).await {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        round += 1;
    }
}

/// Runs `f` on the server on a blocking thread (the harnesses sleep and wait).
async fn with_server<S: Send + 'static>(server: S, f: fn(&mut S)) -> S {
    tokio::task::spawn_blocking(move || {
        let mut server = server;
        f(&mut server);
        server
    })
    .await
    .unwrap()
}

/// A server to kill under load, and the store on it.
pub(crate) struct Target<S> {
    /// What the figures call it: `redis (appendfsync always)`, say.
    pub(crate) backend: &'static str,
    /// The server; dropped after the run.
    pub(crate) server: S,
    /// Messages on a store of that server.
    pub(crate) config: MessagesConfig,
    /// The store's read lease: the final reads wait this long after the load.
    pub(crate) read_lease: Duration,
    /// How long the server stays dead: long enough for reads to start and end within it
    /// (a read fails after the store's bound on one operation).
    pub(crate) outage: Duration,
    /// Kills the server (SIGKILL), waiting until it is gone.
    pub(crate) kill: fn(&mut S),
    /// Starts it again on its port, waiting until it answers.
    pub(crate) revive: fn(&mut S),
}

/// What a run measured.
#[derive(Debug)]
pub(crate) struct Figures {
    backend: &'static str,
    outage: Duration,
    pub(crate) tally: Tally,
    /// The sessions of the confirmed adds lost, and those with a read cut by the kill.
    lost_sessions: BTreeSet<String>,
    cut_reads: BTreeSet<String>,
    /// The sessions of adds shown twice, and those with any read in flight at the kill.
    duplicated_sessions: BTreeSet<String>,
    pub(crate) reads_at_kill: BTreeSet<String>,
    /// Confirmed adds lost among those confirmed after the restart.
    lost_after_restart: usize,
    unexpected: Vec<String>,
    requests: usize,
    server_errors: usize,
    refused: usize,
    /// The kill began → the first refused add answered, if any.
    first_refusal: Option<Duration>,
    /// The longest a refused add took.
    slowest_refusal: Duration,
    outage_reads: usize,
    outage_reads_with_messages: usize,
    /// SIGKILL → the server answers again.
    down: Duration,
    /// The server answers → first stored add, if any.
    recovery: Option<Duration>,
}

/// The load, with one kill and restart of the server in the middle; with `hold_reads`,
/// no read is in flight at the instant of the kill.
pub(crate) async fn run_with_a_kill<S: Send + 'static>(
    target: Target<S>,
    hold_reads: bool,
) -> Figures {
    let Target {
        backend,
        server,
        config,
        read_lease,
        outage,
        kill,
        revive,
    } = target;
    let app = Router::new()
        .route("/notes", get(notes::notes).post(notes::add_note))
        .layer(MessagesLayer::new(config));
    let http = TestServer::axum(app).await;

    let load = Arc::new(Load {
        phase: AtomicU8::new(UP),
        ..Load::default()
    });
    let mut browsers = Vec::new();
    let mut tasks = Vec::new();
    for session in 0..SESSIONS {
        // The session starts with the first add, before the tabs run.
        let mut first = http.client().tab();
        let context = format!("s{session}");
        load.add(&mut first, &context, &context).await;
        for tab in 0..TABS {
            let task = tab_loop(first.clone(), Arc::clone(&load), session, tab);
            tasks.push(tokio::spawn(task));
        }
        browsers.push(first);
    }

    tokio::time::sleep(WARM_UP).await;
    if hold_reads {
        load.reads_held.store(true, Ordering::SeqCst);
        while load.reads_in_flight.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let killed_at = Instant::now();
    *load.killed_at.lock().unwrap() = Some(killed_at);
    load.phase.store(KILLING, Ordering::SeqCst);
    let server = with_server(server, kill).await;
    load.phase.store(DOWN, Ordering::SeqCst);
    load.reads_held.store(false, Ordering::SeqCst);
    tokio::time::sleep(outage).await;
    load.phase.store(RESTARTING, Ordering::SeqCst);
    let server = with_server(server, revive).await;
    let back_at = Instant::now();
    load.phase.store(BACK, Ordering::SeqCst);
    while load.stored_after_restart.lock().unwrap().len() < ADDS_AFTER_RESTART
        && back_at.elapsed() < RECOVERY_LIMIT
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    load.stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.unwrap();
    }
    // The final read of every session, once every read lease is up: what is still
    // stored or reserved is shown now.
    tokio::time::sleep(read_lease + Duration::from_millis(200)).await;
    for (session, mut browser) in browsers.into_iter().enumerate() {
        load.read(&mut browser, &format!("s{session}")).await;
    }
    drop(server);

    let first_stored = *load.first_stored_after_restart.lock().unwrap();
    let first_refusal = *load.first_refusal.lock().unwrap();
    let lost = load.ledger.lost();
    let stored_after_restart = load.stored_after_restart.lock().unwrap();
    Figures {
        backend,
        outage,
        tally: load.ledger.tally(),
        lost_after_restart: lost
            .iter()
            .filter(|(_, text)| stored_after_restart.contains(text))
            .count(),
        lost_sessions: lost.into_iter().map(|(c, _)| c).collect(),
        cut_reads: std::mem::take(&mut *load.cut_reads.lock().unwrap()),
        duplicated_sessions: load
            .ledger
            .duplicated()
            .into_iter()
            .map(|(c, _)| c)
            .collect(),
        reads_at_kill: std::mem::take(&mut *load.reads_at_kill.lock().unwrap()),
        unexpected: std::mem::take(&mut *load.unexpected.lock().unwrap()),
        requests: load.requests.load(Ordering::Relaxed),
        server_errors: load.server_errors.load(Ordering::Relaxed),
        refused: load.refused.load(Ordering::Relaxed),
        first_refusal: first_refusal.map(|t| t.saturating_duration_since(killed_at)),
        slowest_refusal: *load.slowest_refusal.lock().unwrap(),
        outage_reads: load.outage_reads.load(Ordering::Relaxed),
        outage_reads_with_messages: load.outage_reads_with_messages.load(Ordering::Relaxed),
        down: back_at - killed_at,
        recovery: first_stored.map(|t| t.saturating_duration_since(back_at)),
    }
}

/// `12 ms`, or `never`.
fn ms(d: Option<Duration>) -> String {
    d.map_or("never".to_owned(), |d| format!("{} ms", d.as_millis()))
}

/// `12`, or `none`.
fn millis(d: Option<Duration>) -> String {
    d.map_or("none".to_owned(), |d| d.as_millis().to_string())
}

impl Figures {
    /// Prints the figures on stderr (the harness captures `eprintln!` of passing tests),
    /// ending with a one-line summary: `{binary}: confirmed=… lost=… dup=… …`.
    pub(crate) fn print(&self, title: &str) {
        let t = &self.tally;
        let (backend, outage) = (self.backend, self.outage);
        let report = format!(
            "\nfaults under load, {title}: {backend}, {SESSIONS} sessions x {TABS} tabs, \
             SIGKILL after {WARM_UP:?} of load, restarted on its port {outage:?} later\n\
             requests {}, adds confirmed {}, adds refused (503 unavailable) {}, refused adds delivered anyway {}\n\
             delivered {}, confirmed but never delivered {} (sessions {:?}), duplicated {} (sessions {:?}), wrong context {}\n\
             5xx other than refused adds {}, reads during the outage {} (with messages: {}), \
             reads in flight at the kill {} (sessions {:?}; of them showing nothing: {:?})\n\
             first refused add {} after the kill, slowest refused add {} ms\n\
             server down (SIGKILL -> answering again) {} ms, recovery (answering -> first stored add) {}\n",
            self.requests,
            t.added,
            self.refused,
            t.unconfirmed_delivered,
            t.delivered,
            t.lost,
            self.lost_sessions,
            t.duplicated,
            self.duplicated_sessions,
            t.wrong_context,
            self.server_errors,
            self.outage_reads,
            self.outage_reads_with_messages,
            self.reads_at_kill.len(),
            self.reads_at_kill,
            self.cut_reads,
            ms(self.first_refusal),
            self.slowest_refusal.as_millis(),
            self.down.as_millis(),
            ms(self.recovery),
        );
        // The test binary (the crate this file is included in): `postgres_faults`, say.
        let binary = module_path!().split("::").next().unwrap_or_default();
        let summary = format!(
            "{binary}: {title}: confirmed={} lost={} dup={} refused={} outage_pages={} \
             first_fail_ms={} slowest_fail_ms={} down_ms={} recovery_ms={}\n",
            t.added,
            t.lost,
            t.duplicated,
            self.refused,
            self.outage_reads,
            millis(self.first_refusal),
            self.slowest_refusal.as_millis(),
            self.down.as_millis(),
            millis(self.recovery),
        );
        let _ = std::io::stderr().write_all(format!("{report}{summary}").as_bytes());
    }

    /// What holds whatever was in flight at the kill: pages render, nothing fails but
    /// refused adds, no confirmed add is lost, nothing is shown elsewhere, only reads cut
    /// by the kill show anything twice, and the store recovers.
    pub(crate) fn assert_contained(&self) {
        let t = &self.tally;
        assert!(self.unexpected.is_empty(), "{:?}", self.unexpected);
        assert_eq!(self.server_errors, 0);
        assert!(
            self.recovery.is_some(),
            "no add was stored after the restart"
        );
        assert!(self.refused > 0, "no add met the outage");
        assert!(self.outage_reads > 0, "no read met the outage");
        assert_eq!(self.outage_reads_with_messages, 0);
        assert_eq!(t.wrong_context, 0, "{t:?}");
        assert!(
            self.duplicated_sessions.is_subset(&self.reads_at_kill),
            "shown twice in sessions without a read at the kill: {:?} (reads at the kill: {:?})",
            self.duplicated_sessions,
            self.reads_at_kill
        );
        assert_eq!(t.lost, 0, "{:?}", self.lost_sessions);
        assert_eq!(self.lost_after_restart, 0, "lost after the restart");
        assert_eq!(t.delivered + t.lost, t.added, "{t:?}");
        assert!(t.added > SESSIONS * TABS, "{t:?}");
    }
}

/// Runs the load with a kill (see [`run_with_a_kill`]), prints the figures under `title`
/// and checks what holds whatever was in flight; then, with `hold_reads`, that no read
/// was in flight at the kill and nothing is shown twice, and without, that some read met
/// the kill (else the run tests nothing the first does not).
pub(crate) async fn contained_kill<S: Send + 'static>(
    target: Target<S>,
    hold_reads: bool,
    title: &str,
) -> Figures {
    let figures = run_with_a_kill(target, hold_reads).await;
    figures.print(title);
    figures.assert_contained();
    if hold_reads {
        assert!(
            figures.reads_at_kill.is_empty(),
            "{:?}",
            figures.reads_at_kill
        );
        assert_eq!(figures.tally.duplicated, 0, "{:?}", figures.tally);
    } else {
        assert!(
            !figures.reads_at_kill.is_empty(),
            "no read was in flight at the kill"
        );
    }
    figures
}
