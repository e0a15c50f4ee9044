//! What a report reads beside the books: the month's public gate events, worded without the
//! names admins acted under.
use super::{view, GateEvent, PUBLIC_GATE_EVENTS};
use crate::calendar::{rfc3339, Period};
use buildfund_entity::{gate_events, pool_controls};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

/// The gate state changes and admin actions dated in `period`'s month before its instant,
/// oldest first ([`PUBLIC_GATE_EVENTS`] only), their reasons without admin names.
pub(super) async fn public_gate_events(
    db: &impl ConnectionTrait,
    period: &Period,
) -> Result<Vec<GateEvent>, DbErr> {
    let actors = admin_actors(db).await?;
    Ok(gate_events::Entity::find()
        .filter(gate_events::Column::Kind.is_in(PUBLIC_GATE_EVENTS.iter().copied()))
        .filter(gate_events::Column::At.gte(period.start))
        .filter(gate_events::Column::At.lt(period.as_of))
        .order_by_asc(gate_events::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(|e| GateEvent {
            at: rfc3339(e.at),
            reason: view::admin_free(&e.reason, &actors),
            pool: e.pool,
            kind: e.kind.as_str().into(),
            from_state: e.from_state.map(|s| s.as_str().into()),
            to_state: e.to_state.map(|s| s.as_str().into()),
            until: e.until.map(rfc3339),
        })
        .collect())
}

/// Every name an admin change was made under (the tokens' names behind pauses, overrides and
/// lifts), for [`view::admin_free`].
async fn admin_actors(db: &impl ConnectionTrait) -> Result<Vec<String>, DbErr> {
    use pool_controls::Column as C;
    let made: Vec<String> = pool_controls::Entity::find()
        .select_only()
        .column(C::Actor)
        .distinct()
        .into_tuple()
        .all(db)
        .await?;
    let lifted: Vec<Option<String>> = pool_controls::Entity::find()
        .select_only()
        .column(C::LiftedBy)
        .filter(C::LiftedBy.is_not_null())
        .distinct()
        .into_tuple()
        .all(db)
        .await?;
    let mut out: Vec<String> = made
        .into_iter()
        .chain(lifted.into_iter().flatten())
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}
