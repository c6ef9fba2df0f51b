//! What a file is, from its first bytes: a client's Content-Type or file name is a claim, the
//! bytes are the fact (a `.jpg` that is a zip must not go to Telegram as a photo).

use tgfleet_persistence::MediaKind;

/// Telegram takes photos up to 10 MB; a bigger image goes as a document.
pub const PHOTO_MAX: u64 = 10 << 20;

/// What the bytes say a file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sniffed {
    pub mime: String,
    pub kind: MediaKind,
    /// The usual file-name extension of the type (`bin` when unknown).
    pub extension: &'static str,
}

/// The type and kind of a file whose first bytes are `head` and size is `size`.
pub fn sniff(head: &[u8], size: u64) -> Sniffed {
    let Some(found) = infer::get(head) else {
        return Sniffed {
            mime: "application/octet-stream".into(),
            kind: MediaKind::Document,
            extension: "bin",
        };
    };
    let mime = found.mime_type();
    let kind = match mime {
        "image/jpeg" | "image/png" | "image/webp" if size <= PHOTO_MAX => MediaKind::Photo,
        "image/gif" => MediaKind::Animation,
        "video/mp4" | "video/quicktime" | "video/webm" | "video/x-matroska" | "video/x-m4v" => {
            MediaKind::Video
        }
        // Telegram's voice notes are Opus in Ogg.
        "audio/ogg" | "audio/opus" => MediaKind::Voice,
        "audio/mpeg" | "audio/m4a" | "audio/x-flac" | "audio/x-wav" | "audio/aac" => {
            MediaKind::Audio
        }
        _ => MediaKind::Document,
    };
    Sniffed {
        mime: mime.to_owned(),
        kind,
        extension: found.extension(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0";

    #[test]
    fn the_bytes_decide_not_the_name() {
        let png = sniff(PNG, 100);
        assert_eq!(
            (png.mime.as_str(), png.kind),
            ("image/png", MediaKind::Photo)
        );
        assert_eq!(png.extension, "png");
        assert_eq!(sniff(PNG, PHOTO_MAX + 1).kind, MediaKind::Document);
        assert_eq!(sniff(b"GIF89a\x01\0\x01\0", 10).kind, MediaKind::Animation);
        let pdf = sniff(b"%PDF-1.7\n", 10);
        assert_eq!(
            (pdf.mime.as_str(), pdf.kind),
            ("application/pdf", MediaKind::Document)
        );
        let text = sniff(b"just some text", 14);
        assert_eq!(text.mime, "application/octet-stream");
        assert_eq!(text.extension, "bin");
    }
}
