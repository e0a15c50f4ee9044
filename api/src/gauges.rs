//! The farm's gauges in `/metrics`, the figures the API gives, for alerting: the funds' balance
//! and runway, the pools' spending, budget and state, the age of the gate's snapshot, each
//! job's last success, the outbox's pending messages and the latest OpenCollective check.
//!
//! `/metrics` is anonymous, so a scrape does no work that grows with the data: the funds' and
//! pools' figures come from the gate's in-memory snapshot (computed on each refresh, never per
//! scrape), and the database is asked one indexed lookup per job, one `COUNT` and one indexed
//! lookup of the latest OpenCollective check, at most once
//! every [`DB_FIGURES_MAX_AGE`] per instance however often it is scraped. Labels are bounded by
//! the configuration (funds, pools) and the code (jobs, states).
use buildfund_jobs::books::opencollective_check::{self, Check, CheckStatus};
use buildfund_jobs::email::queue;
use buildfund_jobs::gate::{Current, State};
use buildfund_jobs::scheduler::{self, Registry};
use chrono::{DateTime, Utc};
use prometheus::proto::MetricFamily;
use prometheus::{Gauge, GaugeVec, Opts};
use sea_orm::DatabaseConnection;
use std::time::{Duration, Instant};

/// `buildfund_fund_runway_seconds` is the API's whole days in Prometheus's base unit.
const SECONDS_A_DAY: f64 = 86_400.0;

/// How long the figures read from the database are reused.
pub const DB_FIGURES_MAX_AGE: Duration = Duration::from_secs(5);

const STATES: [State; 3] = [State::Open, State::Warn, State::Closed];

/// The figures that come from the database.
#[derive(Clone, Default)]
struct DbFigures {
    /// (job, unix seconds of its last `ok` end).
    last_success: Vec<(String, f64)>,
    /// None when the database did not answer.
    outbox_pending: Option<i64>,
    /// The latest OpenCollective check (None: none yet, or the database did not answer).
    check: Option<Check>,
}

/// The gauges' source of database figures, shared by the instance's workers.
#[derive(Default)]
pub struct Gauges {
    cache: tokio::sync::Mutex<Option<(Instant, DbFigures)>>,
}

/// Families built for one scrape, in a registry of their own (so concurrent scrapes never
/// see each other's half-set values).
struct Families {
    registry: prometheus::Registry,
}

impl Families {
    fn gauge(&self, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
        let g = GaugeVec::new(Opts::new(name, help), labels).expect("valid gauge");
        self.registry
            .register(Box::new(g.clone()))
            .expect("registered once");
        g
    }

    fn single(&self, name: &str, help: &str) -> Gauge {
        let g = Gauge::with_opts(Opts::new(name, help)).expect("valid gauge");
        self.registry
            .register(Box::new(g.clone()))
            .expect("registered once");
        g
    }
}

impl Gauges {
    pub fn new() -> Gauges {
        Gauges::default()
    }

