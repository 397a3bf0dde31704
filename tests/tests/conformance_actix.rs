//! The HTTP conformance suite through `sessionkit-actix`, on the memory
//! store, Redis and the Redis Cluster; plus what only actix has (its test request API).

use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Service, ServiceResponse};
use actix_web::test::{self, TestRequest};
use actix_web::{web, App, HttpRequest, HttpResponse};
use futures_util::future::LocalBoxFuture;
use sessionkit::{HeaderMapConfig, HeaderMapError, HeaderMapping};
use sessionkit_actix::{MapSessionToHeader, Session, SessionExt, SessionMiddleware};
use sessionkit_tests::conformance::{Adapter, AppSpec, Layout, Req, Res, User, UserSessionExt};

/// `sessionkit-actix` as the suite drives it.
struct Actix;

type Call = dyn Fn(actix_http::Request) -> LocalBoxFuture<'static, ServiceResponse<BoxBody>>;

impl Adapter for Actix {
    type App = Rc<Call>;

    fn block_on(test: impl Future<Output = ()>) {
        actix_web::rt::System::new().block_on(test);
    }

    async fn build(spec: AppSpec) -> Rc<Call> {
        let AppSpec {
            manager,
            layout,
            form_limit,
            custom_errors,
            failure_policy,
        } = spec;
        let mut builder = SessionMiddleware::builder(manager).on_store_failure(failure_policy);
        if let Some(limit) = form_limit {
            builder = builder.form_limit(limit);
        }
        if custom_errors {
            builder = builder.error_handler(|error, req| {
                HttpResponse::ServiceUnavailable()
                    .insert_header(("Retry-After", "7"))
                    .body(format!(
                        "down for {} (store: {})",
                        req.path(),
                        matches!(error, sessionkit::SessionError::Store(_))
                    ))
            });
            builder = builder.csrf_rejection_handler(|rejection, _req| {
                HttpResponse::build(actix_web::http::StatusCode::IM_A_TEAPOT)
                    .body(format!("refused: {rejection}"))
            });
        }
        let session = builder.build();
        match layout {
            Layout::Standard => boxed(App::new().wrap(session).configure(routes)).await,
            Layout::NoSession => boxed(App::new().configure(routes)).await,
            Layout::ParamScope => {
                boxed(
                    App::new().service(
                        web::scope("/s/{sid}")
                            .wrap(session)
                            .route("/visit", web::get().to(visit)),
                    ),
                )
                .await
            }
            Layout::Nested { inner } => {
                boxed(
                    App::new().wrap(session).service(
                        web::scope("/in")
                            .wrap(SessionMiddleware::new(inner))
                            .route("/visit", web::get().to(visit)),
                    ),
                )
                .await
            }
            Layout::Gateway(map) => {
                boxed(
                    App::new()
                        .wrap(session)
                        .route("/login", web::post().to(gateway_login))
                        .route("/name/{name}", web::post().to(set_name))
                        .service(
                            web::scope("/dashboard")
                                .wrap(MapSessionToHeader::new(map))
                                .default_service(web::to(downstream)),
                        ),
                )
                .await
            }
            Layout::MappingWithoutSession(map) => {
                boxed(
                    App::new()
                        .wrap(MapSessionToHeader::new(map))
                        .default_service(web::to(downstream)),
                )
                .await
            }
        }
    }

