//! The OpenAPI 3.1 description of the HTTP interface, generated from the code: every handler
//! carries a `#[utoipa::path]` (its parameters with their bounds, its request body, every status
//! it answers with its body), the request and response types derive `ToSchema`, and the router
//! ([`crate::routes::register`]) collects the operations while it registers the handlers, so
//! the document holds exactly the routes the server has (docs/src/http-api.md, "OpenAPI").
//!
//! Served as JSON at `GET /api/v1/openapi.json` and as a plain HTML reference page at
//! `GET /api/v1/docs` (rendered here from the same document: no script, nothing fetched from
//! elsewhere, so it works offline and under the pages' Content-Security-Policy).
use crate::routes::{self, Registered};
use actix_web::http::header;
use actix_web::{get, HttpResponse};
use askama::Template;
use serde::Serialize;
use serde_json::Value;
use std::sync::OnceLock;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi, ToSchema};

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/api/v1/openapi.json";
/// Where the reference page is served.
pub const REFERENCE_PATH: &str = "/api/v1/docs";
/// The name of the bearer-token security scheme; an operation's requirement names the scopes
/// whose tokens it takes (`admin` takes every scope's operations).
pub const BEARER: &str = "bearer";

/// The body of every JSON error (interfaces.md, "Errors"): `error` says what is wrong; for a
/// refused field `details` holds `{"field", "message"}` objects naming each, for a refused
/// build-step batch the records' problems (`{"line", "record", "field", "message"}`).
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
    pub details: Vec<serde_json::Map<String, Value>>,
}

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("bf_…")
                    .description(Some(
                        "An API token (`buildfund token create --scope SCOPE`, or \
                         `POST /api/v1/tokens`) as `Authorization: Bearer TOKEN`. Each token has \
                         one scope: `ingest` (upload build steps), `scheduler` (the gate's audit) \
                         or `admin` (everything, the other two scopes included). An operation \
                         lists the scopes whose tokens it takes; without a token it answers 401, \
                         with a token of another scope 403.",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "buildfund",
        description = "Sponsorship and cost tracking of a community build farm: the public \
            figures (costs, funds, plans, donations, reconciliation), the budget gate for \
            schedulers, and the admin operations. Money is integer cents of the ledger currency, \
            instants are RFC 3339 in UTC, durations integer seconds. Errors are JSON \
            `{\"error\", \"details\"}` (the HTML pages answer HTML). The contract is \
            docs/contract/interfaces.md.",
        license(name = "MIT OR Apache-2.0"),
    ),
    components(schemas(ErrorBody)),
    modifiers(&Security),
    tags(
        (name = "figures", description = "Public figures: no token."),
        (name = "gate", description = "The budget gate: may a jobset build now?"),
        (name = "ingest", description = "Build steps in."),
        (name = "admin", description = "Donations, expenses, tokens, subscribers and jobs: admin token."),
        (name = "pages", description = "The public HTML pages and the subscription flow."),
        (name = "operations", description = "Health, readiness, metrics, webhooks, this description."),
    )
)]
struct ApiDoc;

/// The document for the operations `registered` collected, on the base above.
pub fn document_of(registered: Registered) -> Document {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc.paths.merge(registered.paths);
    let components = doc.components.get_or_insert_with(Default::default);
    for (name, schema) in registered.schemas {
        components.schemas.entry(name).or_insert(schema);
    }
    doc
}

/// The document of the server's router, made once.
pub fn document() -> &'static Document {
    static DOC: OnceLock<Document> = OnceLock::new();
    DOC.get_or_init(|| document_of(routes::registered()))
}

fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        serde_json::to_string(document()).unwrap_or_else(|e| {
            // A document of plain maps always serializes; should it not, say so in the body.
            tracing::error!(error = %e, "the OpenAPI document did not serialize");
            String::from("{}")
        })
    })
}