    async fn db_figures(&self, db: &DatabaseConnection, jobs: &Registry) -> DbFigures {
        let mut cache = self.cache.lock().await;
        if let Some((at, figures)) = cache.as_ref() {
            if at.elapsed() < DB_FIGURES_MAX_AGE {
                return figures.clone();
            }
        }
        let last_success = match scheduler::last_successes(db, jobs.names()).await {
            Ok(runs) => runs
                .into_iter()
                .map(|(job, t)| (job, t.timestamp_micros() as f64 / 1e6))
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "metrics: cannot read the jobs' last successes");
                Vec::new()
            }
        };
        let outbox_pending = match queue::pending_count(db).await {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!(error = %e, "metrics: cannot count the outbox's pending messages");
                None
            }
        };
        let check = match opencollective_check::latest_check(db).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "metrics: cannot read the latest OpenCollective check");
                None
            }
        };
        let figures = DbFigures {
            last_success,
            outbox_pending,
            check,
        };
        *cache = Some((Instant::now(), figures.clone()));
        figures
    }

    /// Every gauge, from `gate` (the snapshot, its age as of `now`) and the database.
    pub async fn families(
        &self,
        gate: &Current,
        db: &DatabaseConnection,
        jobs: &Registry,
        now: DateTime<Utc>,
    ) -> Vec<MetricFamily> {
        let f = Families {
            registry: prometheus::Registry::new(),
        };
        let balance = f.gauge(
            "buildfund_fund_balance_cents",
            "The fund's balance in cents of the ledger currency, as of the gate's snapshot",
            &["fund"],
        );
        let runway = f.gauge(
            "buildfund_fund_runway_seconds",
            "How long the fund's balance lasts at the last 30 days' spending, in seconds (whole \
             days of the API's runway_days; +Inf: no spending)",
            &["fund"],
        );
        let spent = f.gauge(
            "buildfund_pool_spent_cents",
            "The pool's attributed cost this month, in cents, as of the gate's snapshot",
            &["pool"],
        );
        let budget = f.gauge(
            "buildfund_pool_budget_cents",
            "The pool's monthly budget in cents (pools without a budget have no series)",
            &["pool"],
        );
        let pool_state = f.gauge(
            "buildfund_pool_state",
            "1 for the pool's gate state in force (open, warn, closed), 0 for the others",
            &["pool", "state"],
        );
        let age = "buildfund_gate_snapshot_age_seconds";
        let age_help = "Seconds since the instant of the gate's snapshot (refreshed every minute)";
        let last_success = f.gauge(
            "buildfund_job_last_success_timestamp_seconds",
            "Unix time the job's last successful run ended (jobs that never succeeded have no series)",
            &["job"],
        );
        let outbox = "buildfund_outbox_pending";
        let outbox_help = "Email outbox messages not sent yet (pending, retry, sending)";
        if let Some(snapshot) = &gate.snapshot {
            for (fund, s) in &snapshot.funds {
                balance
                    .with_label_values(&[fund])
                    .set(s.balance_cents as f64);
                let seconds = s
                    .runway_days
                    .map_or(f64::INFINITY, |d| d as f64 * SECONDS_A_DAY);
                runway.with_label_values(&[fund]).set(seconds);
            }
            for (pool, g) in &snapshot.pools {
                spent.with_label_values(&[pool]).set(g.spent_cents as f64);
                if let Some(b) = g.budget_cents {
                    budget.with_label_values(&[pool]).set(b as f64);
                }
                for s in STATES {
                    let v = if g.state == s { 1.0 } else { 0.0 };
                    pool_state.with_label_values(&[pool, s.as_str()]).set(v);
                }
            }
            let millis = (now - snapshot.at).num_milliseconds().max(0);
            f.single(age, age_help).set(millis as f64 / 1000.0);
        }
        let db_figures = self.db_figures(db, jobs).await;
        for (job, t) in &db_figures.last_success {
            last_success.with_label_values(&[job]).set(*t);
        }
        if let Some(n) = db_figures.outbox_pending {
            f.single(outbox, outbox_help).set(n as f64);
        }
        if let Some(c) = &db_figures.check {
            let label = [c.collective.as_str()];
            f.gauge(
                "buildfund_opencollective_check_timestamp_seconds",
                "Unix time of the latest OpenCollective check (after each sync)",
                &["collective"],
            )
            .with_label_values(&label)
            .set(c.checked_at.timestamp_micros() as f64 / 1e6);
            let status = f.gauge(
                "buildfund_opencollective_check_status",
                "1 for the latest OpenCollective check's status (ok, drift, skipped), 0 for the others",
                &["collective", "status"],
            );
            for s in [CheckStatus::Ok, CheckStatus::Drift, CheckStatus::Skipped] {
                let v = if c.status == s { 1.0 } else { 0.0 };
                status
                    .with_label_values(&[&c.collective, s.as_str()])
                    .set(v);
            }
            if let Some(drift) = c.drift_cents {
                f.gauge(
                    "buildfund_opencollective_drift_cents",
                    "OpenCollective's balance change minus the ledger's, in cents, at the latest check (0: they agree; no series when skipped)",
                    &["collective"],
                )
                .with_label_values(&label)
                .set(drift as f64);
            }
        }
        f.registry.gather()
    }
}
