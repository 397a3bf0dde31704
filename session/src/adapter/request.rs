//! The request side: when to buffer a urlencoded body, what `disableSessionForward` strips, cookies in a raw header.

use crate::extractor::{find_cookie, Extractor, Location};
use crate::header_map::{is_valid_header_name, normalize_header_name};
use crate::lifecycle::manager::Incoming;

/// Whether the request body must be buffered so a `form:` lookup can read it:
/// the extractor reads a form field, the body is
/// `application/x-www-form-urlencoded`, and its declared `Content-Length`
/// (when there is one) is at most `limit`. The adapter buffers at most
/// `limit` bytes and gives the body back to the handler either way.
///
/// ```
/// use sessionkit::adapter::should_buffer_form;
/// use sessionkit::Extractor;
/// let form = Extractor::form("session_id");
/// let ct = Some("application/x-www-form-urlencoded; charset=utf-8");
/// assert!(should_buffer_form(&form, ct, Some("12"), 64));
/// assert!(!should_buffer_form(&form, ct, Some("100"), 64));
/// assert!(!should_buffer_form(&form, Some("application/json"), None, 64));
/// assert!(!should_buffer_form(&Extractor::cookie("session_id"), ct, None, 64));
/// ```
#[must_use]
pub fn should_buffer_form(
    extractor: &Extractor,
    content_type: Option<&str>,
    content_length: Option<&str>,
    limit: usize,
) -> bool {
    extractor.reads_form()
        && content_type.is_some_and(is_urlencoded)
        && content_length
            .and_then(|len| len.trim().parse::<usize>().ok())
            .is_none_or(|len| len <= limit)
}

/// Whether a `Content-Type` value is `application/x-www-form-urlencoded`
/// (parameters and case ignored).
#[must_use]
pub fn is_urlencoded(content_type: &str) -> bool {
    content_type.split(';').next().is_some_and(|mime| {
        mime.trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    })
}

/// What `disableSessionForward` removes from a request before any inner
/// service sees it: the extractor's session cookies (other cookies stay), its
/// session headers in every `_`/case spelling (and a custom extractor's key
/// when it is a header name), and the query parameter when the id came from
/// the query. Form and path ids cannot be removed and are left as they are.
///
/// ```
/// use sessionkit::adapter::StripPlan;
/// use sessionkit::Extractor;
/// let ex = Extractor::chain([Extractor::cookie("sid"), Extractor::header("X-Session-ID")]);
/// let plan = StripPlan::new(&ex, None);
/// assert!(plan.strips_header("x_session_id"));
/// assert_eq!(plan.cookie_header(b"a=1; sid=x; b=2").as_deref(), Some(&b"a=1; b=2"[..]));
/// assert_eq!(plan.cookie_header(b"sid=x"), None);
/// assert_eq!(plan.path_and_query("/a?sid=x"), None); // the id did not come from the query
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StripPlan {
    cookies: Vec<String>,
    headers: Vec<String>,
    query: Option<String>,
}

impl StripPlan {
    /// The plan for `extractor`, given where this request's id was found
    /// ([`PendingSession::capture`](crate::adapter::PendingSession::capture)).
    #[must_use]
    pub fn new(extractor: &Extractor, incoming: Option<&Incoming>) -> Self {
        let mut headers: Vec<String> = extractor
            .header_names()
            .map(normalize_header_name)
            .collect();
        let mut query = None;
        if let Some(incoming) = incoming {
            match incoming.location {
                Location::Custom if is_valid_header_name(&incoming.key) => {
                    headers.push(normalize_header_name(&incoming.key));
                }
                Location::Query => query = Some(incoming.key.clone()),
                _ => {}
            }
        }
        Self {
            cookies: extractor.cookie_names().map(str::to_owned).collect(),
            headers,
            query,
        }
    }

    /// Whether the plan touches `Cookie` headers at all.
    #[must_use]
    pub fn strips_cookies(&self) -> bool {
        !self.cookies.is_empty()
    }

    /// Whether request header `name` must be removed (compared case- and
    /// `_`/`-`-insensitively). `Cookie` is rewritten, not removed: see
    /// [`StripPlan::cookie_header`].
    #[must_use]
    pub fn strips_header(&self, name: &str) -> bool {
        !self.headers.is_empty() && self.headers.contains(&normalize_header_name(name))
    }

    /// One `Cookie` header value without the session cookies; `None` when
    /// nothing is left (remove the header). Send one result per original
    /// header, in order.
    #[must_use]
    pub fn cookie_header(&self, value: &[u8]) -> Option<Vec<u8>> {
        let kept: Vec<&[u8]> = value
            .split(|b| *b == b';')
            .filter(|pair| {
                let name = pair.split(|b| *b == b'=').next().unwrap_or_default();
                let name = name.trim_ascii();
                !name.is_empty() && !self.cookies.iter().any(|n| n.as_bytes() == name)
            })
            .map(<[u8]>::trim_ascii)
            .collect();
        (!kept.is_empty()).then(|| kept.join(&b"; "[..]))
    }

