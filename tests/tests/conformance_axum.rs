//! The HTTP conformance suite through `sessionkit-axum`, on the memory
//! store, Redis and the Redis Cluster; plus what only axum has.

use std::collections::HashMap;
use std::future::Future;

use axum::body::Body;
use axum::extract::{Path, Request};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Form, Router};
use http_body_util::BodyExt;
use sessionkit::{HeaderMapConfig, HeaderMapError, HeaderMapping};
use sessionkit_axum::{MapSessionToHeader, Session, SessionExt, SessionLayer};
use sessionkit_tests::conformance::{Adapter, AppSpec, Layout, Req, Res, User, UserSessionExt};
use tower::ServiceExt;

/// `sessionkit-axum` as the suite drives it.
struct Axum;

impl Adapter for Axum {
    type App = Router;

    fn block_on(test: impl Future<Output = ()>) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(test);
    }

    async fn build(spec: AppSpec) -> Router {
        let AppSpec {
            manager,
            layout,
            form_limit,
            custom_errors,
            failure_policy,
        } = spec;
        let mut builder = SessionLayer::builder(manager).on_store_failure(failure_policy);
        if let Some(limit) = form_limit {
            builder = builder.form_limit(limit);
        }
        if custom_errors {
            builder = builder
                .error_handler(|error, req| {
                    let body = format!(
                        "down for {} (store: {})",
                        req.path(),
                        matches!(error, sessionkit::SessionError::Store(_))
                    );
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        [("Retry-After", "7")],
                        body,
                    )
                        .into_response()
                })
                .csrf_rejection_handler(|rejection, _req| {
                    (StatusCode::IM_A_TEAPOT, format!("refused: {rejection}")).into_response()
                });
        }
        let session = builder.build();
        match layout {
            Layout::Standard => routes().layer(session),
            Layout::NoSession => routes(),
            Layout::ParamScope => Router::new()
                .route("/s/{sid}/visit", get(visit))
                .layer(session),
            Layout::Nested { inner } => Router::new()
                .nest(
                    "/in",
                    Router::new()
                        .route("/visit", get(visit))
                        .layer(SessionLayer::new(inner)),
                )
                .layer(session),
            Layout::Gateway(map) => Router::new()
                .route("/login", post(gateway_login))
                .route("/name/{name}", post(set_name))
                .merge(
                    Router::new()
                        .route("/dashboard", any(downstream))
                        .route("/dashboard/{*rest}", any(downstream))
                        .layer(MapSessionToHeader::new(map)),
                )
                .layer(session),
            Layout::MappingWithoutSession(map) => Router::new()
                .fallback(downstream)
                .layer(MapSessionToHeader::new(map)),
        }
    }

    async fn call(app: &Router, req: Req) -> Res {
        let mut builder = Request::builder()
            .method(Method::from_bytes(req.method.as_bytes()).expect("method"))
            .uri(&req.uri);
        for (name, value) in &req.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let request = builder.body(Body::from(req.body)).expect("request");
        let res = match app.clone().oneshot(request).await {
            Ok(res) => res,
            Err(never) => match never {},
        };
        let status = res.status().as_u16();
        let headers = res
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = res.into_body().collect().await.expect("body").to_bytes();
        Res {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    fn map_with_config(config: &HeaderMapConfig) -> Result<(), HeaderMapError> {
        MapSessionToHeader::<User>::with_config(config).map(drop)
    }
}

// ---------------------------------------------------------------- routes

fn routes() -> Router {
    Router::new()
        .route("/plain", get(plain))
        .route("/visit", get(visit))
        .route("/read", get(read))
        .route("/token", get(token))
        .route("/flash", post(flash))
        .route("/notice", get(notice))
        .route("/id", get(id))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/destroy", post(destroy))
        .route("/cached", get(cached))
        .route("/form", post(form_echo))
        .route("/echo", get(echo))
        .route("/twice", get(twice))
        .route("/bump/{field}", post(bump))
        .route("/all", get(all))
        .route("/degraded", get(degraded))
}

async fn degraded(session: Session<User>) -> String {
    let n = session.update_visits(|v| {
        *v += 1;
        *v
    });
    let state = if session.degraded() {
        "degraded"
    } else {
        "normal"
    };
    format!("{n} {state}")
}

async fn bump(session: Session<User>, Path(field): Path<String>) -> StatusCode {
    match field.as_str() {
        "visits" => session.update_visits(|v| *v += 1),
        "user_id" => session.update_user_id(|id| *id = Some(id.unwrap_or(0) + 1)),
        "name" => session.update_name(|name| name.get_or_insert_with(String::new).push('x')),
        _ => return StatusCode::NOT_FOUND,
    }
    StatusCode::OK
}

async fn all(session: Session<User>) -> String {
    let user = session.snapshot();
    format!(
        "{},{},{}",
        user.visits,
        user.user_id.unwrap_or(0),
        user.name.unwrap_or_default()
    )
}

async fn plain() -> &'static str {
    "plain"
}

