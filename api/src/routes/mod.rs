//! Routes, one file per resource.
pub mod books;
mod build_steps;
mod donations;
mod gate;
mod health;
mod jobs;
mod manual_expenses;
pub mod pages;
mod plans;
mod reconciliation;
mod subscribers;
pub mod subscriptions;
mod tokens;
mod webhooks;

pub use gate::from_snapshot_unrouted;

use actix_web::dev::HttpServiceFactory;
use actix_web::{guard, web, Handler, Responder};
use utoipa::openapi::path::{PathItem, Paths};
use utoipa::openapi::{RefOr, Schema};
use utoipa_actix_web::OpenApiFactory;

/// A query parameter of a public figure bounded by the domain (`buildfund_jobs::bounds`): the
/// route parses it into that type and answers a refusal with 400 (not a value of its kind) or
/// 422 (out of bounds), naming it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bounded {
    /// `at`: RFC 3339, from 1970 to now plus a minute.
    At,
    /// `month`: `YYYY-MM`, from 1970-01 to the current month.
    Month,
    /// `limit`: 1 to `MAX_LIMIT`.
    Limit,
}

/// A public figure route: `GET path` with its bounded query parameters. [`configure`]
/// registers these routes from [`PUBLIC_FIGURES`] and only from there, so the list is the
/// router's, and the bounds test (`tests/tests/bounds.rs`) covers every route in it.
pub struct FigureRoute {
    /// The full path as registered (`{name}` for a path segment).
    pub path: &'static str,
    pub params: &'static [Bounded],
    register: fn(&mut web::ServiceConfig, &'static str),
    /// Adds the handler's operation (its `#[utoipa::path]`) to the description.
    document: fn(&mut Registered),
}

/// `GET path` handled by `handler` (a resource guarded to GET, as `#[get]` makes it, so other
/// methods go on to the `/api/v1` scope).
fn get<F, Args>(cfg: &mut web::ServiceConfig, path: &'static str, handler: F)
where
    F: Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: Responder + 'static,
{
    cfg.service(web::resource(path).guard(guard::Get()).to(handler));
}

/// Every public figure route (no token), with the caller's values it takes.
pub const PUBLIC_FIGURES: &[FigureRoute] = &[
    FigureRoute {
        path: "/api/v1/costs",
        params: &[Bounded::Month, Bounded::At],
        register: |c, p| get(c, p, books::get_costs),
        document: |r| r.document(&books::__path_get_costs),
    },
    FigureRoute {
        path: "/api/v1/costs/jobs",
        params: &[Bounded::Month, Bounded::At, Bounded::Limit],
        register: |c, p| get(c, p, books::get_cost_jobs),
        document: |r| r.document(&books::__path_get_cost_jobs),
    },
    FigureRoute {
        path: "/api/v1/costs/focus",
        params: &[Bounded::Month, Bounded::At],
        register: |c, p| get(c, p, books::get_costs_focus),
        document: |r| r.document(&books::__path_get_costs_focus),
    },
    FigureRoute {
        path: "/api/v1/funds",
        params: &[Bounded::Month, Bounded::At],
        register: |c, p| get(c, p, books::get_funds),
        document: |r| r.document(&books::__path_get_funds),
    },
    FigureRoute {
        path: "/api/v1/plans",
        params: &[Bounded::At],
        register: |c, p| get(c, p, plans::get_plans),
        document: |r| r.document(&plans::__path_get_plans),
    },
    FigureRoute {
        path: "/api/v1/donations",
        params: &[Bounded::Month],
        register: |c, p| get(c, p, donations::list),
        document: |r| r.document(&donations::__path_list),
    },
    FigureRoute {
        path: GATE,
        params: &[Bounded::At],
        register: |c, p| get(c, p, gate::get_gate),
        document: |r| r.document(&gate::__path_get_gate),
    },
    FigureRoute {
        path: "/api/v1/reconciliation",
        params: &[Bounded::Month, Bounded::At],
        register: |c, p| get(c, p, reconciliation::get_reconciliation),
        document: |r| r.document(&reconciliation::__path_get_reconciliation),
    },
    FigureRoute {
        path: "/api/v1/expenses",
        params: &[Bounded::Month, Bounded::At],
        register: |c, p| get(c, p, reconciliation::get_expenses),
        document: |r| r.document(&reconciliation::__path_get_expenses),
    },
];

/// The answer of `GET /api/v1/gate/events` (`gate::events` writes it as `{"events": [...]}`),
/// for the description.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct GateEvents {
    events: Vec<gate::EventView>,
}

/// One route the router has: a method and the full path (`{name}` for a path segment).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    pub method: String,
    pub path: String,
}

