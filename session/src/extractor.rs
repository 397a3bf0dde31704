//! Where a request carries its session id, and where a response sends it back.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// A read-only view of a request: the part of any web framework that id
/// extractors need. Framework integrations implement it.
///
/// Only [`RequestView::header`] is required; the others default to parsing
/// the `Cookie` header, to reading [`RequestView::query_string`], and to
/// "not available".
///
/// ```
/// use sessionkit::adapter::RequestView;
/// struct Plain<'a>(&'a [(&'a str, &'a str)]);
/// impl RequestView for Plain<'_> {
///     fn header(&self, name: &str) -> Option<&str> {
///         self.0.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v)
///     }
/// }
/// let req = Plain(&[("Cookie", "a=1; session_id=abc")]);
/// assert_eq!(req.cookie("session_id").as_deref(), Some("abc"));
/// ```
pub trait RequestView {
    /// The first value of header `name` (case-insensitive), if it is text.
    fn header(&self, name: &str) -> Option<&str>;

    /// The value of cookie `name`.
    fn cookie(&self, name: &str) -> Option<Cow<'_, str>> {
        self.header("cookie")
            .and_then(|h| find_cookie(h, name))
            .map(Cow::Borrowed)
    }

    /// The raw query string, without `?`.
    fn query_string(&self) -> &str {
        ""
    }

    /// The value of query parameter `name`, percent-decoded.
    fn query(&self, name: &str) -> Option<Cow<'_, str>> {
        find_urlencoded(self.query_string().as_bytes(), name)
    }

    /// The value of urlencoded form field `name`, if the framework buffered the body.
    fn form(&self, name: &str) -> Option<Cow<'_, str>> {
        let _ = name;
        None
    }

    /// The value of path parameter `name`, if the framework matched a route.
    fn path_param(&self, name: &str) -> Option<Cow<'_, str>> {
        let _ = name;
        None
    }
}

/// Finds cookie `name` in one `Cookie` header value (`a=1; b=2`).
///
/// Surrounding ASCII whitespace and a pair of double quotes around the value
/// are removed; names match exactly (case-sensitively), and a name that only
/// starts with `name` does not match. When `name` occurs more than once the
/// first occurrence wins: browsers send the cookie with the longest matching
/// path first. Agrees with the `cookie` crate's `Cookie::split_parse` (and
/// `value_trimmed`) on every header it parses (a property test checks this).
///
/// ```
/// use sessionkit::adapter::find_cookie;
/// assert_eq!(find_cookie("a=1; sid=\"x\"; sid2=y", "sid"), Some("x"));
/// assert_eq!(find_cookie("sid2=y", "sid"), None);
/// assert_eq!(find_cookie("sid=first; sid=second", "sid"), Some("first"));
/// ```
#[must_use]
pub fn find_cookie<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    header.split(';').find_map(|pair| {
        let rest = pair.trim_ascii_start().strip_prefix(name)?;
        let value = rest.trim_ascii_start().strip_prefix('=')?.trim_ascii();
        Some(
            value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value),
        )
    })
}

/// Finds `name` in an `application/x-www-form-urlencoded` byte string.
#[must_use]
pub fn find_urlencoded<'a>(encoded: &'a [u8], name: &str) -> Option<Cow<'a, str>> {
    form_urlencoded::parse(encoded).find_map(|(k, v)| (k == name).then_some(v))
}

/// How the id is written back in responses for ids from this source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKind {
    /// Ids are written back as a `Set-Cookie`.
    Cookie,
    /// Ids are written back as a response header of the same name.
    Header,
    /// Read-only (query, form, path, custom): nothing is written back.
    Other,
}

/// The signature of a custom extractor's lookup.
pub type ExtractFn = dyn Fn(&dyn RequestView) -> Option<String> + Send + Sync;

