//! One task per TCP connection: Full transport in, MTProto 2.0 decrypt, service messages,
//! RPC dispatch, and pushes from other tasks (updates, forced disconnects).
//!
//! Memory matters here (10,000 idle connections is a design target): the read buffer starts
//! empty, grows only to the size of the frame being read, and is released once it is drained;
//! the RPC future is boxed so the idle task stays small.

use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use grammers_tl_types::{self as tl, Cursor, Deserializable, Identifiable, Serializable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::mtp::{self, cut_frame, AuthKey, Direction, Frame, MsgIdGen, SeqGen};
use crate::rpc::{self, Reply};
use crate::shared::{ConnEntry, Push, Shared};

const MSG_CONTAINER: u32 = 0x73f1f8dc;
const GZIP_PACKED: u32 = 0x3072cfa1;
const RPC_RESULT: u32 = 0xf35c6d01;
const MSGS_ACK: u32 = 0x62d6b459;
const PING: u32 = 0x7abe77ec;
const PING_DELAY_DISCONNECT: u32 = 0xf3427b8c;
const GET_FUTURE_SALTS: u32 = 0xb921bd04;
const DESTROY_SESSION: u32 = 0xe7512126;
const RPC_DROP_ANSWER: u32 = 0x58e4a740;
const IGNORED_SERVICE: [u32; 6] = [
    0xda69fb52, // msgs_state_req
    0x04deb57d, // msgs_state_info
    0x8cc0d131, // msgs_all_info
    0x7d861a08, // msg_resend_req
    0x8610baeb, // msg_resend_ans_req
    0x9299359f, // http_wait
];

/// Largest body a `gzip_packed` request may inflate to; bigger is a bomb, not a request.
const MAX_INFLATED: u64 = 4 * 1024 * 1024;

enum Inbound {
    Rpc { msg_id: i64, body: Vec<u8> },
    Ping { msg_id: i64, ping_id: i64 },
    FutureSalts { msg_id: i64, num: i32 },
    Answer { msg_id: i64, body: Vec<u8> },
}

struct Close;

struct Conn {
    shared: Arc<Shared>,
    id: u64,
    dc_id: i32,
    key: Option<Arc<AuthKey>>,
    session_id: i64,
    recv_seq: i32,
    send_seq: i32,
    msg_ids: MsgIdGen,
    seq: SeqGen,
    out: Vec<u8>,
}

/// Deregisters the connection however the task ends.
struct Registration {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shared.conns().remove(&self.id);
        self.shared.live.fetch_sub(1, Ordering::Relaxed);
    }
}

