//! Issue 13, item 4: posts to many (account, chat) targets over HTTP against `serve --sandbox`'s
//! wiring — published by the scheduler, each delivery once; a flood-waited account's deliveries
//! delayed, not failed; a forbidden channel failing with Telegram's code while the rest go on;
//! scheduled posts edited, rescheduled, cancelled; a published one unpublished.

mod common;

use common::{error_code, json_of, logged_in_account, sandbox, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn channel(app: &TestApp, token: &str, id: i64, title: &str) -> i64 {
    json_of(
        app.post(
            &format!("/api/v1/telegram/accounts/{id}/chats"),
            Some(token),
            json!({"type": "channel", "title": title}),
        )
        .await,
        201,
    )
    .await["chat_id"]
        .as_i64()
        .unwrap()
}

/// The post once `done` says it has got there (polling; the bound only keeps a hang finite).
async fn wait_for(app: &TestApp, token: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let post = json_of(
            app.get(&format!("/api/v1/posts/{id}"), Some(token)).await,
            200,
        )
        .await;
        if done(&post) {
            return post;
        }
        assert!(
            Instant::now() < deadline,
            "the post never got there: {post}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn texts(app: &TestApp, chat: i64) -> Vec<String> {
    app.state
        .sandbox
        .as_ref()
        .unwrap()
        .chat_messages(&chat.to_string())
        .unwrap()
        .into_iter()
        .map(|m| m.text)
        .collect()
}

fn states(post: &Value) -> Vec<String> {
    post["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["state"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_post_to_twenty_channels_over_five_accounts_goes_on_past_a_flood_wait_and_a_refusal() {
    let app = sandbox().await;
    let (_, token, _) = app.user("posts@example.org").await;
    let t = Some(token.as_str());
    let mut accounts = Vec::new();
    for i in 0..5 {
        accounts.push(logged_in_account(&app, &token, &format!("+1555010019{i}")).await);
    }
    let mut targets = Vec::new();
    let mut chats = Vec::new();
    for (a, &id) in accounts.iter().enumerate() {
        for c in 0..4 {
            let chat = channel(&app, &token, id, &format!("channel {a}.{c}")).await;
            chats.push((id, chat));
        }
    }
    // Account 0 is a mere member of account 1's first channel: it may not post there.
    let forbidden = chats[4].1;
    let link = json_of(
        app.post(
            &format!(
                "/api/v1/telegram/accounts/{}/chats/{forbidden}/invite-link",
                accounts[1]
            ),
            t,
            json!({}),
        )
        .await,
        201,
    )
    .await;
    json_of(
        app.post(
            &format!("/api/v1/telegram/accounts/{}/chats/join", accounts[0]),
            t,
            json!({"link": link["link"]}),
        )
        .await,
        200,
    )
    .await;
    for (i, (id, chat)) in chats.iter().enumerate() {
        // Account 0's last channel is replaced by the one it may not post in.
        let (id, chat) = if i == 3 {
            (accounts[0], forbidden)
        } else {
            (*id, *chat)
        };
        targets.push(json!({"account_id": id, "chat": chat.to_string()}));
    }
    // Account 4 is in a flood wait longer than the fleet waits out in a request.
    let fault = app
        .post(
            "/api/v1/sandbox/faults",
            t,
            json!({"kind": "flood_wait", "phone": "+15550100194", "method": "messages.sendMessage", "seconds": 12}),
        )
        .await;
    assert_eq!(fault.status(), 200);

    let created = json_of(
        app.post(
            "/api/v1/posts",
            t,
            json!({"targets": targets, "text": "<b>news</b> for everyone", "parse_mode": "html"}),
        )
        .await,
        201,
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["deliveries"].as_array().unwrap().len(), 20);

    // Everything but account 4's four deliveries is done, and those wait out the flood.
    let midway = wait_for(&app, &token, &id, |p| {
        states(p)
            .iter()
            .filter(|s| *s == "sent" || *s == "failed")
            .count()
            == 16
    })
    .await;
    assert_eq!(midway["state"], "publishing");
    let flooded: Vec<&Value> = midway["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["account_id"] == accounts[4])
        .collect();
    assert!(
        flooded.iter().all(|d| d["state"] == "pending"
            && d["error"]["code"] == "FLOOD_WAIT"
            && d["next_attempt_at"].is_string()),
        "{midway}"
    );
    let refused = &midway["deliveries"][3];
    assert_eq!(
        (refused["state"].as_str(), refused["error"]["code"].as_str()),
        (Some("failed"), Some("CHAT_WRITE_FORBIDDEN"))
    );

    let done = wait_for(&app, &token, &id, |p| p["state"] != "publishing").await;
    assert_eq!(done["state"], "partially_failed", "{done}");
    assert_eq!(states(&done).iter().filter(|s| *s == "sent").count(), 19);
    for (i, d) in done["deliveries"].as_array().unwrap().iter().enumerate() {
        if i == 3 {
            continue;
        }
        assert_eq!(d["message_ids"].as_array().unwrap().len(), 1, "{d}");
        let chat: i64 = d["chat"].as_str().unwrap().parse().unwrap();
        // Once each, formatted, whatever the retries.
        assert_eq!(texts(&app, chat), ["news for everyone"], "delivery {i}");
    }
    // Account 1's own post is there, account 0's is not.
    assert_eq!(texts(&app, forbidden), ["news for everyone"]);
    let flood_attempts = done["deliveries"][16]["attempts"].as_i64().unwrap();
    assert!(flood_attempts >= 2, "{done}");
    let listed = json_of(
        app.get("/api/v1/posts?state=partially_failed", t).await,
        200,
    )
    .await;
    assert_eq!(listed["posts"][0]["id"], id.as_str());
    app.shutdown().await;
}

#[tokio::test]
async fn a_scheduled_post_is_edited_published_once_and_unpublished() {
    let app = sandbox().await;
    let (_, token, _) = app.user("schedule@example.org").await;
    let (_, other, _) = app.user("other-poster@example.org").await;
    let t = Some(token.as_str());
    let id = logged_in_account(&app, &token, "+15550100201").await;
    let chat = channel(&app, &token, id, "Scheduled").await;
    let target = json!([{"account_id": id, "chat": chat.to_string()}]);

    // What a post must be.
    let theirs = app
        .post(
            "/api/v1/posts",
            Some(&other),
            json!({"targets": target, "text": "x"}),
        )
        .await;
    assert_eq!(error_code(theirs, 404).await, "NOT_FOUND");
    let twice = json!([{"account_id": id, "chat": "@same"}, {"account_id": id, "chat": "@same"}]);
    for bad in [
        json!({"targets": [], "text": "x"}),
        json!({"targets": twice, "text": "x"}),
        json!({"targets": [{"account_id": id, "chat": "not a chat"}], "text": "x"}),
        json!({"targets": target}),
        json!({"targets": target, "text": "<b>open", "parse_mode": "html"}),
    ] {
        let r = app.post("/api/v1/posts", t, bad.clone()).await;
        assert_eq!(r.status(), 422, "{bad}");
    }

    let at = chrono::Utc::now() + chrono::Duration::seconds(3);
    let created = json_of(
        app.post(
            "/api/v1/posts",
            t,
            json!({"targets": target, "text": "draft", "publish_at": at}),
        )
        .await,
        201,
    )
    .await;
    let post_id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["state"], "scheduled");
    assert_eq!(created["deliveries"][0]["state"], "pending");
    let url = format!("/api/v1/posts/{post_id}");
    let edited = json_of(
        app.request(
            Method::PATCH,
            &url,
            t,
            Some(json!({"text": "<i>final</i>", "parse_mode": "html"})),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(edited["text"], "<i>final</i>");
    let nobody = app.get(&url, Some(&other)).await;
    assert_eq!(error_code(nobody, 404).await, "NOT_FOUND");
    assert!(texts(&app, chat).is_empty(), "nothing before its time");

    let published = wait_for(&app, &token, &post_id, |p| p["state"] == "published").await;
    assert_eq!(texts(&app, chat), ["final"]);
    let message_id = published["deliveries"][0]["message_ids"][0]
        .as_i64()
        .unwrap();
    let late = app
        .request(Method::PATCH, &url, t, Some(json!({"text": "too late"})))
        .await;
    assert_eq!(error_code(late, 409).await, "POST_NOT_SCHEDULED");
    let cancel_late = app.request(Method::DELETE, &url, t, None).await;
    assert_eq!(error_code(cancel_late, 409).await, "POST_NOT_SCHEDULED");
    let gone = app
        .request(Method::DELETE, &format!("{url}?unpublish=true"), t, None)
        .await;
    assert_eq!(gone.status(), 204);
    assert!(texts(&app, chat).is_empty(), "message {message_id} deleted");
    assert_eq!(
        json_of(app.get(&url, t).await, 200).await["state"],
        "cancelled"
    );

    // A post for tomorrow, cancelled: it never goes out.
    let tomorrow = chrono::Utc::now() + chrono::Duration::days(1);
    let later = json_of(
        app.post(
            "/api/v1/posts",
            t,
            json!({"targets": target, "text": "never", "publish_at": tomorrow}),
        )
        .await,
        201,
    )
    .await;
    let later_url = format!("/api/v1/posts/{}", later["id"].as_str().unwrap());
    // Rescheduled a day later (its delivery moves with it), then cancelled.
    let moved = json_of(
        app.request(
            Method::PATCH,
            &later_url,
            t,
            Some(json!({"publish_at": tomorrow + chrono::Duration::days(1)})),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        moved["deliveries"][0]["next_attempt_at"],
        moved["publish_at"]
    );
    assert_eq!(
        app.request(Method::DELETE, &later_url, t, None)
            .await
            .status(),
        204
    );
    assert_eq!(
        json_of(app.get(&later_url, t).await, 200).await["state"],
        "cancelled"
    );
    let scheduled = json_of(app.get("/api/v1/posts?state=scheduled", t).await, 200).await;
    assert!(scheduled["posts"].as_array().unwrap().is_empty());
    app.shutdown().await;
}

#[tokio::test]
async fn a_media_post_to_two_channels_uploads_once() {
    let app = sandbox().await;
    let (_, token, _) = app.user("media-post@example.org").await;
    let t = Some(token.as_str());
    let id = logged_in_account(&app, &token, "+15550100202").await;
    let (a, b) = (
        channel(&app, &token, id, "A").await,
        channel(&app, &token, id, "B").await,
    );
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.extend([5u8; 3000]);
    let media = json_of(
        app.client
            .post(format!("{}/api/v1/media?file_name=p.png", app.base))
            .bearer_auth(&token)
            .body(png)
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    let post = json_of(
        app.post("/api/v1/posts", t, json!({"targets": [{"account_id": id, "chat": a.to_string()}, {"account_id": id, "chat": b.to_string()}],
            "media": [media["id"]], "text": "caption"})).await,
        201,
    )
    .await;
    wait_for(&app, &token, post["id"].as_str().unwrap(), |p| {
        p["state"] == "published"
    })
    .await;
    let dc = app.state.sandbox.as_ref().unwrap();
    assert_eq!(dc.stats().file_parts, 1, "one upload for both channels");
    for chat in [a, b] {
        let held = dc.chat_messages(&chat.to_string()).unwrap();
        assert_eq!(held.len(), 1);
        assert_eq!(
            held[0].media.as_ref().unwrap().sha256,
            media["sha256"].as_str().unwrap()
        );
        assert_eq!(held[0].text, "caption");
    }
    app.shutdown().await;
}
