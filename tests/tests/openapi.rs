//! The OpenAPI description (docs/src/http-api.md, "OpenAPI"): the served document holds every route the
//! router registers and no other (the router's own record of what it registered,
//! `buildfund_api::routes::registered`, against the document fetched over HTTP), every
//! documented operation is answered by its handler (never by the "no route" fallback) with a
//! status the document lists, the bounds and the bearer scheme are stated, and the reference
//! page renders every operation with no script and nothing from elsewhere. The examples
//! `scripts/fuzz-api` (Schemathesis) found are kept at the end as regression tests.
use buildfund_api::routes::{registered, Bounded, Route, PUBLIC_FIGURES};
use buildfund_jobs::bounds::{MAX_LIMIT, MONTH_PATTERN};
use buildfund_tests::{db_test, TestApp};
use serde_json::Value;
use std::collections::BTreeSet;

const CONFIG: &str = r#"
currency = "EUR"
ledger_start = "2026-01-01"

[[funds]]
slug = "general"
name = "General fund"
default = true
opening_balance = "100.00"

[[pools]]
slug = "trunk"
fund = "general"
jobsets = ["nixpkgs:*"]

[[machines]]
name = "build01"
monthly = "300.00"
"#;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

async fn document(app: &TestApp) -> Value {
    let res = app.get("/api/v1/openapi.json").await;
    assert_eq!(res.status(), 200);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    res.json().await.expect("the document is JSON")
}

/// Every (method, path) the document describes.
fn operations(doc: &Value) -> BTreeSet<Route> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item.get(method).is_some() {
                out.insert(Route {
                    method: method.to_uppercase(),
                    path: path.clone(),
                });
            }
        }
    }
    out
}

/// The path with each `{segment}` filled in.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|s| if s.starts_with('{') { "nixpkgs" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

db_test!(
    the_document_holds_exactly_the_routes_of_the_router,
    CONFIG,
    |app| async move {
        let doc = document(&app).await;
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        let documented = operations(&doc);
        let routed: BTreeSet<Route> = registered().routes.into_iter().collect();
        assert!(routed.len() >= 40, "the router registers {}", routed.len());
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(
            undocumented.is_empty(),
            "routes not in the document: {undocumented:?}"
        );
        assert!(
            unrouted.is_empty(),
            "documented but not routed: {unrouted:?}"
        );
        // The same GET /api/v1/donations (public) and POST (admin) are two operations.
        assert!(documented.contains(&Route {
            method: "POST".into(),
            path: "/api/v1/donations".into()
        }));
        assert!(PUBLIC_FIGURES.iter().all(|f| documented.contains(&Route {
            method: "GET".into(),
            path: f.path.into()
        })));
    }
);

db_test!(
    every_documented_operation_is_answered_by_its_handler_with_a_documented_status,
    CONFIG,
    |app| async move {
        let doc = document(&app).await;
        for route in operations(&doc) {
            let op = &doc["paths"][&route.path][route.method.to_lowercase()];
            let url = app.url(&concrete(&route.path));
            let method = reqwest::Method::from_bytes(route.method.as_bytes()).unwrap();
            // Without a token and without a body: every operation must still answer itself.
            let res = app.client.request(method, &url).send().await.unwrap();
            let status = res.status().as_u16();
            let body = res.text().await.unwrap_or_default();
            let fallback = format!("no route for {} {}", route.method, concrete(&route.path));
            assert!(
                !body.contains(&fallback),
                "{} {}: answered by the fallback: {body}",
                route.method,
                route.path
            );
            assert!(
                op["responses"].get(status.to_string()).is_some(),
                "{} {}: {status} is not documented ({body})",
                route.method,
                route.path
            );
            // A token is required exactly where the document says so.
            let secured = op.get("security").is_some();
            assert_eq!(
                status == 401,
                secured,
                "{} {}: {status}, security {}",
                route.method,
                route.path,
                op["security"]
            );
        }
    }
);

