//! The HTTP conformance suite: every behaviour a client can see through a
//! web-framework adapter, written once and run against each adapter
//! (`sessionkit-actix`, `sessionkit-axum`) on each store.
//!
//! An adapter's test file implements [`Adapter`] (build an app of an
//! [`AppSpec`], send it a [`Req`]) and expands
//! `conformance_suite!(TheAdapter, async { make_store() })` into one test per
//! case. The routes every adapter serves are listed on [`Layout`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cookie::Cookie;
use sessionkit::adapter::SourceKind;
use sessionkit::breaker::{BreakerConfig, BreakerState, CircuitBreaker};
use sessionkit::clock::ManualClock;
use sessionkit::{
    Config, Csrf, Extractor, FailurePolicy, HeaderMapConfig, HeaderMapError, HeaderMapping,
    SameSite, SessionData, SessionManager,
};

use crate::support::{Call, RecordingStore};

/// The session every conformance app keeps.
#[derive(SessionData, Default, Debug, Clone, PartialEq)]
pub struct User {
    /// `GET /visit` counts here.
    pub visits: u32,
    /// Mapped onto `X-User-Id`.
    #[header("X-User-Id")]
    pub user_id: Option<u64>,
    /// Mapped onto `X-User-Name`.
    #[header("X-User-Name")]
    pub name: Option<String>,
    /// Set by `POST /login`.
    pub authenticated: bool,
    /// Set by `POST /flash`, shown once by `GET /notice`.
    #[session(flash)]
    pub notice: Option<String>,
}

/// The routes of an app, and where the session layer sits.
#[derive(Debug)]
pub enum Layout {
    /// The session layer around these routes:
    ///
    /// | route | does | body |
    /// |---|---|---|
    /// | `GET /plain` | never touches the session | `plain` |
    /// | `GET /visit` | `visits += 1` | the new count |
    /// | `GET /read` | reads `visits` | the count |
    /// | `GET /id` | reads the id | the id |
    /// | `POST /login` | `regenerate`, `user_id = 1`, `authenticated` | the new id |
    /// | `POST /logout` | `reset` | `logged out` |
    /// | `POST /destroy` | `destroy` | `destroyed` |
    /// | `GET /cached` | `visits = max(visits, 1)` (a no-op on a stored session), sets `Cache-Control: private, max-age=60` | empty |
    /// | `POST /form` | `visits += 1`, reads the urlencoded body (the framework's form extractor) | `{visits} {item}` |
    /// | `GET /echo` | never touches the session | the request's headers, `name=value` sorted, one a line, then ` ?{query}` |
    /// | `GET /twice` | sets `visits = 41` through the extractor, adds one through the adapter's request extension | `42` |
    /// | `POST /bump/{field}` | `visits += 1`, `user_id += 1` or `name += "x"` (`field` = `visits`, `user_id`, `name`) | empty |
    /// | `GET /all` | reads the three | `{visits},{user_id or 0},{name or ""}` |
    /// | `GET /degraded` | `visits += 1` | `{count} degraded` when the session is an anonymous stand-in (`session.degraded()`), else `{count} normal` |
    /// | `GET /token` | `session.csrf_token()` | the token |
    /// | `POST /flash` | `flash_notice("saved")` | empty |
    /// | `GET /notice` | `take_notice().await` | the notice, or `none` |
    Standard,
    /// The [`Layout::Standard`] routes without any session layer.
    NoSession,
    /// `GET /s/{sid}/visit` (as `/visit`) with the layer where the path
    /// parameter is known.
    ParamScope,
    /// The layer of the spec's manager around the app, and a second layer
    /// (of `inner`) around `GET /in/visit` only.
    Nested {
        /// The inner layer's manager.
        inner: SessionManager<User>,
    },
    /// A gateway: the session layer around `POST /login` (`user_id = 42`,
    /// `name = Ada`), `POST /name/{name}` (`user_id = 7`, `name`), and
    /// `/dashboard`, `/dashboard/*` where the header-mapping layer runs
    /// before a downstream echo (the request's headers, `name: value`
    /// sorted, one a line).
    Gateway(HeaderMapping<User>),
    /// Only the header-mapping layer (no session layer) around the echo of
    /// [`Layout::Gateway`], on every path.
    MappingWithoutSession(HeaderMapping<User>),
}

/// What to build.
#[derive(Debug)]
pub struct AppSpec {
    /// The manager of the (outer) session layer.
    pub manager: SessionManager<User>,
    /// The routes.
    pub layout: Layout,
    /// The layer's form limit, when not the default.
    pub form_limit: Option<usize>,
    /// Use the test error handler: `503`, `Retry-After: 7`, body
    /// `down for {path} (store: {is a store error})`; and the test CSRF
    /// rejection handler: `418`, body `refused: {reason}`.
    pub custom_errors: bool,
    /// The (outer) layer's policy on store failures (default
    /// [`FailurePolicy::Fail`]).
    pub failure_policy: FailurePolicy,
}

impl AppSpec {
    /// The standard routes under `manager`'s layer.
    #[must_use]
    pub fn new(manager: SessionManager<User>) -> Self {
        Self::with(manager, Layout::Standard)
    }

    /// `layout` under `manager`'s layer.
    #[must_use]
    pub fn with(manager: SessionManager<User>, layout: Layout) -> Self {
        Self {
            manager,
            layout,
            form_limit: None,
            custom_errors: false,
            failure_policy: FailurePolicy::Fail,
        }
    }

    /// The same app with the layer's policy on store failures set to `policy`.
    #[must_use]
    pub fn on_store_failure(mut self, policy: FailurePolicy) -> Self {
        self.failure_policy = policy;
        self
    }
}

/// One web-framework adapter, as the suite drives it.
pub trait Adapter: 'static {
    /// A built app.
    type App;
    /// Runs one test on the runtime the framework needs.
    fn block_on(test: impl Future<Output = ()>);
    /// Builds the app `spec` describes.
    fn build(spec: AppSpec) -> impl Future<Output = Self::App>;
    /// Sends `req` to `app` (in process) and reads the whole answer.
    fn call(app: &Self::App, req: Req) -> impl Future<Output = Res>;
    /// Builds the adapter's header-mapping layer from the struct and
    /// `config`, as an application does at start-up.
    ///
    /// # Errors
    /// The mapping's error.
    fn map_with_config(config: &HeaderMapConfig) -> Result<(), HeaderMapError>;
}

