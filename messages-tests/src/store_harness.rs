//! What the cookie and fallback store tests need beside [`Browser`](crate::Browser) and
//! [`CountingStore`](crate::CountingStore): the warnings a request logged, and the
//! cookie's wire format.

mod log_capture;
mod wire;

pub use log_capture::LogCapture;
pub use wire::{PURPOSE, WireValue};
