//! Routes, one file per resource.
pub(crate) mod books;
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

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
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
                .service(books::get_costs)
                .service(books::get_cost_jobs)
                .service(books::get_costs_focus)
                .service(books::get_funds)
                .service(plans::get_plans)
                .service(jobs::list_runs)
                .service(jobs::run_now)
                .service(donations::list)
                .service(donations::create)
                .service(manual_expenses::create)
                .service(reconciliation::get_expenses)
                .service(reconciliation::get_reconciliation)
                .service(gate::events)
                .service(gate::get_gate)
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
