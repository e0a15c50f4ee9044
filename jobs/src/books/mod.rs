//! The books: every figure buildfund publishes, per cost-model.md. [`attribution`] holds the
//! rules as plain functions over exact rationals; [`costs`] runs them over the stored build
//! steps; [`funds`] adds the donations ([`donations`]) and gives balance, burn and runway;
//! [`store`] keeps the books of closed months, so a read computes only the open month.
pub mod attribution;
pub mod costs;
pub mod donations;
pub mod funds;
pub mod store;
