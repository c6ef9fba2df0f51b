//! The fleet's session commands: an import (a session logged in elsewhere becomes an account)
//! and an export (an account's login leaves as a portable string). Sealing and opening happen in
//! the account core (`tgfleet_actors::session`, `tgfleet_actors::import`); callers handle only
//! the portable form the user gave or asked for, never a stored session.

use std::time::Duration;

use tgfleet_actors::import::{self, ForeignSession, ImportAs, ImportError, PreparedSession};
use tgfleet_actors::session::{self, SessionError};
use tgfleet_actors::{AccountError, TelegramTarget};
use tgfleet_persistence::{AccountId, ImportConflict, NewAccount};

use crate::error::{FleetError, UnavailableKind};
use crate::fleet::Fleet;

/// Why an account's session cannot be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The account has no session, or one that is not logged in.
    #[error("{0}")]
    NotExportable(String),
    #[error(transparent)]
    Fleet(#[from] FleetError),
}

impl Fleet {
    /// Whether this fleet's Telegram is a testdc (a session for Telegram's test servers can
    /// only belong there).
    pub fn on_test_dc(&self) -> bool {
        self.env()
            .is_some_and(|env| matches!(env.telegram.target, TelegramTarget::TestDc { .. }))
    }

    /// Proves that `foreign` is still logged in, on one short-lived connection that is gone
    /// when this returns and that introduces itself as `introduced` (the identity and app the
    /// account will have), and turns it into a session of this fleet.
    pub async fn check_session(
        &self,
        foreign: &ForeignSession,
        timeout: Duration,
        introduced: ImportAs,
    ) -> Result<PreparedSession, ImportError> {
        let Some(env) = self.env() else {
            return Err(ImportError::Unreachable(
                "this fleet runs no Telegram accounts".into(),
            ));
        };
        import::prepare(&env.telegram, foreign, timeout, introduced).await
    }

    /// Creates the account of a checked session: its row, the claim on the session's
    /// fingerprint and the sealed session in one transaction. Nothing is written on a conflict.
    pub async fn create_imported(
        &self,
        prepared: PreparedSession,
        new: NewAccount,
        fingerprint: String,
    ) -> anyhow::Result<Result<AccountId, ImportConflict>> {
        let env = self
            .env()
            .ok_or_else(|| anyhow::anyhow!("this fleet runs no Telegram accounts"))?;
        let account = prepared.into_account(env.cipher.clone(), new, fingerprint);
        Ok(env
            .store
            .create_imported_account(account)
            .await?
            .map(|a| a.id))
    }

    /// The account's login as its stored session holds it.
    pub async fn export_session(
        &self,
        account_id: AccountId,
    ) -> Result<ForeignSession, ExportError> {
        let env = self.env().ok_or_else(|| {
            FleetError::Account(AccountError::Internal(
                "this fleet runs no Telegram accounts".into(),
            ))
        })?;
        let stored = session::read_stored(&*env.store, &env.cipher, account_id)
            .await
            .map_err(|e| session_failure(account_id, e))?
            .ok_or_else(|| ExportError::NotExportable("the account has no session".into()))?;
        import::exportable(&stored).map_err(|e| ExportError::NotExportable(e.to_string()))
    }
}

fn session_failure(account_id: AccountId, e: SessionError) -> ExportError {
    if let SessionError::Encoding(why) = &e {
        // A session this build cannot read is not exportable, as before; nothing is down.
        return ExportError::NotExportable(format!("the stored session cannot be read: {why}"));
    }
    let message = format!("reading the session of account {account_id}: {e}");
    ExportError::Fleet(match e.dependency() {
        Some(dependency) => FleetError::Unavailable {
            account_id,
            kind: UnavailableKind::Dependency(dependency),
            message,
            retry_after: Some(Duration::from_secs(5)),
        },
        None => FleetError::Account(AccountError::Internal(message)),
    })
}
