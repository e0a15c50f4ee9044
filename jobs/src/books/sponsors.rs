//! The donors the pages show: the sponsors of a window grouped by contributor, and the latest
//! and the month's donation records as the public API shows them.
use crate::books::donations::{public, PublicDonation, ANONYMOUS};
use crate::books::BooksError;
use crate::calendar::{Month, Period};
use crate::config::Config;
use buildfund_entity::donations;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, Func};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Serialize;
use std::collections::HashMap;

/// A contributor of the month (or of all time), by net amount: a name and a profile link,
/// never an email; every anonymous or incognito contribution is under one "Anonymous".
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Sponsor {
    pub name: String,
    pub url: Option<String>,
    pub anonymous: bool,
    pub net_cents: i64,
    pub donations: i64,
}

/// (anonymous, slug, name, url, sum of net cents, records, latest record id) of one
/// contributor group.
type SponsorRow = (
    bool,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    i64,
    i64,
);

/// Contributors of the records dated in `[from, to)` by net amount (largest first, then
/// name), those whose net is above zero; at most `limit` when given. One query; the grouping
/// by contributor is done here so a renamed profile stays one sponsor (keyed by slug, else
/// name), shown with the name and link of its latest record.
pub async fn sponsors(
    db: &impl ConnectionTrait,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: Option<usize>,
) -> Result<Vec<Sponsor>, BooksError> {
    use donations::Column as D;
    if from >= to {
        return Ok(Vec::new());
    }
    let rows: Vec<SponsorRow> = donations::Entity::find()
        .select_only()
        .columns([
            D::Anonymous,
            D::ContributorSlug,
            D::ContributorName,
            D::ContributorUrl,
        ])
        .column_as(
            Expr::from(Func::cast_as(
                Func::sum(Expr::col(D::NetCents)),
                Alias::new("BIGINT"),
            )),
            "net",
        )
        .column_as(D::Id.count(), "n")
        .column_as(D::Id.max(), "latest")
        .filter(D::OccurredAt.gte(from))
        .filter(D::OccurredAt.lt(to))
        .group_by(D::Anonymous)
        .group_by(D::ContributorSlug)
        .group_by(D::ContributorName)
        .group_by(D::ContributorUrl)
        .into_tuple()
        .all(db)
        .await?;
    let mut by_key: HashMap<String, (Sponsor, i64)> = HashMap::new();
    for (anonymous, slug, name, url, net, n, latest) in rows {
        let (key, sponsor) = if anonymous {
            (
                String::new(),
                Sponsor {
                    name: ANONYMOUS.into(),
                    url: None,
                    anonymous: true,
                    net_cents: 0,
                    donations: 0,
                },
            )
        } else {
            let shown = name
                .clone()
                .or_else(|| slug.clone())
                .unwrap_or_else(|| "Unknown".into());
            let key = match &slug {
                Some(s) => format!("s:{s}"),
                None => format!("n:{shown}"),
            };
            (
                key,
                Sponsor {
                    name: shown,
                    url,
                    anonymous: false,
                    net_cents: 0,
                    donations: 0,
                },
            )
        };
        let (e, e_latest) = by_key.entry(key).or_insert((sponsor.clone(), latest));
        if latest > *e_latest {
            // A later record of the same contributor: its name and link are the current ones.
            e.name = sponsor.name;
            e.url = sponsor.url;
            *e_latest = latest;
        }
        e.net_cents = crate::money::add_cents(e.net_cents, net)?;
        e.donations += n;
    }
    let mut out: Vec<Sponsor> = by_key
        .into_values()
        .map(|(s, _)| s)
        .filter(|s| s.net_cents > 0)
        .collect();
    out.sort_by(|a, b| b.net_cents.cmp(&a.net_cents).then(a.name.cmp(&b.name)));
    if let Some(limit) = limit {
        out.truncate(limit);
    }
    Ok(out)
}

/// All-time top sponsors: `[ledger_start, at)`.
pub async fn top_sponsors(
    db: &impl ConnectionTrait,
    config: &Config,
    at: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<Sponsor>, BooksError> {
    sponsors(db, config.ledger_start, at, Some(limit)).await
}

/// The latest records before `at`, newest first, as the public API shows them.
pub async fn recent_donations(
    db: &impl ConnectionTrait,
    config: &Config,
    at: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<PublicDonation>, BooksError> {
    Ok(donations::Entity::find()
        .filter(donations::Column::OccurredAt.lt(at))
        .filter(donations::Column::OccurredAt.gte(config.ledger_start))
        .order_by_desc(donations::Column::OccurredAt)
        .order_by_desc(donations::Column::Id)
        .limit(limit)
        .all(db)
        .await?
        .iter()
        .map(|m| public(config, m))
        .collect())
}

/// Every record dated in the month (to `at`), oldest first, as the public API shows them.
pub async fn month_donations(
    db: &impl ConnectionTrait,
    config: &Config,
    month: Month,
    at: DateTime<Utc>,
) -> Result<Vec<PublicDonation>, BooksError> {
    let (from, to) = month_bounds(&Period::new(month, at, config.ledger_start));
    if from >= to {
        return Ok(Vec::new());
    }
    Ok(donations::Entity::find()
        .filter(donations::Column::OccurredAt.gte(from))
        .filter(donations::Column::OccurredAt.lt(to))
        .order_by_asc(donations::Column::OccurredAt)
        .order_by_asc(donations::Column::Id)
        .all(db)
        .await?
        .iter()
        .map(|m| public(config, m))
        .collect())
}

/// The period's window (the month clipped to `[ledger_start, at)`) as instants (empty when
/// nothing is left).
pub fn month_bounds(period: &Period) -> (DateTime<Utc>, DateTime<Utc>) {
    let ts = |s: i64| DateTime::from_timestamp(s, 0).expect("valid instant");
    match period.window {
        Some(w) => (ts(w.start), ts(w.end)),
        None => (period.start, period.start),
    }
}
