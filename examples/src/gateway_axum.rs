//! The gateway example on axum: the same HTTP contract as
//! [`gateway`](crate::gateway) (routes, bodies, status codes, cookies,
//! environment, the downstream echo service, forwarding with mapped
//! headers, `GET /metrics`, `/public/*` kept up with an anonymous session
//! while the store is down, one request span carrying the session id's
//! fingerprint), with `sessionkit-axum` in place of `sessionkit-actix`. The
//! session type, the YAML config, the store selection (Redis behind a
//! circuit breaker), the Prometheus exporter and the request span are
//! shared.
//!
//! `cargo run --example gateway-axum` runs [`run_from_env`].

use std::collections::BTreeMap;
use std::future::IntoFuture;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::FormRejection;
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::{from_fn, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use serde_json::json;
use sessionkit::store::SessionStore;
use sessionkit::{FailurePolicy, HeaderMapConfig, SessionManager};
use sessionkit_axum::{MapSessionToHeader, Session, SessionExt, SessionLayer};
use tracing::Instrument;

use crate::gateway::{
    install_prometheus, is_hop_by_hop, note_named_storage, per_user, request_served, request_span,
    GatewayConfig, GatewayEnv, GatewayError, GatewaySession, GatewaySessionSessionExt,
    METRICS_CONTENT_TYPE,
};

/// Everything the axum gateway needs; cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    session: SessionLayer<GatewaySession>,
    /// The same manager for `/public/*`, where a store failure gives an
    /// anonymous session instead of a 503.
    public_session: SessionLayer<GatewaySession>,
    headers: MapSessionToHeader<GatewaySession>,
    downstream: Arc<str>,
    metrics: Option<PrometheusHandle>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("session", &self.session)
            .field("headers", &self.headers)
            .field("downstream", &self.downstream)
            .field("metrics", &self.metrics.is_some())
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Checks `config` (an unknown header-map field is an error here, at
    /// start-up) and builds the layers.
    ///
    /// # Errors
    /// [`GatewayError::Config`] or [`GatewayError::Headers`].
    pub fn new(
        config: &GatewayConfig,
        store: impl SessionStore,
        downstream: impl Into<String>,
    ) -> Result<Self, GatewayError> {
        let manager = SessionManager::builder(store)
            .config(config.session.clone())
            .build()?;
        Self::with_manager(manager, &config.headers, downstream)
    }

    /// As [`Gateway::new`], with a manager built by the caller (tests inject a clock).
    ///
    /// # Errors
    /// [`GatewayError::Headers`].
    pub fn with_manager(
        manager: SessionManager<GatewaySession>,
        headers: &HeaderMapConfig,
        downstream: impl Into<String>,
    ) -> Result<Self, GatewayError> {
        note_named_storage(manager.config());
        Ok(Self {
            public_session: SessionLayer::builder(manager.clone())
                .on_store_failure(FailurePolicy::Anonymous)
                .build(),
            session: SessionLayer::new(manager),
            headers: MapSessionToHeader::with_config(headers)?,
            downstream: downstream.into().trim_end_matches('/').into(),
            metrics: None,
        })
    }

    /// Serves `GET /metrics` from `handle` (Prometheus text format);
    /// without it `/metrics` is `404`.
    #[must_use]
    pub fn with_metrics(mut self, handle: PrometheusHandle) -> Self {
        self.metrics = Some(handle);
        self
    }
}

/// The forwarding client and where it forwards to.
#[derive(Clone)]
struct Forwarder {
    client: Client<HttpConnector, Full<Bytes>>,
    downstream: Arc<str>,
}

/// The gateway app.
pub fn gateway_router(gateway: Gateway) -> Router {
    let forwarder = Forwarder {
        client: Client::builder(TokioExecutor::new()).build_http(),
        downstream: Arc::clone(&gateway.downstream),
    };
    let forwarded = |prefix: &str| {
        Router::new()
            .route(prefix, get(forward))
            .route(&format!("{prefix}/{{*tail}}"), get(forward))
            .with_state(forwarder.clone())
    };
    let with_session = Router::new()
        .route("/", get(index))
        .route("/cart/add", post(cart_add))
        .route("/cart", get(cart))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/sessions", get(sessions))
        .route("/sessions/revoke", post(revoke_session))
        .route("/logout-others", post(logout_others))
        .route("/logout-everywhere", post(logout_everywhere))
        .route("/api/data", get(api_data))
        .merge(
            forwarded("/dashboard")
                // Added inner to outer: headers mapped, then auth checked,
                // the session (this router's layer) outside both.
                .layer(gateway.headers.clone())
                .layer(from_fn(require_auth)),
        )
        .layer(gateway.session);
    // Public pages stay up while the store is down: an anonymous session.
    let public = forwarded("/public")
        .layer(gateway.headers)
        .layer(gateway.public_session);
    let metrics = gateway.metrics;
    let routes = Router::new()
        .route("/metrics", get(move || metrics_text(metrics.clone())))
        .merge(public)
        .merge(with_session)
        // Set after the merges: a merged router's fallback keeps that
        // router's layers, and an unknown path must not load a session
        // (nor ask for a login), as on the actix gateway.
        .fallback(not_found);
    // Outermost, and around the fallback too: a path with a dot segment is
    // never routed (the same rule as the actix gateway); outside it, one
    // span per request.
    Router::new()
        .fallback_service(routes)
        .layer(from_fn(reject_dot_segments))
        .layer(from_fn(trace_requests))
}

/// An unknown path: `404`, empty body, as actix answers it.
async fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, String::new())
}

