//! Real headless Chromium for end-to-end tests: Debian's `chromedriver` started on a free
//! loopback port, one WebDriver session per [`Chromium`] window, each with a fresh
//! profile directory, so two windows share no cookies.
//!
//! Without `chromium` and `chromedriver` installed, [`Chromedriver::start`] fails the test
//! when the `CI` environment variable is set, and otherwise prints
//! `SKIPPED: chromium/chromedriver not installed` and returns `Ok(None)`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), messages_tests::browser_driver::DriverError> {
//! use messages_tests::browser_driver::Chromedriver;
//!
//! let Some(driver) = Chromedriver::start().await? else { return Ok(()) };
//! let window = driver.open_window("http://127.0.0.1:3000").await?;
//! window.open("/settings").await?;
//! println!("{:?}", window.messages().await?);
//! window.close().await?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::error::{CmdError, NewSessionError};
use fantoccini::wd::{Capabilities, TimeoutConfiguration};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// The Chromium binary (`CHROMIUM` overrides it).
const CHROMIUM: &str = "/usr/bin/chromium";
/// The driver binary (`CHROMEDRIVER` overrides it).
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long chromedriver may take to say which port it listens on.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How often [`eventually`] looks again.
const POLL_EVERY: Duration = Duration::from_millis(100);
/// Flags for Chromium in this sandbox: headless, no sandbox, no traffic beyond loopback.
const CHROMIUM_FLAGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--hide-scrollbars",
];
/// The size of the page in every window (and of its screenshots), in CSS pixels.
const VIEWPORT: (u32, u32) = (900, 600);
/// Page loads and scripts that take longer than this fail the command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// What went wrong while driving the browser.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// chromedriver could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// chromedriver did not say which port it listens on in time, or exited first.
    #[error("chromedriver did not start: {0}")]
    NotReady(String),
    /// chromedriver refused a new browser session.
    #[error("no browser session: {0}")]
    Session(#[from] NewSessionError),
    /// A WebDriver command failed (an open `alert()` shows up here, too).
    #[error("WebDriver command failed: {0}")]
    Command(#[from] CmdError),
    /// A script answered something this module did not expect.
    #[error("unexpected answer from the page: {0}")]
    Page(#[from] serde_json::Error),
    /// A condition did not come true in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// The condition.
        what: String,
        /// How long it was waited for.
        after: Duration,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A program of the browser pair: its path, from `env` or the Debian default.
fn program(env: &str, default: &str) -> PathBuf {
    std::env::var_os(env).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// Whether both programs are installed. When they are not: in CI, panics (the test
/// fails); locally, says loudly that the test is skipped.
fn browser_installed(chromium: &Path, chromedriver: &Path) -> bool {
    let found = chromium.is_file() && chromedriver.is_file();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{} or {} is missing, and CI needs them: `apt-get install -y chromium chromium-driver`",
            chromium.display(),
            chromedriver.display()
        );
        // Written to the process's stderr directly: the harness captures `eprintln!`.
        let _ = std::io::stderr().write_all(
            b"\n*** SKIPPED: chromium/chromedriver not installed (apt-get install -y chromium chromium-driver) ***\n",
        );
    }
    found
}

/// A `chromedriver` process on a free loopback port, killed with every browser it
/// started when dropped.
#[derive(Debug)]
pub struct Chromedriver {
    child: Child,
    url: String,
    chromium: PathBuf,
}

impl Chromedriver {
    /// Starts chromedriver (`--port=0`: it picks a free port and says which); `Ok(None)`
    /// locally when chromium or chromedriver is not installed.
    ///
    /// # Panics
    /// When they are not installed and `CI` is set.
    pub async fn start() -> Result<Option<Chromedriver>, DriverError> {
        let chromium = program("CHROMIUM", CHROMIUM);
        let chromedriver = program("CHROMEDRIVER", CHROMEDRIVER);
        if !browser_installed(&chromium, &chromedriver) {
            return Ok(None);
        }
        let mut child = Command::new(&chromedriver)
            .args(["--port=0", "--allowed-ips=127.0.0.1", "--log-level=SEVERE"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // Its own process group, so that dropping it also ends the browsers it runs.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| DriverError::Spawn {
                program: chromedriver.clone(),
                source,
            })?;
        let Some(stdout) = child.stdout.take() else {
            return Err(DriverError::NotReady("no stdout".into()));
        };
        let mut lines = BufReader::new(stdout).lines();
        let port = tokio::time::timeout(START_TIMEOUT, async {
            // "ChromeDriver was started successfully on port 40123."
            while let Some(line) = lines.next_line().await? {
                if let Some(rest) = line.split("successfully on port ").nth(1) {
                    return Ok(rest.trim_end_matches('.').parse::<u16>().ok());
                }
            }
            Ok::<_, std::io::Error>(None)
        })
        .await;
        let port = match port {
            Ok(Ok(Some(port))) => port,
            Ok(Ok(None)) => return Err(DriverError::NotReady("it exited or named no port".into())),
            Ok(Err(e)) => return Err(DriverError::NotReady(e.to_string())),
            Err(_) => {
                return Err(DriverError::NotReady(format!(
                    "no port after {START_TIMEOUT:?}"
                )));
            }
        };
        // Keep reading what it prints, so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Some(Chromedriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            chromium,
        }))
    }

    /// A new browser window, pages 900×600 CSS pixels, with a fresh profile (its own
    /// cookies), that opens paths under `base` (`http://127.0.0.1:<port>`).
    pub async fn open_window(&self, base: &str) -> Result<Chromium, DriverError> {
        let profile = tempfile::Builder::new()
            .prefix("messages-chromium-")
            .tempdir()
            .map_err(|source| DriverError::Write {
                path: std::env::temp_dir(),
                source,
            })?;
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|&f| f.to_owned()).collect();
        args.push(format!("--window-size={},{}", VIEWPORT.0, VIEWPORT.1));
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let mut capabilities = Capabilities::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": self.chromium, "args": args }),
        );
        // Leave an alert() open, so that a test sees it instead of a silent dismissal.
        capabilities.insert("unhandledPromptBehavior".into(), json!("ignore"));
        // A cold Chromium on a busy machine can fail to start once (chromedriver then
        // reports that it could not reach DevTools); a second try settles it.
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(capabilities);
        let client = match builder.connect(&self.url).await {
            Ok(client) => client,
            Err(first) => {
                eprintln!("chromium session refused ({first}); trying once more");
                builder.connect(&self.url).await?
            }
        };
        client
            .update_timeouts(TimeoutConfiguration::new(
                Some(COMMAND_TIMEOUT),
                Some(COMMAND_TIMEOUT),
                Some(Duration::ZERO),
            ))
            .await?;
        // --window-size sizes the outer window; grow it by its frame so the page is VIEWPORT.
        let frame = client
            .execute(
                "return [outerWidth - innerWidth, outerHeight - innerHeight];",
                Vec::new(),
            )
            .await?;
        let (frame_width, frame_height): (u32, u32) = serde_json::from_value(frame)?;
        client
            .set_window_size(VIEWPORT.0 + frame_width, VIEWPORT.1 + frame_height)
            .await?;
        Ok(Chromium {
            client,
            base: base.trim_end_matches('/').to_owned(),
            _profile: profile,
        })
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // The whole process group: chromedriver and any browser a failed test left open.
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.start_kill();
    }
}

