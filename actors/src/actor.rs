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

use std::fmt;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tgfleet_persistence::{Account, AccountId, AccountState};

use crate::env::{AccountArgs, AccountEnv};
use crate::protocol::{AccountError, AccountReply, AccountRequest, AccountStatus};
use std::sync::Arc;

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

pub(crate) enum Event {}

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

/// Everything one account actor holds between messages.
pub struct AccountActorState {
    id: AccountId,
    env: Arc<AccountEnv>,
    account: Account,
}

impl Actor for AccountActor {
    type Msg = AccountMsg;
    type State = AccountActorState;
    type Arguments = AccountArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: AccountArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let account = args.env.store.account(args.account_id).await?;
        Ok(AccountActorState {
            id: args.account_id,
            env: args.env,
            account,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            AccountMsg::Crash => panic!(
                "AccountMsg::Crash: crash requested for account {}",
                state.id
            ),
            AccountMsg::Request(AccountRequest::Status, reply) => {
                let _ = reply.send(Ok(AccountReply::Status(AccountStatus {
                    account_id: state.id,
                    state: state.account.state,
                    tg_user_id: state.account.tg_user_id,
                    username: state.account.username.clone(),
                    dc_id: state.account.dc_id,
                    flood_wait_until: state.account.flood_wait_until,
                    last_error: state.account.last_error.clone(),
                })));
            }
            AccountMsg::Request(_, reply) => {
                let _ = reply.send(Err(AccountError::Internal("not implemented yet".into())));
            }
            AccountMsg::Internal(InternalMsg(event)) => match event {},
        }
        let _ = &state.env;
        Ok(())
    }
}
