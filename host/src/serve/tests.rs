//! The service in process: the router over a real [`App`] on a scratch
//! embedded store, called with `oneshot` (no socket, no binary; the real
//! binary is driven by `host/tests/all/serve.rs`).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use flocker_core::fixtures;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use super::router;
use crate::app::App;
use crate::engine::{Engine, EngineChoice};
use crate::store::any::AnyStore;
use crate::store::file::FileStore;
use crate::store::Store;

async fn app(dir: &tempfile::TempDir) -> Arc<App> {
    let store = FileStore::open(dir.path().join("s.redb")).unwrap();
    store
        .put_servers(&[fixtures::server("n1"), fixtures::server("n2")])
        .await
        .unwrap();
    let app = App::open(
        AnyStore::File(store),
        EngineChoice::Native,
        8,
        |engine, _| engine,
    )
    .await
    .unwrap();
    Arc::new(app)
}

/// One call: status, the `x-flocker-retries` header, the body.
async fn call(
    app: &Arc<App>,
    method: &str,
    path: &str,
    body: &str,
) -> (StatusCode, Option<String>, String) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = router(app.clone(), &crate::net::Limits::default())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let retries = response
        .headers()
        .get("x-flocker-retries")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, retries, String::from_utf8(bytes.to_vec()).unwrap())
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test]
async fn place_decide_health_and_metrics_through_the_router() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir).await;
    let request = json!({"name": "web.1", "container": {"Image": "nginx"},
                         "image": {"Config": {"ExposedPorts": {"80/tcp": {}}}}})
    .to_string();

    let (status, retries, body) = call(&app, "POST", "/v1/place", &request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(retries.as_deref(), Some("0"));
    let placed = json_of(&body);
    assert_eq!(placed["server"]["hostname"], "n1");
    assert_eq!(placed["route"]["ports"]["80/tcp"], 20000);

    // The same request again is `name_in_use` (SPEC section 3) unless it
    // says it is a retry: then it gets the saved decision back.
    let (status, _, again) = call(&app, "POST", "/v1/place", &request).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{again}");
    assert_eq!(json_of(&again)["error"]["kind"], "name_in_use");
    let (status, _, again) = call(&app, "POST", "/v1/place?retry=true", &request).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(json_of(&again), placed);

    // Another request for the name is a decision error (422), and nothing is saved.
    let taken = json!({"name": "web.1", "container": {"Image": "redis"}}).to_string();
    let (status, _, body) = call(&app, "POST", "/v1/place?retry=true", &taken).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(json_of(&body)["error"]["kind"], "name_in_use");

    // Decide only: against the store, the next container goes to n2.
    let other = json!({"name": "web.2", "container": {"Image": "nginx"}}).to_string();
    let (status, _, body) = call(&app, "POST", "/v1/decide", &other).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(json_of(&body)["server"]["hostname"], "n2");

    // A body that is not JSON is the host's 400, in the same error shape.
    let (status, _, body) = call(&app, "POST", "/v1/decide", "{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json_of(&body)["error"]["kind"], "invalid_body");

    let (status, _, body) = call(&app, "GET", "/healthz", "").await;
    assert_eq!(status, StatusCode::OK);
    let health = json_of(&body);
    assert_eq!(
        (health["servers"].as_u64(), health["routes"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(app.store.cluster().await.unwrap().routes().count(), 1);

    // Every call above was counted once, by the timing middleware.
    let (_, _, metrics) = call(&app, "GET", "/metrics", "").await;
    for line in [
        "flocker_decisions_total{endpoint=\"place\",outcome=\"decision\"} 2",
        "flocker_decisions_total{endpoint=\"place\",outcome=\"error\"} 2",
        "flocker_decision_errors_total{endpoint=\"place\",kind=\"name_in_use\"} 2",
        // The replayed retry wrote nothing: one save.
        "flocker_place_saved_total 1",
        "flocker_decisions_total{endpoint=\"decide\",outcome=\"decision\"} 1",
        "flocker_decision_errors_total{endpoint=\"decide\",kind=\"invalid_body\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
}

#[tokio::test]
async fn a_retry_value_it_does_not_know_is_a_400_and_saves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir).await;
    let request = json!({"name": "web.1", "container": {"Image": "nginx"}}).to_string();
    let (status, _, body) = call(&app, "POST", "/v1/place?retry=yes", &request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let error = &json_of(&body)["error"];
    assert_eq!(error["kind"], "invalid_query");
    assert_eq!(
        error["message"],
        "retry: expected true, 1, false or 0, got \"yes\""
    );
    assert_eq!(app.store.cluster().await.unwrap().routes().count(), 0);
    // `false` is a plain place: saved once, then `name_in_use`.
    for (want, path) in [
        (StatusCode::OK, "/v1/place?retry=false"),
        (StatusCode::UNPROCESSABLE_ENTITY, "/v1/place?retry=0"),
    ] {
        let (status, _, body) = call(&app, "POST", path, &request).await;
        assert_eq!(status, want, "{path}: {body}");
    }
}

#[tokio::test]
async fn a_decision_over_the_slots_is_a_quick_503_and_a_big_body_a_413() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(&dir).await;
    let limits = crate::net::Limits {
        max_decisions: 1,
        max_body: 64,
        ..Default::default()
    };
    let guard = super::guard::Guard::new(&limits);
    let send = |body: String| {
        let request = Request::builder()
            .method("POST")
            .uri("/v1/decide")
            .body(Body::from(body))
            .unwrap();
        super::router::routes(app.clone(), guard.clone()).oneshot(request)
    };
    let small = json!({"name": "w.1", "container": {"Image": "web"}}).to_string();
    // Another decision holds the only slot.
    let held = guard.gate.try_enter().unwrap();
    let r = send(small.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()["retry-after"], "1");
    let body = r.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        json_of(std::str::from_utf8(&body).unwrap())["error"]["kind"],
        "overloaded"
    );
    drop(held);
    assert_eq!(send(small).await.unwrap().status(), StatusCode::OK);
    let r = send("x".repeat(65)).await.unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

/// An engine whose decisions wait until the test lets them go (at most
/// [`Held::MOST`], so a runtime it stalls comes back): a decision that
/// runs long, as a costly request or a spinning module does.
struct Held {
    started: std::sync::Mutex<std::sync::mpsc::Sender<()>>,
    release: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
}

impl Held {
    const MOST: std::time::Duration = std::time::Duration::from_secs(30);
}

impl crate::engine::Engine for Held {
    fn decide(
        &self,
        cluster: &Arc<flocker_core::Cluster>,
        request: &Value,
    ) -> Result<crate::engine::Decided, crate::engine::EngineError> {
        let _ = self.started.lock().unwrap().send(());
        let _ = self.release.lock().unwrap().recv_timeout(Held::MOST);
        crate::engine::Native.decide(cluster, request)
    }

    fn describe(&self) -> String {
        "held".into()
    }
}

/// One runtime worker: a decision run on it would leave `/healthz` nothing
/// to run on until the decision ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn healthz_answers_while_a_long_decision_runs() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path().join("s.redb")).unwrap();
    store.put_servers(&[fixtures::server("n1")]).await.unwrap();
    let (started, started_rx) = std::sync::mpsc::channel();
    let (release_tx, release) = std::sync::mpsc::channel();
    let held: Arc<dyn crate::engine::Engine> = Arc::new(Held {
        started: started.into(),
        release: release.into(),
    });
    assert_eq!(held.describe(), "held");
    let app = App::open(AnyStore::File(store), EngineChoice::Native, 8, |_, _| held)
        .await
        .unwrap();
    let app = Arc::new(app);
    let request = json!({"name": "web.1", "container": {"Image": "nginx"}}).to_string();
    let long = {
        let app = app.clone();
        tokio::spawn(async move { call(&app, "POST", "/v1/decide", &request).await })
    };
    // The test's own thread is not a runtime worker: waiting here is fine.
    started_rx.recv().unwrap();
    let health = {
        let app = app.clone();
        tokio::spawn(async move { call(&app, "GET", "/healthz", "").await })
    };
    let (status, _, body) = health.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        !long.is_finished(),
        "/healthz answered only once the long decision had ended"
    );
    release_tx.send(()).unwrap();
    let (status, _, body) = long.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(json_of(&body)["server"]["hostname"], "n1");
}

/// A panic payload that panics again when dropped: a failure the placer
/// cannot contain, so its thread ends.
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        panic!("the payload of a panic failed too");
    }
}

