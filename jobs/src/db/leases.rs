//! Leases with a fencing token (`job_leases`): the one instance that may do a piece of work
//! (a scheduled job's run, the gate's Hydra round) until `expires_at`, renewed while it works.
//!
//! Each acquisition adds one to the row's `token`. Renewal and [`Lease::check`] only succeed
//! for the holder with the current token and an unexpired lease, so an instance that was paused
//! past its lease (a long GC, a stalled network) and whose lease another instance took learns
//! it at its next renewal or check and stops, instead of writing over the new holder's work.
use crate::clock::Clock;
use buildfund_entity::job_leases;
use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{ConnectionTrait, DbErr, EntityTrait, ExprTrait};

/// A lease this instance holds.
#[derive(Clone, Debug)]
pub struct Lease {
    pub name: String,
    pub holder: String,
    pub token: i64,
    pub duration: Duration,
}

/// Takes the lease `name` for `holder` at `now` unless a live one exists (the holder's own
/// included: work never overlaps itself). `Err(holder)` names who has it.
pub async fn acquire(
    db: &impl ConnectionTrait,
    name: &str,
    holder: &str,
    duration: Duration,
    now: DateTime<Utc>,
) -> Result<Result<Lease, String>, DbErr> {
    use job_leases::Column as L;
    let insert = Query::insert()
        .into_table(job_leases::Entity)
        .columns([L::Job, L::Holder, L::AcquiredAt, L::ExpiresAt, L::Token])
        .values_panic([
            Expr::val(name),
            Expr::val(holder),
            Expr::val(now),
            Expr::val(now + duration),
            Expr::val(1i64),
        ])
        .on_conflict(OnConflict::column(L::Job).do_nothing().to_owned())
        .to_owned();
    let taken = db.execute(&insert).await?.rows_affected() == 1 || {
        let take = Query::update()
            .table(job_leases::Entity)
            .value(L::Holder, holder)
            .value(L::AcquiredAt, now)
            .value(L::ExpiresAt, now + duration)
            .value(L::Token, Expr::col(L::Token).add(1))
            .and_where(Expr::col(L::Job).eq(name))
            .and_where(Expr::col(L::ExpiresAt).lt(now))
            .to_owned();
        db.execute(&take).await?.rows_affected() == 1
    };
    let row = job_leases::Entity::find_by_id(name.to_string())
        .one(db)
        .await?;
    match row {
        Some(r) if taken && r.holder == holder => Ok(Ok(Lease {
            name: name.to_string(),
            holder: holder.to_string(),
            token: r.token,
            duration,
        })),
        Some(r) => Ok(Err(r.holder)),
        None => Ok(Err("another instance".into())),
    }
}

impl Lease {
    fn mine(&self) -> sea_orm::sea_query::SimpleExpr {
        use job_leases::Column as L;
        Expr::col(L::Job)
            .eq(self.name.as_str())
            .and(Expr::col(L::Holder).eq(self.holder.as_str()))
            .and(Expr::col(L::Token).eq(self.token))
    }

    /// Extends the lease from `now`; `false` when it was lost (expired by `now`, or taken with
    /// a newer token).
    pub async fn renew(
        &self,
        db: &impl ConnectionTrait,
        now: DateTime<Utc>,
    ) -> Result<bool, DbErr> {
        let renew = Query::update()
            .table(job_leases::Entity)
            .value(job_leases::Column::ExpiresAt, now + self.duration)
            .and_where(self.mine())
            .and_where(Expr::col(job_leases::Column::ExpiresAt).gt(now))
            .to_owned();
        Ok(db.execute(&renew).await?.rows_affected() == 1)
    }

    /// Whether the lease is still this instance's, unexpired at `now`: checked before each
    /// write or outside action the lease guards.
    pub async fn check(
        &self,
        db: &impl ConnectionTrait,
        now: DateTime<Utc>,
    ) -> Result<bool, DbErr> {
        let row = job_leases::Entity::find_by_id(self.name.clone())
            .one(db)
            .await?;
        Ok(row.is_some_and(|r| {
            r.holder == self.holder && r.token == self.token && r.expires_at > now
        }))
    }

    /// Gives the lease up (only if still this one).
    pub async fn release(&self, db: &impl ConnectionTrait) -> Result<(), DbErr> {
        let release = Query::delete()
            .from_table(job_leases::Entity)
            .and_where(self.mine())
            .to_owned();
        db.execute(&release).await.map(|_| ())
    }

    /// Renews the lease every third of its duration until it is lost; returns then. A renewal
    /// the database does not answer is retried; once the lease has expired (by `clock`) it is
    /// lost.
    pub async fn keep(&self, db: &impl ConnectionTrait, clock: &Clock) {
        let every = (self.duration / 3)
            .to_std()
            .unwrap_or(std::time::Duration::from_secs(1));
        loop {
            tokio::time::sleep(every).await;
            match self.renew(db, clock.now()).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(lease = %self.name, token = self.token, "lease lost; stopping its work");
                    return;
                }
                Err(e) => tracing::warn!(lease = %self.name, error = %e, "cannot renew the lease"),
            }
        }
    }
}

/// This process's name as a lease holder: `host:pid:random`.
pub fn instance_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
    format!(
        "{host}:{}:{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}