/// This description, OpenAPI 3.1 as JSON.
#[utoipa::path(
    operation_id = "openapi_document",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document of this server.",
        content_type = "application/json", body = Object)),
)]
#[get("/openapi.json")]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(document_json())
}

/// The API reference: this description as a plain HTML page (no script).
#[utoipa::path(
    operation_id = "api_reference",
    tag = "operations",
    responses((status = 200, description = "The reference page.",
        content_type = "text/html; charset=utf-8", body = String)),
)]
#[get("/docs")]
pub async fn reference_page() -> HttpResponse {
    static PAGE: OnceLock<String> = OnceLock::new();
    let body = PAGE.get_or_init(|| {
        let doc: Value = serde_json::from_str(document_json()).unwrap_or(Value::Null);
        let page = reference(&doc);
        page.render().unwrap_or_else(|e| {
            tracing::error!(error = %e, "the API reference did not render");
            format!("The API reference could not be rendered; the document is at {DOCUMENT_PATH}.")
        })
    });
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(body.as_str())
}

// ---------------------------------------------------------------------------------------------
// The reference page: a view of the document's JSON.

#[derive(Template)]
#[template(path = "pages/api.html")]
pub struct ReferencePage {
    pub title: String,
    pub version: String,
    pub description: String,
    pub security: String,
    pub tags: Vec<TagView>,
    pub schemas: Vec<SchemaView>,
}

pub struct TagView {
    pub name: String,
    pub description: String,
    pub operations: Vec<OperationView>,
}

pub struct OperationView {
    pub anchor: String,
    pub method: String,
    pub path: String,
    pub summary: String,
    pub description: String,
    /// "none" or the scopes whose tokens it takes.
    pub auth: String,
    pub params: Vec<ParamView>,
    /// Content type and schema of the request body, if any.
    pub body: Vec<(String, String)>,
    pub responses: Vec<ResponseView>,
}

pub struct ParamView {
    pub name: String,
    pub location: String,
    pub required: bool,
    pub kind: String,
    pub description: String,
}

pub struct ResponseView {
    pub status: String,
    pub description: String,
    /// Content type and schema of each body.
    pub content: Vec<(String, String)>,
}

pub struct SchemaView {
    pub name: String,
    pub description: String,
    pub kind: String,
    pub fields: Vec<ParamView>,
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}

/// A schema in a few words: its type or reference, and its bounds (pattern, range, length,
/// format, choices).
pub fn describe(schema: &Value) -> String {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return r.rsplit('/').next().unwrap_or(r).to_string();
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(list) = schema.get(key).and_then(Value::as_array) {
            let parts: Vec<String> = list.iter().map(describe).collect();
            let sep = if key == "allOf" { " & " } else { " | " };
            return parts.join(sep);
        }
    }
    let mut kind = match schema.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts.iter().map(text).collect::<Vec<_>>().join(" | "),
        _ => String::from("any"),
    };
    if kind.starts_with("array") {
        if let Some(items) = schema.get("items") {
            kind = kind.replacen("array", &format!("array of {}", describe(items)), 1);
        }
    }
    if let Some(extra) = schema.get("additionalProperties").filter(|v| v.is_object()) {
        kind = kind.replacen("object", &format!("map of {}", describe(extra)), 1);
    }
    let mut bounds = Vec::new();
    if let Some(f) = schema.get("format").and_then(Value::as_str) {
        bounds.push(format!("format {f}"));
    }
    if let Some(p) = schema.get("pattern").and_then(Value::as_str) {
        bounds.push(format!("pattern {p}"));
    }
    match (schema.get("minimum"), schema.get("maximum")) {
        (Some(lo), Some(hi)) => bounds.push(format!("{lo} to {hi}")),
        (Some(lo), None) => bounds.push(format!("at least {lo}")),
        (None, Some(hi)) => bounds.push(format!("at most {hi}")),
        _ => {}
    }
    match (schema.get("minLength"), schema.get("maxLength")) {
        (Some(lo), Some(hi)) => bounds.push(format!("{lo} to {hi} characters")),
        (Some(lo), None) => bounds.push(format!("at least {lo} characters")),
        (None, Some(hi)) => bounds.push(format!("at most {hi} characters")),
        _ => {}
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        bounds.push(format!("one of {}", values.join(", ")));
    }
    if bounds.is_empty() {
        kind
    } else {
        format!("{kind} ({})", bounds.join("; "))
    }
}

