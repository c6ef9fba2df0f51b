//! A testdc that outlives its process: the world (users, keys, logins, pending codes, messages)
//! and the DC addresses, kept in one JSON file in a state directory.
//!
//! Sessions remember the DC addresses and auth keys they were given, so a DC that came back on
//! other ports, or without their keys, would leave every account reconnecting for ever. The file
//! is replaced atomically (temp file, fsync, rename), so a kill -9 leaves the previous or the new
//! version, never half of one. Faults are not kept: they belong to the run that injected them.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::mtp::KeyId;
use crate::world::{
    Binding, ChannelRec, FileRec, PeerRef, PendingCode, StoredMessage, UserRec, World,
};

const FILE: &str = "world.json";
/// Bumped when the layout changes incompatibly; an unknown version is refused, not guessed at.
const VERSION: u32 = 1;

pub struct Persist {
    path: PathBuf,
    writer: Mutex<()>,
}

impl Persist {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One writer at a time, so a later snapshot is never overtaken by an earlier one.
    pub fn lock(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn write(&self, bytes: &[u8]) -> anyhow::Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        {
            let mut f = private_file(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            // The rename itself must reach the disk too.
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

/// The file holds auth keys: only the owner may read it.
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

/// What a state directory held at start-up.
pub struct Loaded {
    pub addrs: Vec<(i32, SocketAddr)>,
    pub keys: Vec<[u8; 256]>,
    pub world: World,
}

/// Opens (creating it, private) the state directory; `Ok(None)` inside when it holds no world yet.
pub fn open(dir: &Path) -> anyhow::Result<(Persist, Option<Loaded>)> {
    create_private_dir(dir)
        .with_context(|| format!("creating the testdc state directory {}", dir.display()))?;
    let path = dir.join(FILE);
    let persist = Persist {
        path: path.clone(),
        writer: Mutex::new(()),
    };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((persist, None)),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let loaded = decode(&bytes).with_context(|| {
        format!(
            "{} is unreadable (move it away to start an empty testdc)",
            path.display()
        )
    })?;
    Ok((persist, Some(loaded)))
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

#[derive(Serialize)]
struct SnapshotRef<'a> {
    version: u32,
    dcs: &'a [(i32, SocketAddr)],
    keys: Vec<String>,
    users: Vec<&'a UserRec>,
    phones: &'a HashMap<String, i64>,
    usernames: &'a HashMap<String, PeerRef>,
    bot_tokens: &'a HashMap<String, i64>,
    channels: Vec<&'a ChannelRec>,
    bindings: Vec<(&'a KeyId, &'a i32, &'a Binding)>,
    codes: &'a HashMap<String, PendingCode>,
    last_codes: &'a HashMap<String, String>,
    exported_auths: Vec<(&'a i64, String, &'a i32)>,
    sent: Vec<(&'a i64, &'a i64, String)>,
    messages: &'a [StoredMessage],
    files: Vec<&'a FileRec>,
    next_user_id: i64,
    next_channel_id: i64,
}

#[derive(Deserialize)]
struct Snapshot {
    version: u32,
    dcs: Vec<(i32, SocketAddr)>,
    keys: Vec<String>,
    users: Vec<UserRec>,
    phones: HashMap<String, i64>,
    usernames: HashMap<String, PeerRef>,
    bot_tokens: HashMap<String, i64>,
    channels: Vec<ChannelRec>,
    bindings: Vec<(KeyId, i32, Binding)>,
    codes: HashMap<String, PendingCode>,
    last_codes: HashMap<String, String>,
    exported_auths: Vec<(i64, String, i32)>,
    sent: Vec<(i64, i64, String)>,
    messages: Vec<StoredMessage>,
    #[serde(default)]
    files: Vec<FileRec>,
    next_user_id: i64,
    next_channel_id: i64,
}

pub fn encode(dcs: &[(i32, SocketAddr)], keys: &[[u8; 256]], w: &World) -> anyhow::Result<Vec<u8>> {
    let snap = SnapshotRef {
        version: VERSION,
        dcs,
        keys: keys.iter().map(hex::encode).collect(),
        users: w.users.values().collect(),
        phones: &w.phones,
        usernames: &w.usernames,
        bot_tokens: &w.bot_tokens,
        channels: w.channels.values().collect(),
        bindings: w.bindings.iter().map(|((k, dc), b)| (k, dc, b)).collect(),
        codes: &w.codes,
        last_codes: &w.last_codes,
        exported_auths: w
            .exported_auths
            .iter()
            .map(|((user, bytes), dc)| (user, hex::encode(bytes), dc))
            .collect(),
        sent: w
            .sent
            .iter()
            .map(|((me, random_id), bytes)| (me, random_id, hex::encode(bytes)))
            .collect(),
        messages: &w.messages,
        files: w.files.values().collect(),
        next_user_id: w.next_user_id,
        next_channel_id: w.next_channel_id,
    };
    Ok(serde_json::to_vec(&snap)?)
}

fn decode(bytes: &[u8]) -> anyhow::Result<Loaded> {
    let s: Snapshot = serde_json::from_slice(bytes)?;
    anyhow::ensure!(
        s.version == VERSION,
        "layout version {} (this testdc reads {VERSION})",
        s.version
    );
    let keys = s
        .keys
        .iter()
        .map(|k| {
            hex::decode(k)
                .ok()
                .and_then(|b| <[u8; 256]>::try_from(b).ok())
                .context("an auth key is not 256 bytes of hex")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut w = World::new();
    w.users = s.users.into_iter().map(|u| (u.id, u)).collect();
    w.phones = s.phones;
    w.usernames = s.usernames;
    w.bot_tokens = s.bot_tokens;
    w.channels = s.channels.into_iter().map(|c| (c.id, c)).collect();
    w.bindings = s
        .bindings
        .into_iter()
        .map(|(k, dc, b)| ((k, dc), b))
        .collect();
    w.codes = s.codes;
    w.last_codes = s.last_codes;
    for (user, bytes, dc) in s.exported_auths {
        w.exported_auths
            .insert((user, hex::decode(bytes).context("exported auth")?), dc);
    }
    for (me, random_id, bytes) in s.sent {
        w.sent
            .insert((me, random_id), hex::decode(bytes).context("sent message")?);
    }
    w.messages = s.messages;
    w.files = s.files.into_iter().map(|f| (f.id, f)).collect();
    w.next_user_id = s.next_user_id;
    w.next_channel_id = s.next_channel_id;
    w.settle_update_logs();
    Ok(Loaded {
        addrs: s.dcs,
        keys,
        world: w,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::updates::{Change, UpdateLog};
    use crate::UserSpec;

    #[test]
    fn update_logs_survive_a_restart_and_a_world_without_them_gets_fresh_ones() {
        let mut w = World::new();
        let id = w.add_user(UserSpec::new("+15550009001", "Logged"));
        let u = w.users.get_mut(&id).unwrap();
        u.log(1, 100, Change::NewMessage { id: 1 });
        u.log(1, 101, Change::EditMessage { id: 1 });
        u.told(7, 3);
        let cid = w.create_channel(id, "C", true);
        w.channels
            .get_mut(&cid)
            .unwrap()
            .log(2, 102, Change::DeleteMessages { ids: vec![4, 5] });
        let bytes = encode(&[], &[], &w).unwrap();
        let back = decode(&bytes).unwrap().world;
        let u = &back.users[&id];
        assert_eq!(u.updates, w.users[&id].updates);
        assert_eq!(u.pts, 3);
        assert_eq!(u.channel_pts_told.get(&7), Some(&3));
        assert_eq!(back.channels[&cid].updates.pts(), 3);

        // A world written before boxes had logs: its boxes start logging where they stand.
        let mut old: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        for u in old["users"].as_array_mut().unwrap() {
            u.as_object_mut().unwrap().remove("updates");
        }
        let back = decode(&serde_json::to_vec(&old).unwrap()).unwrap().world;
        assert_eq!(back.users[&id].updates, UpdateLog::starting_at(3));
    }
}
