//! The server half of Telegram's SRP 2FA (<https://core.telegram.org/api/srp>).
//!
//! The server never keeps the password's verifier derivation inputs beyond `v = g^x mod p`; it
//! answers `account.getPassword` with `g_b = k·v + g^b` and checks the client's `M1` by computing
//! the shared secret from `A·v^u` raised to `b`, exactly as Telegram does.

use hmac::{Hmac, Mac};
use num_bigint::BigUint;
use sha2::{Digest, Sha256, Sha512};

/// Telegram's 2048-bit safe prime; grammers refuses any other group.
const P_HEX: &str = "c71caeb9c6b1c9048e6c522f70f13f73980d40238e3e21c14934d037563d930f\
48198a0aa7c14058229493d22530f4dbfa336f6e0ac925139543aed44cce7c37\
20fd51f69458705ac68cd4fe6b6b13abdc9746512969328454f18faf8c595f64\
2477fe96bb2a941d5bcd1d4ac8cc49880708fa9b378e3c4f3a9060bee67cf9a4\
a4a695811051907e162753b56b0f6b410dba74d8a84b2a14b3144e0ef1284754\
fd17ed950d5965b4b9dd46582db1178d169c6bc465b0d6ff9ca3928fef5b9ae4\
e418fc15e83ebea0f87fa9ff5eed70050ded2849f47bf959d956850ce929851f\
0d8115f635b105ee2e4e15d04b2454bf6f4fadf034b10403119cd8e3b92fcc5b";

pub const G: i32 = 3;

pub fn p_bytes() -> Vec<u8> {
    hex::decode(P_HEX).unwrap_or_default()
}

fn pad256(bytes: &[u8]) -> [u8; 256] {
    let mut out = [0u8; 256];
    if bytes.len() <= 256 {
        out[256 - bytes.len()..].copy_from_slice(bytes);
    }
    out
}

fn h(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for p in parts {
        hasher.update(p);
    }
    hasher.finalize().into()
}

fn sh(data: &[u8], salt: &[u8]) -> [u8; 32] {
    h(&[salt, data, salt])
}

fn pbkdf2_sha512(password: &[u8], salt: &[u8], rounds: u32) -> [u8; 64] {
    // One 64-byte block is all SRP needs, so the PBKDF2 loop is written out here rather than
    // pulling in a second digest generation just for the `pbkdf2` crate.
    let mac = Hmac::<Sha512>::new_from_slice(password).expect("HMAC accepts any key length");
    let mut u = {
        let mut m = mac.clone();
        m.update(salt);
        m.update(&1u32.to_be_bytes());
        m.finalize().into_bytes()
    };
    let mut out: [u8; 64] = u.into();
    for _ in 1..rounds {
        let mut m = mac.clone();
        m.update(&u);
        u = m.finalize().into_bytes();
        for (o, x) in out.iter_mut().zip(u.iter()) {
            *o ^= x;
        }
    }
    out
}

/// `x = PH2(password, salt1, salt2)`; 100,000 PBKDF2 rounds, so call it off the runtime.
pub fn password_x(password: &[u8], salt1: &[u8], salt2: &[u8]) -> BigUint {
    let ph1 = sh(&sh(password, salt1), salt2);
    let dk = pbkdf2_sha512(&ph1, salt1, 100_000);
    BigUint::from_bytes_be(&sh(&dk, salt2))
}

/// The verifier `v = g^x mod p` stored for an account with a password.
pub fn verifier(x: &BigUint) -> BigUint {
    let p = BigUint::from_bytes_be(&p_bytes());
    BigUint::from(G as u32).modpow(x, &p)
}

fn k() -> BigUint {
    let p = p_bytes();
    BigUint::from_bytes_be(&h(&[&p, &pad256(&[G as u8])]))
}

/// A server challenge for one `account.getPassword`.
#[derive(Clone, Debug)]
pub struct Challenge {
    pub b: BigUint,
    pub g_b: [u8; 256],
}

pub fn challenge(v: &BigUint) -> Challenge {
    let p = BigUint::from_bytes_be(&p_bytes());
    let mut b_bytes = [0u8; 256];
    rand::Rng::fill(&mut rand::thread_rng(), &mut b_bytes[..]);
    let b = BigUint::from_bytes_be(&b_bytes);
    let g_b = (k() * v + BigUint::from(G as u32).modpow(&b, &p)) % &p;
    Challenge {
        b,
        g_b: pad256(&g_b.to_bytes_be()),
    }
}

/// Verifies the client's `M1` for `A = g_a`.
pub fn check(
    v: &BigUint,
    ch: &Challenge,
    salt1: &[u8],
    salt2: &[u8],
    g_a: &[u8],
    m1: &[u8],
) -> bool {
    let p_raw = p_bytes();
    let p = BigUint::from_bytes_be(&p_raw);
    if g_a.len() > 256 || m1.len() != 32 {
        return false;
    }
    let a_big = BigUint::from_bytes_be(g_a);
    if a_big <= BigUint::from(1u8) || a_big >= &p - 1u8 {
        return false;
    }
    let g_a = pad256(g_a);
    let u = BigUint::from_bytes_be(&h(&[&g_a, &ch.g_b]));
    let s = (a_big * v.modpow(&u, &p) % &p).modpow(&ch.b, &p);
    let k_s = h(&[&pad256(&s.to_bytes_be())]);
    let h_p = h(&[&p_raw]);
    let h_g = h(&[&pad256(&[G as u8])]);
    let mut xor = [0u8; 32];
    for i in 0..32 {
        xor[i] = h_p[i] ^ h_g[i];
    }
    let expected = h(&[&xor, &h(&[salt1]), &h(&[salt2]), &g_a, &ch.g_b, &k_s]);
    expected[..] == *m1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_is_the_one_grammers_accepts() {
        assert!(grammers_crypto::two_factor_auth::check_p_and_g(
            &p_bytes(),
            &G
        ));
    }

    #[test]
    fn client_m1_verifies_and_wrong_password_does_not() {
        let (salt1, salt2) = (b"salt-one".to_vec(), b"salt-two".to_vec());
        let v = verifier(&password_x(b"hunter2", &salt1, &salt2));
        let ch = challenge(&v);
        let a = vec![5u8; 256];
        let (m1, g_a) = grammers_crypto::two_factor_auth::calculate_2fa(
            &salt1,
            &salt2,
            &p_bytes(),
            &G,
            ch.g_b.to_vec(),
            a.clone(),
            b"hunter2",
        );
        assert!(check(&v, &ch, &salt1, &salt2, &g_a, &m1));
        let (m1, g_a) = grammers_crypto::two_factor_auth::calculate_2fa(
            &salt1,
            &salt2,
            &p_bytes(),
            &G,
            ch.g_b.to_vec(),
            a,
            b"wrong",
        );
        assert!(!check(&v, &ch, &salt1, &salt2, &g_a, &m1));
    }
}
