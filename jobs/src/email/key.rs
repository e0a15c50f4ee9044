//! The key that signs confirmation and unsubscribe links: the environment variable that
//! `[email] secret_env` names (default `BUILDFUND_EMAIL_SECRET`), else a random key generated
//! once and kept in `app_secrets`, so links keep working across restarts and instances.
use super::EmailError;
use buildfund_entity::app_secrets;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{OnConflict, Query};
use sea_orm::{ConnectionTrait, EntityTrait};
use secrecy::{ExposeSecret, SecretSlice};

/// The row name of the generated key in `app_secrets`.
pub const GENERATED_KEY_NAME: &str = "email_link_key";
/// The shortest key accepted from the environment.
pub const MIN_KEY_BYTES: usize = 32;

/// The signing key (never logged or shown).
#[derive(Clone)]
pub struct EmailKey(std::sync::Arc<SecretSlice<u8>>);

impl std::fmt::Debug for EmailKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmailKey(..)")
    }
}

impl EmailKey {
    pub fn from_bytes(bytes: Vec<u8>) -> EmailKey {
        EmailKey(std::sync::Arc::new(SecretSlice::from(bytes)))
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        self.0.expose_secret()
    }

    /// The key from the environment, else the one stored in the database (generated and stored
    /// by the first caller at `now`; concurrent first callers agree on one through the primary
    /// key).
    pub async fn load(
        db: &impl ConnectionTrait,
        secrets: &crate::config::Secrets,
        now: DateTime<Utc>,
    ) -> Result<EmailKey, EmailError> {
        let env = &secrets.email_key.var;
        if let Ok(value) = secrets.email_key.value() {
            let value = value.expose_secret();
            {
                if value.len() < MIN_KEY_BYTES {
                    return Err(EmailError::KeyTooShort {
                        var: env.clone(),
                        min: MIN_KEY_BYTES,
                    });
                }
                return Ok(EmailKey::from_bytes(value.as_bytes().to_vec()));
            }
        }
        let fresh = hex::encode(rand::random::<[u8; 32]>());
        let insert = Query::insert()
            .into_table(app_secrets::Entity)
            .columns([
                app_secrets::Column::Name,
                app_secrets::Column::Value,
                app_secrets::Column::CreatedAt,
            ])
            .values_panic([GENERATED_KEY_NAME.into(), fresh.into(), now.into()])
            .on_conflict(
                OnConflict::column(app_secrets::Column::Name)
                    .do_nothing()
                    .to_owned(),
            )
            .to_owned();
        db.execute(&insert).await?;
        let row = app_secrets::Entity::find_by_id(GENERATED_KEY_NAME.to_string())
            .one(db)
            .await?
            .ok_or(EmailError::KeyGone)?;
        Ok(EmailKey::from_bytes(row.value.into_bytes()))
    }
}
