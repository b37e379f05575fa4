//! A check both binaries' tests run: Ctrl-C stops the server gracefully even while a
//! live stream is open (the binaries close their streams first).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Starts the binary at `bin` on a free port, opens `GET /dashboard/events`, sends it
/// SIGINT, and returns how long it took to exit, or why it did not (not within 20 s, a
/// failure status, no listening line).
///
/// # Errors
/// What went wrong, as text (a test failure).
pub fn stops_gracefully_with_an_open_stream(bin: &str) -> Result<Duration, String> {
    let mut child = Command::new(bin)
        .env("PORT", "0")
        .env("MESSAGES_STORE", "memory")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{bin}: {e}"))?;
    let result = (|| {
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let addr = line
            .trim()
            .rsplit("http://")
            .next()
            .map(|a| a.trim_end_matches('/').to_owned())
            .ok_or_else(|| format!("no address in {line:?}"))?;
        let mut stream = TcpStream::connect(&addr).map_err(|e| e.to_string())?;
        stream
            .write_all(b"GET /dashboard/events HTTP/1.1\r\nHost: t\r\n\r\n")
            .map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .map_err(|e| e.to_string())?;
        let mut seen = Vec::new();
        let mut chunk = [0u8; 512];
        while !String::from_utf8_lossy(&seen).contains("retry:") {
            let n = stream.read(&mut chunk).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("the stream closed before it opened".to_owned());
            }
            seen.extend_from_slice(&chunk[..n]);
        }
        let interrupted = Instant::now();
        let status = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() {
            return Err("kill -INT failed".to_owned());
        }
        loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                return if status.success() {
                    Ok(interrupted.elapsed())
                } else {
                    Err(format!("exited with {status}"))
                };
            }
            if interrupted.elapsed() > Duration::from_secs(20) {
                return Err("still running 20 s after Ctrl-C with a stream open".to_owned());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}
