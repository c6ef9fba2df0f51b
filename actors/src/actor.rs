//! The account actor.
//!
//! # Contract with the supervisor
//!
//! How an `AccountActor` ends tells its supervisor what to do:
//!
//! * **It fails** (a panic in a handler, an `Err` from a handler, or an `Err` from `pre_start`):
//!   ractor reports `ActorFailed` (or `spawn` returns `StartupFailed`). Something unexpected
//!   happened; **restart it in place** (same account id, same [`AccountArgs`]). Everything durable
//!   — session keys, the pending login, dedupe keys — is reloaded from the store, so a restart
//!   loses nothing but in-flight requests (their callers see the reply port dropped).
//! * **It stops normally** with a reason (`ActorTerminated` with `Some(reason)`): the account is in
//!   a final state and the actor already wrote it to the account row and the integration log.
//!   **Do not restart it**; an operator's explicit restart (or a new login) may. The reasons are
//!   [`StopReason`]s: `unauthorized`, `banned`, `logged_out`, `duplicated`, `deleted`.
//! * A stop requested by the supervisor itself (fleet shutdown, account deleted) is also a normal
//!   stop; the actor persists its session first (`post_stop`).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use governor::DefaultDirectRateLimiter;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tgfleet_persistence::{
    Account, AccountId, AccountState, AccountUpdate, LogLevel, NewLogEntry, StoreError,
};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::classify::{classify, Consequence};
use crate::client::{new_pacer, CallError, LiveClient, Tg};
use crate::env::{AccountArgs, AccountEnv};
use crate::flood::FloodControl;
use crate::ops::{self, Done, LoggedInUser, OpFailure};
use crate::protocol::{
    AccountError, AccountReply, AccountRequest, AccountStatus, Dependency, DependencyDown,
};
use crate::session::{PendingLogin, StoreSession};

type Reply = RpcReplyPort<Result<AccountReply, AccountError>>;

/// One Telegram account. Stateless itself; all state lives in [`AccountActorState`].
pub struct AccountActor;

/// Messages an account actor understands.
pub enum AccountMsg {
    /// A request from the API (through the registry). Always answered, never with a panic.
    Request(
        AccountRequest,
        RpcReplyPort<Result<AccountReply, AccountError>>,
    ),
    /// Test and chaos hook: panics inside the handler, exactly as a bug would, so supervisors and
    /// the "pending login survives a crash" guarantee can be exercised.
    Crash,
    /// The actor's own events (finished Telegram calls, client lifecycle, timers).
    Internal(InternalMsg),
}

/// Opaque to other crates: only the actor and its own tasks send these.
pub struct InternalMsg(pub(crate) Event);

pub(crate) enum Event {
    /// A Telegram operation finished (in its task); `reply` is the caller's port, if any.
    OpDone {
        kind: OpKind,
        result: Result<Done, OpFailure>,
        reply: Option<Reply>,
    },
    /// The grammers runner task ended: the client is dead and must be rebuilt.
    RunnerExited { generation: u64, panicked: bool },
    /// The home connection closed (testdc/Telegram dropped it).
    ConnectionClosed { generation: u64 },
    /// updateLoginToken: a pending QR token was scanned.
    LoginTokenUpdated { generation: u64 },
    /// Periodic liveness check.
    Watchdog,
    /// A scheduled re-check of a reconnecting / flood-waiting account.
    CheckNow,
    /// Sent to itself after reaching a final state, so requests already queued are still
    /// answered (with the final state's error) before the actor stops.
    StopNow(StopReason),
}

/// Which operation an `OpDone` belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OpKind {
    SendCode,
    SignIn,
    CheckPassword,
    QrLogin,
    QrPoll,
    BotSignIn,
    LogOut,
    SendMessage { dedupe_key: Option<String> },
    Health,
}

impl OpKind {
    fn is_login(&self) -> bool {
        matches!(
            self,
            Self::SendCode
                | Self::SignIn
                | Self::CheckPassword
                | Self::QrLogin
                | Self::QrPoll
                | Self::BotSignIn
                | Self::LogOut
        )
    }

    fn name(&self) -> &'static str {
        match self {
            Self::SendCode => "send_code",
            Self::SignIn => "sign_in",
            Self::CheckPassword => "check_password",
            Self::QrLogin => "qr_login",
            Self::QrPoll => "qr_poll",
            Self::BotSignIn => "bot_sign_in",
            Self::LogOut => "log_out",
            Self::SendMessage { .. } => "send_message",
            Self::Health => "health",
        }
    }
}

impl fmt::Debug for AccountMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Requests may carry codes, passwords and bot tokens: never print their contents.
            Self::Request(req, _) => write!(f, "Request({})", request_name(req)),
            Self::Crash => f.write_str("Crash"),
            Self::Internal(_) => f.write_str("Internal"),
        }
    }
}

fn request_name(req: &AccountRequest) -> &'static str {
    match req {
        AccountRequest::SendCode { .. } => "SendCode",
        AccountRequest::SignIn { .. } => "SignIn",
        AccountRequest::CheckPassword { .. } => "CheckPassword",
        AccountRequest::QrLogin => "QrLogin",
        AccountRequest::QrCode => "QrCode",
        AccountRequest::BotSignIn { .. } => "BotSignIn",
        AccountRequest::LogOut => "LogOut",
        AccountRequest::SendMessage { .. } => "SendMessage",
        AccountRequest::Status => "Status",
    }
}

