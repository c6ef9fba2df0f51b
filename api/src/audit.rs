//! The audit trail: each security-relevant step goes to the integration log (queryable over the
//! API) and to the process log (for ELK). Callers pass only ids and event names — never a
//! password, token, code or session.

use crate::state::AppState;
use tgfleet_persistence::{AccountId, LogLevel, NewLogEntry, UserId};

pub struct Audit<'a> {
    pub event: &'a str,
    pub level: LogLevel,
    pub user_id: Option<UserId>,
    pub account_id: Option<AccountId>,
    pub error_code: Option<&'a str>,
    pub message: String,
    pub details: serde_json::Value,
}

impl<'a> Audit<'a> {
    pub fn info(event: &'a str, message: impl Into<String>) -> Self {
        Self {
            event,
            level: LogLevel::Info,
            user_id: None,
            account_id: None,
            error_code: None,
            message: message.into(),
            details: serde_json::Value::Null,
        }
    }
    pub fn warn(event: &'a str, message: impl Into<String>) -> Self {
        Self {
            level: LogLevel::Warn,
            ..Self::info(event, message)
        }
    }
    pub fn user(mut self, id: UserId) -> Self {
        self.user_id = Some(id);
        self
    }
    pub fn account(mut self, id: AccountId) -> Self {
        self.account_id = Some(id);
        self
    }
    pub fn error_code(mut self, code: &'a str) -> Self {
        self.error_code = Some(code);
        self
    }
    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }

    /// Writes both trails. A failing audit write is logged, not returned: the user's action
    /// already happened and must not be reported as failed.
    pub async fn record(self, state: &AppState) {
        tracing::info!(
            target: "audit",
            event = self.event,
            level = self.level.as_str(),
            user_id = self.user_id,
            account_id = self.account_id,
            error_code = self.error_code,
            "{}",
            self.message
        );
        let entry = NewLogEntry {
            level: self.level,
            event: self.event.to_owned(),
            account_id: self.account_id,
            user_id: self.user_id,
            error_code: self.error_code.map(str::to_owned),
            message: self.message,
            details: self.details,
        };
        if let Err(e) = state.store.append_log(entry).await {
            tracing::error!(error = %e, "writing the integration log");
        }
    }
}
