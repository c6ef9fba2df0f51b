//! Supervision of the account actors: one-for-one supervisors that restart a failed actor in place
//! (same account id, state reloaded from the store) with backoff and a restart intensity beyond
//! which the account is quarantined; the registry that routes each request to the one actor of
//! its account; and the [`Fleet`] handle the API uses.
//!
//! # How a child's end is read
//!
//! * It **fails** (panic or `Err` out of a handler or `post_start`, or `pre_start` fails): it is
//!   restarted in place after a backoff (`reason="failed"`), or quarantined once the restart
//!   intensity is exceeded. A failure whose text starts with [`WATCHDOG_STOP_REASON`] counts as
//!   `reason="watchdog"`.
//! * It **stops normally** with any reason (`unauthorized`, `banned`, `logged_out`, …): the account
//!   is in a final state and is not restarted; the next call or start brings it up again. The one
//!   exception is the reason [`WATCHDOG_STOP_REASON`], the actor's way of saying "I am silent,
//!   restart me".
//! * It does not answer a liveness check within `liveness_timeout`, or someone calls
//!   [`Fleet::report_silent`]: it is killed and restarted like a failure (`reason="watchdog"`).
//!
//! Each supervisor owns a fixed subset of account ids, so all starts, restarts and stops
//! of one account go through one mailbox: that, not a lock, is what keeps it to one actor.

pub mod child;
pub mod error;
mod fleet;
mod journal;
mod liveness;
mod messages;
pub mod metrics;
mod policy;
mod sessions;
mod settings;
mod slot;
mod spawn;
mod stats;
mod supervisor;

pub use child::{AccountActorFactory, ChildFactory, ChildSpec, SpawnFuture};
pub use error::{FleetError, UnavailableKind};
pub use fleet::{AccountSetup, Fleet, FleetStats};
pub use metrics::{RestartReason, SupervisionMetrics};
pub use policy::backoff_delay;
pub use sessions::ExportError;
pub use settings::SupervisionSettings;
pub use slot::WATCHDOG_STOP_REASON;
pub use stats::SupervisorStats;

/// The account core's vocabulary, for the API: the commands an account takes and their replies,
/// the typed inputs they are parsed into, the session formats of an import or export, and what
/// an account's environment is made of. The API depends on this crate alone; these are the
/// account core's types, named here so nothing reaches past the fleet into the actors.
pub mod account {
    pub use tgfleet_actors::env::App;
    pub use tgfleet_actors::formatting;
    pub use tgfleet_actors::import::formats;
    pub use tgfleet_actors::import::{
        ForeignSession, ImportAs, ImportError, PreparedSession, TwoFaPassword,
    };
    pub use tgfleet_actors::message::entities_of;
    pub use tgfleet_actors::peer::PEER_FORMS;
    pub use tgfleet_actors::{
        AccountError, AccountLimits, AccountStatus, BotSignIn, Chat, ChatKind, ChatMessage,
        ChatRole, CheckConnection, CheckPassword, CodeSent, Command, CreateChat, DeleteMessage,
        EditChat, EditMessage, Entity, FileToRead, FormattedText, GetChat, History, HistoryPage,
        InviteLink, JoinChat, JoinLink, LeaveChat, ListChats, LogOut, LoginStep, MediaInfo,
        MessageFile, ParseMode, Peer, Phone, PinMessage, Qr, QrCode, QrLogin, ReadFile, SendCode,
        SendMessage, SendOptions, Sent, SetAdmin, SignIn, Status, TelegramParams, TelegramTarget,
        ADMIN_RIGHTS, JOIN_LINK_FORMS, READ_PIECE,
    };
    pub use tgfleet_persistence::device::{self, DeviceIdentity, DevicePatch};
}
