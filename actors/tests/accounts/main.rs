//! The account actor against the real grammers client and testdc, over a real SQLite store;
//! `paused` runs its timers on a paused clock over an in-memory store.

mod harness;
mod hibernation;
mod login;
mod paused;
mod resilience;
mod sending;
