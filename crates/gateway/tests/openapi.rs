//! The OpenAPI document lists exactly the routes the router serves, with the same
//! methods, and every listed route is reachable.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use conclave_client::{Client, ClientOptions};
use conclave_gateway::{AppState, Config};
use tower::ServiceExt;

/// `{*key}` (axum) and `{key}` (OpenAPI) name the same parameter.
fn openapi_path(axum_path: &str) -> String {
    axum_path.replace("{*", "{")
}

/// A request path for a route template.
fn concrete(path: &str) -> String {
    path.replace("{*key}", "some/key")
        .replace("{name}", "n")
        .replace("{id}", "42")
        .replace("{member}", "m1")
        .replace("{partition}", "3")
}

fn documented() -> BTreeSet<(String, String)> {
    let doc =
        serde_json::to_value(<conclave_gateway::openapi::ApiDoc as utoipa::OpenApi>::openapi()).unwrap();
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if ["get", "put", "post", "delete", "patch", "head", "options"].contains(&method.as_str()) {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}

#[test]
fn the_document_lists_exactly_the_routers_routes() {
    let served: BTreeSet<(String, String)> = conclave_gateway::routes::table()
        .into_iter()
        .map(|(method, path)| (method.to_string(), openapi_path(path)))
        .collect();
    let documented = documented();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served but not in /openapi.json: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "in /openapi.json but not served: {unserved:?}"
    );
    assert!(served.len() > 40, "{served:?}");
}

#[tokio::test]
async fn every_route_in_the_table_is_routed_with_its_methods() {
    // A cluster that is not there: handlers fail fast with 503, which is fine here —
    // what matters is that no route answers route_not_found or 405.
    let config = Config {
        endpoints: "127.0.0.1:9".into(),
        request_timeout: 2_000,
        ..Config::default()
    };
    let options = ClientOptions {
        retry_budget: Duration::from_millis(50),
        request_timeout: Duration::from_millis(200),
        connect_timeout: Duration::from_millis(200),
        ..ClientOptions::default()
    };
    let client = Client::connect_with(["127.0.0.1:9"], options).await.unwrap();
    let router = conclave_gateway::router(AppState::new(config, client));
    for (method, path) in conclave_gateway::routes::table() {
        let uri = concrete(path);
        let uri = if uri.starts_with("/v1/locks") && method == "DELETE" {
            format!("{uri}?key=n/1&epoch=1")
        } else {
            uri
        };
        let request = Request::builder()
            .method(method)
            .uri(&uri)
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .unwrap();
        let response = tokio::time::timeout(Duration::from_secs(5), router.clone().oneshot(request))
            .await
            .unwrap_or_else(|_| panic!("{method} {uri} hung"))
            .unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        let code = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("code").cloned());
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}: {code:?}");
        assert_ne!(code, Some(serde_json::json!("route_not_found")), "{method} {uri}");
    }
    // No route takes a method the table does not list (it would be undocumented).
    let table = conclave_gateway::routes::table();
    for (_, path) in &table {
        for method in ["GET", "PUT", "POST", "DELETE", "PATCH"] {
            if table.iter().any(|(m, p)| p == path && *m == method) {
                continue;
            }
            let uri = concrete(path);
            let request = Request::builder()
                .method(method)
                .uri(&uri)
                .body(Body::empty())
                .unwrap();
            let response = router.clone().oneshot(request).await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {uri} is routed but not in the table"
            );
        }
    }
    // And the document itself is served.
    let response = router
        .oneshot(Request::get("/openapi.json").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}
