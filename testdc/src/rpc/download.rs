//! upload.getFile as Telegram answers it: a photo's or document's bytes by location, at an
//! offset that is a multiple of 4 KiB (1 KiB with `precise`), `limit` a multiple of 4 KiB that
//! divides 1 MiB (at most 1 MiB), a piece never crossing a 1 MiB boundary; fewer bytes at the end.

use std::io::{Read as _, Seek as _};

use grammers_tl_types as tl;

use super::{caller, err, ok, Ctx, Reply};
use crate::world::unix_now;

const MIB: i64 = 1 << 20;

pub(super) fn get_file(ctx: &Ctx<'_>, r: tl::functions::upload::GetFile) -> Reply {
    let file = {
        let w = ctx.shared.world();
        tri!(caller(&w, ctx));
        let (id, access_hash, file_reference, photo) = match &r.location {
            tl::enums::InputFileLocation::InputPhotoFileLocation(l) => {
                (l.id, l.access_hash, &l.file_reference, true)
            }
            tl::enums::InputFileLocation::InputDocumentFileLocation(l) => {
                (l.id, l.access_hash, &l.file_reference, false)
            }
            _ => return err(400, "LOCATION_INVALID"),
        };
        match w.files.get(&id) {
            Some(f) if f.photo == photo && f.access_hash == access_hash => {
                if &f.file_reference != file_reference {
                    return err(400, "FILE_REFERENCE_EXPIRED");
                }
                // A file is read from the DC that keeps it, as Telegram redirects.
                if f.dc_id != ctx.dc_id {
                    return err(303, format!("FILE_MIGRATE_{}", f.dc_id));
                }
                f.clone()
            }
            _ => return err(400, "LOCATION_INVALID"),
        }
    };
    let align = if r.precise { 1024 } else { 4096 };
    let limit = i64::from(r.limit);
    if limit <= 0 || limit > MIB || limit % align != 0 || (!r.precise && MIB % limit != 0) {
        return err(400, "LIMIT_INVALID");
    }
    let last = r.offset.checked_add(limit - 1);
    if r.offset < 0 || r.offset % align != 0 || last.is_none_or(|last| r.offset / MIB != last / MIB)
    {
        return err(400, "OFFSET_INVALID");
    }
    // Read outside the world's lock: the bytes are the file's own.
    let path = ctx.shared.files_dir.join(format!("{:016x}", file.id));
    let mut bytes = Vec::new();
    let read = std::fs::File::open(path).and_then(|mut f| {
        f.seek(std::io::SeekFrom::Start(r.offset.min(file.size) as u64))?;
        f.take(limit as u64).read_to_end(&mut bytes)
    });
    if read.is_err() {
        return err(500, "INTERNAL_SERVER_ERROR");
    }
    let file_type = match file.mime.as_str() {
        "image/jpeg" => tl::enums::storage::FileType::FileJpeg,
        "image/png" => tl::enums::storage::FileType::FilePng,
        "image/gif" => tl::enums::storage::FileType::FileGif,
        "image/webp" => tl::enums::storage::FileType::FileWebp,
        "application/pdf" => tl::enums::storage::FileType::FilePdf,
        _ => tl::enums::storage::FileType::FilePartial,
    };
    ok(tl::enums::upload::File::File(tl::types::upload::File {
        r#type: file_type,
        mtime: unix_now(),
        bytes,
    }))
}