/// Why an account actor stopped on its own (normal stop: no restart). The string form is the
/// ractor stop reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Telegram revoked the session (AUTH_KEY_UNREGISTERED, SESSION_REVOKED).
    Unauthorized,
    /// USER_DEACTIVATED*.
    Banned,
    /// Logged out through the API; the session is wiped.
    LoggedOut,
    /// AUTH_KEY_DUPLICATED: the same session is in use elsewhere; restarting would make it worse.
    /// The key stays valid and is kept: the account waits in `stopped` for an operator.
    Duplicated,
    /// The account was deleted (the supervisor stops the actor with this reason).
    Deleted,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::Banned => "banned",
            Self::LoggedOut => "logged_out",
            Self::Duplicated => "duplicated",
            Self::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Unauthorized,
            Self::Banned,
            Self::LoggedOut,
            Self::Duplicated,
            Self::Deleted,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }

    /// The account state an actor stopping for this reason leaves behind.
    pub fn final_state(self) -> AccountState {
        match self {
            Self::Unauthorized => AccountState::Unauthorized,
            Self::Banned => AccountState::Banned,
            Self::LoggedOut => AccountState::LoggedOut,
            Self::Duplicated | Self::Deleted => AccountState::Stopped,
        }
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// States in which the account holds an authorization and keeps a live connection.
fn is_live(state: AccountState) -> bool {
    matches!(
        state,
        AccountState::Active | AccountState::Reconnecting | AccountState::FloodWait
    )
}

/// Everything one account actor holds between messages.
pub struct AccountActorState {
    id: AccountId,
    env: Arc<AccountEnv>,
    /// The account row as last written; `account.state` is the current state.
    account: Account,
    session: Arc<StoreSession>,
    client: Option<LiveClient>,
    generation: u64,
    flood: Arc<FloodControl>,
    pacer: Arc<DefaultDirectRateLimiter>,
    /// One login step at a time: steps read and write the same pending login.
    login_busy: bool,
    /// A QR poll was asked for while another login step ran.
    qr_poll_wanted: bool,
    health_inflight: bool,
    check_scheduled: bool,
    reconnect_attempt: u32,
    last_ok: Instant,
    /// Last API request (status reads excepted): hibernation counts idleness from here, since
    /// the watchdog's own liveness checks keep `last_ok` fresh.
    last_request: Instant,
    /// Operations spawned and not yet reported back; an account never hibernates under one.
    ops_inflight: u32,
    /// Their tasks, aborted when this actor ends: an operation outliving its actor would keep
    /// writing the old actor's copy of the session over the one a restarted actor loaded — two
    /// writers for one account.
    op_tasks: Vec<tokio::task::AbortHandle>,
    /// SendMessage calls in flight per dedupe key, with callers that re-sent meanwhile.
    sending: HashMap<String, Vec<Reply>>,
    watchdog: Option<JoinHandle<()>>,
    /// Set when the actor stops itself in a final state: that state stays counted in metrics.
    final_stop: bool,
    /// Set when the actor drains its mailbox to end itself as `hibernated`: the account lives on
    /// as a row and a sealed session only, and its next call starts a new actor.
    hibernating: bool,
}

impl Drop for AccountActorState {
    fn drop(&mut self) {
        // Runs on every end, panics included (ractor skips post_stop then): the client's tasks
        // stop with `self.client`, the timers here, and the gauges drop an account whose actor
        // went away without a final state (a restart counts it again).
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.abort();
        }
        for op in self.op_tasks.drain(..) {
            op.abort();
        }
        if !self.final_stop && !self.hibernating {
            self.env.metrics.forget(self.id);
        }
    }
}

impl AccountActorState {
    fn status(&self) -> AccountStatus {
        AccountStatus {
            account_id: self.id,
            state: self.account.state,
            tg_user_id: self.account.tg_user_id,
            username: self.account.username.clone(),
            dc_id: self.account.dc_id,
            flood_wait_until: self.account.flood_wait_until,
            last_error: self.account.last_error.clone(),
        }
    }

    /// The state the session implies when no connection problem is in the way.
    fn session_state(&self) -> AccountState {
        match self.session.pending_login() {
            Some(PendingLogin::Code { .. }) => AccountState::AwaitingCode,
            Some(PendingLogin::Password { .. }) => AccountState::AwaitingPassword,
            Some(PendingLogin::Qr { .. }) => AccountState::AwaitingQr,
            None if self.session.self_user_id().is_some() => AccountState::Active,
            None => AccountState::New,
        }
    }

    fn tg(&mut self, myself: &ActorRef<AccountMsg>) -> Tg {
        let alive = self.client.as_ref().is_some_and(LiveClient::runner_alive);
        if !alive {
            self.generation += 1;
            self.client = Some(LiveClient::start(
                Arc::clone(&self.session),
                self.env.telegram.api_id,
                self.generation,
                myself.clone(),
            ));
        }
        let authorized = self.session.self_user_id().is_some();
        let handle = match &mut self.client {
            Some(client) => {
                if authorized {
                    client.mute_updates();
                }
                client.handle.clone()
            }
            None => unreachable!("client was just built"),
        };
        Tg {
            account_id: self.id,
            env: Arc::clone(&self.env),
            handle,
            session: Arc::clone(&self.session),
            flood: Arc::clone(&self.flood),
            pacer: Arc::clone(&self.pacer),
        }
    }

