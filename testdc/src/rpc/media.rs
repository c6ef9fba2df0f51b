//! Files and media as Telegram takes them: parts (`upload.saveFilePart` up to 10 MB,
//! `saveBigFilePart` above, 512 KiB at most, every part but the last the same size, a multiple of
//! 1 KiB dividing 512 KiB), assembled and hashed when a request names the file; uploadMedia
//! turning a file into a photo or document; sendMedia and sendMultiMedia (albums, one grouped_id)
//! sending one by reference, whose file reference must be the current one.

use std::io::Write as _;

use grammers_tl_types::{self as tl, Serializable as _};
use sha2::Digest as _;

use super::{
    caller, entities_of, err, ok, post, reply_to_of, resolve_input_peer, Ctx, Outgoing, Reply,
};
use crate::tlb;
use crate::world::{random_i64, unix_now, FileRec, PeerRef, Upload, World};

/// Telegram's largest part.
const PART_MAX: usize = 512 << 10;
/// Files above this must be sent as big files.
const SMALL_FILE_MAX: u64 = 10 << 20;
/// Telegram's most parts per file.
const PARTS_MAX: i32 = 4000;
/// Photos above this are refused (they go as documents).
const PHOTO_MAX: u64 = 10 << 20;
const CAPTION_MAX: usize = 1024;
/// An album's most items.
const ALBUM_MAX: usize = 10;

pub(super) fn save_part(
    ctx: &Ctx<'_>,
    file_id: i64,
    part: i32,
    big_total: Option<i32>,
    bytes: Vec<u8>,
) -> Reply {
    ctx.shared
        .file_parts
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut w = ctx.shared.world();
    let me = tri!(caller(&w, ctx));
    if bytes.is_empty() {
        return err(400, "FILE_PART_EMPTY");
    }
    if bytes.len() > PART_MAX {
        return err(400, "FILE_PART_TOO_BIG");
    }
    if let Some(total) = big_total {
        if !(1..=PARTS_MAX).contains(&total) {
            return err(400, "FILE_PARTS_INVALID");
        }
        if part >= total {
            return err(400, "FILE_PART_INVALID");
        }
    }
    if !(0..PARTS_MAX).contains(&part) {
        return err(400, "FILE_PART_INVALID");
    }
    let key = (me, file_id);
    let up = match w.uploads.entry(key) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => {
            e.insert(tri!(new_upload(ctx, file_id, big_total)))
        }
    };
    if up.big_total != big_total {
        return err(400, "FILE_PARTS_INVALID");
    }
    tri!(accept_part(up, part, bytes));
    ok(true)
}

fn new_upload(ctx: &Ctx<'_>, file_id: i64, big_total: Option<i32>) -> Result<Upload, Reply> {
    let dir = &ctx.shared.files_dir;
    let spool_path = dir.join(format!("upload-{file_id:016x}-{:016x}", random_i64()));
    let spool = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::File::create(&spool_path))
        .map_err(|e| {
            tracing::error!(error = %e, "testdc cannot spool an upload");
            err(500, "INTERNAL_SERVER_ERROR")
        })?;
    Ok(Upload {
        big_total,
        pending: Default::default(),
        next: 0,
        part_size: 0,
        short_part: None,
        hasher: sha2::Sha256::new(),
        size: 0,
        spool,
        spool_path,
    })
}

/// Keeps a part: written (and hashed) when it is the next in order, held until then otherwise.
/// A part may be sent again (a retry): the same bytes are no error.
fn accept_part(up: &mut Upload, part: i32, bytes: Vec<u8>) -> Result<(), Reply> {
    if part < up.next {
        return Ok(()); // a repeat of a part already written
    }
    if up.part_size == 0 {
        up.part_size = bytes.len();
    }
    if bytes.len() > up.part_size {
        // A part larger than one seen before: the earlier one was short, or the sizes differ.
        return Err(err(400, "FILE_PART_SIZE_CHANGED"));
    }
    if bytes.len() < up.part_size {
        match up.short_part {
            Some(p) if p != part => return Err(err(400, "FILE_PART_SIZE_CHANGED")),
            _ => up.short_part = Some(part),
        }
    }
    up.pending.insert(part, bytes);
    while let Some(bytes) = up.pending.remove(&up.next) {
        up.spool.write_all(&bytes).map_err(|e| {
            tracing::error!(error = %e, "testdc cannot spool an upload");
            err(500, "INTERNAL_SERVER_ERROR")
        })?;
        up.hasher.update(&bytes);
        up.size += bytes.len() as u64;
        up.next += 1;
    }
    Ok(())
}

