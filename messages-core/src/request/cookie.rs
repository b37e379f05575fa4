//! Messages carried in a signed cookie; the wire format is documented on [`CookieStore`].

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::thread::LocalKey;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac as _};
use miniz_oxide::deflate::core::{
    CompressionStrategy, CompressorOxide, TDEFLFlush, TDEFLStatus, compress_to_output,
    create_comp_flags_from_zip_params,
};
use miniz_oxide::inflate::TINFLStatus;
use miniz_oxide::inflate::core::inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
use miniz_oxide::inflate::core::{DecompressorOxide, decompress};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::{Error, Message, MessageId, SessionKey, ViewId};

type HmacSha256 = Hmac<Sha256>;

const PURPOSE: &[u8] = b"messages-core/cookie-store/v1";
const PREFIX: &str = "v1.";
const FLAG_DEFLATE: u8 = 1;
const HEADER_LEN: usize = 9;
const TAG_LEN: usize = 32;
/// Shortest signing key accepted.
pub(crate) const MIN_KEY_BYTES: usize = 32;
/// Incoming cookie values longer than this are refused without decoding.
pub(crate) const MAX_INCOMING_BYTES: usize = 8192;
/// Largest decompressed body accepted (against deflate bombs).
const MAX_BODY_BYTES: usize = 64 * 1024;
/// The deflate level of compressed bodies: the fastest; level 6 shrinks cookie values by
/// 0–5% more for up to 2.3 times the time (BENCHMARKS.md, the cookie micro bench).
pub const DEFLATE_LEVEL: u8 = 1;
/// Bodies shorter than this are not worth compressing: one short message, which deflate
/// shrinks by about a tenth for some 7 µs of deflate and inflate; from two messages on
/// it takes off 40% or more (BENCHMARKS.md).
const COMPRESS_FROM: usize = 256;
/// Clock skew between servers tolerated on verify: signatures up to this far in the
/// future are accepted.
const SKEW_MS: u64 = 60_000;
/// Bytes per cookie a browser must keep at least (RFC 6265, section 6.1), counting the
/// name, the value and the attributes.
const BROWSER_COOKIE_BYTES: usize = 4096;
/// Bytes of a cookie set aside for its name, `=` and attributes (`Path`, `Domain`,
/// `HttpOnly`, `Secure`, `SameSite`, `Max-Age`) below [`BROWSER_COOKIE_BYTES`].
const ATTRIBUTE_BYTES: usize = 512;

// Whatever the budget, the next request accepts the cookie.
const _: () = assert!(CookieStore::MAX_BUDGET <= MAX_INCOMING_BYTES);

/// The `SameSite` attribute of the cookies this crate sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SameSite {
    /// Sent on top-level navigation from other sites (a link in an e-mail): the default,
    /// since `Strict` would drop the message after such a link.
    #[default]
    Lax,
    /// Sent only on requests from this site.
    Strict,
    /// Sent everywhere; browsers then require `Secure`.
    None,
}

/// Names and attributes of the cookies this crate sets: the session cookie and, with
/// cookie storage, the messages cookie. Both are `HttpOnly`.
///
/// ```
/// use messages_core::CookieSettings;
///
/// let s = CookieSettings { secure: true, ..CookieSettings::default() };
/// assert_eq!((s.session_name.as_str(), s.messages_name.as_str(), s.path.as_str()), ("messages_session", "messages", "/"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieSettings {
    /// Name of the session-key cookie (default `messages_session`).
    pub session_name: String,
    /// Name of the messages cookie (default `messages`).
    pub messages_name: String,
    /// `Path` (default `/`); removal cookies carry the same.
    pub path: String,
    /// `Domain`, if any.
    pub domain: Option<String>,
    /// `Secure` (default off, for plain-http localhost; turn it on behind HTTPS).
    pub secure: bool,
    /// `SameSite` (default `Lax`).
    pub same_site: SameSite,
}

impl Default for CookieSettings {
    fn default() -> Self {
        CookieSettings {
            session_name: "messages_session".into(),
            messages_name: "messages".into(),
            path: "/".into(),
            domain: None,
            secure: false,
            same_site: SameSite::Lax,
        }
    }
}

impl CookieSettings {
    /// The settings for a site served over TLS (everything in production): both cookies
    /// `__Host-`-prefixed (`__Host-messages_session`, `__Host-messages`), `Secure`,
    /// `Path=/`, no `Domain`, `SameSite=Lax`. A `__Host-` cookie cannot be set or
    /// shadowed by a sibling subdomain or over plain HTTP, which closes the usual ways of
    /// planting a session key in a victim's browser.
    ///
    /// ```
    /// use messages_core::{CookieSettings, MemoryStore, MessagesConfig};
    ///
    /// let config = MessagesConfig::new(MemoryStore::new()).cookie_settings(CookieSettings::behind_tls())?;
    /// assert_eq!(config.cookies().session_name, "__Host-messages_session");
    /// assert!(config.cookies().secure);
    /// # Ok::<(), messages_core::Error>(())
    /// ```
    pub fn behind_tls() -> CookieSettings {
        CookieSettings {
            session_name: "__Host-messages_session".into(),
            messages_name: "__Host-messages".into(),
            path: "/".into(),
            domain: None,
            secure: true,
            same_site: SameSite::Lax,
        }
    }