pub async fn serve(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    dc_id: i32,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::unbounded_channel();
    shared.conns().insert(
        id,
        ConnEntry {
            dc_id,
            key_id: None,
            session_id: None,
            tx,
        },
    );
    shared.live.fetch_add(1, Ordering::Relaxed);
    let _registration = Registration {
        shared: Arc::clone(&shared),
        id,
    };
    let mut conn = Conn {
        shared,
        id,
        dc_id,
        key: None,
        session_id: 0,
        recv_seq: 0,
        send_seq: 0,
        msg_ids: MsgIdGen::default(),
        seq: SeqGen::default(),
        out: Vec::new(),
    };
    let mut buf: Vec<u8> = Vec::new();

    loop {
        let want = match cut_frame(&buf, conn.recv_seq) {
            Frame::Incomplete(Some(len)) => len - buf.len(),
            _ => 256,
        };
        buf.reserve(want);
        tokio::select! {
            read = stream.read_buf(&mut buf) => {
                match read {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                match conn.drain_frames(&mut buf).await {
                    Ok(()) => {}
                    Err(Close) => {
                        let _ = conn.flush(&mut stream).await;
                        break;
                    }
                }
                if buf.is_empty() {
                    // Idle connections hold no read buffer at all.
                    buf = Vec::new();
                }
            }
            push = rx.recv() => match push {
                Some(Push::Updates(body)) => {
                    if conn.key.is_some() {
                        conn.send(&body, true);
                    }
                }
                Some(Push::Close) | None => break,
            },
            _ = shutdown.changed() => break,
        }
        if conn.flush(&mut stream).await.is_err() {
            break;
        }
    }
}

impl Conn {
    async fn flush(&mut self, stream: &mut TcpStream) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let res = stream.write_all(&self.out).await;
        self.out = Vec::new();
        res
    }

    async fn drain_frames(&mut self, buf: &mut Vec<u8>) -> Result<(), Close> {
        loop {
            match cut_frame(buf, self.recv_seq) {
                Frame::Incomplete(_) => return Ok(()),
                Frame::Invalid => return Err(Close),
                Frame::Complete { payload, len } => {
                    self.recv_seq = self.recv_seq.wrapping_add(1);
                    let inbound = self.open(&mut buf[payload]);
                    buf.drain(..len);
                    let (session_id, inbound) = inbound?;
                    self.session_id = session_id;
                    for item in inbound {
                        self.handle(item).await?;
                    }
                }
            }
        }
    }

    /// Decrypts one transport payload and unpacks its messages.
    fn open(&mut self, payload: &mut [u8]) -> Result<(i64, Vec<Inbound>), Close> {
        let key_id: [u8; 8] = payload
            .get(..8)
            .and_then(|s| s.try_into().ok())
            .ok_or(Close)?;
        if key_id == [0; 8] {
            // A plain message means the client wants a DH key exchange, which cannot succeed
            // against testdc (grammers pins Telegram's RSA keys): hang up like a dead DC.
            return Err(Close);
        }
        let key = match &self.key {
            Some(k) if k.id == key_id => Arc::clone(k),
            _ => match self.shared.key(&key_id) {
                Some(k) => k,
                None => {
                    // Telegram's answer to an unknown auth key: transport error -404.
                    self.out.extend_from_slice(&(-404i32).to_le_bytes());
                    return Err(Close);
                }
            },
        };
        let plain = mtp::decrypt(&key, payload, Direction::ClientToServer).map_err(|_| Close)?;
        let plain = mtp::parse_plain(plain).ok_or(Close)?;
        let session_id = plain.session_id;
        if self.key.as_ref().map(|k| k.id) != Some(key_id) || self.session_id != session_id {
            if let Some(e) = self.shared.conns().get_mut(&self.id) {
                e.key_id = Some(key_id);
                e.session_id = Some(session_id);
            }
        }
        self.key = Some(key);
        let mut inbound = Vec::new();
        collect(plain.msg_id, plain.body, 0, &mut inbound)?;
        Ok((session_id, inbound))
    }

    async fn handle(&mut self, item: Inbound) -> Result<(), Close> {
        let black_hole = self
            .shared
            .black_holed(self.key.as_ref().map(|k| k.id), self.dc_id);
        match item {
            Inbound::Ping { msg_id, ping_id } => {
                if !black_hole {
                    let pong = tl::enums::Pong::Pong(tl::types::Pong { msg_id, ping_id });
                    self.send(&pong.to_bytes(), false);
                }
            }
            Inbound::FutureSalts { msg_id, num } => {
                if !black_hole {
                    let now = crate::world::unix_now();
                    let salts = (0..num.clamp(1, 64))
                        .map(|i| tl::types::FutureSalt {
                            valid_since: now + i * 3600,
                            valid_until: now + (i + 1) * 3600,
                            salt: 0,
                        })
                        .collect();
                    let body = tl::types::FutureSalts {
                        req_msg_id: msg_id,
                        now,
                        salts: tl::RawVec(salts),
                    };
                    let mut bytes = tl::types::FutureSalts::CONSTRUCTOR_ID.to_bytes();
                    body.serialize(&mut bytes);
                    self.send(&bytes, false);
                }
            }
            Inbound::Answer { msg_id, body } => {
                if !black_hole {
                    self.send_result(msg_id, &body);
                }
            }
            Inbound::Rpc { msg_id, body } => {
                self.shared.bump_requests();
                let Some(key) = self.key.as_ref().map(|k| k.id) else {
                    return Err(Close);
                };
                let Some((query, init)) = rpc::unwrap_request(&body) else {
                    self.send_error(msg_id, 400, "INPUT_FETCH_ERROR");
                    return Ok(());
                };
                if let Some(init) = init {
                    self.shared.record_init(self.id, self.dc_id, key, init);
                }
                if self.shared.cfg.strict_duplicate_keys
                    && !black_hole
                    && self
                        .shared
                        .duplicated(self.id, key, self.dc_id, self.session_id)
                {
                    self.send_error(msg_id, 406, "AUTH_KEY_DUPLICATED");
                    return Ok(());
                }
                let ctx = rpc::Ctx {
                    shared: &self.shared,
                    dc_id: self.dc_id,
                    key_id: key,
                };
                let reply = Box::pin(rpc::dispatch(&ctx, query)).await;
                // What the client is told (signed in, code sent) must survive a crash of this
                // process: write it out before answering.
                if self.shared.persist.is_some()
                    && self.shared.is_dirty()
                    && rpc::persist_before_answer(query)
                {
                    let shared = Arc::clone(&self.shared);
                    let _ = tokio::task::spawn_blocking(move || shared.persist_now()).await;
                }
                match reply {
                    Reply::Result(bytes) => self.send_result(msg_id, &bytes),
                    Reply::Error(code, name) => self.send_error(msg_id, code, &name),
                    Reply::Swallow => {}
                }
            }
        }
        Ok(())
    }

    fn send_result(&mut self, req_msg_id: i64, result: &[u8]) {
        let mut body = Vec::with_capacity(12 + result.len());
        body.extend_from_slice(&RPC_RESULT.to_le_bytes());
        body.extend_from_slice(&req_msg_id.to_le_bytes());
        body.extend_from_slice(result);
        self.send(&body, true);
    }

    fn send_error(&mut self, req_msg_id: i64, code: i32, name: &str) {
        let error = tl::enums::RpcError::Error(tl::types::RpcError {
            error_code: code,
            error_message: name.to_owned(),
        });
        self.send_result(req_msg_id, &error.to_bytes());
    }

    fn send(&mut self, body: &[u8], content_related: bool) {
        let Some(key) = self.key.clone() else {
            return;
        };
        let msg_id = self.msg_ids.next(true);
        let seq_no = self.seq.next(content_related);
        let plain = mtp::build_plain(0, self.session_id, msg_id, seq_no, body);
        let enc = mtp::encrypt(&key, plain, Direction::ServerToClient);
        mtp::pack_frame(&mut self.out, self.send_seq, &enc);
        self.send_seq = self.send_seq.wrapping_add(1);
    }
}

