//! `[schedule]` (cron expressions of the jobs) and `[rates]` (conversion into the ledger
//! currency).
use super::walker::Walker;
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::str::FromStr;
use toml::Table;

/// The scheduled jobs and their default cron expressions (six fields:
/// `sec min hour day-of-month month day-of-week`, UTC).
pub const DEFAULT_SCHEDULE: &[(&str, &str)] = &[
    ("opencollective_sync", "0 */15 * * * *"),
    ("hydra_pull", "0 */5 * * * *"),
    ("gate_refresh", "0 * * * * *"),
    ("outbox_drain", "30 * * * * *"),
    ("monthly_report", "0 0 9 1 * *"),
];

#[derive(Clone, Debug)]
pub struct JobSchedule {
    pub expression: String,
    pub schedule: cron::Schedule,
}

impl Walker {
    pub(super) fn schedule(&mut self, t: &Table) -> BTreeMap<String, JobSchedule> {
        let mut exprs: BTreeMap<String, String> = DEFAULT_SCHEDULE
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if let Some(s) = self.table(t, "schedule") {
            let known: Vec<&str> = DEFAULT_SCHEDULE.iter().map(|(k, _)| *k).collect();
            self.unknown_keys(s, "schedule", &known);
            for key in known {
                if let Some(expr) = self.string(s, "schedule", key) {
                    exprs.insert(key.to_string(), expr);
                }
            }
        }
        let mut out = BTreeMap::new();
        for (job, expression) in exprs {
            if expression.trim().is_empty() {
                continue; // disabled
            }
            match cron::Schedule::from_str(&expression) {
                Ok(schedule) => {
                    out.insert(job, JobSchedule { expression, schedule });
                }
                Err(e) => self.problem(
                    format!("schedule.{job}"),
                    format!("{expression:?} is not a cron expression (sec min hour day month weekday): {e}"),
                ),
            }
        }
        out
    }

    pub(super) fn rates(&mut self, t: &Table, ledger: &str) -> BTreeMap<String, Decimal> {
        let mut out = BTreeMap::new();
        let Some(r) = self.table(t, "rates") else {
            return out;
        };
        for key in r.keys() {
            let path = format!("rates.{key}");
            if !(key.len() == 3 && key.chars().all(|c| c.is_ascii_uppercase())) || key == ledger {
                self.problem(
                    &path,
                    "must be an ISO 4217 code other than the ledger currency",
                );
                continue;
            }
            let Some(text) = self.amount_text(r, "rates", key) else {
                continue;
            };
            match Decimal::from_str(text.trim()) {
                Ok(d) if d > Decimal::ZERO => {
                    out.insert(key.clone(), d);
                }
                _ => self.problem(&path, format!("{text:?} is not a positive decimal rate")),
            }
        }
        out
    }
}