/// A request.
#[derive(Debug, Clone)]
pub struct Req {
    /// `GET`, `POST`, …
    pub method: &'static str,
    /// Path and query.
    pub uri: String,
    /// Headers, in order (a name may repeat).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Req {
    /// `GET uri`.
    #[must_use]
    pub fn get(uri: &str) -> Self {
        Self {
            method: "GET",
            uri: uri.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// `POST uri`, no body.
    #[must_use]
    pub fn post(uri: &str) -> Self {
        Self {
            method: "POST",
            ..Self::get(uri)
        }
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Adds `Cookie: name=value`.
    #[must_use]
    pub fn cookie(self, name: &str, value: &str) -> Self {
        self.header("Cookie", &format!("{name}={value}"))
    }

    /// An urlencoded body.
    #[must_use]
    pub fn form(self, body: &str) -> Self {
        let mut req = self.header("Content-Type", "application/x-www-form-urlencoded");
        req.body = body.as_bytes().to_vec();
        req
    }
}

/// A response.
#[derive(Debug, Clone)]
pub struct Res {
    /// The status code.
    pub status: u16,
    /// Headers (names in lower case), in order.
    pub headers: Vec<(String, String)>,
    /// The body (lossy UTF-8).
    pub body: String,
}

impl Res {
    /// The first value of header `name`.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every `Set-Cookie`, parsed.
    #[must_use]
    pub fn set_cookies(&self) -> Vec<Cookie<'static>> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| Cookie::parse(v.clone()).expect("a valid Set-Cookie"))
            .collect()
    }

    /// The one `Set-Cookie` named `name`.
    #[must_use]
    pub fn set_cookie(&self, name: &str) -> Option<Cookie<'static>> {
        let mut found: Vec<_> = self
            .set_cookies()
            .into_iter()
            .filter(|c| c.name() == name)
            .collect();
        assert!(found.len() <= 1, "several Set-Cookie for {name}");
        found.pop()
    }

    /// The value of the session cookie this response set.
    #[must_use]
    pub fn sid(&self) -> String {
        self.set_cookie("session_id")
            .expect("a session cookie")
            .value()
            .to_owned()
    }
}

/// The conformance suite for adapter `$adapter` on every store: modules
/// `memory`, `redis` (one server per test process), `redis_cached` (the
/// same with the read cache on), `cluster` (the
/// three-master Redis Cluster) and `postgres` (one PostgreSQL server per
/// test process), the Redis keys under prefixes and the PostgreSQL tables
/// under names made from `$prefix`.
#[macro_export]
macro_rules! conformance_suites {
    ($adapter:ident, $prefix:literal) => {
        mod memory {
            $crate::conformance_suite!(super::$adapter, async { ::sessionkit::MemoryStore::new() });
        }

        // The same behaviour through the encryption-at-rest wrapper.
        mod encrypted_memory {
            $crate::conformance_suite!(super::$adapter, async {
                ::sessionkit::EncryptedStore::new(
                    ::sessionkit::MemoryStore::new(),
                    ::sessionkit::keys::Keyring::new(
                        [9u8; 32],
                        ::std::vec::Vec::<::std::vec::Vec<u8>>::new(),
                    )
                    .expect("keyring"),
                )
            });
        }

        mod redis {
            $crate::conformance_suite!(super::$adapter, async {
                ::sessionkit::RedisStore::builder($crate::redis_server::RedisServer::shared().url())
                    .prefix($crate::redis_server::unique_prefix($prefix))
                    .build()
                    .expect("store")
            });
        }

        // The same behaviour with the Redis read cache on (tracking up
        // before the first request, so loads are served from memory).
        mod redis_cached {
            $crate::conformance_suite!(super::$adapter, async {
                let store = ::sessionkit::RedisStore::builder(
                    $crate::redis_server::RedisServer::shared().url(),
                )
                .prefix($crate::redis_server::unique_prefix($prefix))
                .read_cache(1_000)
                .build()
                .expect("store");
                $crate::redis_server::read_cache_ready(&store).await;
                store
            });
        }

        mod cluster {
            $crate::conformance_suite!(super::$adapter, async {
                ::sessionkit::RedisStore::cluster_builder(
                    $crate::redis_server::RedisCluster::shared().urls(),
                )
                .prefix($crate::redis_server::unique_prefix($prefix))
                .build()
                .expect("store")
            });
        }

        mod postgres {
            $crate::conformance_suite!(super::$adapter, async {
                ::sessionkit::PostgresStore::builder(
                    $crate::postgres_server::PostgresServer::shared().url(),
                )
                .table($crate::postgres_server::unique_table($prefix))
                .connect()
                .await
                .expect("store")
            });
        }
    };
}

/// The conformance cases that hold as written on the cookie store, for
/// adapter `$adapter`, once with private and once with signed cookies
/// (modules `cookie_private`, `cookie_signed`). Left out: the cases that
/// count or break store calls (there are none: the session is in the
/// request), that store a session by id (for a query, form or path
/// source, or to check a forged id: there is no server to store it on),
/// that send a cookie again after the session changed (the value is the
/// session: a client must send the latest one, so the timeout, CSRF and
/// flash cases are rewritten for it), and the concurrency and renewal
/// races (requests of one cookie session cannot merge; the README's table
/// of stores says so). The cookie store's own cases, with a client that
/// keeps the latest cookie, are in `tests/tests/cookie_store.rs`.
#[macro_export]
macro_rules! cookie_conformance_suites {
    ($adapter:ident) => {
        mod cookie_private {
            $crate::cookie_conformance_suite!(super::$adapter, ::sessionkit::CookieStore::private);
        }
        mod cookie_signed {
            $crate::cookie_conformance_suite!(super::$adapter, ::sessionkit::CookieStore::signed);
        }
    };
}

/// The cookie store's conformance cases for one protection (`$make`:
/// `CookieStore::private` or `CookieStore::signed`).
#[macro_export]
macro_rules! cookie_conformance_suite {
    ($adapter:ty, $make:path) => {
        $crate::cookie_conformance_suite!(@cases $adapter, $make;
            cookie_carries_every_configured_attribute,
            same_site_none_is_sent_with_secure,
            defaults_are_lax_not_secure_not_http_only_two_hours,
            session_only_cookie_has_no_max_age_or_expires,
            responses_that_set_an_id_are_no_store,
            handler_cache_control_is_replaced_when_an_id_is_sent,
            absolute_timeout_expires_an_active_session,
            too_large_session_is_a_500,
            session_without_the_layer_is_a_500_saying_what_to_add,
            request_extension_shares_the_handlers_session,
            mapping_sets_headers_from_the_session,
            client_supplied_mapped_headers_are_removed_in_every_spelling,
            absent_session_value_means_absent_header_even_if_spoofed,
            values_with_cr_lf_never_become_headers,
            runtime_map_in_the_gateway_shape,
            unknown_mapped_field_is_a_start_up_error,
            mapping_without_the_session_layer_is_a_500_saying_what_to_add,
            csrf_a_post_without_a_token_is_refused_before_the_handler,
            csrf_a_form_token_passes_and_the_body_reaches_the_handler,
            csrf_a_token_of_another_session_is_refused,
            csrf_the_header_token_is_accepted,
            csrf_safe_methods_are_never_checked,
            csrf_custom_rejection_handler_answers,
        );
    };
    (@cases $adapter:ty, $make:path; $($case:ident),* $(,)?) => {$(
        #[test]
        fn $case() {
            <$adapter as $crate::conformance::Adapter>::block_on(async {
                let keys = ::sessionkit::keys::Keyring::new(
                    [5u8; 32],
                    ::std::vec::Vec::<::std::vec::Vec<u8>>::new(),
                )
                .expect("keyring");
                $crate::conformance::$case::<$adapter>($crate::conformance::Store::cookie($make(keys))).await;
            });
        }
    )*};
}

/// Expands into one `#[test]` per conformance case, for adapter `$adapter`;
/// `$store` is an expression of a future that yields a fresh `SessionStore`.
#[macro_export]
macro_rules! conformance_suite {
    ($adapter:ty, $store:expr) => {
        $crate::conformance_suite!(@cases $adapter, $store;
            cookie_carries_every_configured_attribute,
            same_site_none_is_sent_with_secure,
            defaults_are_lax_not_secure_not_http_only_two_hours,
            session_only_cookie_has_no_max_age_or_expires,
            session_persists_across_requests_by_cookie,
            untouched_session_costs_no_store_call_and_no_cookie,
            reading_an_empty_session_stores_nothing_and_sets_no_cookie,
            responses_that_set_an_id_are_no_store,
            handler_cache_control_is_replaced_when_an_id_is_sent,
            handler_cache_control_is_kept_without_an_id,
            header_extractor_reads_and_writes_the_header,
            query_extractor_is_read_only,
            form_extractor_leaves_the_body_to_the_handler,
            form_larger_than_the_limit_reaches_the_handler_whole,
            form_is_not_buffered_without_a_form_lookup,
            path_param_extractor,
            chain_of_cookie_and_header_sets_both,
            id_from_a_read_only_source_is_never_promoted_into_a_cookie,
            read_only_chain_never_writes,
            custom_header_extractor_writes_its_header,
            custom_read_only_extractor_writes_nothing,
            forged_id_is_never_adopted,
            malformed_ids_give_a_fresh_session_not_an_error,
            malformed_header_and_query_ids_give_a_fresh_session,
            regenerate_rotates_the_id_and_the_old_one_is_unusable,
            reset_clears_data_and_removes_the_cookie_keeping_its_attributes,
            destroy_deletes_the_session_and_clears_the_header,
            auto_renew_rotates_the_id_after_auto_renew_after,
            disable_auto_renew_keeps_the_id,
            idle_timeout_expires_the_session_and_activity_extends_it,
            absolute_timeout_expires_an_active_session,
            store_failure_on_load_is_an_opaque_503,
            store_failure_on_save_replaces_the_handler_response,
            custom_error_handler_answers,
            too_large_session_is_a_500,
            session_without_the_layer_is_a_500_saying_what_to_add,
            request_extension_shares_the_handlers_session,
            nested_layers_for_the_same_type_use_the_outer_one,
            disable_session_forward_strips_the_session_id_only,
            disable_session_forward_still_loads_the_session,
            without_disable_session_forward_the_cookie_reaches_the_handler,
            store_calls_are_one_load_and_one_save_at_most,
            mapping_sets_headers_from_the_session,
            client_supplied_mapped_headers_are_removed_in_every_spelling,
            absent_session_value_means_absent_header_even_if_spoofed,
            values_with_cr_lf_never_become_headers,
            runtime_map_in_the_gateway_shape,
            unknown_mapped_field_is_a_start_up_error,
            mapping_without_the_session_layer_is_a_500_saying_what_to_add,
            disable_session_forward_with_mapping_downstream_sees_headers_not_the_token,
            store_failure_in_mapping_goes_to_the_error_handler,
            concurrent_requests_of_one_session_keep_every_change,
            parallel_increments_of_one_counter_are_all_kept,
            a_logout_racing_waiting_increments_resurrects_nothing,
            a_logout_racing_a_request_at_renewal_resurrects_nothing,
            parallel_requests_at_renewal_converge_on_one_id,
            a_logout_with_the_old_id_ends_the_renewed_session,
            a_late_request_racing_a_login_never_reaches_it,
            hung_store_gets_503_not_a_hang_and_recovers,
            anonymous_policy_serves_a_degraded_session_when_the_load_fails,
            anonymous_policy_keeps_the_response_when_the_save_fails,
            anonymous_policy_with_a_working_store_changes_nothing,
            anonymous_policy_never_hides_other_errors,
            anonymous_policy_maps_no_session_headers_while_the_store_is_down,
            anonymous_policy_behind_an_open_breaker_asks_the_store_nothing,
            csrf_a_post_without_a_token_is_refused_before_the_handler,
            csrf_a_form_token_passes_and_the_body_reaches_the_handler,
            csrf_a_token_of_another_session_is_refused,
            csrf_a_token_from_before_sign_in_is_refused_after_it,
            csrf_a_replayed_masked_token_is_accepted,
            csrf_the_header_token_is_accepted,
            csrf_exempt_routes_are_not_checked,
            csrf_safe_methods_are_never_checked,
            csrf_cross_site_and_foreign_origin_are_refused_even_with_a_token,
            csrf_a_page_without_forms_starts_no_session,
            csrf_a_refusal_on_headers_costs_no_store_call,
            csrf_custom_rejection_handler_answers,
            flash_a_notice_shows_once,
            flash_two_concurrent_readers_never_both_get_it,
        );
    };
    (@cases $adapter:ty, $store:expr; $($case:ident),* $(,)?) => {$(
        #[test]
        fn $case() {
            <$adapter as $crate::conformance::Adapter>::block_on(async {
                let store = $store.await;
                $crate::conformance::$case::<$adapter>($crate::conformance::Store::server(::std::sync::Arc::new(store))).await;
            });
        }
    )*};
}

// ---------------------------------------------------------------- helpers

/// What a case runs on: a server store, or the cookie store (whose
/// manager has no server store to count calls on or break).
#[derive(Clone)]
pub struct Store {
    server: Option<Arc<dyn sessionkit::store::DynSessionStore>>,
    cookie: Option<sessionkit::CookieStore>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("cookie", &self.cookie)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// A server store.
    pub fn server(store: Arc<dyn sessionkit::store::DynSessionStore>) -> Self {
        Self {
            server: Some(store),
            cookie: None,
        }
    }

    /// The cookie store.
    pub fn cookie(cookie: sessionkit::CookieStore) -> Self {
        Self {
            server: None,
            cookie: Some(cookie),
        }
    }

    /// A manager builder on this store.
    pub fn builder(&self) -> sessionkit::SessionManagerBuilder<User> {
        match (&self.server, &self.cookie) {
            (_, Some(cookie)) => SessionManager::cookie_builder(cookie.clone()),
            (Some(server), None) => SessionManager::builder(Arc::clone(server)),
            (None, None) => unreachable!("a store is one or the other"),
        }
    }

