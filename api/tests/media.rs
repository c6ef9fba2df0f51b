//! Issue 13, item 2: the media library over HTTP (streamed uploads, sniffed types, hashes,
//! per-owner dedupe and scope, the size limit) and media sent through an account to the sandbox's
//! Telegram: photos, big documents in big-file parts, albums, captions with entities, one upload
//! per account and item, a stale file reference refreshed by itself; on a directory and on a
//! real S3 API server (moto).

mod common;

use common::{error_code, json_of, logged_in_account, sandbox, sandbox_bot, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Digest as _;
use tgfleet_persistence::testing::S3Server;

/// A PNG signature and header, then `tag` so that every picture has its own bytes.
fn png(tag: u32) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0".to_vec();
    b.extend((0..4000u32).map(|i| (i.wrapping_mul(31) ^ tag) as u8));
    b
}

/// An MP4 `ftyp` box, then filler.
fn mp4(tag: u32) -> Vec<u8> {
    let mut b = b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom".to_vec();
    b.extend((0..6000u32).map(|i| (i.wrapping_mul(17) ^ tag) as u8));
    b
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

async fn upload_raw(
    app: &TestApp,
    token: &str,
    bytes: Vec<u8>,
    name: Option<&str>,
) -> reqwest::Response {
    let mut req = app
        .client
        .post(format!("{}/api/v1/media", app.base))
        .bearer_auth(token)
        .body(bytes);
    if let Some(name) = name {
        req = req.query(&[("file_name", name)]);
    }
    req.send().await.unwrap()
}

async fn upload_form(app: &TestApp, token: &str, bytes: Vec<u8>, name: &str) -> reqwest::Response {
    let part = reqwest::multipart::Part::bytes(bytes)
        .file_name(name.to_owned())
        .mime_str("image/jpeg")
        .unwrap();
    let form = reqwest::multipart::Form::new()
        .text("note", "ignored")
        .part("file", part);
    app.client
        .post(format!("{}/api/v1/media", app.base))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

async fn media_id(app: &TestApp, token: &str, bytes: Vec<u8>, name: &str) -> String {
    let item = json_of(upload_raw(app, token, bytes, Some(name)).await, 201).await;
    item["id"].as_str().unwrap().to_owned()
}

/// Every file under `dir`.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test]
async fn the_library_sniffs_hashes_dedupes_and_keeps_to_its_owner() {
    let app = TestApp::spawn_with(|s| s.media.max_size_bytes = 100_000).await;
    let (alice, token, _) = app.user("media-a@example.org").await;
    let (_, other, _) = app.user("media-b@example.org").await;
    let media_dir = app.state.settings.media_dir();
    let picture = png(1);

    // Named .jpg and sent as image/jpeg, but the bytes are a PNG: the bytes win.
    let item = json_of(
        upload_raw(&app, &token, picture.clone(), Some("holiday/cat.jpg")).await,
        201,
    )
    .await;
    assert_eq!(item["mime"], "image/png");
    assert_eq!(item["kind"], "photo");
    assert_eq!(item["size"], picture.len());
    assert_eq!(item["sha256"], sha(&picture));
    assert_eq!(item["file_name"], "cat.jpg", "no path: {item}");
    let id = item["id"].as_str().unwrap().to_owned();
    assert_eq!(files_under(&media_dir).len(), 1);

    // The same bytes as a form: the same item (200), and still one copy on disk.
    let again = json_of(
        upload_form(&app, &token, picture.clone(), "other.png").await,
        200,
    )
    .await;
    assert_eq!(again["id"], id.as_str());
    assert_eq!(files_under(&media_dir).len(), 1);
    // Someone else's identical upload is theirs alone.
    let theirs = json_of(upload_raw(&app, &other, picture.clone(), None).await, 201).await;
    assert_ne!(theirs["id"], id.as_str());
    assert_eq!(theirs["file_name"], "file.png");
    let not_yours = app.get(&format!("/api/v1/media/{id}"), Some(&other)).await;
    assert_eq!(error_code(not_yours, 404).await, "NOT_FOUND");
    let deleted_by_other = app
        .request(
            Method::DELETE,
            &format!("/api/v1/media/{id}"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(deleted_by_other.status(), 404);

    let gif = json_of(
        upload_raw(&app, &token, b"GIF89a\x01\0\x01\0rest".to_vec(), None).await,
        201,
    )
    .await;
    assert_eq!(gif["kind"], "animation");
    let text = json_of(
        upload_raw(&app, &token, b"plain words".to_vec(), Some("a.txt")).await,
        201,
    )
    .await;
    assert_eq!(
        (text["kind"].as_str(), text["mime"].as_str()),
        (Some("document"), Some("application/octet-stream"))
    );
    let listed = json_of(app.get("/api/v1/media?limit=2", Some(&token)).await, 200).await;
    let ids: Vec<&str> = listed["media"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [text["id"].as_str().unwrap(), gif["id"].as_str().unwrap()],
        "newest first"
    );
    let cursor = listed["next_cursor"].as_str().unwrap();
    let rest = json_of(
        app.get(
            &format!("/api/v1/media?limit=2&cursor={cursor}"),
            Some(&token),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(rest["media"][0]["id"], id.as_str());
    assert_eq!(rest["next_cursor"], Value::Null);

    // Too big: 413 while streaming, and nothing of it stays.
    let before = files_under(&media_dir).len();
    let big = upload_raw(&app, &token, vec![7u8; 150_000], None).await;
    assert_eq!(error_code(big, 413).await, "MEDIA_TOO_LARGE");
    let empty = upload_raw(&app, &token, Vec::new(), None).await;
    assert_eq!(error_code(empty, 422).await, "VALIDATION_FAILED");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(files_under(&media_dir).len(), before);

    let deleted = app
        .request(
            Method::DELETE,
            &format!("/api/v1/media/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(deleted.status(), 204);
    assert_eq!(
        app.get(&format!("/api/v1/media/{id}"), Some(&token))
            .await
            .status(),
        404
    );
    assert_eq!(files_under(&media_dir).len(), before - 1);
    assert!(files_under(&media_dir.join(alice.to_string())).len() == 2);
    app.shutdown().await;
}

/// The chat id the account's new channel has.
async fn new_channel(app: &TestApp, token: &str, id: i64) -> i64 {
    let channel = json_of(
        app.post(
            &format!("/api/v1/telegram/accounts/{id}/chats"),
            Some(token),
            json!({"type": "channel", "title": "Pictures"}),
        )
        .await,
        201,
    )
    .await;
    channel["chat_id"].as_i64().unwrap()
}

async fn send(app: &TestApp, token: &str, id: i64, body: Value) -> reqwest::Response {
    app.post(
        &format!("/api/v1/telegram/accounts/{id}/messages"),
        Some(token),
        body,
    )
    .await
}

fn file_parts(app: &TestApp) -> u64 {
    app.state.sandbox.as_ref().unwrap().stats().file_parts
}

/// What the sandbox's Telegram holds in the channel.
fn held(app: &TestApp, chat_id: i64) -> Vec<tgfleet_testdc::ChatMessageSnapshot> {
    app.state
        .sandbox
        .as_ref()
        .unwrap()
        .chat_messages(&chat_id.to_string())
        .expect("the channel exists")
}

async fn media_reach_telegram(app: TestApp) {
    let (_, token, _) = app.user("sender@example.org").await;
    let id = logged_in_account(&app, &token, "+15550100171").await;
    let chat_id = new_channel(&app, &token, id).await;
    let picture = png(2);
    let photo = media_id(&app, &token, picture.clone(), "cat.png").await;

    let sent = json_of(
        send(
            &app,
            &token,
            id,
            json!({"peer": chat_id.to_string(), "media": [photo],
            "text": "<b>Cat</b> 👍", "parse_mode": "html"}),
        )
        .await,
        201,
    )
    .await;
    assert!(sent["message_id"].as_i64().is_some(), "{sent}");
    let parts = file_parts(&app);
    assert_eq!(parts, 1, "a small photo is one part");
    let last = held(&app, chat_id).pop().unwrap();
    let media = last.media.expect("the message carries the photo");
    assert!(media.photo);
    assert_eq!(media.sha256, sha(&picture));
    assert_eq!(media.size as usize, picture.len());
    assert_eq!(last.text, "Cat 👍");
    assert_eq!(
        (last.entities[0].kind.as_str(), last.entities[0].length),
        ("bold", 3)
    );

    // Sent again by the same account: by reference, no upload.
    json_of(
        send(
            &app,
            &token,
            id,
            json!({"peer": chat_id.to_string(), "media": [photo]}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(file_parts(&app), parts);
    // Telegram rotates its file references: the next send still works, uploading once more.
    app.state.sandbox.as_ref().unwrap().expire_file_references();
    json_of(
        send(
            &app,
            &token,
            id,
            json!({"peer": chat_id.to_string(), "media": [photo]}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(file_parts(&app), parts + 1);
    let then = file_parts(&app);
    json_of(
        send(
            &app,
            &token,
            id,
            json!({"peer": chat_id.to_string(), "media": [photo]}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(file_parts(&app), then, "the refreshed reference is kept");

    // Above 10 MB a file goes up as a big file: 12 MB of a PDF in 24 parts of 512 KiB.
    let mut pdf = b"%PDF-1.7\n".to_vec();
    pdf.extend((0..12_000_000u32).map(|i| (i ^ (i >> 9)) as u8));
    let document = media_id(&app, &token, pdf.clone(), "report.pdf").await;
    let report = json_of(
        send(
            &app,
            &token,
            id,
            json!({"peer": chat_id.to_string(), "media": [document], "text": "the report"}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(file_parts(&app), then + 23);
    let last = held(&app, chat_id).pop().unwrap();
    let media = last.media.unwrap();
    assert!(!media.photo);
    assert_eq!(
        (media.mime.as_str(), media.file_name.as_str()),
        ("application/pdf", "report.pdf")
    );
    assert_eq!(media.sha256, sha(&pdf));
    let dc = app.state.sandbox.as_ref().unwrap();
    assert_eq!(
        dc.file_bytes(media.id).unwrap(),
        pdf,
        "Telegram holds the bytes themselves"
    );

    // The history describes the media; the bytes come back through the account, streamed.
    let report_id = report["message_id"].as_i64().unwrap();
    let history = json_of(
        app.get(
            &format!("/api/v1/telegram/accounts/{id}/chats/{chat_id}/messages?limit=2"),
            Some(&token),
        )
        .await,
        200,
    )
    .await;
    let newest = &history["messages"][0];
    assert_eq!(newest["id"], report_id);
    assert_eq!(newest["media"]["kind"], "document");
    assert_eq!(newest["media"]["mime"], "application/pdf");
    assert_eq!(newest["media"]["size"], pdf.len());
    assert_eq!(newest["media"]["file_name"], "report.pdf");
    assert_eq!(history["messages"][1]["media"]["kind"], "photo");
    let download = |msg: i64| {
        app.client
            .get(format!(
                "{}/api/v1/telegram/accounts/{id}/chats/{chat_id}/messages/{msg}/media",
                app.base
            ))
            .bearer_auth(&token)
            .send()
    };
    let got = download(report_id).await.unwrap();
    assert_eq!(got.status(), 200, "{:?}", got.text().await);
    assert_eq!(got.headers()["content-type"], "application/pdf");
    assert_eq!(
        got.headers()["content-length"],
        pdf.len().to_string().as_str()
    );
    assert!(got.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("report.pdf"));
    // Read as it streams; halfway through, Telegram rotates its file references: the download
    // looks the file up again by itself and goes on.
    let mut got = got;
    let mut body = Vec::new();
    let mut rotated = false;
    while let Some(chunk) = got.chunk().await.unwrap() {
        body.extend_from_slice(&chunk);
        if !rotated && body.len() >= 1 << 20 {
            app.state.sandbox.as_ref().unwrap().expire_file_references();
            rotated = true;
        }
    }
    assert!(rotated);
    assert!(body == pdf, "the same bytes back");
    let photo_message = history["messages"][1]["id"].as_i64().unwrap();
    let got = download(photo_message).await.unwrap();
    assert_eq!(got.status(), 200, "{:?}", got.text().await);
    assert!(got.bytes().await.unwrap() == picture);
    let text_only = json_of(
        send(
            &app,
            &token,
            id,
            json!({"peer": chat_id.to_string(), "text": "no media"}),
        )
        .await,
        201,
    )
    .await["message_id"]
        .as_i64()
        .unwrap();
    let none = download(text_only).await.unwrap();
    assert_eq!(error_code(none, 404).await, "NOT_FOUND");
    let missing = download(999_999).await.unwrap();
    assert_eq!(error_code(missing, 422).await, "MESSAGE_ID_INVALID");

    // An album of ten: five photos and five videos, one grouped_id, in order, caption on the first.
    let mut album = Vec::new();
    let mut hashes = Vec::new();
    for i in 0..5u32 {
        let (p, v) = (png(100 + i), mp4(200 + i));
        hashes.push(sha(&p));
        hashes.push(sha(&v));
        album.push(media_id(&app, &token, p, &format!("p{i}.png")).await);
        album.push(media_id(&app, &token, v, &format!("v{i}.mp4")).await);
    }
    let sent = json_of(
        send(
            &app,
            &token,
            id,
            json!({"peer": chat_id.to_string(), "media": album, "text": "ten"}),
        )
        .await,
        201,
    )
    .await;
    let ids: Vec<i64> = sent["message_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 10, "{sent}");
    assert_eq!(sent["message_id"], ids[0]);
    let messages = held(&app, chat_id);
    let tail = &messages[messages.len() - 10..];
    assert_eq!(
        tail.iter().map(|m| i64::from(m.id)).collect::<Vec<_>>(),
        ids
    );
    assert_eq!(
        tail.iter()
            .map(|m| m.media.as_ref().unwrap().sha256.clone())
            .collect::<Vec<_>>(),
        hashes
    );
    let group = tail[0].grouped_id.expect("an album has a grouped_id");
    assert!(tail.iter().all(|m| m.grouped_id == Some(group)));
    assert_eq!(tail[0].text, "ten");
    // A caption is edited like a text, within Telegram's caption limit; the media stays.
    let first = format!(
        "/api/v1/telegram/accounts/{id}/chats/{chat_id}/messages/{}",
        ids[0]
    );
    let edited = app
        .request(
            Method::PATCH,
            &first,
            Some(&token),
            Some(json!({"text": "<b>ten</b> edited", "parse_mode": "html"})),
        )
        .await;
    assert_eq!(edited.status(), 204);
    let long = app
        .request(
            Method::PATCH,
            &first,
            Some(&token),
            Some(json!({"text": "y".repeat(1100)})),
        )
        .await;
    assert_eq!(error_code(long, 422).await, "MEDIA_CAPTION_TOO_LONG");
    let after = held(&app, chat_id);
    let first_held = after.iter().find(|m| i64::from(m.id) == ids[0]).unwrap();
    assert_eq!(first_held.text, "ten edited");
    assert_eq!(first_held.media.as_ref().unwrap().sha256, hashes[0]);
    assert!(tail[1..].iter().all(|m| m.text.is_empty()));
    assert_eq!(tail[1].media.as_ref().unwrap().kind, "video");

    // Telegram's album rules, and its caption limit.
    let mixed = send(
        &app,
        &token,
        id,
        json!({"peer": chat_id.to_string(), "media": [photo, document]}),
    )
    .await;
    assert_eq!(error_code(mixed, 422).await, "ALBUM_INVALID");
    let eleven: Vec<String> = album.iter().cloned().chain([photo.clone()]).collect();
    let too_many = send(
        &app,
        &token,
        id,
        json!({"peer": chat_id.to_string(), "media": eleven}),
    )
    .await;
    assert_eq!(error_code(too_many, 422).await, "VALIDATION_FAILED");
    let long = send(
        &app,
        &token,
        id,
        json!({"peer": chat_id.to_string(), "media": [photo], "text": "x".repeat(1025)}),
    )
    .await;
    assert_eq!(error_code(long, 422).await, "VALIDATION_FAILED");
    let nothing = send(&app, &token, id, json!({"peer": chat_id.to_string()})).await;
    assert_eq!(error_code(nothing, 422).await, "VALIDATION_FAILED");
    let unknown = send(
        &app,
        &token,
        id,
        json!({"peer": chat_id.to_string(), "media": ["nope"]}),
    )
    .await;
    assert_eq!(error_code(unknown, 404).await, "NOT_FOUND");
    // Someone else's media cannot be sent through this account.
    let (_, other, _) = app.user("not-the-owner@example.org").await;
    let theirs = media_id(&app, &other, png(3), "x.png").await;
    let foreign = send(
        &app,
        &token,
        id,
        json!({"peer": chat_id.to_string(), "media": [theirs]}),
    )
    .await;
    assert_eq!(error_code(foreign, 404).await, "NOT_FOUND");

    // A private chat takes media too.
    json_of(
        send(
            &app,
            &token,
            id,
            json!({"peer": "me", "media": [photo], "text": "to myself"}),
        )
        .await,
        201,
    )
    .await;
    let saved = app
        .state
        .sandbox
        .as_ref()
        .unwrap()
        .chat_messages("+15550100171")
        .unwrap();
    assert_eq!(
        saved.last().unwrap().media.as_ref().unwrap().sha256,
        sha(&picture)
    );
    app.shutdown().await;
}

#[tokio::test]
async fn media_reach_telegram_from_a_directory() {
    media_reach_telegram(sandbox().await).await;
}

#[tokio::test]
async fn media_reach_telegram_from_an_s3_bucket() {
    let Some(s3) = S3Server::start().await else {
        return;
    };
    let app = TestApp::spawn_with(|s| {
        s.sandbox = true;
        s.media.storage = tgfleet_config::MediaStorageKind::S3;
        s.media.s3.bucket = s3.bucket.clone();
        s.media.s3.endpoint = Some(s3.endpoint.clone());
        s.media.s3.access_key_id = Some("testing".into());
        s.media.s3.secret_access_key = Some(tgfleet_config::Secret::new("testing"));
    })
    .await;
    assert_eq!(app.state.media.kind(), "s3");
    assert!(files_under(&app.state.settings.media_dir()).is_empty());
    media_reach_telegram(app).await;
}

/// A member of a broadcast channel may not post media there, as Telegram says.
#[tokio::test]
async fn a_member_cannot_post_media_to_a_broadcast_channel() {
    let app = sandbox().await;
    let (_, token, _) = app.user("owner-m@example.org").await;
    let owner = logged_in_account(&app, &token, "+15550100172").await;
    let member = logged_in_account(&app, &token, "+15550100173").await;
    let chat_id = new_channel(&app, &token, owner).await;
    let link = json_of(
        app.post(
            &format!("/api/v1/telegram/accounts/{owner}/chats/{chat_id}/invite-link"),
            Some(&token),
            json!({}),
        )
        .await,
        201,
    )
    .await;
    json_of(
        app.post(
            &format!("/api/v1/telegram/accounts/{member}/chats/join"),
            Some(&token),
            json!({"link": link["link"]}),
        )
        .await,
        200,
    )
    .await;
    let photo = media_id(&app, &token, png(9), "p.png").await;
    let refused = send(
        &app,
        &token,
        member,
        json!({"peer": chat_id.to_string(), "media": [photo]}),
    )
    .await;
    assert_eq!(error_code(refused, 403).await, "CHAT_WRITE_FORBIDDEN");
    assert!(held(&app, chat_id).iter().all(|m| m.media.is_none()));
    app.shutdown().await;
}

/// A bot reads no chat history (Telegram refuses it getHistory), yet downloads a message's media:
/// the message is found by id (channels.getMessages). It posts into a channel it was made an
/// admin of, and gets the bytes of its own photo back.
#[tokio::test]
async fn a_bot_downloads_a_posts_media_without_reading_history() {
    let app = sandbox().await;
    let (_, token, _) = app.user("bot-media@example.org").await;
    let t = Some(token.as_str());
    let owner = logged_in_account(&app, &token, "+15550100174").await;
    let channel = json_of(
        app.post(
            &format!("/api/v1/telegram/accounts/{owner}/chats"),
            t,
            json!({"type": "channel", "title": "Bot pictures", "username": "bot_pictures"}),
        )
        .await,
        201,
    )
    .await;
    let chat_id = channel["chat_id"].as_i64().unwrap();
    let bot_token = "424242:AAbotmediabotmediabotmediabotmedia0";
    let bot = sandbox_bot(&app, &token, bot_token, "pictures_bot").await;
    let promoted = app
        .request(
            Method::PUT,
            &format!("/api/v1/telegram/accounts/{owner}/chats/{chat_id}/admins/@pictures_bot"),
            t,
            Some(json!({"rights": ["post_messages"]})),
        )
        .await;
    assert_eq!(promoted.status(), 204, "{:?}", promoted.text().await);

    let picture = png(21);
    let photo = media_id(&app, &token, picture.clone(), "bot.png").await;
    let sent = json_of(
        send(
            &app,
            &token,
            bot,
            json!({"peer": "@bot_pictures", "media": [photo], "text": "from the bot"}),
        )
        .await,
        201,
    )
    .await;
    let msg = sent["message_id"].as_i64().unwrap();
    let history = app
        .get(
            &format!("/api/v1/telegram/accounts/{bot}/chats/@bot_pictures/messages"),
            t,
        )
        .await;
    assert_eq!(error_code(history, 422).await, "BOT_METHOD_INVALID");
    let got = app
        .client
        .get(format!(
            "{}/api/v1/telegram/accounts/{bot}/chats/@bot_pictures/messages/{msg}/media",
            app.base
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    let held_photo = held(&app, chat_id).pop().unwrap().media.unwrap();
    let body = got.bytes().await.unwrap();
    assert_eq!(
        sha(&body),
        held_photo.sha256,
        "the bytes Telegram holds for the photo"
    );
    let missing = app
        .client
        .get(format!(
            "{}/api/v1/telegram/accounts/{bot}/chats/@bot_pictures/messages/99999/media",
            app.base
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(missing, 422).await, "MESSAGE_ID_INVALID");
    app.shutdown().await;
}
