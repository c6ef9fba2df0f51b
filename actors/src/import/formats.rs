//! Session string formats of other Telegram clients, and tgfleet's own. Pure functions: no I/O,
//! no panics on any input (a proptest below feeds them random, truncated and mutated strings).
//!
//! * **Telethon** `StringSession`: `'1'` + URL-safe base64 (padded) of
//!   `>B4sH256s` (dc id, IPv4, port, auth key) or `>B16sH256s` (IPv6).
//! * **Pyrogram** session string: URL-safe base64 (unpadded) of `>BI?256sQ?` (dc id, api id,
//!   test mode, auth key, user id, is bot) since Pyrogram 2.0; the older `>B?256sQ?` (64-bit user
//!   ids) and `>B?256sI?` layouts are told apart by length and read too.
//! * **tgfleet** (what `GET …/export?format=tgfleet` returns): `tgf1.` + URL-safe base64
//!   (unpadded) of a JSON object `{"dc_id":2,"addr":"149.154.167.51:443","auth_key":"<standard
//!   base64 of 256 bytes>","user_id":123,"bot":false}`; `addr`, `user_id` and `bot` may be
//!   absent, unknown fields are refused. The `1` in the prefix is the format version: a later
//!   version gets a new prefix, and this parser keeps reading `tgf1.`.

use super::ForeignSession;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The longest session string accepted (all formats are under 500 characters); a bound so a
/// pasted file cannot make a parser allocate without limit.
pub const MAX_SESSION_CHARS: usize = 4096;

const TGFLEET_PREFIX: &str = "tgf1.";

/// URL-safe base64 that takes strings with or without `=` padding: Telethon pads, Pyrogram does
/// not, and people trim either.
const URL_SAFE_ANY: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const URL_SAFE_NOPAD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_encode_padding(false),
);
const URL_SAFE_PAD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_encode_padding(true),
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionFormat {
    Telethon,
    Pyrogram,
    Tgfleet,
}

impl SessionFormat {
    pub const ALL: [SessionFormat; 3] = [Self::Telethon, Self::Pyrogram, Self::Tgfleet];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Telethon => "telethon",
            Self::Pyrogram => "pyrogram",
            Self::Tgfleet => "tgfleet",
        }
    }
}

/// The one place a format's name is read (the REST body, `--format`, a CSV or JSONL column).
impl std::str::FromStr for SessionFormat {
    type Err = ();

    fn from_str(name: &str) -> Result<Self, ()> {
        Self::ALL.into_iter().find(|f| f.as_str() == name).ok_or(())
    }
}

/// Why a session string was refused: a stable code and a message that names the problem, never
/// the string itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    pub code: &'static str,
    pub message: String,
}

fn invalid(message: impl Into<String>) -> ParseError {
    ParseError {
        code: "INVALID_SESSION",
        message: message.into(),
    }
}

/// A parsed session plus what only some formats say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub session: ForeignSession,
    /// Pyrogram's flag for Telegram's test servers.
    pub test_mode: bool,
}

impl From<ForeignSession> for Parsed {
    fn from(session: ForeignSession) -> Self {
        Self {
            session,
            test_mode: false,
        }
    }
}

pub fn parse(format: SessionFormat, input: &str) -> Result<Parsed, ParseError> {
    let input = input.trim();
    if input.is_empty() {
        return Err(invalid("the session string is empty"));
    }
    if input.len() > MAX_SESSION_CHARS {
        return Err(invalid(format!(
            "the session string is longer than {MAX_SESSION_CHARS} characters"
        )));
    }
    match format {
        SessionFormat::Telethon => parse_telethon(input).map(Parsed::from),
        SessionFormat::Pyrogram => parse_pyrogram(input),
        SessionFormat::Tgfleet => parse_tgfleet(input).map(Parsed::from),
    }
}

/// Guesses the format of a bare string (the CLI's inputs may not say): `tgf1.` is tgfleet, a
/// string that reads as a Telethon session is one, anything else is tried as Pyrogram.
pub fn detect(input: &str) -> SessionFormat {
    let input = input.trim();
    if input.starts_with(TGFLEET_PREFIX) {
        SessionFormat::Tgfleet
    } else if input.starts_with('1') && parse_telethon(input).is_ok() {
        SessionFormat::Telethon
    } else {
        SessionFormat::Pyrogram
    }
}