    /// The server store (cases that wrap or count store calls run on
    /// server stores only).
    fn raw(self) -> Arc<dyn sessionkit::store::DynSessionStore> {
        self.server
            .expect("this case needs a server store; the cookie store has none")
    }
}

/// A well-formed id that no server issued.
pub const FORGED: &str = "0123456789abcdef0123456789abcdef";
const T0: u64 = 1_700_000_000_000;

fn manager(store: Store, config: Config) -> SessionManager<User> {
    store
        .builder()
        .config(config)
        .build()
        .expect("valid config")
}

fn clocked(store: Store, config: Config, clock: &ManualClock) -> SessionManager<User> {
    store
        .builder()
        .config(config)
        .clock(clock.clone())
        .build()
        .expect("valid config")
}

/// The default configuration without auto-renewal (ids stay put).
fn no_renewal() -> Config {
    Config::builder()
        .disable_auto_renew(true)
        .build()
        .expect("config")
}

fn lookup(key_lookup: &str) -> Config {
    Config::builder()
        .key_lookup(key_lookup)
        .build()
        .expect("valid config")
}

async fn app<A: Adapter>(manager: SessionManager<User>) -> A::App {
    A::build(AppSpec::new(manager)).await
}

/// A session stored under a known id, for read-only sources.
async fn stored_session(manager: &SessionManager<User>, visits: u32) -> String {
    let session = manager.create().expect("an id");
    session.set_visits(visits);
    session.save().await.expect("saved");
    session.id().to_string()
}

fn recording(store: Store) -> (RecordingStore, SessionManager<User>) {
    let recording = RecordingStore::new(store.raw());
    let manager = SessionManager::new(recording.clone());
    (recording, manager)
}

fn loads(calls: &[Call]) -> usize {
    calls.iter().filter(|c| matches!(c, Call::Load(_))).count()
}

// ---------------------------------------------------------------- options

/// Every cookie option reaches the `Set-Cookie`.
pub async fn cookie_carries_every_configured_attribute<A: Adapter>(store: Store) {
    let config = Config::builder()
        .cookie_http_only(true)
        .cookie_secure(true)
        .cookie_same_site(SameSite::Strict)
        .cookie_path("/app")
        .cookie_domain("example.com")
        .cookie_expiration(Duration::from_secs(3600))
        .build()
        .expect("config");
    let app = app::<A>(manager(store, config)).await;
    let res = A::call(&app, Req::get("/visit")).await;
    assert_eq!(res.status, 200);
    let cookie = res.set_cookie("session_id").expect("a session cookie");
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(cookie.secure(), Some(true));
    assert_eq!(cookie.same_site(), Some(cookie::SameSite::Strict));
    assert_eq!(cookie.path(), Some("/app"));
    assert_eq!(cookie.domain(), Some("example.com"));
    assert_eq!(
        cookie.max_age(),
        Some(cookie::time::Duration::seconds(3600))
    );
    assert!(cookie.value().len() >= 16);
}

/// `SameSite=None` goes out with `Secure`.
pub async fn same_site_none_is_sent_with_secure<A: Adapter>(store: Store) {
    let none = Config::builder()
        .cookie_same_site(SameSite::None)
        .cookie_secure(true)
        .build()
        .expect("config");
    let app = app::<A>(manager(store, none)).await;
    let cookie = A::call(&app, Req::get("/visit"))
        .await
        .set_cookie("session_id")
        .expect("cookie");
    assert_eq!(cookie.same_site(), Some(cookie::SameSite::None));
    assert_eq!(cookie.secure(), Some(true));
}

/// The defaults of both references.
pub async fn defaults_are_lax_not_secure_not_http_only_two_hours<A: Adapter>(store: Store) {
    let app = app::<A>(manager(store, Config::default())).await;
    let cookie = A::call(&app, Req::get("/visit"))
        .await
        .set_cookie("session_id")
        .expect("cookie");
    assert_eq!(cookie.http_only(), None);
    assert_eq!(cookie.secure(), None);
    assert_eq!(cookie.same_site(), Some(cookie::SameSite::Lax));
    assert_eq!(cookie.path(), Some("/"));
    assert_eq!(cookie.domain(), None);
    assert_eq!(
        cookie.max_age(),
        Some(cookie::time::Duration::seconds(7200))
    );
}

/// `cookieSessionOnly`: neither `Max-Age` nor `Expires`.
pub async fn session_only_cookie_has_no_max_age_or_expires<A: Adapter>(store: Store) {
    let config = Config::builder()
        .cookie_session_only(true)
        .build()
        .expect("config");
    let app = app::<A>(manager(store, config)).await;
    let cookie = A::call(&app, Req::get("/visit"))
        .await
        .set_cookie("session_id")
        .expect("cookie");
    assert_eq!(cookie.max_age(), None);
    assert_eq!(cookie.expires(), None);
}

/// The cookie carries the session from one request to the next.
pub async fn session_persists_across_requests_by_cookie<A: Adapter>(store: Store) {
    let app = app::<A>(manager(store, Config::default())).await;
    let res = A::call(&app, Req::get("/visit")).await;
    let sid = res.sid();
    assert_eq!(res.body, "1");
    let res = A::call(&app, Req::get("/visit").cookie("session_id", &sid)).await;
    // The session changed: the same id is sent again, so the browser's
    // cookie lives as long as the session it names.
    assert_eq!(res.sid(), sid, "re-sent on a change, not renewed");
    assert_eq!(res.body, "2");
}

// ---------------------------------------------------------------- laziness

/// A route that never asks for the session costs nothing.
pub async fn untouched_session_costs_no_store_call_and_no_cookie<A: Adapter>(store: Store) {
    let (recording, manager) = recording(store);
    let app = app::<A>(manager).await;
    let res = A::call(&app, Req::get("/plain").cookie("session_id", FORGED)).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.body, "plain");
    assert!(res.set_cookies().is_empty());
    assert!(res.header("cache-control").is_none());
    assert_eq!(recording.take_calls(), []);
}

/// No id, only reads: nothing to load, nothing to save.
pub async fn reading_an_empty_session_stores_nothing_and_sets_no_cookie<A: Adapter>(store: Store) {
    let (recording, manager) = recording(store);
    let app = app::<A>(manager).await;
    let res = A::call(&app, Req::get("/read")).await;
    assert_eq!(res.body, "0");
    assert!(res.set_cookies().is_empty());
    assert_eq!(recording.take_calls(), []);
}

// ---------------------------------------------------------------- cache-control

/// A response that carries an id is not for shared caches.
pub async fn responses_that_set_an_id_are_no_store<A: Adapter>(store: Store) {
    let app = app::<A>(manager(store, Config::default())).await;
    let res = A::call(&app, Req::get("/visit")).await;
    assert_eq!(res.header("cache-control"), Some("no-store"));
}

/// The handler's own `Cache-Control` cannot make an id cacheable.
pub async fn handler_cache_control_is_replaced_when_an_id_is_sent<A: Adapter>(store: Store) {
    let app = app::<A>(manager(store, Config::default())).await;
    let res = A::call(&app, Req::get("/cached")).await;
    assert!(res.set_cookie("session_id").is_some());
    let values: Vec<&str> = res
        .headers
        .iter()
        .filter(|(n, _)| n == "cache-control")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(values, ["no-store"]);
}

/// Without an id in the response, the handler's `Cache-Control` stays.
pub async fn handler_cache_control_is_kept_without_an_id<A: Adapter>(store: Store) {
    let manager = manager(store, Config::default());
    let sid = stored_session(&manager, 1).await;
    let app = app::<A>(manager).await;
    let res = A::call(&app, Req::get("/cached").cookie("session_id", &sid)).await;
    assert!(res.set_cookies().is_empty());
    assert_eq!(res.header("cache-control"), Some("private, max-age=60"));
}

// ---------------------------------------------------------------- extractors

/// `header:` reads the id from a header and sends new ids in one.
pub async fn header_extractor_reads_and_writes_the_header<A: Adapter>(store: Store) {
    let app = app::<A>(manager(store, lookup("header:X-Session-Token"))).await;
    let res = A::call(&app, Req::get("/visit")).await;
    assert!(res.set_cookies().is_empty());
    let sid = res.header("x-session-token").expect("id header").to_owned();
    let res = A::call(&app, Req::get("/visit").header("X-Session-Token", &sid)).await;
    assert_eq!(
        res.header("x-session-token"),
        Some(sid.as_str()),
        "the same id, re-sent on a change"
    );
    assert_eq!(res.body, "2");
}

/// `query:` finds the session and never writes an id back.
pub async fn query_extractor_is_read_only<A: Adapter>(store: Store) {
    let manager = manager(store, lookup("query:session_id"));
    let sid = stored_session(&manager, 10).await;
    let app = app::<A>(manager).await;
    let res = A::call(&app, Req::get(&format!("/visit?session_id={sid}"))).await;
    assert!(res.set_cookies().is_empty());
    assert!(res.header("session_id").is_none());
    assert_eq!(res.body, "11");
    // A new session through a read-only source is made but never written back.
    let res = A::call(&app, Req::get("/visit")).await;
    assert!(res.set_cookies().is_empty());
    assert!(res.header("cache-control").is_none());
}

/// `form:` reads the body, and the handler still gets all of it.
pub async fn form_extractor_leaves_the_body_to_the_handler<A: Adapter>(store: Store) {
    let manager = manager(store, lookup("form:session_id"));
    let sid = stored_session(&manager, 4).await;
    let app = app::<A>(manager).await;
    let req = Req::post("/form").form(&format!("item=apple&session_id={sid}"));
    let res = A::call(&app, req).await;
    assert!(res.set_cookies().is_empty());
    assert_eq!(res.body, "5 apple");
}

/// Past the form limit the body is not buffered: the id is not found, the
/// handler still reads the whole form.
pub async fn form_larger_than_the_limit_reaches_the_handler_whole<A: Adapter>(store: Store) {
    let manager = manager(store, lookup("form:session_id"));
    let sid = stored_session(&manager, 4).await;
    let mut spec = AppSpec::new(manager);
    spec.form_limit = Some(16);
    let app = A::build(spec).await;
    let req = Req::post("/form").form(&format!("item=apple&session_id={sid}"));
    let res = A::call(&app, req).await;
    assert_eq!(res.body, "1 apple");
}

/// Without a `form:` lookup the body is never read by the layer.
pub async fn form_is_not_buffered_without_a_form_lookup<A: Adapter>(store: Store) {
    let manager = manager(store, Config::default());
    let sid = stored_session(&manager, 2).await;
    let app = app::<A>(manager).await;
    // The id in the body is not an id source here.
    let req = Req::post("/form").form(&format!("item=pear&session_id={sid}"));
    let res = A::call(&app, req).await;
    assert_eq!(res.body, "1 pear");
}

/// `param:` reads a path parameter of the matched route.
pub async fn path_param_extractor<A: Adapter>(store: Store) {
    let manager = manager(store, lookup("param:sid"));
    let sid = stored_session(&manager, 7).await;
    let app = A::build(AppSpec::with(manager, Layout::ParamScope)).await;
    let res = A::call(&app, Req::get(&format!("/s/{sid}/visit"))).await;
    assert!(res.set_cookies().is_empty());
    assert_eq!(res.body, "8");
}

/// A chain with a cookie and a header source writes both.
pub async fn chain_of_cookie_and_header_sets_both<A: Adapter>(store: Store) {
    let app = app::<A>(manager(
        store,
        lookup("cookie:session_id,header:X-Session-ID"),
    ))
    .await;
    let res = A::call(&app, Req::get("/visit")).await;
    let cookie = res.set_cookie("session_id").expect("cookie");
    let hdr = res.header("x-session-id").expect("header").to_owned();
    assert_eq!(cookie.value(), hdr);
    // The header alone finds the session (cookie first, header next).
    let res = A::call(&app, Req::get("/visit").header("X-Session-ID", &hdr)).await;
    assert_eq!(res.body, "2");
}

/// An id read from the query never becomes a cookie.
pub async fn id_from_a_read_only_source_is_never_promoted_into_a_cookie<A: Adapter>(store: Store) {
    let manager = manager(store, lookup("cookie:session_id,query:session_id"));
    let sid = stored_session(&manager, 1).await;
    let app = app::<A>(manager).await;
    let res = A::call(&app, Req::get(&format!("/visit?session_id={sid}"))).await;
    assert!(res.set_cookie("session_id").is_none());
    assert_eq!(res.body, "2");
    // Without any id, the new server-made id goes out as the cookie.
    let res = A::call(&app, Req::get("/visit")).await;
    assert!(res.set_cookie("session_id").is_some());
}

/// Only read-only sources: nothing is ever written back.
pub async fn read_only_chain_never_writes<A: Adapter>(store: Store) {
    let app = app::<A>(manager(store, lookup("query:session_id,form:session_id"))).await;
    for uri in ["/visit", "/visit?session_id=nonexistent-but-well-formed"] {
        let res = A::call(&app, Req::get(uri)).await;
        assert!(res.set_cookies().is_empty());
        assert!(res.header("session_id").is_none());
    }
    let res = A::call(&app, Req::post("/logout")).await;
    assert!(res.set_cookies().is_empty());
}

/// A custom header-kind extractor writes new ids into its header.
pub async fn custom_header_extractor_writes_its_header<A: Adapter>(store: Store) {
    let bearer = Extractor::custom("Authorization", SourceKind::Header, |req| {
        req.header("authorization")?
            .strip_prefix("Bearer ")
            .map(str::to_owned)
    });
    let manager = store.builder().extractor(bearer).build().expect("manager");
    let app = app::<A>(manager).await;
    let res = A::call(&app, Req::get("/visit")).await;
    let sid = res
        .header("authorization")
        .expect("id sent back in Authorization")
        .to_owned();
    let res = A::call(
        &app,
        Req::get("/visit").header("Authorization", &format!("Bearer {sid}")),
    )
    .await;
    assert_eq!(res.body, "2");
}