/// Finds the session id in a request.
///
/// Built-ins read a cookie, a header, a query parameter, a urlencoded form
/// field or a path parameter; [`Extractor::chain`] tries several in order;
/// [`Extractor::custom`] runs your own lookup. The [`SourceKind`] of each
/// decides how responses carry the id back (see [`Extractor::cookie_name`]
/// and [`Extractor::header_name`]).
///
/// ```
/// use sessionkit::Extractor;
/// let ex = Extractor::chain([
///     Extractor::cookie("session_id"),
///     Extractor::header("X-Session-ID"),
///     Extractor::query("session_id"),
/// ]);
/// assert_eq!(ex.cookie_name(), Some("session_id"));
/// assert_eq!(ex.header_name(), Some("X-Session-ID"));
/// ```
#[derive(Clone)]
pub struct Extractor {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Cookie(Box<str>),
    Header(Box<str>),
    Query(Box<str>),
    Form(Box<str>),
    Param(Box<str>),
    Custom {
        key: Box<str>,
        source: SourceKind,
        lookup: Arc<ExtractFn>,
    },
    Chain(Vec<Extractor>),
}

/// An id found in a request, not yet validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted<'r> {
    /// The raw value.
    pub value: Cow<'r, str>,
    /// How the source writes ids back.
    pub source: SourceKind,
    /// The cookie, header, parameter or field name it came from.
    pub key: &'r str,
    /// Where in the request it was found.
    pub location: Location,
}

/// Where in a request an id was found; tells the header-forwarding middleware
/// what to strip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Location {
    /// A cookie in the `Cookie` header.
    Cookie,
    /// A request header.
    Header,
    /// A query parameter.
    Query,
    /// A form field.
    Form,
    /// A path parameter.
    Param,
    /// A custom extractor.
    Custom,
}

impl Extractor {
    /// The id in cookie `name`; written back with `Set-Cookie`.
    #[must_use]
    pub fn cookie(name: impl Into<String>) -> Self {
        Self::of(Kind::Cookie(name.into().into()))
    }

    /// The id in request header `name`; written back as a response header.
    #[must_use]
    pub fn header(name: impl Into<String>) -> Self {
        Self::of(Kind::Header(name.into().into()))
    }

    /// The id in query parameter `name`; read-only.
    #[must_use]
    pub fn query(name: impl Into<String>) -> Self {
        Self::of(Kind::Query(name.into().into()))
    }

    /// The id in urlencoded form field `name`; read-only.
    #[must_use]
    pub fn form(name: impl Into<String>) -> Self {
        Self::of(Kind::Form(name.into().into()))
    }

    /// The id in path parameter `name`; read-only.
    #[must_use]
    pub fn param(name: impl Into<String>) -> Self {
        Self::of(Kind::Param(name.into().into()))
    }

    /// Your own lookup. `source` decides write-back: [`SourceKind::Cookie`]
    /// sets cookie `key`, [`SourceKind::Header`] sets header `key`,
    /// [`SourceKind::Other`] sets nothing.
    ///
    /// ```
    /// use sessionkit::Extractor;
    /// use sessionkit::adapter::SourceKind;
    /// let bearer = Extractor::custom("Authorization", SourceKind::Header, |req| {
    ///     req.header("Authorization")?.strip_prefix("Bearer ").map(str::to_owned)
    /// });
    /// assert_eq!(bearer.header_name(), Some("Authorization"));
    /// ```
    #[must_use]
    pub fn custom<F>(key: impl Into<String>, source: SourceKind, lookup: F) -> Self
    where
        F: Fn(&dyn RequestView) -> Option<String> + Send + Sync + 'static,
    {
        Self::of(Kind::Custom {
            key: key.into().into(),
            source,
            lookup: Arc::new(lookup),
        })
    }