/// What [`register`] did: the routes it registered (as the router matches them) and the
/// operations their handlers document, which make the OpenAPI description
/// ([`crate::openapi`]).
#[derive(Default)]
pub struct Registered {
    pub routes: Vec<Route>,
    pub paths: Paths,
    pub schemas: Vec<(String, RefOr<Schema>)>,
}

impl Registered {
    /// Adds the operations of a handler's `#[utoipa::path]`, their paths under `prefix`.
    fn document_under<T: OpenApiFactory>(&mut self, prefix: &str, handler: &T) {
        for (path, mut item) in handler.paths().paths {
            // A `HEAD` beside a `GET` (the pages): its own operation id, answers without a body.
            if let Some(head) = item.head.as_mut() {
                if let Some(id) = head.operation_id.as_mut() {
                    id.push_str("_head");
                }
                for response in head.responses.responses.values_mut() {
                    if let RefOr::T(r) = response {
                        r.content.clear();
                    }
                }
            }
            let mut paths = Paths::new();
            paths.paths.insert(format!("{prefix}{path}"), item);
            self.paths.merge(paths);
        }
        handler.schemas(&mut self.schemas);
    }

    fn document<T: OpenApiFactory>(&mut self, handler: &T) {
        self.document_under("", handler)
    }
}

/// The operations of a path item, by method.
pub fn methods_of(item: &PathItem) -> Vec<&'static str> {
    [
        ("GET", &item.get),
        ("PUT", &item.put),
        ("POST", &item.post),
        ("DELETE", &item.delete),
        ("OPTIONS", &item.options),
        ("HEAD", &item.head),
        ("PATCH", &item.patch),
        ("TRACE", &item.trace),
    ]
    .into_iter()
    .filter(|(_, op)| op.is_some())
    .map(|(m, _)| m)
    .collect()
}

/// Registers handlers on an actix `ServiceConfig` (or the scope being built) and records each
/// route with the methods and path the handler's route macro gives actix, and its operation.
struct Router<'a> {
    cfg: &'a mut web::ServiceConfig,
    scope: Option<(&'static str, actix_web::Scope)>,
    done: Registered,
}

impl Router<'_> {
    fn service<F>(&mut self, handler: F) -> &mut Self
    where
        F: HttpServiceFactory + OpenApiFactory + 'static,
    {
        let prefix = self.scope.as_ref().map_or("", |(p, _)| p);
        // The handler's path and methods as its route macro declares them to actix.
        for (path, item) in handler.paths().paths {
            for method in methods_of(&item) {
                self.done.routes.push(Route {
                    method: method.to_string(),
                    path: format!("{prefix}{path}"),
                });
            }
        }
        self.done.document_under(prefix, &handler);
        match self.scope.take() {
            Some((p, scope)) => self.scope = Some((p, scope.service(handler))),
            None => {
                self.cfg.service(handler);
            }
        }
        self
    }

    /// The handlers `add` registers, under `prefix`.
    fn scope(&mut self, prefix: &'static str, add: impl FnOnce(&mut Self)) {
        self.scope = Some((prefix, web::scope(prefix)));
        add(self);
        if let Some((_, scope)) = self.scope.take() {
            self.cfg.service(scope);
        }
    }

    fn figure(&mut self, route: &FigureRoute) {
        (route.register)(self.cfg, route.path);
        self.done.routes.push(Route {
            method: "GET".to_string(),
            path: route.path.to_string(),
        });
        (route.document)(&mut self.done);
    }
}

/// Registers every route on `cfg` and answers what was registered.
pub fn register(cfg: &mut web::ServiceConfig) -> Registered {
    let mut r = Router {
        cfg,
        scope: None,
        done: Registered::default(),
    };
    // The public figures first: a path of theirs asked with another method goes on to the
    // scope below (POST /api/v1/donations).
    for route in PUBLIC_FIGURES {
        r.figure(route);
    }
    r.service(health::healthz)
        .service(health::readyz)
        .service(health::metrics)
        .service(pages::index)
        .service(pages::reports)
        .service(pages::month)
        .service(subscriptions::subscribe)
        .service(subscriptions::confirm_page)
        .service(subscriptions::confirm)
        .service(subscriptions::unsubscribe_page)
        .service(subscriptions::unsubscribe)
        .service(webhooks::opencollective);
    r.scope("/api/v1", |s| {
        s.service(crate::openapi::openapi_json)
            .service(crate::openapi::reference_page)
            .service(build_steps::ingest_build_steps)
            .service(jobs::list_runs)
            .service(jobs::run_now)
            .service(donations::create)
            .service(manual_expenses::create)
            .service(gate::events)
            .service(gate::pause)
            .service(gate::override_pool)
            .service(gate::lift)
            .service(tokens::list)
            .service(tokens::create)
            .service(tokens::revoke)
            .service(subscribers::list)
            .service(subscribers::create)
            .service(subscribers::remove);
    });
    r.done
}

