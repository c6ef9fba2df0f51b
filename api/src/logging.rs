use tgfleet_config::{LogFormat, LogSettings};
use tracing_subscriber::EnvFilter;

/// Human lines for a terminal, one JSON object per line for ELK. `RUST_LOG` overrides the level.
pub fn init(settings: &LogSettings) {
    // vaultrs/rustify log every failed request at ERROR, without context; our own error already
    // says what failed and why, so they are silenced unless RUST_LOG asks for them.
    let quiet = ",rustify=off,vaultrs=off";
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(format!("{}{quiet}", settings.level)))
        .unwrap_or_else(|_| EnvFilter::new(format!("info{quiet}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // try_init: tests and embedders may have installed a subscriber already.
    let _ = match settings.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Human => builder.try_init(),
    };
}
