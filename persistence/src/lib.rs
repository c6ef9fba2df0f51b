//! Everything tgfleet keeps: the `Store` trait with its SQLite and PostgreSQL implementations, and
//! the `SessionCipher` that seals account sessions before they reach any store.

pub mod cipher;
pub mod model;
pub mod store;

pub use cipher::{CipherError, SessionCipher};
pub use model::*;
pub use store::{connect, Store, StoreError};