/// A custom read-only extractor finds sessions and writes nothing.
pub async fn custom_read_only_extractor_writes_nothing<A: Adapter>(store: Store) {
    let custom = Extractor::custom("X-Custom-Session", SourceKind::Other, |req| {
        req.header("x-custom-session").map(str::to_owned)
    });
    let manager = store.builder().extractor(custom).build().expect("manager");
    let sid = stored_session(&manager, 2).await;
    let app = app::<A>(manager).await;
    let res = A::call(&app, Req::get("/visit").header("X-Custom-Session", &sid)).await;
    assert!(res.set_cookies().is_empty());
    assert!(res.header("x-custom-session").is_none());
    assert_eq!(res.body, "3");
}

// ---------------------------------------------------------------- security

/// A well-formed id that no server issued is replaced, never stored.
pub async fn forged_id_is_never_adopted<A: Adapter>(store: Store) {
    let manager = manager(store, Config::default());
    let app = app::<A>(manager.clone()).await;
    let res = A::call(&app, Req::get("/visit").cookie("session_id", FORGED)).await;
    assert_ne!(res.sid(), FORGED);
    assert_eq!(res.body, "1");
    assert!(manager.load_by_id(FORGED).await.expect("load").is_none());
}

/// Malformed ids are not errors and never reach the store.
pub async fn malformed_ids_give_a_fresh_session_not_an_error<A: Adapter>(store: Store) {
    let (recording, manager) = recording(store);
    let app = app::<A>(manager).await;
    let long = "a".repeat(1024);
    for bad in [
        "{",
        "/",
        "%7B%22a%22%3A1%7D",
        "a%0D%0AX-Evil: 1",
        "../../../etc/passwd",
        long.as_str(),
    ] {
        let res = A::call(&app, Req::get("/visit").cookie("session_id", bad)).await;
        assert_eq!(res.status, 200, "id {bad:?}");
        assert_ne!(res.sid(), bad);
        assert_eq!(res.body, "1");
    }
    // Only the saves of the new sessions reached the store.
    let calls = recording.take_calls();
    assert_eq!(loads(&calls), 0, "{calls:?}");
    assert_eq!(calls.len(), 6, "{calls:?}");
}

/// The same through a header and the query.
pub async fn malformed_header_and_query_ids_give_a_fresh_session<A: Adapter>(store: Store) {
    let app = app::<A>(manager(store, lookup("header:X-Session-ID,query:sid"))).await;
    for uri in ["/visit?sid=%7B", "/visit?sid=%2F", "/visit?sid=a%0D%0Ab"] {
        let res = A::call(&app, Req::get(uri)).await;
        assert_eq!(res.status, 200);
        assert_eq!(res.body, "1");
    }
    let long = "b".repeat(1024);
    let res = A::call(&app, Req::get("/visit").header("X-Session-ID", &long)).await;
    assert_eq!(res.status, 200);
    assert_ne!(res.header("x-session-id"), Some(long.as_str()));
}

/// Login rotates the id (fixation defence); the data moves, the old id dies.
pub async fn regenerate_rotates_the_id_and_the_old_one_is_unusable<A: Adapter>(store: Store) {
    let manager = manager(store, Config::default());
    let app = app::<A>(manager.clone()).await;
    let old = A::call(&app, Req::get("/visit")).await.sid();
    let res = A::call(&app, Req::post("/login").cookie("session_id", &old)).await;
    let new = res.sid();
    assert_ne!(new, old);
    assert_eq!(res.body, new);
    // Data kept under the new id…
    let res = A::call(&app, Req::get("/read").cookie("session_id", &new)).await;
    assert_eq!(res.body, "1");
    // …and the old id is gone.
    assert!(manager.load_by_id(&old).await.expect("load").is_none());
    let res = A::call(&app, Req::get("/read").cookie("session_id", &old)).await;
    assert_eq!(res.body, "0");
}

/// Logout: data gone, removal cookie with the cookie's own attributes.
pub async fn reset_clears_data_and_removes_the_cookie_keeping_its_attributes<A: Adapter>(
    store: Store,
) {
    let config = Config::builder()
        .cookie_secure(true)
        .cookie_path("/app")
        .cookie_domain("example.com")
        .build()
        .expect("config");
    let manager = manager(store, config);
    let sid = stored_session(&manager, 3).await;
    let app = app::<A>(manager.clone()).await;
    let res = A::call(&app, Req::post("/logout").cookie("session_id", &sid)).await;
    let removal = res.set_cookie("session_id").expect("removal cookie");
    assert_eq!(removal.value(), "");
    assert_eq!(removal.path(), Some("/app"));
    assert_eq!(removal.domain(), Some("example.com"));
    assert_eq!(removal.secure(), Some(true));
    assert!(removal.max_age() == Some(cookie::time::Duration::ZERO) || removal.expires().is_some());
    assert_eq!(res.header("cache-control"), Some("no-store"));
    assert!(manager.load_by_id(&sid).await.expect("load").is_none());
}

/// `destroy` deletes the session and clears the cookie and the header.
pub async fn destroy_deletes_the_session_and_clears_the_header<A: Adapter>(store: Store) {
    let manager = manager(store, lookup("cookie:session_id,header:X-Session-ID"));
    let sid = stored_session(&manager, 3).await;
    let app = app::<A>(manager.clone()).await;
    let res = A::call(&app, Req::post("/destroy").header("X-Session-ID", &sid)).await;
    assert_eq!(res.body, "destroyed");
    assert_eq!(res.set_cookie("session_id").expect("removal").value(), "");
    assert_eq!(res.header("x-session-id"), Some(""));
    assert!(manager.load_by_id(&sid).await.expect("load").is_none());
}

// ---------------------------------------------------------------- timeouts

/// Auto-renew rotates the id once it is `autoRenewAfter` old.
pub async fn auto_renew_rotates_the_id_after_auto_renew_after<A: Adapter>(store: Store) {
    let clock = ManualClock::new(T0);
    let config = Config::builder()
        .auto_renew_after(Duration::from_secs(60))
        .idle_timeout(Duration::from_secs(3600))
        .build()
        .expect("config");
    let manager = clocked(store, config, &clock);
    let app = app::<A>(manager.clone()).await;
    let first = A::call(&app, Req::get("/visit")).await.sid();

    clock.advance(Duration::from_secs(30));
    let res = A::call(&app, Req::get("/read").cookie("session_id", &first)).await;
    assert!(
        res.set_cookie("session_id").is_none(),
        "not due yet, and nothing written"
    );

    clock.advance(Duration::from_secs(31));
    let res = A::call(&app, Req::get("/read").cookie("session_id", &first)).await;
    let second = res.sid();
    assert_ne!(second, first);
    assert_eq!(res.body, "1");
    // The old id reaches the session for the grace period, then nothing.
    let via_old = manager
        .load_by_id(&first)
        .await
        .expect("load")
        .expect("grace");
    assert_eq!(via_old.id().as_str(), second);
    clock.advance(Duration::from_secs(5));
    assert!(manager.load_by_id(&first).await.expect("load").is_none());
    assert!(manager.load_by_id(&second).await.expect("load").is_some());
}

/// `disableAutoRenew` keeps the id.
pub async fn disable_auto_renew_keeps_the_id<A: Adapter>(store: Store) {
    let clock = ManualClock::new(T0);
    let config = Config::builder()
        .disable_auto_renew(true)
        .auto_renew_after(Duration::from_secs(60))
        .cookie_session_only(true)
        .build()
        .expect("config");
    let app = app::<A>(clocked(store, config, &clock)).await;
    let first = A::call(&app, Req::get("/visit")).await.sid();
    clock.advance(Duration::from_secs(600));
    let res = A::call(&app, Req::get("/visit").cookie("session_id", &first)).await;
    assert_eq!(res.sid(), first, "re-sent on a change, never renewed");
    assert_eq!(res.body, "2");
}

/// Idle sessions expire; activity slides the idle timeout.
pub async fn idle_timeout_expires_the_session_and_activity_extends_it<A: Adapter>(store: Store) {
    let clock = ManualClock::new(T0);
    let config = Config::builder()
        .idle_timeout(Duration::from_secs(60))
        .disable_auto_renew(true)
        .build()
        .expect("config");
    let app = app::<A>(clocked(store, config, &clock)).await;
    let sid = A::call(&app, Req::get("/visit")).await.sid();
    // Activity every 45 s keeps it alive past 60 s in total.
    for expected in ["2", "3"] {
        clock.advance(Duration::from_secs(45));
        let res = A::call(&app, Req::get("/visit").cookie("session_id", &sid)).await;
        assert_eq!(res.body, expected);
    }
    clock.advance(Duration::from_secs(61));
    let res = A::call(&app, Req::get("/visit").cookie("session_id", &sid)).await;
    assert_ne!(res.sid(), sid);
    assert_eq!(res.body, "1");
}

/// The absolute timeout ends a session however active it is.
pub async fn absolute_timeout_expires_an_active_session<A: Adapter>(store: Store) {
    let clock = ManualClock::new(T0);
    let config = Config::builder()
        .idle_timeout(Duration::from_secs(60))
        .absolute_timeout(Duration::from_secs(100))
        .disable_auto_renew(true)
        .build()
        .expect("config");
    let app = app::<A>(clocked(store, config, &clock)).await;
    let sid = A::call(&app, Req::get("/visit")).await.sid();
    clock.advance(Duration::from_secs(50));
    let res = A::call(&app, Req::get("/visit").cookie("session_id", &sid)).await;
    assert_eq!(res.body, "2");
    clock.advance(Duration::from_secs(51));
    let res = A::call(&app, Req::get("/visit").cookie("session_id", &sid)).await;
    assert_eq!(res.body, "1", "expired after 101 s despite activity");
}

// ---------------------------------------------------------------- errors

/// A store outage while loading is an opaque 503; untouched routes still work.
pub async fn store_failure_on_load_is_an_opaque_503<A: Adapter>(store: Store) {
    let (recording, manager) = recording(store);
    let sid = stored_session(&manager, 1).await;
    let app = app::<A>(manager).await;
    recording.set_failing(true);
    let res = A::call(&app, Req::get("/visit").cookie("session_id", &sid)).await;
    assert_eq!(res.status, 503);
    assert!(res.set_cookies().is_empty());
    assert_eq!(res.body, "session storage unavailable");
    assert_eq!(res.header("cache-control"), Some("no-store"));
    assert!(!res.body.contains("injected"));
    let res = A::call(&app, Req::get("/plain")).await;
    assert_eq!(res.status, 200);
}

/// A failed save replaces the handler's answer: the client must not
/// believe a change was kept.
pub async fn store_failure_on_save_replaces_the_handler_response<A: Adapter>(store: Store) {
    let (recording, manager) = recording(store);
    let app = app::<A>(manager).await;
    recording.set_failing(true);
    // No id: nothing to load; the save after the handler fails.
    let res = A::call(&app, Req::get("/visit")).await;
    assert_eq!(res.status, 503);
    assert!(res.set_cookies().is_empty());
    assert_eq!(res.body, "session storage unavailable");
    recording.set_failing(false);
    let res = A::call(&app, Req::get("/visit")).await;
    assert_eq!(res.status, 200);
}