/// The methods the router takes on `path` (a request's path), in the order registered: none
/// for a path no route has. The fallback answers 405 with them (`Allow`) rather than 404.
pub fn methods_on(path: &str) -> Vec<&'static str> {
    static ROUTES: std::sync::OnceLock<Vec<Route>> = std::sync::OnceLock::new();
    let routes = ROUTES.get_or_init(|| registered().routes);
    let matches = |pattern: &str| {
        let (mut p, mut q) = (pattern.split('/'), path.split('/'));
        loop {
            match (p.next(), q.next()) {
                (None, None) => return true,
                (Some(want), Some(got)) => {
                    let variable = want.starts_with('{') && want.ends_with('}');
                    if !(variable && !got.is_empty() || want == got) {
                        return false;
                    }
                }
                _ => return false,
            }
        }
    };
    let mut methods: Vec<&'static str> = Vec::new();
    for route in routes.iter().filter(|r| matches(&r.path)) {
        let method = METHODS
            .iter()
            .copied()
            .find(|m| *m == route.method)
            .unwrap_or("GET");
        if !methods.contains(&method) {
            methods.push(method);
        }
    }
    methods
}

/// The gate's answer: from the snapshot in memory, or evaluated at `?at=`.
pub const GATE: &str = "/api/v1/gate/{project}/{jobset}";

/// Whether a request to `route` (its pattern, [`pattern_of`]) with `query` may compute a
/// month's books, and so runs in the instance's shared computations
/// (`buildfund_jobs::books::shared::Flights::scope`, in `startup.rs`): every route but the
/// health checks and the gate's answer from its snapshot (no query). Those two read nothing
/// the books compute (the gate's first snapshot, made in the request just after start, takes
/// the scope itself), and a health check must not pay for it.
pub fn may_compute_books(route: Option<&str>, query: &str) -> bool {
    match route {
        Some("/healthz" | "/readyz") => false,
        Some(GATE) => !query.is_empty(),
        _ => true,
    }
}

/// The route pattern a request's path matches (`/api/v1/gate/{project}/{jobset}`), as actix's
/// `HttpRequest::match_pattern` finds it, without its regular expressions: the first of the
/// registered patterns, in the order registered, whose segments are the path's, a `{name}`
/// standing for any non-empty segment; `None` when none does. The routes are all literal
/// segments and `{name}`s (no `{name:regex}`, no tail), registered at the top level before the
/// one scope, `/api/v1`, so the first match in that order is the router's; a unit test
/// compares both on every pattern and on paths that almost match.
pub fn pattern_of(path: &str) -> Option<&'static str> {
    // Each distinct pattern once, in the order registered, with its number of `/`.
    static PATTERNS: std::sync::OnceLock<Vec<(String, usize)>> = std::sync::OnceLock::new();
    let patterns = PATTERNS.get_or_init(|| {
        let mut seen: Vec<(String, usize)> = Vec::new();
        for route in registered().routes {
            if !seen.iter().any(|(p, _)| *p == route.path) {
                let slashes = route.path.bytes().filter(|b| *b == b'/').count();
                seen.push((route.path, slashes));
            }
        }
        seen
    });
    let slashes = path.bytes().filter(|b| *b == b'/').count();
    patterns
        .iter()
        .find(|(pattern, n)| *n == slashes && segments_match(pattern.as_bytes(), path.as_bytes()))
        .map(|(pattern, _)| pattern.as_str())
}

/// Whether `path` is `pattern` with each `{name}` (a whole segment) a non-empty segment.
fn segments_match(pattern: &[u8], path: &[u8]) -> bool {
    let (mut i, mut j) = (0, 0);
    while i < pattern.len() {
        if pattern[i] == b'{' {
            i += pattern[i..]
                .iter()
                .position(|b| *b == b'}')
                .map_or(pattern.len() - i, |k| k + 1);
            let start = j;
            while j < path.len() && path[j] != b'/' {
                j += 1;
            }
            if j == start {
                return false;
            }
        } else {
            if path.get(j) != Some(&pattern[i]) {
                return false;
            }
            i += 1;
            j += 1;
        }
    }
    j == path.len()
}

const METHODS: [&str; 8] = [
    "GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE",
];

pub fn configure(cfg: &mut web::ServiceConfig) {
    register(cfg);
}

