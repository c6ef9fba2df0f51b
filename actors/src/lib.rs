//! One ractor actor per Telegram account: it owns the live grammers client, the encrypted session
//! state (pending login included), flood-wait state, outbound pacing and per-account metrics.

pub mod protocol;

pub use protocol::*;
