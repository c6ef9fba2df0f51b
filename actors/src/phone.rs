//! Phones as Telegram and the store expect them. Every way in (REST, onboarding, import, a
//! direct actor call) passes through here before a phone reaches Telegram or a unique index.

/// `+` and 7–15 digits (E.164); spaces, dashes, dots and parentheses are dropped first, so
/// `+1 (555) 010-0199` and `+15550100199` are the same account.
pub fn normalize_phone(raw: &str) -> Option<String> {
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
        return None;
    }
    Some(format!("+{digits}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_normalized_or_refused() {
        assert_eq!(
            normalize_phone("+1 (555) 010-0199").as_deref(),
            Some("+15550100199")
        );
        assert_eq!(
            normalize_phone(" +447700900123 ").as_deref(),
            Some("+447700900123")
        );
        for bad in [
            "15550100199",
            "+12",
            "+1555abc0199",
            "+",
            "",
            "+1234567890123456",
        ] {
            assert_eq!(normalize_phone(bad), None, "{bad}");
        }
    }
}