fn content(v: Option<&Value>) -> Vec<(String, String)> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(ct, c)| {
                    (
                        ct.clone(),
                        c.get("schema").map(describe).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn auth(op: &Value) -> String {
    let Some(reqs) = op.get("security").and_then(Value::as_array) else {
        return String::from("none");
    };
    let scopes: Vec<String> = reqs
        .iter()
        .filter_map(|r| r.get(BEARER).and_then(Value::as_array))
        .flat_map(|s| s.iter().map(text))
        .collect();
    if scopes.is_empty() {
        String::from("none")
    } else {
        format!("bearer token of scope {}", scopes.join(" or "))
    }
}

/// The reference page of the document `doc` (its JSON).
pub fn reference(doc: &Value) -> ReferencePage {
    let info = &doc["info"];
    let mut tags: Vec<TagView> = doc["tags"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .map(|t| TagView {
                    name: text(&t["name"]),
                    description: text(&t["description"]),
                    operations: Vec::new(),
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            let Some(item) = item.as_object() else {
                continue;
            };
            for (method, op) in item {
                if !op.is_object() {
                    continue;
                }
                let params = op["parameters"]
                    .as_array()
                    .map(|ps| {
                        ps.iter()
                            .map(|p| ParamView {
                                name: text(&p["name"]),
                                location: text(&p["in"]),
                                required: p["required"].as_bool().unwrap_or(false),
                                kind: describe(&p["schema"]),
                                description: text(&p["description"]),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let responses = op["responses"]
                    .as_object()
                    .map(|rs| {
                        rs.iter()
                            .map(|(status, r)| ResponseView {
                                status: status.clone(),
                                description: text(&r["description"]),
                                content: content(r.get("content")),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let view = OperationView {
                    anchor: text(&op["operationId"]),
                    method: method.to_uppercase(),
                    path: path.clone(),
                    summary: text(&op["summary"]),
                    description: text(&op["description"]),
                    auth: auth(op),
                    params,
                    body: content(op["requestBody"].get("content")),
                    responses,
                };
                let tag = op["tags"][0].as_str().unwrap_or("other");
                match tags.iter_mut().find(|t| t.name == tag) {
                    Some(t) => t.operations.push(view),
                    None => tags.push(TagView {
                        name: tag.to_string(),
                        description: String::new(),
                        operations: vec![view],
                    }),
                }
            }
        }
    }
    let schemas = doc["components"]["schemas"]
        .as_object()
        .map(|ss| {
            ss.iter()
                .map(|(name, s)| {
                    let required: Vec<&str> = s["required"]
                        .as_array()
                        .map(|r| r.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    let fields = s["properties"]
                        .as_object()
                        .map(|ps| {
                            ps.iter()
                                .map(|(field, p)| ParamView {
                                    name: field.clone(),
                                    location: String::new(),
                                    required: required.contains(&field.as_str()),
                                    kind: describe(p),
                                    description: text(&p["description"]),
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    SchemaView {
                        name: name.clone(),
                        description: text(&s["description"]),
                        kind: describe(s),
                        fields,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let security = doc["components"]["securitySchemes"][BEARER]["description"]
        .as_str()
        .unwrap_or("")
        .to_string();
    ReferencePage {
        title: text(&info["title"]),
        version: text(&info["version"]),
        description: text(&info["description"]),
        security,
        tags,
        schemas,
    }
}