    /// Checks the settings, so a browser never silently drops a cookie: names are
    /// cookie-name tokens and differ; a `__Host-` name needs `Secure`, `Path=/` and no
    /// `Domain`, a `__Secure-` name needs `Secure`; `SameSite=None` needs `Secure`; the
    /// path starts with `/`; path and domain hold no `;`, spaces or control characters.
    ///
    /// ```
    /// use messages_core::{CookieSettings, SameSite};
    ///
    /// assert!(CookieSettings::default().validate().is_ok());
    /// let cross_site = CookieSettings { same_site: SameSite::None, ..CookieSettings::default() };
    /// assert!(cross_site.validate().is_err()); // browsers drop SameSite=None without Secure
    /// let host = CookieSettings { secure: false, ..CookieSettings::behind_tls() };
    /// assert!(host.validate().is_err());
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`] naming the first problem.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |why: String| Err(Error::Config(format!("cookie settings: {why}")));
        for name in [&self.session_name, &self.messages_name] {
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return bad(format!(
                    "{name:?} is not a cookie name (a token: visible ASCII without separators)"
                ));
            }
            if starts_with_ignore_case(name, "__Host-")
                && !(self.secure && self.path == "/" && self.domain.is_none())
            {
                return bad(format!(
                    "{name:?}: a __Host- cookie needs secure: true, path \"/\" and no domain"
                ));
            }
            if starts_with_ignore_case(name, "__Secure-") && !self.secure {
                return bad(format!("{name:?}: a __Secure- cookie needs secure: true"));
            }
        }
        if self.session_name == self.messages_name {
            return bad("the session and messages cookies need different names".into());
        }
        if self.same_site == SameSite::None && !self.secure {
            return bad("SameSite=None needs secure: true (browsers drop it otherwise)".into());
        }
        if !self.path.starts_with('/') || !is_attribute_value(&self.path) {
            return bad(format!(
                "path {:?} must start with / and hold no ';', spaces or control characters",
                self.path
            ));
        }
        if let Some(domain) = &self.domain
            && (domain.is_empty() || !is_attribute_value(domain))
        {
            return bad(format!(
                "domain {domain:?} is empty or holds ';', spaces or control characters"
            ));
        }
        Ok(())
    }

    /// A `Set-Cookie` value setting `name=value` (`value` empty: a removal cookie).
    pub(crate) fn set_cookie(&self, name: &str, value: Option<&str>) -> String {
        self.build(name, value, None)
    }

    /// A `Set-Cookie` value setting `name=value` for `max_age` (whole seconds, rounded up).
    pub(crate) fn set_cookie_for(&self, name: &str, value: &str, max_age: Duration) -> String {
        self.build(name, Some(value), Some(max_age))
    }

    fn build(&self, name: &str, value: Option<&str>, max_age: Option<Duration>) -> String {
        let mut c = cookie::Cookie::new(name.to_owned(), value.unwrap_or("").to_owned());
        c.set_path(self.path.clone());
        if let Some(d) = &self.domain {
            c.set_domain(d.clone());
        }
        c.set_http_only(true);
        c.set_secure(self.secure);
        c.set_same_site(match self.same_site {
            SameSite::Lax => cookie::SameSite::Lax,
            SameSite::Strict => cookie::SameSite::Strict,
            SameSite::None => cookie::SameSite::None,
        });
        if let Some(age) = max_age {
            let secs = age
                .as_secs()
                .saturating_add(u64::from(age.subsec_nanos() > 0));
            c.set_max_age(cookie::time::Duration::seconds(
                i64::try_from(secs).unwrap_or(i64::MAX),
            ));
        }
        if value.is_none() {
            c.make_removal();
        }
        c.to_string()
    }
}

/// RFC 6265 cookie-name token bytes: visible ASCII but separators.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b)
}

/// An attribute value a browser keeps as given.
fn is_attribute_value(v: &str) -> bool {
    v.bytes().all(|b| b.is_ascii_graphic() && b != b';')
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

/// What one messages cookie holds: every context of the session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CookiePayload {
    /// Messages per view, each list oldest first.
    #[serde(rename = "v", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) views: BTreeMap<ViewId, Vec<Message>>,
    /// Views with more messages in the server store (fallback storage).
    #[serde(rename = "s", default, skip_serializing_if = "BTreeSet::is_empty")]
    pub(crate) spilled: BTreeSet<ViewId>,
    /// Every view may have messages in the server store: set when the markers of the
    /// spilled views do not fit in the budget themselves (fallback storage). Unlike a
    /// view's marker, a read does not clear it.
    #[serde(rename = "a", default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) all_spilled: bool,
}

impl CookiePayload {
    pub(crate) fn is_empty(&self) -> bool {
        self.views.values().all(Vec::is_empty) && self.spilled.is_empty() && !self.all_spilled
    }

    /// Whether the server store may hold messages of `view`.
    pub(crate) fn is_spilled(&self, view: &ViewId) -> bool {
        self.all_spilled || self.spilled.contains(view)
    }
}

/// Why a cookie was refused. Callers see no messages; the reason goes to the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CookieError {
    #[error("longer than {MAX_INCOMING_BYTES} bytes")]
    Oversized,
    #[error("malformed")]
    Malformed,
    #[error("bad signature")]
    Signature,
    #[error("expired")]
    Expired,
    #[error("body does not decode")]
    Body,
}

/// Which messages stay when a payload is over the byte budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keep {
    /// Keep the newest (cookie storage: the oldest are dropped).
    Newest,
    /// Keep the oldest and mark the views whose newer messages moved out (fallback
    /// storage: the newest spill to the server).
    OldestAndMark,
}

/// Messages stored in a signed cookie: no server state at all.
///
/// Every context of the session travels in one cookie, JSON, signed with HMAC-SHA256
/// (see [the wire format](#wire-format)). A cookie that fails any check — signature,
/// cookie name, session, age, size, encoding — means "no messages", one `tracing`
/// warning and a removal cookie; never an error page. The check is lazy like the rest:
/// a request that neither reads nor adds messages leaves the cookie alone.
///
/// The value never exceeds the byte budget (default 2048, Django's figure; at most
/// [`MAX_BUDGET`](CookieStore::MAX_BUDGET), 3584, so that name, value and attributes stay
/// within the 4096 bytes browsers keep): when the messages do not fit, the oldest are
/// dropped with a warning (use [`Storage::fallback`](crate::Storage::fallback) to keep them on the
/// server instead).
///
/// # Wire format
///
/// `v1.<base64url(payload)>.<base64url(tag)>`, base64url without padding.
///
/// - `payload` is one flag byte (bit 0: the body is raw-deflate compressed, set only when
///   that makes it shorter), the signing time (8 bytes, big-endian milliseconds since the
///   Unix epoch) and the body: the compact JSON `{"v": {view: [message, ...]}, "s":
///   [view, ...], "a": true}`, where `v` holds each view's messages in order, `s`
///   lists the views with more messages in the server store and `a` marks them all
///   ([`Storage::fallback`](crate::Storage::fallback) only); empty members are left out.
/// - `tag` is HMAC-SHA256 with the signing key over four parts, each preceded by its
///   length as 8 big-endian bytes: the purpose salt `messages-core/cookie-store/v1`, the
///   cookie name, the session key (its text form) and `payload`. With the lengths in, no
///   two different inputs give one MAC input, so a value signed for one cookie name or
///   one session verifies under no other; the flag and the time are signed too.
///
/// # Concurrent requests of one browser
///
/// The cookie is the store, and a browser sends whatever cookie it holds when a request
/// starts; the response that finishes last sets the cookie that stays. As with Django's
/// cookie storage, exactly-once holds for requests one after another, not for requests
/// of one browser that overlap (several tabs, a page and its AJAX calls):
///
/// - Two overlapping requests that read the same view can both show its messages.
/// - The response that finishes last decides the whole cookie, every view of it: the
///   messages the other request showed come back (and are shown once more), the
///   messages the other request added are lost.
/// - A request that neither adds nor reads a view holding messages sends no cookie, so
///   it overwrites nothing: static files, most AJAX calls and pages without messages are
///   harmless.
/// - A client that sends an older copy of its own cookie *alone* (a replayed request, a
///   saved cookie jar put back) is shown that copy's messages again, consumed or not,
///   while its signature is younger than the [max age](CookieStore::max_age): a stateless
///   cookie cannot tell an old copy sent alone from the current one. Sent *beside* the
///   current cookie, an old copy shows nothing (see below).
///
/// Where that matters, use a server store ([`MemoryStore`](crate::MemoryStore), Redis):
/// its reads take messages atomically. [`Storage::fallback`](crate::Storage::fallback) has the
/// cookie's behaviour for the messages in the cookie and the server's for the rest.
///
/// # Hostile and stale cookies
///
/// If a request carries several messages cookies (an old one at another path or domain,
/// one set by a sibling subdomain), the valid one signed most recently is used; the invalid
/// ones are refused with the warning, and the response rewrites this store's own cookie.
/// Every rewrite is signed later than the newest valid cookie the request brought (by a
/// millisecond if the clock has not moved on), and a response that empties a valid cookie
/// does not remove it but writes a *tombstone*: a signed empty value whose `Max-Age` is
/// the max age plus a minute of clock skew, by which time every copy signed before it is
/// refused as expired. So a stale copy of the cookie sent beside the current one, in any
/// order, never brings a consumed message back. (A messages cookie that verifies under
/// no session of the request, or a logout, gets a removal: the session changes, and old
/// copies are bound to the old session key.)
/// Values over 8 KiB are refused unread; compressed bodies are inflated to at most
/// 64 KiB.
///
/// ```
/// use messages_core::{CookieStore, MessagesConfig};
///
/// let keys = vec![b"a new key of at least thirty-two bytes!!".to_vec(), b"the old key, still accepted on verify".to_vec()];
/// let store = CookieStore::new(keys).unwrap().budget(2048).unwrap();
/// let config = MessagesConfig::new(store);
/// assert!(CookieStore::new(vec![b"short".to_vec()]).is_err());
/// # drop(config);
/// ```
#[derive(Clone)]
pub struct CookieStore {
    keys: Vec<HmacSha256>,
    budget: usize,
    max_age: Duration,
    compress: bool,
}

impl std::fmt::Debug for CookieStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieStore")
            .field("keys", &self.keys.len())
            .field("budget", &self.budget)
            .field("max_age", &self.max_age)
            .field("compress", &self.compress)
            .finish()
    }
}

