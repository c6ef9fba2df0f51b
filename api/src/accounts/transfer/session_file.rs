//! Telethon and Pyrogram `.session` files: SQLite databases with a `sessions` table. The CLI
//! reads them from disk (read-only); an import item of format `session_file` carries one as
//! base64 and is read in memory (`sqlite3_deserialize`), so an uploaded key never lands on disk.
//!
//! * Telethon: `sessions(dc_id, server_address, port, auth_key, takeout_id)`.
//! * Pyrogram: `sessions(dc_id, [api_id,] test_mode, auth_key, date, user_id, is_bot)`.

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteOwnedBuf};
use sqlx::{ConnectOptions, Row};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::str::FromStr;
use tgfleet_supervision::account::formats::{encode_tgfleet, parse_tgfleet};
use tgfleet_supervision::account::ForeignSession;
use zeroize::Zeroizing;

/// The import format whose `session` is a whole `.session` file in base64.
pub const FORMAT: &str = "session_file";

/// Reads one `.session` file on disk; every problem is one line.
pub async fn read_path(path: &Path) -> Result<ForeignSession, String> {
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .map_err(|e| format!("cannot open as SQLite: {e}"))?;
    read_sessions(&mut conn).await
}

/// Reads a `.session` file sent as base64, in memory.
pub async fn read_base64(text: &str) -> Result<ForeignSession, String> {
    use base64::Engine;
    let bytes = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| "session is not base64 (a session_file is the file's bytes in base64)")?,
    );
    if !bytes.starts_with(b"SQLite format 3\0") {
        return Err("not a SQLite database: not a Telethon or Pyrogram session file".into());
    }
    let mut conn = SqliteConnectOptions::from_str("sqlite::memory:")
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("cannot open an in-memory database: {e}"))?;
    let buf = SqliteOwnedBuf::try_from(&bytes[..]).map_err(|e| e.to_string())?;
    conn.deserialize(None, buf, true)
        .await
        .map_err(|e| format!("cannot open as SQLite: {e}"))?;
    read_sessions(&mut conn).await
}

