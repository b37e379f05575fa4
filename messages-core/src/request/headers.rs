//! The header policy: a response that used messages is private to its browser.
//!
//! It gets `Vary: Cookie` (unless a `Vary` header already names `Cookie` or `*`) and a
//! `Cache-Control` that starts with `private`, with `public`, `s-maxage` and a
//! field-qualified `private="..."` (which would leave the rest cacheable) dropped and the
//! other directives kept, so no shared cache serves one person's messages to another. A
//! response that did not touch messages is left alone.

use std::borrow::Cow;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::Committed;

impl Committed {
    /// Whether the response must get a `Vary: Cookie` header, given the values of the
    /// `Vary` headers it has.
    ///
    /// ```
    /// # use messages_core::request::Committed;
    /// let mut used = Committed::default();
    /// used.touched = true;
    /// assert!(used.vary_cookie([]));
    /// assert!(used.vary_cookie(["Accept-Encoding"]));
    /// assert!(!used.vary_cookie(["accept-encoding, cookie"]));
    /// assert!(!Committed::default().vary_cookie([]));
    /// ```
    pub fn vary_cookie<'a>(&self, existing: impl IntoIterator<Item = &'a str>) -> bool {
        self.touched
            && !existing.into_iter().any(|v| {
                v.split(',')
                    .map(str::trim)
                    .any(|t| t == "*" || t.eq_ignore_ascii_case("cookie"))
            })
    }

    /// The one `Cache-Control` value that replaces the response's `Cache-Control` headers
    /// (`existing`, their values in order), or `None` to leave them as they are.
    ///
    /// ```
    /// # use messages_core::request::Committed;
    /// let mut used = Committed::default();
    /// used.touched = true;
    /// assert_eq!(used.cache_control([]).as_deref(), Some("private"));
    /// assert_eq!(used.cache_control(["public, s-maxage=600, max-age=60", "no-store"]).as_deref(), Some("private, max-age=60, no-store"));
    /// assert_eq!(Committed::default().cache_control(["public"]), None);
    /// ```
    pub fn cache_control<'a>(&self, existing: impl IntoIterator<Item = &'a str>) -> Option<String> {
        self.private_cache_control(existing).map(Cow::into_owned)
    }

    /// [`cache_control`](Committed::cache_control), borrowed when it is the plain
    /// `private` (nothing of the response's to keep), so no value is built.
    fn private_cache_control<'a>(
        &self,
        existing: impl IntoIterator<Item = &'a str>,
    ) -> Option<Cow<'static, str>> {
        if !self.touched {
            return None;
        }
        let mut value = Cow::Borrowed("private");
        for text in existing {
            for directive in split_directives(text) {
                let name = directive.split('=').next().unwrap_or_default().trim();
                let dropped = ["public", "private", "s-maxage"]
                    .iter()
                    .any(|d| name.eq_ignore_ascii_case(d));
                if !dropped {
                    let value = value.to_mut();
                    value.push_str(", ");
                    value.push_str(directive);
                }
            }
        }
        Some(value)
    }

    /// Writes everything into an [`http::HeaderMap`]: the `Set-Cookie` headers, and for
    /// a response that used messages `Vary: Cookie` and the private `Cache-Control`.
    /// A non-ASCII `Cache-Control` value is dropped with a warning.
    ///
    /// ```
    /// # use messages_core::request::Committed;
    /// use http::{HeaderMap, HeaderValue};
    ///
    /// let mut headers = HeaderMap::new();
    /// headers.insert("cache-control", HeaderValue::from_static("public, max-age=60"));
    /// Committed::default().apply(&mut headers); // untouched: left alone
    /// assert_eq!(headers.len(), 1);
    ///
    /// let mut used = Committed::default();
    /// used.touched = true;
    /// used.apply(&mut headers);
    /// assert_eq!(headers["cache-control"], "private, max-age=60");
    /// assert_eq!(headers["vary"], "Cookie");
    /// ```
    pub fn apply(&self, headers: &mut HeaderMap) {
        self.write_to(headers);
    }

    /// Writes everything through an adapter's [`ResponseHeaders`]: the `Set-Cookie`
    /// headers, and for a response that used messages `Vary: Cookie` and the private
    /// `Cache-Control`. A value the header type refuses is logged and left out; a
    /// non-ASCII `Cache-Control` value is dropped with a warning.
    pub fn write_to(&self, headers: &mut impl ResponseHeaders) {
        for cookie in &self.set_cookie {
            if !headers.append("set-cookie", cookie) {
                tracing::error!("messages: Set-Cookie value refused, cookie not sent");
            }
        }
        if !self.touched {
            return;
        }
        let vary = headers.values("vary");
        if self.vary_cookie(vary.iter().flatten().copied()) {
            headers.append_static("vary", "Cookie");
        }
        let existing = headers.values("cache-control");
        if existing.iter().any(Option::is_none) {
            tracing::warn!("messages: non-ASCII Cache-Control value dropped");
        }
        match self.private_cache_control(existing.iter().flatten().copied()) {
            Some(Cow::Borrowed(value)) => {
                headers.replace_static("cache-control", value);
            }
            Some(Cow::Owned(value)) if !headers.replace("cache-control", &value) => {
                headers.replace_static("cache-control", "private");
            }
            Some(Cow::Owned(_)) | None => {}
        }
    }
}