    /// The request target (`/path?query`) without the session's query
    /// parameter; `None` when nothing changes.
    ///
    /// ```
    /// # use sessionkit::adapter::strip_query_param;
    /// assert_eq!(strip_query_param("/e?a=1&sid=x&b=2", "sid").as_deref(), Some("/e?a=1&b=2"));
    /// ```
    #[must_use]
    pub fn path_and_query(&self, path_and_query: &str) -> Option<String> {
        strip_query_param(path_and_query, self.query.as_deref()?)
    }
}

/// `path_and_query` without every query parameter named `key` (compared
/// after percent-decoding); `None` when there was none.
///
/// ```
/// use sessionkit::adapter::strip_query_param;
/// assert_eq!(strip_query_param("/p?sid=x", "sid").as_deref(), Some("/p"));
/// assert_eq!(strip_query_param("/p?s%69d=x&a=1", "sid").as_deref(), Some("/p?a=1"));
/// assert_eq!(strip_query_param("/p?a=1", "sid"), None);
/// ```
#[must_use]
pub fn strip_query_param(path_and_query: &str, key: &str) -> Option<String> {
    let (path, query) = path_and_query.split_once('?')?;
    let pairs: Vec<&str> = query.split('&').collect();
    let kept: Vec<&str> = pairs
        .iter()
        .copied()
        .filter(|pair| {
            form_urlencoded::parse(pair.as_bytes())
                .next()
                .is_none_or(|(name, _)| name != key)
        })
        .collect();
    if kept.len() == pairs.len() {
        return None;
    }
    Some(if kept.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", kept.join("&"))
    })
}

/// The value of cookie `name` in one raw `Cookie` header value. Bytes that
/// are not UTF-8 (a script may set `theme=café`, sent as Latin-1 or UTF-8)
/// are read lossily, so another cookie's bytes never hide the session
/// cookie. Both adapters' views use it.
///
/// ```
/// use sessionkit::adapter::cookie_in_header;
/// assert_eq!(cookie_in_header(b"theme=caf\xe9; sid=abc", "sid").as_deref(), Some("abc"));
/// ```
#[must_use]
pub fn cookie_in_header<'a>(value: &'a [u8], name: &str) -> Option<std::borrow::Cow<'a, str>> {
    use std::borrow::Cow;
    match String::from_utf8_lossy(value) {
        Cow::Borrowed(text) => find_cookie(text, name).map(Cow::Borrowed),
        Cow::Owned(text) => find_cookie(&text, name).map(|v| Cow::Owned(v.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extractor::SourceKind;
    use crate::id::SessionId;

    #[test]
    fn cookie_stripping_keeps_other_cookies_in_order() {
        let plan = StripPlan::new(&Extractor::cookie("session_id"), None);
        assert_eq!(
            plan.cookie_header(b"theme=dark; session_id=abc; lang=en"),
            Some(b"theme=dark; lang=en".to_vec())
        );
        assert_eq!(plan.cookie_header(b" session_id=abc ;"), None);
        // A cookie whose name only starts with the session cookie's stays.
        assert_eq!(
            plan.cookie_header(b"session_id2=x"),
            Some(b"session_id2=x".to_vec())
        );
        assert!(plan.strips_cookies());
        assert!(!plan.strips_header("cookie"));
    }

    #[test]
    fn query_is_stripped_only_when_the_id_came_from_it() {
        let ex = Extractor::chain([Extractor::cookie("sid"), Extractor::query("sid")]);
        let from_query = Incoming {
            id: SessionId::parse("0123456789abcdef0123").ok(),
            stale_token: false,
            source: SourceKind::Other,
            location: Location::Query,
            key: "sid".to_owned(),
        };
        let plan = StripPlan::new(&ex, Some(&from_query));
        assert_eq!(
            plan.path_and_query("/e?a=1&sid=x").as_deref(),
            Some("/e?a=1")
        );
        assert_eq!(plan.path_and_query("/e"), None);
        let plan = StripPlan::new(&ex, None);
        assert_eq!(plan.path_and_query("/e?sid=x"), None);
    }

    #[test]
    fn custom_header_keys_are_stripped() {
        let ex = Extractor::custom("X-Token", SourceKind::Other, |_| None);
        let incoming = Incoming {
            id: None,
            stale_token: false,
            source: SourceKind::Other,
            location: Location::Custom,
            key: "X-Token".to_owned(),
        };
        assert!(StripPlan::new(&ex, Some(&incoming)).strips_header("x_token"));
        assert!(!StripPlan::new(&ex, None).strips_header("x-token"));
    }
}
