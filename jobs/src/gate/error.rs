//! The gate's one error type.
use crate::gate::hydra_web::HydraError;
use sea_orm::DbErr;

/// Why a gate operation (a control, a refresh, an action) failed.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// The control names no configured pool.
    #[error("{0:?} is not a pool")]
    UnknownPool(String),
    /// The control's request is refused (a missing reason, an `until` in the past); the
    /// message says why.
    #[error("{0}")]
    Invalid(String),
    /// A lift found no pause or override in force.
    #[error("{0}")]
    NothingToLift(String),
    /// The state event this instance just recorded could not be read back.
    #[error("the state event {claim} disappeared")]
    StateEventMissing { claim: String },
    /// The evaluation panicked (a broken invariant of the books); the panic's message.
    #[error("the gate's evaluation panicked: {0}")]
    EvaluationPanicked(String),
    /// The evaluation's task was cancelled (the runtime is shutting down).
    #[error("the gate's evaluation was cancelled")]
    EvaluationCancelled,
    /// A state change could not be encoded as its webhook body.
    #[error("cannot encode a gate change")]
    Encode(#[from] serde_json::Error),
    /// A pool's answer could not be serialised for the snapshot.
    #[error("cannot encode the gate's answer for the pool {pool}")]
    EncodeAnswer {
        pool: String,
        #[source]
        source: serde_json::Error,
    },
    /// Acting on Hydra failed.
    #[error(transparent)]
    Hydra(#[from] HydraError),
    /// The books behind the gate's figures failed (storage, or an overflow of the exact
    /// arithmetic).
    #[error(transparent)]
    Books(#[from] crate::books::BooksError),
    #[error(transparent)]
    Db(#[from] DbErr),
}