impl CookieStore {
    /// A store signing with the first key and accepting any of them (key rotation: put
    /// the new key first and keep the old ones until their cookies have expired).
    ///
    /// Keys are secrets of at least 32 bytes from a CSPRNG (see
    /// [`random_key`](CookieStore::random_key)), kept out of the source code.
    ///
    /// # Errors
    /// [`Error::Config`] if there is no key or a key is shorter than 32 bytes.
    pub fn new<K: AsRef<[u8]>>(keys: impl IntoIterator<Item = K>) -> Result<CookieStore, Error> {
        let mut macs = Vec::new();
        for (i, key) in keys.into_iter().enumerate() {
            let key = key.as_ref();
            if key.len() < MIN_KEY_BYTES {
                return Err(Error::Config(format!(
                    "cookie signing key {i} has {} bytes; at least {MIN_KEY_BYTES} random bytes are required",
                    key.len()
                )));
            }
            macs.push(HmacSha256::new_from_slice(key).map_err(|e| Error::Config(e.to_string()))?);
        }
        if macs.is_empty() {
            return Err(Error::Config(
                "cookie store needs at least one signing key".into(),
            ));
        }
        Ok(CookieStore {
            keys: macs,
            budget: 2048,
            max_age: Duration::from_secs(3600),
            compress: true,
        })
    }

    /// A new signing key: 32 bytes from the OS CSPRNG. A key made at start-up signs
    /// cookies that the next start (or another process) refuses; persist keys shared by
    /// every process of the site instead.
    ///
    /// # Errors
    /// [`Error::Random`] if the OS random source fails.
    pub fn random_key() -> Result<Vec<u8>, Error> {
        let mut key = vec![0u8; MIN_KEY_BYTES];
        getrandom::fill(&mut key).map_err(|e| Error::Random(e.to_string()))?;
        Ok(key)
    }

    /// Largest byte budget: 3584, the 4096 bytes per cookie that browsers must keep (RFC
    /// 6265, section 6.1, counting name, value and attributes) less 512 bytes for the
    /// cookie's name and attributes. It is also below the 8 KiB a request accepts.
    pub const MAX_BUDGET: usize = BROWSER_COOKIE_BYTES - ATTRIBUTE_BYTES;

    /// Smallest byte budget: 256, room for the signature, the header and one short
    /// message (a few words, on a view with a short id).
    pub const MIN_BUDGET: usize = 256;