/// Not a storage test: the document as the router makes it.
#[test]
fn the_document_states_the_bounds_and_the_bearer_scopes() {
    let doc = serde_json::to_value(buildfund_api::openapi::document()).unwrap();
    for route in PUBLIC_FIGURES {
        let params = doc["paths"][route.path]["get"]["parameters"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: no parameters", route.path));
        let param = |name: &str| {
            params
                .iter()
                .find(|p| p["name"] == name && p["in"] == "query")
                .unwrap_or_else(|| panic!("{}: no query parameter {name}", route.path))
        };
        for bound in route.params {
            match bound {
                Bounded::Month => {
                    let schema = &param("month")["schema"];
                    assert_eq!(schema["pattern"], MONTH_PATTERN, "{}", route.path);
                }
                Bounded::At => {
                    let schema = &param("at")["schema"];
                    assert_eq!(schema["format"], "date-time", "{}", route.path);
                }
                Bounded::Limit => {
                    let schema = &param("limit")["schema"];
                    assert_eq!(schema["minimum"], 1, "{}", route.path);
                    assert_eq!(schema["maximum"], MAX_LIMIT, "{}", route.path);
                }
            }
        }
        // The refusals of a bounded value are documented, with the error body.
        let responses = &doc["paths"][route.path]["get"]["responses"];
        for status in ["422", "503"] {
            assert_eq!(
                responses[status]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorBody",
                "{} {status}",
                route.path
            );
        }
    }
    let error = &doc["components"]["schemas"]["ErrorBody"];
    assert_eq!(error["required"], serde_json::json!(["error", "details"]));
    let bearer = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(
        (&bearer["type"], &bearer["scheme"]),
        (&"http".into(), &"bearer".into())
    );
    // Each secured operation names the scopes whose tokens it takes; admin takes them all.
    let mut scopes = BTreeSet::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            for requirement in op["security"].as_array().into_iter().flatten() {
                let named: Vec<&str> = requirement["bearer"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_str().unwrap())
                    .collect();
                scopes.extend(named);
            }
            if let Some(reqs) = op["security"].as_array() {
                assert!(
                    reqs.iter()
                        .any(|r| r["bearer"] == serde_json::json!(["admin"])),
                    "{op}"
                );
            }
        }
    }
    assert_eq!(
        scopes,
        BTreeSet::from(["admin", "ingest", "scheduler"]),
        "the scopes named"
    );
    // Operation ids are unique (openapi-spec-validator refuses duplicates).
    let mut ids = BTreeSet::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            let id = op["operationId"]
                .as_str()
                .expect("every operation has an id");
            assert!(ids.insert(id.to_string()), "operation id {id} twice");
        }
    }
}

db_test!(
    the_reference_page_shows_every_operation_without_script_or_outside_assets,
    CONFIG,
    |app| async move {
        let doc = document(&app).await;
        let res = app.get("/api/v1/docs").await;
        assert_eq!(res.status(), 200);
        let headers = res.headers().clone();
        assert!(headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'none'"), "{csp}");
        let page = res.text().await.unwrap();
        for route in operations(&doc) {
            let shown = format!("{} {}", route.method, route.path);
            assert!(page.contains(&shown), "the page lacks {shown}");
        }
        // Bounds are shown, as are the schemas.
        assert!(page.contains(&format!("pattern {MONTH_PATTERN}")));
        assert!(page.contains(&format!("1 to {MAX_LIMIT}")));
        assert!(page.contains("format date-time"));
        assert!(page.contains("bearer token of scope admin"));
        assert!(page.contains("id=\"schema-CostsReport\""));
        // Offline: no script, and nothing loaded from another origin.
        assert!(!page.contains("<script"), "the page has a script");
        for attr in [
            "src=\"http",
            "href=\"http",
            "src=\"//",
            "href=\"//",
            "@import",
        ] {
            assert!(!page.contains(attr), "the page loads {attr}…");
        }
    }
);

// Found by Schemathesis (`unsupported_method` and `allow_header_conformance`, in
// `scripts/fuzz-api`): a documented path asked with a method it does not take was answered 404
// ("no route"), as if the path did not exist.
db_test!(
    a_documented_path_asked_with_another_method_is_a_405_naming_its_methods,
    CONFIG,
    |app| async move {
        let doc = document(&app).await;
        for (path, item) in doc["paths"].as_object().unwrap() {
            let documented: Vec<String> = METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| m.to_uppercase())
                .collect();
            let url = app.url(&concrete(path));
            for method in ["TRACE", "PATCH", "PUT", "DELETE", "POST"] {
                if documented.iter().any(|m| m == method) {
                    continue;
                }
                let res = app
                    .client
                    .request(
                        reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                        &url,
                    )
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 405, "{method} {path}");
                let allow: Vec<String> = res.headers()["allow"]
                    .to_str()
                    .unwrap()
                    .split(", ")
                    .map(String::from)
                    .collect();
                let mut allow_sorted = allow.clone();
                allow_sorted.sort();
                let mut documented_sorted = documented.clone();
                documented_sorted.sort();
                assert_eq!(allow_sorted, documented_sorted, "{method} {path}: Allow");
                let body: Value = res.json().await.unwrap();
                assert!(
                    body["error"]
                        .as_str()
                        .unwrap()
                        .starts_with(&format!("{method} is not allowed on ")),
                    "{body}"
                );
            }
        }
        // A path no route has is still a 404.
        let res = app
            .client
            .patch(app.url("/no/such/path"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
    }
);
