//! The actix request as a [`RequestView`] for sessionkit's id extractors.

use std::borrow::Cow;

use actix_web::http::header::COOKIE;
use actix_web::web::Bytes;
use actix_web::{HttpMessage, HttpRequest};
use sessionkit::adapter::{cookie_in_header, find_urlencoded, RequestView};

/// A urlencoded request body buffered by the session middleware (only when
/// the extractor reads a form field); the handler still gets the body.
#[derive(Clone)]
pub(crate) struct BufferedForm(pub(crate) Bytes);

/// An actix request seen by an [`sessionkit::Extractor`].
pub(crate) struct ActixView<'a> {
    req: &'a HttpRequest,
    form: Option<Bytes>,
}

impl<'a> ActixView<'a> {
    pub(crate) fn new(req: &'a HttpRequest) -> Self {
        let form = req.extensions().get::<BufferedForm>().map(|f| f.0.clone());
        Self { req, form }
    }
}

impl RequestView for ActixView<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.req.headers().get(name)?.to_str().ok()
    }

    /// Every `Cookie` header is searched (HTTP/2 clients may send several).
    /// Each is read as UTF-8, invalid bytes replaced: another cookie with a
    /// non-ASCII value (a script's `theme=café`) must not hide the session
    /// cookie in the same header, as `HeaderValue::to_str` would.
    fn cookie(&self, name: &str) -> Option<Cow<'_, str>> {
        self.req
            .headers()
            .get_all(COOKIE)
            .find_map(|value| cookie_in_header(value.as_bytes(), name))
    }

    fn query_string(&self) -> &str {
        self.req.query_string()
    }

    fn form(&self, name: &str) -> Option<Cow<'_, str>> {
        find_urlencoded(self.form.as_deref()?, name)
    }

    /// Path parameters are known once actix has matched a resource or scope:
    /// in handlers, and in middleware wrapping that resource or scope.
    fn path_param(&self, name: &str) -> Option<Cow<'_, str>> {
        self.req.match_info().get(name).map(Cow::Borrowed)
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderValue;
    use actix_web::test::TestRequest;

    use super::*;

    fn cookie_of(headers: &[&[u8]], name: &str) -> Option<String> {
        let mut req = TestRequest::default();
        for value in headers {
            req = req.append_header((COOKIE, HeaderValue::from_bytes(value).unwrap()));
        }
        let req = req.to_http_request();
        ActixView::new(&req).cookie(name).map(Cow::into_owned)
    }

    #[test]
    fn a_non_ascii_cookie_does_not_hide_the_session_cookie() {
        // A script may set `theme=café`; browsers then send its UTF-8 bytes
        // in the same header as the session cookie.
        for header in [
            &b"theme=caf\xc3\xa9; session_id=abc"[..],
            b"session_id=abc; theme=caf\xc3\xa9",
            b"theme=caf\xe9; session_id=abc", // not even UTF-8
        ] {
            assert_eq!(cookie_of(&[header], "session_id").as_deref(), Some("abc"));
        }
        assert_eq!(
            cookie_of(&[b"theme=caf\xc3\xa9", b"session_id=abc"], "session_id").as_deref(),
            Some("abc")
        );
        assert_eq!(
            cookie_of(&[b"theme=caf\xc3\xa9"], "theme").as_deref(),
            Some("café")
        );
        assert_eq!(cookie_of(&[b"theme=caf\xc3\xa9"], "session_id"), None);
    }
}