/// The uploaded file an InputFile names, complete: its bytes' hash and size. The upload is
/// consumed (a file is used once; what it became is what is sent again).
fn assemble(
    ctx: &Ctx<'_>,
    w: &mut World,
    me: i64,
    file: &tl::enums::InputFile,
) -> Result<(String, u64, String, std::path::PathBuf), Reply> {
    let (id, parts, name, big) = match file {
        tl::enums::InputFile::File(f) => (f.id, f.parts, f.name.clone(), false),
        tl::enums::InputFile::Big(f) => (f.id, f.parts, f.name.clone(), true),
        _ => return Err(err(400, "FILE_PARTS_INVALID")),
    };
    let Some(up) = w.uploads.get(&(me, id)) else {
        return Err(err(400, "FILE_PART_0_MISSING"));
    };
    if big != up.big_total.is_some() || up.big_total.is_some_and(|t| t != parts) {
        return Err(err(400, "FILE_PARTS_INVALID"));
    }
    if up.next < parts {
        return Err(err(400, format!("FILE_PART_{}_MISSING", up.next)));
    }
    if up.next > parts || !up.pending.is_empty() {
        return Err(err(400, "FILE_PARTS_INVALID"));
    }
    // Telegram's part rule: a multiple of 1 KiB that divides 512 KiB, every part but the last.
    let ps = up.part_size;
    if parts > 1 && (!ps.is_multiple_of(1024) || !PART_MAX.is_multiple_of(ps)) {
        return Err(err(400, "FILE_PART_SIZE_INVALID"));
    }
    if up.short_part.is_some_and(|p| p != parts - 1) {
        return Err(err(400, "FILE_PART_SIZE_CHANGED"));
    }
    if !big && up.size > SMALL_FILE_MAX {
        return Err(err(400, "FILE_PARTS_INVALID"));
    }
    let Some(mut up) = w.uploads.remove(&(me, id)) else {
        return Err(err(500, "INTERNAL_SERVER_ERROR"));
    };
    let _ = up.spool.flush();
    let sha = hex::encode(std::mem::take(&mut up.hasher).finalize());
    let _ = ctx;
    Ok((sha, up.size, name, up.spool_path.clone()))
}

/// What an InputMedia names: a new file made of an upload, or one held already by reference.
fn file_of(
    ctx: &Ctx<'_>,
    w: &mut World,
    me: i64,
    media: &tl::enums::InputMedia,
) -> Result<FileRec, Reply> {
    use tl::enums::InputMedia as M;
    let (file, photo, mime, attributes, force_file) = match media {
        M::UploadedPhoto(p) => (&p.file, true, String::new(), Vec::new(), false),
        M::UploadedDocument(d) => (
            &d.file,
            false,
            d.mime_type.clone(),
            d.attributes.clone(),
            d.force_file,
        ),
        M::Photo(p) => {
            return match &p.id {
                tl::enums::InputPhoto::Photo(p) => {
                    by_reference(w, p.id, p.access_hash, &p.file_reference, true)
                }
                tl::enums::InputPhoto::Empty => Err(err(400, "MEDIA_EMPTY")),
            }
        }
        M::Document(d) => {
            return match &d.id {
                tl::enums::InputDocument::Document(d) => {
                    by_reference(w, d.id, d.access_hash, &d.file_reference, false)
                }
                tl::enums::InputDocument::Empty => Err(err(400, "MEDIA_EMPTY")),
            }
        }
        _ => return Err(err(400, "MEDIA_INVALID")),
    };
    let (sha256, size, name, spool) = assemble(ctx, w, me, file)?;
    let mut head = [0u8; 16];
    let head_len = std::fs::File::open(&spool)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .unwrap_or(0);
    let head = &head[..head_len];
    let (mime, kind) = if photo {
        // Telegram decodes a photo; testdc checks it is one of the formats it takes.
        let mime = if head.starts_with(b"\xff\xd8\xff") {
            "image/jpeg"
        } else if head.starts_with(b"\x89PNG") {
            "image/png"
        } else if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
            "image/webp"
        } else {
            let _ = std::fs::remove_file(&spool);
            return Err(err(400, "IMAGE_PROCESS_FAILED"));
        };
        if size > PHOTO_MAX {
            let _ = std::fs::remove_file(&spool);
            return Err(err(400, "PHOTO_SAVE_FILE_INVALID"));
        }
        (mime.to_owned(), "photo".to_owned())
    } else {
        if mime.is_empty() {
            let _ = std::fs::remove_file(&spool);
            return Err(err(400, "MIME_INVALID"));
        }
        let kind = if force_file {
            "document"
        } else {
            attributes
                .iter()
                .find_map(|a| match a {
                    tl::enums::DocumentAttribute::Video(_) => Some("video"),
                    tl::enums::DocumentAttribute::Audio(a) if a.voice => Some("voice"),
                    tl::enums::DocumentAttribute::Audio(_) => Some("audio"),
                    tl::enums::DocumentAttribute::Animated => Some("animation"),
                    _ => None,
                })
                .unwrap_or("document")
        };
        (mime, kind.to_owned())
    };
    let file_name = attributes
        .iter()
        .find_map(|a| match a {
            tl::enums::DocumentAttribute::Filename(f) => Some(f.file_name.clone()),
            _ => None,
        })
        .unwrap_or(name);
    let id = loop {
        let id = random_i64();
        if id != 0 && !w.files.contains_key(&id) {
            break id;
        }
    };
    let path = ctx.shared.files_dir.join(format!("{id:016x}"));
    if std::fs::rename(&spool, &path).is_err() {
        return Err(err(500, "INTERNAL_SERVER_ERROR"));
    }
    let rec = FileRec {
        id,
        access_hash: random_i64(),
        file_reference: new_reference(),
        photo,
        sha256,
        size: size as i64,
        mime,
        file_name,
        kind,
        date: unix_now(),
        owner: me,
        dc_id: ctx.dc_id,
    };
    w.files.insert(id, rec.clone());
    Ok(rec)
}

