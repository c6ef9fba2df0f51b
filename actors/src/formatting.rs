//! Formatted text as a caller writes it (`parse_mode`: the Bot API's HTML subset, or Markdown)
//! turned into the plain text and entities Telegram takes, parsed once where a request enters.
//!
//! The conversion is grammers-client's own (`parse_html_message`, `parse_markdown_message`),
//! which computes entity offsets in UTF-16 code units as Telegram counts them. Its HTML reader is
//! lenient (it never fails, and it panics on a `tg://user?id=` that is not a number), so HTML is
//! first checked here against the Bot API's subset: an unknown or unclosed tag, a stray `<` or
//! `&`, or a bad link is refused with its position, and only then handed over. The Bot API's own
//! spellings grammers does not know (`<tg-spoiler>`, `<span class="tg-spoiler">`, `<ins>`,
//! `<strike>`) are rewritten to the ones it does.

use grammers_tl_types as tl;

/// How a message's text is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseMode {
    Html,
    Markdown,
}

impl std::str::FromStr for ParseMode {
    type Err = ();

    fn from_str(raw: &str) -> Result<Self, ()> {
        // Lower case only: the Bot API's "HTML" is this subset, but its "Markdown" is not
        // CommonMark, and a caller porting Bot API code must not get one for the other.
        match raw {
            "html" => Ok(Self::Html),
            "markdown" => Ok(Self::Markdown),
            _ => Err(()),
        }
    }
}

/// Text ready for Telegram: what is shown, and the formatting over it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FormattedText {
    pub text: String,
    pub entities: Vec<tl::enums::MessageEntity>,
}

impl FormattedText {
    pub fn plain(text: String) -> Self {
        Self {
            text,
            entities: Vec::new(),
        }
    }
}

impl From<String> for FormattedText {
    fn from(text: String) -> Self {
        Self::plain(text)
    }
}

impl From<&str> for FormattedText {
    fn from(text: &str) -> Self {
        Self::plain(text.to_owned())
    }
}

/// Why markup was refused, and where: `position` counts characters from the start of the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at character {position}")]
pub struct MarkupError {
    pub position: usize,
    pub message: String,
}

/// Parses `input` as `mode` says.
pub fn parse(mode: ParseMode, input: &str) -> Result<FormattedText, MarkupError> {
    let checked = match mode {
        ParseMode::Html => check_html(input)?,
        ParseMode::Markdown => {
            check_markdown(input)?;
            input.to_owned()
        }
    };
    // The checks keep out what is known to make grammers' readers panic; anything else that
    // still does is bad markup too, never a failed request.
    let read = std::panic::catch_unwind(|| match mode {
        ParseMode::Html => grammers_client::parsers::parse_html_message(&checked),
        ParseMode::Markdown => grammers_client::parsers::parse_markdown_message(&checked),
    });
    let Ok((text, mut entities)) = read else {
        return Err(MarkupError {
            position: 0,
            message: "the markup cannot be read".into(),
        });
    };
    clamp_entities(&text, &mut entities);
    Ok(FormattedText { text, entities })
}

/// grammers trims trailing whitespace after placing entities (a Markdown code block at the end
/// overruns the text): every entity ends inside the text, and one left empty goes.
fn clamp_entities(text: &str, entities: &mut Vec<tl::enums::MessageEntity>) {
    let units = text.encode_utf16().count() as i32;
    entities.retain_mut(|e| {
        let Some((offset, length)) = span_mut(e) else {
            return true;
        };
        if *offset >= units {
            return false;
        }
        *length = (*length).min(units - *offset);
        *length > 0
    });
}

