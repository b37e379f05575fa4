//! The message itself.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Level;

/// Longest message text, in bytes; longer text is cut at a character boundary
/// (see [`Message::new`]).
pub const MAX_TEXT_BYTES: usize = 4096;
/// Longest title, in bytes; longer titles are cut like text.
pub const MAX_TITLE_BYTES: usize = 256;
/// Most extra tags on one message; further tags are ignored.
pub const MAX_TAGS: usize = 8;
/// Longest extra tag, in bytes; longer tags are ignored.
pub const MAX_TAG_BYTES: usize = 64;
/// Largest structured `data`, in bytes of compact JSON; larger data is not attached.
pub const MAX_DATA_BYTES: usize = 4096;

/// A unique, ordered message identifier.
///
/// The high 64 bits are a per-process sequence, the low 64 bits a per-process random
/// nonce drawn once from the OS CSPRNG: ids never repeat, and messages created in one
/// process within the same millisecond keep their creation order. Written as 32
/// lowercase hex digits, so the text order is the numeric order.
///
/// ```
/// use messages_core::MessageId;
///
/// let a = MessageId::new();
/// let b = MessageId::new();
/// assert!(a < b);
/// assert_eq!(a.to_string().parse::<MessageId>().unwrap(), a);
/// assert!("not-an-id".parse::<MessageId>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(u128);

impl MessageId {
    /// A new id, greater than every id this process made before.
    pub fn new() -> MessageId {
        static SEQUENCE: AtomicU64 = AtomicU64::new(1);
        static NONCE: OnceLock<u64> = OnceLock::new();
        let nonce = *NONCE.get_or_init(|| {
            let mut bytes = [0u8; 8];
            // Without OS randomness the sequence alone still orders and, within this
            // process, separates ids; the nonce only separates processes.
            if getrandom::fill(&mut bytes).is_err() {
                tracing::warn!("messages: OS random source unavailable for message id nonce");
            }
            u64::from_le_bytes(bytes)
        });
        let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        MessageId((u128::from(seq) << 64) | u128::from(nonce))
    }

    /// The id as a number.
    pub const fn as_u128(self) -> u128 {
        self.0
    }

    /// An id from its number.
    pub const fn from_u128(value: u128) -> MessageId {
        MessageId(value)
    }
}

impl Default for MessageId {
    fn default() -> Self {
        MessageId::new()
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({self})")
    }
}

/// A string is not a message id: it must be exactly 32 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a message id is 32 lowercase hex digits")]
pub struct ParseMessageIdError;

impl FromStr for MessageId {
    type Err = ParseMessageIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 32 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(ParseMessageIdError);
        }
        u128::from_str_radix(s, 16)
            .map(MessageId)
            .map_err(|_| ParseMessageIdError)
    }
}

impl Serialize for MessageId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MessageId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Milliseconds since the Unix epoch, the ordering key of messages.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A one-time notice for a person.
///
/// Text is plain text: templates must escape it (the example's templates do). Sizes are
/// bounded by construction: text longer than [`MAX_TEXT_BYTES`] is cut at a character
/// boundary and ends in `…`, and so is a title over [`MAX_TITLE_BYTES`]; tags beyond
/// [`MAX_TAGS`] or longer than [`MAX_TAG_BYTES`] and data over [`MAX_DATA_BYTES`] are
/// dropped, each with a `tracing` warning. Decoding JSON that breaks a bound fails.
///
/// A view's messages are shown in the order they arrived in the store (a sequence the
/// store assigns), not by `created_at`: that is the clock of whichever app server made
/// the message, and two servers' clocks may disagree.
///
/// ```
/// use messages_core::{Level, Message};
///
/// let m = Message::success("Your settings have been changed.")
///     .with_title("Saved")
///     .with_autoclose(true)
///     .with_tag("settings")
///     .with_data(serde_json::json!({"field": "name"}));
/// assert_eq!(m.level(), Level::SUCCESS);
/// assert_eq!(m.title(), Some("Saved"));
/// let json = serde_json::to_string(&m).unwrap();
/// let back: Message = serde_json::from_str(&json).unwrap();
/// assert_eq!(back, m);
/// ```
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    id: MessageId,
    level: Level,
    text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    autoclose: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<serde_json::Value>,
    created_at: u64,
}

fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let ellipsis = "…";
        let mut end = max - ellipsis.len();
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        tracing::warn!(
            len = text.len(),
            max,
            "messages: text cut to its size limit"
        );
        text.truncate(end);
        text.push_str(ellipsis);
    }
    text
}

