//! What supervision writes to the store: restart counts, quarantines and their lifting, each with
//! an integration-log row. Writes run off the supervisor's mailbox, in order, on one writer task
//! per supervisor, so a quarantine is always written before the operator's lift that follows it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tgfleet_persistence::{
    AccountId, AccountState, AccountUpdate, LogFilter, LogLevel, NewLogEntry, Store, StoreError,
};
use tokio::sync::{mpsc, oneshot};

use crate::metrics::RestartReason;

pub(crate) const EVENT_RESTARTED: &str = "actor_restarted";
pub(crate) const EVENT_QUARANTINED: &str = "account_quarantined";
pub(crate) const EVENT_QUARANTINE_LIFTED: &str = "account_quarantine_lifted";

/// Failure texts are for operators; a panic message can be long, so the log keeps its start.
const MAX_DETAIL_CHARS: usize = 500;

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs store writes one after another, in submission order.
#[derive(Clone)]
pub(crate) struct StoreWriter {
    // Unbounded on purpose: jobs come only from restarts, quarantines and lifts, which restart
    // intensity and backoff already limit; a bound here could only make the supervisor wait.
    tx: mpsc::UnboundedSender<Job>,
}

impl StoreWriter {
    /// Starts the writer task; it ends when the last `StoreWriter` clone is dropped.
    pub(crate) fn spawn() -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
        tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                job.await;
            }
        });
        Self { tx }
    }

    pub(crate) fn submit(&self, job: impl Future<Output = ()> + Send + 'static) {
        let _ = self.tx.send(Box::pin(job));
    }

    /// Runs `job` after every job submitted before it and waits for its result; `None` if the
    /// writer is gone.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        job: impl Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.submit(async move {
            let _ = tx.send(job.await);
        });
        rx.await.ok()
    }
}

fn clip(detail: &str) -> String {
    detail.chars().take(MAX_DETAIL_CHARS).collect()
}

/// Counts one restart in the account row and logs it.
pub(crate) async fn record_restart(
    store: Arc<dyn Store>,
    account_id: AccountId,
    reason: RestartReason,
    attempt: Option<u32>,
    delay: Duration,
    detail: String,
) {
    let update = AccountUpdate {
        add_restarts: 1,
        ..Default::default()
    };
    if let Err(e) = store.update_account(account_id, update).await {
        tracing::warn!(account_id, error = %e, "could not count a restart in the account row");
    }
    let entry = NewLogEntry {
        level: if reason == RestartReason::Operator {
            LogLevel::Info
        } else {
            LogLevel::Warn
        },
        event: EVENT_RESTARTED.into(),
        account_id: Some(account_id),
        user_id: None,
        error_code: None,
        message: format!(
            "account actor restarted in place ({}) after {} ms",
            reason.as_str(),
            delay.as_millis()
        ),
        details: json!({
            "reason": reason.as_str(),
            "attempt": attempt,
            "delay_ms": u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "error": clip(&detail),
        }),
    };
    if let Err(e) = store.append_log(entry).await {
        tracing::warn!(account_id, error = %e, "could not log a restart");
    }
}

/// Marks the account quarantined and logs its state before, so a lift can restore it.
pub(crate) async fn quarantine(
    store: Arc<dyn Store>,
    account_id: AccountId,
    restart_max: u32,
    window: Duration,
    detail: String,
) {
    let previous = match store.account(account_id).await {
        Ok(account) => Some(account.state),
        Err(StoreError::NotFound) => return,
        Err(e) => {
            tracing::warn!(account_id, error = %e, "could not read the account before quarantine");
            None
        }
    };
    let message = format!(
        "quarantined: failed more than {restart_max} times within {} s; an operator restart lifts it",
        window.as_secs()
    );
    let update = AccountUpdate {
        state: Some(AccountState::Quarantined),
        last_error: Some(Some(message.clone())),
        cause: Some(EVENT_QUARANTINED.into()),
        ..Default::default()
    };
    if let Err(e) = store.update_account(account_id, update).await {
        tracing::error!(account_id, error = %e, "could not mark the account quarantined");
    }
    let entry = NewLogEntry {
        level: LogLevel::Error,
        event: EVENT_QUARANTINED.into(),
        account_id: Some(account_id),
        user_id: None,
        error_code: Some("ACCOUNT_QUARANTINED".into()),
        message,
        details: json!({
            "previous_state": previous.map(AccountState::as_str),
            "restart_max": restart_max,
            "window_s": window.as_secs(),
            "error": clip(&detail),
        }),
    };
    if let Err(e) = store.append_log(entry).await {
        tracing::warn!(account_id, error = %e, "could not log a quarantine");
    }
}

