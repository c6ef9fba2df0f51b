//! MTProto 2.0 on the wire: the Full transport, message encryption for both directions, and the
//! plaintext message layout. Everything here is pure and works on byte slices so that malformed
//! input can only ever produce an `Err`, never a panic.

use std::time::{SystemTime, UNIX_EPOCH};

use grammers_crypto::aes::{ige_decrypt, ige_encrypt};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Largest transport frame accepted. Telegram closes the connection above roughly 1 MiB; the
/// client's own buffer is 1 MiB + 8 KiB, so nothing legitimate is larger.
pub const MAX_FRAME_LEN: usize = 1024 * 1024 + 8 * 1024;

/// Which side encrypted a message: MTProto 2.0 derives keys with x = 0 for client→server and
/// x = 8 for server→client, so each side needs both directions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    ClientToServer,
    ServerToClient,
}

impl Direction {
    fn x(self) -> usize {
        match self {
            Direction::ClientToServer => 0,
            Direction::ServerToClient => 8,
        }
    }
}

pub type KeyId = [u8; 8];

/// A pre-shared authorization key with its derived id.
#[derive(Clone)]
pub struct AuthKey {
    pub data: [u8; 256],
    pub id: KeyId,
}

impl AuthKey {
    pub fn new(data: [u8; 256]) -> Self {
        let sha = Sha1::digest(data);
        let mut id = [0u8; 8];
        id.copy_from_slice(&sha[12..20]);
        Self { data, id }
    }
}

impl std::fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuthKey({:016x})", u64::from_le_bytes(self.id))
    }
}

fn calc_key(key: &AuthKey, msg_key: &[u8; 16], dir: Direction) -> ([u8; 32], [u8; 32]) {
    let x = dir.x();
    let a = Sha256::new()
        .chain_update(msg_key)
        .chain_update(&key.data[x..x + 36])
        .finalize();
    let b = Sha256::new()
        .chain_update(&key.data[40 + x..40 + x + 36])
        .chain_update(msg_key)
        .finalize();
    let mut aes_key = [0u8; 32];
    aes_key[..8].copy_from_slice(&a[..8]);
    aes_key[8..24].copy_from_slice(&b[8..24]);
    aes_key[24..].copy_from_slice(&a[24..32]);
    let mut aes_iv = [0u8; 32];
    aes_iv[..8].copy_from_slice(&b[..8]);
    aes_iv[8..24].copy_from_slice(&a[8..24]);
    aes_iv[24..].copy_from_slice(&b[24..32]);
    (aes_key, aes_iv)
}

fn msg_key_for(key: &AuthKey, plaintext: &[u8], dir: Direction) -> [u8; 16] {
    let x = dir.x();
    let large = Sha256::new()
        .chain_update(&key.data[88 + x..88 + x + 32])
        .chain_update(plaintext)
        .finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&large[8..24]);
    out
}

/// Encrypts `plaintext` (salt, session id, message) into `auth_key_id | msg_key | ciphertext`.
pub fn encrypt(key: &AuthKey, mut plaintext: Vec<u8>, dir: Direction) -> Vec<u8> {
    // 12..1024 bytes of padding, total a multiple of 16.
    let pad = 16 + (16 - plaintext.len() % 16);
    let mut padding = [0u8; 32];
    rand::Rng::fill(&mut rand::thread_rng(), &mut padding[..]);
    plaintext.extend_from_slice(&padding[..pad]);
    let msg_key = msg_key_for(key, &plaintext, dir);
    let (aes_key, aes_iv) = calc_key(key, &msg_key, dir);
    ige_encrypt(&mut plaintext, &aes_key, &aes_iv);
    let mut out = Vec::with_capacity(24 + plaintext.len());
    out.extend_from_slice(&key.id);
    out.extend_from_slice(&msg_key);
    out.extend_from_slice(&plaintext);
    out
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecryptError {
    #[error("encrypted payload has a bad length")]
    BadLength,
    #[error("msg_key does not match the plaintext")]
    BadMsgKey,
}

/// Decrypts `auth_key_id | msg_key | ciphertext` in place and returns the plaintext.
pub fn decrypt<'a>(
    key: &AuthKey,
    payload: &'a mut [u8],
    dir: Direction,
) -> Result<&'a [u8], DecryptError> {
    if payload.len() < 24 + 32 || !(payload.len() - 24).is_multiple_of(16) {
        return Err(DecryptError::BadLength);
    }
    let mut msg_key = [0u8; 16];
    msg_key.copy_from_slice(&payload[8..24]);
    let (aes_key, aes_iv) = calc_key(key, &msg_key, dir);
    let body = &mut payload[24..];
    ige_decrypt(body, &aes_key, &aes_iv);
    if msg_key_for(key, body, dir) != msg_key {
        return Err(DecryptError::BadMsgKey);
    }
    Ok(body)
}

