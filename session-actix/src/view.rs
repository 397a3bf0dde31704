//! The actix request as a [`RequestView`] for sessionkit's id extractors.

use std::borrow::Cow;

use actix_web::http::header::COOKIE;
use actix_web::web::Bytes;
use actix_web::{HttpMessage, HttpRequest};
use sessionkit::{find_cookie, find_urlencoded, RequestView};

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
    fn cookie(&self, name: &str) -> Option<Cow<'_, str>> {
        self.req
            .headers()
            .get_all(COOKIE)
            .filter_map(|value| value.to_str().ok())
            .find_map(|value| find_cookie(value, name))
            .map(Cow::Borrowed)
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
