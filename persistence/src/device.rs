//! The identity an account's connections show Telegram: the device, system and app fields and the
//! two language codes of `initConnection`. Checked once where it enters (REST, import), like a
//! [`crate::Phone`], and kept on the account's row, so every connection of the account — first,
//! reconnect, restarted actor, restarted process — says the same thing.
//!
//! A new account draws its identity from [`PROFILES`], a few real devices with system and app
//! versions they actually run: a fleet whose accounts all said "Linux 64-bit, tgfleet 0.1" would
//! be one fingerprint to Telegram, and one that made up free combinations would show an iPhone on
//! Android 14.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeviceIdentity {
    pub device_model: String,
    pub system_version: String,
    pub app_version: String,
    /// The language of the device's system, e.g. `en-US`.
    pub system_lang_code: String,
    /// The language of the app, e.g. `en`.
    pub lang_code: String,
}

/// Longest device model, system or app version taken, in characters. Real ones are under 30
/// ("Samsung SM-S918B", "Windows 11", "5.8.3 x64"); Telegram shows them in its session list, so
/// a bound keeps one account's row and every initConnection small.
pub const MAX_TEXT_CHARS: usize = 64;
/// Longest language code taken: BCP 47 tags people use are far shorter (`zh-Hans-CN` is 10).
pub const MAX_LANG_CODE_CHARS: usize = 35;

/// What a new account speaks until its owner says otherwise: the languages carry no fingerprint
/// worth varying at random (an account's language follows its owner, not chance).
pub const DEFAULT_SYSTEM_LANG_CODE: &str = "en-US";
pub const DEFAULT_LANG_CODE: &str = "en";

/// One platform: its devices (each with the system versions it really runs) and the versions of
/// the official Telegram app for it. Any model, any of its systems and any app version of one
/// profile make a combination that exists.
pub struct Profile {
    pub platform: &'static str,
    /// How often the platform is drawn, relative to the others.
    pub weight: u64,
    pub devices: &'static [(&'static str, &'static [&'static str])],
    pub app_versions: &'static [&'static str],
}

/// The table new accounts draw from. Android as the Telegram Android app reports it
/// (`Manufacturer Model`, `SDK n`), iOS as Telegram iOS does, desktops as Telegram Desktop does
/// (the machine's model, the OS name).
pub const PROFILES: &[Profile] = &[
    Profile {
        platform: "android",
        weight: 4,
        devices: &[
            ("Samsung SM-S918B", &["SDK 33", "SDK 34"]),
            ("Samsung SM-S921B", &["SDK 34"]),
            ("Samsung SM-A546B", &["SDK 33", "SDK 34"]),
            ("Samsung SM-G991B", &["SDK 33", "SDK 34"]),
            ("Google Pixel 7", &["SDK 33", "SDK 34"]),
            ("Google Pixel 8 Pro", &["SDK 34"]),
            ("Xiaomi 2211133G", &["SDK 33", "SDK 34"]),
            ("Xiaomi 23021RAA2Y", &["SDK 33"]),
            ("OnePlus CPH2449", &["SDK 33", "SDK 34"]),
        ],
        app_versions: &["10.9.1", "10.12.0", "10.14.5", "11.1.3"],
    },
    Profile {
        platform: "ios",
        weight: 3,
        // Every one of these runs iOS 17 and 18.
        devices: &[
            ("iPhone 12", &["17.5.1", "17.6.1", "18.1.1"]),
            ("iPhone 13", &["17.5.1", "17.6.1", "18.1.1"]),
            ("iPhone 13 Pro", &["17.5.1", "17.6.1", "18.1.1"]),
            ("iPhone 14", &["17.5.1", "17.6.1", "18.1.1"]),
            ("iPhone 14 Pro Max", &["17.5.1", "17.6.1", "18.1.1"]),
            ("iPhone 15", &["17.5.1", "17.6.1", "18.1.1"]),
            ("iPhone 15 Pro", &["17.5.1", "17.6.1", "18.1.1"]),
        ],
        app_versions: &["10.14", "11.0", "11.2"],
    },
    Profile {
        platform: "windows",
        weight: 2,
        devices: &[
            ("MS-7C56", &["Windows 10", "Windows 11"]),
            ("B550 AORUS ELITE", &["Windows 10", "Windows 11"]),
            ("Latitude 5420", &["Windows 10", "Windows 11"]),
            ("ThinkPad T14 Gen 2", &["Windows 10", "Windows 11"]),
            ("HP EliteBook 840 G8", &["Windows 10", "Windows 11"]),
        ],
        app_versions: &["5.2.3 x64", "5.5.5 x64", "5.8.3 x64"],
    },
    Profile {
        platform: "macos",
        weight: 1,
        devices: &[
            (
                "MacBookAir10,1",
                &["macOS 14.5", "macOS 14.6", "macOS 15.1"],
            ),
            (
                "MacBookPro18,3",
                &["macOS 14.5", "macOS 14.6", "macOS 15.1"],
            ),
            ("Mac14,2", &["macOS 14.5", "macOS 14.6", "macOS 15.1"]),
        ],
        app_versions: &["5.2.3", "5.5.5", "5.8.3"],
    },
];