    /// Tries `extractors` in order; the first that finds a value wins.
    #[must_use]
    pub fn chain(extractors: impl IntoIterator<Item = Extractor>) -> Self {
        let mut flat = Vec::new();
        for ex in extractors {
            match ex.kind {
                Kind::Chain(inner) => flat.extend(inner),
                other => flat.push(Self::of(other)),
            }
        }
        Self::of(Kind::Chain(flat))
    }

    fn of(kind: Kind) -> Self {
        Self { kind }
    }

    /// Looks for an id in `req`. Empty values count as absent.
    pub fn extract<'r>(&'r self, req: &'r dyn RequestView) -> Option<Extracted<'r>> {
        let (value, source, key, location) = match &self.kind {
            Kind::Cookie(k) => (req.cookie(k)?, SourceKind::Cookie, k, Location::Cookie),
            Kind::Header(k) => (
                Cow::Borrowed(req.header(k)?),
                SourceKind::Header,
                k,
                Location::Header,
            ),
            Kind::Query(k) => (req.query(k)?, SourceKind::Other, k, Location::Query),
            Kind::Form(k) => (req.form(k)?, SourceKind::Other, k, Location::Form),
            Kind::Param(k) => (req.path_param(k)?, SourceKind::Other, k, Location::Param),
            Kind::Custom {
                key,
                source,
                lookup,
            } => (Cow::Owned(lookup(req)?), *source, key, Location::Custom),
            Kind::Chain(list) => return list.iter().find_map(|ex| ex.extract(req)),
        };
        (!value.is_empty()).then_some(Extracted {
            value,
            source,
            key,
            location,
        })
    }

    fn parts(&self) -> &[Extractor] {
        match &self.kind {
            Kind::Chain(list) => list,
            _ => std::slice::from_ref(self),
        }
    }

    fn key_and_source(&self) -> (&str, SourceKind) {
        match &self.kind {
            Kind::Cookie(k) => (k, SourceKind::Cookie),
            Kind::Header(k) => (k, SourceKind::Header),
            Kind::Query(k) | Kind::Form(k) | Kind::Param(k) => (k, SourceKind::Other),
            Kind::Custom { key, source, .. } => (key, *source),
            Kind::Chain(_) => ("", SourceKind::Other),
        }
    }

    /// The cookie that responses set: the first cookie-kind extractor's name.
    #[must_use]
    pub fn cookie_name(&self) -> Option<&str> {
        self.first_of(SourceKind::Cookie)
    }

    /// The header that responses set: the first header-kind extractor's name.
    #[must_use]
    pub fn header_name(&self) -> Option<&str> {
        self.first_of(SourceKind::Header)
    }

    fn first_of(&self, kind: SourceKind) -> Option<&str> {
        self.parts()
            .iter()
            .map(Extractor::key_and_source)
            .find(|(_, s)| *s == kind)
            .map(|(k, _)| k)
    }

    /// Whether any extractor reads the form body (the integration must buffer it).
    #[must_use]
    pub fn reads_form(&self) -> bool {
        self.parts()
            .iter()
            .any(|ex| matches!(ex.kind, Kind::Form(_)))
    }

    /// Every cookie name the extractors read.
    pub fn cookie_names(&self) -> impl Iterator<Item = &str> {
        self.parts().iter().filter_map(|ex| match &ex.kind {
            Kind::Cookie(k) => Some(&**k),
            _ => None,
        })
    }

    /// Every request header name the extractors read (custom header-kind included).
    pub fn header_names(&self) -> impl Iterator<Item = &str> {
        self.parts().iter().filter_map(|ex| match &ex.kind {
            Kind::Header(k) => Some(&**k),
            Kind::Custom {
                key,
                source: SourceKind::Header,
                ..
            } => Some(&**key),
            _ => None,
        })
    }
}

impl Default for Extractor {
    /// `cookie:session_id`, as both references default to.
    fn default() -> Self {
        Self::cookie("session_id")
    }
}