/// Hex SHA-256 of the auth key: the same session in any format has the same fingerprint.
pub fn fingerprint(auth_key: &[u8; 256]) -> String {
    hex::encode(Sha256::digest(auth_key))
}

fn decode_b64(input: &str, what: &str) -> Result<Vec<u8>, ParseError> {
    URL_SAFE_ANY
        .decode(input)
        .map_err(|e| invalid(format!("{what} is not URL-safe base64: {e}")))
}

fn key_from(bytes: &[u8]) -> Result<[u8; 256], ParseError> {
    let key: [u8; 256] = bytes
        .try_into()
        .map_err(|_| invalid(format!("the auth key has {} bytes, not 256", bytes.len())))?;
    if key.iter().all(|b| *b == 0) {
        return Err(invalid(
            "the auth key is all zeros (the session never logged in)",
        ));
    }
    Ok(key)
}

fn dc_from(dc: i64) -> Result<i32, ParseError> {
    // Telegram's DCs are 1–5; test servers and testdc stay within a small range too. The fleet
    // checks the DC against its own list when the session is imported.
    if (1..=1000).contains(&dc) {
        Ok(dc as i32)
    } else {
        Err(invalid(format!("DC id {dc} is out of range")))
    }
}

fn flag(byte: u8, what: &str) -> Result<bool, ParseError> {
    match byte {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(invalid(format!("{what} flag is {other}, not 0 or 1"))),
    }
}

pub fn parse_telethon(input: &str) -> Result<ForeignSession, ParseError> {
    let Some(body) = input.strip_prefix('1') else {
        return Err(invalid(
            "not a Telethon StringSession: it must start with version '1'",
        ));
    };
    let bytes = decode_b64(body, "the Telethon session")?;
    let ip_len = match bytes.len() {
        263 => 4,
        275 => 16,
        0 => return Err(invalid("the Telethon session is empty")),
        n => {
            return Err(invalid(format!(
                "the Telethon session has {n} bytes, not 263 (IPv4) or 275 (IPv6)"
            )))
        }
    };
    let dc_id = dc_from(bytes[0].into())?;
    let ip = &bytes[1..1 + ip_len];
    let ip = if ip_len == 4 {
        IpAddr::V4(Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]))
    } else {
        let mut octets = [0u8; 16];
        octets.copy_from_slice(ip);
        IpAddr::V6(Ipv6Addr::from(octets))
    };
    let port = u16::from_be_bytes([bytes[1 + ip_len], bytes[2 + ip_len]]);
    if port == 0 || ip.is_unspecified() {
        return Err(invalid("the Telethon session has no server address"));
    }
    let auth_key = key_from(&bytes[3 + ip_len..])?;
    Ok(ForeignSession {
        dc_id,
        addr: Some(SocketAddr::new(ip, port)),
        auth_key,
        user_id: None,
        bot: None,
    })
}

pub fn encode_telethon(session: &ForeignSession) -> Result<String, ParseError> {
    let addr = session
        .addr
        .ok_or_else(|| invalid("a Telethon session needs the DC's address"))?;
    let dc = u8::try_from(session.dc_id).map_err(|_| {
        invalid(format!(
            "DC id {} does not fit Telethon's byte",
            session.dc_id
        ))
    })?;
    let mut bytes = vec![dc];
    match addr.ip() {
        IpAddr::V4(v4) => bytes.extend_from_slice(&v4.octets()),
        IpAddr::V6(v6) => bytes.extend_from_slice(&v6.octets()),
    }
    bytes.extend_from_slice(&addr.port().to_be_bytes());
    bytes.extend_from_slice(&session.auth_key);
    Ok(format!("1{}", URL_SAFE_PAD.encode(bytes)))
}

