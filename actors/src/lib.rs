//! One ractor actor per Telegram account: it owns the live grammers client, the encrypted session
//! state (pending login included), flood-wait state, outbound pacing and per-account metrics.
//!
//! Start an account with `ractor::Actor::spawn(name, AccountActor, AccountArgs { .. })` (or
//! `spawn_linked` under a supervisor) and send it a [`Command`] (`SendCode`, `SendMessage`, …)
//! as [`AccountMsg::Request`]. See [`actor`] for the contract between the actor and its
//! supervisor: how it ends tells the supervisor whether to restart it. ARCHITECTURE.md has the
//! map of the modules.

pub mod actor;
pub mod chat;
mod classify;
mod client;
pub mod commands;
mod effect;
pub mod env;
pub mod executor;
pub mod flood;
pub mod formatting;
pub mod import;
mod lifecycle;
pub mod message;
pub mod metrics;
pub mod peer;
pub mod protocol;
pub mod proxy;
pub mod receive;
pub mod session;
pub mod state;
mod stop;
pub mod upload;
pub mod writes;

pub use actor::{AccountActor, AccountMsg, StopReason};
pub use chat::{Chat, ChatKind, ChatRole, JoinLink, ADMIN_RIGHTS, JOIN_LINK_FORMS};
pub use commands::bot_sign_in::BotSignIn;
pub use commands::check_connection::CheckConnection;
pub use commands::check_password::{srp_peak_in_flight, srp_slot_count, CheckPassword};
pub use commands::create_chat::CreateChat;
pub use commands::delete_message::DeleteMessage;
pub use commands::edit_chat::EditChat;
pub use commands::edit_message::EditMessage;
pub use commands::get_chat::GetChat;
pub use commands::history::{History, HistoryPage};
pub use commands::invite_link::InviteLink;
pub use commands::join_chat::JoinChat;
pub use commands::leave_chat::LeaveChat;
pub use commands::list_chats::ListChats;
pub use commands::log_out::LogOut;
pub use commands::login::LoginStep;
pub use commands::message_file::{FileToRead, MessageFile};
pub use commands::pin_message::PinMessage;
pub use commands::qr_login::{Qr, QrCode, QrLogin};
pub use commands::read_file::{ReadFile, PIECE as READ_PIECE};
pub use commands::send_code::{CodeSent, SendCode};
pub use commands::send_message::{SendMessage, SendOptions, Sent};
pub use commands::set_admin::SetAdmin;
pub use commands::sign_in::SignIn;
pub use commands::status::Status;
pub use commands::{AccountRequest, Command, Port};
pub use env::{AccountArgs, AccountEnv, AccountLimits, TelegramParams, TelegramTarget};
pub use formatting::{FormattedText, MarkupError, ParseMode};
pub use message::{ChatMessage, Entity, MediaInfo};
pub use metrics::AccountMetrics;
pub use peer::Peer;
pub use protocol::*;
pub use tgfleet_persistence::Phone;
