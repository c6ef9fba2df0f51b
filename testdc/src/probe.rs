//! A deliberately small MTProto client for load generation and fuzzing: one connection, one
//! request at a time, no retries. The real grammers client allocates ~2 MiB of buffers per
//! connection, far too much to open 10,000 of them next to the server being measured.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::mtp::{self, AuthKey, Direction, Frame, MsgIdGen, SeqGen};

pub struct Probe {
    stream: TcpStream,
    key: AuthKey,
    session_id: i64,
    send_seq: i32,
    recv_seq: i32,
    msg_ids: MsgIdGen,
    seq: SeqGen,
    buf: Vec<u8>,
}

/// What came back for one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    Result(Vec<u8>),
    Error { code: i32, name: String },
}

const RPC_RESULT: u32 = 0xf35c6d01;
const RPC_ERROR: u32 = 0x2144ca19;

impl Probe {
    pub async fn connect(addr: SocketAddr, key: [u8; 256]) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            key: AuthKey::new(key),
            session_id: rand::random(),
            send_seq: 0,
            recv_seq: 0,
            msg_ids: MsgIdGen::default(),
            seq: SeqGen::default(),
            buf: Vec::new(),
        })
    }

    /// Sends raw bytes as-is (for fuzzing the transport).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Encrypts and frames `body` as one content-related message; returns its msg_id.
    pub async fn send_body(&mut self, body: &[u8]) -> io::Result<i64> {
        let msg_id = self.msg_ids.next(false);
        let seq_no = self.seq.next(true);
        let plain = mtp::build_plain(0, self.session_id, msg_id, seq_no, body);
        let enc = mtp::encrypt(&self.key, plain, Direction::ClientToServer);
        let mut out = Vec::new();
        mtp::pack_frame(&mut out, self.send_seq, &enc);
        self.send_seq += 1;
        self.stream.write_all(&out).await?;
        Ok(msg_id)
    }

    /// Sends one request and waits for its `rpc_result`, skipping anything else.
    pub async fn invoke(&mut self, body: &[u8]) -> io::Result<Answer> {
        let msg_id = self.send_body(body).await?;
        loop {
            let plain = self.recv().await?;
            if let Some(answer) = answer_for(&plain, msg_id) {
                return Ok(answer);
            }
        }
    }

    /// Reads one frame and returns the decrypted message body.
    pub async fn recv(&mut self) -> io::Result<Vec<u8>> {
        loop {
            match mtp::cut_frame(&self.buf, self.recv_seq) {
                Frame::Complete { payload, len } => {
                    self.recv_seq += 1;
                    let mut data = self.buf[payload].to_vec();
                    self.buf.drain(..len);
                    let plain = mtp::decrypt(&self.key, &mut data, Direction::ServerToClient)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    let msg = mtp::parse_plain(plain)
                        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad message"))?;
                    return Ok(msg.body.to_vec());
                }
                Frame::Invalid => {
                    let status = mtp::read_i32(&self.buf, 0).unwrap_or(0);
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("invalid frame (transport status {status})"),
                    ));
                }
                Frame::Incomplete(_) => {
                    self.buf.reserve(4096);
                    if self.stream.read_buf(&mut self.buf).await? == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                }
            }
        }
    }

    /// Waits until the server closes the connection (or sends something).
    pub async fn read_until_closed(&mut self) -> io::Result<usize> {
        let mut total = 0;
        let mut scratch = [0u8; 1024];
        loop {
            match self.stream.read(&mut scratch).await {
                Ok(0) => return Ok(total),
                Ok(n) => total += n,
                Err(e) => return Err(e),
            }
        }
    }
}

fn answer_for(body: &[u8], msg_id: i64) -> Option<Answer> {
    if mtp::read_u32(body, 0)? != RPC_RESULT || mtp::read_i64(body, 4)? != msg_id {
        return None;
    }
    let result = &body[12..];
    if mtp::read_u32(result, 0) == Some(RPC_ERROR) {
        let code = mtp::read_i32(result, 4)?;
        let mut cur = grammers_tl_types::Cursor::from_slice(&result[8..]);
        let name = <String as grammers_tl_types::Deserializable>::deserialize(&mut cur)
            .unwrap_or_default();
        return Some(Answer::Error { code, name });
    }
    Some(Answer::Result(result.to_vec()))
}
