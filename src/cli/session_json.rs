//! The `.json` that account sellers and other panels hand over next to a Telethon `.session` of
//! the same name (`79991234567.session` + `79991234567.json`): the app the session was logged in
//! with, the device it was used as, its 2FA password and its proxy. Read here into the fields
//! the import route takes (`api_id`, `api_hash`, `device`, `two_fa_password`, `proxy`), which
//! the API checks as it checks any import.
//!
//! The names vary between tools; the common ones are taken: `app_id`/`api_id`,
//! `app_hash`/`api_hash`, `device`/`device_model`, `sdk`/`system_version`, `app_version`,
//! `lang_pack`/`lang_code`, `system_lang_pack`/`system_lang_code`, `twoFA`/`twofa`/`2fa`/
//! `password`, `proxy`. `lang_pack` is sometimes the app's language pack name (`tdesktop`,
//! `android`) rather than a language: only a language code is carried. A proxy comes as
//! Telethon's tuple (`["socks5", host, port, rdns, user, password]`, the type also as PySocks'
//! number 2), an object (`{"proxy_type"|"scheme": "socks5", "addr"|"hostname": …, "port": …,
//! "username": …, "password": …}`) or a URL; only SOCKS5 is carried (grammers dials nothing
//! else), anything else is left out and said so. Everything else (`phone`, `first_name`,
//! `register_time`, …) is ignored.

use serde_json::{Map, Value};

/// What a sidecar carries for the import route, and which of its fields the import leaves out.
#[derive(Default)]
pub struct Sidecar {
    pub passed_on: Map<String, Value>,
    /// Fields the JSON had that could not be carried over, each with why: shown in the summary
    /// so an operator knows to set them another way.
    pub left_out: Vec<String>,
}

// Not derived: `passed_on` holds the api_hash.
impl std::fmt::Debug for Sidecar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sidecar")
            .field("passed_on", &self.passed_on.keys().collect::<Vec<_>>())
            .field("left_out", &self.left_out)
            .finish()
    }
}