    /// Most bytes of the cookie value (default 2048, at most
    /// [`MAX_BUDGET`](CookieStore::MAX_BUDGET), at least
    /// [`MIN_BUDGET`](CookieStore::MIN_BUDGET)).
    ///
    /// The cookie name and attributes ([`CookieSettings`]: name, `Path`, `Domain`) must fit
    /// in the 512 bytes the maximum leaves of a browser's 4096; the defaults take under
    /// 100.
    ///
    /// # Errors
    /// [`Error::Config`] for a budget outside `MIN_BUDGET..=MAX_BUDGET`: a larger cookie
    /// may be dropped by browsers, a smaller one cannot hold a message.
    ///
    /// ```
    /// use messages_core::{CookieStore, Error};
    ///
    /// let store = CookieStore::new([CookieStore::random_key()?])?;
    /// assert_eq!(store.clone().budget(CookieStore::MAX_BUDGET)?.byte_budget(), 3584);
    /// assert!(matches!(store.clone().budget(8000), Err(Error::Config(_))));
    /// assert!(matches!(store.budget(100), Err(Error::Config(_))));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn budget(mut self, bytes: usize) -> Result<CookieStore, Error> {
        if !(Self::MIN_BUDGET..=Self::MAX_BUDGET).contains(&bytes) {
            return Err(Error::Config(format!(
                "cookie budget of {bytes} bytes is outside {}..={} (browsers keep 4096 bytes per cookie, name and attributes included)",
                Self::MIN_BUDGET,
                Self::MAX_BUDGET
            )));
        }
        self.budget = bytes;
        Ok(self)
    }

    /// Oldest accepted signature (default 1 hour). Every response that changes the cookie
    /// signs it anew, so this bounds how long messages wait unread (and how long a copied
    /// cookie can be replayed); older cookies are refused like forged ones. Signatures
    /// more than a minute in the future are refused too.
    #[must_use]
    pub fn max_age(mut self, max_age: Duration) -> CookieStore {
        self.max_age = max_age;
        self
    }

    /// Whether bodies may be deflate-compressed when that makes them shorter (default on).
    ///
    /// Bodies of 256 bytes or more are deflated with the fixed Huffman codes of RFC 1951
    /// (no code tables to build: a third of the time); a value that would not fit the
    /// budget that way is deflated again with codes built for it, some 10% shorter.
    #[must_use]
    pub fn compression(mut self, on: bool) -> CookieStore {
        self.compress = on;
        self
    }

    /// The byte budget.
    pub fn byte_budget(&self) -> usize {
        self.budget
    }

    /// The MAC of one cookie value: every input length-prefixed.
    fn mac(key: &HmacSha256, name: &str, session: &SessionKey, payload: &[u8]) -> HmacSha256 {
        let mut mac = key.clone();
        for part in [
            PURPOSE,
            name.as_bytes(),
            session.as_str().as_bytes(),
            payload,
        ] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac
    }

    /// Signs `payload` as the value of cookie `name` for `session`.
    pub(crate) fn encode(
        &self,
        payload: &CookiePayload,
        name: &str,
        session: &SessionKey,
        now_ms: u64,
    ) -> String {
        // Without a limit there is always a value.
        self.encode_within(payload, name, session, now_ms, usize::MAX)
            .unwrap_or_default()
    }

    /// The value of `payload`, if it is at most `limit` bytes long.
    ///
    /// The body is deflated with fixed Huffman codes when that shortens it (cheap: no
    /// code tables to build and send); only a value that would not fit the limit that
    /// way is tried with dynamic codes, which shrink it further at three times the cost.
    /// A value over the limit is neither signed nor encoded.
    fn encode_within(
        &self,
        payload: &CookiePayload,
        name: &str,
        session: &SessionKey,
        now_ms: u64,
        limit: usize,
    ) -> Option<String> {
        let mut scratch = Reused::take(&SCRATCH);
        let [plain, packed] = &mut *scratch;
        // The payload: flag, time and body, the JSON written in place after the header.
        plain.push(0);
        plain.extend_from_slice(&now_ms.to_be_bytes());
        // Serializing plain data into a Vec cannot fail; an empty body would be refused
        // when read.
        if serde_json::to_writer(&mut *plain, payload).is_err() {
            plain.truncate(HEADER_LEN);
        }
        let mut deflated = false;
        if self.compress && plain.len() - HEADER_LEN >= COMPRESS_FROM {
            for codes in [Codes::Fixed, Codes::Dynamic] {
                let len = if deflated { packed.len() } else { plain.len() };
                if codes == Codes::Dynamic && value_len(len) <= limit {
                    break;
                }
                packed.clear();
                packed.push(FLAG_DEFLATE);
                packed.extend_from_slice(&now_ms.to_be_bytes());
                deflated = deflate_into(&plain[HEADER_LEN..], packed, codes);
            }
        }
        let bytes: &[u8] = if deflated { packed } else { plain };
        if value_len(bytes.len()) > limit {
            return None;
        }
        let tag = Self::mac(&self.keys[0], name, session, bytes)
            .finalize()
            .into_bytes();
        let mut out = String::with_capacity(value_len(bytes.len()));
        out.push_str(PREFIX);
        URL_SAFE_NO_PAD.encode_string(bytes, &mut out);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(tag, &mut out);
        Some(out)
    }

    /// Verifies and decodes a cookie value; returns the payload and its signing time.
    pub(crate) fn decode(
        &self,
        value: &str,
        name: &str,
        session: &SessionKey,
        now_ms: u64,
    ) -> Result<(CookiePayload, u64), CookieError> {
        if value.len() > MAX_INCOMING_BYTES {
            return Err(CookieError::Oversized);
        }
        let rest = value.strip_prefix(PREFIX).ok_or(CookieError::Malformed)?;
        let (body, tag_text) = rest.split_once('.').ok_or(CookieError::Malformed)?;
        // The decoder asks room for 33 bytes to decode the 43 characters of 32.
        let mut tag = [0u8; TAG_LEN + 1];
        if tag_text.len() != base64_len(TAG_LEN)
            || URL_SAFE_NO_PAD.decode_slice(tag_text, &mut tag) != Ok(TAG_LEN)
        {
            return Err(CookieError::Malformed);
        }
        let tag = &tag[..TAG_LEN];
        let mut scratch = Reused::take(&SCRATCH);
        let [bytes, _] = &mut *scratch;
        URL_SAFE_NO_PAD
            .decode_vec(body, bytes)
            .map_err(|_| CookieError::Malformed)?;
        if bytes.len() < HEADER_LEN {
            return Err(CookieError::Malformed);
        }
        // verify_slice compares in constant time.
        if !self
            .keys
            .iter()
            .any(|k| Self::mac(k, name, session, bytes).verify_slice(tag).is_ok())
        {
            return Err(CookieError::Signature);
        }
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&bytes[1..HEADER_LEN]);
        let signed_at = u64::from_be_bytes(ts);
        let max_age = u64::try_from(self.max_age.as_millis()).unwrap_or(u64::MAX);
        // A minute of clock skew between servers is tolerated.
        if now_ms.saturating_sub(signed_at) > max_age || signed_at > now_ms.saturating_add(SKEW_MS)
        {
            return Err(CookieError::Expired);
        }
        let body = &bytes[HEADER_LEN..];
        let payload = match bytes[0] {
            0 => serde_json::from_slice(body),
            FLAG_DEFLATE => {
                let mut out = Reused::take(&INFLATED);
                let len = inflate_into(body, &mut out).ok_or(CookieError::Body)?;
                serde_json::from_slice(&out[..len])
            }
            _ => return Err(CookieError::Malformed),
        };
        Ok((payload.map_err(|_| CookieError::Body)?, signed_at))
    }

    /// The signing time of a value that replaces cookies signed at `newest` (the newest
    /// valid one the request brought): `now`, or just after `newest` if that is not
    /// earlier, so the replacement outranks every cookie it replaces even within one
    /// millisecond or across servers whose clocks differ (up to the tolerated skew).
    pub(crate) fn signing_time(now: u64, newest: Option<u64>) -> u64 {
        newest.map_or(now, |at| {
            now.max(at.saturating_add(1).min(now.saturating_add(SKEW_MS)))
        })
    }

    /// A tombstone: the signed value of an empty payload, written instead of a removal
    /// when a request empties a valid cookie, with its `Max-Age`. Of several valid
    /// messages cookies the one signed last wins, so a stale copy sent beside it (another
    /// `Path` or `Domain`) shows nothing; the tombstone lives until every copy signed
    /// before it is refused as expired, even by a server whose clock lags by the
    /// tolerated skew.
    pub(crate) fn tombstone(
        &self,
        name: &str,
        session: &SessionKey,
        signed_at: u64,
        now_ms: u64,
    ) -> (String, Duration) {
        let value = self.encode(&CookiePayload::default(), name, session, signed_at);
        let ahead = Duration::from_millis(signed_at.saturating_sub(now_ms).saturating_add(SKEW_MS));
        (value, self.max_age.saturating_add(ahead))
    }

    /// The whole payload's value, if it fits in the budget.
    fn encode_if_fits(
        &self,
        payload: &CookiePayload,
        name: &str,
        session: &SessionKey,
        now_ms: u64,
    ) -> Option<String> {
        self.encode_within(payload, name, session, now_ms, self.budget)
    }

    /// Encodes the payload within the budget, moving messages out oldest or newest first
    /// until it fits. Returns the value (`None`: nothing left to store) and what was moved
    /// out, per view, oldest first.
    ///
    /// With [`Keep::OldestAndMark`], when the markers of the views that lose messages do
    /// not fit by themselves (many views, long view ids, a small budget), one flag marks
    /// every view instead, so no message moved out is ever unreachable.
    pub(crate) fn encode_within_budget(
        &self,
        mut payload: CookiePayload,
        name: &str,
        session: &SessionKey,
        now_ms: u64,
        keep: Keep,
    ) -> (Option<String>, BTreeMap<ViewId, Vec<Message>>) {
        payload.views.retain(|_, v| !v.is_empty());
        if payload.is_empty() {
            return (None, BTreeMap::new());
        }
        if let Some(value) = self.encode_if_fits(&payload, name, session, now_ms) {
            return (Some(value), BTreeMap::new());
        }
        let fits = |p: &CookiePayload| self.encode_if_fits(p, name, session, now_ms).is_some();
        // All messages, oldest first: across views by creation time, within a view in the
        // list's own order (its arrival order, never re-sorted), so what a view keeps is
        // always its newest (or oldest) run. Binary search how many of them fit.
        let mut all: Vec<(u64, usize, MessageId)> = Vec::new();
        for list in payload.views.values() {
            let mut latest = 0;
            for (position, m) in list.iter().enumerate() {
                latest = latest.max(m.created_at());
                all.push((latest, position, m.id()));
            }
        }
        all.sort_unstable();
        let n = all.len();
        let subset = |k: usize, collapse: bool| -> CookiePayload {
            let kept: BTreeSet<MessageId> = match keep {
                Keep::Newest => all[n - k..].iter().map(|x| x.2).collect(),
                Keep::OldestAndMark => all[..k].iter().map(|x| x.2).collect(),
            };
            let mut p = payload.clone();
            for (view, ms) in &mut p.views {
                let before = ms.len();
                ms.retain(|m| kept.contains(&m.id()));
                if keep == Keep::OldestAndMark && ms.len() < before {
                    p.spilled.insert(view.clone());
                }
            }
            p.views.retain(|_, v| !v.is_empty());
            if collapse {
                p.spilled.clear();
                p.all_spilled = true;
            }
            p
        };
        let collapse = keep == Keep::OldestAndMark && !fits(&subset(0, false));
        let (mut lo, mut hi) = (0usize, n.saturating_sub(1)); // k = n is known not to fit
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if fits(&subset(mid, collapse)) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        let mut kept = subset(lo, collapse);
        // k = 0 was never tried: with `Newest` it may still carry markers of an earlier
        // fallback configuration that do not fit; then nothing is kept.
        let value = if kept.is_empty() {
            None
        } else {
            self.encode_if_fits(&kept, name, session, now_ms)
        };
        if value.is_none() {
            kept = CookiePayload::default();
        }
        let kept_ids: BTreeSet<MessageId> =
            kept.views.values().flatten().map(Message::id).collect();
        let mut overflow = BTreeMap::new();
        for (view, ms) in payload.views {
            let out: Vec<Message> = ms
                .into_iter()
                .filter(|m| !kept_ids.contains(&m.id()))
                .collect();
            if !out.is_empty() {
                overflow.insert(view, out);
            }
        }
        (value, overflow)
    }
}