impl Message {
    /// A message of any level, created now.
    pub fn new(level: Level, text: impl Into<String>) -> Message {
        Message {
            id: MessageId::new(),
            level,
            text: cut(text.into(), MAX_TEXT_BYTES),
            title: None,
            autoclose: false,
            tags: Vec::new(),
            data: None,
            created_at: now_ms(),
        }
    }
    /// A [`Level::DEBUG`] message.
    pub fn debug(text: impl Into<String>) -> Message {
        Message::new(Level::DEBUG, text)
    }
    /// An [`Level::INFO`] message.
    pub fn info(text: impl Into<String>) -> Message {
        Message::new(Level::INFO, text)
    }
    /// A [`Level::SUCCESS`] message.
    pub fn success(text: impl Into<String>) -> Message {
        Message::new(Level::SUCCESS, text)
    }
    /// A [`Level::WARNING`] message.
    pub fn warning(text: impl Into<String>) -> Message {
        Message::new(Level::WARNING, text)
    }
    /// An [`Level::ERROR`] message.
    pub fn error(text: impl Into<String>) -> Message {
        Message::new(Level::ERROR, text)
    }

    /// Sets the title.
    #[must_use]
    pub fn with_title(mut self, title: impl Into<String>) -> Message {
        self.title = Some(cut(title.into(), MAX_TITLE_BYTES));
        self
    }
    /// Asks the page to close the message by itself after a few seconds.
    #[must_use]
    pub fn with_autoclose(mut self, autoclose: bool) -> Message {
        self.autoclose = autoclose;
        self
    }
    /// Adds an extra tag (a CSS class, say).
    #[must_use]
    pub fn with_tag(mut self, tag: impl Into<String>) -> Message {
        let tag = tag.into();
        if self.tags.len() >= MAX_TAGS || tag.len() > MAX_TAG_BYTES {
            tracing::warn!(
                tag_len = tag.len(),
                "messages: extra tag dropped (limits: {MAX_TAGS} tags of {MAX_TAG_BYTES} bytes)"
            );
        } else {
            self.tags.push(tag);
        }
        self
    }
    /// Attaches structured data for scripts (JSON consumers). `null` means no data (JSON
    /// cannot tell the two apart, so a stored message would come back without it).
    #[must_use]
    pub fn with_data(mut self, data: serde_json::Value) -> Message {
        if data.is_null() {
            self.data = None;
            return self;
        }
        let len = serde_json::to_vec(&data).map_or(usize::MAX, |v| v.len());
        if len > MAX_DATA_BYTES {
            tracing::warn!(
                len,
                max = MAX_DATA_BYTES,
                "messages: data dropped, over its size limit"
            );
        } else {
            self.data = Some(data);
        }
        self
    }