/// Reads a sidecar's text; an error is one line for the summary.
pub fn read(text: &str) -> Result<Sidecar, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("the .json beside it: {e}"))?;
    let Value::Object(fields) = v else {
        return Err("the .json beside it is not an object".into());
    };
    let text_of = |names: &[&str]| -> Option<String> {
        names.iter().find_map(|n| match fields.get(*n) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            _ => None,
        })
    };
    let mut out = Sidecar::default();
    let api_id = ["app_id", "api_id"]
        .iter()
        .find_map(|n| match fields.get(*n) {
            Some(Value::Number(n)) => Some(Value::Number(n.clone())),
            // Some tools write it as a string; the API wants a number and says so otherwise.
            Some(Value::String(s)) => Some(
                s.trim()
                    .parse::<i64>()
                    .map(Value::from)
                    .unwrap_or_else(|_| Value::String(s.clone())),
            ),
            _ => None,
        });
    if let Some(api_id) = api_id {
        out.passed_on.insert("api_id".into(), api_id);
    }
    if let Some(hash) = text_of(&["app_hash", "api_hash"]) {
        out.passed_on.insert("api_hash".into(), Value::String(hash));
    }
    let language = |names: &[&str]| {
        text_of(names).filter(|l| tgfleet_persistence::device::check_lang_code(l).is_ok())
    };
    let device: Map<String, Value> = [
        ("device_model", text_of(&["device_model", "device"])),
        ("system_version", text_of(&["system_version", "sdk"])),
        ("app_version", text_of(&["app_version"])),
        ("lang_code", language(&["lang_code", "lang_pack"])),
        (
            "system_lang_code",
            language(&["system_lang_code", "system_lang_pack"]),
        ),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k.to_owned(), Value::String(v?))))
    .collect();
    if !device.is_empty() {
        out.passed_on.insert("device".into(), Value::Object(device));
    }
    if let Some(password) = ["twoFA", "twofa", "2fa", "password"]
        .iter()
        .find_map(|n| match fields.get(*n) {
            // As written: a password's spaces are its own.
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            // Digits-only passwords, written by some tools as a number.
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
    {
        out.passed_on
            .insert("two_fa_password".into(), Value::String(password));
    }
    match fields.get("proxy").map(proxy_url) {
        None | Some(Ok(None)) => {}
        Some(Ok(Some(url))) => {
            out.passed_on.insert("proxy".into(), Value::String(url));
        }
        Some(Err(why)) => out.left_out.push(format!("proxy ({why})")),
    }
    Ok(out)
}

/// The SOCKS5 URL a sidecar's `proxy` names; `None` for none (null, empty); `Err` says why one
/// cannot be carried (another type, a part missing, credentials grammers cannot send).
fn proxy_url(proxy: &Value) -> Result<Option<String>, String> {
    let text = |v: Option<&Value>| match v {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    // (type, host, port, user, password)
    let parts = match proxy {
        Value::Null => return Ok(None),
        Value::String(s) if s.trim().is_empty() => return Ok(None),
        Value::Array(a) if a.is_empty() => return Ok(None),
        Value::Object(o) if o.is_empty() => return Ok(None),
        Value::String(s) if s.contains("://") => {
            let url = s.trim();
            return check(url).map(|()| Some(url.to_owned()));
        }
        // host:port or host:port:user:password, as proxy sellers list them.
        Value::String(s) => {
            let p: Vec<&str> = s.trim().splitn(4, ':').collect();
            let part = |i: usize| p.get(i).map(|s| (*s).to_owned());
            (
                Some("socks5".to_owned()),
                part(0),
                part(1),
                part(2),
                part(3),
            )
        }
        // Telethon: (type, addr, port, rdns, username, password).
        Value::Array(a) => (
            text(a.first()),
            text(a.get(1)),
            text(a.get(2)),
            text(a.get(4)),
            text(a.get(5)),
        ),
        Value::Object(o) => {
            let field = |names: &[&str]| names.iter().find_map(|n| text(o.get(*n)));
            (
                field(&["proxy_type", "type", "scheme", "protocol"]),
                field(&["addr", "host", "hostname", "ip", "server"]),
                field(&["port"]),
                field(&["username", "user", "login"]),
                field(&["password", "pass"]),
            )
        }
        _ => return Err("not a proxy this import reads".into()),
    };
    let (kind, host, port, user, password) = parts;
    // PySocks and python-socks number SOCKS5 2 (SOCKS4 1, HTTP 3).
    match kind.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("socks5" | "2") | None => {}
        Some(other) => {
            return Err(format!(
                "{other} proxy: only SOCKS5 is supported, bind one with PATCH proxy_id"
            ))
        }
    }
    let (Some(host), Some(port)) = (host, port) else {
        return Err("it names no host and port".into());
    };
    let credentials = match (user, password) {
        (None, None) => String::new(),
        (user, password) => format!(
            "{}:{}@",
            user.unwrap_or_default(),
            password.unwrap_or_default()
        ),
    };
    let url = format!("socks5://{credentials}{host}:{port}");
    check(&url).map(|()| Some(url))
}

/// What the API would refuse, said here with the file's name beside it.
fn check(url: &str) -> Result<(), String> {
    url.parse::<tgfleet_persistence::ProxyUrl>()
        .map(drop)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sellers_json_becomes_the_app_and_device_of_the_import() {
        let s = read(
            r#"{"session_file":"79990001122","phone":"79990001122","app_id":2040,
                "app_hash":"b18441a1ff607e10a989891a5462e627","sdk":"Windows 10",
                "app_version":"5.5.5 x64","device":"B550 AORUS ELITE","lang_pack":"tdesktop",
                "system_lang_pack":"en-US","twoFA":"hunter2","proxy":["socks5","1.2.3.4",1080]}"#,
        )
        .unwrap();
        assert_eq!(s.passed_on["api_id"], 2040);
        assert_eq!(s.passed_on["api_hash"], "b18441a1ff607e10a989891a5462e627");
        let device = &s.passed_on["device"];
        assert_eq!(device["device_model"], "B550 AORUS ELITE");
        assert_eq!(device["system_version"], "Windows 10");
        assert_eq!(device["app_version"], "5.5.5 x64");
        assert_eq!(device["system_lang_code"], "en-US");
        assert!(device.get("lang_code").is_none(), "tdesktop is no language");
        assert_eq!(s.passed_on["two_fa_password"], "hunter2");
        assert_eq!(s.passed_on["proxy"], "socks5://1.2.3.4:1080");
        assert!(s.left_out.is_empty(), "{:?}", s.left_out);
        let shown = format!("{s:?}");
        assert!(!shown.contains("b18441a1"), "the hash in Debug");
        assert!(!shown.contains("hunter2"), "the password in Debug");
    }

    #[test]
    fn other_spellings_and_empty_fields() {
        let s = read(
            r#"{"api_id":"12345","api_hash":"00112233445566778899aabbccddeeff",
                "device_model":"iPhone 15","system_version":"17.6.1","lang_code":"de",
                "twoFA":"","proxy":null}"#,
        )
        .unwrap();
        assert_eq!(s.passed_on["api_id"], 12345);
        assert_eq!(s.passed_on["device"]["lang_code"], "de");
        assert!(s.passed_on.get("two_fa_password").is_none());
        assert!(s.passed_on.get("proxy").is_none());
        assert!(s.left_out.is_empty());
        assert!(read("{}").unwrap().passed_on.is_empty());
        assert!(read("[1]").is_err());
        assert!(read("{").unwrap_err().starts_with("the .json beside it"));
    }

    #[test]
    fn proxies_in_the_forms_sellers_write_them() {
        let url = |v: &str| proxy_url(&serde_json::from_str(v).unwrap());
        for (given, want) in [
            (
                r#"["socks5", "10.0.0.1", 1080, true, "bob", "pw"]"#,
                "socks5://bob:pw@10.0.0.1:1080",
            ),
            (r#"[2, "10.0.0.1", 1080]"#, "socks5://10.0.0.1:1080"),
            (
                r#"{"proxy_type": "SOCKS5", "addr": "10.0.0.1", "port": "1080", "username": "bob", "password": "pw"}"#,
                "socks5://bob:pw@10.0.0.1:1080",
            ),
            (
                r#"{"scheme": "socks5", "hostname": "proxy.example", "port": 9050}"#,
                "socks5://proxy.example:9050",
            ),
            (r#""10.0.0.1:1080:bob:pw""#, "socks5://bob:pw@10.0.0.1:1080"),
            (
                r#""socks5://bob:pw@10.0.0.1:1080""#,
                "socks5://bob:pw@10.0.0.1:1080",
            ),
        ] {
            assert_eq!(url(given), Ok(Some(want.to_owned())), "{given}");
        }
        for none in ["null", r#""""#, "[]", "{}"] {
            assert_eq!(url(none), Ok(None), "{none}");
        }
        for (given, why) in [
            (r#"["http", "10.0.0.1", 8080]"#, "only SOCKS5"),
            (r#"[3, "10.0.0.1", 8080]"#, "only SOCKS5"),
            (r#""http://10.0.0.1:8080""#, "scheme must be socks5"),
            (r#"{"addr": "10.0.0.1"}"#, "no host and port"),
            (
                r#"["socks5", "10.0.0.1", 1080, true, "bob", "p@ss"]"#,
                "characters a URL escapes",
            ),
            ("true", "not a proxy"),
        ] {
            let err = url(given).unwrap_err();
            assert!(err.contains(why), "{given}: {err}");
        }
        let s = read(r#"{"proxy": ["http", "10.0.0.1", 8080], "twoFA": 123456}"#).unwrap();
        assert_eq!(s.passed_on["two_fa_password"], "123456");
        assert_eq!(s.left_out.len(), 1);
        assert!(
            s.left_out[0].starts_with("proxy (http proxy"),
            "{:?}",
            s.left_out
        );
        assert!(s.passed_on.get("proxy").is_none());
    }
}