/// Not public API: the codec alone, for the cookie benchmark of `messages-tests`. It
/// runs the code a commit and a request's first read run, without the request around it.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct CookieCodec {
    store: CookieStore,
    name: String,
    session: SessionKey,
    payload: CookiePayload,
}

impl CookieCodec {
    /// A codec for the messages cookie `name` of `session`, holding `views`.
    pub fn new(
        store: CookieStore,
        name: &str,
        session: SessionKey,
        views: BTreeMap<ViewId, Vec<Message>>,
    ) -> CookieCodec {
        CookieCodec {
            store,
            name: name.to_owned(),
            session,
            payload: CookiePayload {
                views,
                ..CookiePayload::default()
            },
        }
    }

    /// What a commit of cookie storage sends for the views, signed at `now_ms`: the value
    /// within the budget (keeping the newest messages that fit), `None` if empty.
    pub fn encode(&self, now_ms: u64) -> Option<String> {
        let (name, session) = (self.name.as_str(), &self.session);
        self.store
            .encode_if_fits(&self.payload, name, session, now_ms)
            .or_else(|| {
                self.store
                    .encode_within_budget(self.payload.clone(), name, session, now_ms, Keep::Newest)
                    .0
            })
    }

    /// The views of a value, `None` if it is refused.
    pub fn decode(&self, value: &str, now_ms: u64) -> Option<BTreeMap<ViewId, Vec<Message>>> {
        self.store
            .decode(value, &self.name, &self.session, now_ms)
            .ok()
            .map(|(payload, _)| payload.views)
    }
}

/// Huffman codes of a deflated body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codes {
    /// The fixed codes of RFC 1951 (section 3.2.6).
    Fixed,
    /// Codes built for the body and sent with it.
    Dynamic,
}

/// Bytes of a cookie value whose payload (flag, time, body) has `payload_len` bytes.
const fn value_len(payload_len: usize) -> usize {
    base64_len(payload_len).saturating_add(PREFIX.len() + 1 + base64_len(TAG_LEN))
}

/// Characters of `n` bytes in unpadded base64.
const fn base64_len(n: usize) -> usize {
    n.saturating_mul(4).div_ceil(3)
}

/// Scratch buffers kept beyond one use only up to this capacity.
const KEEP_BYTES: usize = 16 * 1024;

