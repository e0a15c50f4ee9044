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

use actix_web::{guard, web, Handler, Responder};

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
    },
    FigureRoute {
        path: "/api/v1/costs/jobs",
        params: &[Bounded::Month, Bounded::At, Bounded::Limit],
        register: |c, p| get(c, p, books::get_cost_jobs),
    },
    FigureRoute {
        path: "/api/v1/costs/focus",
        params: &[Bounded::Month, Bounded::At],
        register: |c, p| get(c, p, books::get_costs_focus),
    },
    FigureRoute {
        path: "/api/v1/funds",
        params: &[Bounded::Month, Bounded::At],
        register: |c, p| get(c, p, books::get_funds),
    },
    FigureRoute {
        path: "/api/v1/plans",
        params: &[Bounded::At],
        register: |c, p| get(c, p, plans::get_plans),
    },
    FigureRoute {
        path: "/api/v1/donations",
        params: &[Bounded::Month],
        register: |c, p| get(c, p, donations::list),
    },
    FigureRoute {
        path: "/api/v1/gate/{project}/{jobset}",
        params: &[Bounded::At],
        register: |c, p| get(c, p, gate::get_gate),
    },
    FigureRoute {
        path: "/api/v1/reconciliation",
        params: &[Bounded::Month, Bounded::At],
        register: |c, p| get(c, p, reconciliation::get_reconciliation),
    },
    FigureRoute {
        path: "/api/v1/expenses",
        params: &[Bounded::Month, Bounded::At],
        register: |c, p| get(c, p, reconciliation::get_expenses),
    },
];

pub fn configure(cfg: &mut web::ServiceConfig) {
    // The public figures first: a path of theirs asked with another method goes on to the
    // scope below (POST /api/v1/donations).
    for route in PUBLIC_FIGURES {
        (route.register)(cfg, route.path);
    }
    cfg.service(health::healthz)
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
        .service(webhooks::opencollective)
        .service(
            web::scope("/api/v1")
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
                .service(subscribers::remove),
        );
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

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
            let body = body.split('}').next().unwrap_or("");
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