    async fn call(app: &Rc<Call>, req: Req) -> Res {
        let mut test = TestRequest::default()
            .method(actix_web::http::Method::from_bytes(req.method.as_bytes()).expect("method"))
            .uri(&req.uri);
        for (name, value) in &req.headers {
            test = test.append_header((name.as_str(), value.as_str()));
        }
        let res = app(test.set_payload(req.body).to_request()).await;
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
        let body = test::read_body(res).await;
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

/// The app as one callable, whatever its concrete service type.
async fn boxed<T, B>(app: App<T>) -> Rc<Call>
where
    T: actix_web::dev::ServiceFactory<
            actix_web::dev::ServiceRequest,
            Config = (),
            Response = ServiceResponse<B>,
            Error = actix_web::Error,
            InitError = (),
        > + 'static,
    B: MessageBody + 'static,
{
    let service = Rc::new(test::init_service(app).await);
    Rc::new(move |req| {
        let service = Rc::clone(&service);
        Box::pin(async move {
            match service.call(req).await {
                Ok(res) => res.map_into_boxed_body(),
                Err(error) => panic!("the app failed without a response: {error}"),
            }
        })
    })
}

// ---------------------------------------------------------------- routes

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/plain", web::get().to(plain))
        .route("/visit", web::get().to(visit))
        .route("/read", web::get().to(read))
        .route("/token", web::get().to(token))
        .route("/flash", web::post().to(flash))
        .route("/notice", web::get().to(notice))
        .route("/id", web::get().to(id))
        .route("/login", web::post().to(login))
        .route("/logout", web::post().to(logout))
        .route("/destroy", web::post().to(destroy))
        .route("/cached", web::get().to(cached))
        .route("/form", web::post().to(form_echo))
        .route("/echo", web::get().to(echo))
        .route("/twice", web::get().to(twice))
        .route("/bump/{field}", web::post().to(bump))
        .route("/all", web::get().to(all))
        .route("/degraded", web::get().to(degraded));
}

async fn degraded(session: Session<User>) -> HttpResponse {
    let n = session.update_visits(|v| {
        *v += 1;
        *v
    });
    let state = if session.degraded() {
        "degraded"
    } else {
        "normal"
    };
    HttpResponse::Ok().body(format!("{n} {state}"))
}

async fn bump(session: Session<User>, field: web::Path<String>) -> HttpResponse {
    match field.as_str() {
        "visits" => session.update_visits(|v| *v += 1),
        "user_id" => session.update_user_id(|id| *id = Some(id.unwrap_or(0) + 1)),
        "name" => session.update_name(|name| name.get_or_insert_with(String::new).push('x')),
        _ => return HttpResponse::NotFound().finish(),
    }
    HttpResponse::Ok().finish()
}

async fn all(session: Session<User>) -> HttpResponse {
    let user = session.snapshot();
    HttpResponse::Ok().body(format!(
        "{},{},{}",
        user.visits,
        user.user_id.unwrap_or(0),
        user.name.unwrap_or_default()
    ))
}

async fn plain() -> HttpResponse {
    HttpResponse::Ok().body("plain")
}

async fn visit(session: Session<User>) -> HttpResponse {
    let n = session.update_visits(|v| {
        *v += 1;
        *v
    });
    HttpResponse::Ok().body(n.to_string())
}

async fn read(session: Session<User>) -> HttpResponse {
    HttpResponse::Ok().body(session.visits().to_string())
}

async fn token(session: Session<User>) -> HttpResponse {
    match session.csrf_token() {
        Ok(token) => HttpResponse::Ok().body(token),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

async fn flash(session: Session<User>) -> HttpResponse {
    session.flash_notice("saved".to_owned());
    HttpResponse::Ok().finish()
}

async fn notice(session: Session<User>) -> HttpResponse {
    match session.take_notice().await {
        Ok(notice) => HttpResponse::Ok().body(notice.unwrap_or_else(|| "none".to_owned())),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

async fn id(session: Session<User>) -> HttpResponse {
    HttpResponse::Ok().body(session.id().to_string())
}

async fn login(session: Session<User>) -> HttpResponse {
    if session.regenerate().is_err() {
        return HttpResponse::InternalServerError().finish();
    }
    session.set_user_id(Some(1));
    session.set_authenticated(true);
    HttpResponse::Ok().body(session.id().to_string())
}

async fn logout(session: Session<User>) -> HttpResponse {
    if session.reset().is_err() {
        return HttpResponse::InternalServerError().finish();
    }
    HttpResponse::Ok().body("logged out")
}

async fn destroy(session: Session<User>) -> HttpResponse {
    session.destroy();
    HttpResponse::Ok().body("destroyed")
}

async fn cached(session: Session<User>) -> HttpResponse {
    // A visit only when there is none yet: on a stored session, a no-op.
    session.update_visits(|v| *v = (*v).max(1));
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "private, max-age=60"))
        .finish()
}

async fn form_echo(
    session: Session<User>,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    let n = session.update_visits(|v| {
        *v += 1;
        *v
    });
    let item = form.get("item").cloned().unwrap_or_default();
    HttpResponse::Ok().body(format!("{n} {item}"))
}

async fn echo(req: HttpRequest) -> HttpResponse {
    let mut lines: Vec<String> = req
        .headers()
        .iter()
        .map(|(n, v)| format!("{}={}", n.as_str(), v.to_str().unwrap_or("?")))
        .collect();
    lines.sort();
    HttpResponse::Ok().body(format!("{} ?{}", lines.join("\n"), req.query_string()))
}

async fn twice(req: HttpRequest, session: Session<User>) -> HttpResponse {
    session.set_visits(41);
    match req.session::<User>().await {
        Ok(again) => again.update_visits(|v| *v += 1),
        Err(_) => return HttpResponse::InternalServerError().finish(),
    }
    HttpResponse::Ok().body(session.visits().to_string())
}

async fn gateway_login(session: Session<User>) -> HttpResponse {
    session.set_user_id(Some(42));
    session.set_name(Some("Ada".to_owned()));
    HttpResponse::Ok().finish()
}

async fn set_name(session: Session<User>, name: web::Path<String>) -> HttpResponse {
    session.set_user_id(Some(7));
    session.set_name(Some(name.into_inner()));
    HttpResponse::Ok().finish()
}

/// What a downstream service would see: every header, `name: value` per line.
async fn downstream(req: HttpRequest) -> HttpResponse {
    let mut lines: Vec<String> = req
        .headers()
        .iter()
        .map(|(n, v)| format!("{}: {}", n.as_str(), v.to_str().unwrap_or("<bytes>")))
        .collect();
    lines.sort();
    HttpResponse::Ok().body(lines.join("\n"))
}

// ---------------------------------------------------------------- suites

sessionkit_tests::conformance_suites!(Actix, "conformance-actix");
sessionkit_tests::cookie_conformance_suites!(Actix);

mod cookie_store {
    sessionkit_tests::cookie_store_cases!(super::Actix);
}

// ---------------------------------------------------------------- actix only

#[actix_web::test]
async fn session_ext_without_the_middleware_is_a_typed_rejection() {
    let req = TestRequest::get().uri("/").to_http_request();
    let rejection = req.session::<User>().await.expect_err("no middleware");
    assert!(rejection.is_missing_middleware());
    assert!(rejection.session_error().is_none());
    assert!(rejection.to_string().contains("no SessionMiddleware<"));
}

#[test]
fn middlewares_can_be_built_once_and_shared_with_workers() {
    fn send_sync_clone<M: Send + Sync + Clone + 'static>(_: &M) {}
    let manager = sessionkit::SessionManager::<User>::new(sessionkit::MemoryStore::new());
    send_sync_clone(&SessionMiddleware::new(manager));
    send_sync_clone(&MapSessionToHeader::<User>::new(
        HeaderMapping::from_derive(),
    ));
}
