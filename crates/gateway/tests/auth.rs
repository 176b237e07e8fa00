//! Auth through the gateway against a real member: tokens from `/v3/auth/authenticate`
//! in `Authorization` (bare, as etcd's gateway clients send it, or `Bearer`), the
//! `/v3/auth/*` paths, and etcd's grpc-gateway statuses (403 denied, 401 bad token, 400
//! bad password) on the etcd paths, 401/403 on the REST API and its SSE watch.

mod common;

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::{cluster, http, Gateway, SseReader};
use conclave_client::{Client, ClientOptions};
use conclave_contract::errors;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn b64(text: &str) -> String {
    STANDARD.encode(text)
}

async fn answer(response: reqwest::Response) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    let value = serde_json::from_str(text.trim()).unwrap_or(Value::String(text));
    (status, value, headers)
}

/// `POST path` with `body`, and `Authorization: token` when given.
async fn post(gw: &Gateway, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
    let mut request = http().post(gw.url(path)).json(&body);
    if let Some(token) = token {
        request = request.header("Authorization", token);
    }
    let (status, value, _) = answer(request.send().await.expect("send")).await;
    (status, value)
}

/// `POST path` that must answer 200.
async fn ok(gw: &Gateway, path: &str, token: Option<&str>, body: Value) -> Value {
    let (status, value) = post(gw, path, token, body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{path} {body}: {value}");
    value
}

/// etcd's error shape with this gRPC code and message.
fn assert_etcd_error(value: &Value, code: i64, message: &str) {
    assert_eq!(value["code"], code, "{value}");
    assert_eq!(value["error"], message, "{value}");
    assert_eq!(value["message"], message, "{value}");
}

async fn token(gw: &Gateway, name: &str, password: &str) -> String {
    let answer = ok(
        gw,
        "/v3/auth/authenticate",
        None,
        json!({"name": name, "password": password}),
    )
    .await;
    answer["token"].as_str().expect("a token").to_string()
}

/// root with the root role, role `app` READWRITE on `/app/`, alice with `app`, auth
/// enabled — all through the `/v3/auth/*` paths.
async fn secure(gw: &Gateway) {
    ok(
        gw,
        "/v3/auth/user/add",
        None,
        json!({"name": "root", "password": "rootpw"}),
    )
    .await;
    ok(gw, "/v3/auth/role/add", None, json!({"name": "root"})).await;
    ok(
        gw,
        "/v3/auth/user/grant",
        None,
        json!({"user": "root", "role": "root"}),
    )
    .await;
    ok(gw, "/v3/auth/role/add", None, json!({"name": "app"})).await;
    ok(
        gw,
        "/v3/auth/role/grant",
        None,
        json!({"name": "app", "perm": {"permType": "READWRITE", "key": b64("/app/"), "range_end": b64("/app0")}}),
    )
    .await;
    ok(
        gw,
        "/v3/auth/user/add",
        None,
        json!({"name": "alice", "password": "alicepw"}),
    )
    .await;
    ok(
        gw,
        "/v3/auth/user/grant",
        None,
        json!({"user": "alice", "role": "app"}),
    )
    .await;
    ok(gw, "/v3/auth/enable", None, json!({})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_paths_take_the_token_and_answer_as_etcds_gateway() {
    let cluster = cluster(1).await;
    let gw = Gateway::start(&cluster.client_endpoints(), &[]).await;
    secure(&gw).await;

    // The gateway has no user of its own, yet stays ready: its readiness read is
    // refused, and a linearizable member list proves the quorum instead.
    let readyz = gw.url("/readyz");
    conclave_testkit::wait_until(
        "/readyz to answer 200 with auth enabled",
        Duration::from_secs(10),
        || {
            let readyz = readyz.clone();
            async move {
                let response = http().get(&readyz).send().await.ok()?;
                (response.status() == StatusCode::OK).then_some(())
            }
        },
    )
    .await
    .expect("ready with auth enabled");

    // Authenticate: a wrong password is etcd's InvalidArgument, 400.
    let (status, error) = post(
        &gw,
        "/v3/auth/authenticate",
        None,
        json!({"name": "alice", "password": "wrong"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_etcd_error(&error, 3, errors::AUTH_FAILED);
    let alice = token(&gw, "alice", "alicepw").await;
    let root = format!("Bearer {}", token(&gw, "root", "rootpw").await);

    // Allowed with the token (bare, as etcd's gateway clients send it).
    ok(
        &gw,
        "/v3/kv/put",
        Some(&alice),
        json!({"key": b64("/app/x"), "value": b64("1")}),
    )
    .await;
    let range = ok(&gw, "/v3/kv/range", Some(&alice), json!({"key": b64("/app/x")})).await;
    assert_eq!(range["kvs"][0]["value"], b64("1"));
    // Denied: PermissionDenied, 403.
    let (status, error) = post(&gw, "/v3/kv/range", Some(&alice), json!({"key": b64("/other")})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_etcd_error(&error, 7, errors::PERMISSION_DENIED);
    let (status, error) = post(&gw, "/v3/auth/user/list", Some(&alice), json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{error}");
    // No token: etcd's "user name is empty" (InvalidArgument, 400).
    let (status, error) = post(&gw, "/v3/kv/range", None, json!({"key": b64("/app/x")})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_etcd_error(&error, 3, errors::USER_EMPTY);
    // A token the members do not accept: Unauthenticated, 401.
    let (status, error) = post(
        &gw,
        "/v3/kv/range",
        Some("Bearer forged.token"),
        json!({"key": b64("/app/x")}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_etcd_error(&error, 16, errors::INVALID_AUTH_TOKEN);

    // The admin paths, as root.
    let status = ok(&gw, "/v3/auth/status", Some(&root), json!({})).await;
    assert_eq!(status["enabled"], true, "{status}");
    assert!(status["authRevision"].as_str().is_some(), "{status}");
    let users = ok(&gw, "/v3/auth/user/list", Some(&root), json!({})).await;
    assert_eq!(users["users"], json!(["alice", "root"]));
    let roles = ok(&gw, "/v3/auth/role/list", Some(&root), json!({})).await;
    assert_eq!(roles["roles"], json!(["app", "root"]));
    let user = ok(&gw, "/v3/auth/user/get", Some(&root), json!({"name": "alice"})).await;
    assert_eq!(user["roles"], json!(["app"]));
    let role = ok(&gw, "/v3/auth/role/get", Some(&root), json!({"role": "app"})).await;
    assert_eq!(
        role["perm"],
        json!([{"permType": "READWRITE", "key": b64("/app/"), "range_end": b64("/app0")}])
    );
    ok(
        &gw,
        "/v3/auth/user/add",
        Some(&root),
        json!({"name": "svc", "options": {"no_password": true}}),
    )
    .await;
    let (status, error) = post(
        &gw,
        "/v3/auth/user/add",
        Some(&root),
        json!({"name": "svc", "password": "x"}),
    )
    .await;
    // FailedPrecondition: 412, as etcd's gateway (grpc-gateway v1) answers.
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    assert_etcd_error(&error, 9, errors::USER_ALREADY_EXIST);
    ok(&gw, "/v3/auth/user/delete", Some(&root), json!({"name": "svc"})).await;
    ok(
        &gw,
        "/v3/auth/role/revoke",
        Some(&root),
        json!({"role": "app", "key": b64("/app/"), "range_end": b64("/app0")}),
    )
    .await;
    let (status, _) = post(&gw, "/v3/kv/range", Some(&alice), json!({"key": b64("/app/x")})).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the revoked permission no longer holds"
    );
    ok(
        &gw,
        "/v3/auth/user/revoke",
        Some(&root),
        json!({"name": "alice", "role": "app"}),
    )
    .await;
    ok(&gw, "/v3/auth/role/delete", Some(&root), json!({"role": "app"})).await;
    ok(
        &gw,
        "/v3/auth/user/changepw",
        Some(&root),
        json!({"name": "alice", "password": "newpw"}),
    )
    .await;
    // A changed password voids alice's old token.
    let (status, error) = post(&gw, "/v3/kv/range", Some(&alice), json!({"key": b64("/app/x")})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{error}");
    token(&gw, "alice", "newpw").await;

    ok(&gw, "/v3/auth/disable", Some(&root), json!({})).await;
    ok(&gw, "/v3/kv/range", None, json!({"key": b64("/app/x")})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rest_api_and_its_sse_watch_act_with_the_callers_token() {
    let cluster = cluster(1).await;
    let gw = Gateway::start(&cluster.client_endpoints(), &[]).await;
    secure(&gw).await;
    let alice = format!("Bearer {}", token(&gw, "alice", "alicepw").await);
    let http = http();

    // Writes and reads with the token.
    let (status, put, _) = answer(
        http.put(gw.url("/v1/kv/%2Fapp%2Fx"))
            .header("Authorization", &alice)
            .json(&json!({"value": "hello"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{put}");
    let (status, kv, _) = answer(
        http.get(gw.url("/v1/kv/%2Fapp%2Fx"))
            .header("Authorization", &alice)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, kv["value"].clone()), (StatusCode::OK, json!("hello")));

    // 403 for what alice may not do, 401 without a usable token.
    let (status, error, _) = answer(
        http.get(gw.url("/v1/kv/other"))
            .header("Authorization", &alice)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, error["code"].clone()),
        (StatusCode::FORBIDDEN, json!("permission_denied"))
    );
    let (status, error, headers) = answer(http.get(gw.url("/v1/kv/%2Fapp%2Fx")).send().await.unwrap()).await;
    assert_eq!(
        (status, error["code"].clone()),
        (StatusCode::UNAUTHORIZED, json!("auth_required"))
    );
    assert_eq!(headers["www-authenticate"], "Bearer");
    let (status, error, _) = answer(
        http.get(gw.url("/v1/kv/%2Fapp%2Fx"))
            .header("Authorization", "Bearer forged.token")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, error["code"].clone()),
        (StatusCode::UNAUTHORIZED, json!("invalid_token"))
    );

    // The SSE watch honours the token: allowed on /app/, refused elsewhere and without.
    let response = http
        .get(gw.url("/v1/watch?prefix=/app/w/"))
        .header("Authorization", &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut events = SseReader::new(response);
    let created = events
        .next_within(Duration::from_secs(10))
        .await
        .expect("created");
    assert_eq!(created.event, "created");
    let root = Client::connect_with(
        cluster.client_endpoints(),
        ClientOptions::default().credentials("root", "rootpw"),
    )
    .await
    .expect("root client");
    root.put("/app/w/1", "v1").await.expect("root put");
    let change = events
        .next_within(Duration::from_secs(10))
        .await
        .expect("a change");
    assert_eq!(change.event, "put", "{change:?}");
    assert_eq!(change.json()["key"], "/app/w/1", "{change:?}");

    let (status, error, _) = answer(
        http.get(gw.url("/v1/watch?prefix=/other/"))
            .header("Authorization", &alice)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, error["code"].clone()),
        (StatusCode::FORBIDDEN, json!("permission_denied"))
    );
    let (status, _, _) = answer(http.get(gw.url("/v1/watch?prefix=/app/")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
