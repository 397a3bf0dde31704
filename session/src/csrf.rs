//! CSRF protection tied to the session: a per-session secret (stored as the
//! reserved field `@csrf`, created when a token is first asked for, replaced
//! by `regenerate` and `reset`), tokens masked per call, and the request
//! check. Submodules: `token` (secret, masking, constant-time comparison),
//! `check` (the decision, pure and unit-tested).

mod check;
pub(crate) mod token;

pub use check::{decide, is_unsafe_method, verify, CsrfRejection, CsrfRequest, Step};

/// The stored name of the session's CSRF secret. Stored names starting with
/// `@` are reserved for the runtime: the derive refuses them.
pub const CSRF_FIELD: &str = "@csrf";

/// The default form field carrying the token.
pub const DEFAULT_FORM_FIELD: &str = "csrf_token";

/// The default request header carrying the token (for `fetch` and SPAs).
pub const DEFAULT_HEADER: &str = "X-CSRF-Token";

/// CSRF protection for a [`SessionManager`](crate::SessionManager), set with
/// [`SessionManagerBuilder::csrf`](crate::SessionManagerBuilder::csrf); the
/// session middleware of each adapter then checks every `POST`, `PUT`,
/// `PATCH` and `DELETE` (never `GET`, `HEAD`, `OPTIONS`).
///
/// A checked request passes when
/// 1. (Fetch Metadata, on by default) the browser does not say it is
///    `Sec-Fetch-Site: cross-site`, and, from browsers that send no Fetch
///    Metadata, its `Origin` (if any) is this server's `Host` or a trusted
///    origin; and
/// 2. it carries a token of its session ([`Session::csrf_token`](crate::Session::csrf_token))
///    in the `csrf_token` field of a urlencoded form or in the
///    `X-CSRF-Token` header. Tokens stay valid for the session's lifetime
///    (they are masked, not one-time) until a sign-in (`regenerate`) or a
///    sign-out (`reset`).
///
/// Otherwise the middleware answers `403` with the [`CsrfRejection`]'s
/// message (or the application's rejection handler).
///
/// ```
/// use sessionkit::{Csrf, MemoryStore, SessionManager};
/// # #[derive(sessionkit::SessionData, Default)] struct Data { visits: u32 }
/// let manager = SessionManager::<Data>::builder(MemoryStore::new())
///     .csrf(Csrf::default().exempt("/webhooks/payment").exempt_prefix("/api/"))
///     .build()?;
/// assert!(manager.csrf().is_some_and(|csrf| csrf.is_exempt("/api/orders")));
/// # Ok::<(), sessionkit::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Csrf {
    exempt: Vec<String>,
    exempt_prefixes: Vec<String>,
    pub(crate) fetch_metadata: bool,
    trusted_origins: Vec<String>,
    form_field: String,
    header: String,
}

impl Default for Csrf {
    fn default() -> Self {
        Self {
            exempt: Vec::new(),
            exempt_prefixes: Vec::new(),
            fetch_metadata: true,
            trusted_origins: Vec::new(),
            form_field: DEFAULT_FORM_FIELD.to_owned(),
            header: DEFAULT_HEADER.to_owned(),
        }
    }
}

impl Csrf {
    /// Requests to exactly this path are not checked (webhooks signed by
    /// their sender, for instance).
    pub fn exempt(mut self, path: impl Into<String>) -> Self {
        self.exempt.push(path.into());
        self
    }

    /// Requests to paths starting with `prefix` are not checked (an API
    /// authenticated by bearer tokens rather than by the cookie).
    pub fn exempt_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.exempt_prefixes.push(prefix.into());
        self
    }

    /// Whether `path` is exempt.
    #[must_use]
    pub fn is_exempt(&self, path: &str) -> bool {
        self.exempt.iter().any(|p| p == path)
            || self
                .exempt_prefixes
                .iter()
                .any(|p| path.starts_with(p.as_str()))
    }

    /// Checks Fetch Metadata (`Sec-Fetch-Site: cross-site` is refused) and,
    /// without it, `Origin` against `Host`, before the token (default
    /// `true`). Behind a proxy that rewrites `Host`, trust the public origin
    /// with [`Csrf::trust_origin`].
    pub fn fetch_metadata(mut self, on: bool) -> Self {
        self.fetch_metadata = on;
        self
    }

    /// Accepts requests whose `Origin` is exactly `origin`
    /// (`"https://app.example"`) even when cross-site; the token is still
    /// required.
    pub fn trust_origin(mut self, origin: impl Into<String>) -> Self {
        self.trusted_origins.push(origin.into());
        self
    }

    pub(crate) fn trusts(&self, origin: &str) -> bool {
        self.trusted_origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin))
    }

    /// The form field that carries the token (default `csrf_token`).
    pub fn form_field(mut self, name: impl Into<String>) -> Self {
        self.form_field = name.into();
        self
    }

    /// The request header that carries the token (default `X-CSRF-Token`).
    pub fn header(mut self, name: impl Into<String>) -> Self {
        self.header = name.into();
        self
    }

    /// The token's form field name.
    #[must_use]
    pub fn form_field_name(&self) -> &str {
        &self.form_field
    }

    /// The token's header name.
    #[must_use]
    pub fn header_name(&self) -> &str {
        &self.header
    }
}
