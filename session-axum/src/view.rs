//! The axum request as a [`RequestView`] for sessionkit's id extractors.

use std::borrow::Cow;

use axum::extract::{FromRequestParts, RawPathParams};
use bytes::Bytes;
use futures_util::FutureExt;
use http::header::COOKIE;
use http::{Extensions, HeaderMap, Method, Request, Uri};
use sessionkit::adapter::{cookie_in_header, find_urlencoded, RequestView};

/// A urlencoded request body buffered by the session layer (only when the
/// extractor reads a form field); the handler still gets the body.
#[derive(Clone)]
pub(crate) struct BufferedForm(pub(crate) Bytes);

/// An axum request seen by a [`sessionkit::Extractor`]: borrowed pieces of
/// the request head, so the view is `Send` whatever the body type is.
pub(crate) struct AxumView<'a> {
    pub(crate) method: &'a Method,
    pub(crate) uri: &'a Uri,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) extensions: &'a Extensions,
}

impl<'a> AxumView<'a> {
    pub(crate) fn of_parts(parts: &'a http::request::Parts) -> Self {
        Self {
            method: &parts.method,
            uri: &parts.uri,
            headers: &parts.headers,
            extensions: &parts.extensions,
        }
    }

    pub(crate) fn of_request<B>(req: &'a Request<B>) -> Self {
        Self {
            method: req.method(),
            uri: req.uri(),
            headers: req.headers(),
            extensions: req.extensions(),
        }
    }
}

impl RequestView for AxumView<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }

    /// Every `Cookie` header is searched (HTTP/2 clients may send several).
    fn cookie(&self, name: &str) -> Option<Cow<'_, str>> {
        self.headers
            .get_all(COOKIE)
            .iter()
            .find_map(|value| cookie_in_header(value.as_bytes(), name))
    }

    fn query_string(&self) -> &str {
        self.uri.query().unwrap_or_default()
    }

    fn form(&self, name: &str) -> Option<Cow<'_, str>> {
        let form = self.extensions.get::<BufferedForm>()?;
        find_urlencoded(&form.0, name)
    }

    /// Path parameters are known once axum has routed the request: in
    /// handlers, and in layers added with `Router::layer` / `route_layer`.
    fn path_param(&self, name: &str) -> Option<Cow<'_, str>> {
        // axum keeps the matched parameters in a private extension that only
        // `RawPathParams` reads, from `Parts`: lend it a copy of the
        // extensions (only when a `param:` lookup gets this far).
        let (mut parts, ()) = Request::new(()).into_parts();
        parts.extensions = self.extensions.clone();
        let params = RawPathParams::from_request_parts(&mut parts, &())
            .now_or_never()?
            .ok()?;
        params
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| Cow::Owned(value.to_owned()))
    }
}