fn by_reference(
    w: &World,
    id: i64,
    access_hash: i64,
    file_reference: &[u8],
    photo: bool,
) -> Result<FileRec, Reply> {
    match w.files.get(&id) {
        Some(f) if f.photo == photo && f.access_hash == access_hash => {
            if f.file_reference != file_reference {
                return Err(err(400, "FILE_REFERENCE_EXPIRED"));
            }
            Ok(f.clone())
        }
        _ if photo => Err(err(400, "PHOTO_INVALID")),
        _ => Err(err(400, "DOCUMENT_INVALID")),
    }
}

pub(crate) fn new_reference() -> Vec<u8> {
    let mut r = vec![0u8; 16];
    rand::Rng::fill(&mut rand::thread_rng(), &mut r[..]);
    r
}

pub(super) fn upload_media(ctx: &Ctx<'_>, r: tl::functions::messages::UploadMedia) -> Reply {
    let mut w = ctx.shared.world();
    let me = tri!(caller(&w, ctx));
    tri!(resolve_input_peer(&w, me, &r.peer));
    let file = tri!(file_of(ctx, &mut w, me, &r.media));
    ok(tlb::message_media(&file))
}

pub(super) fn send_media(ctx: &Ctx<'_>, r: tl::functions::messages::SendMedia) -> Reply {
    let push;
    let reply = {
        let mut w = ctx.shared.world();
        let me = tri!(caller(&w, ctx));
        if let Some(previous) = w.sent.get(&(me, r.random_id)) {
            return Reply::Result(previous.clone());
        }
        if r.message.chars().count() > CAPTION_MAX {
            return err(400, "MEDIA_CAPTION_TOO_LONG");
        }
        let to = tri!(resolve_input_peer(&w, me, &r.peer));
        tri!(may_post(&w, me, to));
        let entities = tri!(entities_of(
            &w,
            me,
            &r.message,
            r.entities.as_deref().unwrap_or(&[])
        ));
        let reply_to = tri!(reply_to_of(&w, me, to, r.reply_to.as_ref()));
        let file = tri!(file_of(ctx, &mut w, me, &r.media));
        let posted = tri!(post(
            &mut w,
            me,
            to,
            Outgoing {
                random_id: r.random_id,
                text: r.message,
                entities,
                reply_to,
                silent: r.silent,
                no_webpage: false,
                media: Some(file),
                grouped_id: None,
            },
        ));
        push = posted.pushes;
        if let PeerRef::Channel(cid) = to {
            super::answered(&mut w, me, cid, posted.pts);
        }
        let bytes = tl::enums::Updates::Updates(tl::types::Updates {
            updates: vec![
                tl::types::UpdateMessageId {
                    id: posted.id,
                    random_id: r.random_id,
                }
                .into(),
                posted.update,
            ],
            users: posted.users,
            chats: posted.chats,
            date: posted.date,
            seq: 0,
        })
        .to_bytes();
        w.sent.insert((me, r.random_id), bytes.clone());
        Reply::Result(bytes)
    };
    ctx.shared.deliver(push);
    reply
}