/// A custom error handler answers, with the request at hand.
pub async fn custom_error_handler_answers<A: Adapter>(store: Store) {
    let (recording, manager) = recording(store);
    let mut spec = AppSpec::new(manager);
    spec.custom_errors = true;
    let app = A::build(spec).await;
    recording.set_failing(true);
    let res = A::call(&app, Req::get("/visit")).await;
    assert_eq!(res.status, 503);
    assert_eq!(res.header("retry-after"), Some("7"));
    assert_eq!(res.body, "down for /visit (store: true)");
}

/// Over `maxSessionBytes`: a 500 and nothing stored.
pub async fn too_large_session_is_a_500<A: Adapter>(store: Store) {
    let config = Config::builder()
        .max_session_bytes(4usize)
        .build()
        .expect("config");
    let app = app::<A>(manager(store, config)).await;
    let res = A::call(&app, Req::post("/login")).await;
    assert_eq!(res.status, 500);
    assert!(res.set_cookies().is_empty());
    assert_eq!(res.body, "session error");
}

/// Asking for a session without the layer is a setup bug, said as such.
pub async fn session_without_the_layer_is_a_500_saying_what_to_add<A: Adapter>(store: Store) {
    let app = A::build(AppSpec::with(
        manager(store, Config::default()),
        Layout::NoSession,
    ))
    .await;
    let res = A::call(&app, Req::get("/visit")).await;
    assert_eq!(res.status, 500);
    assert!(
        res.body.contains("is installed on this route"),
        "{}",
        res.body
    );
    assert!(res.body.contains("User"), "{}", res.body);
    assert_eq!(A::call(&app, Req::get("/plain")).await.status, 200);
}

/// The request extension and the extractor hand out one session.
pub async fn request_extension_shares_the_handlers_session<A: Adapter>(store: Store) {
    let app = app::<A>(manager(store, Config::default())).await;
    let res = A::call(&app, Req::get("/twice")).await;
    assert_eq!(res.body, "42");
    let sid = res.sid();
    let res = A::call(&app, Req::get("/read").cookie("session_id", &sid)).await;
    assert_eq!(res.body, "42");
}

/// Two layers of one type: the outer one manages the request.
pub async fn nested_layers_for_the_same_type_use_the_outer_one<A: Adapter>(store: Store) {
    let outer = manager(store.clone(), Config::default());
    let inner = manager(store, lookup("header:X-Inner"));
    let app = A::build(AppSpec::with(outer, Layout::Nested { inner })).await;
    let res = A::call(&app, Req::get("/in/visit")).await;
    assert_eq!(res.body, "1");
    assert!(res.set_cookie("session_id").is_some());
    assert!(res.header("x-inner").is_none());
}

// ---------------------------------------------------------------- disableSessionForward

/// `disableSessionForward` removes the id from cookie, headers and query,
/// and nothing else.
pub async fn disable_session_forward_strips_the_session_id_only<A: Adapter>(store: Store) {
    let config = Config::builder()
        .key_lookup("cookie:session_id,header:X-Session-ID,query:session_id")
        .disable_session_forward(true)
        .build()
        .expect("config");
    let manager = manager(store, config);
    let sid = stored_session(&manager, 1).await;
    let app = app::<A>(manager).await;

    let req = Req::get("/echo")
        .header("Cookie", &format!("theme=dark; session_id={sid}; lang=en"))
        .header("X-Session-ID", &sid)
        .header("X_Session_Id", &sid);
    let seen = A::call(&app, req).await.body;
    assert!(!seen.contains(&sid), "{seen}");
    assert!(seen.contains("cookie=theme=dark; lang=en"), "{seen}");
    assert!(
        !seen.to_ascii_lowercase().contains("x-session-id")
            && !seen.to_ascii_lowercase().contains("x_session_id"),
        "{seen}"
    );

    let seen = A::call(&app, Req::get(&format!("/echo?a=1&session_id={sid}&b=2")))
        .await
        .body;
    assert!(!seen.contains(&sid), "{seen}");
    assert!(seen.ends_with("?a=1&b=2"), "{seen}");
}

/// The stripped id still loads the session.
pub async fn disable_session_forward_still_loads_the_session<A: Adapter>(store: Store) {
    let config = Config::builder()
        .disable_session_forward(true)
        .build()
        .expect("config");
    let manager = manager(store, config);
    let sid = stored_session(&manager, 5).await;
    let app = app::<A>(manager).await;
    let res = A::call(&app, Req::get("/visit").cookie("session_id", &sid)).await;
    assert_eq!(res.body, "6");
}

/// By default the handler sees the request as sent.
pub async fn without_disable_session_forward_the_cookie_reaches_the_handler<A: Adapter>(
    store: Store,
) {
    let manager = manager(store, Config::default());
    let sid = stored_session(&manager, 5).await;
    let app = app::<A>(manager).await;
    let res = A::call(&app, Req::get("/echo").cookie("session_id", &sid)).await;
    assert!(res.body.contains(&sid), "{}", res.body);
}

/// A read is one load; a write is one load and one save.
pub async fn store_calls_are_one_load_and_one_save_at_most<A: Adapter>(store: Store) {
    let (recording, manager) = recording(store);
    let sid = stored_session(&manager, 1).await;
    recording.take_calls();
    let app = app::<A>(manager).await;
    let res = A::call(&app, Req::get("/read").cookie("session_id", &sid)).await;
    assert_eq!(res.body, "1");
    assert_eq!(recording.take_calls(), [Call::Load(sid.clone())]);
    let res = A::call(&app, Req::get("/visit").cookie("session_id", &sid)).await;
    assert_eq!(res.body, "2");
    let calls = recording.take_calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0], Call::Load(sid.clone()));
    assert!(
        calls[1].as_write().is_some_and(|w| w.id.as_str() == sid),
        "{calls:?}"
    );
}

// ---------------------------------------------------------------- header mapping

async fn gateway<A: Adapter>(manager: SessionManager<User>, map: HeaderMapping<User>) -> A::App {
    A::build(AppSpec::with(manager, Layout::Gateway(map))).await
}

async fn login<A: Adapter>(app: &A::App, uri: &str) -> String {
    let res = A::call(app, Req::post(uri)).await;
    assert_eq!(res.status, 200, "{}", res.body);
    res.sid()
}

/// The struct's `#[header]`s become request headers downstream.
pub async fn mapping_sets_headers_from_the_session<A: Adapter>(store: Store) {
    let app = gateway::<A>(
        manager(store, Config::default()),
        HeaderMapping::from_derive(),
    )
    .await;
    let sid = login::<A>(&app, "/login").await;
    let seen = A::call(&app, Req::get("/dashboard").cookie("session_id", &sid))
        .await
        .body;
    assert!(seen.contains("x-user-id: 42"), "{seen}");
    assert!(seen.contains("x-user-name: Ada"), "{seen}");
}

/// A client can never send a mapped header, in any spelling.
pub async fn client_supplied_mapped_headers_are_removed_in_every_spelling<A: Adapter>(
    store: Store,
) {
    let app = gateway::<A>(
        manager(store, Config::default()),
        HeaderMapping::from_derive(),
    )
    .await;
    let sid = login::<A>(&app, "/login").await;
    let mut req = Req::get("/dashboard/x")
        .cookie("session_id", &sid)
        .header("X-Other", "kept");
    // Every spelling a downstream service might fold onto `X-User-Id`:
    // case, `-`, `_`, `.`, any other punctuation, or none.
    for (i, spelling) in [
        "X-User-Id",
        "x-user-id",
        "x_user_id",
        "X_USER_ID",
        "X.User.Id",
        "X-USER.ID",
        "XUserId",
        "x~user~id",
        "X_User-Id",
        "x.user_id",
        "x!user#id",
        "-X-User-Id-",
        "x`user|id",
    ]
    .iter()
    .enumerate()
    {
        req = req.header(spelling, &format!("spoofed-{i}"));
    }
    let seen = A::call(&app, req).await.body;
    let user_lines: Vec<&str> = seen
        .lines()
        .filter(|l| {
            sessionkit::adapter::normalize_header_name(l.split(':').next().unwrap_or_default())
                == "xuserid"
        })
        .collect();
    assert_eq!(user_lines, ["x-user-id: 42"], "{seen}");
    assert!(!seen.contains("spoofed"), "{seen}");
    assert!(seen.contains("x-other: kept"), "{seen}");
}

/// No session value, no header, whatever the client sent.
pub async fn absent_session_value_means_absent_header_even_if_spoofed<A: Adapter>(store: Store) {
    let app = gateway::<A>(
        manager(store, Config::default()),
        HeaderMapping::from_derive(),
    )
    .await;
    let req = Req::get("/dashboard")
        .header("X-User-Id", "999")
        .header("x_user_id", "999")
        .header("X-User-Name", "root");
    let res = A::call(&app, req).await;
    // An untouched fresh session: nothing stored, no cookie.
    assert!(res.set_cookies().is_empty());
    let seen = res.body;
    assert!(!seen.contains("999"), "{seen}");
    assert!(!seen.contains("root"), "{seen}");
    assert!(!seen.contains("x-user"), "{seen}");
}

/// A value with CR/LF is never sent as a header.
pub async fn values_with_cr_lf_never_become_headers<A: Adapter>(store: Store) {
    let app = gateway::<A>(
        manager(store, Config::default()),
        HeaderMapping::from_derive(),
    )
    .await;
    // "Ada%0D%0AX-Admin:%20true" decodes to a value with CR/LF.
    let sid = login::<A>(&app, "/name/Ada%0D%0AX-Admin:%20true").await;
    let req = Req::get("/dashboard")
        .cookie("session_id", &sid)
        .header("X-User-Name", "spoofed");
    let res = A::call(&app, req).await;
    assert_eq!(res.status, 200);
    let seen = res.body;
    assert!(seen.contains("x-user-id: 7"), "{seen}");
    assert!(!seen.contains("x-user-name"), "{seen}");
    assert!(!seen.contains("x-admin"), "{seen}");
    assert!(!seen.contains("spoofed"), "{seen}");
}

/// The gateway plugin's `headers:` map, on top of the struct's own.
pub async fn runtime_map_in_the_gateway_shape<A: Adapter>(store: Store) {
    let yaml = "headers:\n  Authorization: name\n  X-Account: user_id\n";
    let config: HeaderMapConfig = serde_norway::from_str(yaml).expect("yaml");
    let map = HeaderMapping::from_derive()
        .with_config(&config)
        .expect("valid map");
    let app = gateway::<A>(manager(store, Config::default()), map).await;
    let sid = login::<A>(&app, "/login").await;
    let req = Req::get("/dashboard")
        .cookie("session_id", &sid)
        .header("Authorization", "Bearer forged")
        .header("x_account", "1");
    let seen = A::call(&app, req).await.body;
    assert!(seen.contains("authorization: Ada"), "{seen}");
    assert!(seen.contains("x-account: 42"), "{seen}");
    assert!(
        !seen.contains("forged") && !seen.contains("x_account"),
        "{seen}"
    );
    // The derive's own mappings are still there.
    assert!(seen.contains("x-user-id: 42"), "{seen}");
}