pub fn parse_pyrogram(input: &str) -> Result<Parsed, ParseError> {
    let bytes = decode_b64(input, "the Pyrogram session")?;
    // (offset of test_mode, offset of the key, user id width)
    let (api_id_len, user_id_len) = match bytes.len() {
        271 => (4, 8), // >BI?256sQ?  (Pyrogram 2.x)
        267 => (0, 8), // >B?256sQ?   (1.x with 64-bit user ids)
        263 => (0, 4), // >B?256sI?   (1.x)
        n => {
            return Err(invalid(format!(
                "the Pyrogram session has {n} bytes, not 271 (Pyrogram 2), 267 or 263 (older)"
            )))
        }
    };
    let dc_id = dc_from(bytes[0].into())?;
    let mut at = 1 + api_id_len;
    let test_mode = flag(bytes[at], "the test-mode")?;
    at += 1;
    let auth_key = key_from(&bytes[at..at + 256])?;
    at += 256;
    let user_id: i64 = if user_id_len == 8 {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(&bytes[at..at + 8]);
        i64::try_from(u64::from_be_bytes(raw))
            .map_err(|_| invalid("the user id is out of range"))?
    } else {
        let mut raw = [0u8; 4];
        raw.copy_from_slice(&bytes[at..at + 4]);
        u32::from_be_bytes(raw).into()
    };
    at += user_id_len;
    if user_id <= 0 {
        return Err(invalid(
            "the Pyrogram session has no user id (it never logged in)",
        ));
    }
    let bot = flag(bytes[at], "the is-bot")?;
    Ok(Parsed {
        session: ForeignSession {
            dc_id,
            addr: None,
            auth_key,
            user_id: Some(user_id),
            bot: Some(bot),
        },
        test_mode,
    })
}

