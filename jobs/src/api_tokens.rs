//! API tokens: random secrets shown once, stored only as SHA-256 hashes, each with one scope.
//! The queries are here and answer [`Token`]s, never rows.
use buildfund_entity::api_tokens::{self, TokenScope};
use chrono::{DateTime, Utc};
use rand::Rng;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// What can go wrong with tokens.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
    #[error("{scope:?} is not a scope (ingest, scheduler or admin)")]
    UnknownScope { scope: String },
}

/// Every token starts with this, so a leaked one is easy to recognise in logs and scanners.
pub const TOKEN_PREFIX: &str = "bf_";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Upload build steps.
    Ingest,
    /// Scheduler hooks.
    Scheduler,
    /// Everything, including the other two scopes.
    Admin,
}

impl Scope {
    pub fn as_str(&self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Scheduler => "scheduler",
            Scope::Admin => "admin",
        }
    }

    /// Whether a token of this scope may do what `required` allows. `admin` may do everything.
    pub fn grants(&self, required: Scope) -> bool {
        *self == Scope::Admin || *self == required
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = TokenError;
    fn from_str(s: &str) -> Result<Self, TokenError> {
        match s {
            "ingest" => Ok(Scope::Ingest),
            "scheduler" => Ok(Scope::Scheduler),
            "admin" => Ok(Scope::Admin),
            other => Err(TokenError::UnknownScope {
                scope: other.to_string(),
            }),
        }
    }
}

impl From<Scope> for TokenScope {
    fn from(s: Scope) -> Self {
        match s {
            Scope::Ingest => TokenScope::Ingest,
            Scope::Scheduler => TokenScope::Scheduler,
            Scope::Admin => TokenScope::Admin,
        }
    }
}

impl From<TokenScope> for Scope {
    fn from(s: TokenScope) -> Self {
        match s {
            TokenScope::Ingest => Scope::Ingest,
            TokenScope::Scheduler => Scope::Scheduler,
            TokenScope::Admin => Scope::Admin,
        }
    }
}

/// A stored token, as listings show it: never its secret, only the secret's first characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub id: i32,
    pub name: String,
    pub scope: Scope,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<api_tokens::Model> for Token {
    fn from(m: api_tokens::Model) -> Self {
        Token {
            id: m.id,
            name: m.name,
            scope: m.scope.into(),
            prefix: m.token_prefix,
            created_at: m.created_at,
            last_used_at: m.last_used_at,
            revoked_at: m.revoked_at,
        }
    }
}

/// A verified token, as handlers see it.
#[derive(Clone, Debug)]
pub struct TokenInfo {
    pub id: i32,
    pub name: String,
    pub scope: Scope,
}

pub fn hash_token(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Creates a token at `now` and returns its secret (never stored) with the stored token.
pub async fn create(
    db: &impl ConnectionTrait,
    scope: Scope,
    name: &str,
    now: DateTime<Utc>,
) -> Result<(String, Token), TokenError> {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!("{TOKEN_PREFIX}{}", hex::encode(bytes));
    let row = api_tokens::ActiveModel {
        name: Set(name.to_string()),
        scope: Set(scope.into()),
        token_hash: Set(hash_token(&secret)),
        token_prefix: Set(secret[..TOKEN_PREFIX.len() + 6].to_string()),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok((secret, row.into()))
}

/// Looks a presented secret up by its hash; revoked tokens are not found.
pub async fn verify(
    db: &impl ConnectionTrait,
    secret: &str,
) -> Result<Option<TokenInfo>, TokenError> {
    if !secret.starts_with(TOKEN_PREFIX) {
        return Ok(None);
    }
    let row = api_tokens::Entity::find()
        .filter(api_tokens::Column::TokenHash.eq(hash_token(secret)))
        .filter(api_tokens::Column::RevokedAt.is_null())
        .one(db)
        .await?;
    Ok(row.map(|r| TokenInfo {
        id: r.id,
        scope: r.scope.into(),
        name: r.name,
    }))
}

/// Every token, revoked ones too, oldest first.
pub async fn list(db: &impl ConnectionTrait) -> Result<Vec<Token>, TokenError> {
    let rows = api_tokens::Entity::find()
        .order_by_asc(api_tokens::Column::Id)
        .all(db)
        .await?;
    Ok(rows.into_iter().map(Token::from).collect())
}

/// Revokes a token at `now`; returns false when there is no such active token.
pub async fn revoke(
    db: &impl ConnectionTrait,
    id: i32,
    now: DateTime<Utc>,
) -> Result<bool, TokenError> {
    let Some(row) = api_tokens::Entity::find_by_id(id)
        .filter(api_tokens::Column::RevokedAt.is_null())
        .one(db)
        .await?
    else {
        return Ok(false);
    };
    let mut active: api_tokens::ActiveModel = row.into();
    active.revoked_at = Set(Some(now));
    active.update(db).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_grants_everything_others_only_themselves() {
        assert!(Scope::Admin.grants(Scope::Ingest));
        assert!(Scope::Admin.grants(Scope::Scheduler));
        assert!(Scope::Ingest.grants(Scope::Ingest));
        assert!(!Scope::Ingest.grants(Scope::Admin));
        assert!(!Scope::Scheduler.grants(Scope::Ingest));
    }

    #[test]
    fn scopes_parse_and_refuse_unknown() {
        assert!(matches!("admin".parse::<Scope>(), Ok(Scope::Admin)));
        assert!("root"
            .parse::<Scope>()
            .unwrap_err()
            .to_string()
            .contains("\"root\""));
    }
}