/// One decoded plaintext: the header fields plus the message body.
#[derive(Debug)]
pub struct Plain<'a> {
    pub salt: i64,
    pub session_id: i64,
    pub msg_id: i64,
    pub seq_no: i32,
    pub body: &'a [u8],
}

pub fn parse_plain(plaintext: &[u8]) -> Option<Plain<'_>> {
    if plaintext.len() < 32 {
        return None;
    }
    let salt = read_i64(plaintext, 0)?;
    let session_id = read_i64(plaintext, 8)?;
    let msg_id = read_i64(plaintext, 16)?;
    let seq_no = read_i32(plaintext, 24)?;
    let len = usize::try_from(read_i32(plaintext, 28)?).ok()?;
    if !len.is_multiple_of(4) {
        return None;
    }
    let body = plaintext.get(32..32usize.checked_add(len)?)?;
    // MTProto 2.0 demands 12..=1024 bytes of padding after the message.
    let padding = plaintext.len() - 32 - len;
    if !(12..=1024).contains(&padding) {
        return None;
    }
    Some(Plain {
        salt,
        session_id,
        msg_id,
        seq_no,
        body,
    })
}

pub fn build_plain(salt: i64, session_id: i64, msg_id: i64, seq_no: i32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + body.len() + 32);
    out.extend_from_slice(&salt.to_le_bytes());
    out.extend_from_slice(&session_id.to_le_bytes());
    out.extend_from_slice(&msg_id.to_le_bytes());
    out.extend_from_slice(&seq_no.to_le_bytes());
    out.extend_from_slice(&(body.len() as i32).to_le_bytes());
    out.extend_from_slice(body);
    out
}

pub fn read_i32(buf: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_le_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}

pub fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}

pub fn read_i64(buf: &[u8], at: usize) -> Option<i64> {
    Some(i64::from_le_bytes(buf.get(at..at + 8)?.try_into().ok()?))
}

/// Generates message ids the way the MTProto spec asks: time-based, strictly increasing, and
/// with the low two bits telling who sent them (1 or 3 for server replies, 0 for clients).
#[derive(Debug, Default)]
pub struct MsgIdGen {
    last: i64,
}

impl MsgIdGen {
    pub fn next(&mut self, server: bool) -> i64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let mut id = ((now.as_secs() as i64) << 32) | ((now.subsec_nanos() as i64) << 2);
        id &= !3;
        if id <= self.last {
            id = (self.last & !3) + 4;
        }
        if server {
            id |= 1;
        }
        self.last = id;
        id
    }
}

/// Sequence numbers: content-related messages take odd numbers, the rest reuse the current even.
#[derive(Debug, Default)]
pub struct SeqGen {
    content_sent: i32,
}

impl SeqGen {
    pub fn next(&mut self, content_related: bool) -> i32 {
        if content_related {
            self.content_sent += 1;
            self.content_sent * 2 - 1
        } else {
            self.content_sent * 2
        }
    }
}

/// Outcome of trying to cut one Full-transport frame off the front of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// Need more bytes; the value is how many bytes the whole frame has (if known).
    Incomplete(Option<usize>),
    /// A complete frame: the payload range and the total frame length.
    Complete {
        payload: std::ops::Range<usize>,
        len: usize,
    },
    /// Length out of range, bad crc or wrong sequence number: the connection must close.
    Invalid,
}

