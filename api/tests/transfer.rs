//! Session import and export over HTTP against `serve --sandbox`'s wiring, with session strings
//! made by Telethon and Pyrogram themselves (python3; `scripts/test` installs both from PyPI).
//! Without them these tests skip with a notice, unless `TGFLEET_REQUIRE_SERVICES=1`.

mod common;

use common::{code_login, error_code, json_of, logged_in_account, sandbox, TestApp};
use serde_json::{json, Value};
use tgfleet_api::accounts::transfer::formats;

/// Logs a phone in through the API (code from the sandbox), exports its session, and deletes the
/// account again: what is left is an auth key logged in on testdc that no account holds — a
/// session "from elsewhere". Returns (dc id, auth key, Telegram user id).
async fn orphan_session(app: &TestApp, token: &str, phone: &str) -> (i32, [u8; 256], i64) {
    let id = logged_in_account(app, token, phone).await;
    let account = json_of(
        app.get(&format!("/api/v1/telegram/accounts/{id}"), Some(token))
            .await,
        200,
    )
    .await;
    let exported = json_of(
        app.get(
            &format!("/api/v1/telegram/accounts/{id}/export?format=tgfleet&confirm=true"),
            Some(token),
        )
        .await,
        200,
    )
    .await;
    let session = formats::parse_tgfleet(exported["session"].as_str().unwrap()).unwrap();
    // Kept alive at Telegram: the exported copy is meant to live on without this account.
    let r = app
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/telegram/accounts/{id}?keep_authorization=true"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(r.status(), 204);
    (
        session.dc_id,
        session.auth_key,
        account["tg_user_id"].as_i64().unwrap(),
    )
}

/// The arguments of the Telethon snippets: the DC, its sandbox address and the key in hex.
fn telethon_args(app: &TestApp, dc: i32, key: [u8; 256]) -> Vec<String> {
    let port = app.state.sandbox.as_ref().unwrap().dc_addr(dc).port();
    vec![
        dc.to_string(),
        "127.0.0.1".into(),
        port.to_string(),
        hex::encode(key),
    ]
}

/// Runs a Python snippet; `None` (test skipped) when python3 or the module is missing and
/// services are not required.
fn python(module: &str, code: &str, args: &[String]) -> Option<String> {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(code)
        .args(args)
        .output();
    match out {
        Ok(o) if o.status.success() => Some(String::from_utf8(o.stdout).unwrap().trim().to_owned()),
        other => {
            let why = match other {
                Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                Err(e) => e.to_string(),
            };
            if std::env::var("TGFLEET_REQUIRE_SERVICES").as_deref() == Ok("1") {
                panic!("python3 with {module} is required (TGFLEET_REQUIRE_SERVICES=1): {why}");
            }
            eprintln!(
                "SKIPPED: python3 with {module} is not available (pip install {module}): {why}"
            );
            None
        }
    }
}

