//! Who a message goes to, parsed once where a request enters (REST, CLI) and carried typed to the
//! Telegram call, so the API's validation and the actor's resolution cannot disagree.

use std::fmt;
use std::str::FromStr;

/// `me`, `@username`, `+phone` or a numeric (Bot API style) id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Peer {
    /// The account itself (Saved Messages); also accepted as `self`, in any case.
    Me,
    /// Without the `@`: 4 to 32 letters, digits and underscores.
    Username(String),
    Phone(tgfleet_persistence::Phone),
    /// A Bot API style id: users positive, basic groups negative, channels `-100…`.
    Id(i64),
}

/// What a caller is told about a peer that is none of the accepted forms.
pub const PEER_FORMS: &str = "must be me, @username, +phone or a numeric id";

/// A Telegram username without its `@`: 4 to 32 letters, digits and underscores.
pub fn is_username(name: &str) -> bool {
    (4..=32).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl FromStr for Peer {
    type Err = &'static str;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let raw = raw.trim();
        if raw.eq_ignore_ascii_case("me") || raw.eq_ignore_ascii_case("self") {
            return Ok(Self::Me);
        }
        if let Some(name) = raw.strip_prefix('@') {
            return if is_username(name) {
                Ok(Self::Username(name.to_owned()))
            } else {
                Err(PEER_FORMS)
            };
        }
        if raw.starts_with('+') {
            return raw.parse().map(Self::Phone).map_err(|_| PEER_FORMS);
        }
        match raw.parse::<i64>() {
            Ok(id) if id != 0 => Ok(Self::Id(id)),
            _ => Err(PEER_FORMS),
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Me => f.write_str("me"),
            Self::Username(name) => write!(f, "@{name}"),
            Self::Phone(phone) => write!(f, "{phone}"),
            Self::Id(id) => write!(f, "{id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_accepted_form_parses_and_prints_back() {
        for (raw, peer, shown) in [
            ("me", Peer::Me, "me"),
            (" SELF ", Peer::Me, "me"),
            ("@durov", Peer::Username("durov".into()), "@durov"),
            (
                "+1 (555) 010-0199",
                Peer::Phone("+15550100199".parse().unwrap()),
                "+15550100199",
            ),
            ("42", Peer::Id(42), "42"),
            ("-1001234567890", Peer::Id(-1001234567890), "-1001234567890"),
        ] {
            assert_eq!(raw.parse::<Peer>(), Ok(peer.clone()), "{raw}");
            assert_eq!(peer.to_string(), shown);
            assert_eq!(shown.parse::<Peer>(), Ok(peer));
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "",
            "bob",
            "@ab",
            "@has-dash",
            "@",
            "+12",
            "+1555abc0199",
            "0",
            "1.5",
        ] {
            assert_eq!(bad.parse::<Peer>(), Err(PEER_FORMS), "{bad:?}");
        }
    }
}
