//! Signatures per the Standard Webhooks specification: `webhook-signature: v1,<base64 of
//! HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, the key being the bytes a `whsec_` secret
//! encodes in base64. Several signatures go space-separated (a rotation's overlap), and a
//! receiver accepts the request when any one verifies — so receivers' own Standard Webhooks
//! libraries check what tgfleet sends.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

pub const SECRET_PREFIX: &str = "whsec_";
/// Key bytes of a secret tgfleet makes (the specification asks for 24 to 64).
const KEY_BYTES: usize = 32;

/// A new secret, `whsec_` + base64 of random key bytes, as shown to its owner once.
pub fn new_secret() -> Zeroizing<String> {
    let key: [u8; KEY_BYTES] = rand::random();
    Zeroizing::new(format!("{SECRET_PREFIX}{}", STANDARD.encode(key)))
}

/// The key bytes of a `whsec_` secret (the prefix is optional, as in the reference libraries).
pub fn key_of(secret: &str) -> Option<Zeroizing<Vec<u8>>> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    STANDARD.decode(encoded).ok().map(Zeroizing::new)
}

/// One `v1,<signature>` of `body` with `key`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key size");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` header value: one signature per key, space-separated.
pub fn header(keys: &[&[u8]], id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|key| sign(key, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_specifications_test_vector_reproduces() {
        // Published with the Standard Webhooks specification and its reference libraries.
        let key = key_of("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            sign(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn new_secrets_are_distinct_whsec_keys_of_32_bytes() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(*a, *b);
        assert!(a.starts_with(SECRET_PREFIX));
        assert_eq!(key_of(&a).unwrap().len(), KEY_BYTES);
    }

    #[test]
    fn a_rotation_signs_with_both_keys() {
        let h = header(&[b"new", b"old"], "7", 1, b"{}");
        let parts: Vec<&str> = h.split(' ').collect();
        assert_eq!(
            parts,
            [sign(b"new", "7", 1, b"{}"), sign(b"old", "7", 1, b"{}")]
        );
    }
}