fn span_mut(e: &mut tl::enums::MessageEntity) -> Option<(&mut i32, &mut i32)> {
    use tl::enums::MessageEntity as E;
    Some(match e {
        E::Bold(x) => (&mut x.offset, &mut x.length),
        E::Italic(x) => (&mut x.offset, &mut x.length),
        E::Underline(x) => (&mut x.offset, &mut x.length),
        E::Strike(x) => (&mut x.offset, &mut x.length),
        E::Spoiler(x) => (&mut x.offset, &mut x.length),
        E::Code(x) => (&mut x.offset, &mut x.length),
        E::Pre(x) => (&mut x.offset, &mut x.length),
        E::TextUrl(x) => (&mut x.offset, &mut x.length),
        E::MentionName(x) => (&mut x.offset, &mut x.length),
        E::Blockquote(x) => (&mut x.offset, &mut x.length),
        _ => return None,
    })
}

/// A Markdown link to `tg://user?id=` must name a user (grammers unwraps the number).
fn check_markdown(input: &str) -> Result<(), MarkupError> {
    use pulldown_cmark::{Event, Parser, Tag};
    for (event, range) in Parser::new(input).into_offset_iter() {
        if let Event::Start(Tag::Link { dest_url, .. }) = event {
            if let Some(id) = dest_url.strip_prefix("tg://user?id=") {
                if id.parse::<i64>().map_or(true, |id| id <= 0) {
                    return Err(MarkupError {
                        position: input[..range.start].chars().count(),
                        message: format!(
                            "a mention of tg://user?id={id}: a user id is a positive number"
                        ),
                    });
                }
            }
        }
    }
    Ok(())
}

/// The tags a caller may write, as the Bot API documents them, and what grammers reads instead.
fn known_tag(name: &str) -> Option<&'static str> {
    Some(match name {
        "b" | "strong" => "b",
        "i" | "em" => "i",
        "u" | "ins" => "u",
        "s" | "strike" | "del" => "s",
        "tg-spoiler" => "details",
        "span" => "details",
        "a" => "a",
        "code" => "code",
        "pre" => "pre",
        "blockquote" => "blockquote",
        _ => return None,
    })
}