thread_local! {
    // Per thread, reused from one cookie to the next: a new compressor allocates and
    // zeroes some 300 KB, many times the work of compressing a cookie; a decompressor
    // some 11 KB; the buffers save an allocation per step.
    static SCRATCH: Cell<[Vec<u8>; 2]> = const { Cell::new([Vec::new(), Vec::new()]) };
    static FIXED: Cell<Option<Box<CompressorOxide>>> = const { Cell::new(None) };
    static DYNAMIC: Cell<Option<Box<CompressorOxide>>> = const { Cell::new(None) };
    static INFLATE: Cell<Option<Box<DecompressorOxide>>> = const { Cell::new(None) };
    static INFLATED: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// What a thread-local cell holds, taken out for one use and put back when dropped, so
/// a use nested in another (which nothing does) gets a new one instead of a panic.
struct Reused<T: Default + Tidy + 'static> {
    key: &'static LocalKey<Cell<T>>,
    value: T,
}

impl<T: Default + Tidy> Reused<T> {
    fn take(key: &'static LocalKey<Cell<T>>) -> Reused<T> {
        let mut value = key.try_with(Cell::take).unwrap_or_default();
        value.tidy();
        Reused { key, value }
    }
}

impl<T: Default + Tidy> std::ops::Deref for Reused<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: Default + Tidy> std::ops::DerefMut for Reused<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

impl<T: Default + Tidy> Drop for Reused<T> {
    fn drop(&mut self) {
        let value = std::mem::take(&mut self.value);
        // After the thread's locals are gone, the value is dropped instead.
        let _ = self.key.try_with(|cell| cell.set(value));
    }
}

/// Readies a reused value for its next use.
trait Tidy {
    fn tidy(&mut self);
}

impl Tidy for [Vec<u8>; 2] {
    /// Empty, and not larger than [`KEEP_BYTES`].
    fn tidy(&mut self) {
        for buf in self {
            buf.clear();
            if buf.capacity() > KEEP_BYTES {
                *buf = Vec::new();
            }
        }
    }
}

impl Tidy for Vec<u8> {
    /// [`MAX_BODY_BYTES`] long: the inflated body's bound.
    fn tidy(&mut self) {
        self.resize(MAX_BODY_BYTES, 0);
    }
}

impl<T> Tidy for Option<T> {
    /// Reset by its user.
    fn tidy(&mut self) {}
}

/// Appends `data` raw-deflated with `codes` to `out`, if that is shorter than `data`;
/// otherwise leaves `out` as it was and returns false.
fn deflate_into(data: &[u8], out: &mut Vec<u8>, codes: Codes) -> bool {
    let mut compressor = Reused::take(match codes {
        Codes::Fixed => &FIXED,
        Codes::Dynamic => &DYNAMIC,
    });
    let compressor = compressor.get_or_insert_with(|| {
        let strategy = match codes {
            Codes::Fixed => CompressionStrategy::Fixed,
            Codes::Dynamic => CompressionStrategy::Default,
        };
        // Negative window bits: raw deflate, no zlib header.
        let flags = create_comp_flags_from_zip_params(DEFLATE_LEVEL.into(), -15, strategy.into());
        Box::new(CompressorOxide::new(flags))
    });
    compressor.reset();
    let start = out.len();
    // Output that does not fit below the input's length is not worth having.
    let (status, _) = compress_to_output(compressor, data, TDEFLFlush::Finish, |chunk| {
        out.extend_from_slice(chunk);
        out.len() - start < data.len()
    });
    let shorter = status == TDEFLStatus::Done && out.len() - start < data.len();
    if !shorter {
        out.truncate(start);
    }
    shorter
}