/// `GET /metrics`: every metric in the Prometheus text format.
async fn metrics_text(handle: Option<PrometheusHandle>) -> Response {
    match handle {
        Some(handle) => {
            let mut res = text(StatusCode::OK, handle.render());
            res.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(METRICS_CONTENT_TYPE));
            res
        }
        None => text(StatusCode::NOT_FOUND, String::new()),
    }
}

/// One `tracing` span per request, as the actix gateway's
/// [`trace_requests`](crate::gateway::trace_requests): `request`, with the
/// method, the path without its query, the status, and `session` (the
/// fingerprint of the session id, never the id itself); one `info` line
/// when the response is ready.
pub async fn trace_requests(req: Request, next: Next) -> Response {
    let span = request_span(req.method().as_str(), req.uri().path());
    let res = next.run(req).instrument(span.clone()).await;
    request_served(&span, res.status().as_u16());
    res
}

/// Refuses, with `400 {"error": "Bad request"}`, every request whose path
/// [`has_dot_segment`](crate::gateway::has_dot_segment), before routing.
pub async fn reject_dot_segments(req: Request, next: Next) -> Response {
    if crate::gateway::has_dot_segment(req.uri().path()) {
        let body = Json(json!({ "error": "Bad request" }));
        return (StatusCode::BAD_REQUEST, body).into_response();
    }
    next.run(req).await
}

/// A body without a `Content-Type`, as actix's `HttpResponse::body` sends.
fn text(status: StatusCode, body: String) -> Response {
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    res
}

async fn index(session: Session<GatewaySession>) -> Response {
    let visits = session.update_visits(|v| {
        *v += 1;
        *v
    });
    text(StatusCode::OK, format!("Visits: {visits}"))
}

