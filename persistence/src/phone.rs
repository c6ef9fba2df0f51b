//! Phones as Telegram and the store expect them. Every way in (REST, onboarding, import, a
//! direct actor call) parses a [`Phone`] first, and the store takes and gives only `Phone`s, so
//! no unnormalised phone reaches Telegram or a unique index.

use std::fmt;
use std::str::FromStr;

/// `+` and 7–15 digits (E.164). Parsing drops spaces, dashes, dots and parentheses first, so
/// `+1 (555) 010-0199` and `+15550100199` are the same phone.
///
/// Serialized as the string; deserializing parses it, so a stored phone is checked on the way in
/// like any other.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Phone(String);

impl Phone {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digits without the `+`, as some Telegram methods take them.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// A phone as Telegram's `user.phone` shows it (digits, usually without the `+`).
    pub fn from_telegram(raw: &str) -> Option<Self> {
        format!("+{}", raw.trim_start_matches('+')).parse().ok()
    }
}

impl FromStr for Phone {
    type Err = &'static str;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let trimmed = raw.trim();
        let digits: String = trimmed
            .trim_start_matches('+')
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        if !trimmed.starts_with('+')
            || !(7..=15).contains(&digits.len())
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return Err("a phone is + and 7 to 15 digits");
        }
        Ok(Self(format!("+{digits}")))
    }
}

/// Read-only: a `Phone` is read as the string it is, and only parsing makes one.
impl std::ops::Deref for Phone {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Phone {
    type Error = &'static str;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        raw.parse()
    }
}

impl From<Phone> for String {
    fn from(phone: Phone) -> String {
        phone.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_normalized_or_refused() {
        let parse = |raw: &str| raw.parse::<Phone>().ok().map(Phone::into_string);
        assert_eq!(parse("+1 (555) 010-0199").as_deref(), Some("+15550100199"));
        assert_eq!(parse(" +447700900123 ").as_deref(), Some("+447700900123"));
        assert_eq!(
            "+15550100199"
                .parse::<Phone>()
                .map(|p| p.digits().to_owned()),
            Ok("15550100199".to_owned())
        );
        for bad in [
            "15550100199",
            "+12",
            "+1555abc0199",
            "+",
            "",
            "+1234567890123456",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