pub(super) fn send_multi_media(ctx: &Ctx<'_>, r: tl::functions::messages::SendMultiMedia) -> Reply {
    let mut pushes = Vec::new();
    let reply = {
        let mut w = ctx.shared.world();
        let me = tri!(caller(&w, ctx));
        let items: Vec<tl::types::InputSingleMedia> = r
            .multi_media
            .into_iter()
            .map(|tl::enums::InputSingleMedia::Media(m)| m)
            .collect();
        let Some(first) = items.first() else {
            return err(400, "MULTI_MEDIA_TOO_LONG");
        };
        if let Some(previous) = w.sent.get(&(me, first.random_id)) {
            return Reply::Result(previous.clone());
        }
        if !(2..=ALBUM_MAX).contains(&items.len()) {
            return err(400, "MULTI_MEDIA_TOO_LONG");
        }
        let to = tri!(resolve_input_peer(&w, me, &r.peer));
        tri!(may_post(&w, me, to));
        let reply_to = tri!(reply_to_of(&w, me, to, r.reply_to.as_ref()));
        // Everything is checked before anything is stored: an album arrives whole or not at all.
        let mut checked = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if item.message.chars().count() > CAPTION_MAX {
                return err(400, "MEDIA_CAPTION_TOO_LONG");
            }
            let entities = tri!(entities_of(
                &w,
                me,
                &item.message,
                item.entities.as_deref().unwrap_or(&[])
            ));
            // An album takes files sent by reference (uploadMedia first), as Telegram's does.
            let file = match &item.media {
                tl::enums::InputMedia::Photo(_) | tl::enums::InputMedia::Document(_) => {
                    match file_of(ctx, &mut w, me, &item.media) {
                        Ok(f) => f,
                        Err(Reply::Error(code, name)) if name == "FILE_REFERENCE_EXPIRED" => {
                            return err(code, format!("FILE_REFERENCE_{i}_EXPIRED"))
                        }
                        Err(reply) => return reply,
                    }
                }
                _ => return err(400, "MEDIA_INVALID"),
            };
            checked.push((item.random_id, item.message.clone(), entities, file));
        }
        let group = |f: &FileRec| match f.kind.as_str() {
            "photo" | "video" => Some("visual"),
            "document" => Some("document"),
            "audio" => Some("audio"),
            _ => None,
        };
        let first_group = group(&checked[0].3);
        if first_group.is_none() || checked.iter().any(|c| group(&c.3) != first_group) {
            return err(400, "MEDIA_INVALID");
        }
        let grouped_id = random_i64();
        let mut updates = Vec::new();
        let (mut users, mut chats, mut date) = (Vec::new(), Vec::new(), 0);
        for (i, (random_id, text, entities, file)) in checked.into_iter().enumerate() {
            let posted = tri!(post(
                &mut w,
                me,
                to,
                Outgoing {
                    random_id,
                    text,
                    entities,
                    reply_to: if i == 0 { reply_to } else { None },
                    silent: r.silent,
                    no_webpage: false,
                    media: Some(file),
                    grouped_id: Some(grouped_id),
                },
            ));
            updates.push(
                tl::types::UpdateMessageId {
                    id: posted.id,
                    random_id,
                }
                .into(),
            );
            updates.push(posted.update);
            if let PeerRef::Channel(cid) = to {
                super::answered(&mut w, me, cid, posted.pts);
            }
            (users, chats, date) = (posted.users, posted.chats, posted.date);
            pushes.extend(posted.pushes);
        }
        let bytes = tl::enums::Updates::Updates(tl::types::Updates {
            updates,
            users,
            chats,
            date,
            seq: 0,
        })
        .to_bytes();
        w.sent.insert((me, first.random_id), bytes.clone());
        Reply::Result(bytes)
    };
    ctx.shared.deliver(pushes);
    reply
}

/// Media needs the right to post where text does: checked before an upload is consumed.
fn may_post(w: &World, me: i64, to: PeerRef) -> Result<(), Reply> {
    match to {
        PeerRef::Channel(cid) => match w.channels.get(&cid) {
            Some(c) if c.broadcast && !c.may(me, "post_messages") => {
                Err(err(403, "CHAT_WRITE_FORBIDDEN"))
            }
            Some(_) => Ok(()),
            None => Err(err(400, "CHANNEL_INVALID")),
        },
        PeerRef::User(_) => Ok(()),
    }
}

/// Gives every file a new file reference: the ones clients hold are FILE_REFERENCE_EXPIRED,
/// and a message fetched again carries the new one.
pub fn expire_file_references(w: &mut World) -> usize {
    for f in w.files.values_mut() {
        f.file_reference = new_reference();
    }
    let current = |m: &mut Option<FileRec>, files: &std::collections::HashMap<i64, FileRec>| {
        if let Some(held) = m {
            if let Some(f) = files.get(&held.id) {
                held.file_reference = f.file_reference.clone();
            }
        }
    };
    for c in w.channels.values_mut() {
        for m in &mut c.history {
            current(&mut m.media, &w.files);
        }
    }
    for u in w.users.values_mut() {
        for m in &mut u.history {
            current(&mut m.media, &w.files);
        }
    }
    w.files.len()
}
