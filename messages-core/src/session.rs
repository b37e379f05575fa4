//! The browser-session key.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::Error;

/// Bytes of OS randomness in a session key (256 bits).
const KEY_BYTES: usize = 32;
/// Length of the text form: unpadded base64url of [`KEY_BYTES`].
const KEY_CHARS: usize = 43;

/// The opaque id of one browser session — not of a user: anonymous visitors get one.
///
/// 256 bits from the OS CSPRNG, written as 43 characters of unpadded base64url. Parsing is
/// strict (exact length, alphabet, canonical form), so a malformed key sent by a client is
/// rejected instead of being used as a store key. Neither `Debug` nor `Display` prints the
/// key.
///
/// ```
/// use messages_core::SessionKey;
///
/// let key = SessionKey::generate().unwrap();
/// let text = key.as_str().to_owned();
/// assert_eq!(text.len(), 43);
/// assert_eq!(text.parse::<SessionKey>().unwrap(), key);
/// assert!("../../etc/passwd".parse::<SessionKey>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey(Box<str>);

impl SessionKey {
    /// A new key from the OS CSPRNG.
    ///
    /// # Errors
    /// [`Error::Random`] if the OS random source fails.
    pub fn generate() -> Result<SessionKey, Error> {
        let mut bytes = [0u8; KEY_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| Error::Random(e.to_string()))?;
        Ok(SessionKey(URL_SAFE_NO_PAD.encode(bytes).into_boxed_str()))
    }

    /// The text form, as carried in the session cookie.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Enough to tell keys apart in logs, not enough to use one.
        write!(f, "SessionKey({}…)", &self.0[..6])
    }
}

/// Like `Debug`, the first six characters only, so a key formatted into a log line or an
/// error message cannot be used; [`as_str`](SessionKey::as_str) gives the whole key.
///
/// ```
/// # use messages_core::SessionKey;
/// let key = SessionKey::generate().unwrap();
/// assert_eq!(key.to_string(), format!("{}…", &key.as_str()[..6]));
/// ```
impl fmt::Display for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…", &self.0[..6])
    }
}

/// A string is not a session key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a session key is 43 characters of canonical unpadded base64url")]
pub struct ParseSessionKeyError;

impl FromStr for SessionKey {
    type Err = ParseSessionKeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != KEY_CHARS {
            return Err(ParseSessionKeyError);
        }
        // The decoder checks the alphabet and, for the last character, that its unused
        // bits are zero, so every key has exactly one text form.
        let mut bytes = [0u8; KEY_BYTES];
        match URL_SAFE_NO_PAD.decode_slice(s, &mut bytes) {
            Ok(KEY_BYTES) => Ok(SessionKey(s.into())),
            _ => Err(ParseSessionKeyError),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_differ_and_round_trip() {
        let a = SessionKey::generate().unwrap();
        let b = SessionKey::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.as_str().parse::<SessionKey>().unwrap(), a);
        // Neither Debug nor Display prints the key.
        assert!(!format!("{a:?}").contains(&a.as_str()[..7]));
        assert!(!a.to_string().contains(&a.as_str()[..7]));
    }

    #[test]
    fn rejects_wrong_length_charset_and_non_canonical() {
        let good = SessionKey::generate().unwrap().as_str().to_owned();
        for bad in [
            String::new(),
            good[..42].to_owned(),
            format!("{good}A"),
            format!("{}=", &good[..42]),
            format!("{}+", &good[..42]),
            format!("{}/", &good[..42]),
            format!("{}é", &good[..41]),
            " ".repeat(43),
            "\0".repeat(43),
        ] {
            assert!(bad.parse::<SessionKey>().is_err(), "{bad:?}");
        }
        // The last character of 32 bytes carries 4 bits; the rest must be zero.
        let last = good.as_bytes()[42];
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let pos = alphabet.iter().position(|&c| c == last).unwrap();
        let non_canonical = alphabet[pos ^ 1] as char;
        let s = format!("{}{non_canonical}", &good[..42]);
        assert!(s.parse::<SessionKey>().is_err(), "non-canonical {s}");
    }
}