/// Inflates raw-deflated `data` into `out` ([`MAX_BODY_BYTES`] long, the bound): the
/// length of the body, if `data` is one whole stream that fits.
fn inflate_into(data: &[u8], out: &mut [u8]) -> Option<usize> {
    let mut decompressor = Reused::take(&INFLATE);
    let decompressor = decompressor.get_or_insert_with(Box::default);
    decompressor.init();
    // All input at once (a stream cut short fails), into one buffer that bounds the
    // output (a longer body stops there) and that distances may not reach before.
    let (status, read, written) = decompress(
        decompressor,
        data,
        out,
        0,
        TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF,
    );
    (status == TINFLStatus::Done && read == data.len()).then_some(written)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const NAME: &str = "messages";

    fn deflate(data: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        deflate_into(data, &mut out, Codes::Fixed).then_some(out)
    }

    fn inflate(data: &[u8]) -> Option<Vec<u8>> {
        let mut out = vec![0; MAX_BODY_BYTES];
        inflate_into(data, &mut out).map(|len| out[..len].to_vec())
    }

    fn store() -> CookieStore {
        CookieStore::new(vec![vec![7; 32]]).unwrap()
    }
    fn payload(n: usize, text_len: usize) -> CookiePayload {
        let mut p = CookiePayload::default();
        let v = ViewId::new("v").unwrap();
        p.views.insert(
            v,
            (0..n)
                .map(|i| Message::info(format!("{i:04}{}", "x".repeat(text_len))))
                .collect(),
        );
        p
    }

    #[test]
    fn round_trip_and_binding() {
        let s = store();
        let key = SessionKey::generate().unwrap();
        let other = SessionKey::generate().unwrap();
        let p = payload(3, 10);
        let value = s.encode(&p, NAME, &key, 1000);
        assert_eq!(s.decode(&value, NAME, &key, 1000).unwrap(), (p, 1000));
        assert_eq!(
            s.decode(&value, NAME, &other, 1000),
            Err(CookieError::Signature)
        );
        assert_eq!(
            s.decode(&value, "other", &key, 1000),
            Err(CookieError::Signature)
        );
        let ms = u64::try_from(Duration::from_secs(3600).as_millis()).unwrap();
        assert_eq!(
            s.decode(&value, NAME, &key, 1000 + ms + 1),
            Err(CookieError::Expired)
        );
        assert!(s.decode(&value, NAME, &key, 1000 + ms).is_ok());
    }

    #[test]
    fn compression_only_when_it_shrinks() {
        let s = store();
        let key = SessionKey::generate().unwrap();
        let small = s.encode(&payload(1, 5), NAME, &key, 1);
        let big = s.encode(&payload(20, 50), NAME, &key, 1);
        let flag = |v: &str| {
            URL_SAFE_NO_PAD
                .decode(v[3..].split('.').next().unwrap())
                .unwrap()[0]
        };
        assert_eq!(flag(&small), 0);
        assert_eq!(flag(&big), FLAG_DEFLATE);
        let p = payload(20, 50);
        assert_eq!(
            s.decode(&s.encode(&p, NAME, &key, 1), NAME, &key, 1)
                .unwrap()
                .0,
            p
        );
        let plain = store().compression(false).encode(&p, NAME, &key, 1);
        assert_eq!(flag(&plain), 0);
        assert!(plain.len() > big.len());
    }

    #[test]
    fn dynamic_codes_only_when_fixed_ones_do_not_fit() {
        let key = SessionKey::generate().unwrap();
        let s = store().budget(1024).unwrap();
        let flag = |v: &str| {
            URL_SAFE_NO_PAD
                .decode(v[3..].split('.').next().unwrap())
                .unwrap()[0]
        };
        // Some count of messages fits the budget with dynamic codes only.
        let (p, value) = (1..200)
            .map(|n| payload(n, 40))
            .find_map(|p| {
                let fixed = s.encode(&p, NAME, &key, 1);
                let within = s.encode_if_fits(&p, NAME, &key, 1)?;
                (fixed.len() > 1024).then_some((p, within))
            })
            .expect("a payload between the two");
        assert!(value.len() <= 1024);
        assert_eq!(flag(&value), FLAG_DEFLATE);
        assert_eq!(s.decode(&value, NAME, &key, 1).unwrap().0, p, "kept whole");
        let (kept, out) = s.encode_within_budget(p, NAME, &key, 1, Keep::Newest);
        assert_eq!((kept, out.len()), (Some(value), 0));
    }

    #[test]
    fn value_len_is_the_encoded_length() {
        let s = store().compression(false);
        let key = SessionKey::generate().unwrap();
        for n in 0..40 {
            let p = payload(n.min(1), n);
            let value = s.encode(&p, NAME, &key, 1);
            let payload_len = HEADER_LEN + serde_json::to_vec(&p).unwrap().len();
            assert_eq!(value.len(), value_len(payload_len), "{n}");
            assert_eq!(
                s.encode_within(&p, NAME, &key, 1, value.len() - 1),
                None,
                "one byte over the limit"
            );
        }
    }

    #[test]
    fn length_prefixes_keep_shifted_inputs_apart() {
        // Without length prefixes, (name "ab", session S, payload P) and
        // (name "a", session "b" + S[..42], payload S[42] + P) would be one MAC input.
        let s = store();
        let (key, shifted) = loop {
            let key = SessionKey::generate().unwrap();
            if let Ok(shifted) = format!("b{}", &key.as_str()[..42]).parse::<SessionKey>() {
                break (key, shifted);
            }
        };
        let value = s.encode(&payload(1, 3), "ab", &key, 7);
        let (body, tag) = value[3..].split_once('.').unwrap();
        let mut bytes = vec![key.as_str().as_bytes()[42]];
        bytes.extend(URL_SAFE_NO_PAD.decode(body).unwrap());
        let crafted = format!("v1.{}.{tag}", URL_SAFE_NO_PAD.encode(&bytes));
        let plain_concat = |name: &str, session: &SessionKey, payload: &[u8]| {
            [
                PURPOSE,
                name.as_bytes(),
                session.as_str().as_bytes(),
                payload,
            ]
            .concat()
        };
        assert_eq!(
            plain_concat("ab", &key, &URL_SAFE_NO_PAD.decode(body).unwrap()),
            plain_concat("a", &shifted, &bytes),
            "the crafted pair collides without prefixes"
        );
        assert_eq!(
            s.decode(&crafted, "a", &shifted, 7),
            Err(CookieError::Signature)
        );
        assert!(s.decode(&value, "ab", &key, 7).is_ok());
    }

    #[test]
    fn markers_that_do_not_fit_collapse_into_one_flag() {
        let s = store().budget(256).unwrap();
        let key = SessionKey::generate().unwrap();
        let mut p = CookiePayload::default();
        for i in 0..4 {
            // Random ids: deflate cannot shrink them below the budget.
            let random = || SessionKey::generate().unwrap().as_str().to_owned();
            let view = ViewId::new(format!("{}{}{}", random(), random(), random())).unwrap();
            p.views
                .insert(view, vec![Message::info(format!("{i}{}", random()))]);
        }
        let (value, out) = s.encode_within_budget(p.clone(), NAME, &key, 1, Keep::OldestAndMark);
        let value = value.unwrap();
        assert!(value.len() <= 256, "{}", value.len());
        let (kept, _) = s.decode(&value, NAME, &key, 1).unwrap();
        assert!(kept.all_spilled);
        assert!(kept.spilled.is_empty());
        let moved: usize = out.values().map(Vec::len).sum();
        let stayed: usize = kept.views.values().map(Vec::len).sum();
        assert_eq!(
            moved + stayed,
            4,
            "every message is in the cookie or moved out"
        );
        assert!(p.views.keys().all(|v| kept.is_spilled(v)));
        // Cookie-only storage keeps no markers (here not even one message fits).
        let (value, out) = s.encode_within_budget(p, NAME, &key, 1, Keep::Newest);
        let kept = value
            .map(|v| s.decode(&v, NAME, &key, 1).unwrap().0)
            .unwrap_or_default();
        assert!(!kept.all_spilled && kept.spilled.is_empty());
        assert_eq!(
            kept.views.values().map(Vec::len).sum::<usize>()
                + out.values().map(Vec::len).sum::<usize>(),
            4
        );
    }

    #[test]
    fn keys_rotate_and_short_keys_are_refused() {
        let key = SessionKey::generate().unwrap();
        let old = CookieStore::new(vec![vec![1; 32]]).unwrap();
        let rotated = CookieStore::new(vec![vec![2; 40], vec![1; 32]]).unwrap();
        let new_only = CookieStore::new(vec![vec![2; 40]]).unwrap();
        let v = old.encode(&payload(1, 1), NAME, &key, 5);
        assert!(rotated.decode(&v, NAME, &key, 5).is_ok());
        assert_eq!(
            new_only.decode(&v, NAME, &key, 5),
            Err(CookieError::Signature)
        );
        let err = CookieStore::new(vec![vec![0; 31]]).unwrap_err();
        assert!(err.to_string().contains("at least 32"), "{err}");
        assert!(CookieStore::new(Vec::<Vec<u8>>::new()).is_err());
    }

    #[test]
    fn budget_drops_oldest_or_newest() {
        let s = store().compression(false);
        let key = SessionKey::generate().unwrap();
        // Five messages of which four fit (Django's "5 x 400 chars" case, sized for base64).
        let p = payload(5, 250);
        let (value, out) = s.encode_within_budget(p.clone(), NAME, &key, 1, Keep::Newest);
        let value = value.unwrap();
        assert!(value.len() <= 2048);
        let (kept, _) = s.decode(&value, NAME, &key, 1).unwrap();
        let kept_texts: Vec<_> = kept
            .views
            .values()
            .next()
            .unwrap()
            .iter()
            .map(|m| m.text()[..4].to_owned())
            .collect();
        let out_texts: Vec<_> = out
            .values()
            .next()
            .unwrap()
            .iter()
            .map(|m| m.text()[..4].to_owned())
            .collect();
        assert_eq!(out_texts, ["0000"], "the oldest is dropped");
        assert_eq!(kept_texts, ["0001", "0002", "0003", "0004"]);
        let (_, out) = s.encode_within_budget(p, NAME, &key, 1, Keep::OldestAndMark);
        assert_eq!(
            out.values()
                .next()
                .unwrap()
                .iter()
                .map(|m| m.text()[..4].to_owned())
                .collect::<Vec<_>>(),
            ["0004"]
        );
    }

    #[test]
    fn budget_keeps_each_views_own_order() {
        // Arrival order is not creation order (a job's message created earlier, a clock
        // step): what a view keeps is the tail of its list, in the list's order.
        let s = store().compression(false);
        let key = SessionKey::generate().unwrap();
        let at = |text: &str, created_at: u64| -> Message {
            let mut json =
                serde_json::to_value(Message::info(format!("{text}{}", "x".repeat(400)))).unwrap();
            json["created_at"] = created_at.into();
            serde_json::from_value(json).unwrap()
        };
        let mut p = CookiePayload::default();
        p.views.insert(
            ViewId::new("v").unwrap(),
            vec![at("a", 5), at("b", 1), at("c", 3), at("d", 2)],
        );
        let s = s.budget(1536).unwrap();
        let texts = |ms: &[Message]| {
            ms.iter()
                .map(|m| m.text()[..1].to_owned())
                .collect::<Vec<_>>()
        };
        let (value, out) = s.encode_within_budget(p.clone(), NAME, &key, 1, Keep::Newest);
        let (kept, _) = s.decode(&value.unwrap(), NAME, &key, 1).unwrap();
        let kept = texts(kept.views.values().next().unwrap());
        let out = texts(out.values().next().unwrap());
        assert_eq!((kept.len(), out.len()), (2, 2), "two of four fit");
        assert_eq!(kept, ["c", "d"]);
        assert_eq!(out, ["a", "b"]);
        let (value, out) = s.encode_within_budget(p, NAME, &key, 1, Keep::OldestAndMark);
        let (kept, _) = s.decode(&value.unwrap(), NAME, &key, 1).unwrap();
        assert_eq!(texts(kept.views.values().next().unwrap()), ["a", "b"]);
        assert_eq!(texts(out.values().next().unwrap()), ["c", "d"]);
    }

    #[test]
    fn budget_bounds_are_config_errors() {
        for bad in [0, 255, 3585, 4096, 8192, usize::MAX] {
            assert!(
                matches!(store().budget(bad), Err(Error::Config(_))),
                "{bad}"
            );
        }
        assert_eq!(store().budget(256).unwrap().byte_budget(), 256);
        assert_eq!(store().budget(3584).unwrap().byte_budget(), 3584);
        // A whole Set-Cookie at the largest budget, with long attributes, fits 4096 bytes.
        let settings = CookieSettings {
            secure: true,
            domain: Some("d".repeat(200)),
            path: format!("/{}", "p".repeat(100)),
            ..CookieSettings::default()
        };
        let (tombstone, max_age) =
            store().tombstone("messages", &SessionKey::generate().unwrap(), 1, 1);
        let set =
            settings.set_cookie_for("messages", &"v".repeat(CookieStore::MAX_BUDGET), max_age);
        assert!(set.len() <= BROWSER_COOKIE_BYTES, "{}", set.len());
        assert!(tombstone.len() < CookieStore::MIN_BUDGET);
    }

    #[test]
    fn rewrites_are_signed_after_what_they_replace() {
        let now = 1_000_000;
        assert_eq!(CookieStore::signing_time(now, None), now);
        assert_eq!(CookieStore::signing_time(now, Some(now - 5)), now);
        assert_eq!(
            CookieStore::signing_time(now, Some(now)),
            now + 1,
            "same millisecond"
        );
        assert_eq!(
            CookieStore::signing_time(now, Some(now + 20_000)),
            now + 20_001
        );
        // Never beyond the skew a verifier tolerates.
        assert_eq!(
            CookieStore::signing_time(now, Some(now + SKEW_MS)),
            now + SKEW_MS
        );
        assert_eq!(
            CookieStore::signing_time(now, Some(u64::MAX)),
            now + SKEW_MS
        );
    }

    #[test]
    fn a_tombstone_is_an_empty_payload_outliving_older_copies() {
        let s = store().max_age(Duration::from_secs(600));
        let key = SessionKey::generate().unwrap();
        let (value, max_age) = s.tombstone(NAME, &key, 5_000, 5_000);
        assert_eq!(
            s.decode(&value, NAME, &key, 5_000).unwrap(),
            (CookiePayload::default(), 5_000)
        );
        assert_eq!(max_age, Duration::from_secs(600 + 60));
        // Signed ahead of the clock: it lives that much longer.
        let (_, max_age) = s.tombstone(NAME, &key, 5_000 + 1_500, 5_000);
        assert_eq!(max_age, Duration::from_millis(661_500));
        let set = CookieSettings::default().set_cookie_for(NAME, &value, max_age);
        assert!(set.contains("Max-Age=662"), "rounded up: {set}");
    }

    #[test]
    fn deflate_bombs_are_refused() {
        let zeros = vec![b' '; MAX_BODY_BYTES + 10];
        let bomb = deflate(&zeros).unwrap();
        assert!(inflate(&bomb).is_none());
        let at_bound = vec![b' '; MAX_BODY_BYTES];
        assert_eq!(inflate(&deflate(&at_bound).unwrap()).unwrap(), at_bound);
    }

    #[test]
    fn deflate_only_when_shorter_and_inflate_only_whole_streams() {
        assert_eq!(deflate(b"[]"), None, "two bytes cannot shrink");
        let json = serde_json::to_vec(&payload(10, 40)).unwrap();
        let small = deflate(&json).unwrap();
        assert!(small.len() < json.len());
        // The reused (de)compressors give the same result every time.
        assert_eq!(deflate(&json).unwrap(), small);
        assert_eq!(inflate(&small).unwrap(), json);
        assert_eq!(inflate(&small).unwrap(), json);
        let mut trailing = small.clone();
        trailing.push(0);
        assert!(inflate(&trailing).is_none(), "bytes after the stream");
        assert!(inflate(&small[..small.len() - 1]).is_none(), "a cut stream");
        assert!(inflate(b"not deflate").is_none());
    }

    #[test]
    fn set_cookie_attributes() {
        let s = CookieSettings::default();
        let set = s.set_cookie("messages", Some("abc"));
        assert!(set.starts_with("messages=abc"), "{set}");
        for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
            assert!(set.contains(attr), "{set}");
        }
        assert!(!set.contains("Secure"));
        let removal = CookieSettings { secure: true, ..s }.set_cookie("messages", None);
        for attr in [
            "messages=;",
            "HttpOnly",
            "SameSite=Lax",
            "Path=/",
            "Secure",
            "Max-Age=0",
        ] {
            assert!(removal.contains(attr), "{removal}");
        }
    }
}