/// A form that does not parse: `400` with the text actix's `web::Form`
/// answers (so clients see one contract).
fn bad_form(rejection: &FormRejection) -> Response {
    let body = match rejection {
        FormRejection::InvalidFormContentType(_) => "Content type error".to_owned(),
        other => {
            let text = other.body_text();
            let cause = [
                "Failed to deserialize form body: ",
                "Failed to deserialize form: ",
            ]
            .iter()
            .find_map(|prefix| text.strip_prefix(prefix))
            .unwrap_or(&text);
            format!("Parse error: {cause}.")
        }
    };
    let mut res = text(StatusCode::BAD_REQUEST, body);
    res.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

#[derive(Deserialize)]
struct CartForm {
    item_id: String,
}

async fn cart_add(
    session: Session<GatewaySession>,
    form: Result<Form<CartForm>, FormRejection>,
) -> Response {
    let form = match form {
        Ok(Form(form)) => form,
        Err(rejection) => return bad_form(&rejection),
    };
    // A closure, so concurrent adds to one cart are all kept (it may run
    // again on a fresher cart at commit).
    let item = form.item_id;
    let items = session.update_cart(move |cart| {
        cart.push(item.clone());
        cart.len()
    });
    Json(json!({ "items": items })).into_response()
}

async fn cart(session: Session<GatewaySession>) -> Response {
    Json(json!({ "items": session.cart() })).into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
}

async fn login(
    session: Session<GatewaySession>,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let form = match form {
        Ok(Form(form)) => form,
        Err(rejection) => return bad_form(&rejection),
    };
    if form.email != "user@example.com" || form.password != "password" {
        let body = Json(json!({ "error": "Invalid credentials" }));
        return (StatusCode::UNAUTHORIZED, body).into_response();
    }
    // A new id on login: a pre-login id (maybe planted) is worthless afterwards.
    if session.regenerate().is_err() {
        let body = Json(json!({ "error": "Session error" }));
        return (StatusCode::INTERNAL_SERVER_ERROR, body).into_response();
    }
    session.set_user_id(Some(1));
    session.set_authenticated(true);
    session.set_authorization(Some("Bearer demo-token-1".to_owned()));
    Json(json!({ "status": "logged in" })).into_response()
}

async fn logout(session: Session<GatewaySession>) -> Response {
    if session.reset().is_err() {
        let body = Json(json!({ "error": "Session error" }));
        return (StatusCode::INTERNAL_SERVER_ERROR, body).into_response();
    }
    Json(json!({ "status": "logged out" })).into_response()
}

fn answer((status, body): (u16, serde_json::Value)) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(body)).into_response()
}

/// `GET /sessions` ([`per_user::list`]).
async fn sessions(session: Session<GatewaySession>) -> Response {
    answer(per_user::list(&session).await)
}

#[derive(Deserialize)]
struct RevokeForm {
    handle: String,
}

/// `POST /sessions/revoke` ([`per_user::revoke`]).
async fn revoke_session(
    session: Session<GatewaySession>,
    form: Result<Form<RevokeForm>, FormRejection>,
) -> Response {
    match form {
        Ok(Form(form)) => answer(per_user::revoke(&session, &form.handle).await),
        Err(rejection) => bad_form(&rejection),
    }
}

/// `POST /logout-others` ([`per_user::logout_others`]).
async fn logout_others(session: Session<GatewaySession>) -> Response {
    answer(per_user::logout_others(&session).await)
}

/// `POST /logout-everywhere` ([`per_user::logout_everywhere`]).
async fn logout_everywhere(session: Session<GatewaySession>) -> Response {
    answer(per_user::logout_everywhere(&session).await)
}

async fn api_data(session: Session<GatewaySession>) -> Response {
    let calls = session.update_api_calls(|c| {
        *c += 1;
        *c
    });
    Json(json!({ "calls": calls, "session_id": session.manager().client_id(&session.id()) }))
        .into_response()
}

/// The "Authentication Middleware" of the Fiber reference: `401` unless the
/// session says the user logged in.
pub async fn require_auth(req: Request, next: Next) -> Response {
    match req.session::<GatewaySession>().await {
        Ok(session) if session.authenticated() => next.run(req).await,
        Ok(_) => {
            let body = Json(json!({ "error": "Unauthorized" }));
            (StatusCode::UNAUTHORIZED, body).into_response()
        }
        Err(rejection) => rejection.into_response(),
    }
}