/// An engine that panics on its first decision (with `Bomb` when
/// `bomb`), then decides natively.
struct Panicky {
    panics: std::sync::atomic::AtomicU32,
    bomb: bool,
}

impl crate::engine::Engine for Panicky {
    fn decide(
        &self,
        cluster: &Arc<flocker_core::Cluster>,
        request: &Value,
    ) -> Result<crate::engine::Decided, crate::engine::EngineError> {
        use std::sync::atomic::Ordering;
        if self.panics.swap(0, Ordering::SeqCst) > 0 {
            if self.bomb {
                std::panic::panic_any(Bomb);
            }
            panic!("a bug in an engine");
        }
        crate::engine::Native.decide(cluster, request)
    }

    fn describe(&self) -> String {
        "panicky".into()
    }
}

async fn panicky_app(dir: &tempfile::TempDir, bomb: bool) -> Arc<App> {
    let store = FileStore::open(dir.path().join("s.redb")).unwrap();
    store.put_servers(&[fixtures::server("n1")]).await.unwrap();
    let engine: Arc<dyn crate::engine::Engine> = Arc::new(Panicky {
        panics: 1.into(),
        bomb,
    });
    let app = App::open(AnyStore::File(store), EngineChoice::Native, 8, |_, _| {
        engine
    });
    Arc::new(app.await.unwrap())
}

fn named(name: &str) -> String {
    json!({"name": name, "container": {"Image": "nginx"}}).to_string()
}

#[tokio::test]
async fn a_panicking_batch_fails_its_place_and_the_placer_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let app = panicky_app(&dir, false).await;
    let (status, _, body) = call(&app, "POST", "/v1/place", &named("web.1")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (status, _, body) = call(&app, "POST", "/v1/place", &named("web.2")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = call(&app, "GET", "/healthz", "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(json_of(&body)["routes"], 1);
}

#[tokio::test]
async fn healthz_names_a_placer_thread_that_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let app = panicky_app(&dir, true).await;
    let (status, _, body) = call(&app, "POST", "/v1/place", &named("web.1")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    // The place is answered while the thread unwinds; wait for it to end.
    for _ in 0..1000 {
        if app.placer_stopped() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let (status, _, body) = call(&app, "GET", "/healthz", "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(json_of(&body)["placer"], "stopped");
    let (status, _, body) = call(&app, "POST", "/v1/place", &named("web.2")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("unavailable"), "{body}");
}
