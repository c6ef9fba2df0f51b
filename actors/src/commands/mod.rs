//! One module per command an account understands. Each holds its typed request and reply, its
//! admission (`admit`: may it run in this state, and what Telegram operation), the operation
//! itself (`run`, in a task off the mailbox), and what its outcome means (`on_done`: effects and
//! the answer). Admission and outcome are pure: they read a [`View`] and return [`Effect`]s, which
//! only `executor.rs` carries out.
//!
//! Adding a command: a module here with a `Handler` impl, and one line in `commands!` below.

pub mod bot_sign_in;
pub(crate) mod chat_calls;
pub mod check_connection;
pub mod check_password;
pub mod create_chat;
pub mod delete_message;
pub mod edit_chat;
pub mod edit_message;
pub(crate) mod failure;
pub mod get_chat;
pub(crate) mod health;
pub mod history;
pub mod invite_link;
pub mod join_chat;
pub mod leave_chat;
pub mod list_chats;
pub mod log_out;
pub(crate) mod login;
pub mod message_file;
pub mod pin_message;
pub mod qr_login;
pub(crate) mod qr_poll;
pub mod read_file;
pub mod send_code;
pub mod send_message;
pub mod set_admin;
pub mod sign_in;
pub mod status;

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ractor::RpcReplyPort;
use tgfleet_persistence::Account;

use crate::client::{CallError, Tg};
use crate::effect::Effect;
use crate::env::AccountLimits;
use crate::protocol::AccountError;
use crate::session::{PendingLogin, SessionError};
use crate::state::State;

/// Where a command's answer goes.
pub type Port<R> = RpcReplyPort<Result<R, AccountError>>;

/// A request one account answers with `Reply`. `Fleet::call` takes any of these.
pub trait Command: Clone + Send + std::fmt::Debug + 'static {
    type Reply: Clone + Send + std::fmt::Debug + 'static;
    /// The command's name in logs and spans (`send_message`, …).
    const NAME: &'static str;
    /// Into the actor's message, with the port its answer goes to. The current span goes along:
    /// the command and its Telegram call run in it, so one log search follows a request from
    /// HTTP to Telegram.
    fn into_request(self, reply: Port<Self::Reply>) -> AccountRequest;
}

/// The dispatch table: every command, with the module that handles it and its reply.
macro_rules! commands {
    ($($variant:ident => $module:ident :: $command:ident -> $reply:ty),* $(,)?) => {
        /// A request routed to one account actor, with its reply port and the caller's span.
        /// Its `Debug` names the command and hides every code, password, token and message text.
        pub enum AccountRequest {
            $($variant($module::$command, Port<$reply>, tracing::Span),)*
        }

        impl AccountRequest {
            pub fn name(&self) -> &'static str {
                match self {
                    $(Self::$variant(..) => <$module::$command as Handler>::NAME,)*
                }
            }

            pub(crate) async fn dispatch(
                self,
                account: &mut crate::executor::AccountActorState,
                myself: &ractor::ActorRef<crate::actor::AccountMsg>,
            ) {
                match self {
                    $(Self::$variant(command, reply, span) => {
                        account.run(myself, command, Some(reply), span).await
                    })*
                }
            }

            /// Answers with `error` without running.
            pub fn refuse(self, error: AccountError) {
                match self {
                    $(Self::$variant(_, reply, _) => { let _ = reply.send(Err(error)); })*
                }
            }
        }

        $(impl Command for $module::$command {
            type Reply = $reply;
            const NAME: &'static str = <$module::$command as Handler>::NAME;
            fn into_request(self, reply: Port<$reply>) -> AccountRequest {
                AccountRequest::$variant(self, reply, tracing::Span::current())
            }
        })*
    };
}

commands! {
    SendCode => send_code::SendCode -> send_code::CodeSent,
    SignIn => sign_in::SignIn -> login::LoginStep,
    CheckPassword => check_password::CheckPassword -> login::LoginStep,
    QrLogin => qr_login::QrLogin -> qr_login::Qr,
    QrCode => qr_login::QrCode -> qr_login::Qr,
    BotSignIn => bot_sign_in::BotSignIn -> login::LoginStep,
    LogOut => log_out::LogOut -> (),
    SendMessage => send_message::SendMessage -> send_message::Sent,
    ListChats => list_chats::ListChats -> Vec<crate::chat::Chat>,
    CreateChat => create_chat::CreateChat -> crate::chat::Chat,
    GetChat => get_chat::GetChat -> crate::chat::Chat,
    EditChat => edit_chat::EditChat -> crate::chat::Chat,
    LeaveChat => leave_chat::LeaveChat -> (),
    JoinChat => join_chat::JoinChat -> crate::chat::Chat,
    InviteLink => invite_link::InviteLink -> String,
    SetAdmin => set_admin::SetAdmin -> (),
    History => history::History -> history::HistoryPage,
    EditMessage => edit_message::EditMessage -> (),
    DeleteMessage => delete_message::DeleteMessage -> (),
    PinMessage => pin_message::PinMessage -> (),
    MessageFile => message_file::MessageFile -> message_file::FileToRead,
    ReadFile => read_file::ReadFile -> Vec<u8>,
    Status => status::Status -> crate::protocol::AccountStatus,
    CheckConnection => check_connection::CheckConnection -> (),
}

