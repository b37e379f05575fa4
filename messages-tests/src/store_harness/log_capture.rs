//! The `tracing` events of a test, captured.

use std::io;
use std::sync::{Arc, Mutex, Once, PoisonError};

use tracing::subscriber::DefaultGuard;
use tracing_subscriber::fmt::MakeWriter;

/// Captures the `tracing` events at `WARN` and above emitted on the current thread while
/// it lives (use it in `#[tokio::test]`, whose runtime runs on the test's thread).
///
/// ```
/// use messages_tests::store_harness::LogCapture;
///
/// let logs = LogCapture::start();
/// tracing::warn!(reason = "bad signature", "messages: refused");
/// tracing::info!("not captured");
/// assert_eq!(logs.warnings().len(), 1);
/// assert_eq!(logs.warnings(), [r#" WARN messages: refused reason="bad signature""#]);
/// logs.clear();
/// assert!(logs.warnings().is_empty());
/// ```
#[derive(Debug)]
pub struct LogCapture {
    buffer: Buffer,
    _guard: DefaultGuard,
}

#[derive(Debug, Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl io::Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl LogCapture {
    /// Starts capturing on this thread.
    pub fn start() -> LogCapture {
        // `tracing` caches per call site whether anyone listens. While a single
        // dispatcher exists, that answer comes from the thread that reaches the call
        // site first: a parallel test thread without a capture would make it "never"
        // for the whole process. A do-nothing global dispatcher keeps the answer the
        // union of all of them.
        static GLOBAL: Once = Once::new();
        GLOBAL.call_once(|| {
            // Someone else's global default does the same job.
            let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
        });
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(buffer.clone())
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        LogCapture {
            buffer,
            _guard: guard,
        }
    }

    /// The captured lines, oldest first.
    pub fn lines(&self) -> Vec<String> {
        let bytes = self.buffer.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The captured `WARN` lines.
    pub fn warnings(&self) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| l.trim_start().starts_with("WARN"))
            .collect()
    }

    /// The captured `ERROR` lines.
    pub fn errors(&self) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| l.trim_start().starts_with("ERROR"))
            .collect()
    }

    /// Forgets what was captured so far.
    pub fn clear(&self) {
        self.buffer
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}