/// A map naming a field the struct lacks is refused when the layer is built.
pub async fn unknown_mapped_field_is_a_start_up_error<A: Adapter>(_store: Store) {
    let config = HeaderMapConfig::new([("X-Role", "role")]);
    let error = A::map_with_config(&config).expect_err("unknown field");
    assert!(
        matches!(error, HeaderMapError::UnknownField { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("role"), "{error}");
    let bad_name = HeaderMapConfig::new([("X User", "user_id")]);
    assert!(A::map_with_config(&bad_name).is_err());
    let good = HeaderMapConfig::new([("X-Account", "user_id")]);
    assert!(A::map_with_config(&good).is_ok());
}

/// The mapping layer without a session layer outside it: a 500 naming the
/// missing layer, and no spoofed header reaches the service.
pub async fn mapping_without_the_session_layer_is_a_500_saying_what_to_add<A: Adapter>(
    store: Store,
) {
    let spec = AppSpec::with(
        manager(store, Config::default()),
        Layout::MappingWithoutSession(HeaderMapping::from_derive()),
    );
    let app = A::build(spec).await;
    let res = A::call(&app, Req::get("/").header("X-User-Id", "999")).await;
    assert_eq!(res.status, 500);
    assert!(
        res.body.contains("is installed on this route"),
        "{}",
        res.body
    );
    assert!(!res.body.contains("999"), "{}", res.body);
}

/// Downstream sees the mapped headers and never the session token.
pub async fn disable_session_forward_with_mapping_downstream_sees_headers_not_the_token<
    A: Adapter,
>(
    store: Store,
) {
    let config = Config::builder()
        .key_lookup("cookie:session_id,header:X-Session-ID")
        .disable_session_forward(true)
        .build()
        .expect("config");
    let app = gateway::<A>(manager(store, config), HeaderMapping::from_derive()).await;
    let sid = login::<A>(&app, "/login").await;
    for req in [
        Req::get("/dashboard").header("Cookie", &format!("a=1; session_id={sid}")),
        Req::get("/dashboard").header("X-Session-ID", &sid),
    ] {
        let seen = A::call(&app, req).await.body;
        assert!(seen.contains("x-user-id: 42"), "{seen}");
        assert!(!seen.contains(&sid), "{seen}");
    }
}

/// The mapping layer's store failure goes to the error handler.
pub async fn store_failure_in_mapping_goes_to_the_error_handler<A: Adapter>(store: Store) {
    let (recording, manager) = recording(store);
    let app = gateway::<A>(manager, HeaderMapping::from_derive()).await;
    let sid = login::<A>(&app, "/login").await;
    recording.set_failing(true);
    let res = A::call(&app, Req::get("/dashboard").cookie("session_id", &sid)).await;
    assert_eq!(res.status, 503);
    assert_eq!(res.body, "session storage unavailable");
}

// ---------------------------------------------------------------- concurrency, slow stores

/// Requests of one session in flight at once, each changing its own field,
/// round after round: the result holds every change.
pub async fn concurrent_requests_of_one_session_keep_every_change<A: Adapter>(store: Store) {
    let config = no_renewal();
    let app = app::<A>(manager(store, config)).await;
    let sid = A::call(&app, Req::get("/visit")).await.sid();
    let rounds = 5;
    for _ in 0..rounds {
        // One request per field, all in flight at once. (Two requests that
        // change the *same* field race like any read-modify-write.)
        let answers = futures_util::future::join_all(["visits", "user_id", "name"].map(|field| {
            A::call(
                &app,
                Req::post(&format!("/bump/{field}")).cookie("session_id", &sid),
            )
        }))
        .await;
        for res in answers {
            assert_eq!(res.status, 200, "{}", res.body);
        }
    }
    let res = A::call(&app, Req::get("/all").cookie("session_id", &sid)).await;
    assert_eq!(
        res.body,
        format!("{},{rounds},xxxxx", rounds + 1),
        "a write was lost"
    );
}

/// 32 requests of one session, all incrementing the same counter at once
/// (browser tabs, a burst of XHRs): every increment is kept, none is
/// refused, and each handler answers the count computed on its own load.
/// Within one instance they take turns and the commit holding the turn
/// writes the waiting ones' changes with its own (group commit).
pub async fn parallel_increments_of_one_counter_are_all_kept<A: Adapter>(store: Store) {
    let config = no_renewal();
    let app = app::<A>(manager(store, config)).await;
    let sid = A::call(&app, Req::get("/visit")).await.sid();
    let answers = futures_util::future::join_all(
        (0..32).map(|_| A::call(&app, Req::get("/visit").cookie("session_id", &sid))),
    )
    .await;
    for res in &answers {
        assert_eq!(res.status, 200, "{}", res.body);
        let seen: u32 = res.body.parse().expect("a count");
        assert!((2..=33).contains(&seen), "{seen}");
    }
    let res = A::call(&app, Req::get("/read").cookie("session_id", &sid)).await;
    assert_eq!(res.body, "33", "an increment was lost");
}

/// A logout on another instance while increments of the session wait for
/// their turn on this one (the first held at its write): the write that
/// carries them finds the session gone, so nobody's increment brings it
/// back and no request hands out an id.
pub async fn a_logout_racing_waiting_increments_resurrects_nothing<A: Adapter>(store: Store) {
    let rec = RecordingStore::new(store.raw());
    let here = manager(Store::server(Arc::new(rec.clone())), no_renewal());
    let other = app::<A>(manager(Store::server(Arc::new(rec.clone())), no_renewal())).await;
    let app = app::<A>(here.clone()).await;
    let sid = A::call(&app, Req::get("/visit")).await.sid();

    let loads = rec.gate_loads();
    let requests = futures_util::future::join_all(
        (0..8).map(|_| A::call(&app, Req::get("/visit").cookie("session_id", &sid))),
    );
    let conductor = async {
        // All eight loaded the session before the logout.
        loads.arrived(8).await;
        let writes = rec.gate_writes();
        loads.open();
        writes.arrived(1).await;
        rec.ungate();
        let res = A::call(&other, Req::post("/logout").cookie("session_id", &sid)).await;
        assert_eq!(res.status, 200);
        writes.open();
    };
    let (answers, ()) = futures_util::future::join(requests, conductor).await;
    for res in &answers {
        assert_eq!(res.status, 200, "{}", res.body);
        assert!(
            res.set_cookie("session_id").is_none(),
            "no id handed out after the logout"
        );
    }
    assert!(here.load_by_id(&sid).await.expect("load").is_none());
    let res = A::call(&app, Req::get("/read").cookie("session_id", &sid)).await;
    assert_eq!(res.body, "0", "the session stays logged out");
}

// ------------------------------------------- lifecycle under concurrency

/// Renewal after two minutes, idle timeout 30 minutes, over a recording
/// store with a manual clock; `instances` managers over them (instances of
/// the app share the store; commits of one session take turns only within
/// one instance, so races between instances are decided by the store).
fn renewing(
    store: Store,
    instances: usize,
) -> (RecordingStore, ManualClock, Vec<SessionManager<User>>) {
    let rec = RecordingStore::new(store.raw());
    let clock = ManualClock::new(T0);
    let config = || {
        Config::builder()
            .auto_renew_after(Duration::from_secs(120))
            .idle_timeout(Duration::from_secs(1800))
            .build()
            .expect("config")
    };
    let managers = (0..instances)
        .map(|_| clocked(Store::server(Arc::new(rec.clone())), config(), &clock))
        .collect();
    (rec, clock, managers)
}

/// `/all` with `sid`: `{visits},{user_id or 0},{name}`.
async fn all<A: Adapter>(app: &A::App, sid: &str) -> String {
    A::call(app, Req::get("/all").cookie("session_id", sid))
        .await
        .body
}

/// A logout while a request of the same session is in flight at renewal
/// time: the late request writes nothing, hands out no id, and the id it
/// tried to rotate to never holds the session.
pub async fn a_logout_racing_a_request_at_renewal_resurrects_nothing<A: Adapter>(store: Store) {
    let (rec, clock, managers) = renewing(store, 2);
    let other = app::<A>(managers[1].clone()).await;
    let app = app::<A>(managers[0].clone()).await;
    let a = A::call(&app, Req::post("/login")).await.sid();
    clock.advance(Duration::from_secs(180));

    let gate = rec.gate_writes();
    let slow = A::call(&app, Req::get("/visit").cookie("session_id", &a));
    let logout_then_release = async {
        gate.arrived(1).await;
        rec.ungate();
        let res = A::call(&other, Req::post("/logout").cookie("session_id", &a)).await;
        assert_eq!(res.set_cookie("session_id").expect("cleared").value(), "");
        gate.open();
    };
    let (slow, ()) = futures_util::future::join(slow, logout_then_release).await;
    assert_eq!(slow.status, 200);
    assert!(slow.set_cookie("session_id").is_none(), "no id handed out");
    let rotated = rec
        .take_calls()
        .iter()
        .filter_map(|c| c.as_write().cloned())
        .find_map(|w| match w.kind {
            sessionkit::store::WriteKind::Rotate { to, .. } => Some(to),
            _ => None,
        })
        .expect("the late request tried to rotate");
    for id in [a.as_str(), rotated.as_str()] {
        assert!(
            managers[0].load_by_id(id).await.expect("load").is_none(),
            "{id}"
        );
        assert_eq!(all::<A>(&app, id).await, "0,0,", "nobody's session");
    }
}

/// 8 requests of one session at renewal time over two app instances, all
/// loaded before any commits: all are served, all end on one new id, every
/// increment counts, and one logout ends both ids.
pub async fn parallel_requests_at_renewal_converge_on_one_id<A: Adapter>(store: Store) {
    let (rec, clock, managers) = renewing(store, 2);
    let other = app::<A>(managers[1].clone()).await;
    let app = app::<A>(managers[0].clone()).await;
    let a = A::call(&app, Req::post("/login")).await.sid();
    clock.advance(Duration::from_secs(180));

    let loads = rec.gate_loads();
    let writes = rec.gate_writes();
    let requests = futures_util::future::join_all((0..8).map(|i| {
        let app = if i % 2 == 0 { &app } else { &other };
        A::call(app, Req::get("/visit").cookie("session_id", &a))
    }));
    let conductor = async {
        loads.arrived(8).await;
        loads.open();
        writes.arrived(2).await;
        rec.ungate();
        writes.open();
    };
    let (answers, ()) = futures_util::future::join(requests, conductor).await;
    let mut ids: Vec<String> = answers
        .iter()
        .map(|res| {
            assert_eq!(res.status, 200, "{}", res.body);
            res.sid()
        })
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 1, "one new id: {ids:?}");
    let b = ids.remove(0);
    assert_ne!(b, a);
    assert_eq!(
        all::<A>(&app, &b).await,
        "8,1,",
        "logged in, all 8 visits counted"
    );
    // Within the grace period the old id serves the user and is told the new one.
    let res = A::call(&app, Req::get("/all").cookie("session_id", &a)).await;
    assert_eq!(res.body, "8,1,");
    assert_eq!(res.sid(), b);
    A::call(&app, Req::post("/logout").cookie("session_id", &b)).await;
    for id in [&a, &b] {
        assert_eq!(all::<A>(&app, id).await, "0,0,", "{id}");
    }
}

/// A logout sent with the old id during the grace period ends the renewed
/// session too.
pub async fn a_logout_with_the_old_id_ends_the_renewed_session<A: Adapter>(store: Store) {
    let (_, clock, managers) = renewing(store, 1);
    let app = app::<A>(managers[0].clone()).await;
    let a = A::call(&app, Req::post("/login")).await.sid();
    clock.advance(Duration::from_secs(180));
    let b = A::call(&app, Req::get("/visit").cookie("session_id", &a))
        .await
        .sid();
    assert_ne!(a, b);
    let res = A::call(&app, Req::post("/logout").cookie("session_id", &a)).await;
    assert_eq!(res.set_cookie("session_id").expect("cleared").value(), "");
    for id in [&a, &b] {
        assert_eq!(all::<A>(&app, id).await, "0,0,", "{id}");
    }
    assert!(managers[0].load_by_id(&b).await.expect("load").is_none());
}

/// A request with the pre-login id, in flight while a login rotates the id:
/// its write never reaches the logged-in session (fixation), and it does
/// not clear the cookie the login set.
pub async fn a_late_request_racing_a_login_never_reaches_it<A: Adapter>(store: Store) {
    let (rec, _, managers) = renewing(store, 2);
    let other = app::<A>(managers[1].clone()).await;
    let app = app::<A>(managers[0].clone()).await;
    let a = A::call(&app, Req::get("/visit")).await.sid();
    let gate = rec.gate_writes();
    let late = A::call(&app, Req::get("/visit").cookie("session_id", &a));
    let login = async {
        gate.arrived(1).await;
        rec.ungate();
        let b = A::call(&other, Req::post("/login").cookie("session_id", &a))
            .await
            .sid();
        gate.open();
        b
    };
    let (late, b) = futures_util::future::join(late, login).await;
    assert_eq!(late.status, 200);
    assert!(
        late.set_cookie("session_id").is_none(),
        "the login's cookie stays"
    );
    assert_eq!(
        all::<A>(&app, &b).await,
        "1,1,",
        "logged in, and the pre-login id's late write did not get in"
    );
    assert!(
        managers[0].load_by_id(&a).await.expect("load").is_none(),
        "the pre-login id is dead"
    );
}

/// A hung store behind `TimeoutStore`: the request gets the error
/// handler's 503 instead of hanging, and the app serves again once the
/// store answers in time (the failed request changed nothing).
pub async fn hung_store_gets_503_not_a_hang_and_recovers<A: Adapter>(store: Store) {
    let slow = RecordingStore::new(store.raw());
    let timed = sessionkit::timeout::TimeoutStore::new(slow.clone(), Duration::from_millis(100));
    let app = app::<A>(SessionManager::new(timed)).await;
    let res = A::call(&app, Req::get("/visit")).await;
    assert_eq!(res.status, 200);
    let sid = res.sid();

    // The store hangs (a minute per call): the request ends with the opaque
    // 503 once the 100 ms bound passes.
    slow.set_delay(Duration::from_secs(60));
    let res = A::call(&app, Req::get("/visit").cookie("session_id", &sid)).await;
    assert_eq!(res.status, 503);
    assert_eq!(res.body, "session storage unavailable");
    // Routes that do not touch the session are unaffected.
    assert_eq!(A::call(&app, Req::get("/plain")).await.status, 200);

    slow.set_delay(Duration::ZERO);
    let res = A::call(&app, Req::get("/visit").cookie("session_id", &sid)).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.body, "2");
}