/// One message as the page shows it in `<ul id="messages">`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PageMessage {
    /// The text as the DOM holds it (`textContent`).
    pub text: String,
    /// `data-level`.
    pub level: String,
    /// The `class` attribute.
    pub class: String,
    /// `data-title`.
    pub title: Option<String>,
    /// `data-autoclose` is present.
    pub autoclose: bool,
    /// How many elements (not text) the item holds: 0 when the text was escaped.
    pub elements: u32,
}

/// Reads `#messages` in one round trip; `null` when the page has no such list.
const READ_MESSAGES: &str = r"
const list = document.getElementById('messages');
if (!list) return null;
return Array.from(list.children).map(li => ({
  text: li.textContent,
  level: li.dataset.level ?? '',
  class: li.className,
  title: li.dataset.title ?? null,
  autoclose: li.hasAttribute('data-autoclose'),
  elements: li.querySelectorAll('*').length,
}));";

/// Posts a form with `fetch` without following the redirect, so nothing reads the
/// messages it adds; answers the response type (`opaqueredirect` for a 303).
const POST_FORM: &str = r"
const [path, fields, done] = arguments;
fetch(path, { method: 'POST', body: new URLSearchParams(fields), redirect: 'manual',
              credentials: 'same-origin' })
  .then(r => done(r.type === 'opaqueredirect' ? 'redirect' : String(r.status)),
        e => done('error: ' + e));";

/// One browser window (a WebDriver session with its own profile).
#[derive(Debug)]
pub struct Chromium {
    client: Client,
    base: String,
    _profile: tempfile::TempDir,
}

impl Chromium {
    /// The WebDriver client, for what the helpers here do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens `path` and waits for the page to load.
    pub async fn open(&self, path: &str) -> Result<(), DriverError> {
        Ok(self.client.goto(&format!("{}{path}", self.base)).await?)
    }

    /// Reloads the page.
    pub async fn reload(&self) -> Result<(), DriverError> {
        Ok(self.client.refresh().await?)
    }

    /// The path of the current page.
    pub async fn path(&self) -> Result<String, DriverError> {
        Ok(self.client.current_url().await?.path().to_owned())
    }

