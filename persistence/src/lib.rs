//! Everything tgfleet keeps: the `Store` trait with its SQLite and PostgreSQL implementations, and
//! the `SessionCipher` that seals account sessions before they reach any store.

pub mod cipher;
pub mod device;
pub mod lock;
pub mod media_storage;
pub mod model;
pub mod phone;
pub mod proxy;
pub mod sealed;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use cipher::{
    approle_login, AppRoleLogin, CipherError, SessionCipher, VaultParams, VaultSecrets,
};
pub use lock::{InstanceLock, LockError};
pub use media_storage::{Blob, BlobWriter, MediaStorage};
pub use model::*;
pub use phone::Phone;
pub use proxy::{ProxyUrl, ProxyUrlError};
pub use store::{
    connect, create_private_dir, EventRecords, MediaRecords, PgStore, PostRecords, QueuedDelivery,
    SqliteStore, Store, StoreError, StoreMetrics, StoreResult, WebhookBacklog, WebhookFailing,
    WebhookRecords,
};