    /// Runs `op` in its own task; its result comes back as `Event::OpDone`.
    fn spawn_op<F, Fut>(
        &mut self,
        myself: &ActorRef<AccountMsg>,
        kind: OpKind,
        reply: Option<Reply>,
        op: F,
    ) where
        F: FnOnce(Tg) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Done, OpFailure>> + Send + 'static,
    {
        if kind.is_login() {
            self.login_busy = true;
        }
        if kind == OpKind::Health {
            self.health_inflight = true;
        }
        self.ops_inflight += 1;
        let tg = self.tg(myself);
        let myself = myself.clone();
        self.op_tasks.retain(|op| !op.is_finished());
        let task = tokio::spawn(async move {
            // A panic inside grammers or our op code must still end the op, or the account
            // would wait for it forever.
            let result = AssertUnwindSafe(op(tg))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| {
                    Err(OpFailure {
                        error: AccountError::Internal("the operation crashed".into()),
                        cause: None,
                    })
                });
            let _ = myself.send_message(AccountMsg::Internal(InternalMsg(Event::OpDone {
                kind,
                result,
                reply,
            })));
        });
        self.op_tasks.push(task.abort_handle());
    }

    /// Moves the account to `to`: account row, metrics gauge, integration log.
    async fn transition(
        &mut self,
        to: AccountState,
        update: AccountUpdate,
        event: &str,
        level: LogLevel,
        message: String,
        error_code: Option<String>,
    ) {
        if let Err(e) = self
            .try_transition(to, update, event, level, message, error_code)
            .await
        {
            tracing::error!(account_id = self.id, error = %e, "could not write the account state");
        }
    }

    /// Like `transition`, but a refused write (a unique phone) is the caller's to handle: the
    /// state then stays as it was. Any other write failure still moves the state in memory (the
    /// session is the truth; the row catches up with the next write).
    async fn try_transition(
        &mut self,
        to: AccountState,
        mut update: AccountUpdate,
        event: &str,
        level: LogLevel,
        message: String,
        error_code: Option<String>,
    ) -> Result<(), StoreError> {
        let from = self.account.state;
        update.state = Some(to);
        let written = match self.env.store.update_account(self.id, update).await {
            Ok(row) => {
                self.account = row;
                Ok(())
            }
            Err(e @ StoreError::Conflict(_)) => return Err(e),
            Err(e) => {
                self.account.state = to;
                Err(e)
            }
        };
        self.env.metrics.set_state(self.id, to);
        if from != to || level >= LogLevel::Warn {
            let details = serde_json::json!({ "from": from.as_str(), "to": to.as_str() });
            self.log(level, event, error_code, message, details).await;
        }
        written
    }

    /// One integration-log row. Callers never pass codes, passwords, tokens or keys.
    async fn log(
        &self,
        level: LogLevel,
        event: &str,
        error_code: Option<String>,
        message: String,
        details: serde_json::Value,
    ) {
        let entry = NewLogEntry {
            level,
            event: event.to_owned(),
            account_id: Some(self.id),
            user_id: Some(self.account.owner_id),
            error_code,
            message,
            details,
        };
        if let Err(e) = self.env.store.append_log(entry).await {
            tracing::warn!(account_id = self.id, error = %e, "could not write the integration log");
        }
    }

    fn wrong_state(&self, expected: &'static str) -> AccountError {
        AccountError::WrongState {
            state: self.account.state,
            expected,
        }
    }

    fn schedule_check(&mut self, myself: &ActorRef<AccountMsg>, delay: Duration) {
        if self.check_scheduled {
            return;
        }
        self.check_scheduled = true;
        // A timer message, never a sleep in the handler: the mailbox stays responsive.
        myself.send_after(delay, || AccountMsg::Internal(InternalMsg(Event::CheckNow)));
    }

    fn backoff(&self) -> Duration {
        use rand::Rng;
        let limits = &self.env.limits;
        let exp = limits
            .reconnect_backoff_min
            .saturating_mul(1u32 << self.reconnect_attempt.min(20));
        let capped = exp.min(limits.reconnect_backoff_max);
        // Jitter (50–100 %) so a fleet that lost Telegram at once does not come back at once.
        capped.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
    }

    fn start_health(&mut self, myself: &ActorRef<AccountMsg>) {
        if !self.health_inflight {
            self.spawn_op(myself, OpKind::Health, None, |tg| async move {
                ops::health(&tg).await
            });
        }
    }

    fn start_qr_poll(&mut self, myself: &ActorRef<AccountMsg>) {
        if self.login_busy {
            self.qr_poll_wanted = true;
            return;
        }
        self.qr_poll_wanted = false;
        self.spawn_op(myself, OpKind::QrPoll, None, |tg| async move {
            ops::qr_poll(&tg).await
        });
    }

    fn start_watchdog(&mut self, myself: &ActorRef<AccountMsg>) {
        if self.watchdog.is_none() {
            let period = self.env.limits.watchdog_period;
            self.watchdog = Some(myself.send_interval(period, || {
                AccountMsg::Internal(InternalMsg(Event::Watchdog))
            }));
        }
    }

    /// An idle, healthy, authorized account with nothing in flight may hibernate (again: an
    /// actor started for a hibernated account by a status read goes back as it came).
    fn should_hibernate(&self) -> bool {
        self.env.limits.hibernate_after.is_some_and(|after| {
            matches!(
                self.account.state,
                AccountState::Active | AccountState::Hibernated
            ) && self.session.self_user_id().is_some()
                && self.ops_inflight == 0
                && !self.check_scheduled
                && self.last_request.elapsed() >= after
        })
    }

    /// Writes `hibernated`, then ends the actor itself: a hibernated account is a row and a
    /// sealed session, with no task, channel or connection in memory; its next request starts a
    /// new actor, which reconnects with the same auth key. The end is a drain, not a stop, so no
    /// request is lost on the way: requests already queued are answered `Hibernating` (the
    /// fleet sends them to the next actor) and later ones are refused at the mailbox, which the
    /// fleet also retries.
    async fn hibernate(&mut self, myself: &ActorRef<AccountMsg>) {
        self.client = None;
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.abort();
        }
        if self.account.state != AccountState::Hibernated {
            let idle = self.last_request.elapsed().as_secs();
            self.transition(
                AccountState::Hibernated,
                AccountUpdate::default(),
                "hibernated",
                LogLevel::Info,
                format!("no call for {idle} s: disconnected until the next call"),
                None,
            )
            .await;
        }
        // Its per-call series go with the actor (a woken account's counters start again from 0,
        // which Prometheus reads as a counter reset); its state stays counted as hibernated.
        self.env.metrics.forget_calls(self.id);
        self.hibernating = true;
        if myself.drain().is_err() {
            // Already stopping for another reason; that end is as good.
            tracing::debug!(account_id = self.id, "hibernation met a stopping actor");
        }
    }

    /// A request reached a hibernated account: it is `active` again at once, and the request's
    /// own Telegram call opens the connection (a failure there is an ordinary `reconnecting`).
    async fn wake(&mut self, myself: &ActorRef<AccountMsg>) {
        self.start_watchdog(myself);
        self.transition(
            AccountState::Active,
            AccountUpdate::default(),
            "woken",
            LogLevel::Info,
            "a call woke the hibernated account; reconnecting".into(),
            None,
        )
        .await;
    }

    /// A login whose code was sent (or whose QR token ran out) longer than `pending_login_ttl`
    /// ago cannot finish: forget it and go back to `new`, so the row no longer says a login is
    /// waiting and the next boot does not start this account again. The actor stays to serve
    /// whatever call started it (typically a request for a new code).
    async fn expire_stale_login(&mut self) {
        let since = match self.session.pending_login() {
            Some(PendingLogin::Code { sent_at, .. }) => sent_at,
            Some(PendingLogin::Qr { expires_at, .. }) => expires_at,
            _ => return,
        };
        let age = (chrono::Utc::now() - since).to_std().unwrap_or_default();
        if age < self.env.limits.pending_login_ttl {
            return;
        }
        if let Err(e) = self.session.set_pending_login(None).await {
            tracing::warn!(account_id = self.id, error = %e, "could not forget an expired login");
            return;
        }
        let message = format!(
            "the login started {} min ago and its code is no longer valid; start the login again",
            age.as_secs() / 60
        );
        self.transition(
            AccountState::New,
            AccountUpdate {
                last_error: Some(Some(message.clone())),
                ..Default::default()
            },
            "login_expired",
            LogLevel::Warn,
            message,
            Some("PHONE_CODE_EXPIRED".into()),
        )
        .await;
    }

    /// Stops the actor in a final state: normal stop with a reason, so no restart.
    async fn stop_final(
        &mut self,
        myself: &ActorRef<AccountMsg>,
        reason: StopReason,
        last_error: Option<String>,
        error_code: Option<String>,
    ) {
        let to = reason.final_state();
        let level = if reason == StopReason::LoggedOut {
            LogLevel::Info
        } else {
            LogLevel::Error
        };
        let message = match &last_error {
            Some(e) => format!("account stopped ({reason}): {e}"),
            None => format!("account stopped ({reason})"),
        };
        let update = AccountUpdate {
            last_error: Some(last_error),
            ..Default::default()
        };
        self.transition(to, update, "account_stopped", level, message, error_code)
            .await;
        // A revoked or banned authorization is dead: keeping its key would make every later start
        // believe the account is logged in, and refuse a new login. Wipe it, so the owner can log
        // the account in again from scratch. A duplicated key is not dead (Telegram only refused
        // it on a second connection): wiping it would turn a second process into a lost account.
        if matches!(reason, StopReason::Unauthorized | StopReason::Banned) {
            if let Err(e) = self.session.wipe().await {
                tracing::error!(account_id = self.id, error = %e, "wiping a dead session");
            }
        }
        self.final_stop = true;
        self.client = None;
        let _ = myself.send_message(AccountMsg::Internal(InternalMsg(Event::StopNow(reason))));
    }

    async fn handle_request(
        &mut self,
        myself: &ActorRef<AccountMsg>,
        request: AccountRequest,
        reply: Reply,
    ) {
        let authorized = self.session.self_user_id().is_some();
        if !matches!(request, AccountRequest::Status) {
            self.last_request = Instant::now();
            if self.account.state == AccountState::Hibernated && authorized {
                self.wake(myself).await;
            }
        }
        let login_step_allowed = |s: &Self| {
            if authorized {
                Err(s.wrong_state("an account that is not logged in"))
            } else if s.login_busy {
                Err(s.wrong_state("the previous login step to finish"))
            } else {
                Ok(())
            }
        };
        match request {
            AccountRequest::Status => {
                let _ = reply.send(Ok(AccountReply::Status(self.status())));
            }
            AccountRequest::SendCode { phone } => {
                match (
                    login_step_allowed(self),
                    crate::phone::normalize_phone(&phone),
                ) {
                    (Err(e), _) => {
                        let _ = reply.send(Err(e));
                    }
                    (Ok(()), None) => {
                        let _ = reply.send(Err(AccountError::PhoneInvalid));
                    }
                    (Ok(()), Some(phone)) => {
                        self.spawn_op(myself, OpKind::SendCode, Some(reply), |tg| async move {
                            ops::send_code(&tg, phone).await
                        })
                    }
                }
            }
            AccountRequest::SignIn { code } => {
                let pending = matches!(
                    self.session.pending_login(),
                    Some(PendingLogin::Code { .. })
                );
                match login_step_allowed(self) {
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                    Ok(()) if !pending => {
                        let _ = reply.send(Err(self.wrong_state("awaiting_code")));
                    }
                    Ok(()) => self.spawn_op(myself, OpKind::SignIn, Some(reply), |tg| async move {
                        ops::sign_in(&tg, code).await
                    }),
                }
            }
            AccountRequest::CheckPassword { password } => {
                let pending = matches!(
                    self.session.pending_login(),
                    Some(PendingLogin::Password { .. })
                );
                match login_step_allowed(self) {
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                    Ok(()) if !pending => {
                        let _ = reply.send(Err(self.wrong_state("awaiting_password")));
                    }
                    Ok(()) => self.spawn_op(
                        myself,
                        OpKind::CheckPassword,
                        Some(reply),
                        |tg| async move { ops::check_password(&tg, password).await },
                    ),
                }
            }
            AccountRequest::QrCode => match self.session.pending_login() {
                Some(PendingLogin::Qr {
                    expires_at,
                    url: Some(url),
                }) if expires_at > chrono::Utc::now() && !authorized => {
                    let _ = reply.send(Ok(AccountReply::Qr { url, expires_at }));
                }
                _ => {
                    // No token to show: start the QR login like `QrLogin`.
                    Box::pin(self.handle_request(myself, AccountRequest::QrLogin, reply)).await
                }
            },
            AccountRequest::QrLogin => match login_step_allowed(self) {
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
                Ok(()) => self.spawn_op(myself, OpKind::QrLogin, Some(reply), |tg| async move {
                    ops::qr_login(&tg).await
                }),
            },
            AccountRequest::BotSignIn { token } => match login_step_allowed(self) {
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
                Ok(()) => self.spawn_op(myself, OpKind::BotSignIn, Some(reply), |tg| async move {
                    ops::bot_sign_in(&tg, token).await
                }),
            },
            AccountRequest::LogOut => {
                if self.login_busy {
                    let _ = reply.send(Err(self.wrong_state("the previous login step to finish")));
                } else {
                    self.spawn_op(myself, OpKind::LogOut, Some(reply), |tg| async move {
                        ops::log_out(&tg).await
                    });
                }
            }
            AccountRequest::SendMessage {
                peer,
                text,
                dedupe_key,
            } => {
                if !authorized || !is_live(self.account.state) {
                    let _ = reply.send(Err(self.wrong_state("active")));
                    return;
                }
                if self.account.state == AccountState::Reconnecting {
                    let _ = reply.send(Err(AccountError::Reconnecting));
                    return;
                }
                if let Some(key) = &dedupe_key {
                    // A re-send while the first is still in flight waits for its answer.
                    if let Some(waiters) = self.sending.get_mut(key) {
                        waiters.push(reply);
                        return;
                    }
                    self.sending.insert(key.clone(), Vec::new());
                }
                let kind = OpKind::SendMessage {
                    dedupe_key: dedupe_key.clone(),
                };
                self.spawn_op(myself, kind, Some(reply), |tg| async move {
                    ops::send_message(&tg, peer, text, dedupe_key).await
                });
            }
        }
    }

    async fn on_op_done(
        &mut self,
        myself: &ActorRef<AccountMsg>,
        kind: OpKind,
        result: Result<Done, OpFailure>,
        reply: Option<Reply>,
    ) {
        if kind.is_login() {
            self.login_busy = false;
        }
        if kind == OpKind::Health {
            self.health_inflight = false;
        }
        self.ops_inflight = self.ops_inflight.saturating_sub(1);
        let waiters = match &kind {
            OpKind::SendMessage {
                dedupe_key: Some(key),
            } => self.sending.remove(key).unwrap_or_default(),
            _ => Vec::new(),
        };
        let answer = match result {
            Ok(done) => {
                self.last_ok = Instant::now();
                self.reconnect_attempt = 0;
                self.on_success(myself, &kind, done).await
            }
            Err(failure) => self.on_failure(myself, &kind, failure).await,
        };
        for waiter in waiters {
            let _ = waiter.send(answer.clone());
        }
        if let Some(reply) = reply {
            let _ = reply.send(answer);
        }
        if self.qr_poll_wanted && !self.login_busy && !self.final_stop {
            self.start_qr_poll(myself);
        }
    }

    async fn on_success(
        &mut self,
        myself: &ActorRef<AccountMsg>,
        kind: &OpKind,
        done: Done,
    ) -> Result<AccountReply, AccountError> {
        match done {
            Done::CodeSent {
                code_type,
                timeout_s,
            } => {
                let message = format!("login code sent ({code_type})");
                // The row names the phone being logged in (a user's list, the sandbox's codes)
                // once Telegram accepted it; it holds the phone only when authorized.
                let phone = match self.session.pending_login() {
                    Some(PendingLogin::Code { phone, .. }) => Some(Some(phone)),
                    _ => None,
                };
                self.transition(
                    AccountState::AwaitingCode,
                    AccountUpdate {
                        phone,
                        ..Default::default()
                    },
                    "login_code_sent",
                    LogLevel::Info,
                    message,
                    None,
                )
                .await;
                Ok(AccountReply::CodeSent {
                    code_type,
                    timeout_s,
                })
            }
            Done::PasswordNeeded { hint } => {
                self.transition(
                    AccountState::AwaitingPassword,
                    AccountUpdate::default(),
                    "login_password_needed",
                    LogLevel::Info,
                    "two-step verification password needed".into(),
                    None,
                )
                .await;
                Ok(AccountReply::LoginStep {
                    state: AccountState::AwaitingPassword,
                    hint,
                })
            }
            Done::Qr { url, expires_at } => {
                self.transition(
                    AccountState::AwaitingQr,
                    AccountUpdate::default(),
                    "login_qr_exported",
                    LogLevel::Info,
                    format!("QR login token exported, valid until {expires_at}"),
                    None,
                )
                .await;
                Ok(AccountReply::Qr { url, expires_at })
            }
            Done::QrPending => Ok(AccountReply::LoginStep {
                state: self.account.state,
                hint: None,
            }),
            Done::LoggedIn(user) => {
                self.logged_in(myself, kind, user).await?;
                Ok(AccountReply::LoginStep {
                    state: AccountState::Active,
                    hint: None,
                })
            }
            Done::Sent { message_id } => Ok(AccountReply::Sent { message_id }),
            Done::LoggedOut => {
                let update = AccountUpdate {
                    tg_user_id: Some(None),
                    username: Some(None),
                    flood_wait_until: Some(None),
                    ..Default::default()
                };
                self.transition(
                    AccountState::LoggedOut,
                    update,
                    "logged_out",
                    LogLevel::Info,
                    "logged out of Telegram; session wiped".into(),
                    None,
                )
                .await;
                self.final_stop = true;
                self.client = None;
                let _ = myself.send_message(AccountMsg::Internal(InternalMsg(Event::StopNow(
                    StopReason::LoggedOut,
                ))));
                Ok(AccountReply::LoggedOut)
            }
            Done::Alive => {
                if matches!(
                    self.account.state,
                    AccountState::Reconnecting | AccountState::FloodWait
                ) {
                    self.transition(
                        AccountState::Active,
                        AccountUpdate {
                            last_error: Some(None),
                            ..Default::default()
                        },
                        "reconnected",
                        LogLevel::Info,
                        "Telegram answers again".into(),
                        None,
                    )
                    .await;
                } else if !is_live(self.account.state) && self.session.self_user_id().is_some() {
                    self.transition(
                        AccountState::Active,
                        AccountUpdate::default(),
                        "session_resumed",
                        LogLevel::Info,
                        "authorized session resumed".into(),
                        None,
                    )
                    .await;
                }
                Ok(AccountReply::Status(self.status()))
            }
        }
    }

    async fn logged_in(
        &mut self,
        myself: &ActorRef<AccountMsg>,
        kind: &OpKind,
        user: LoggedInUser,
    ) -> Result<(), AccountError> {
        let update = AccountUpdate {
            tg_user_id: Some(Some(user.user_id)),
            username: Some(user.username.clone()),
            dc_id: Some(Some(user.dc_id)),
            last_error: Some(None),
            // Only now, authorized, does the account hold its phone (the store's unique index).
            phone: user.phone.clone().map(Some),
            ..Default::default()
        };
        let how = match kind {
            OpKind::BotSignIn => "bot token",
            OpKind::CheckPassword => "code and password",
            OpKind::QrLogin | OpKind::QrPoll => "QR code",
            _ => "code",
        };
        let message = format!(
            "logged in by {how} as Telegram {} {}",
            if user.bot { "bot" } else { "user" },
            user.user_id
        );
        match self
            .try_transition(
                AccountState::Active,
                update,
                "login_completed",
                LogLevel::Info,
                message,
                None,
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict(_)) => {
                // Another account of the fleet got authorized for this phone first: undo this
                // authorization at Telegram rather than run one Telegram user twice.
                let tg = self.tg(myself);
                if let Err(e) = ops::log_out(&tg).await {
                    // Telegram not reached: the key cannot stay here either, beside the
                    // account that holds the phone.
                    tracing::warn!(account_id = self.id, error = %e.error, "logging out a login whose phone is taken");
                    if let Err(e) = self.session.wipe().await {
                        tracing::error!(account_id = self.id, error = %e, "wiping a login whose phone is taken");
                    }
                }
                let reason = "PHONE_TAKEN: another account of this fleet is logged in with this \
                              phone; this login was logged out again";
                let update = AccountUpdate {
                    tg_user_id: Some(None),
                    username: Some(None),
                    last_error: Some(Some(reason.into())),
                    ..Default::default()
                };
                self.transition(
                    AccountState::LoggedOut,
                    update,
                    "login_refused",
                    LogLevel::Warn,
                    reason.into(),
                    Some("PHONE_TAKEN".into()),
                )
                .await;
                self.final_stop = true;
                self.client = None;
                let _ = myself.send_message(AccountMsg::Internal(InternalMsg(Event::StopNow(
                    StopReason::LoggedOut,
                ))));
                Err(AccountError::PhoneTaken)
            }
            Err(_) => Ok(()),
        }
    }

    async fn on_failure(
        &mut self,
        myself: &ActorRef<AccountMsg>,
        kind: &OpKind,
        failure: OpFailure,
    ) -> Result<AccountReply, AccountError> {
        let OpFailure { error, cause } = failure;
        let authorized = self.session.self_user_id().is_some();
        let event = if kind.is_login() {
            "login_failed"
        } else {
            "telegram_error"
        };
        let describe = cause.as_ref().map(CallError::describe).unwrap_or_default();
        let cause_code = cause.as_ref().map(CallError::code);
        match classify(cause.as_ref(), authorized) {
            Consequence::Stop(reason) => {
                let message = match reason {
                    StopReason::Unauthorized => format!("{describe}: the session was revoked"),
                    StopReason::Duplicated => "AUTH_KEY_DUPLICATED: this session is in use by \
                        another client at the same time (another process on this database, or an \
                        exported copy); the session is kept: stop the other client, then restart \
                        the account"
                        .into(),
                    _ => describe.clone(),
                };
                let name = match &cause {
                    Some(CallError::Rpc(rpc)) => Some(rpc.name.clone()),
                    _ => cause_code.clone(),
                };
                self.stop_final(myself, reason, Some(message), name).await;
                return Err(match (reason, &cause) {
                    (StopReason::Unauthorized, _) => AccountError::Unauthorized,
                    (StopReason::Banned, _) => AccountError::Banned,
                    (_, Some(CallError::Rpc(rpc))) => AccountError::Telegram {
                        code: rpc.code,
                        name: rpc.name.clone(),
                    },
                    _ => error,
                });
            }
            Consequence::Reconnect { rebuild } => {
                if rebuild {
                    // A black hole hangs even grammers' quit(): abort the runner and start over.
                    self.client = None;
                }
                if authorized && is_live(self.account.state) {
                    if self.account.state != AccountState::Reconnecting {
                        self.transition(
                            AccountState::Reconnecting,
                            AccountUpdate {
                                last_error: Some(Some(describe.clone())),
                                ..Default::default()
                            },
                            "reconnecting",
                            LogLevel::Warn,
                            format!("Telegram unreachable ({describe}); reconnecting"),
                            cause_code,
                        )
                        .await;
                    }
                    self.reconnect_attempt = self.reconnect_attempt.saturating_add(1);
                    let delay = self.backoff();
                    self.schedule_check(myself, delay);
                } else {
                    self.log(
                        LogLevel::Warn,
                        event,
                        cause_code,
                        format!("{} failed: {describe}", kind.name()),
                        serde_json::json!({ "op": kind.name() }),
                    )
                    .await;
                }
            }
            Consequence::FloodWait {
                seconds,
                account_wide,
            } => {
                let until = chrono::Utc::now() + chrono::Duration::seconds(i64::from(seconds));
                let later = self.account.flood_wait_until.is_none_or(|u| u < until);
                let to = if account_wide {
                    AccountState::FloodWait
                } else {
                    self.account.state
                };
                if later || to != self.account.state {
                    self.transition(
                        to,
                        AccountUpdate {
                            flood_wait_until: Some(Some(until)),
                            ..Default::default()
                        },
                        "flood_wait",
                        LogLevel::Warn,
                        match &cause {
                            Some(CallError::FloodWait { method, .. }) => {
                                format!("FLOOD_WAIT of {seconds} s on {method}")
                            }
                            _ => format!("FLOOD_WAIT of {seconds} s"),
                        },
                        Some("FLOOD_WAIT".into()),
                    )
                    .await;
                }
                if account_wide {
                    self.schedule_check(myself, Duration::from_secs(u64::from(seconds)));
                }
            }
            Consequence::Refused => match &cause {
                Some(other) => {
                    self.log(
                        LogLevel::Warn,
                        event,
                        Some(other.code()),
                        format!("{} failed: {describe}", kind.name()),
                        serde_json::json!({ "op": kind.name() }),
                    )
                    .await;
                }
                None => {
                    self.log(
                        LogLevel::Info,
                        event,
                        Some(error.code().to_owned()),
                        format!("{} refused: {}", kind.name(), error.code()),
                        serde_json::json!({ "op": kind.name() }),
                    )
                    .await;
                }
            },
        }
        // A failed login step may have changed the pending login (an expired code is dropped).
        if kind.is_login() && !authorized && !self.final_stop {
            let to = self.session_state();
            if to != self.account.state {
                self.transition(
                    to,
                    AccountUpdate::default(),
                    event,
                    LogLevel::Info,
                    format!("{} failed: {}", kind.name(), error.code()),
                    Some(error.code().to_owned()),
                )
                .await;
            }
        }
        Err(error)
    }

    async fn on_event(&mut self, myself: &ActorRef<AccountMsg>, event: Event) {
        let current = |generation: u64, s: &Self| generation == s.generation && s.client.is_some();
        match event {
            Event::OpDone {
                kind,
                result,
                reply,
            } => self.on_op_done(myself, kind, result, reply).await,
            Event::RunnerExited {
                generation,
                panicked,
            } => {
                if !current(generation, self) {
                    return;
                }
                self.client = None;
                let how = if panicked { "crashed" } else { "ended" };
                self.log(
                    LogLevel::Warn,
                    "client_restarted",
                    Some("CLIENT_CRASHED".into()),
                    format!("the Telegram client {how}; rebuilding it"),
                    serde_json::json!({ "panicked": panicked }),
                )
                .await;
                if is_live(self.account.state) {
                    self.start_health(myself);
                } else if matches!(self.session.pending_login(), Some(PendingLogin::Qr { .. })) {
                    self.start_qr_poll(myself);
                }
            }
            Event::ConnectionClosed { generation } => {
                if !current(generation, self) {
                    return;
                }
                // Heard only while updates are on: during a login (updateLoginToken must get
                // through), or for a logged-in account until its client's first call mutes them
                // (`LiveClient::mute_updates`); later drops are healed by the next call.
                if is_live(self.account.state) && !self.check_scheduled {
                    self.start_health(myself);
                } else if matches!(self.session.pending_login(), Some(PendingLogin::Qr { .. })) {
                    self.start_qr_poll(myself);
                }
            }
            Event::LoginTokenUpdated { generation } => {
                if current(generation, self)
                    && matches!(self.session.pending_login(), Some(PendingLogin::Qr { .. }))
                {
                    self.start_qr_poll(myself);
                }
            }
            Event::CheckNow => {
                self.check_scheduled = false;
                if is_live(self.account.state) {
                    self.start_health(myself);
                }
            }
            Event::StopNow(reason) => myself.stop(Some(reason.as_str().to_owned())),
            Event::Watchdog => {
                if self.should_hibernate() {
                    self.hibernate(myself).await;
                    return;
                }
                let idle = self.last_ok.elapsed() >= self.env.limits.watchdog_period;
                if is_live(self.account.state) && idle && !self.check_scheduled {
                    self.start_health(myself);
                }
            }
        }
    }
}