/// Full transport: `len | seq | payload | crc32`, with per-direction sequence counters.
pub fn cut_frame(buf: &[u8], expected_seq: i32) -> Frame {
    let Some(len) = read_i32(buf, 0) else {
        return Frame::Incomplete(None);
    };
    let Ok(len) = usize::try_from(len) else {
        return Frame::Invalid;
    };
    if !(12..=MAX_FRAME_LEN).contains(&len) || !len.is_multiple_of(4) {
        return Frame::Invalid;
    }
    if buf.len() < len {
        return Frame::Incomplete(Some(len));
    }
    if read_i32(buf, 4) != Some(expected_seq) {
        return Frame::Invalid;
    }
    let crc = crc32fast::hash(&buf[..len - 4]);
    if read_u32(buf, len - 4) != Some(crc) {
        return Frame::Invalid;
    }
    Frame::Complete {
        payload: 8..len - 4,
        len,
    }
}

pub fn pack_frame(out: &mut Vec<u8>, seq: i32, payload: &[u8]) {
    let len = (payload.len() + 12) as i32;
    let start = out.len();
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypt_decrypt_roundtrip_both_directions() {
        let key = AuthKey::new([7u8; 256]);
        for dir in [Direction::ClientToServer, Direction::ServerToClient] {
            let plain = build_plain(0, 42, 4, 1, &[1, 2, 3, 4]);
            let mut enc = encrypt(&key, plain.clone(), dir);
            let dec = decrypt(&key, &mut enc, dir).unwrap();
            let parsed = parse_plain(dec).unwrap();
            assert_eq!(parsed.session_id, 42);
            assert_eq!(parsed.body, &[1, 2, 3, 4]);
        }
    }

    #[test]
    fn wrong_direction_is_rejected() {
        let mut raw = [0u8; 256];
        raw.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
        let key = AuthKey::new(raw);
        let plain = build_plain(0, 1, 4, 1, &[0; 8]);
        let mut enc = encrypt(&key, plain, Direction::ServerToClient);
        assert_eq!(
            decrypt(&key, &mut enc, Direction::ClientToServer).unwrap_err(),
            DecryptError::BadMsgKey
        );
    }

    #[test]
    fn matches_grammers_client_encryption() {
        // The real client's encryption must be readable as client→server.
        let raw = [3u8; 256];
        let key = AuthKey::new(raw);
        let gkey = grammers_crypto::AuthKey::from_bytes(raw);
        let mut buf = grammers_crypto::DequeBuffer::with_capacity(64, 32);
        let plain = build_plain(0, 5, 8, 1, &[0xaa; 16]);
        buf.extend(plain.iter().copied());
        grammers_crypto::encrypt_data_v2(&mut buf, &gkey);
        let mut wire = buf.as_ref().to_vec();
        let dec = decrypt(&key, &mut wire, Direction::ClientToServer).unwrap();
        assert_eq!(parse_plain(dec).unwrap().body, &[0xaa; 16]);

        // And the client must read what the server encrypts.
        let mut enc = encrypt(&key, plain, Direction::ServerToClient);
        let dec = grammers_crypto::decrypt_data_v2(&mut enc, &gkey).unwrap();
        assert_eq!(&dec[32..48], &[0xaa; 16]);
    }

    #[test]
    fn frames_roundtrip_and_reject_garbage() {
        let mut out = Vec::new();
        pack_frame(&mut out, 0, &[1, 2, 3, 4]);
        assert_eq!(
            cut_frame(&out, 0),
            Frame::Complete {
                payload: 8..12,
                len: 16
            }
        );
        assert_eq!(cut_frame(&out, 1), Frame::Invalid);
        assert_eq!(cut_frame(&out[..10], 0), Frame::Incomplete(Some(16)));
        out[9] ^= 1;
        assert_eq!(cut_frame(&out, 0), Frame::Invalid);
        assert_eq!(cut_frame(&(-1i32).to_le_bytes(), 0), Frame::Invalid);
    }
}