/// What the server's router registers, from a router built for the purpose (never served).
pub fn registered() -> Registered {
    let mut done = None;
    let _ = actix_web::App::new().configure(|cfg| done = Some(register(cfg)));
    done.unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// `pattern_of` answers what actix's own lookup answers, on every registered pattern (with
    /// its `{name}`s filled in) and on paths that almost match one.
    #[actix_web::test]
    async fn pattern_of_is_the_routers_match_pattern() {
        use actix_web::{test, App, HttpResponse};
        let mut paths: Vec<String> = vec![
            "/".into(),
            "//".into(),
            "/api".into(),
            "/api/v1".into(),
            "/api/v1/".into(),
            "/api/v1/nothing".into(),
            "/api/v1x/costs".into(),
            "/api/v1/gate/events".into(),
            "/api/v1/gate/events/x".into(),
            "/api/v1/gate/nixpkgs".into(),
            "/api/v1/gate/nixpkgs/".into(),
            "/api/v1/gate//cuda".into(),
            "/api/v1/gate/nix%2Fpkgs/cuda%20x".into(),
            "/api/v1/gate/nixpkgs/cuda/more".into(),
            "/healthz/".into(),
            "/healthzz".into(),
            "/HEALTHZ".into(),
            "/reports/2026-10".into(),
            "/reports/".into(),
            "/no/such/route".into(),
        ];
        for route in super::registered().routes {
            let filled: Vec<String> = route
                .path
                .split('/')
                .map(|s| {
                    if s.starts_with('{') {
                        "x-1.y".into()
                    } else {
                        s.to_string()
                    }
                })
                .collect();
            paths.push(filled.join("/"));
            paths.push(format!("{}/", filled.join("/")));
            paths.push(route.path.clone());
        }
        let app = test::init_service(App::new().configure(super::configure).wrap_fn(|req, _| {
            let answer = format!("{:?}", req.match_pattern());
            std::future::ready(Ok(req.into_response(HttpResponse::Ok().body(answer))))
        }))
        .await;
        let mut matched = 0;
        for path in paths {
            let req = test::TestRequest::get().uri(&path).to_request();
            let actix =
                String::from_utf8(test::call_and_read_body(&app, req).await.to_vec()).unwrap();
            let uri: actix_web::http::Uri = path.parse().unwrap();
            let ours = format!("{:?}", super::pattern_of(uri.path()).map(str::to_string));
            assert_eq!(ours, actix, "{path:?}");
            matched += usize::from(actix != "None");
        }
        // Every route's filled-in pattern and the pattern itself, at least.
        assert!(matched >= 2 * super::registered().routes.len(), "{matched}");
        assert_eq!(
            super::pattern_of("/api/v1/gate/nixpkgs/cuda"),
            Some(super::GATE)
        );
    }

    /// The query structs of `src/routes` with an `at`, `month` or `limit` field.
    fn bounded_query_structs(source: &str) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        for block in source.split("pub struct ").skip(1) {
            let name: String = block
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let Some(body) = block.split_once('{').map(|(_, b)| b) else {
                continue;
            };
            // The body ends at the brace closing the struct (a `{4}` in an attribute does not).
            let body = body.split("\n}").next().unwrap_or("");
            let bounded = body.lines().any(|l| {
                let l = l.trim().trim_start_matches("pub ");
                ["at:", "month:", "limit:"].iter().any(|f| l.starts_with(f))
            });
            if bounded {
                found.insert(name);
            }
        }
        found
    }

    /// A GET handler declared with `#[get]`/`#[route]` (so registered outside
    /// [`super::PUBLIC_FIGURES`]) must not take an `at`, `month` or `limit`: a new public figure
    /// goes into the list, where the bounds test covers it.
    #[test]
    fn every_get_route_with_a_bounded_parameter_is_in_the_list() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/routes");
        let files: Vec<(String, String)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "rs"))
            .map(|p| {
                (
                    p.display().to_string(),
                    std::fs::read_to_string(&p).unwrap(),
                )
            })
            .collect();
        let structs: BTreeSet<String> = files
            .iter()
            .flat_map(|(_, s)| bounded_query_structs(s))
            .collect();
        assert!(structs.contains("MonthQuery") && structs.contains("JobsQuery"));
        // Admin lists take a `limit` of their own (not public figures).
        let admin = ["RunsQuery", "EventsQuery"];
        let mut offenders = Vec::new();
        for (path, source) in &files {
            for attr in source.split("#[").skip(1) {
                let attr = attr.trim_start_matches("actix_web::");
                let is_get = attr.starts_with("get(")
                    || (attr.starts_with("route(")
                        && attr.split(']').next().unwrap_or("").contains("\"GET\""));
                if !is_get {
                    continue;
                }
                let signature = attr.split(") ->").next().unwrap_or(attr);
                for name in structs.iter().filter(|s| !admin.contains(&s.as_str())) {
                    if signature.contains(&format!("Query<{name}>")) {
                        offenders.push(format!("{path}: {}", attr.lines().next().unwrap()));
                    }
                }
            }
        }
        assert!(
            offenders.is_empty(),
            "GET routes with at/month/limit outside routes::PUBLIC_FIGURES: {offenders:?}"
        );
    }
}