const TELETHON: &str = r#"
import sys
from telethon.sessions import StringSession
from telethon.crypto import AuthKey
s = StringSession()
s.set_dc(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
s.auth_key = AuthKey(bytes.fromhex(sys.argv[4]))
print(StringSession.save(s))
"#;

const PYROGRAM: &str = r#"
import sys, asyncio, logging
logging.disable(logging.CRITICAL)
from pyrogram.storage import MemoryStorage
async def main():
    st = MemoryStorage("import-test")
    await st.open()
    await st.dc_id(int(sys.argv[1])); await st.api_id(17349); await st.test_mode(False)
    await st.auth_key(bytes.fromhex(sys.argv[2])); await st.user_id(int(sys.argv[3]))
    await st.is_bot(False); await st.date(0)
    print(await st.export_session_string())
asyncio.run(main())
"#;

async fn import(app: &TestApp, token: &str, items: Value) -> Vec<Value> {
    let v = json_of(
        app.post(
            "/api/v1/telegram/accounts/import",
            Some(token),
            json!({ "sessions": items }),
        )
        .await,
        200,
    )
    .await;
    v["results"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_telethon_string_session_imports_goes_active_and_sends() {
    let app = sandbox().await;
    let (_, token, _) = app.user("telethon@example.org").await;
    let phone = "+15550100201";
    let (dc, key, tg_user) = orphan_session(&app, &token, phone).await;
    let Some(string) = python("telethon", TELETHON, &telethon_args(&app, dc, key)) else {
        return;
    };
    // Telethon's own string reads back to the same DC, address and key.
    let parsed = formats::parse_telethon(&string).unwrap();
    assert_eq!((parsed.dc_id, parsed.auth_key), (dc, key));

    let results = import(
        &app,
        &token,
        json!([{"format": "telethon", "session": string, "label": "from telethon"}]),
    )
    .await;
    assert_eq!(results[0]["status"], "imported", "{results:?}");
    assert_eq!(results[0]["state"], "active");
    let id = results[0]["account_id"].as_i64().unwrap();
    let account = json_of(
        app.get(&format!("/api/v1/telegram/accounts/{id}"), Some(&token))
            .await,
        200,
    )
    .await;
    assert_eq!(account["state"], "active");
    assert_eq!(account["tg_user_id"], tg_user);
    assert_eq!(account["phone"], phone);
    assert_eq!(account["label"], "from telethon");
    let sent = json_of(
        app.post(
            &format!("/api/v1/telegram/accounts/{id}/messages"),
            Some(&token),
            json!({"peer": "me", "text": "imported from Telethon"}),
        )
        .await,
        201,
    )
    .await;
    assert!(sent["message_id"].as_i64().is_some());
    let msgs = app.state.sandbox.as_ref().unwrap().messages();
    assert!(msgs.iter().any(|m| m.text == "imported from Telethon"));

    // Idempotent: the same session again (in any format) is a duplicate of that account.
    let again = import(
        &app,
        &token,
        json!([{"format": "telethon", "session": string}]),
    )
    .await;
    assert_eq!(again[0]["status"], "duplicate");
    assert_eq!(again[0]["account_id"], id);
    // Another user learns that it is a duplicate, not whose.
    let (_, other, _) = app.user("other@example.org").await;
    let theirs = import(
        &app,
        &other,
        json!([{"format": "telethon", "session": string}]),
    )
    .await;
    assert_eq!(theirs[0]["status"], "duplicate");
    assert!(theirs[0].get("account_id").is_none());

    // Export: confirmation required, owner only, audited, the session never in the log.
    let path = format!("/api/v1/telegram/accounts/{id}/export?format=telethon");
    assert_eq!(
        error_code(app.get(&path, Some(&token)).await, 422).await,
        "EXPORT_NOT_CONFIRMED"
    );
    let confirmed = format!("{path}&confirm=true");
    assert_eq!(
        error_code(app.get(&confirmed, Some(&other)).await, 404).await,
        "NOT_FOUND"
    );
    let exported = json_of(app.get(&confirmed, Some(&token)).await, 200).await;
    assert_eq!(exported["format"], "telethon");
    let out = formats::parse_telethon(exported["session"].as_str().unwrap()).unwrap();
    assert_eq!((out.dc_id, out.auth_key), (dc, key));
    let logs = json_of(
        app.get(
            &format!("/api/v1/telegram/logs?account_id={id}&limit=100"),
            Some(&token),
        )
        .await,
        200,
    )
    .await;
    let text = logs.to_string();
    assert!(text.contains("session_exported"), "{text}");
    assert!(text.contains("session_imported"), "{text}");
    assert!(!text.contains(&string[..40]));
    app.shutdown().await;
}

/// A Telethon `.session` file (SQLite) written by Telethon's own SQLiteSession; prints the file's
/// bytes in base64, as the console sends a dropped file.
const TELETHON_FILE: &str = r#"
import sys, base64, os, tempfile
from telethon.sessions import SQLiteSession
from telethon.crypto import AuthKey
d = tempfile.mkdtemp()
path = os.path.join(d, "account")
s = SQLiteSession(path)
s.set_dc(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
s.auth_key = AuthKey(bytes.fromhex(sys.argv[4]))
s.save(); s.close()
data = open(path + ".session", "rb").read()
os.remove(path + ".session"); os.rmdir(d)
print(base64.b64encode(data).decode())
"#;

#[tokio::test]
async fn a_telethon_session_file_imports_from_its_bytes_and_goes_active() {
    let app = sandbox().await;
    let (_, token, _) = app.user("session-file@example.org").await;
    let phone = "+15550100231";
    let (dc, key, tg_user) = orphan_session(&app, &token, phone).await;
    let Some(file) = python("telethon", TELETHON_FILE, &telethon_args(&app, dc, key)) else {
        return;
    };
    let results = import(
        &app,
        &token,
        json!([
            {"format": "session_file", "session": file, "label": "account.session"},
            {"format": "session_file", "session": "bm90IGEgZmlsZQ=="},
            {"format": "session_file", "session": "%%%"}
        ]),
    )
    .await;
    assert_eq!(results[0]["status"], "imported", "{results:?}");
    assert_eq!(results[0]["state"], "active");
    for bad in &results[1..] {
        assert_eq!(bad["status"], "invalid", "{results:?}");
        assert_eq!(bad["code"], "SESSION_FILE_INVALID", "{results:?}");
    }
    let id = results[0]["account_id"].as_i64().unwrap();
    let account = json_of(
        app.get(&format!("/api/v1/telegram/accounts/{id}"), Some(&token))
            .await,
        200,
    )
    .await;
    assert_eq!(account["tg_user_id"], tg_user);
    assert_eq!(account["label"], "account.session");
    // The same key as a string is the same account.
    let again = import(
        &app,
        &token,
        json!([{"format": "session_file", "session": file}]),
    )
    .await;
    assert_eq!(again[0]["status"], "duplicate");
    assert_eq!(again[0]["account_id"], id);
    app.shutdown().await;
}

#[tokio::test]
async fn a_pyrogram_session_string_imports_and_goes_active() {
    let app = sandbox().await;
    let (_, token, _) = app.user("pyrogram@example.org").await;
    let (dc, key, tg_user) = orphan_session(&app, &token, "+15550100302").await;
    let Some(string) = python(
        "pyrogram",
        PYROGRAM,
        &[dc.to_string(), hex::encode(key), tg_user.to_string()],
    ) else {
        return;
    };
    let parsed = formats::parse_pyrogram(&string).unwrap();
    assert_eq!(parsed.session.user_id, Some(tg_user));
    let results = import(
        &app,
        &token,
        json!([{"format": "pyrogram", "session": string}]),
    )
    .await;
    assert_eq!(results[0]["status"], "imported", "{results:?}");
    assert_eq!(results[0]["state"], "active");

    // A Pyrogram string that claims another user is refused: the key decides who it is.
    let (dc2, key2, _) = orphan_session(&app, &token, "+15550100303").await;
    let mut liar = parsed.session.clone();
    liar.dc_id = dc2;
    liar.auth_key = key2;
    liar.user_id = Some(tg_user);
    let lie = formats::encode_pyrogram(&liar, 1).unwrap();
    let results = import(
        &app,
        &token,
        json!([{"format": "pyrogram", "session": lie}]),
    )
    .await;
    assert_eq!(results[0]["status"], "invalid");
    assert_eq!(results[0]["code"], "SESSION_USER_MISMATCH");
    app.shutdown().await;
}

/// Issue 11, item 11: deleting an authorized account logs it out of Telegram first, so a copy
/// of its session exported earlier stops working (unless the caller asked to keep it).
#[tokio::test]
async fn deleting_an_account_logs_out_the_copies_exported_from_it() {
    let app = sandbox().await;
    let (_, token, _) = app.user("gone@example.org").await;
    let id = logged_in_account(&app, &token, "+15550180001").await;
    let exported = json_of(
        app.get(
            &format!("/api/v1/telegram/accounts/{id}/export?format=tgfleet&confirm=true"),
            Some(&token),
        )
        .await,
        200,
    )
    .await;
    let copy = exported["session"].as_str().unwrap().to_owned();
    let r = app
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/telegram/accounts/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.status(), 204);
    let results = import(
        &app,
        &token,
        json!([{"format": "tgfleet", "session": copy}]),
    )
    .await;
    assert_eq!(results[0]["status"], "invalid", "{results:?}");
    assert_eq!(results[0]["code"], "SESSION_NOT_AUTHORIZED", "{results:?}");
    app.shutdown().await;
}

#[tokio::test]
async fn malformed_and_dead_sessions_get_per_item_errors() {
    let app = sandbox().await;
    let (_, token, _) = app.user("bad@example.org").await;
    let dc = app.state.sandbox.as_ref().unwrap();
    // Well-formed but never logged in: testdc knows the key, no user is bound to it.
    let dead = tgfleet_supervision::account::ForeignSession {
        dc_id: 2,
        addr: Some(dc.dc_addr(2)),
        auth_key: tgfleet_testdc::new_auth_key(),
        user_id: None,
        bot: None,
    };
    let dead = formats::encode_telethon(&dead).unwrap();
    let items = json!([
        {"format": "telethon", "session": "not a session"},
        {"format": "telethon", "session": &dead[..100]},
        {"format": "pyrogram", "session": "AAAA"},
        {"format": "tgfleet", "session": "tgf1.e30"},
        {"format": "kurigram", "session": "x"},
        {"format": "telethon", "session": dead},
        {"format": "telethon", "session": dead},
    ]);
    let results = import(&app, &token, items).await;
    let codes: Vec<(&str, &str)> = results
        .iter()
        .map(|r| (r["status"].as_str().unwrap(), r["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        codes,
        vec![
            ("invalid", "INVALID_SESSION"),
            ("invalid", "INVALID_SESSION"),
            ("invalid", "INVALID_SESSION"),
            ("invalid", "INVALID_SESSION"),
            ("invalid", "UNKNOWN_FORMAT"),
            ("invalid", "SESSION_NOT_AUTHORIZED"),
            ("duplicate", "DUPLICATE_IN_REQUEST"),
        ],
        "{results:?}"
    );
    for r in &results {
        assert!(!r["error"].as_str().unwrap().is_empty());
    }
    // Nothing was kept.
    let page = json_of(
        app.get("/api/v1/telegram/accounts", Some(&token)).await,
        200,
    )
    .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 0);
    // The batch is bounded; an empty one is refused too.
    let many: Vec<Value> = (0..101)
        .map(|_| json!({"format": "telethon", "session": "x"}))
        .collect();
    let r = app
        .post(
            "/api/v1/telegram/accounts/import",
            Some(&token),
            json!({ "sessions": many }),
        )
        .await;
    assert_eq!(error_code(r, 422).await, "VALIDATION_FAILED");
    let r = app
        .post(
            "/api/v1/telegram/accounts/import",
            Some(&token),
            json!({ "sessions": [] }),
        )
        .await;
    assert_eq!(error_code(r, 422).await, "VALIDATION_FAILED");
    app.shutdown().await;
}

/// A testdc as `tgfleet testdc` runs it: its DCs plus the loopback control API, in this process.
/// Returns the handle and the control URL `telegram.testdc_control` takes.
async fn standalone_testdc() -> (tgfleet_testdc::TestDc, String) {
    let dc = tgfleet_testdc::TestDc::start(tgfleet_testdc::TestDcConfig::default())
        .await
        .unwrap();
    let control = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", control.local_addr().unwrap());
    let router = tgfleet_testdc::control_router(dc.clone());
    tokio::spawn(async move {
        let _ = axum::serve(control, router).await;
    });
    (dc, url)
}

/// Logs `phone` in on a fleet whose Telegram is the standalone testdc (code read from testdc) and
/// exports its key: a session logged in on that testdc by some other client.
async fn session_on(app: &TestApp, dc: &tgfleet_testdc::TestDc, phone: &str) -> (i32, [u8; 256]) {
    let (_, token, _) = app
        .user(&format!("{}@elsewhere.example", &phone[1..]))
        .await;
    dc.add_user(tgfleet_testdc::UserSpec {
        phone: phone.into(),
        first_name: "Elsewhere".into(),
        last_name: None,
        username: None,
        password: None,
        dc_id: 2,
        registered: true,
    });
    let id = common::create_user_account(app, &token).await;
    common::send_code(app, &token, id, phone).await;
    let code = dc.last_code(phone).unwrap();
    let signed = json_of(
        app.post(
            &format!("/api/v1/telegram/accounts/{id}/login/sign-in"),
            Some(&token),
            json!({ "code": code }),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(signed["state"], "active");
    let exported = json_of(
        app.get(
            &format!("/api/v1/telegram/accounts/{id}/export?format=tgfleet&confirm=true"),
            Some(&token),
        )
        .await,
        200,
    )
    .await;
    let session = formats::parse_tgfleet(exported["session"].as_str().unwrap()).unwrap();
    (session.dc_id, session.auth_key)
}

/// Issue 11 item 12: `tgfleet testdc`, `serve` with `telegram.testdc_control`, Telethon strings
/// logged in on that testdc → every row imported and active (it used to answer
/// TELEGRAM_NOT_CONFIGURED: import worked out its own target and had no testdc_control branch).
#[tokio::test]
async fn telethon_sessions_import_against_a_standalone_testdc() {
    let (dc, control) = standalone_testdc().await;
    // Where the sessions were logged in: another install on the same testdc, stopped afterwards
    // so no key is live on two connections.
    let elsewhere =
        TestApp::spawn_with(|s| s.telegram.testdc_control = Some(control.clone())).await;
    let phones = ["+15550100401", "+15550100402"];
    let mut keys = Vec::new();
    for phone in phones {
        keys.push(session_on(&elsewhere, &dc, phone).await);
    }
    elsewhere.shutdown().await;

    let mut strings = Vec::new();
    for (dc_id, key) in &keys {
        let port = dc.dc_addr(*dc_id).port();
        let Some(s) = python(
            "telethon",
            TELETHON,
            &[
                dc_id.to_string(),
                "127.0.0.1".into(),
                port.to_string(),
                hex::encode(key),
            ],
        ) else {
            return;
        };
        strings.push(s);
    }

    let app = TestApp::spawn_with(|s| s.telegram.testdc_control = Some(control.clone())).await;
    let (_, token, _) = app.user("newcomer@example.org").await;
    let items: Vec<Value> = strings
        .iter()
        .map(|s| json!({"format": "telethon", "session": s}))
        .collect();
    let results = import(&app, &token, Value::Array(items)).await;
    assert_eq!(results.len(), phones.len());
    for (r, phone) in results.iter().zip(phones) {
        assert_eq!(r["status"], "imported", "{results:?}");
        let id = r["account_id"].as_i64().unwrap();
        let account = json_of(
            app.get(&format!("/api/v1/telegram/accounts/{id}"), Some(&token))
                .await,
            200,
        )
        .await;
        assert_eq!(account["state"], "active", "{account}");
        assert_eq!(account["phone"], phone);
    }
    app.shutdown().await;
    dc.shutdown().await;
}

/// A session logged in on the sandbox that no account holds, as a Telethon string.
async fn foreign_telethon(app: &TestApp, token: &str, phone: &str) -> String {
    let (dc_id, auth_key, user_id) = orphan_session(app, token, phone).await;
    let dc = app.state.sandbox.as_ref().unwrap();
    formats::encode_telethon(&tgfleet_supervision::account::ForeignSession {
        dc_id,
        addr: Some(dc.dc_addr(dc_id)),
        auth_key,
        user_id: Some(user_id),
        bot: Some(false),
    })
    .unwrap()
}

/// Issue 11, item 4: each item opens a Telegram connection, so one user's items per minute are
/// bounded, whatever the items are and however many requests carry them.
#[tokio::test]
async fn import_items_per_user_per_minute_are_bounded() {
    let app = TestApp::spawn_with(|s| {
        s.sandbox = true;
        s.import.items_per_minute_per_user = 3;
    })
    .await;
    let (_, ann, _) = app.user("ann@example.org").await;
    let (_, ben, _) = app.user("ben@example.org").await;
    let junk = |n: usize| -> Value {
        (0..n)
            .map(|_| json!({"format": "telethon", "session": "x"}))
            .collect()
    };
    let too_many = app
        .post(
            "/api/v1/telegram/accounts/import",
            Some(&ann),
            json!({ "sessions": junk(4) }),
        )
        .await;
    // More than a minute's budget in one request can never pass.
    assert_eq!(error_code(too_many, 422).await, "IMPORT_BATCH_TOO_LARGE");
    assert_eq!(import(&app, &ann, junk(2)).await.len(), 2);
    let over = app
        .post(
            "/api/v1/telegram/accounts/import",
            Some(&ann),
            json!({ "sessions": junk(2) }),
        )
        .await;
    assert!(over.headers().get("retry-after").is_some());
    assert_eq!(error_code(over, 429).await, "IMPORT_RATE_LIMITED");
    // Another user has a budget of their own.
    assert_eq!(import(&app, &ben, junk(3)).await.len(), 3);
    app.shutdown().await;
}

/// Issue 11, item 4: the session checks of every request share one process-wide bound; a
/// request that finds no free check within the queueing time gets 503 IMPORT_BUSY with
/// Retry-After, and nothing of it is imported.
#[tokio::test]
async fn session_checks_are_bounded_across_requests() {
    let app = TestApp::spawn_with(|s| {
        s.sandbox = true;
        s.import.max_concurrent_probes = 1;
        s.import.probe_queue_timeout_s = 1;
    })
    .await;
    let (_, token, _) = app.user("probe@example.org").await;
    let slow_phone = "+15550180011";
    let slow = foreign_telethon(&app, &token, slow_phone).await;
    let other = foreign_telethon(&app, &token, "+15550180012").await;
    // The first request's check hangs on a slow Telegram for 4 s, holding the only slot.
    let dc = app.state.sandbox.as_ref().unwrap();
    dc.faults()
        .delay_phone(slow_phone, std::time::Duration::from_secs(4))
        .unwrap();
    let first = {
        let (client, base, token) = (app.client.clone(), app.base.clone(), token.clone());
        tokio::spawn(async move {
            client
                .post(format!("{base}/api/v1/telegram/accounts/import"))
                .bearer_auth(token)
                .json(&json!({"sessions": [{"format": "telethon", "session": slow}]}))
                .send()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let busy = app
        .post(
            "/api/v1/telegram/accounts/import",
            Some(&token),
            json!({"sessions": [{"format": "telethon", "session": other}]}),
        )
        .await;
    assert!(busy.headers().get("retry-after").is_some());
    assert_eq!(error_code(busy, 503).await, "IMPORT_BUSY");
    let first: Value = json_of(first.await.unwrap(), 200).await;
    assert_eq!(first["results"][0]["status"], "imported", "{first}");
    // Once the slot is free, the refused session imports.
    let again = import(
        &app,
        &token,
        json!([{"format": "telethon", "session": other}]),
    )
    .await;
    assert_eq!(again[0]["status"], "imported", "{again:?}");
    app.shutdown().await;
}

/// Issue 11, item 6: an import runs to its end even when the client hangs up in the middle:
/// the item is stored whole (active, with its session), not cancelled between its Telegram check
/// and its write.
#[tokio::test]
async fn an_import_whose_client_hangs_up_still_lands_whole() {
    let app = sandbox().await;
    let (_, token, _) = app.user("hangup@example.org").await;
    let phone = "+15550180021";
    let session = foreign_telethon(&app, &token, phone).await;
    // Telegram answers this account's check after 2 s; the client gives up after 0.5 s.
    let dc = app.state.sandbox.as_ref().unwrap();
    dc.faults()
        .delay_phone(phone, std::time::Duration::from_secs(2))
        .unwrap();
    let impatient = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(500))
        .build()
        .unwrap();
    let hung_up = impatient
        .post(format!("{}/api/v1/telegram/accounts/import", app.base))
        .bearer_auth(&token)
        .json(&json!({"sessions": [{"format": "telethon", "session": session}]}))
        .send()
        .await;
    assert!(hung_up.is_err(), "the client gave up before the answer");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let id = loop {
        let page = json_of(
            app.get("/api/v1/telegram/accounts", Some(&token)).await,
            200,
        )
        .await;
        if let Some(a) = page["items"].as_array().unwrap().first() {
            if a["state"] == "active" {
                break a["id"].as_i64().unwrap();
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the import never finished: {page}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    dc.faults().clear_phone(phone);
    let sent = app
        .post(
            &format!("/api/v1/telegram/accounts/{id}/messages"),
            Some(&token),
            json!({"peer": "me", "text": "imported while nobody waited"}),
        )
        .await;
    assert_eq!(sent.status(), 201);
    app.shutdown().await;
}

/// Issue 16 item 2: a session imported with its app and device keeps them. Its connections —
/// the check before it becomes an account, and the account's own — carry that api_id and
/// device; the api_hash is kept sealed and never shown; malformed ones are the item's error.
#[tokio::test]
async fn an_imported_session_keeps_its_app_and_device() {
    let app = sandbox().await;
    let (_, token, _) = app.user("app@example.org").await;
    let phone = "+15550160001";
    let (dc, key, tg_user) = orphan_session(&app, &token, phone).await;
    let testdc = app.state.sandbox.as_ref().unwrap();
    let string = formats::encode_tgfleet(&tgfleet_supervision::account::ForeignSession {
        dc_id: dc,
        addr: Some(testdc.dc_addr(dc)),
        auth_key: key,
        user_id: Some(tg_user),
        bot: Some(false),
    });
    let hash = "00112233445566778899aabbccddeeff";

    let refused = import(
        &app,
        &token,
        json!([
            {"format": "tgfleet", "session": string, "api_id": 4242},
            {"format": "tgfleet", "session": string, "api_hash": hash},
            {"format": "tgfleet", "session": string, "api_id": 4242, "api_hash": "not hex"},
            {"format": "tgfleet", "session": string, "api_id": -1, "api_hash": hash},
            {"format": "tgfleet", "session": string, "device": {"lang_code": "english"}},
            {"format": "tgfleet", "session": string, "device": {"device_model": "Nokia 3310"}},
        ]),
    )
    .await;
    let codes: Vec<&str> = refused
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "INVALID_APP",
            "INVALID_APP",
            "INVALID_APP",
            "INVALID_APP",
            "INVALID_DEVICE",
            "INVALID_DEVICE"
        ],
        "{refused:?}"
    );
    assert!(refused[4]["error"]
        .as_str()
        .unwrap()
        .contains("device.lang_code"));

    let before = testdc.connection_inits(None).last().map_or(0, |c| c.seq);
    let results = import(
        &app,
        &token,
        json!([{
            "format": "tgfleet",
            "session": string,
            "api_id": 4242,
            "api_hash": hash,
            "device": {"device_model": "Latitude 5420", "system_version": "Windows 11"},
        }]),
    )
    .await;
    assert_eq!(results[0]["status"], "imported", "{results:?}");
    let id = results[0]["account_id"].as_i64().unwrap();
    let account = json_of(
        app.get(&format!("/api/v1/telegram/accounts/{id}"), Some(&token))
            .await,
        200,
    )
    .await;
    assert_eq!(account["api_id"], 4242);
    assert_eq!(account["device"]["device_model"], "Latitude 5420");
    assert_eq!(account["device"]["system_version"], "Windows 11");
    // What it did not say is drawn from the same platform: a Telegram Desktop version for
    // Windows, never an Android or iOS one.
    let app_version = account["device"]["app_version"].as_str().unwrap();
    assert!(app_version.ends_with(" x64"), "{app_version}");
    assert!(
        !account.to_string().contains(hash),
        "the api_hash was shown: {account}"
    );

    // The check and the account's own connection (it went active) both spoke as this device
    // of this app.
    let seen: Vec<_> = testdc
        .connection_inits(Some(phone))
        .into_iter()
        .filter(|c| c.seq > before)
        .collect();
    assert!(seen.len() >= 2, "{seen:?}");
    for c in &seen {
        assert_eq!(c.init.api_id, 4242, "{c:?}");
        assert_eq!(c.init.device_model, "Latitude 5420", "{c:?}");
        assert_eq!(c.init.system_version, "Windows 11", "{c:?}");
        assert_eq!(
            c.init.app_version,
            account["device"]["app_version"].as_str().unwrap()
        );
    }
    // Revoked and logged in again, the account's login speaks for its own app: testdc saw
    // auth.sendCode carry the imported api_id and api_hash, and the fresh key's connection
    // introduce itself as that app and device.
    json_of(
        app.post(
            "/api/v1/sandbox/faults",
            Some(&token),
            json!({"kind": "revoke", "phone": phone}),
        )
        .await,
        200,
    )
    .await;
    let r = app
        .post(
            &format!("/api/v1/telegram/accounts/{id}/messages"),
            Some(&token),
            json!({"peer": "me", "text": "x"}),
        )
        .await;
    assert_eq!(error_code(r, 409).await, "ACCOUNT_UNAUTHORIZED");
    let after_revoke = testdc.connection_inits(None).last().map_or(0, |c| c.seq);
    let step = code_login(&app, &token, id, phone).await;
    assert_eq!(step["state"], "active", "{step}");
    assert_eq!(testdc.last_code_app(phone), Some((4242, hash.to_owned())));
    let relogged: Vec<_> = testdc
        .connection_inits(Some(phone))
        .into_iter()
        .filter(|c| c.seq > after_revoke)
        .collect();
    assert!(!relogged.is_empty());
    assert!(
        relogged
            .iter()
            .all(|c| c.init.api_id == 4242 && c.init.device_model == "Latitude 5420"),
        "{relogged:?}"
    );

    // And a session without an app speaks for the fleet's.
    let other = json_of(
        app.get(
            &format!(
                "/api/v1/telegram/accounts/{}",
                logged_in_account(&app, &token, "+15550160002").await
            ),
            Some(&token),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(other["api_id"], Value::Null);
    let fleet_app = testdc.connection_inits(Some("+15550160002"));
    assert!(!fleet_app.is_empty());
    // The sandbox's app (api/src/startup.rs).
    assert!(
        fleet_app.iter().all(|c| c.init.api_id == 17349),
        "{fleet_app:?}"
    );
    assert_eq!(
        testdc.last_code_app("+15550160002").map(|(id, _)| id),
        Some(17349)
    );
    app.shutdown().await;
}

/// A 2FA phone's live session belonging to no account (logged in with its password, exported,
/// the account deleted with its authorization kept), as a tgfleet export string.
async fn orphan_two_fa_session(app: &TestApp, token: &str, phone: &str) -> String {
    let id = common::create_user_account(app, token).await;
    let step = code_login(app, token, id, phone).await;
    assert_eq!(step["state"], "awaiting_password", "{step}");
    let step = json_of(
        app.post(
            &format!("/api/v1/telegram/accounts/{id}/login/password"),
            Some(token),
            json!({"password": "sandbox-2fa"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(step["state"], "active", "{step}");
    let exported = json_of(
        app.get(
            &format!("/api/v1/telegram/accounts/{id}/export?format=tgfleet&confirm=true"),
            Some(token),
        )
        .await,
        200,
    )
    .await;
    let r = app
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/telegram/accounts/{id}?keep_authorization=true"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(r.status(), 204);
    exported["session"].as_str().unwrap().to_owned()
}

/// Revokes `phone`'s authorization at testdc; account `id` learns it at its next call.
async fn revoke(app: &TestApp, token: &str, id: i64, phone: &str) {
    json_of(
        app.post(
            "/api/v1/sandbox/faults",
            Some(token),
            json!({"kind": "revoke", "phone": phone}),
        )
        .await,
        200,
    )
    .await;
    let r = app
        .post(
            &format!("/api/v1/telegram/accounts/{id}/messages"),
            Some(token),
            json!({"peer": "me", "text": "x"}),
        )
        .await;
    assert_eq!(error_code(r, 409).await, "ACCOUNT_UNAUTHORIZED");
}

async fn account_logs(app: &TestApp, token: &str, id: i64) -> String {
    json_of(
        app.get(
            &format!("/api/v1/telegram/logs?account_id={id}"),
            Some(token),
        )
        .await,
        200,
    )
    .await
    .to_string()
}

/// Issue 16 item 3: the 2FA password a bought session came with is kept sealed, and a re-login
/// that meets the password step answers it by itself; a wrong one leaves the step to the user.
#[tokio::test]
async fn an_imported_two_fa_password_answers_the_password_step_of_a_re_login() {
    let app = sandbox().await;
    let (_, token, _) = app.user("twofa@example.org").await;
    // Last digit 9: the sandbox gives the phone the 2FA password sandbox-2fa.
    let phone = "+15550160109";
    let string = orphan_two_fa_session(&app, &token, phone).await;

    let refused = import(
        &app,
        &token,
        json!([{"format": "tgfleet", "session": string, "two_fa_password": ""}]),
    )
    .await;
    assert_eq!(refused[0]["code"], "INVALID_TWO_FA_PASSWORD", "{refused:?}");
    let results = import(
        &app,
        &token,
        json!([{"format": "tgfleet", "session": string, "two_fa_password": "sandbox-2fa"}]),
    )
    .await;
    assert_eq!(results[0]["status"], "imported", "{results:?}");
    let id = results[0]["account_id"].as_i64().unwrap();
    let account = json_of(
        app.get(&format!("/api/v1/telegram/accounts/{id}"), Some(&token))
            .await,
        200,
    )
    .await;
    assert_eq!(account["two_fa_password_stored"], true, "{account}");
    assert!(!account.to_string().contains("sandbox-2fa"), "{account}");
    // Sealed at rest: the row holds no trace of it.
    let sealed = app
        .state
        .store
        .account_two_fa_password(id)
        .await
        .unwrap()
        .expect("stored");
    assert!(!sealed.windows(11).any(|w| w == b"sandbox-2fa"));

    // Revoked, logged in again with only the code: the stored password finished the login.
    revoke(&app, &token, id, phone).await;
    let step = code_login(&app, &token, id, phone).await;
    assert_eq!(step["state"], "active", "{step}");
    assert!(
        account_logs(&app, &token, id)
            .await
            .contains("code and the stored 2FA password"),
        "the log does not say how"
    );

    // A wrong stored password: the step is the user's, as without one, and the log says why.
    let wrong = json_of(
        app.request(
            reqwest::Method::PATCH,
            &format!("/api/v1/telegram/accounts/{id}"),
            Some(&token),
            Some(json!({"two_fa_password": "not-it"})),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(wrong["two_fa_password_stored"], true);
    revoke(&app, &token, id, phone).await;
    let step = code_login(&app, &token, id, phone).await;
    assert_eq!(step["state"], "awaiting_password", "{step}");
    assert!(account_logs(&app, &token, id)
        .await
        .contains("the stored one did not do (Telegram refused it; it is forgotten)"));
    // Forgotten, so no later login spends an attempt on it.
    let after = json_of(
        app.get(&format!("/api/v1/telegram/accounts/{id}"), Some(&token))
            .await,
        200,
    )
    .await;
    assert_eq!(after["two_fa_password_stored"], false, "{after}");
    assert_eq!(
        app.state.store.account_two_fa_password(id).await.unwrap(),
        None
    );
    let step = json_of(
        app.post(
            &format!("/api/v1/telegram/accounts/{id}/login/password"),
            Some(&token),
            json!({"password": "sandbox-2fa"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(step["state"], "active", "{step}");

    // Stored again and forgotten by the owner: the next re-login asks again, and nothing is tried.
    json_of(
        app.request(
            reqwest::Method::PATCH,
            &format!("/api/v1/telegram/accounts/{id}"),
            Some(&token),
            Some(json!({"two_fa_password": "sandbox-2fa"})),
        )
        .await,
        200,
    )
    .await;
    let forgotten = json_of(
        app.request(
            reqwest::Method::PATCH,
            &format!("/api/v1/telegram/accounts/{id}"),
            Some(&token),
            Some(json!({"two_fa_password": null})),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(forgotten["two_fa_password_stored"], false);
    assert_eq!(
        app.state.store.account_two_fa_password(id).await.unwrap(),
        None
    );
    revoke(&app, &token, id, phone).await;
    let step = code_login(&app, &token, id, phone).await;
    assert_eq!(step["state"], "awaiting_password", "{step}");
    let bad = app
        .request(
            reqwest::Method::PATCH,
            &format!("/api/v1/telegram/accounts/{id}"),
            Some(&token),
            Some(json!({"two_fa_password": ""})),
        )
        .await;
    assert_eq!(bad.status(), 422);
    app.shutdown().await;
}