// ---------------------------------------------------------------- failure policy

/// The id lookup of the failure-policy cases: an id would go out both as a
/// cookie and as a header.
const COOKIE_AND_HEADER: &str = "cookie:session_id,header:X-Session-ID";

/// Under `FailurePolicy::Anonymous` a failed load runs the handler with a
/// fresh, degraded session: `200`, no id sent or cleared, nothing written;
/// under the default `Fail` the same request gets the opaque `503`. The
/// client keeps its id, so its session is back with the store.
pub async fn anonymous_policy_serves_a_degraded_session_when_the_load_fails<A: Adapter>(
    store: Store,
) {
    let recording = RecordingStore::new(store.raw());
    let manager = manager(
        Store::server(Arc::new(recording.clone())),
        lookup(COOKIE_AND_HEADER),
    );
    let sid = stored_session(&manager, 1).await;
    let anonymous =
        A::build(AppSpec::new(manager.clone()).on_store_failure(FailurePolicy::Anonymous)).await;
    let failing = app::<A>(manager).await;
    recording.set_failing(true);
    recording.take_calls();

    let req = Req::get("/degraded")
        .cookie("session_id", &sid)
        .header("X-Session-ID", &sid);
    let res = A::call(&anonymous, req.clone()).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body, "1 degraded", "a fresh session");
    assert!(res.set_cookies().is_empty(), "{:?}", res.headers);
    assert!(res.header("x-session-id").is_none(), "{:?}", res.headers);
    assert_eq!(
        recording.take_calls(),
        [Call::Load(sid.clone())],
        "one failed load, nothing written"
    );

    let res = A::call(&failing, req).await;
    assert_eq!(res.status, 503);
    assert_eq!(res.body, "session storage unavailable");
    assert!(res.set_cookies().is_empty());
    assert!(res.header("x-session-id").is_none());

    recording.set_failing(false);
    let res = A::call(&anonymous, Req::get("/degraded").cookie("session_id", &sid)).await;
    assert_eq!(res.body, "2 normal", "the stored session, untouched");
}

/// Under `FailurePolicy::Anonymous` a failed save after the handler keeps
/// the handler's answer and sends no id (the default replaces it with the
/// `503`: `store_failure_on_save_replaces_the_handler_response`).
pub async fn anonymous_policy_keeps_the_response_when_the_save_fails<A: Adapter>(store: Store) {
    let recording = RecordingStore::new(store.raw());
    let manager = manager(
        Store::server(Arc::new(recording.clone())),
        lookup(COOKIE_AND_HEADER),
    );
    let app = A::build(AppSpec::new(manager).on_store_failure(FailurePolicy::Anonymous)).await;
    recording.set_failing(true);
    // No id: nothing to load, so the session is not degraded; the save fails.
    let res = A::call(&app, Req::get("/degraded")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body, "1 normal");
    assert!(res.set_cookies().is_empty(), "{:?}", res.headers);
    assert!(res.header("x-session-id").is_none(), "{:?}", res.headers);
    let calls = recording.take_calls();
    assert!(
        calls.len() == 1 && calls[0].as_write().is_some(),
        "one failed write: {calls:?}"
    );
}

/// While the store works, `FailurePolicy::Anonymous` changes nothing.
pub async fn anonymous_policy_with_a_working_store_changes_nothing<A: Adapter>(store: Store) {
    let manager = manager(store, lookup(COOKIE_AND_HEADER));
    let app = A::build(AppSpec::new(manager).on_store_failure(FailurePolicy::Anonymous)).await;
    let res = A::call(&app, Req::get("/degraded")).await;
    assert_eq!(res.body, "1 normal");
    let sid = res.sid();
    assert_eq!(res.header("x-session-id"), Some(sid.as_str()));
    assert_eq!(res.header("cache-control"), Some("no-store"));
    let res = A::call(&app, Req::get("/degraded").cookie("session_id", &sid)).await;
    assert_eq!(res.body, "2 normal");
    // A forged id still gets a fresh, stored session.
    let res = A::call(&app, Req::get("/degraded").cookie("session_id", FORGED)).await;
    assert_eq!(res.body, "1 normal");
    assert_ne!(res.sid(), FORGED);
}

/// Only store failures are softened: other session errors still fail.
pub async fn anonymous_policy_never_hides_other_errors<A: Adapter>(store: Store) {
    let config = Config::builder()
        .max_session_bytes(4usize)
        .build()
        .expect("config");
    let spec = AppSpec::new(manager(store, config)).on_store_failure(FailurePolicy::Anonymous);
    let app = A::build(spec).await;
    let res = A::call(&app, Req::post("/login")).await;
    assert_eq!(res.status, 500);
    assert_eq!(res.body, "session error");
    assert!(res.set_cookies().is_empty());
}

/// The header-mapping layer under an anonymous-policy session layer: while
/// the store is down the downstream service gets no session headers (and
/// none of the client's copies), and the client's id is left alone.
pub async fn anonymous_policy_maps_no_session_headers_while_the_store_is_down<A: Adapter>(
    store: Store,
) {
    let (recording, manager) = recording(store);
    let spec = AppSpec::with(manager, Layout::Gateway(HeaderMapping::from_derive()))
        .on_store_failure(FailurePolicy::Anonymous);
    let app = A::build(spec).await;
    let sid = login::<A>(&app, "/login").await;
    // A spoofed value that cannot occur in the session id (on the cookie line).
    let req = Req::get("/dashboard")
        .cookie("session_id", &sid)
        .header("X-User-Id", "spoofed");
    let seen = A::call(&app, req.clone()).await.body;
    assert!(seen.contains("x-user-id: 42"), "{seen}");

    recording.set_failing(true);
    let res = A::call(&app, req.clone()).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert!(res.set_cookies().is_empty());
    assert!(!res.body.contains("x-user"), "{}", res.body);
    assert!(!res.body.contains("spoofed"), "{}", res.body);

    recording.set_failing(false);
    let seen = A::call(&app, req).await.body;
    assert!(
        seen.contains("x-user-id: 42"),
        "the session is back: {seen}"
    );
}

/// Behind an open `CircuitBreaker`, anonymous-policy routes stay up without
/// asking the store, `Fail` routes answer `503` at once, and both serve the
/// stored session again once a probe succeeds.
pub async fn anonymous_policy_behind_an_open_breaker_asks_the_store_nothing<A: Adapter>(
    store: Store,
) {
    let recording = RecordingStore::new(store.raw());
    let breaker = CircuitBreaker::with_config(
        recording.clone(),
        BreakerConfig::default()
            .with_failure_threshold(2)
            .with_cool_down(Duration::from_millis(50)),
    );
    let manager = SessionManager::new(breaker.clone());
    let sid = stored_session(&manager, 1).await;
    let public =
        A::build(AppSpec::new(manager.clone()).on_store_failure(FailurePolicy::Anonymous)).await;
    let private = app::<A>(manager).await;
    let read = || Req::get("/read").cookie("session_id", &sid);
    let degraded = || Req::get("/degraded").cookie("session_id", &sid);

    recording.set_failing(true);
    for _ in 0..2 {
        assert_eq!(A::call(&private, read()).await.status, 503);
    }
    assert_eq!(breaker.state(), BreakerState::Open);
    recording.take_calls();
    let res = A::call(&public, degraded()).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body, "1 degraded");
    assert!(res.set_cookies().is_empty(), "{:?}", res.headers);
    let res = A::call(&private, read()).await;
    assert_eq!(res.status, 503);
    assert_eq!(res.body, "session storage unavailable");
    let calls = recording.take_calls();
    assert!(
        calls.is_empty(),
        "the open breaker asked the store: {calls:?}"
    );

    recording.set_failing(false);
    tokio::time::sleep(Duration::from_millis(80)).await;
    let res = A::call(&private, read()).await;
    assert_eq!(res.status, 200, "the probe closes the breaker");
    assert_eq!(res.body, "1");
    assert_eq!(breaker.state(), BreakerState::Closed);
    let res = A::call(&public, degraded()).await;
    assert_eq!(res.body, "2 normal");
}

// ---------------------------------------------------------------- CSRF

fn csrf_manager(store: Store) -> SessionManager<User> {
    store
        .builder()
        .csrf(Csrf::default().exempt_prefix("/bump/"))
        .build()
        .expect("valid config")
}

/// A new session with a CSRF secret: its id and a token.
async fn csrf_session<A: Adapter>(app: &A::App) -> (String, String) {
    let res = A::call(app, Req::get("/token")).await;
    assert_eq!(res.status, 200, "{}", res.body);
    (res.sid(), res.body)
}