impl DeviceIdentity {
    /// A fresh identity for a new account, drawn from [`PROFILES`].
    pub fn generate() -> Self {
        Self::pick(rand::random())
    }

    /// The identity `seed` picks: the same seed always gives the same one, so an identity can be
    /// re-derived from a number (a row whose columns were never filled, see the store).
    pub fn pick(seed: u64) -> Self {
        // Mixed first (splitmix64's finaliser) so neighbouring seeds — consecutive account ids —
        // land far apart in the table instead of in runs of one device.
        let mut rest = {
            let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let mut take = |n: usize| {
            // `n` is a table length, never 0 (a test checks), and far below u64::MAX.
            let n = n.max(1) as u64;
            let i = rest % n;
            rest /= n;
            i as usize
        };
        let total: u64 = PROFILES.iter().map(|p| p.weight).sum();
        let mut ticket = take(total as usize) as u64;
        let profile = PROFILES
            .iter()
            .find(|p| {
                let hit = ticket < p.weight;
                ticket = ticket.saturating_sub(p.weight);
                hit
            })
            .unwrap_or(&PROFILES[0]);
        let (model, systems) = profile.devices[take(profile.devices.len())];
        let system = systems[take(systems.len())];
        let app = profile.app_versions[take(profile.app_versions.len())];
        Self {
            device_model: model.to_owned(),
            system_version: system.to_owned(),
            app_version: app.to_owned(),
            system_lang_code: DEFAULT_SYSTEM_LANG_CODE.to_owned(),
            lang_code: DEFAULT_LANG_CODE.to_owned(),
        }
    }
}

/// A device model, system or app version as sent: trimmed, 1 to [`MAX_TEXT_CHARS`] characters,
/// no control or invisible format characters (Telegram shows it in the account's session list,
/// where a bidi override or a zero-width space would disguise it).
pub fn check_text(raw: &str) -> Result<String, String> {
    let value = raw.trim();
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.chars().count() > MAX_TEXT_CHARS {
        return Err(format!("must be at most {MAX_TEXT_CHARS} characters"));
    }
    if value
        .chars()
        .any(|c| c.is_control() || is_invisible_format(c))
    {
        return Err("must not contain control or invisible formatting characters".into());
    }
    Ok(value.to_owned())
}

/// Unicode's format characters (category Cf) that people paste by accident or on purpose:
/// bidi embeddings, overrides and isolates, zero-width spaces and joiners, the BOM, soft hyphen.
fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

/// A language code as Telegram takes it: a BCP 47 tag such as `en`, `en-US`, `pt-br` or
/// `zh-Hans-CN` — 2 or 3 letters, then optional `-` parts of 1 to 8 letters or digits.
pub fn check_lang_code(raw: &str) -> Result<String, String> {
    let value = raw.trim();
    let bad = || {
        Err(format!(
            "must be a language code such as en or en-US (at most {MAX_LANG_CODE_CHARS} characters)"
        ))
    };
    if value.is_empty() || value.len() > MAX_LANG_CODE_CHARS {
        return bad();
    }
    let mut parts = value.split('-');
    let primary = parts.next().unwrap_or_default();
    if !(2..=3).contains(&primary.len()) || !primary.bytes().all(|b| b.is_ascii_alphabetic()) {
        return bad();
    }
    if !parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric())) {
        return bad();
    }
    Ok(value.to_owned())
}

/// A change of some fields of an identity, as `PATCH …/accounts/{id}` takes it (`device: {…}`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DevicePatch {
    pub device_model: Option<String>,
    pub system_version: Option<String>,
    pub app_version: Option<String>,
    pub system_lang_code: Option<String>,
    pub lang_code: Option<String>,
}

/// A field of a [`DevicePatch`] that was refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFieldError {
    pub field: &'static str,
    pub message: String,
}

/// Every field: the patch that makes any identity this one.
impl From<DeviceIdentity> for DevicePatch {
    fn from(d: DeviceIdentity) -> Self {
        Self {
            device_model: Some(d.device_model),
            system_version: Some(d.system_version),
            app_version: Some(d.app_version),
            system_lang_code: Some(d.system_lang_code),
            lang_code: Some(d.lang_code),
        }
    }
}