async fn visit(session: Session<User>) -> String {
    session
        .update_visits(|v| {
            *v += 1;
            *v
        })
        .to_string()
}

async fn read(session: Session<User>) -> String {
    session.visits().to_string()
}

async fn token(session: Session<User>) -> Response {
    match session.csrf_token() {
        Ok(token) => token.into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn flash(session: Session<User>) {
    session.flash_notice("saved".to_owned());
}

async fn notice(session: Session<User>) -> Response {
    match session.take_notice().await {
        Ok(notice) => notice.unwrap_or_else(|| "none".to_owned()).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn id(session: Session<User>) -> String {
    session.id().to_string()
}

async fn login(session: Session<User>) -> Response {
    if session.regenerate().is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    session.set_user_id(Some(1));
    session.set_authenticated(true);
    session.id().to_string().into_response()
}

async fn logout(session: Session<User>) -> Response {
    if session.reset().is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    "logged out".into_response()
}

async fn destroy(session: Session<User>) -> &'static str {
    session.destroy();
    "destroyed"
}

async fn cached(session: Session<User>) -> impl IntoResponse {
    // A visit only when there is none yet: on a stored session, a no-op.
    session.update_visits(|v| *v = (*v).max(1));
    [("Cache-Control", "private, max-age=60")]
}

async fn form_echo(session: Session<User>, Form(form): Form<HashMap<String, String>>) -> String {
    let n = session.update_visits(|v| {
        *v += 1;
        *v
    });
    let item = form.get("item").cloned().unwrap_or_default();
    format!("{n} {item}")
}

async fn echo(headers: HeaderMap, req: Request) -> String {
    let mut lines: Vec<String> = headers
        .iter()
        .map(|(n, v)| format!("{}={}", n.as_str(), v.to_str().unwrap_or("?")))
        .collect();
    lines.sort();
    format!(
        "{} ?{}",
        lines.join("\n"),
        req.uri().query().unwrap_or_default()
    )
}

async fn twice(session: Session<User>, req: Request) -> Response {
    session.set_visits(41);
    match req.session::<User>().await {
        Ok(again) => again.update_visits(|v| *v += 1),
        Err(rejection) => return rejection.into_response(),
    }
    session.visits().to_string().into_response()
}

async fn gateway_login(session: Session<User>) {
    session.set_user_id(Some(42));
    session.set_name(Some("Ada".to_owned()));
}

async fn set_name(session: Session<User>, Path(name): Path<String>) {
    session.set_user_id(Some(7));
    session.set_name(Some(name));
}

/// What a downstream service would see: every header, `name: value` per line.
async fn downstream(headers: HeaderMap) -> String {
    let mut lines: Vec<String> = headers
        .iter()
        .map(|(n, v)| format!("{}: {}", n.as_str(), v.to_str().unwrap_or("<bytes>")))
        .collect();
    lines.sort();
    lines.join("\n")
}

// ---------------------------------------------------------------- suites

sessionkit_tests::conformance_suites!(Axum, "conformance-axum");
sessionkit_tests::cookie_conformance_suites!(Axum);

mod cookie_store {
    sessionkit_tests::cookie_store_cases!(super::Axum);
}

// ---------------------------------------------------------------- axum only

#[tokio::test]
async fn session_ext_without_the_layer_is_a_typed_rejection() {
    let req = Request::new(Body::empty());
    let rejection = req.session::<User>().await.expect_err("no layer");
    assert!(rejection.is_missing_layer());
    assert!(rejection.session_error().is_none());
    assert!(rejection.to_string().contains("no SessionLayer<"));
}

#[test]
fn layers_are_send_sync_clone() {
    fn send_sync_clone<M: Send + Sync + Clone + 'static>(_: &M) {}
    let manager = sessionkit::SessionManager::<User>::new(sessionkit::MemoryStore::new());
    send_sync_clone(&SessionLayer::new(manager));
    send_sync_clone(&MapSessionToHeader::<User>::new(
        HeaderMapping::from_derive(),
    ));
}