/// Flattens containers and gzip into the list of things to answer.
fn collect(msg_id: i64, body: &[u8], depth: u8, out: &mut Vec<Inbound>) -> Result<(), Close> {
    if depth > 2 {
        return Err(Close);
    }
    let Some(id) = mtp::read_u32(body, 0) else {
        return Ok(());
    };
    match id {
        MSG_CONTAINER if depth == 0 => {
            let count = mtp::read_i32(body, 4).ok_or(Close)?;
            if !(0..=1024).contains(&count) {
                return Err(Close);
            }
            let mut at = 8usize;
            for _ in 0..count {
                let inner_id = mtp::read_i64(body, at).ok_or(Close)?;
                let len = mtp::read_i32(body, at + 12).ok_or(Close)?;
                let len = usize::try_from(len).map_err(|_| Close)?;
                let start = at + 16;
                let inner = body
                    .get(start..start.checked_add(len).ok_or(Close)?)
                    .ok_or(Close)?;
                collect(inner_id, inner, depth + 1, out)?;
                at = start + len;
            }
        }
        GZIP_PACKED => {
            let mut cur = Cursor::from_slice(&body[4..]);
            let packed = Vec::<u8>::deserialize(&mut cur).map_err(|_| Close)?;
            let mut inflated = Vec::new();
            flate2::read::GzDecoder::new(&packed[..])
                .take(MAX_INFLATED)
                .read_to_end(&mut inflated)
                .map_err(|_| Close)?;
            collect(msg_id, &inflated, depth + 1, out)?;
        }
        MSGS_ACK => {}
        PING | PING_DELAY_DISCONNECT => {
            let ping_id = mtp::read_i64(body, 4).ok_or(Close)?;
            out.push(Inbound::Ping { msg_id, ping_id });
        }
        GET_FUTURE_SALTS => {
            let num = mtp::read_i32(body, 4).ok_or(Close)?;
            out.push(Inbound::FutureSalts { msg_id, num });
        }
        DESTROY_SESSION => {
            let session_id = mtp::read_i64(body, 4).ok_or(Close)?;
            let res =
                tl::enums::DestroySessionRes::DestroySessionNone(tl::types::DestroySessionNone {
                    session_id,
                });
            out.push(Inbound::Answer {
                msg_id,
                body: res.to_bytes(),
            });
        }
        RPC_DROP_ANSWER => out.push(Inbound::Answer {
            msg_id,
            body: tl::enums::RpcDropAnswer::RpcAnswerUnknown.to_bytes(),
        }),
        id if IGNORED_SERVICE.contains(&id) => {}
        _ => out.push(Inbound::Rpc {
            msg_id,
            body: body.to_vec(),
        }),
    }
    Ok(())
}
