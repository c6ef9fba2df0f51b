//! A message of a chat as the API shows it (history): its text with the formatting as entities
//! (UTF-16 offsets, as Telegram counts), and what Telegram says about it.

use grammers_tl_types as tl;
use serde::Serialize;

/// One formatting entity: `type` is the Bot API's name (`bold`, `text_link`, `text_mention`…).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entity {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub offset: i32,
    pub length: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    pub id: i32,
    /// Unix seconds.
    pub date: i32,
    /// Sent by this account.
    pub out: bool,
    pub text: String,
    pub entities: Vec<Entity>,
    pub reply_to: Option<i32>,
    /// Shared by the messages of one album.
    pub grouped_id: Option<i64>,
    pub views: Option<i32>,
    pub forwards: Option<i32>,
    pub edit_date: Option<i32>,
    pub pinned: bool,
    /// Its photo or document, described (its bytes: `…/messages/{msg}/media`).
    pub media: Option<MediaInfo>,
}

/// What a message's photo or document is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MediaInfo {
    /// `photo`, `video`, `animation`, `audio`, `voice`, `document`, or `other` for media
    /// that is no file (a poll, a location, a web page…).
    pub kind: &'static str,
    pub mime: Option<String>,
    pub size: Option<i64>,
    pub file_name: Option<String>,
}

/// A message's media as the API describes it.
pub(crate) fn media_info(media: &tl::enums::MessageMedia) -> Option<MediaInfo> {
    use tl::enums::MessageMedia as M;
    let other = MediaInfo {
        kind: "other",
        mime: None,
        size: None,
        file_name: None,
    };
    Some(match media {
        M::Empty => return None,
        M::Photo(p) => match p.photo.as_ref()? {
            tl::enums::Photo::Photo(photo) => MediaInfo {
                kind: "photo",
                mime: Some("image/jpeg".into()),
                size: photo
                    .sizes
                    .iter()
                    .filter_map(|s| match s {
                        tl::enums::PhotoSize::Size(s) => Some(i64::from(s.size)),
                        tl::enums::PhotoSize::Progressive(s) => {
                            s.sizes.iter().copied().max().map(i64::from)
                        }
                        _ => None,
                    })
                    .max(),
                file_name: None,
            },
            tl::enums::Photo::Empty(_) => return None,
        },
        M::Document(d) => match d.document.as_ref()? {
            tl::enums::Document::Document(doc) => {
                let mut kind = "document";
                let mut file_name = None;
                for a in &doc.attributes {
                    match a {
                        tl::enums::DocumentAttribute::Filename(f) => {
                            file_name = Some(f.file_name.clone())
                        }
                        tl::enums::DocumentAttribute::Video(_) if kind == "document" => {
                            kind = "video"
                        }
                        tl::enums::DocumentAttribute::Audio(a) => {
                            kind = if a.voice { "voice" } else { "audio" }
                        }
                        tl::enums::DocumentAttribute::Animated => kind = "animation",
                        _ => {}
                    }
                }
                MediaInfo {
                    kind,
                    mime: Some(doc.mime_type.clone()),
                    size: Some(doc.size),
                    file_name,
                }
            }
            tl::enums::Document::Empty(_) => return None,
        },
        _ => other,
    })
}

/// The entities of text as a caller wrote it, by the names a chat's history uses: what the
/// message will look like once Telegram has it.
pub fn entities_of(text: &crate::formatting::FormattedText) -> Vec<Entity> {
    text.entities.iter().filter_map(entity).collect()
}

pub(crate) fn entity(e: &tl::enums::MessageEntity) -> Option<Entity> {
    use tl::enums::MessageEntity as E;
    let plain = |kind, offset, length| Entity {
        kind,
        offset,
        length,
        url: None,
        user_id: None,
        language: None,
    };
    Some(match e {
        E::Bold(x) => plain("bold", x.offset, x.length),
        E::Italic(x) => plain("italic", x.offset, x.length),
        E::Underline(x) => plain("underline", x.offset, x.length),
        E::Strike(x) => plain("strikethrough", x.offset, x.length),
        E::Spoiler(x) => plain("spoiler", x.offset, x.length),
        E::Code(x) => plain("code", x.offset, x.length),
        E::Pre(x) => Entity {
            language: Some(x.language.clone()).filter(|l| !l.is_empty()),
            ..plain("pre", x.offset, x.length)
        },
        E::TextUrl(x) => Entity {
            url: Some(x.url.clone()),
            ..plain("text_link", x.offset, x.length)
        },
        E::Url(x) => plain("url", x.offset, x.length),
        E::Mention(x) => plain("mention", x.offset, x.length),
        E::Hashtag(x) => plain("hashtag", x.offset, x.length),
        E::MentionName(x) => Entity {
            user_id: Some(x.user_id),
            ..plain("text_mention", x.offset, x.length)
        },
        E::Blockquote(x) => plain(
            if x.collapsed {
                "expandable_blockquote"
            } else {
                "blockquote"
            },
            x.offset,
            x.length,
        ),
        _ => return None,
    })
}

/// A message Telegram sent; `None` for an empty or service message.
pub(crate) fn from_tl(m: &tl::enums::Message) -> Option<ChatMessage> {
    let tl::enums::Message::Message(m) = m else {
        return None;
    };
    Some(ChatMessage {
        id: m.id,
        date: m.date,
        out: m.out,
        text: m.message.clone(),
        entities: m.entities.iter().flatten().filter_map(entity).collect(),
        reply_to: match &m.reply_to {
            Some(tl::enums::MessageReplyHeader::Header(h)) => h.reply_to_msg_id,
            _ => None,
        },
        grouped_id: m.grouped_id,
        views: m.views,
        forwards: m.forwards,
        edit_date: m.edit_date,
        pinned: m.pinned,
        media: m.media.as_ref().and_then(media_info),
    })
}
