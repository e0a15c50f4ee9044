//! Manual expenses (`POST /api/v1/expenses`): validated, then stored under source `manual`
//! with the idempotency key as the external id.