impl DevicePatch {
    /// The patch with every given field checked (and trimmed), or every field that is wrong.
    pub fn checked(self) -> Result<Self, Vec<DeviceFieldError>> {
        let mut errors = Vec::new();
        let mut check = |field: &'static str,
                         value: Option<String>,
                         rule: fn(&str) -> Result<String, String>| {
            value.and_then(|v| match rule(&v) {
                Ok(v) => Some(v),
                Err(message) => {
                    errors.push(DeviceFieldError { field, message });
                    None
                }
            })
        };
        let checked = Self {
            device_model: check("device_model", self.device_model, check_text),
            system_version: check("system_version", self.system_version, check_text),
            app_version: check("app_version", self.app_version, check_text),
            system_lang_code: check("system_lang_code", self.system_lang_code, check_lang_code),
            lang_code: check("lang_code", self.lang_code, check_lang_code),
        };
        if errors.is_empty() {
            Ok(checked)
        } else {
            Err(errors)
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// A whole identity for an account that arrives with this patch (an import): the device
    /// texts it gives, and those it leaves out drawn from a combination of [`PROFILES`] that
    /// agrees with the given ones, so a given "Windows 11" is never completed with an Android app
    /// version. Texts outside the table must come all three together (the caller knows them as a
    /// set, and tgfleet cannot tell which platform they belong to).
    pub fn completed(&self) -> Result<DeviceIdentity, String> {
        let fits =
            |given: &Option<String>, value: &str| given.as_deref().is_none_or(|g| g == value);
        let mut combos = Vec::new();
        for profile in PROFILES {
            for (model, systems) in profile.devices {
                for system in *systems {
                    for app in profile.app_versions {
                        if fits(&self.device_model, model)
                            && fits(&self.system_version, system)
                            && fits(&self.app_version, app)
                        {
                            combos.push((*model, *system, *app));
                        }
                    }
                }
            }
        }
        let base = if combos.is_empty() {
            match (&self.device_model, &self.system_version, &self.app_version) {
                (Some(m), Some(s), Some(a)) => DeviceIdentity {
                    device_model: m.clone(),
                    system_version: s.clone(),
                    app_version: a.clone(),
                    system_lang_code: DEFAULT_SYSTEM_LANG_CODE.to_owned(),
                    lang_code: DEFAULT_LANG_CODE.to_owned(),
                },
                (None, None, None) => DeviceIdentity::generate(),
                _ => {
                    return Err(
                        "device_model, system_version and app_version that are not a \
                                device tgfleet knows must come all three together"
                            .into(),
                    )
                }
            }
        } else {
            let (model, system, app) =
                combos[rand::Rng::gen_range(&mut rand::thread_rng(), 0..combos.len())];
            DeviceIdentity {
                device_model: model.to_owned(),
                system_version: system.to_owned(),
                app_version: app.to_owned(),
                system_lang_code: DEFAULT_SYSTEM_LANG_CODE.to_owned(),
                lang_code: DEFAULT_LANG_CODE.to_owned(),
            }
        };
        Ok(self.applied_to(&base))
    }

    /// `base` with this patch's fields in place of its own.
    pub fn applied_to(&self, base: &DeviceIdentity) -> DeviceIdentity {
        let or = |new: &Option<String>, old: &String| new.clone().unwrap_or_else(|| old.clone());
        DeviceIdentity {
            device_model: or(&self.device_model, &base.device_model),
            system_version: or(&self.system_version, &base.system_version),
            app_version: or(&self.app_version, &base.app_version),
            system_lang_code: or(&self.system_lang_code, &base.system_lang_code),
            lang_code: or(&self.lang_code, &base.lang_code),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_profile_entry_is_valid_and_reachable() {
        let mut seen = HashSet::new();
        for seed in 0..20_000u64 {
            seen.insert(DeviceIdentity::pick(
                seed.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            ));
        }
        let mut combos = 0;
        for p in PROFILES {
            assert!(p.weight > 0 && !p.devices.is_empty() && !p.app_versions.is_empty());
            for (model, systems) in p.devices {
                assert!(!systems.is_empty(), "{model}");
                for system in *systems {
                    for app in p.app_versions {
                        combos += 1;
                        let d = DeviceIdentity {
                            device_model: (*model).into(),
                            system_version: (*system).into(),
                            app_version: (*app).into(),
                            system_lang_code: DEFAULT_SYSTEM_LANG_CODE.into(),
                            lang_code: DEFAULT_LANG_CODE.into(),
                        };
                        assert_eq!(check_text(model).as_deref(), Ok(*model));
                        assert_eq!(check_text(system).as_deref(), Ok(*system));
                        assert_eq!(check_text(app).as_deref(), Ok(*app));
                        assert!(seen.contains(&d), "never drawn: {d:?}");
                    }
                }
            }
        }
        assert_eq!(seen.len(), combos, "drew a combination outside the table");
        assert!(check_lang_code(DEFAULT_LANG_CODE).is_ok());
        assert!(check_lang_code(DEFAULT_SYSTEM_LANG_CODE).is_ok());
    }

    #[test]
    fn a_seed_always_picks_the_same_identity_and_a_fleet_gets_many() {
        assert_eq!(DeviceIdentity::pick(42), DeviceIdentity::pick(42));
        let models: HashSet<_> = (0..50)
            .map(|_| DeviceIdentity::generate().device_model)
            .collect();
        assert!(models.len() > 5, "{models:?}");
    }

    #[test]
    fn lang_codes_are_bcp47_like() {
        for ok in ["en", "en-US", "pt-br", "zh-Hans-CN", "es-419", " de "] {
            assert!(check_lang_code(ok).is_ok(), "{ok}");
        }
        assert_eq!(check_lang_code(" de ").unwrap(), "de");
        for bad in [
            "",
            "e",
            "english",
            "en_US",
            "en-",
            "-en",
            "en--US",
            "en-USAUSAUSA",
            "1n",
            "en US",
            "ру",
            "en\u{0}",
        ] {
            assert!(check_lang_code(bad).is_err(), "{bad:?}");
        }
        assert!(check_lang_code(&format!("en-{}", "a-".repeat(20))).is_err());
    }

    #[test]
    fn texts_are_bounded_and_printable() {
        assert_eq!(check_text("  Pixel 8  ").unwrap(), "Pixel 8");
        assert!(check_text("   ").is_err());
        assert!(check_text("a\u{0}b").is_err());
        assert!(check_text("Pixel\u{202E}8").is_err(), "a bidi override");
        assert!(check_text("Pixel\u{200B}8").is_err(), "a zero-width space");
        assert!(check_text(&"é".repeat(MAX_TEXT_CHARS)).is_ok());
        assert!(check_text(&"é".repeat(MAX_TEXT_CHARS + 1)).is_err());
    }

    #[test]
    fn a_patch_reports_every_bad_field_and_changes_only_what_it_names() {
        let errors = DevicePatch {
            device_model: Some(String::new()),
            lang_code: Some("english".into()),
            app_version: Some("1.0".into()),
            ..Default::default()
        }
        .checked()
        .unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["device_model", "lang_code"]);

        let base = DeviceIdentity::pick(7);
        let patch = DevicePatch {
            lang_code: Some(" de ".into()),
            ..Default::default()
        }
        .checked()
        .unwrap();
        let after = patch.applied_to(&base);
        assert_eq!(after.lang_code, "de");
        assert_eq!(
            DeviceIdentity {
                lang_code: base.lang_code.clone(),
                ..after
            },
            base
        );
        assert!(DevicePatch::default().is_empty());
    }

    #[test]
    fn neighbouring_seeds_pick_different_devices() {
        let models: HashSet<_> = (0..8u64)
            .map(|id| DeviceIdentity::pick(id).device_model)
            .collect();
        assert!(models.len() >= 5, "{models:?}");
    }

    #[test]
    fn an_import_is_completed_from_its_own_platform() {
        let windows = DevicePatch {
            system_version: Some("Windows 11".into()),
            ..Default::default()
        };
        for _ in 0..50 {
            let d = windows.completed().unwrap();
            let profile = PROFILES.iter().find(|p| p.platform == "windows").unwrap();
            assert!(
                profile.app_versions.contains(&d.app_version.as_str()),
                "{d:?}"
            );
            assert!(
                profile.devices.iter().any(|(m, _)| *m == d.device_model),
                "{d:?}"
            );
        }
        let iphone = DevicePatch {
            device_model: Some("iPhone 15".into()),
            lang_code: Some("de".into()),
            ..Default::default()
        }
        .completed()
        .unwrap();
        assert!(["17.5.1", "17.6.1", "18.1.1"].contains(&iphone.system_version.as_str()));
        assert!(["10.14", "11.0", "11.2"].contains(&iphone.app_version.as_str()));
        assert_eq!(iphone.lang_code, "de");

        let custom = DevicePatch {
            device_model: Some("Nokia 3310".into()),
            system_version: Some("Series 30".into()),
            app_version: Some("1.0".into()),
            ..Default::default()
        };
        assert_eq!(custom.completed().unwrap().device_model, "Nokia 3310");
        let half = DevicePatch {
            device_model: Some("Nokia 3310".into()),
            ..Default::default()
        };
        assert!(half.completed().is_err());
        let mixed = DevicePatch {
            device_model: Some("iPhone 15".into()),
            system_version: Some("SDK 34".into()),
            ..Default::default()
        };
        assert!(mixed.completed().is_err(), "an iPhone on Android");
        assert!(DevicePatch::default().completed().is_ok());
    }
}