/// A response's headers as a framework adapter sees them, so that
/// [`Committed::write_to`] holds the whole header policy once. Implemented for
/// [`http::HeaderMap`]; the actix-web adapter implements it for actix's header map.
pub trait ResponseHeaders {
    /// Whether the response shows the messages it read: not a redirect, an htmx redirect
    /// or a server error (see
    /// [`response_shows_messages`](crate::present::response_shows_messages)). What
    /// [`CommitGuard::commit_response`](crate::request::CommitGuard::commit_response)
    /// commits with.
    fn shows_messages(&self, status: u16) -> bool {
        let htmx_redirect = !self.values(crate::present::HX_REDIRECT).is_empty()
            || !self.values(crate::present::HX_LOCATION).is_empty();
        crate::present::response_shows_messages(status, htmx_redirect)
    }

    /// The values of the header `name` (lower case), in order; `None` for a value that
    /// is not visible ASCII.
    fn values(&self, name: &'static str) -> Vec<Option<&str>>;
    /// Appends `name: value`; false if the header type refuses the value.
    fn append(&mut self, name: &'static str, value: &str) -> bool;
    /// Replaces every `name` header with one `name: value`; false if refused.
    fn replace(&mut self, name: &'static str, value: &str) -> bool;
    /// [`append`](Self::append) of a value known at compile time, which a header type
    /// can take without copying it (the default copies, as `append` does).
    fn append_static(&mut self, name: &'static str, value: &'static str) -> bool {
        self.append(name, value)
    }
    /// [`replace`](Self::replace) of a value known at compile time (see
    /// [`append_static`](Self::append_static)).
    fn replace_static(&mut self, name: &'static str, value: &'static str) -> bool {
        self.replace(name, value)
    }
}

/// Defines `header_name` for a header name type with a `const fn from_static` (http 1's,
/// or actix-web's http 0.2's): the names the policy reads and writes, made at compile
/// time. A `&str` name is parsed on
/// every use, a measurable share of a request's cost in the load harness's profile.
macro_rules! policy_header_names {
    ($name:ty) => {
        fn header_name(name: &'static str) -> $name {
            const SET_COOKIE: $name = <$name>::from_static("set-cookie");
            const VARY: $name = <$name>::from_static("vary");
            const CACHE_CONTROL: $name = <$name>::from_static("cache-control");
            const HX_REDIRECT: $name = <$name>::from_static($crate::present::HX_REDIRECT);
            const HX_LOCATION: $name = <$name>::from_static($crate::present::HX_LOCATION);
            match name {
                "set-cookie" => SET_COOKIE,
                "vary" => VARY,
                "cache-control" => CACHE_CONTROL,
                $crate::present::HX_REDIRECT => HX_REDIRECT,
                $crate::present::HX_LOCATION => HX_LOCATION,
                other => <$name>::from_static(other),
            }
        }
    };
}
#[cfg(feature = "actix")]
pub(crate) use policy_header_names;

policy_header_names!(HeaderName);

impl ResponseHeaders for HeaderMap {
    fn values(&self, name: &'static str) -> Vec<Option<&str>> {
        self.get_all(header_name(name))
            .iter()
            .map(|v| v.to_str().ok())
            .collect()
    }

    fn append(&mut self, name: &'static str, value: &str) -> bool {
        HeaderValue::try_from(value).is_ok_and(|v| {
            HeaderMap::append(self, header_name(name), v);
            true
        })
    }

    fn replace(&mut self, name: &'static str, value: &str) -> bool {
        HeaderValue::try_from(value).is_ok_and(|v| {
            self.insert(header_name(name), v);
            true
        })
    }

    fn append_static(&mut self, name: &'static str, value: &'static str) -> bool {
        valid_static(value) && {
            HeaderMap::append(self, header_name(name), HeaderValue::from_static(value));
            true
        }
    }

    fn replace_static(&mut self, name: &'static str, value: &'static str) -> bool {
        valid_static(value) && {
            self.insert(header_name(name), HeaderValue::from_static(value));
            true
        }
    }
}

/// Whether `HeaderValue::from_static` takes `value` without panicking (http 1's and
/// actix-web's http 0.2's: visible ASCII, spaces and tabs).
pub(crate) fn valid_static(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
}

/// Splits a `Cache-Control` value at the commas outside quoted strings.
fn split_directives(text: &str) -> impl Iterator<Item = &str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts.into_iter().map(str::trim).filter(|d| !d.is_empty())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use http::header::{CACHE_CONTROL, VARY};

    use super::*;

    fn touched() -> Committed {
        Committed {
            touched: true,
            ..Committed::default()
        }
    }

    fn cache_control(values: &[&str]) -> String {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(CACHE_CONTROL, HeaderValue::from_str(v).unwrap());
        }
        touched().apply(&mut headers);
        assert_eq!(headers.get_all(CACHE_CONTROL).iter().count(), 1);
        headers[CACHE_CONTROL].to_str().unwrap().to_owned()
    }

    #[test]
    fn cache_control_becomes_private() {
        assert_eq!(cache_control(&[]), "private");
        assert_eq!(cache_control(&["private"]), "private");
        assert_eq!(
            cache_control(&["Public, max-age=60"]),
            "private, max-age=60"
        );
        assert_eq!(
            cache_control(&["public, s-maxage=600, max-age=60", "no-store"]),
            "private, max-age=60, no-store"
        );
        assert_eq!(
            cache_control(&["private=\"set-cookie, x\", no-cache=\"a,b\""]),
            "private, no-cache=\"a,b\""
        );
        assert_eq!(cache_control(&["no-store, , "]), "private, no-store");
    }

    #[test]
    fn vary_cookie_is_added_once() {
        let vary = |values: &[&str]| {
            let mut headers = HeaderMap::new();
            for v in values {
                headers.append(VARY, HeaderValue::from_str(v).unwrap());
            }
            touched().apply(&mut headers);
            headers
                .get_all(VARY)
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(vary(&[]), ["Cookie"]);
        assert_eq!(vary(&["Accept-Encoding"]), ["Accept-Encoding", "Cookie"]);
        assert_eq!(
            vary(&["accept-encoding, cookie"]),
            ["accept-encoding, cookie"]
        );
        assert_eq!(vary(&["*"]), ["*"]);
        assert_eq!(vary(&["Cookie2"]), ["Cookie2", "Cookie"]);
    }

    #[test]
    fn untouched_commit_leaves_headers_alone() {
        let mut headers = HeaderMap::new();
        headers.insert(
            CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=60"),
        );
        Committed::default().apply(&mut headers);
        assert_eq!(headers.len(), 1);
        assert_eq!(headers[CACHE_CONTROL], "public, max-age=60");
    }

    /// A static value `HeaderValue::from_static` would panic on is refused instead.
    #[test]
    fn static_values_are_checked_not_trusted() {
        let mut headers = HeaderMap::new();
        for bad in ["a\nb", "\u{7f}", "caf\u{e9}"] {
            assert!(!headers.append_static("vary", bad), "{bad:?}");
            assert!(!headers.replace_static("cache-control", bad), "{bad:?}");
        }
        assert!(headers.is_empty());
        assert!(headers.append_static("vary", "Cookie\tx ~"));
        assert!(headers.replace_static("cache-control", "private"));
        assert_eq!(headers[VARY], "Cookie\tx ~");
        assert_eq!(headers[CACHE_CONTROL], "private");
    }
}
