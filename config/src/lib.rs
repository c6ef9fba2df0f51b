//! Typed settings: embedded defaults, then an optional TOML file, then `TGFLEET__SECTION__KEY`
//! environment variables. Secrets are wrapped in [`Secret`] so `Debug` never shows them.

mod secret;
mod settings;

pub use secret::Secret;
pub use settings::*;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use std::path::Path;

/// A setting that stops start-up: which key, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration: `{key}`: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The environment prefix; a double underscore separates sections so keys may hold single ones.
pub const ENV_PREFIX: &str = "TGFLEET__";

/// Loads settings from the defaults, `file` (when given; it must exist) and the process environment.
pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
    load_from(file, Env::prefixed(ENV_PREFIX).split("__"))
}

fn load_from(file: Option<&Path>, env: Env) -> Result<Settings, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(Settings::default()));
    if let Some(path) = file {
        if !path.is_file() {
            return Err(ConfigError::new(
                "--config",
                format!("no such file: {}", path.display()),
            ));
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    let settings: Settings = figment.merge(env).extract().map_err(from_figment)?;
    settings.validate()?;
    Ok(settings)
}

fn from_figment(err: figment::Error) -> ConfigError {
    // figment chains one error per bad key; the first is enough for a one-line message.
    let key = if err.path.is_empty() {
        "(file)".to_string()
    } else {
        err.path.join(".")
    };
    if key == "sandbox" {
        // The key existed once; whoever sets it is told where the switch went.
        return ConfigError::new(
            "sandbox",
            "is not a setting: the sandbox replaces real Telegram with a fake one, so only \
             `tgfleet serve --sandbox` turns it on",
        );
    }
    let mut message = err.kind.to_string();
    if let Some(meta) = &err.metadata {
        if let Some(source) = &meta.source {
            message = format!("{message} (from {source})");
        } else {
            message = format!("{message} (from {})", meta.name);
        }
    }
    ConfigError { key, message }
}

#[cfg(test)]
// figment's Jail closures must return its (large) error type; that is its API, not our choice.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    fn load_in_jail(file: Option<&str>) -> Result<Settings, ConfigError> {
        load(file.map(Path::new))
    }

    #[test]
    fn defaults_need_no_file() {
        Jail::expect_with(|_| {
            let s = load_in_jail(None).expect("defaults load");
            assert_eq!(s.api.listen.to_string(), "127.0.0.1:8080");
            assert_eq!(s.metrics.listen.to_string(), "127.0.0.1:9464");
            assert_eq!(s.database_url().expose(), "sqlite://./data/tgfleet.db");
            assert_eq!(s.secrets.backend, SecretsBackend::Local);
            assert_eq!(s.auth.registration, Registration::Open);
            assert!(!s.debug);
            Ok(())
        });
    }

    #[test]
    fn file_then_env_override_in_that_order() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "tgfleet.toml",
                r#"
                data_dir = "/var/lib/tgfleet"
                [api]
                listen = "0.0.0.0:9000"
                [log]
                format = "json"
                "#,
            )?;
            jail.set_env("TGFLEET__API__LISTEN", "127.0.0.1:7000");
            jail.set_env("TGFLEET__TELEGRAM__API_ID", "12345");
            let s = load_in_jail(Some("tgfleet.toml")).expect("loads");
            assert_eq!(s.api.listen.to_string(), "127.0.0.1:7000");
            assert_eq!(s.log.format, LogFormat::Json);
            assert_eq!(s.telegram.api_id, Some(12345));
            assert_eq!(
                s.database_url().expose(),
                "sqlite:///var/lib/tgfleet/tgfleet.db"
            );
            Ok(())
        });
    }

    #[test]
    fn a_bad_value_names_its_key() {
        Jail::expect_with(|jail| {
            jail.set_env("TGFLEET__API__LISTEN", "not-an-address");
            let err = load_in_jail(None).unwrap_err();
            assert_eq!(err.key, "api.listen");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("TGFLEET__SECRETS__BACKEND", "s3");
            let err = load_in_jail(None).unwrap_err();
            assert_eq!(err.key, "secrets.backend");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_refused() {
        Jail::expect_with(|jail| {
            jail.create_file("t.toml", "[api]\nlisten_on = \"127.0.0.1:1\"\n")?;
            let err = load_in_jail(Some("t.toml")).unwrap_err();
            assert_eq!(err.key, "api.listen_on");
            assert!(err.message.contains("listen_on"), "{}", err.message);
            Ok(())
        });
    }

    #[test]
    fn a_missing_file_is_an_error() {
        Jail::expect_with(|_| {
            let err = load_in_jail(Some("nope.toml")).unwrap_err();
            assert_eq!(err.key, "--config");
            Ok(())
        });
    }

    #[test]
    fn vault_backend_needs_its_address_and_token() {
        Jail::expect_with(|jail| {
            jail.set_env("TGFLEET__SECRETS__BACKEND", "vault");
            let err = load_in_jail(None).unwrap_err();
            assert_eq!(err.key, "vault.addr");
            jail.set_env("TGFLEET__VAULT__ADDR", "http://127.0.0.1:8200");
            let err = load_in_jail(None).unwrap_err();
            assert_eq!(err.key, "vault.token");
            jail.set_env("TGFLEET__VAULT__TOKEN", "s.secret");
            load_in_jail(None).expect("complete vault settings load");
            Ok(())
        });
    }

    #[test]
    fn vault_takes_an_approle_login_instead_of_a_token() {
        Jail::expect_with(|jail| {
            jail.set_env("TGFLEET__SECRETS__BACKEND", "vault");
            jail.set_env("TGFLEET__VAULT__ADDR", "http://127.0.0.1:8200");
            jail.set_env("TGFLEET__VAULT__ROLE_ID", "role-1");
            let err = load_in_jail(None).unwrap_err();
            assert_eq!(err.key, "vault.secret_id", "a RoleID alone is no login");
            jail.set_env("TGFLEET__VAULT__SECRET_ID_FILE", "/run/secrets/secret-id");
            let s = load_in_jail(None).expect("RoleID and SecretID file load");
            assert_eq!(s.vault.approle_mount, "approle");
            jail.set_env("TGFLEET__VAULT__SECRET_ID", "s-1");
            let err = load_in_jail(None).unwrap_err();
            assert_eq!(err.key, "vault.secret_id", "one SecretID source, not two");
            jail.set_env("TGFLEET__VAULT__TOKEN", "s.secret");
            let err = load_in_jail(None).unwrap_err();
            assert_eq!(err.key, "vault.role_id", "a token or an AppRole, not both");
            Ok(())
        });
    }

    #[test]
    fn secrets_never_show_in_debug() {
        Jail::expect_with(|jail| {
            jail.set_env(
                "TGFLEET__TELEGRAM__API_HASH",
                "0123456789abcdef0123456789abcdef",
            );
            jail.set_env("TGFLEET__VAULT__TOKEN", "hvs.TOPSECRET");
            jail.set_env(
                "TGFLEET__AUTH__JWT_SECRET",
                "jwt-TOPSECRET-value-that-is-long-enough",
            );
            jail.set_env(
                "TGFLEET__DATABASE__URL",
                "postgres://app:PGPASSWORD@db.internal:5432/tgfleet",
            );
            let s = load_in_jail(None).expect("loads");
            let shown = format!("{s:?}");
            for secret in [
                "0123456789abcdef0123456789abcdef",
                "TOPSECRET",
                "PGPASSWORD",
            ] {
                assert!(!shown.contains(secret), "{secret} leaked: {shown}");
            }
            assert!(
                shown.contains("db.internal"),
                "non-secret parts stay visible"
            );
            Ok(())
        });
    }

    #[test]
    fn database_passwords_are_redacted_wherever_they_sit() {
        let url = |s: &str| -> crate::secret::DatabaseUrl {
            serde_json::from_value(serde_json::json!(s)).unwrap()
        };
        for (raw, secret) in [
            ("postgres://app:hunter2@db:5432/tg", "hunter2"),
            ("postgres://app:p%40ss@db/tg", "p%40ss"),
            (
                "postgres://app@db/tg?sslmode=require&password=hunter2",
                "hunter2",
            ),
        ] {
            let shown = url(raw).redacted();
            assert!(!shown.contains(secret), "{shown}");
            assert!(shown.contains("db"), "{shown}");
        }
        assert_eq!(
            url("sqlite://./data/tgfleet.db").redacted(),
            "sqlite://./data/tgfleet.db"
        );
    }

    #[test]
    fn malformed_api_hash_is_refused() {
        Jail::expect_with(|jail| {
            jail.set_env("TGFLEET__TELEGRAM__API_ID", "1");
            jail.set_env("TGFLEET__TELEGRAM__API_HASH", "short");
            let err = load_in_jail(None).unwrap_err();
            assert_eq!(err.key, "telegram.api_hash");
            Ok(())
        });
    }

    #[test]
    fn sandbox_is_not_a_config_key() {
        Jail::expect_with(|jail| {
            jail.set_env("TGFLEET__SANDBOX", "true");
            let err = load_in_jail(None).expect_err("TGFLEET__SANDBOX must not turn it on");
            assert_eq!(err.key, "sandbox");
            assert!(err.message.contains("serve --sandbox"), "{}", err.message);
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.create_file("t.toml", "sandbox = true\n")?;
            let err = load_in_jail(Some("t.toml")).expect_err("a file must not turn it on");
            assert_eq!(err.key, "sandbox");
            Ok(())
        });
    }

    #[test]
    fn the_sandbox_flag_beside_another_telegram_is_refused() {
        Jail::expect_with(|jail| {
            jail.set_env("TGFLEET__TELEGRAM__API_ID", "12345");
            jail.set_env(
                "TGFLEET__TELEGRAM__API_HASH",
                "0123456789abcdef0123456789abcdef",
            );
            let mut s = load_in_jail(None).expect("real credentials alone load");
            s.sandbox = true; // what `serve --sandbox` does
            let err = s.validate().expect_err("--sandbox beside api_id/api_hash");
            assert_eq!(err.key, "--sandbox");
            assert!(err.message.contains("api_id"), "{}", err.message);
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("TGFLEET__TELEGRAM__TESTDC_CONTROL", "http://127.0.0.1:9900");
            let mut s = load_in_jail(None).expect("a loopback testdc alone loads");
            s.sandbox = true;
            let err = s.validate().expect_err("--sandbox beside testdc_control");
            assert_eq!(err.key, "--sandbox");
            Ok(())
        });
    }

    #[test]
    fn testdc_control_only_on_loopback_and_never_beside_real_credentials() {
        for bad in [
            "http://10.0.0.5:9900",
            "http://0.0.0.0:9900",
            "http://testdc.internal:9900",
            "http://127.0.0.1.example.org:9900",
            "http://[2001:db8::1]:9900",
            "https://127.0.0.1:9900",
            "http://127.0.0.1",
        ] {
            Jail::expect_with(|jail| {
                jail.set_env("TGFLEET__TELEGRAM__TESTDC_CONTROL", bad);
                let err = load_in_jail(None).expect_err(bad);
                assert_eq!(err.key, "telegram.testdc_control", "{bad}");
                Ok(())
            });
        }
        for good in [
            "http://127.0.0.1:9900",
            "http://127.0.0.1:9900/",
            "http://[::1]:9900",
            "http://localhost:9900",
        ] {
            Jail::expect_with(|jail| {
                jail.set_env("TGFLEET__TELEGRAM__TESTDC_CONTROL", good);
                load_in_jail(None).unwrap_or_else(|e| panic!("{good}: {e}"));
                Ok(())
            });
        }
        Jail::expect_with(|jail| {
            jail.set_env("TGFLEET__TELEGRAM__TESTDC_CONTROL", "http://127.0.0.1:9900");
            jail.set_env("TGFLEET__TELEGRAM__API_ID", "12345");
            let err = load_in_jail(None).expect_err("testdc_control beside api_id");
            assert_eq!(err.key, "telegram.testdc_control");
            assert!(err.message.contains("api_id"), "{}", err.message);
            Ok(())
        });
    }
}
