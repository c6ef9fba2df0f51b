//! The HTTP face of tgfleet: the REST API on one listener, Prometheus metrics on another.
//! `launch` is what `tgfleet serve` and the integration tests both call.

pub mod accounts;
pub mod audit;
pub mod auth;
pub mod console;
pub mod error;
pub mod events;
pub mod extract;
pub mod formatting;
pub mod health;
pub mod logging;
pub mod logs;
pub mod media;
pub mod metrics;
pub mod openapi;
pub mod posts;
pub mod proxies;
pub mod ratelimit;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod secret_file;
pub mod server;
pub mod startup;
pub mod state;
pub mod testdc_remote;
pub mod users;
pub mod webhooks;

pub use error::ApiError;
pub use server::{launch, Listeners};
pub use startup::{build_state, StartupError};
pub use state::AppState;
