//! Everything tgfleet keeps: the `Store` trait with its SQLite and PostgreSQL implementations, and
//! the `SessionCipher` that seals account sessions before they reach any store.

pub mod cipher;
pub mod model;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use cipher::{CipherError, SessionCipher, VaultParams, VaultSecrets};
pub use model::*;
pub use store::{connect, PgStore, SqliteStore, Store, StoreError, StoreResult};