/// Checks `input` against the Bot API's HTML subset and returns it in the spelling grammers'
/// reader understands.
fn check_html(input: &str) -> Result<String, MarkupError> {
    let mut out = String::with_capacity(input.len());
    // Open tags as the caller spelled them, with the position of their `<`.
    let mut open: Vec<(String, usize)> = Vec::new();
    let mut chars = input.char_indices().peekable();
    // Characters consumed so far, for positions in characters rather than bytes.
    let mut position = 0usize;
    let fail = |position: usize, message: String| Err(MarkupError { position, message });
    while let Some((at, c)) = chars.next() {
        let here = position;
        position += 1;
        match c {
            '<' => {
                let Some(end) = input[at..].find('>') else {
                    return fail(here, "a '<' that starts no tag (write &lt;)".into());
                };
                let inside = &input[at + 1..at + end];
                // Skip the tag's characters.
                for _ in 0..inside.chars().count() + 1 {
                    chars.next();
                    position += 1;
                }
                let (closing, body) = match inside.strip_prefix('/') {
                    Some(body) => (true, body),
                    None => (false, inside),
                };
                let name_end = body
                    .find(|ch: char| ch.is_whitespace())
                    .unwrap_or(body.len());
                let name = body[..name_end].to_ascii_lowercase();
                let attrs = body[name_end..].trim();
                let Some(target) = known_tag(&name) else {
                    return fail(
                        here,
                        format!(
                            "unsupported tag <{}>",
                            name.chars().take(32).collect::<String>()
                        ),
                    );
                };
                if closing {
                    match open.pop() {
                        Some((opened, _))
                            if opened == name || (opened == "a!mention" && name == "a") => {}
                        Some((opened, _)) => {
                            return fail(here, format!("</{name}> closes <{opened}>"));
                        }
                        None => return fail(here, format!("</{name}> closes nothing")),
                    }
                    if !attrs.is_empty() {
                        return fail(here, format!("</{name}> takes no attributes"));
                    }
                    out.push_str(&format!("</{target}>"));
                    continue;
                }
                // As the Bot API nests them: nothing inside code, only code inside pre, no tag
                // inside the same kind of tag or inside a user mention (grammers would lose it).
                if let Some(conflict) = open.iter().rev().find_map(|(outer, _)| {
                    let outer_target = known_tag(outer).unwrap_or("");
                    let why = if outer == "code" {
                        "nothing goes inside <code>"
                    } else if outer == "pre" && name != "code" {
                        "only <code> goes inside <pre>"
                    } else if outer_target == target {
                        "a tag cannot go inside the same kind of tag"
                    } else if outer == "a!mention" {
                        "nothing goes inside a user mention"
                    } else {
                        return None;
                    };
                    Some(why)
                }) {
                    return fail(here, format!("<{name}>: {conflict}"));
                }
                let attrs = check_attrs(&name, attrs).map_err(|message| MarkupError {
                    position: here,
                    message,
                })?;
                out.push('<');
                out.push_str(target);
                out.push_str(&attrs);
                out.push('>');
                // A mention is marked so the nesting rule above can tell it from a link.
                let kept = if name == "a" && attrs.contains("tg://user?id=") {
                    "a!mention".to_owned()
                } else {
                    name
                };
                open.push((kept, here));
            }
            '>' => return fail(here, "a '>' outside a tag (write &gt;)".into()),
            '&' => {
                let rest = &input[at..];
                let entity = NAMED_REFS
                    .iter()
                    .map(|(name, _)| *name)
                    .find(|e| rest.starts_with(e))
                    .or_else(|| numeric_entity(rest));
                let Some(entity) = entity else {
                    return fail(
                        here,
                        "a '&' that starts no entity (write &amp;; known: &lt; &gt; &amp; &quot; &#NN;)"
                            .into(),
                    );
                };
                for _ in 1..entity.chars().count() {
                    chars.next();
                    position += 1;
                }
                out.push_str(entity);
            }
            c => out.push(c),
        }
    }
    if let Some((name, at)) = open.pop() {
        return fail(at, format!("<{name}> is never closed"));
    }
    Ok(out)
}

/// The named character references the Bot API's HTML knows (numeric ones aside).
const NAMED_REFS: [(&str, char); 4] = [
    ("&lt;", '<'),
    ("&gt;", '>'),
    ("&amp;", '&'),
    ("&quot;", '"'),
];

/// `&#NN;` or `&#xNN;` at the start of `rest`.
fn numeric_entity(rest: &str) -> Option<&str> {
    let body = rest.strip_prefix("&#")?;
    let end = body.find(';')?;
    let digits = &body[..end];
    let ok = match digits.strip_prefix(['x', 'X']) {
        Some(hex) => {
            !hex.is_empty() && hex.len() <= 6 && hex.bytes().all(|b| b.is_ascii_hexdigit())
        }
        None => {
            !digits.is_empty() && digits.len() <= 7 && digits.bytes().all(|b| b.is_ascii_digit())
        }
    };
    ok.then(|| &rest[..end + 3])
}