/// `POST /form` of session `sid` with the urlencoded `body`.
fn form_of(sid: &str, body: &str) -> Req {
    Req::post("/form").cookie("session_id", sid).form(body)
}

async fn visits_of<A: Adapter>(app: &A::App, sid: &str) -> String {
    A::call(app, Req::get("/read").cookie("session_id", sid))
        .await
        .body
}

/// No token: `403` with a message that says what to add, `no-store`, and
/// the handler never ran.
pub async fn csrf_a_post_without_a_token_is_refused_before_the_handler<A: Adapter>(store: Store) {
    let app = app::<A>(csrf_manager(store)).await;
    let (sid, _) = csrf_session::<A>(&app).await;
    let res = A::call(&app, form_of(&sid, "item=apple")).await;
    assert_eq!(res.status, 403, "{}", res.body);
    assert!(res.body.contains("csrf_token"), "{}", res.body);
    assert!(res.body.contains("X-CSRF-Token"), "{}", res.body);
    assert_eq!(res.header("cache-control"), Some("no-store"));
    assert_eq!(visits_of::<A>(&app, &sid).await, "0", "the handler ran");
    let res = A::call(&app, Req::post("/logout").cookie("session_id", &sid)).await;
    assert_eq!(res.status, 403, "{}", res.body);
    assert!(res.set_cookies().is_empty(), "the reset never happened");
}

pub async fn csrf_a_form_token_passes_and_the_body_reaches_the_handler<A: Adapter>(store: Store) {
    let app = app::<A>(csrf_manager(store)).await;
    let (sid, token) = csrf_session::<A>(&app).await;
    let res = A::call(
        &app,
        form_of(&sid, &format!("item=apple&csrf_token={token}")),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body, "1 apple");
}

pub async fn csrf_a_token_of_another_session_is_refused<A: Adapter>(store: Store) {
    let app = app::<A>(csrf_manager(store)).await;
    let (_, theirs) = csrf_session::<A>(&app).await;
    let (mine, _) = csrf_session::<A>(&app).await;
    let res = A::call(&app, form_of(&mine, &format!("item=x&csrf_token={theirs}"))).await;
    assert_eq!(res.status, 403, "{}", res.body);
    assert!(res.body.contains("does not match"), "{}", res.body);
    // Nor a token for a session that has no secret yet, or none at all.
    let plain = A::call(&app, Req::get("/visit")).await.sid();
    let res = A::call(
        &app,
        form_of(&plain, &format!("item=x&csrf_token={theirs}")),
    )
    .await;
    assert_eq!(res.status, 403, "{}", res.body);
    let res = A::call(
        &app,
        Req::post("/form").form(&format!("item=x&csrf_token={theirs}")),
    )
    .await;
    assert_eq!(res.status, 403, "{}", res.body);
    assert_eq!(visits_of::<A>(&app, &mine).await, "0");
}

/// Sign-in (`regenerate`) replaces the secret: a page from before it no
/// longer posts, a page from after it does.
pub async fn csrf_a_token_from_before_sign_in_is_refused_after_it<A: Adapter>(store: Store) {
    let app = app::<A>(csrf_manager(store)).await;
    let (sid, before) = csrf_session::<A>(&app).await;
    let login = Req::post("/login")
        .cookie("session_id", &sid)
        .header("X-CSRF-Token", &before);
    let res = A::call(&app, login).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let signed_in = res.sid();
    assert_ne!(signed_in, sid);
    let res = A::call(
        &app,
        form_of(&signed_in, &format!("item=x&csrf_token={before}")),
    )
    .await;
    assert_eq!(res.status, 403, "{}", res.body);
    let res = A::call(&app, Req::get("/token").cookie("session_id", &signed_in)).await;
    assert_eq!(res.status, 200);
    let after = res.body;
    let res = A::call(
        &app,
        form_of(&signed_in, &format!("item=x&csrf_token={after}")),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    // Sign-out (`reset`) too.
    let res = A::call(
        &app,
        Req::post("/logout")
            .cookie("session_id", &signed_in)
            .header("X-CSRF-Token", &after),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let res = A::call(
        &app,
        form_of(&signed_in, &format!("item=x&csrf_token={after}")),
    )
    .await;
    assert_eq!(res.status, 403, "{}", res.body);
}

/// Masking is not one-time: a token works as often as it is sent, and
/// every token handed out works.
pub async fn csrf_a_replayed_masked_token_is_accepted<A: Adapter>(store: Store) {
    let app = app::<A>(csrf_manager(store)).await;
    let (sid, first) = csrf_session::<A>(&app).await;
    let second = A::call(&app, Req::get("/token").cookie("session_id", &sid))
        .await
        .body;
    assert_ne!(first, second, "masked per call");
    for token in [&first, &first, &second, &first] {
        let res = A::call(&app, form_of(&sid, &format!("item=x&csrf_token={token}"))).await;
        assert_eq!(res.status, 200, "{}", res.body);
    }
    assert_eq!(visits_of::<A>(&app, &sid).await, "4");
}

pub async fn csrf_the_header_token_is_accepted<A: Adapter>(store: Store) {
    let app = app::<A>(csrf_manager(store)).await;
    let (sid, token) = csrf_session::<A>(&app).await;
    let res = A::call(
        &app,
        form_of(&sid, "item=pear").header("X-CSRF-Token", &token),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body, "1 pear");
    // Any case of the header name; no body at all.
    let res = A::call(
        &app,
        Req::post("/logout")
            .cookie("session_id", &sid)
            .header("x-csrf-token", &token),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    // A wrong header is not rescued by a right form field.
    let (sid, token) = csrf_session::<A>(&app).await;
    let res = A::call(
        &app,
        form_of(&sid, &format!("item=x&csrf_token={token}")).header("X-CSRF-Token", "nope"),
    )
    .await;
    assert_eq!(res.status, 403, "{}", res.body);
}

pub async fn csrf_exempt_routes_are_not_checked<A: Adapter>(store: Store) {
    let app = app::<A>(csrf_manager(store)).await;
    let (sid, _) = csrf_session::<A>(&app).await;
    let res = A::call(
        &app,
        Req::post("/bump/visits")
            .cookie("session_id", &sid)
            .header("Sec-Fetch-Site", "cross-site"),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(visits_of::<A>(&app, &sid).await, "1");
}

pub async fn csrf_safe_methods_are_never_checked<A: Adapter>(store: Store) {
    let app = app::<A>(csrf_manager(store)).await;
    let (sid, _) = csrf_session::<A>(&app).await;
    let res = A::call(
        &app,
        Req::get("/visit")
            .cookie("session_id", &sid)
            .header("Sec-Fetch-Site", "cross-site")
            .header("Origin", "http://evil.example"),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body, "1");
}

/// Fetch Metadata and `Origin` are checked before the token (on by default).
pub async fn csrf_cross_site_and_foreign_origin_are_refused_even_with_a_token<A: Adapter>(
    store: Store,
) {
    let app = app::<A>(csrf_manager(store)).await;
    let (sid, token) = csrf_session::<A>(&app).await;
    let post = || form_of(&sid, &format!("item=x&csrf_token={token}"));
    let res = A::call(&app, post().header("Sec-Fetch-Site", "cross-site")).await;
    assert_eq!(res.status, 403, "{}", res.body);
    assert!(res.body.contains("cross-site"), "{}", res.body);
    let foreign = post()
        .header("Host", "shop.example")
        .header("Origin", "http://evil.example");
    let res = A::call(&app, foreign).await;
    assert_eq!(res.status, 403, "{}", res.body);
    assert!(res.body.contains("another origin"), "{}", res.body);
    let own = post()
        .header("Host", "shop.example")
        .header("Origin", "http://shop.example")
        .header("Sec-Fetch-Site", "same-origin");
    let res = A::call(&app, own).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(visits_of::<A>(&app, &sid).await, "1");
}

/// A page without forms stays free: no secret, no session; the first token
/// asked for starts one.
pub async fn csrf_a_page_without_forms_starts_no_session<A: Adapter>(store: Store) {
    let (recording, manager) = {
        let recording = RecordingStore::new(store.raw());
        let manager = csrf_manager(Store::server(Arc::new(recording.clone())));
        (recording, manager)
    };
    let app = app::<A>(manager).await;
    let res = A::call(&app, Req::get("/read")).await;
    assert_eq!(res.status, 200);
    assert!(res.set_cookies().is_empty(), "{:?}", res.headers);
    assert_eq!(recording.take_calls(), []);
    let res = A::call(&app, Req::get("/token")).await;
    assert_eq!(res.status, 200);
    assert!(
        res.set_cookie("session_id").is_some(),
        "the secret is stored"
    );
}

/// Refused on its headers (no token, cross-site): the store is never asked.
pub async fn csrf_a_refusal_on_headers_costs_no_store_call<A: Adapter>(store: Store) {
    let recording = RecordingStore::new(store.raw());
    let app = app::<A>(csrf_manager(Store::server(Arc::new(recording.clone())))).await;
    let (sid, token) = csrf_session::<A>(&app).await;
    recording.take_calls();
    let res = A::call(&app, form_of(&sid, "item=x")).await;
    assert_eq!(res.status, 403);
    let cross =
        form_of(&sid, &format!("item=x&csrf_token={token}")).header("Sec-Fetch-Site", "cross-site");
    assert_eq!(A::call(&app, cross).await.status, 403);
    assert_eq!(recording.take_calls(), []);
}

/// With [`AppSpec::custom_errors`], the CSRF rejection handler answers
/// `418` and `refused: {reason}`.
pub async fn csrf_custom_rejection_handler_answers<A: Adapter>(store: Store) {
    let mut spec = AppSpec::new(csrf_manager(store));
    spec.custom_errors = true;
    let app = A::build(spec).await;
    let res = A::call(&app, Req::post("/logout")).await;
    assert_eq!(res.status, 418, "{}", res.body);
    assert!(res.body.starts_with("refused: "), "{}", res.body);
    assert!(res.body.contains("CSRF token missing"), "{}", res.body);
}

// ---------------------------------------------------------------- flash

pub async fn flash_a_notice_shows_once<A: Adapter>(store: Store) {
    let app = app::<A>(manager(store, Config::default())).await;
    let res = A::call(&app, Req::post("/flash")).await;
    assert_eq!(res.status, 200);
    let sid = res.sid();
    let notice = || Req::get("/notice").cookie("session_id", &sid);
    assert_eq!(A::call(&app, notice()).await.body, "saved");
    assert_eq!(A::call(&app, notice()).await.body, "none");
    // Reading no notice costs a load and no write.
    let res = A::call(&app, notice()).await;
    assert_eq!(res.body, "none");
    assert!(res.set_cookies().is_empty(), "{:?}", res.headers);
}

/// Two tabs load the page with the notice at once: one shows it.
pub async fn flash_two_concurrent_readers_never_both_get_it<A: Adapter>(store: Store) {
    let config = no_renewal();
    let app = app::<A>(manager(store, config)).await;
    for _ in 0..5 {
        let res = A::call(&app, Req::post("/flash")).await;
        let sid = res.sid();
        let notice = || A::call(&app, Req::get("/notice").cookie("session_id", &sid));
        let (a, b) = futures_util::future::join(notice(), notice()).await;
        assert_eq!((a.status, b.status), (200, 200), "{} {}", a.body, b.body);
        let shown = [&a.body, &b.body].iter().filter(|b| **b == "saved").count();
        assert_eq!(shown, 1, "{} / {}", a.body, b.body);
    }
}