impl std::fmt::Debug for AccountRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Request({})", self.name())
    }
}

/// What kind of operation a command runs, for what may run beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// Reads and writes the pending login: one at a time.
    Login,
    /// The liveness check: one at a time.
    Health,
    /// Anything else that calls Telegram.
    Call,
    /// Answered from memory.
    Read,
}

/// What a decision may read: the state and the facts beside it that the executor holds.
#[derive(Debug, Clone)]
pub(crate) struct View<'a> {
    pub state: &'a State,
    /// The session holds an authorization (a self user).
    pub authorized: bool,
    /// The session's pending login, as the last operation left it.
    pub pending: Option<PendingLogin>,
    /// A login step is running.
    pub login_busy: bool,
    pub check_scheduled: bool,
    pub ops_in_flight: usize,
    /// The account row as last written (identity, flood-wait end, last error). Its `state`
    /// is not read: `state` above is the truth.
    pub row: &'a Account,
    pub since_request: Duration,
    pub since_ok: Duration,
    pub limits: &'a AccountLimits,
    pub now: DateTime<Utc>,
}

impl View<'_> {
    pub fn wrong_state(&self, expected: &'static str) -> AccountError {
        AccountError::WrongState {
            state: self.state.account_state(),
            expected,
        }
    }

    /// The state the session implies when no connection problem is in the way.
    pub fn session_state(&self) -> State {
        State::implied(self.pending.as_ref(), self.authorized)
    }

    /// A login step may start: not logged in, and no other step running.
    pub fn login_step_allowed(&self) -> Result<(), AccountError> {
        if self.authorized {
            Err(self.wrong_state("an account that is not logged in"))
        } else if self.login_busy {
            Err(self.wrong_state("the previous login step to finish"))
        } else {
            Ok(())
        }
    }

    /// A call on the account's behalf may run: logged in, connected (or waiting out a flood,
    /// which the call's own gate handles), not reconnecting.
    pub fn call_allowed(&self) -> Result<(), AccountError> {
        if !self.authorized || !self.state.is_live() {
            Err(self.wrong_state("active"))
        } else if matches!(self.state, State::Reconnecting { .. }) {
            Err(AccountError::Reconnecting)
        } else {
            Ok(())
        }
    }

    pub fn qr_pending(&self) -> bool {
        matches!(self.pending, Some(PendingLogin::Qr { .. }))
    }
}

/// Whether a command runs, and if not, its answer.
pub(crate) enum Admission<Op, R> {
    Run(Op),
    Answer(Result<R, AccountError>),
}

impl<Op, R> From<Result<Op, AccountError>> for Admission<Op, R> {
    fn from(r: Result<Op, AccountError>) -> Self {
        match r {
            Ok(op) => Self::Run(op),
            Err(e) => Self::Answer(Err(e)),
        }
    }
}

/// An outcome's effects, and the answer once they are carried out (an effect the store refuses
/// may still turn it into an error).
pub(crate) struct Decided<R> {
    pub effects: Vec<Effect>,
    pub answer: Result<R, AccountError>,
}

impl<R> Decided<R> {
    pub fn answer(answer: Result<R, AccountError>) -> Self {
        Self {
            effects: Vec::new(),
            answer,
        }
    }
}