/// The attributes of an opening tag, checked, as grammers' reader is to see them.
fn check_attrs(name: &str, attrs: &str) -> Result<String, String> {
    let value = |key: &str| -> Result<Option<String>, String> {
        let Some(start) = attrs.find(&format!("{key}=")) else {
            return Ok(None);
        };
        let rest = &attrs[start + key.len() + 1..];
        let quote = rest
            .chars()
            .next()
            .filter(|q| *q == '"' || *q == '\'')
            .ok_or_else(|| format!("<{name}> {key}= must be quoted"))?;
        let inner = &rest[1..];
        let end = inner
            .find(quote)
            .ok_or_else(|| format!("<{name}> {key}= is not closed"))?;
        // What the HTML reader will see: character references decoded, so a check of the raw
        // text cannot be talked around (`tg://user&#63;id=…`).
        decode_refs(&inner[..end])
            .map(Some)
            .ok_or_else(|| format!("<{name}> {key}= holds a '&' that starts no known entity"))
    };
    let escape = |v: &str| {
        v.replace('&', "&amp;")
            .replace('"', "&quot;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    match name {
        "a" => {
            let href = value("href")?.ok_or("<a> needs href=\"…\"")?;
            if let Some(id) = href.strip_prefix("tg://user?id=") {
                if id.parse::<i64>().map_or(true, |id| id <= 0) {
                    return Err(format!(
                        "<a href=\"{href}\">: a user id is a positive number"
                    ));
                }
            } else if !(href.starts_with("https://")
                || href.starts_with("http://")
                || href.starts_with("tg://"))
            {
                return Err("<a href> must be an http(s):// or tg:// link".into());
            }
            Ok(format!(" href=\"{}\"", escape(&href)))
        }
        "span" => match value("class")?.as_deref() {
            Some("tg-spoiler") => Ok(String::new()),
            _ => Err("<span> is only <span class=\"tg-spoiler\">".into()),
        },
        "code" => match value("class")? {
            Some(class)
                if class.starts_with("language-")
                    && class.len() <= 64
                    && class
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_+#.".contains(&b)) =>
            {
                Ok(format!(" class=\"{}\"", escape(&class)))
            }
            Some(_) => Err("<code class> must be language-…".into()),
            None => Ok(String::new()),
        },
        "blockquote" if attrs == "expandable" => Ok(" expandable".into()),
        _ if attrs.is_empty() => Ok(String::new()),
        _ => Err(format!("<{name}> takes no attributes here")),
    }
}

/// `raw` with `&lt; &gt; &amp; &quot;` and numeric references decoded; `None` when a `&` starts
/// none of them (or a number that is no character).
fn decode_refs(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let (decoded, len) =
            if let Some(named) = NAMED_REFS.iter().find(|(e, _)| rest.starts_with(e)) {
                (named.1, named.0.len())
            } else {
                let entity = numeric_entity(rest)?;
                let digits = &entity[2..entity.len() - 1];
                let value = match digits.strip_prefix(['x', 'X']) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                    None => digits.parse().ok()?,
                };
                (char::from_u32(value).filter(|c| *c != '\0')?, entity.len())
            };
        out.push(decoded);
        rest = &rest[len..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn html(input: &str) -> FormattedText {
        parse(ParseMode::Html, input).expect("valid markup")
    }

    fn refused(input: &str) -> MarkupError {
        parse(ParseMode::Html, input).expect_err("refused")
    }

    #[test]
    fn entities_count_utf16_units_so_an_emoji_counts_two() {
        let f = html("👍 <b>bold <i>both</i></b> &amp; <tg-spoiler>hidden</tg-spoiler>");
        assert_eq!(f.text, "👍 bold both & hidden");
        let bold = tl::types::MessageEntityBold {
            offset: 3,
            length: 9,
        };
        let italic = tl::types::MessageEntityItalic {
            offset: 8,
            length: 4,
        };
        let spoiler = tl::types::MessageEntitySpoiler {
            offset: 15,
            length: 6,
        };
        assert!(f.entities.contains(&bold.into()), "{:?}", f.entities);
        assert!(f.entities.contains(&italic.into()), "{:?}", f.entities);
        assert!(f.entities.contains(&spoiler.into()), "{:?}", f.entities);
    }

    #[test]
    fn the_bot_api_subset_reads_as_telegram_entities() {
        let f = html(
            "<a href=\"https://t.me\">l</a><a href=\"tg://user?id=42\">m</a><pre><code \
             class=\"language-rust\">x</code></pre><blockquote expandable>q</blockquote>\
             <span class=\"tg-spoiler\">s</span><ins>u</ins><strike>d</strike>",
        );
        assert_eq!(f.text, "lmxqsud");
        let has = |e: tl::enums::MessageEntity| f.entities.contains(&e);
        assert!(has(tl::types::MessageEntityTextUrl {
            offset: 0,
            length: 1,
            url: "https://t.me".into()
        }
        .into()));
        assert!(has(tl::types::MessageEntityMentionName {
            offset: 1,
            length: 1,
            user_id: 42
        }
        .into()));
        assert!(has(tl::types::MessageEntityPre {
            offset: 2,
            length: 1,
            language: "rust".into()
        }
        .into()));
        assert!(has(tl::types::MessageEntityBlockquote {
            offset: 3,
            length: 1,
            collapsed: true
        }
        .into()));
        assert!(has(tl::types::MessageEntitySpoiler {
            offset: 4,
            length: 1
        }
        .into()));
        assert!(has(tl::types::MessageEntityUnderline {
            offset: 5,
            length: 1
        }
        .into()));
        assert!(has(tl::types::MessageEntityStrike {
            offset: 6,
            length: 1
        }
        .into()));
    }

    #[test]
    fn bad_markup_is_refused_with_its_position() {
        let at = |input: &str| refused(input).position;
        assert_eq!(at("ok <blink>x</blink>"), 3);
        assert_eq!(at("ab <b>x</i>"), 7);
        assert_eq!(at("👍👍 <b>open"), 3);
        assert_eq!(at("1 < 2"), 2);
        assert_eq!(at("a > b"), 2);
        assert_eq!(at("fish & chips"), 5);
        assert_eq!(at("<a href=\"tg://user?id=abc\">x</a>"), 0);
        assert_eq!(at("<a href=\"javascript:alert(1)\">x</a>"), 0);
        assert_eq!(at("<a>x</a>"), 0);
        assert_eq!(at("<span class=\"x\">y</span>"), 0);
        assert_eq!(at("x</b>"), 1);
        // A reference cannot disguise a mention, and tags nest as the Bot API allows.
        assert_eq!(at("<a href=\"tg://user&#63;id=abc\">x</a>"), 0);
        assert_eq!(at("<a href=\"tg://&#117;ser?id=x\">x</a>"), 0);
        assert_eq!(at("<b>a<b>b</b></b>"), 4);
        assert_eq!(at("<a href=\"tg://user?id=1\"><b>x</b></a>"), 25);
        assert_eq!(at("<code>a<b>b</b></code>"), 7);
        assert_eq!(at("<pre><b>b</b></pre>"), 5);
        assert_eq!(
            html("<a href=\"tg://user?id=&#52;2\">m</a>").entities.len(),
            1
        );
        assert_eq!(html("<b>bold <i>both</i></b>").entities.len(), 2);
        assert!(refused("<b>").message.contains("never closed"));
        // What the subset allows is not refused.
        assert_eq!(html("1 &lt; 2 &#128077; &#x1F44D;").text, "1 < 2 👍 👍");
    }

    #[test]
    fn markdown_reads_through_grammers() {
        let f = parse(ParseMode::Markdown, "**bold** and `code`").unwrap();
        assert_eq!(f.text, "bold and code");
        assert_eq!(f.entities.len(), 2, "{:?}", f.entities);
        // A mention that names no user is refused (grammers would panic on it).
        let bad = parse(ParseMode::Markdown, "hi [x](tg://user?id=abc)").unwrap_err();
        assert_eq!(bad.position, 3);
        // A code block at the end: its entity stays inside the trimmed text.
        let f = parse(ParseMode::Markdown, "```\ncode\n```").unwrap();
        assert_eq!(f.text, "code");
        assert_eq!(
            f.entities,
            vec![tl::types::MessageEntityPre {
                offset: 0,
                length: 4,
                language: String::new()
            }
            .into()]
        );
        assert_eq!("Markdown".parse::<ParseMode>(), Err(()));
    }
}
