//! Views: the places a message is bound to, and the registry of all of them.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest view id, in bytes.
pub const MAX_VIEW_ID_BYTES: usize = 200;

/// The identifier of a view: `module::path::handler` by default, or a stable string.
///
/// 1 to [`MAX_VIEW_ID_BYTES`] bytes of printable ASCII other than space, `"` `\` `{` `}`
/// and `;` (it appears in store keys and cookies). Constant ids are checked at compile
/// time; ids from elsewhere with [`ViewId::new`].
///
/// ```
/// use messages_core::ViewId;
///
/// const SETTINGS: ViewId = ViewId::from_static("app::settings");
/// assert_eq!(SETTINGS.as_str(), "app::settings");
/// assert!(ViewId::new("has space").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ViewId(Cow<'static, str>);

/// A string is not a valid view id (see [`ViewId`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid view id: 1 to {MAX_VIEW_ID_BYTES} bytes of printable ASCII without space, quotes, backslash, braces or ';'"
)]
pub struct InvalidViewId;

/// The rule of [`ViewId`] that `id` breaks, if any: the one place the rules are written
/// (`ViewId::new`, `ViewId::from_static`, and through it `View::new` and
/// `#[with_messages]`, whose compile errors are these messages).
const fn view_id_problem(id: &str) -> Option<&'static str> {
    let b = id.as_bytes();
    if b.is_empty() {
        return Some("a view id cannot be empty");
    }
    if b.len() > MAX_VIEW_ID_BYTES {
        // `MAX_VIEW_ID_BYTES`; checked by the `view_id_rules` test.
        return Some("a view id is at most 200 bytes");
    }
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c <= b' ' || c >= 0x7f || matches!(c, b'"' | b'\\' | b'{' | b'}' | b';') {
            return Some("a view id is printable ASCII without space, `\"`, `\\`, `{`, `}` or `;`");
        }
        i += 1;
    }
    None
}

const fn valid_view_id(id: &str) -> bool {
    view_id_problem(id).is_none()
}

impl ViewId {
    /// A constant id, checked at compile time when used in a `const`.
    ///
    /// # Panics
    /// If `id` is not valid; in a `const` item that is a compile error.
    #[allow(clippy::panic)]
    #[track_caller]
    pub const fn from_static(id: &'static str) -> ViewId {
        if let Some(problem) = view_id_problem(id) {
            panic!("{}", problem);
        }
        ViewId(Cow::Borrowed(id))
    }

    /// An id from any string.
    ///
    /// # Errors
    /// [`InvalidViewId`] if the string breaks the rules above.
    pub fn new(id: impl Into<String>) -> Result<ViewId, InvalidViewId> {
        let id = id.into();
        if valid_view_id(&id) {
            Ok(ViewId(Cow::Owned(id)))
        } else {
            Err(InvalidViewId)
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ViewId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for ViewId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<ViewId> for ViewId {
    fn as_ref(&self) -> &ViewId {
        self
    }
}

impl Serialize for ViewId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ViewId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        ViewId::new(s).map_err(serde::de::Error::custom)
    }
}

/// A message-bearing view, declared by `#[with_messages]` (or by hand).
///
/// ```
/// use messages_core::View;
///
/// static DASHBOARD: View = View::new("app::dashboard", "dashboard", file!(), line!());
/// assert_eq!(DASHBOARD.id().as_str(), "app::dashboard");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct View {
    id: ViewId,
    name: &'static str,
    file: &'static str,
    line: u32,
}

impl View {
    /// A view descriptor; `id` must be a valid [`ViewId`] (checked at compile time in a
    /// `static`).
    ///
    /// # Panics
    /// If `id` is not valid; in a `static` that is a compile error, at this call.
    #[track_caller]
    pub const fn new(id: &'static str, name: &'static str, file: &'static str, line: u32) -> View {
        View {
            id: ViewId::from_static(id),
            name,
            file,
            line,
        }
    }
    /// The view id.
    pub fn id(&self) -> &ViewId {
        &self.id
    }
    /// The handler's name.
    pub fn name(&self) -> &'static str {
        self.name
    }
    /// The source file of the declaration.
    pub fn file(&self) -> &'static str {
        self.file
    }
    /// The source line of the declaration.
    pub fn line(&self) -> u32 {
        self.line
    }
}