async fn read_sessions(conn: &mut SqliteConnection) -> Result<ForeignSession, String> {
    let columns: Vec<String> = sqlx::query("SELECT name FROM pragma_table_info('sessions')")
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| format!("not a session database: {e}"))?
        .iter()
        .filter_map(|r| r.try_get::<String, _>(0).ok())
        .collect();
    if columns.is_empty() {
        return Err("no `sessions` table: not a Telethon or Pyrogram session file".into());
    }
    let has = |c: &str| columns.iter().any(|x| x == c);
    if !has("dc_id") || !has("auth_key") {
        return Err("the `sessions` table lacks dc_id or auth_key".into());
    }
    let row = sqlx::query("SELECT * FROM sessions WHERE auth_key IS NOT NULL LIMIT 1")
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| format!("reading `sessions`: {e}"))?
        .ok_or("the `sessions` table has no auth key (the session never logged in)")?;
    let dc_id: i64 = row.try_get("dc_id").map_err(|e| format!("dc_id: {e}"))?;
    let key = Zeroizing::new(
        row.try_get::<Vec<u8>, _>("auth_key")
            .map_err(|e| format!("auth_key: {e}"))?,
    );
    let auth_key: [u8; 256] = key
        .as_slice()
        .try_into()
        .map_err(|_| format!("the auth key has {} bytes, not 256", key.len()))?;
    if !(1..=1000).contains(&dc_id) {
        return Err(format!("DC id {dc_id} is out of range"));
    }
    let mut session = ForeignSession {
        dc_id: dc_id as i32,
        addr: None,
        auth_key,
        user_id: None,
        bot: None,
    };
    if has("server_address") {
        // Telethon
        let ip: String = row
            .try_get("server_address")
            .map_err(|e| format!("server_address: {e}"))?;
        let port: i64 = row.try_get("port").map_err(|e| format!("port: {e}"))?;
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| "server_address is not an IP address".to_string())?;
        let port = u16::try_from(port).map_err(|_| format!("port {port} is out of range"))?;
        session.addr = Some(SocketAddr::new(ip, port));
    } else {
        // Pyrogram
        if has("test_mode") && row.try_get::<i64, _>("test_mode").unwrap_or(0) != 0 {
            return Err("a session for Telegram's test servers".into());
        }
        if has("user_id") {
            session.user_id = row.try_get::<Option<i64>, _>("user_id").ok().flatten();
        }
        if has("is_bot") {
            session.bot = row
                .try_get::<Option<i64>, _>("is_bot")
                .ok()
                .flatten()
                .map(|b| b != 0);
        }
    }
    // Round-trip through the strict parser, so a file gets the same checks as a string.
    let text = Zeroizing::new(encode_tgfleet(&session));
    parse_tgfleet(&text).map_err(|e| e.message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Connection;

    async fn db(path: &Path, schema: &str, insert: &str, key: Vec<u8>) {
        let mut conn = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .connect()
            .await
            .unwrap();
        sqlx::query(schema).execute(&mut conn).await.unwrap();
        sqlx::query(insert)
            .bind(key)
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }

    fn key() -> Vec<u8> {
        (0..256).map(|i| (i % 251 + 1) as u8).collect()
    }

    fn base64_of(path: &Path) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(path).unwrap())
    }

    #[tokio::test]
    async fn telethon_and_pyrogram_files_are_read_from_disk_and_from_base64() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("t.session");
        db(
            &t,
            "CREATE TABLE sessions (dc_id integer primary key, server_address text, port integer, auth_key blob, takeout_id integer)",
            "INSERT INTO sessions VALUES (2, '149.154.167.51', 443, ?, NULL)",
            key(),
        )
        .await;
        for s in [
            read_path(&t).await.unwrap(),
            read_base64(&base64_of(&t)).await.unwrap(),
        ] {
            assert_eq!(s.dc_id, 2);
            assert_eq!(s.addr, Some("149.154.167.51:443".parse().unwrap()));
            assert_eq!(s.auth_key.to_vec(), key());
        }

        let p = dir.path().join("p.session");
        db(
            &p,
            "CREATE TABLE sessions (dc_id integer primary key, api_id integer, test_mode integer, auth_key blob, date integer not null, user_id integer, is_bot integer)",
            "INSERT INTO sessions VALUES (4, 1, 0, ?, 0, 5000000001, 0)",
            key(),
        )
        .await;
        for s in [
            read_path(&p).await.unwrap(),
            read_base64(&base64_of(&p)).await.unwrap(),
        ] {
            assert_eq!(
                (s.dc_id, s.user_id, s.bot),
                (4, Some(5_000_000_001), Some(false))
            );
        }
    }

    #[tokio::test]
    async fn malformed_files_are_one_line_errors() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.session");
        std::fs::write(&junk, b"definitely not sqlite, just bytes \x00\x01\x02").unwrap();
        assert!(read_path(&junk).await.is_err());
        let empty = dir.path().join("empty.session");
        std::fs::write(&empty, b"").unwrap();
        assert!(read_path(&empty).await.unwrap_err().contains("sessions"));
        let short = dir.path().join("short.session");
        db(
            &short,
            "CREATE TABLE sessions (dc_id integer primary key, server_address text, port integer, auth_key blob)",
            "INSERT INTO sessions VALUES (2, '1.2.3.4', 443, ?)",
            vec![1, 2, 3],
        )
        .await;
        assert!(read_path(&short).await.unwrap_err().contains("3 bytes"));
        assert!(read_base64(&base64_of(&short))
            .await
            .unwrap_err()
            .contains("3 bytes"));
        let missing = dir.path().join("missing.session");
        assert!(read_path(&missing).await.is_err());
        assert!(read_base64("not base64!")
            .await
            .unwrap_err()
            .contains("base64"));
        assert!(read_base64("").await.is_err());
        // Random bytes of any length, on disk or behind a SQLite header: an error, never a panic.
        for n in [1usize, 100, 4096, 10_000] {
            let f = dir.path().join(format!("r{n}.session"));
            let bytes: Vec<u8> = (0..n).map(|i| (i * 31 + 7) as u8).collect();
            std::fs::write(&f, &bytes).unwrap();
            assert!(read_path(&f).await.is_err());
            let mut forged = b"SQLite format 3\0".to_vec();
            forged.extend_from_slice(&bytes);
            use base64::Engine;
            let forged = base64::engine::general_purpose::STANDARD.encode(forged);
            assert!(read_base64(&forged).await.is_err());
        }
    }
}
