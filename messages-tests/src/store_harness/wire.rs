//! The messages cookie's documented wire format (see `CookieStore`), for tests that read
//! the values the store emits or build their own.

use std::io::Read as _;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

/// The purpose salt, the first part of every MAC input.
pub const PURPOSE: &[u8] = b"messages-core/cookie-store/v1";

/// A messages-cookie value taken apart: `v1.<payload>.<tag>`, where the payload is the
/// flag byte, the signing time and the body.
///
/// ```
/// use messages_tests::store_harness::WireValue;
///
/// let value = WireValue::new(0, 1_000, br#"{"v":{}}"#.to_vec()).sign(&[7; 32], "messages", "session");
/// let text = value.encode();
/// assert!(text.starts_with("v1."));
/// let back = WireValue::parse(&text).unwrap();
/// assert_eq!(back, value);
/// assert_eq!(back.json().unwrap(), br#"{"v":{}}"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireValue {
    /// Bit 0: the body is raw-deflate compressed.
    pub flag: u8,
    /// When the value was signed, milliseconds since the Unix epoch.
    pub signed_at: u64,
    /// The body as carried: JSON, or deflated JSON when the flag says so.
    pub body: Vec<u8>,
    /// The MAC as carried (empty until [`sign`](WireValue::sign)).
    pub tag: Vec<u8>,
}

impl WireValue {
    /// An unsigned value.
    pub fn new(flag: u8, signed_at: u64, body: Vec<u8>) -> WireValue {
        WireValue {
            flag,
            signed_at,
            body,
            tag: Vec::new(),
        }
    }

    /// Takes a value apart; `None` if it does not have the format's shape.
    pub fn parse(value: &str) -> Option<WireValue> {
        let (payload, tag) = value.strip_prefix("v1.")?.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let (&flag, rest) = payload.split_first()?;
        let (time, body) = rest.split_at_checked(8)?;
        Some(WireValue {
            flag,
            signed_at: u64::from_be_bytes(time.try_into().ok()?),
            body: body.to_vec(),
            tag: URL_SAFE_NO_PAD.decode(tag).ok()?,
        })
    }

    /// The signed payload: flag, time, body.
    pub fn payload(&self) -> Vec<u8> {
        let mut payload = vec![self.flag];
        payload.extend_from_slice(&self.signed_at.to_be_bytes());
        payload.extend_from_slice(&self.body);
        payload
    }

    /// The JSON body, inflated when the flag says so.
    pub fn json(&self) -> Option<Vec<u8>> {
        if self.flag & 1 == 0 {
            return Some(self.body.clone());
        }
        let mut out = Vec::new();
        flate2::read::DeflateDecoder::new(self.body.as_slice())
            .read_to_end(&mut out)
            .ok()?;
        Some(out)
    }

    /// Signs the value with `key` as the messages cookie `name` of `session` (its text
    /// form), exactly as the store does.
    ///
    /// # Panics
    /// Never: HMAC takes keys of any length.
    #[must_use]
    #[allow(clippy::expect_used)]
    pub fn sign(mut self, key: &[u8], name: &str, session: &str) -> WireValue {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
        for part in [
            PURPOSE,
            name.as_bytes(),
            session.as_bytes(),
            &self.payload(),
        ] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        self.tag = mac.finalize().into_bytes().to_vec();
        self
    }

    /// The cookie value.
    pub fn encode(&self) -> String {
        format!(
            "v1.{}.{}",
            URL_SAFE_NO_PAD.encode(self.payload()),
            URL_SAFE_NO_PAD.encode(&self.tag)
        )
    }
}