impl AsRef<ViewId> for View {
    fn as_ref(&self) -> &ViewId {
        &self.id
    }
}

/// One entry of the view registry; `#[with_messages]` submits these.
#[doc(hidden)]
#[derive(Debug)]
pub struct ViewRegistration(pub &'static View);

inventory::collect!(ViewRegistration);

/// Every registered message-bearing view in the program, sorted by id, then file and
/// line. Each declaration appears once; handlers sharing a view with
/// `#[with_messages(view = other)]` do not register again.
///
/// ```
/// static V: messages_core::View = messages_core::View::new("doc::v", "v", file!(), line!());
/// messages_core::__private::inventory::submit! { messages_core::__private::ViewRegistration(&V) }
///
/// assert!(messages_core::views().iter().any(|v| v.id().as_str() == "doc::v"));
/// ```
pub fn views() -> Vec<&'static View> {
    let mut all: Vec<&'static View> = inventory::iter::<ViewRegistration>
        .into_iter()
        .map(|r| r.0)
        .collect();
    all.sort_by(|a, b| (a.id(), a.file, a.line).cmp(&(b.id(), b.file, b.line)));
    all.dedup_by(|a, b| a == b);
    all
}

/// Two or more declarations claim one view id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("view id {id} is declared {} times: {}", places.len(), places.join(", "))]
pub struct DuplicateView {
    /// The contested id.
    pub id: ViewId,
    /// `file:line (handler)` of each declaration.
    pub places: Vec<String>,
}

/// Checks the registry: every view id has one declaration.
///
/// Call it once at start-up (or in a test) to catch two handlers that claim one id, for
/// instance after copying a `#[with_messages(view = "...")]` line.
///
/// # Errors
/// One [`DuplicateView`] per contested id.
///
/// ```
/// assert!(messages_core::check_views().is_ok());
/// ```
pub fn check_views() -> Result<(), Vec<DuplicateView>> {
    check_unique(&views())
}

pub(crate) fn check_unique(views: &[&View]) -> Result<(), Vec<DuplicateView>> {
    let mut by_id: BTreeMap<&ViewId, Vec<&View>> = BTreeMap::new();
    for v in views {
        by_id.entry(v.id()).or_default().push(v);
    }
    let dups: Vec<DuplicateView> = by_id
        .into_iter()
        .filter(|(_, vs)| vs.len() > 1)
        .map(|(id, vs)| DuplicateView {
            id: id.clone(),
            places: vs
                .iter()
                .map(|v| format!("{}:{} ({})", v.file, v.line, v.name))
                .collect(),
        })
        .collect();
    if dups.is_empty() { Ok(()) } else { Err(dups) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_id_rules() {
        for ok in [
            "a",
            "app::settings",
            "settings.v2",
            &"x".repeat(MAX_VIEW_ID_BYTES),
        ] {
            assert!(ViewId::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            " ",
            "a b",
            "a\"b",
            "a\\b",
            "{a}",
            "a;b",
            "é",
            "\n",
            &"x".repeat(MAX_VIEW_ID_BYTES + 1),
        ] {
            assert!(ViewId::new(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            view_id_problem(&"x".repeat(MAX_VIEW_ID_BYTES + 1)),
            Some(format!("a view id is at most {MAX_VIEW_ID_BYTES} bytes").as_str())
        );
        assert!(serde_json::from_str::<ViewId>("\"a b\"").is_err());
        assert_eq!(
            serde_json::from_str::<ViewId>("\"a::b\"").unwrap().as_str(),
            "a::b"
        );
    }

    #[test]
    fn duplicate_ids_are_reported_with_places() {
        static A: View = View::new("dup", "a", "a.rs", 1);
        static B: View = View::new("dup", "b", "b.rs", 2);
        static C: View = View::new("solo", "c", "c.rs", 3);
        assert!(check_unique(&[&A, &C]).is_ok());
        let err = check_unique(&[&A, &B, &C]).unwrap_err();
        assert_eq!(err.len(), 1);
        assert_eq!(err[0].places, ["a.rs:1 (a)", "b.rs:2 (b)"]);
        assert_eq!(
            err[0].to_string(),
            "view id dup is declared 2 times: a.rs:1 (a), b.rs:2 (b)"
        );
    }
}
