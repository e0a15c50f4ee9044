//! A copy of the configured funds, pools and machines in the database, refreshed at every
//! start, so the database alone tells what the books were computed with (and when: `now`).
use crate::config::Config;
use buildfund_entity::{funds, machines, pools};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, EntityTrait, Set, TransactionSession, TransactionTrait};

pub async fn store(
    db: &impl TransactionTrait,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    let txn = db.begin().await?;
    funds::Entity::delete_many().exec(&txn).await?;
    pools::Entity::delete_many().exec(&txn).await?;
    machines::Entity::delete_many().exec(&txn).await?;
    let fund_rows = config.funds.iter().map(|f| funds::ActiveModel {
        slug: Set(f.slug.clone()),
        name: Set(f.name.clone()),
        is_default: Set(f.default),
        monthly_goal_cents: Set(f.monthly_goal_cents),
        opening_balance_cents: Set(f.opening_balance_cents),
        reserve_cents: Set(f.reserve_cents),
        accounts: Set(serde_json::to_string(&f.accounts).unwrap_or_default()),
        tiers: Set(serde_json::to_string(&f.tiers).unwrap_or_default()),
        updated_at: Set(now),
    });
    insert_all(&txn, fund_rows.collect()).await?;
    let pool_rows = config
        .pools
        .iter()
        .enumerate()
        .map(|(i, p)| pools::ActiveModel {
            slug: Set(p.slug.clone()),
            fund: Set(p.fund.clone()),
            position: Set(i as i32),
            jobsets: Set(serde_json::to_string(&p.jobsets).unwrap_or_default()),
            monthly_budget_cents: Set(p.monthly_budget_cents),
            warn_at: Set(p.warn_at.to_string()),
            updated_at: Set(now),
        });
    insert_all(&txn, pool_rows.collect()).await?;
    // A machine's row holds the terms in force now; its dated changes are in the config (and
    // its fingerprint) only.
    let machine_rows = config.machines.iter().map(|m| {
        let terms = m.terms_at(now.timestamp());
        machines::ActiveModel {
            name: Set(m.name.clone()),
            aliases: Set(serde_json::to_string(&m.aliases).unwrap_or_default()),
            slots: Set(terms.slots as i32),
            cost_model: Set(terms.cost.kind().to_string()),
            price: Set(terms.cost.price().to_string()),
            active_from: Set(m.active_from),
            active_until: Set(m.active_until),
            idle_fund: Set(Some(m.idle_fund.clone())),
            updated_at: Set(now),
        }
    });
    insert_all(&txn, machine_rows.collect()).await?;
    txn.commit().await
}

async fn insert_all<A>(db: &impl ConnectionTrait, rows: Vec<A>) -> Result<(), sea_orm::DbErr>
where
    A: sea_orm::ActiveModelTrait,
{
    for chunk in rows.chunks(500) {
        if !chunk.is_empty() {
            <A::Entity as EntityTrait>::insert_many(chunk.to_vec())
                .exec(db)
                .await?;
        }
    }
    Ok(())
}