/// An account cannot start because Vault (or another dependency besides the store) is down:
/// its row says `reconnecting` with the cause, so a user sees why; the actor, once it starts,
/// takes its state back from the session.
pub(crate) async fn dependency_down(
    store: Arc<dyn Store>,
    account_id: AccountId,
    down: tgfleet_actors::DependencyDown,
) {
    let message = format!(
        "waiting for {}: {}; the account starts when it answers again",
        down.dependency,
        clip(&down.message)
    );
    let current = match store.account(account_id).await {
        Ok(account) => account.state,
        Err(e) => {
            tracing::debug!(account_id, error = %e, "could not read the account waiting for a dependency");
            return;
        }
    };
    let update = AccountUpdate {
        // A login halfway stays what it is: its state comes from the session, not this row.
        state: current
            .is_authorized()
            .then_some(AccountState::Reconnecting),
        last_error: Some(Some(message.clone())),
        cause: Some(down.dependency.code().into()),
        ..Default::default()
    };
    if let Err(e) = store.update_account(account_id, update).await {
        tracing::warn!(account_id, error = %e, "could not record a dependency outage");
    }
    let entry = NewLogEntry {
        level: LogLevel::Warn,
        event: "dependency_unavailable".into(),
        account_id: Some(account_id),
        user_id: None,
        error_code: Some(down.dependency.code().into()),
        message,
        details: json!({ "dependency": down.dependency.as_str() }),
    };
    if let Err(e) = store.append_log(entry).await {
        tracing::warn!(account_id, error = %e, "could not log a dependency outage");
    }
}

/// Lifts a quarantine: the account gets back the state it had before (from the quarantine's log
/// row, so this works after a fleet restart too). Without that row it becomes `stopped`, which
/// claims nothing about its authorization; the actor finds out on start.
pub(crate) async fn lift_quarantine(
    store: Arc<dyn Store>,
    account_id: AccountId,
) -> Result<(), StoreError> {
    let account = store.account(account_id).await?;
    if account.state != AccountState::Quarantined {
        return Ok(());
    }
    let filter = LogFilter {
        account_id: Some(account_id),
        event: Some(EVENT_QUARANTINED.into()),
        limit: 1,
        ..Default::default()
    };
    let previous = store
        .list_logs(filter)
        .await?
        .first()
        .and_then(|row| {
            row.details
                .get("previous_state")?
                .as_str()
                .map(String::from)
        })
        .and_then(|s| AccountState::parse(&s))
        .filter(|s| *s != AccountState::Quarantined)
        .unwrap_or(AccountState::Stopped);
    let update = AccountUpdate {
        state: Some(previous),
        last_error: Some(None),
        cause: Some(EVENT_QUARANTINE_LIFTED.into()),
        ..Default::default()
    };
    store.update_account(account_id, update).await?;
    let entry = NewLogEntry {
        level: LogLevel::Info,
        event: EVENT_QUARANTINE_LIFTED.into(),
        account_id: Some(account_id),
        user_id: None,
        error_code: None,
        message: format!("quarantine lifted by an operator restart; state back to {previous}"),
        details: json!({ "state": previous.as_str() }),
    };
    if let Err(e) = store.append_log(entry).await {
        tracing::warn!(account_id, error = %e, "could not log a quarantine lift");
    }
    Ok(())
}