impl Actor for AccountActor {
    type Msg = AccountMsg;
    type State = AccountActorState;
    type Arguments = AccountArgs;

    /// Loads the account row and its session; no Telegram I/O here (a failed `pre_start` is a
    /// failed spawn, and the supervisor should see Telegram trouble as states, not spawn errors).
    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: AccountArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let AccountArgs { account_id, env } = args;
        // Only an outage is the store's; a bad row is this account's failure like any other.
        let account = env.store.account(account_id).await.map_err(|e| match e {
            StoreError::Unavailable(message) => ActorProcessingErr::from(DependencyDown {
                dependency: Dependency::Store,
                message,
            }),
            other => ActorProcessingErr::from(other),
        })?;
        let session = StoreSession::load_or_create(account_id, Arc::clone(&env))
            .await
            .map_err(|e| match e.dependency() {
                Some(dependency) => ActorProcessingErr::from(DependencyDown {
                    dependency,
                    message: e.to_string(),
                }),
                None => ActorProcessingErr::from(e),
            })?;
        let flood = Arc::new(FloodControl::new());
        let pacer = new_pacer(&env);
        let mut state = AccountActorState {
            id: account_id,
            env,
            account,
            session,
            client: None,
            generation: 0,
            flood,
            pacer,
            login_busy: false,
            qr_poll_wanted: false,
            health_inflight: false,
            check_scheduled: false,
            reconnect_attempt: 0,
            last_ok: Instant::now(),
            last_request: Instant::now(),
            ops_inflight: 0,
            op_tasks: Vec::new(),
            sending: HashMap::new(),
            watchdog: None,
            final_stop: false,
            hibernating: false,
        };
        // The session is the truth about logins; the row may lag behind a crash.
        let implied = state.session_state();
        // A hibernated account stays so across restarts and fleet starts (a cold start of many
        // hibernated accounts opens no connections), unless hibernation was switched off.
        let keeps_row = is_live(state.account.state)
            || (state.account.state == AccountState::Hibernated
                && state.env.limits.hibernate_after.is_some());
        // An account that lost its authorization keeps saying why (unauthorized, banned) until a
        // new login starts, rather than looking brand new.
        let lost_authorization = matches!(
            state.account.state,
            AccountState::Unauthorized | AccountState::Banned
        );
        let start_state = if (implied == AccountState::Active && keeps_row)
            || (implied == AccountState::New && lost_authorization)
        {
            state.account.state
        } else {
            implied
        };
        if start_state != state.account.state {
            let message = format!("account actor started in state {start_state}");
            state
                .transition(
                    start_state,
                    AccountUpdate::default(),
                    "actor_started",
                    LogLevel::Info,
                    message,
                    None,
                )
                .await;
        } else {
            state.env.metrics.set_state(account_id, start_state);
        }
        state.expire_stale_login().await;
        Ok(state)
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if is_live(state.account.state) {
            // Connect now: an authorized account should be reachable (and its updates flowing)
            // without waiting for a first request.
            state.start_health(&myself);
        } else if matches!(state.session.pending_login(), Some(PendingLogin::Qr { .. })) {
            // The token may have been scanned while no actor was listening.
            state.start_qr_poll(&myself);
        }
        // Also for a hibernated account: an actor started for one by a status read must end again.
        state.start_watchdog(&myself);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            AccountMsg::Crash => {
                panic!(
                    "AccountMsg::Crash: crash requested for account {}",
                    state.id
                )
            }
            AccountMsg::Request(_, reply) if state.hibernating => {
                let _ = reply.send(Err(AccountError::Hibernating));
            }
            AccountMsg::Internal(InternalMsg(event)) if state.hibernating => {
                // Nothing was in flight when it went (see `should_hibernate`); a late answer
                // still gets one.
                if let Event::OpDone {
                    reply: Some(reply), ..
                } = event
                {
                    let _ = reply.send(Err(AccountError::Hibernating));
                }
            }
            AccountMsg::Request(request, reply) => {
                if state.final_stop {
                    // Stopping in a final state: answer with what the account has become.
                    let error = match state.account.state {
                        AccountState::Unauthorized => AccountError::Unauthorized,
                        AccountState::Banned => AccountError::Banned,
                        _ => state.wrong_state("a running account"),
                    };
                    let _ = reply.send(Err(error));
                } else {
                    // Boxed: the handler futures are large state machines, and inline they
                    // would size every idle actor's task for its busiest moment.
                    Box::pin(state.handle_request(&myself, request, reply)).await;
                }
            }
            AccountMsg::Internal(InternalMsg(event)) if state.final_stop => match event {
                // After a final state only the stop itself matters; late results must not move
                // the account out of it again (a late health check "reviving" a banned account).
                Event::StopNow(reason) => myself.stop(Some(reason.as_str().to_owned())),
                Event::OpDone {
                    reply: Some(reply), ..
                } => {
                    let _ = reply.send(Err(state.wrong_state("a running account")));
                }
                _ => {}
            },
            AccountMsg::Internal(InternalMsg(event)) => {
                Box::pin(state.on_event(&myself, event)).await
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Every change is already written when it happens; this only catches a write that
        // failed earlier, so a clean stop leaves the newest state behind.
        if let Err(e) = Box::pin(state.session.persist()).await {
            tracing::warn!(account_id = state.id, error = %e, "final session write failed");
        }
        state.client = None;
        Ok(())
    }
}
