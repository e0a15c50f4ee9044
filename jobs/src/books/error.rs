//! The books' one error type: what a read or a write of the books can fail with.
use crate::books::attribution::AttributionError;
use crate::books::expenses::ExpenseError;
use crate::money::Overflow;
use sea_orm::DbErr;

#[derive(Debug, thiserror::Error)]
pub enum BooksError {
    /// The database failed (unreachable, busy, a broken row).
    #[error(transparent)]
    Db(#[from] DbErr),
    /// A sum or an exact amount left its range: figures no real ledger reaches.
    #[error(transparent)]
    Overflow(#[from] Overflow),
    /// The attribution was given inputs outside its rules (a window across a month or a
    /// change, busy seconds below zero): a fault of the code, never of the data.
    #[error(transparent)]
    Attribution(#[from] AttributionError),
    /// An expense refused or unreadable.
    #[error(transparent)]
    Expense(#[from] ExpenseError),
    /// A donation record out of the books' bounds, refused before anything was stored.
    #[error("donation {source_name}/{external_id} refused: {why}")]
    DonationRefused {
        source_name: String,
        external_id: String,
        why: String,
    },
}
