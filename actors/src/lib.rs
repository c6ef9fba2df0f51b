//! One ractor actor per Telegram account: it owns the live grammers client, the encrypted session
//! state (pending login included), flood-wait state, outbound pacing and per-account metrics.
//!
//! Start an account with `ractor::Actor::spawn(name, AccountActor, AccountArgs { .. })` (or
//! `spawn_linked` under a supervisor) and talk to it with [`AccountMsg::Request`]. See
//! [`actor`] for the contract between the actor and its supervisor: how it ends tells the
//! supervisor whether to restart it.

pub mod actor;
mod classify;
mod client;
pub mod env;
pub mod flood;
pub mod import;
pub mod metrics;
mod ops;
pub mod peer;
pub mod phone;
pub mod protocol;
pub mod session;

pub use actor::{AccountActor, AccountMsg, StopReason};
pub use env::{AccountArgs, AccountEnv, AccountLimits, TelegramParams, TelegramTarget};
pub use metrics::AccountMetrics;
pub use ops::{srp_peak_in_flight, srp_slot_count};
pub use peer::Peer;
pub use protocol::*;