/// A command as the actor runs it.
pub(crate) trait Handler: Send + 'static {
    type Reply: Clone + Send + 'static;
    /// What the Telegram operation needs (decided at admission).
    type Op: Send + 'static;
    /// What the Telegram operation achieved.
    type Done: Send + 'static;
    const NAME: &'static str;
    const CLASS: Class;
    /// The request counts as use: it wakes a hibernated account and delays hibernation.
    const IS_USE: bool = true;

    fn admit(self, view: &View) -> Admission<Self::Op, Self::Reply>;

    /// Requests with the same key while one runs wait for its answer instead of running again.
    fn joins(_op: &Self::Op) -> Option<String> {
        None
    }

    fn run(op: Self::Op, tg: Tg) -> impl Future<Output = Result<Self::Done, OpFailure>> + Send;

    fn on_done(view: &View, done: Self::Done) -> Decided<Self::Reply>;

    fn on_failure(view: &View, failure: OpFailure) -> Decided<Self::Reply> {
        let (effects, error) = failure::decide(view, Self::NAME, Self::CLASS, failure);
        Decided {
            effects,
            answer: Err(error),
        }
    }
}

/// What the caller sees, and the Telegram-level cause the actor turns into a state.
#[derive(Debug)]
pub(crate) struct OpFailure {
    pub error: AccountError,
    pub cause: Option<CallError>,
}

impl OpFailure {
    pub fn user(error: AccountError) -> Self {
        Self { error, cause: None }
    }
}

impl From<CallError> for OpFailure {
    fn from(cause: CallError) -> Self {
        Self {
            error: generic_error(&cause),
            cause: Some(cause),
        }
    }
}

impl From<SessionError> for OpFailure {
    fn from(e: SessionError) -> Self {
        CallError::Session(e.to_string()).into()
    }
}

/// The caller-facing error of a Telegram failure no command handled specifically.
pub(crate) fn generic_error(cause: &CallError) -> AccountError {
    match cause {
        CallError::FloodWait { method, seconds } => AccountError::FloodWait {
            method: method.clone(),
            seconds: *seconds,
        },
        CallError::Timeout => AccountError::Timeout,
        CallError::Network { .. } => AccountError::Reconnecting,
        CallError::Session(detail) => AccountError::Internal(detail.clone()),
        CallError::Rpc(e) => {
            if crate::classify::is_revoked(e) {
                AccountError::Unauthorized
            } else if e.is("USER_DEACTIVATED*") || e.is("PHONE_NUMBER_BANNED") {
                AccountError::Banned
            } else {
                AccountError::Telegram {
                    code: e.code,
                    name: e.name.clone(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_never_prints_its_secrets() {
        let (port, _rx) = ractor::concurrency::oneshot();
        let requests: Vec<String> = vec![
            format!(
                "{:?}",
                sign_in::SignIn {
                    code: "31337".into()
                }
            ),
            format!(
                "{:#?}",
                check_password::CheckPassword {
                    password: "hunter2-2fa".into(),
                }
            ),
            format!(
                "{:?}",
                bot_sign_in::BotSignIn {
                    token: "123456:AAE-secret-token".into(),
                }
            ),
            format!(
                "{:?}",
                send_message::SendMessage {
                    media: Vec::new(),
                    random_id: None,
                    peer: crate::peer::Peer::Me,
                    text: "private words".into(),
                    dedupe_key: None,
                    options: Default::default(),
                }
            ),
        ];
        for shown in &requests {
            for secret in ["31337", "hunter2-2fa", "AAE-secret-token", "private words"] {
                assert!(!shown.contains(secret), "{shown}");
            }
            assert!(shown.contains("<redacted>"), "{shown}");
        }
        let request = sign_in::SignIn {
            code: "31337".into(),
        }
        .into_request(port.into());
        assert_eq!(format!("{request:?}"), "Request(sign_in)");
    }
}

#[cfg(test)]
pub(crate) mod test_view {
    //! Views for the pure decisions' unit tests.
    use super::*;

    pub fn limits() -> AccountLimits {
        AccountLimits::default()
    }

    pub fn row() -> Account {
        Account {
            id: 7,
            owner_id: 1,
            label: None,
            kind: tgfleet_persistence::AccountKind::User,
            phone: None,
            state: tgfleet_persistence::AccountState::New,
            tg_user_id: None,
            username: None,
            dc_id: None,
            flood_wait_until: None,
            last_error: None,
            restarts: 0,
            receive_updates: None,
            device: tgfleet_persistence::DeviceIdentity::pick(0),
            api_id: None,
            proxy_id: None,
            two_fa_stored: false,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    /// A view of `state`, authorized when the state is one of an authorized account.
    pub fn view<'a>(state: &'a State, limits: &'a AccountLimits, row: &'a Account) -> View<'a> {
        View {
            state,
            authorized: state.is_live() || matches!(state, State::Hibernated),
            pending: None,
            login_busy: false,
            check_scheduled: false,
            ops_in_flight: 0,
            row,
            since_request: Duration::ZERO,
            since_ok: Duration::ZERO,
            limits,
            now: Utc::now(),
        }
    }
}
