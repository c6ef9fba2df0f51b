//! The account actor against the real grammers client and testdc, over a real SQLite store.

mod harness;
mod hibernation;
mod login;
mod resilience;
mod sending;
