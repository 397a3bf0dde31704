//! The two adapters cannot drift apart: both builders are the core's one
//! adapter `Builder` (so an option is added in one place and both have it),
//! both crates document exactly its options (`BUILDER_OPTIONS`, which a
//! unit test beside the builder keeps equal to its methods), and both log an inner service
//! that fails without a response the same way, through the core.
// Helpers outside #[test] fns unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

use sessionkit::adapter::{Builder, Framework};
use sessionkit::{MemoryStore, SessionData, SessionManager};
use sessionkit_tests::support::{LogCapture, Profile, VISITS};

/// The core builder, whatever the framework: this compiles only while the
/// adapter's builder *is* `Builder<T, F>`, not a type of its own that could
/// gain an option the other adapter lacks.
fn core_builder<T: SessionData, F: Framework>(builder: Builder<T, F>) -> Builder<T, F> {
    builder
}

fn manager() -> SessionManager<Profile> {
    SessionManager::new(MemoryStore::new())
}

#[test]
fn both_builders_are_the_core_builder() {
    let actix = core_builder(sessionkit_actix::SessionMiddleware::builder(manager()));
    let axum = core_builder(sessionkit_axum::SessionLayer::builder(manager()));
    // Every option, on both: the same calls compile and build.
    let _: sessionkit_actix::SessionMiddleware<Profile> = actix
        .error_handler(sessionkit_actix::default_error_handler)
        .form_limit(1024)
        .on_store_failure(sessionkit::FailurePolicy::Anonymous)
        .csrf_rejection_handler(sessionkit_actix::default_csrf_handler)
        .build();
    let _: sessionkit_axum::SessionLayer<Profile> = axum
        .error_handler(sessionkit_axum::default_error_handler)
        .form_limit(1024)
        .on_store_failure(sessionkit::FailurePolicy::Anonymous)
        .csrf_rejection_handler(sessionkit_axum::default_csrf_handler)
        .build();
    // The type names users write are the same builder.
    let _: sessionkit_actix::SessionMiddlewareBuilder<Profile> =
        Builder::<Profile, sessionkit_actix::Actix>::new(manager());
    let _: sessionkit_axum::SessionLayerBuilder<Profile> =
        Builder::<Profile, sessionkit_axum::Axum>::new(manager());
}

/// The builder methods an adapter crate's "Options" table documents, in
/// order: the first cell of each row, `[`name`](...)`.
fn documented_options(crate_docs: &str) -> Vec<String> {
    let section = crate_docs
        .split("//! ## Options")
        .nth(1)
        .and_then(|rest| rest.split("//! ## ").next())
        .unwrap();
    section
        .lines()
        .filter_map(|line| line.strip_prefix("//! | [`"))
        .filter_map(|row| row.split_once("`]").map(|(name, _)| name.to_owned()))
        .collect()
}

#[test]
fn both_crates_document_exactly_the_core_options() {
    let core = sessionkit::adapter::BUILDER_OPTIONS;
    for (name, docs) in [
        (
            "sessionkit-actix",
            include_str!("../../session-actix/src/lib.rs"),
        ),
        (
            "sessionkit-axum",
            include_str!("../../session-axum/src/lib.rs"),
        ),
    ] {
        assert_eq!(documented_options(docs), core, "{name}'s Options table");
    }
}

// ------------------------------------------------------------ inner failure

const BOOM: &str = "boom in the inner service";
const LINE: &str = "an inner service failed without a response; the session was not saved";

/// What `run` logged at `warn` and above.
fn logs_of(run: impl FnOnce()) -> String {
    let captured = LogCapture::default();
    let subscriber = captured.subscriber(tracing::Level::WARN);
    tracing::subscriber::with_default(subscriber, run);
    captured.text()
}

/// The line the core logs, with the error, as it appears in `logs`.
fn the_line(logs: &str) -> &str {
    let lines: Vec<&str> = logs.lines().filter(|l| l.contains(LINE)).collect();
    assert_eq!(lines.len(), 1, "{logs}");
    let line = lines[0];
    assert!(line.contains(BOOM), "the error is in the line: {line}");
    assert!(line.contains(" WARN "), "{line}");
    // Without the timestamp, the target and the span: the same words.
    &line[line.find(LINE).unwrap()..]
}

fn actix_inner_failure() -> String {
    use actix_web::body::BoxBody;
    use actix_web::dev::{Service, ServiceResponse};
    use actix_web::test::{self, TestRequest};
    use actix_web::{web, App, HttpResponse};
    use sessionkit_actix::{SessionExt, SessionMiddleware};
    logs_of(|| {
        actix_web::rt::System::new().block_on(async {
            let app = test::init_service(
                App::new()
                    .wrap_fn(|req, _srv| async move {
                        // Inside the session middleware: load, then fail.
                        let session = req.session::<Profile>().await.unwrap();
                        session.update(VISITS, |v| *v += 1);
                        Err::<ServiceResponse<BoxBody>, _>(actix_web::error::ErrorBadRequest(BOOM))
                    })
                    .wrap(SessionMiddleware::new(manager()))
                    .route("/", web::get().to(HttpResponse::Ok)),
            )
            .await;
            let res = app.call(TestRequest::get().uri("/").to_request()).await;
            assert!(res.is_err(), "the inner error is handed on");
        });
    })
}

fn axum_inner_failure() -> String {
    use axum::body::Body;
    use axum::http::Request;
    use axum::response::Response;
    use sessionkit_axum::{SessionExt, SessionLayer};
    use tower::{Layer, ServiceExt};
    logs_of(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async {
                let inner = tower::service_fn(|req: Request<Body>| async move {
                    let session = req.session::<Profile>().await.unwrap();
                    session.update(VISITS, |v| *v += 1);
                    Err::<Response, _>(std::io::Error::other(BOOM))
                });
                let service = SessionLayer::new(manager()).layer(inner);
                let res = service
                    .oneshot(Request::get("/").body(Body::empty()).unwrap())
                    .await;
                assert!(res.is_err(), "the inner error is handed on");
            });
    })
}

#[test]
fn both_adapters_log_an_inner_service_failure_alike() {
    let actix = actix_inner_failure();
    let axum = axum_inner_failure();
    assert_eq!(the_line(&actix), the_line(&axum));
}