    /// The unique id.
    pub fn id(&self) -> MessageId {
        self.id
    }
    /// The level.
    pub fn level(&self) -> Level {
        self.level
    }
    /// The level's tag string, for CSS classes.
    pub fn level_tag(&self) -> &'static str {
        self.level.tag()
    }
    /// The plain text (escape it when rendering HTML).
    pub fn text(&self) -> &str {
        &self.text
    }
    /// The title, if any.
    pub fn title(&self) -> Option<&str> {
        self.title.as_deref()
    }
    /// Whether the page should close the message by itself.
    pub fn is_autoclose(&self) -> bool {
        self.autoclose
    }
    /// The extra tags.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }
    /// The structured data, if any.
    pub fn data(&self) -> Option<&serde_json::Value> {
        self.data.as_ref()
    }
    /// Creation time, milliseconds since the Unix epoch.
    pub fn created_at(&self) -> u64 {
        self.created_at
    }
    /// `(created_at, id)`: the time order of this process's messages (ids grow within a
    /// process). Not the display order, which is arrival order in the store.
    pub fn order_key(&self) -> (u64, MessageId) {
        (self.created_at, self.id)
    }
    /// The level tag, then the extra tags, space separated: a ready CSS class list.
    pub fn css_classes(&self) -> String {
        let mut s = String::from(self.level.tag());
        for t in &self.tags {
            s.push(' ');
            s.push_str(t);
        }
        s
    }

    /// Sets the creation time (tests and imports; normal code keeps the default).
    #[doc(hidden)]
    #[must_use]
    pub fn with_created_at(mut self, created_at: u64) -> Message {
        self.created_at = created_at;
        self
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("id", &self.id)
            .field("level", &self.level)
            .field("text", &self.text)
            .field("title", &self.title)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Message {
    /// The plain text (not escaped).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireMessage {
    id: MessageId,
    level: Level,
    text: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    autoclose: bool,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    data: Option<serde_json::Value>,
    created_at: u64,
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let w = WireMessage::deserialize(deserializer)?;
        if w.text.len() > MAX_TEXT_BYTES {
            return Err(D::Error::custom("message text over its size limit"));
        }
        if w.title.as_ref().is_some_and(|t| t.len() > MAX_TITLE_BYTES) {
            return Err(D::Error::custom("message title over its size limit"));
        }
        if w.tags.len() > MAX_TAGS || w.tags.iter().any(|t| t.len() > MAX_TAG_BYTES) {
            return Err(D::Error::custom("message tags over their limits"));
        }
        if let Some(d) = &w.data
            && serde_json::to_vec(d).map_or(true, |v| v.len() > MAX_DATA_BYTES)
        {
            return Err(D::Error::custom("message data over its size limit"));
        }
        Ok(Message {
            id: w.id,
            level: w.level,
            text: w.text,
            title: w.title,
            autoclose: w.autoclose,
            tags: w.tags,
            data: w.data,
            created_at: w.created_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_increasing() {
        let ids: Vec<_> = (0..1000).map(|_| MessageId::new()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        let texts: Vec<_> = ids.iter().map(ToString::to_string).collect();
        assert!(
            texts.windows(2).all(|w| w[0] < w[1]),
            "text order is numeric order"
        );
    }

    #[test]
    fn id_parse_is_strict() {
        // A fixed id with hex letters: a fresh one may be all digits (its low half
        // is a random nonce), and then upper case would change nothing.
        let lower = "0000000000000001abcdef0123456789";
        assert!(lower.parse::<MessageId>().is_ok());
        assert!(lower.to_uppercase().parse::<MessageId>().is_err());
        let id = MessageId::new().to_string();
        assert!(id[1..].parse::<MessageId>().is_err());
        assert!(format!("{id}0").parse::<MessageId>().is_err());
        assert!(format!("+{}", &id[1..]).parse::<MessageId>().is_err());
    }

    #[test]
    fn long_text_is_cut_on_a_char_boundary() {
        let m = Message::info("é".repeat(MAX_TEXT_BYTES));
        assert!(m.text().len() <= MAX_TEXT_BYTES);
        assert!(m.text().ends_with('…'));
        let t = Message::info("x").with_title("ü".repeat(300));
        assert!(t.title().unwrap().len() <= MAX_TITLE_BYTES);
    }

    #[test]
    fn tag_and_data_limits() {
        let mut m = Message::info("x");
        for i in 0..20 {
            m = m.with_tag(format!("t{i}"));
        }
        assert_eq!(m.tags().len(), MAX_TAGS);
        let m = m.with_tag("y".repeat(MAX_TAG_BYTES + 1));
        assert_eq!(m.tags().len(), MAX_TAGS);
        let big = serde_json::Value::String("z".repeat(MAX_DATA_BYTES));
        assert!(Message::info("x").with_data(big).data().is_none());
        assert_eq!(
            Message::info("x").with_tag("a").with_tag("b").css_classes(),
            "info a b"
        );
    }

    #[test]
    fn decoding_rejects_oversized_and_unknown_fields() {
        let m = Message::warning("hi").with_title("t").with_autoclose(true);
        let mut v = serde_json::to_value(&m).unwrap();
        v["text"] = serde_json::Value::String("x".repeat(MAX_TEXT_BYTES + 1));
        assert!(serde_json::from_value::<Message>(v.clone()).is_err());
        v["text"] = "ok".into();
        v["tags"] = serde_json::json!(vec!["t"; MAX_TAGS + 1]);
        assert!(serde_json::from_value::<Message>(v.clone()).is_err());
        v["tags"] = serde_json::json!([]);
        v["extra"] = 1.into();
        assert!(serde_json::from_value::<Message>(v).is_err());
        assert!(serde_json::from_str::<Message>("{}").is_err());
    }

    #[test]
    fn null_data_is_no_data_and_round_trips() -> serde_json::Result<()> {
        // Found by the cookie_roundtrip fuzz target: `"data":null` decodes as no data.
        let m = Message::info("x")
            .with_data(serde_json::json!(1))
            .with_data(serde_json::Value::Null);
        assert!(m.data().is_none());
        let back: Message = serde_json::from_str(&serde_json::to_string(&m)?)?;
        assert_eq!(back, m);
        Ok(())
    }

    #[test]
    fn float_data_round_trips_exactly() -> serde_json::Result<()> {
        // Found by the cookie_roundtrip fuzz target (needs serde_json's `float_roundtrip`).
        let m = Message::info("x").with_data(serde_json::json!([-3.674_107_186_513_358e267, 0.1]));
        let back: Message = serde_json::from_str(&serde_json::to_string(&m)?)?;
        assert_eq!(back, m);
        Ok(())
    }

    #[test]
    fn minimal_json_omits_defaults() {
        let m = Message::info("hi").with_created_at(5);
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(
            json,
            format!(
                r#"{{"id":"{}","level":"info","text":"hi","created_at":5}}"#,
                m.id()
            )
        );
    }
}