fn bad_gateway() -> Response {
    let body = Json(json!({ "error": "Bad gateway" }));
    (StatusCode::BAD_GATEWAY, body).into_response()
}

/// The largest downstream answer passed on (as the actix gateway).
const ANSWER_LIMIT: usize = 1024 * 1024;

/// Forwards the request (headers already mapped) to the downstream service
/// and returns its answer.
async fn forward(State(forwarder): State<Forwarder>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(body) => body.to_bytes(),
        Err(error) => {
            tracing::warn!(%error, "request body unreadable");
            return text(StatusCode::BAD_REQUEST, String::new());
        }
    };
    let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let Ok(uri) = format!("{}{path}", forwarder.downstream).parse::<Uri>() else {
        return bad_gateway();
    };
    let length = HeaderValue::from(body.len());
    let mut out = Request::new(Full::new(body));
    *out.method_mut() = parts.method;
    *out.uri_mut() = uri;
    copy_headers(&parts.headers, out.headers_mut());
    // Always sent, `0` included, as the actix gateway's client does.
    out.headers_mut().insert(CONTENT_LENGTH, length);
    let answer = match forwarder.client.request(out).await {
        Ok(answer) => answer,
        Err(error) => {
            tracing::warn!(%error, "downstream service unreachable");
            return bad_gateway();
        }
    };
    let (head, body) = answer.into_parts();
    let body = match Limited::new(body, ANSWER_LIMIT).collect().await {
        Ok(body) => body.to_bytes(),
        Err(error) => {
            tracing::warn!(%error, "downstream answer unreadable");
            return bad_gateway();
        }
    };
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = head.status;
    copy_headers(&head.headers, res.headers_mut());
    res
}

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from.iter().filter(|(n, _)| !is_hop_by_hop(n.as_str())) {
        to.append(name.clone(), value.clone());
    }
}

/// The downstream "dashboard service": answers every request with what it
/// received, `{"path": "...", "headers": {name: value}}`; a header received
/// several times appears once, its values joined with `, `.
pub fn dashboard_router() -> Router {
    Router::new().fallback(echo)
}

async fn echo(uri: Uri, headers: HeaderMap) -> Response {
    let mut joined: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in &headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        joined
            .entry(name.as_str().to_ascii_lowercase())
            .and_modify(|all| {
                all.push_str(", ");
                all.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    Json(json!({ "path": uri.path(), "headers": joined })).into_response()
}

/// Runs the axum gateway as [`crate::gateway::run_from_env`] runs the actix
/// one: `127.0.0.1:$PORT` (8080), the dashboard service on
/// `127.0.0.1:$DOWNSTREAM_PORT` (8081), `SESSIONKIT_CONFIG`, `REDIS_URL`,
/// `DATABASE_URL`.
///
/// # Errors
/// [`GatewayError`] when the configuration is refused or a port cannot be bound.
pub async fn run_from_env() -> Result<(), GatewayError> {
    let env = GatewayEnv::read().await?;
    let downstream_url = env.downstream_url();
    let gateway = Gateway::with_manager(env.manager()?, &env.config.headers, downstream_url)?
        .with_metrics(install_prometheus()?);
    let downstream = tokio::net::TcpListener::bind(("127.0.0.1", env.downstream_port)).await?;
    let front = tokio::net::TcpListener::bind(("127.0.0.1", env.port)).await?;
    tracing::info!(
        "gateway (axum) on http://127.0.0.1:{}, dashboard service on http://127.0.0.1:{}",
        env.port,
        env.downstream_port
    );
    let downstream = axum::serve(downstream, dashboard_router());
    let front = axum::serve(front, gateway_router(gateway));
    tokio::try_join!(downstream.into_future(), front.into_future())?;
    Ok(())
}