impl fmt::Debug for Extractor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Cookie(k) => write!(f, "cookie:{k}"),
            Kind::Header(k) => write!(f, "header:{k}"),
            Kind::Query(k) => write!(f, "query:{k}"),
            Kind::Form(k) => write!(f, "form:{k}"),
            Kind::Param(k) => write!(f, "param:{k}"),
            Kind::Custom { key, source, .. } => write!(f, "custom:{key}({source:?})"),
            Kind::Chain(list) => f.debug_list().entries(list).finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Req {
        headers: Vec<(&'static str, &'static str)>,
        query: &'static str,
        form: &'static str,
        params: Vec<(&'static str, &'static str)>,
    }

    impl RequestView for Req {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
        }
        fn query_string(&self) -> &str {
            self.query
        }
        fn form(&self, name: &str) -> Option<Cow<'_, str>> {
            find_urlencoded(self.form.as_bytes(), name)
        }
        fn path_param(&self, name: &str) -> Option<Cow<'_, str>> {
            self.params
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| Cow::Borrowed(*v))
        }
    }

    #[test]
    fn each_builtin_finds_its_value() {
        let req = Req {
            headers: vec![("cookie", "x=1; sid=c"), ("X-Sid", "h")],
            query: "a=b&sid=q%20",
            form: "sid=f",
            params: vec![("sid", "p")],
        };
        let get = |ex: Extractor| ex.extract(&req).map(|e| (e.value.into_owned(), e.source));
        assert_eq!(
            get(Extractor::cookie("sid")),
            Some(("c".into(), SourceKind::Cookie))
        );
        assert_eq!(
            get(Extractor::header("x-sid")),
            Some(("h".into(), SourceKind::Header))
        );
        assert_eq!(
            get(Extractor::query("sid")),
            Some(("q ".into(), SourceKind::Other))
        );
        assert_eq!(
            get(Extractor::form("sid")),
            Some(("f".into(), SourceKind::Other))
        );
        assert_eq!(
            get(Extractor::param("sid")),
            Some(("p".into(), SourceKind::Other))
        );
        assert_eq!(get(Extractor::cookie("nope")), None);
    }

    #[test]
    fn chain_falls_back_in_order_and_skips_empty_values() {
        let req = Req {
            headers: vec![("cookie", "sid="), ("X-Sid", "h")],
            query: "sid=q",
            ..Req::default()
        };
        let chain = Extractor::chain([
            Extractor::cookie("sid"),
            Extractor::header("X-Sid"),
            Extractor::query("sid"),
        ]);
        let found = chain.extract(&req).unwrap();
        assert_eq!(found.value, "h");
        assert_eq!(found.location, Location::Header);
    }

    #[test]
    fn response_targets_follow_the_reference_rules() {
        let both = Extractor::chain([Extractor::cookie("c"), Extractor::header("H")]);
        assert_eq!(
            (both.cookie_name(), both.header_name()),
            (Some("c"), Some("H"))
        );
        let cookie_only = Extractor::chain([Extractor::cookie("c"), Extractor::query("q")]);
        assert_eq!(
            (cookie_only.cookie_name(), cookie_only.header_name()),
            (Some("c"), None)
        );
        let read_only = Extractor::chain([Extractor::query("q"), Extractor::form("f")]);
        assert_eq!(
            (read_only.cookie_name(), read_only.header_name()),
            (None, None)
        );
        assert!(read_only.reads_form());
        let custom = Extractor::custom("X-Custom", SourceKind::Other, |_| None);
        assert_eq!(custom.header_name(), None);
    }

    #[test]
    fn custom_extractor_runs_its_lookup() {
        let req = Req {
            headers: vec![("Authorization", "Bearer tok")],
            ..Req::default()
        };
        let ex = Extractor::custom("Authorization", SourceKind::Header, |r| {
            r.header("authorization")?
                .strip_prefix("Bearer ")
                .map(str::to_owned)
        });
        assert_eq!(ex.extract(&req).unwrap().value, "tok");
    }
}