/// Pyrogram 2's layout; for tests and for operators moving sessions back.
pub fn encode_pyrogram(session: &ForeignSession, api_id: u32) -> Result<String, ParseError> {
    let dc = u8::try_from(session.dc_id).map_err(|_| {
        invalid(format!(
            "DC id {} does not fit Pyrogram's byte",
            session.dc_id
        ))
    })?;
    let user_id = session
        .user_id
        .and_then(|u| u64::try_from(u).ok())
        .ok_or_else(|| invalid("a Pyrogram session needs the user id"))?;
    let mut bytes = vec![dc];
    bytes.extend_from_slice(&api_id.to_be_bytes());
    bytes.push(0);
    bytes.extend_from_slice(&session.auth_key);
    bytes.extend_from_slice(&user_id.to_be_bytes());
    bytes.push(u8::from(session.bot.unwrap_or(false)));
    Ok(URL_SAFE_NOPAD.encode(bytes))
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TgfleetV1 {
    dc_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    addr: Option<String>,
    auth_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bot: Option<bool>,
}

pub fn parse_tgfleet(input: &str) -> Result<ForeignSession, ParseError> {
    let Some(body) = input.strip_prefix(TGFLEET_PREFIX) else {
        return Err(invalid(if input.starts_with("tgf") {
            "unsupported tgfleet session version (this server reads tgf1.)"
        } else {
            "not a tgfleet session: it must start with tgf1."
        }));
    };
    let json = decode_b64(body, "the tgfleet session")?;
    let v: TgfleetV1 = serde_json::from_slice(&json)
        .map_err(|e| invalid(format!("the tgfleet session's JSON is invalid: {e}")))?;
    let key = STANDARD
        .decode(v.auth_key.as_bytes())
        .map_err(|e| invalid(format!("auth_key is not base64: {e}")))?;
    let addr = match v.addr.as_deref() {
        None => None,
        Some(a) => Some(
            a.parse::<SocketAddr>()
                .map_err(|_| invalid("addr is not an IP:port address"))?,
        ),
    };
    if v.user_id.is_some_and(|u| u <= 0) {
        return Err(invalid("user_id must be positive"));
    }
    Ok(ForeignSession {
        dc_id: dc_from(v.dc_id)?,
        addr,
        auth_key: key_from(&key)?,
        user_id: v.user_id,
        bot: v.bot,
    })
}

pub fn encode_tgfleet(session: &ForeignSession) -> String {
    let v = TgfleetV1 {
        dc_id: session.dc_id.into(),
        addr: session.addr.map(|a| a.to_string()),
        auth_key: STANDARD.encode(session.auth_key),
        user_id: session.user_id,
        bot: session.bot,
    };
    // Serializing a struct of strings and integers cannot fail.
    let json = serde_json::to_vec(&v).unwrap_or_default();
    format!("{TGFLEET_PREFIX}{}", URL_SAFE_NOPAD.encode(json))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(addr: Option<&str>) -> ForeignSession {
        let mut key = [0u8; 256];
        for (i, b) in key.iter_mut().enumerate() {
            *b = (i * 7 + 3) as u8;
        }
        ForeignSession {
            dc_id: 2,
            addr: addr.map(|a| a.parse().unwrap()),
            auth_key: key,
            user_id: Some(777_000_123),
            bot: Some(false),
        }
    }

    #[test]
    fn telethon_round_trips_ipv4_and_ipv6() {
        for addr in ["149.154.167.51:443", "[2001:67c:4e8:f002::a]:443"] {
            let s = sample(Some(addr));
            let text = encode_telethon(&s).unwrap();
            assert!(text.starts_with('1'));
            let back = parse(SessionFormat::Telethon, &text).unwrap().session;
            assert_eq!(back.addr, s.addr);
            assert_eq!(back.auth_key, s.auth_key);
            assert_eq!(back.user_id, None);
            assert_eq!(detect(&text), SessionFormat::Telethon);
        }
    }

    /// A string from Telethon's own code (`StringSession.save()`; the key is bytes 0..=255).
    #[test]
    fn telethon_known_string() {
        let key: Vec<u8> = (0..=255u8).collect();
        let mut raw = vec![2u8, 127, 0, 0, 1, 0x1f, 0x90];
        raw.extend_from_slice(&key);
        let text = format!("1{}", URL_SAFE_PAD.encode(&raw));
        let s = parse_telethon(&text).unwrap();
        assert_eq!(s.dc_id, 2);
        assert_eq!(s.addr, Some("127.0.0.1:8080".parse().unwrap()));
        assert_eq!(&s.auth_key[..], &key[..]);
        // Unpadded works too.
        assert!(parse_telethon(text.trim_end_matches('=')).is_ok());
    }

    #[test]
    fn pyrogram_current_and_old_layouts() {
        let s = sample(None);
        let text = encode_pyrogram(&s, 12345).unwrap();
        let p = parse(SessionFormat::Pyrogram, &text).unwrap();
        assert_eq!(p.session, s);
        assert!(!p.test_mode);
        assert_eq!(detect(&text), SessionFormat::Pyrogram);
        // >B?256sI? (old): dc, test_mode, key, u32 user id, is_bot
        let mut old = vec![4u8, 1];
        old.extend_from_slice(&s.auth_key);
        old.extend_from_slice(&123_456u32.to_be_bytes());
        old.push(1);
        let p = parse_pyrogram(&URL_SAFE_NOPAD.encode(&old)).unwrap();
        assert_eq!(
            (p.session.dc_id, p.session.user_id, p.session.bot),
            (4, Some(123_456), Some(true))
        );
        assert!(p.test_mode);
        // >B?256sQ?
        let mut old64 = vec![1u8, 0];
        old64.extend_from_slice(&s.auth_key);
        old64.extend_from_slice(&5_000_000_000u64.to_be_bytes());
        old64.push(0);
        let p = parse_pyrogram(&URL_SAFE_NOPAD.encode(&old64)).unwrap();
        assert_eq!(p.session.user_id, Some(5_000_000_000));
    }

    #[test]
    fn tgfleet_round_trips_and_is_strict() {
        for s in [
            sample(Some("127.0.0.1:4000")),
            ForeignSession {
                addr: None,
                user_id: None,
                bot: None,
                ..sample(None)
            },
        ] {
            let text = encode_tgfleet(&s);
            assert_eq!(parse(SessionFormat::Tgfleet, &text).unwrap().session, s);
            assert_eq!(detect(&text), SessionFormat::Tgfleet);
        }
        let extra = format!(
            "tgf1.{}",
            URL_SAFE_NOPAD.encode(br#"{"dc_id":2,"auth_key":"","x":1}"#)
        );
        assert!(parse_tgfleet(&extra)
            .unwrap_err()
            .message
            .contains("unknown field"));
        assert!(parse_tgfleet("tgf2.abc")
            .unwrap_err()
            .message
            .contains("version"));
    }

    #[test]
    fn malformed_strings_name_the_problem() {
        let cases: &[(SessionFormat, &str, &str)] = &[
            (SessionFormat::Telethon, "", "empty"),
            (SessionFormat::Telethon, "2abc", "version '1'"),
            (SessionFormat::Telethon, "1!!!", "base64"),
            (SessionFormat::Telethon, "1AAAA", "not 263"),
            (SessionFormat::Pyrogram, "AAAA", "not 271"),
            (SessionFormat::Tgfleet, "hello", "tgf1."),
            (SessionFormat::Tgfleet, "tgf1.e30", "JSON"),
        ];
        for (format, input, needle) in cases {
            let e = parse(*format, input).unwrap_err();
            assert_eq!(e.code, "INVALID_SESSION");
            assert!(e.message.contains(needle), "{input:?}: {}", e.message);
        }
        let long = "1".repeat(MAX_SESSION_CHARS + 1);
        assert!(parse(SessionFormat::Telethon, &long)
            .unwrap_err()
            .message
            .contains("longer"));
        // A zero key (Telethon's string of a session that never connected) is refused.
        let mut zero = sample(Some("127.0.0.1:1"));
        zero.auth_key = [0; 256];
        let e = parse_telethon(&encode_telethon(&zero).unwrap()).unwrap_err();
        assert!(e.message.contains("zeros"));
    }

    #[test]
    fn fingerprint_is_the_same_across_formats() {
        let s = sample(Some("127.0.0.1:4000"));
        let a = parse(SessionFormat::Telethon, &encode_telethon(&s).unwrap()).unwrap();
        let b = parse(SessionFormat::Pyrogram, &encode_pyrogram(&s, 1).unwrap()).unwrap();
        assert_eq!(
            fingerprint(&a.session.auth_key),
            fingerprint(&b.session.auth_key)
        );
        assert_eq!(fingerprint(&s.auth_key).len(), 64);
    }

    const FORMATS: [SessionFormat; 3] = [
        SessionFormat::Telethon,
        SessionFormat::Pyrogram,
        SessionFormat::Tgfleet,
    ];

    fn valid_strings() -> Vec<String> {
        let s = sample(Some("149.154.167.51:443"));
        vec![
            encode_telethon(&s).unwrap(),
            encode_pyrogram(&s, 99).unwrap(),
            encode_tgfleet(&s),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Any text at all: an answer, never a panic.
        #[test]
        fn random_text_never_panics(input in ".{0,600}") {
            for f in FORMATS {
                let _ = parse(f, &input);
            }
            let _ = detect(&input);
        }

        /// Random bytes in the right encoding reach the layout checks.
        #[test]
        fn random_payloads_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let b64 = URL_SAFE_NOPAD.encode(&bytes);
            let _ = parse(SessionFormat::Telethon, &format!("1{b64}"));
            let _ = parse(SessionFormat::Pyrogram, &b64);
            let _ = parse(SessionFormat::Tgfleet, &format!("tgf1.{b64}"));
        }

        /// Valid strings cut short or with one character changed: parsed or refused with a
        /// message, and a refusal never echoes the string.
        #[test]
        fn truncated_and_mutated_strings(which in 0usize..3, cut in 0usize..600, at in 0usize..600, ch in any::<char>()) {
            let s = &valid_strings()[which];
            let f = FORMATS[which];
            let truncated: String = s.chars().take(cut).collect();
            if let Err(e) = parse(f, &truncated) {
                prop_assert!(!e.message.is_empty());
                prop_assert!(truncated.len() < 40 || !e.message.contains(&truncated));
            }
            let mut chars: Vec<char> = s.chars().collect();
            let i = at % chars.len();
            chars[i] = ch;
            let mutated: String = chars.into_iter().collect();
            let _ = parse(f, &mutated);
        }

        /// Whatever is encoded parses back to itself.
        #[test]
        fn encodings_round_trip(dc in 1i32..=5, key in proptest::collection::vec(any::<u8>(), 256), user in 1i64..i64::MAX, bot in any::<bool>(), port in 1u16..) {
            let mut auth_key = [0u8; 256];
            auth_key.copy_from_slice(&key);
            prop_assume!(auth_key.iter().any(|b| *b != 0));
            let s = ForeignSession { dc_id: dc, addr: Some(SocketAddr::from(([10, 0, 0, 1], port))), auth_key, user_id: Some(user), bot: Some(bot) };
            prop_assert_eq!(&parse_tgfleet(&encode_tgfleet(&s)).unwrap(), &s);
            prop_assert_eq!(parse_telethon(&encode_telethon(&s).unwrap()).unwrap().auth_key, auth_key);
            let p = parse_pyrogram(&encode_pyrogram(&s, 7).unwrap()).unwrap().session;
            prop_assert_eq!(p, ForeignSession { addr: None, ..s });
        }
    }
}