    /// The messages of the page, in order.
    ///
    /// # Errors
    /// Also when the page has no `<ul id="messages">`.
    pub async fn messages(&self) -> Result<Vec<PageMessage>, DriverError> {
        let value = self.client.execute(READ_MESSAGES, Vec::new()).await?;
        Ok(serde_json::from_value(value)?)
    }

    /// The texts of [`messages`](Chromium::messages).
    pub async fn texts(&self) -> Result<Vec<String>, DriverError> {
        Ok(self.messages().await?.into_iter().map(|m| m.text).collect())
    }

    /// Types `value` into each field (found by its `name`), clicks `button`, and waits
    /// until the page it leads to has loaded.
    pub async fn submit(&self, fields: &[(&str, &str)], button: &str) -> Result<(), DriverError> {
        for (name, value) in fields {
            let input = self
                .client
                .find(Locator::Css(&format!("[name='{name}']")))
                .await?;
            input.clear().await?;
            input.send_keys(value).await?;
        }
        // A mark on the old document: the new page is there when the mark is gone.
        self.client
            .execute("window.__before_submit = true;", Vec::new())
            .await?;
        self.client
            .find(Locator::Css(button))
            .await?
            .click()
            .await?;
        eventually("the page after the form", COMMAND_TIMEOUT, || async {
            let loaded = self
                .client
                .execute(
                    "return window.__before_submit === undefined && document.readyState === 'complete';",
                    Vec::new(),
                )
                .await?;
            Ok((loaded == Value::Bool(true)).then_some(()))
        })
        .await
    }

    /// Posts a form from the page with `fetch`, not following its redirect: the
    /// messages it adds stay unread. Answers `"redirect"` for a `303`, else the status.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Result<String, DriverError> {
        let fields: serde_json::Map<String, Value> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
            .collect();
        let answer = self
            .client
            .execute_async(POST_FORM, vec![Value::from(path), Value::Object(fields)])
            .await?;
        Ok(answer.as_str().unwrap_or_default().to_owned())
    }

    /// The number of elements matching a CSS selector.
    pub async fn count(&self, css: &str) -> Result<usize, DriverError> {
        Ok(self.client.find_all(Locator::Css(css)).await?.len())
    }

    /// Whether every element matching `css` is displayed (and there is at least one).
    pub async fn displayed(&self, css: &str) -> Result<bool, DriverError> {
        let found = self.client.find_all(Locator::Css(css)).await?;
        let mut all = !found.is_empty();
        for element in found {
            all &= element.is_displayed().await?;
        }
        Ok(all)
    }

    /// Waits until the page has loaded all it refers to (images included, so their
    /// `onerror` handlers have run).
    pub async fn wait_loaded(&self) -> Result<(), DriverError> {
        eventually(
            "document.readyState == complete",
            COMMAND_TIMEOUT,
            || async {
                let state = self
                    .client
                    .execute("return document.readyState;", Vec::new())
                    .await?;
                Ok((state == "complete").then_some(()))
            },
        )
        .await
    }

    /// The text of an open `alert()`, if one is open.
    pub async fn alert(&self) -> Result<Option<String>, DriverError> {
        match self.client.get_alert_text().await {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.is_no_such_alert() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The value of a cookie (`HttpOnly` ones too), if the browser holds it.
    pub async fn cookie(&self, name: &str) -> Result<Option<String>, DriverError> {
        match self.client.get_named_cookie(name).await {
            Ok(cookie) => Ok(Some(cookie.value().to_owned())),
            Err(e) if e.is_no_such_cookie() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Runs `js` (a function body) in the page and returns what it returns.
    pub async fn script(&self, js: &str) -> Result<Value, DriverError> {
        Ok(self.client.execute(js, Vec::new()).await?)
    }

    /// Saves a PNG screenshot of the window to `path` (creating its folder).
    pub async fn screenshot(&self, path: &Path) -> Result<(), DriverError> {
        let png = self.client.screenshot().await?;
        let write = |source| DriverError::Write {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(write)?;
        }
        std::fs::write(path, png).map_err(write)
    }

    /// Ends the session (the browser quits; its profile is deleted).
    pub async fn close(self) -> Result<(), DriverError> {
        Ok(self.client.close().await?)
    }
}

/// Polls `check` every 100 ms until it answers `Some`, for at most `timeout`.
pub async fn eventually<T, F, Fut>(
    what: &str,
    timeout: Duration,
    mut check: F,
) -> Result<T, DriverError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, DriverError>>,
{
    let start = Instant::now();
    loop {
        if let Some(found) = check().await? {
            return Ok(found);
        }
        if start.elapsed() >= timeout {
            return Err(DriverError::Timeout {
                what: what.to_owned(),
                after: timeout,
            });
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}
