//! The stored cursors of incremental syncs (`sync_cursors`): raw text values by name. Each
//! sync keeps its own format (Hydra: unix seconds, OpenCollective: RFC 3339) and parses it.
use buildfund_entity::sync_cursors;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{DatabaseConnection, EntityTrait, Set};

use super::SourceError;

/// The cursor's stored text (trimmed), if any.
pub async fn read(db: &DatabaseConnection, name: &str) -> Result<Option<String>, SourceError> {
    let row = sync_cursors::Entity::find_by_id(name.to_string())
        .one(db)
        .await
        .map_err(|source| SourceError::CursorRead {
            name: name.to_string(),
            source,
        })?;
    Ok(row.map(|r| r.value.trim().to_string()))
}

/// Stores (inserts or replaces) the cursor's text, stamped `now`.
pub async fn store(
    db: &DatabaseConnection,
    name: &str,
    value: String,
    now: DateTime<Utc>,
) -> Result<(), SourceError> {
    use sync_cursors::Column as C;
    sync_cursors::Entity::insert(sync_cursors::ActiveModel {
        name: Set(name.to_string()),
        value: Set(value),
        updated_at: Set(now),
    })
    .on_conflict(
        OnConflict::column(C::Name)
            .update_columns([C::Value, C::UpdatedAt])
            .to_owned(),
    )
    .exec_without_returning(db)
    .await
    .map_err(|source| SourceError::CursorStore {
        name: name.to_string(),
        source,
    })?;
    Ok(())
}
