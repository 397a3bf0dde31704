//! Header mapping as a middleware does it (`MapSessionToHeader`): which
//! client headers go, and which session values come in.

use std::fmt;
use std::sync::Arc;

use super::ResponseHeaders;
use crate::data::SessionData;
use crate::header_map::{HeaderMapConfig, HeaderMapError, HeaderMapping};
use crate::lifecycle::session::Session;

/// The decisions behind each adapter's `MapSessionToHeader<T>`: a shared
/// [`HeaderMapping`] and the three steps of every request.
///
/// 1. **Every client-supplied header whose name is mapped is removed**
///    ([`MapHeaders::is_spoofed`]), compared by letters and digits only,
///    ignoring case and punctuation (`X-User-Id`, `x_user_id`, `X.User.Id`,
///    `XUserId`, `x~user~id`, …; see
///    [`normalize_header_name`](crate::adapter::normalize_header_name)),
///    whether or not the session has a value, so a client can never spoof
///    one to a downstream service, however that service folds header names;
/// 2. the adapter loads the session (the middleware always touches it);
/// 3. one header per mapped field that has a value is set, replacing
///    ([`MapHeaders::apply`]; `None` → the header stays absent). A value
///    that is not a valid header value (CR/LF, control bytes, non-ASCII) is
///    skipped and logged, never sent.
///
/// The mapping comes from the struct's `#[header("...")]` attributes
/// ([`MapHeaders::from_derive`]) and/or a runtime [`HeaderMapConfig`]
/// (`headers: {Authorization: authorization, X-User-Id: user_id}`), checked
/// against the struct when the middleware is built: an unknown field is an
/// error at start-up, not a silent no-op.
///
/// ```
/// use std::collections::BTreeMap;
/// use sessionkit::adapter::{MapHeaders, RequestView, ResponseHeaders};
/// use sessionkit::{HeaderMapConfig, MemoryStore, SessionData, SessionManager};
///
/// #[derive(SessionData, Default)]
/// struct User {
///     #[header("X-User-Id")]
///     user_id: Option<u64>,
/// }
/// struct Req;
/// impl RequestView for Req {
///     fn header(&self, _: &str) -> Option<&str> { None }
/// }
/// #[derive(Default)]
/// struct Headers(BTreeMap<String, String>);
/// impl ResponseHeaders for Headers {
///     fn append(&mut self, name: &str, value: &str) -> bool { self.insert(name, value) }
///     fn insert(&mut self, name: &str, value: &str) -> bool {
///         self.0.insert(name.to_owned(), value.to_owned());
///         true
///     }
/// }
///
/// let map = MapHeaders::<User>::from_derive();
/// assert!(map.is_spoofed("x_user_id"));
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let session = SessionManager::<User>::new(MemoryStore::new()).begin().load(&Req).await?;
/// session.set_user_id(Some(7));
/// let mut headers = Headers::default();
/// map.apply(&session, &mut headers);
/// assert_eq!(headers.0["X-User-Id"], "7");
/// # Ok::<(), sessionkit::SessionError>(()) }).unwrap();
///
/// // A field that does not exist is refused at start-up:
/// let bad = HeaderMapConfig::new([("X-Role", "role")]);
/// assert!(MapHeaders::<User>::with_config(&bad).is_err());
/// ```
pub struct MapHeaders<T> {
    mapping: Arc<HeaderMapping<T>>,
}

impl<T> Clone for MapHeaders<T> {
    fn clone(&self) -> Self {
        Self {
            mapping: Arc::clone(&self.mapping),
        }
    }
}

impl<T> fmt::Debug for MapHeaders<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapSessionToHeader")
            .field("headers", &self.mapping)
            .finish()
    }
}

impl<T: SessionData> MapHeaders<T> {
    /// The mapping declared by the struct's `#[header("...")]` attributes.
    #[must_use]
    pub fn from_derive() -> Self {
        Self::new(HeaderMapping::from_derive())
    }

    /// The struct's `#[header]` mapping plus `config` (a runtime entry for a
    /// header the struct already maps replaces it).
    ///
    /// # Errors
    /// [`HeaderMapError`] when `config` names an unknown field, a field whose
    /// type cannot be a header value, or an invalid or duplicate header name.
    pub fn with_config(config: &HeaderMapConfig) -> Result<Self, HeaderMapError> {
        Ok(Self::new(HeaderMapping::from_derive().with_config(config)?))
    }

    /// Exactly `mapping` (an empty one is logged at `warn`: the middleware
    /// would do nothing).
    #[must_use]
    pub fn new(mapping: HeaderMapping<T>) -> Self {
        if mapping.is_empty() {
            tracing::warn!(
                data_type = std::any::type_name::<T>(),
                "MapSessionToHeader has no header to map: add #[header] attributes or a headers map"
            );
        }
        Self {
            mapping: Arc::new(mapping),
        }
    }

    /// The mapping in use.
    #[must_use]
    pub fn mapping(&self) -> &HeaderMapping<T> {
        &self.mapping
    }

    /// Step 1: whether the client's request header `name` must be removed
    /// before the session is loaded ([`HeaderMapping::is_mapped`]).
    #[must_use]
    pub fn is_spoofed(&self, name: &str) -> bool {
        self.mapping.is_mapped(name)
    }

    /// Step 3: sets the session's values into the request's `headers`,
    /// replacing (never appending). A value the framework refuses is logged
    /// and skipped.
    pub fn apply(&self, session: &Session<T>, headers: &mut impl ResponseHeaders) {
        session.read(|data| {
            self.mapping.render(data, |name, value| {
                if !headers.insert(name, value) {
                    tracing::warn!(header = name, "mapped header not set: invalid");
                }
            });
        });
    }
}
