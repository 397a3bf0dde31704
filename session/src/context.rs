//! What every session handle shares with its manager: the store, the
//! configuration, the id generator, the clock and the commit policy. Its
//! own module so that the session (`session.rs`) and the manager
//! (`manager.rs`) both depend on it and not on each other.

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Config;
use crate::extractor::Extractor;
use crate::id::IdGenerator;
use crate::plan::Rules;
use crate::record::Meta;
use crate::store::DynSessionStore;

/// Everything a session needs from its manager, shared by all handles.
pub(crate) struct Context {
    pub(crate) store: Arc<dyn DynSessionStore>,
    pub(crate) config: Config,
    pub(crate) extractor: Extractor,
    pub(crate) ids: Arc<dyn IdGenerator>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) idle_ms: u64,
    pub(crate) absolute_ms: Option<u64>,
    /// The commit planner's timing rules, from `config`.
    pub(crate) policy: Rules,
    /// Commits of one session in this process take turns, and the one
    /// holding the turn writes for those waiting (`turns.rs`).
    pub(crate) stripes: crate::turns::Stripes,
    /// Metrics and lifecycle events.
    pub(crate) observer: Arc<crate::observe::Observer>,
    /// The session cookie's attributes as `Set-Cookie` renders them after
    /// `name=value` (`; HttpOnly; SameSite=Lax; Path=/`), rendered once.
    pub(crate) cookie_attributes: Box<str>,
    /// CSRF protection, when the application turned it on.
    pub(crate) csrf: Option<crate::csrf::Csrf>,
    /// Signed ids, when the application turned them on.
    pub(crate) signed_ids: Option<crate::signed_id::SignedIds>,
    /// The cookie store, when sessions live in the client's cookie
    /// (`store` is then `cookie_store::ClientSide`).
    pub(crate) cookie: Option<crate::cookie_store::CookieStore>,
}

impl Context {
    pub(crate) fn new_meta(&self, now: u64) -> Meta {
        Meta::new(now, self.idle_ms, self.absolute_ms)
    }
}
