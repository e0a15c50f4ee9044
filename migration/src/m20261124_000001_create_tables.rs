//! The whole data model of the first release. Money is `BIGINT` cents of the ledger currency,
//! instants are `TIMESTAMP WITH TIME ZONE` (UTC), and the start/stop of build steps are `BIGINT`
//! unix seconds so that the attribution query can clip intervals with plain integer arithmetic
//! on both databases.
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn ts(name: &'static str) -> ColumnDef {
    timestamp_with_time_zone(name)
}

fn ts_null(name: &'static str) -> ColumnDef {
    timestamp_with_time_zone_null(name)
}

/// (table, index name, columns, unique)
const INDEXES: &[(&str, &str, &[&str], bool)] = &[
    (
        "build_steps",
        "ux_build_steps_key",
        &["source", "build", "step"],
        true,
    ),
    ("build_steps", "ix_build_steps_start", &["start_ts"], false),
    ("build_steps", "ix_build_steps_stop", &["stop_ts"], false),
    ("jobsets", "ux_jobsets_name", &["project", "name"], true),
    (
        "donations",
        "ux_donations_key",
        &["source", "external_id"],
        true,
    ),
    (
        "donations",
        "ix_donations_occurred",
        &["occurred_at"],
        false,
    ),
    (
        "recurring_contributions",
        "ux_recurring_key",
        &["source", "external_id"],
        true,
    ),
    (
        "email_outbox",
        "ux_outbox_month_subscriber",
        &["month", "subscriber_id"],
        true,
    ),
    (
        "email_outbox",
        "ix_outbox_status",
        &["status", "next_attempt_at"],
        false,
    ),
    ("gate_events", "ix_gate_events_at", &["at"], false),
    ("pool_controls", "ix_pool_controls_pool", &["pool"], false),
    (
        "job_runs",
        "ux_job_runs_tick",
        &["job", "scheduled_for"],
        true,
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let tables = [
            // API tokens: only a SHA-256 of the secret is kept.
            Table::create()
                .table("api_tokens")
                .col(pk_auto("id"))
                .col(string("name"))
                .col(string("scope"))
                .col(string_uniq("token_hash"))
                .col(string("token_prefix"))
                .col(ts("created_at"))
                .col(ts_null("last_used_at"))
                .col(ts_null("revoked_at"))
                .to_owned(),
            // Funds, pools and machines: a copy of the configuration as last loaded, so that
            // the database alone tells what the books were computed with.
            Table::create()
                .table("funds")
                .col(string("slug").primary_key())
                .col(string("name"))
                .col(boolean("is_default"))
                .col(big_integer_null("monthly_goal_cents"))
                .col(big_integer("opening_balance_cents"))
                .col(big_integer("reserve_cents"))
                .col(text("accounts"))
                .col(text("tiers"))
                .col(ts("updated_at"))
                .to_owned(),
            Table::create()
                .table("pools")
                .col(string("slug").primary_key())
                .col(string("fund"))
                .col(integer("position"))
                .col(text("jobsets"))
                .col(big_integer_null("monthly_budget_cents"))
                .col(string("warn_at"))
                .col(ts("updated_at"))
                .to_owned(),
            Table::create()
                .table("machines")
                .col(string("name").primary_key())
                .col(text("aliases"))
                .col(integer("slots"))
                .col(string("cost_model"))
                .col(string("price"))
                .col(ts_null("active_from"))
                .col(ts_null("active_until"))
                .col(string_null("idle_fund"))
                .col(ts("updated_at"))
                .to_owned(),
            // Jobsets as seen in build steps.
            Table::create()
                .table("jobsets")
                .col(pk_auto("id"))
                .col(string("project"))
                .col(string("name"))
                .col(ts("first_seen"))
                .to_owned(),
            Table::create()
                .table("build_steps")
                .col(big_pk_auto("id"))
                .col(string("source"))
                .col(big_integer("build"))
                .col(integer("step"))
                .col(string("project"))
                .col(string("jobset"))
                .col(string_null("job"))
                .col(string_null("system"))
                .col(string("machine"))
                .col(big_integer("start_ts"))
                .col(big_integer("stop_ts"))
                .col(integer_null("status"))
                .col(ts("ingested_at"))
                .col(ts("updated_at"))
                .to_owned(),
            Table::create()
                .table("donations")
                .col(big_pk_auto("id"))
                .col(string("source"))
                .col(string("external_id"))
                .col(string("kind"))
                .col(ts("occurred_at"))
                .col(string("account_slug"))
                .col(string_null("tier_slug"))
                .col(string_null("contributor_name"))
                .col(string_null("contributor_slug"))
                .col(string_null("contributor_url"))
                .col(boolean("anonymous"))
                .col(big_integer("gross_cents"))
                .col(big_integer("fees_cents"))
                .col(big_integer("net_cents"))
                .col(string("original_amount"))
                .col(string("original_currency"))
                .col(string_null("refund_of"))
                .col(text_null("description"))
                .col(ts("created_at"))
                .col(ts("updated_at"))
                .to_owned(),
            Table::create()
                .table("recurring_contributions")
                .col(big_pk_auto("id"))
                .col(string("source"))
                .col(string("external_id"))
                .col(string("account_slug"))
                .col(string_null("tier_slug"))
                .col(string_null("contributor_name"))
                .col(string_null("contributor_slug"))
                .col(string_null("contributor_url"))
                .col(boolean("anonymous"))
                .col(string("frequency"))
                .col(big_integer("amount_cents"))
                .col(string("status"))
                .col(ts_null("started_at"))
                .col(ts("updated_at"))
                .to_owned(),
            Table::create()
                .table("subscribers")
                .col(big_pk_auto("id"))
                .col(string_uniq("email"))
                .col(string("status"))
                .col(ts("created_at"))
                .col(ts_null("confirmed_at"))
                .col(ts_null("unsubscribed_at"))
                .col(ts("updated_at"))
                .to_owned(),
            Table::create()
                .table("email_outbox")
                .col(big_pk_auto("id"))
                .col(string("month"))
                .col(big_integer("subscriber_id"))
                .col(string("email"))
                .col(string("status"))
                .col(integer("attempts"))
                .col(ts("next_attempt_at"))
                .col(text_null("last_error"))
                .col(string_null("message_id"))
                .col(text_null("smtp_response"))
                .col(ts("created_at"))
                .col(ts_null("sent_at"))
                .to_owned(),
            // Gate audit: every state change and admin action.
            Table::create()
                .table("gate_events")
                .col(big_pk_auto("id"))
                .col(ts("at"))
                .col(string("pool"))
                .col(string("kind"))
                .col(string_null("from_state"))
                .col(string_null("to_state"))
                .col(string_null("actor"))
                .col(text("reason"))
                .col(ts_null("until"))
                .col(text_null("details"))
                .to_owned(),
            // Admin pauses and overrides of a pool, active until lifted or expired.
            Table::create()
                .table("pool_controls")
                .col(big_pk_auto("id"))
                .col(string("pool"))
                .col(string("kind"))
                .col(text("reason"))
                .col(string("actor"))
                .col(ts("created_at"))
                .col(ts_null("expires_at"))
                .col(ts_null("lifted_at"))
                .col(string_null("lifted_by"))
                .to_owned(),
            Table::create()
                .table("job_runs")
                .col(big_pk_auto("id"))
                .col(string("job"))
                .col(ts("scheduled_for"))
                .col(ts("started_at"))
                .col(ts_null("finished_at"))
                .col(string("outcome"))
                .col(text_null("error"))
                .col(string("instance"))
                .to_owned(),
            Table::create()
                .table("job_leases")
                .col(string("job").primary_key())
                .col(string("holder"))
                .col(ts("acquired_at"))
                .col(ts("expires_at"))
                .to_owned(),
            // Resumable cursors of incremental syncs (OpenCollective, Hydra).
            Table::create()
                .table("sync_cursors")
                .col(string("name").primary_key())
                .col(text("value"))
                .col(ts("updated_at"))
                .to_owned(),
        ];
        for table in tables {
            manager.create_table(table).await?;
        }
        for (table, name, cols, unique) in INDEXES {
            let mut index = Index::create();
            index.name(*name).table(*table);
            for col in *cols {
                index.col(*col);
            }
            if *unique {
                index.unique();
            }
            manager.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "sync_cursors",
            "job_leases",
            "job_runs",
            "pool_controls",
            "gate_events",
            "email_outbox",
            "subscribers",
            "recurring_contributions",
            "donations",
            "build_steps",
            "jobsets",
            "machines",
            "pools",
            "funds",
            "api_tokens",
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
