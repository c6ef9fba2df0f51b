//! The `.json` that account sellers and other panels hand over next to a Telethon `.session` of
//! the same name (`79991234567.session` + `79991234567.json`): the app the session was logged in
//! with and the device it was used as. Read here into the fields the import route takes
//! (`api_id`, `api_hash`, `device`), which the API checks as it checks any import.
//!
//! The names vary between tools; the common ones are taken: `app_id`/`api_id`,
//! `app_hash`/`api_hash`, `device`/`device_model`, `sdk`/`system_version`, `app_version`,
//! `lang_pack`/`lang_code`, `system_lang_pack`/`system_lang_code`. `lang_pack` is sometimes the
//! app's language pack name (`tdesktop`, `android`) rather than a language: only a language code
//! is carried. Everything else (`phone`, `first_name`, `register_time`, …) is ignored.

use serde_json::{Map, Value};

/// What a sidecar carries for the import route, and which of its fields the import leaves out.
#[derive(Default)]
pub struct Sidecar {
    pub passed_on: Map<String, Value>,
    /// Fields the JSON had that tgfleet does not carry over (yet): shown in the summary so an
    /// operator knows to set them another way.
    pub left_out: Vec<&'static str>,
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
    let present = |names: &[&str]| {
        names.iter().any(|n| {
            fields
                .get(*n)
                .is_some_and(|v| !v.is_null() && v != "" && v != &Value::Array(vec![]))
        })
    };
    if present(&["twoFA", "twofa", "2fa", "password"]) {
        out.left_out.push("twoFA");
    }
    if present(&["proxy"]) {
        out.left_out.push("proxy");
    }
    Ok(out)
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
        assert_eq!(s.left_out, ["twoFA", "proxy"]);
        assert!(!format!("{s:?}").contains("b18441a1"), "the hash in Debug");
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
        assert!(s.left_out.is_empty());
        assert!(read("{}").unwrap().passed_on.is_empty());
        assert!(read("[1]").is_err());
        assert!(read("{").unwrap_err().starts_with("the .json beside it"));
    }
}
