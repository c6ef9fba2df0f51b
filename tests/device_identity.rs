//! Issue 16 item 2: every account is its own device to Telegram. Against a standalone testdc,
//! which records what each connection's initConnection carried (`GET /connections`): two
//! accounts show Telegram their own identities; a refused `PATCH` changes nothing; after a
//! `PATCH device` the account's next connection — at once, and after `tgfleet serve` is killed
//! and started again — carries the new values.

mod support;

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::{call, serve, wait_until_up};

const PHONE_A: &str = "+15550016601";
const PHONE_B: &str = "+15550016602";
/// The api_id tgfleet uses against a testdc (`api/src/startup.rs`).
const SANDBOX_API_ID: i64 = 17349;
const FIELDS: [&str; 5] = [
    "device_model",
    "system_version",
    "app_version",
    "system_lang_code",
    "lang_code",
];

/// The initConnection records of `phone`'s keys after `after`, oldest first.
async fn connections(http: &reqwest::Client, control: &str, phone: &str, after: u64) -> Vec<Value> {
    let page = call(
        http.get(format!("{control}/connections"))
            .query(&[("phone", phone), ("after", &after.to_string())]),
        200,
        "reading testdc's connections",
    )
    .await;
    page["connections"].as_array().unwrap().clone()
}

/// The newest record's `seq` of the whole DC.
async fn newest_seq(http: &reqwest::Client, control: &str) -> u64 {
    let page = call(
        http.get(format!("{control}/connections")),
        200,
        "reading testdc's connections",
    )
    .await;
    page["connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["seq"].as_u64())
        .max()
        .unwrap_or(0)
}

/// Waits (bounded) for a connection of `phone` after `after`; returns every one there is.
async fn next_connections(
    http: &reqwest::Client,
    control: &str,
    phone: &str,
    after: u64,
    what: &str,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = connections(http, control, phone, after).await;
        if !found.is_empty() {
            return found;
        }
        assert!(Instant::now() < deadline, "{what}: no new connection");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every record in `seen` carries `device` (an account's `device` object) and the fleet's app.
fn assert_carry(seen: &[Value], device: &Value, what: &str) {
    assert!(!seen.is_empty(), "{what}: no connection");
    for c in seen {
        for f in FIELDS {
            assert_eq!(c[f], device[f], "{what}: {f} of {c}");
        }
        assert_eq!(c["api_id"], SANDBOX_API_ID, "{what}: {c}");
    }
}

async fn account(http: &reqwest::Client, api: &str, token: &str, id: i64) -> Value {
    call(
        http.get(format!("{api}/api/v1/telegram/accounts/{id}"))
            .bearer_auth(token),
        200,
        "reading an account",
    )
    .await
}

async fn wait_active(http: &reqwest::Client, api: &str, token: &str, id: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let a = account(http, api, token, id).await;
        if a["state"] == "active" {
            return;
        }
        assert!(Instant::now() < deadline, "never active again: {a}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn patch(
    http: &reqwest::Client,
    api: &str,
    token: &str,
    id: i64,
    body: Value,
) -> reqwest::Response {
    http.patch(format!("{api}/api/v1/telegram/accounts/{id}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("PATCH account")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_account_is_its_own_device_and_a_patched_one_is_what_telegram_sees_next() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let (_testdc, control) = support::testdc(dir.path(), &[], &http).await;
    let (mut first, api) = serve(dir.path(), &control, "serve1", &[]);
    wait_until_up(&http, &format!("{api}/api/v1/health"), "tgfleet serve").await;
    let token = support::user_token(&http, &api).await;

    // (1) Accounts are drawn their own identities, and each connection carries its account's.
    let a = support::logged_in_account(&http, &api, &token, &control, PHONE_A).await;
    let b = support::logged_in_account(&http, &api, &token, &control, PHONE_B).await;
    let mut models = std::collections::HashSet::new();
    for _ in 0..6 {
        let more = call(
            http.post(format!("{api}/api/v1/telegram/accounts"))
                .bearer_auth(&token)
                .json(&json!({"kind": "user"})),
            201,
            "create",
        )
        .await;
        models.insert(more["device"]["device_model"].as_str().unwrap().to_owned());
    }
    let device_a = account(&http, &api, &token, a).await["device"].clone();
    let device_b = account(&http, &api, &token, b).await["device"].clone();
    models.insert(device_a["device_model"].as_str().unwrap().to_owned());
    models.insert(device_b["device_model"].as_str().unwrap().to_owned());
    assert!(
        models.len() > 1,
        "eight accounts, one device model: {models:?}"
    );
    assert!(account(&http, &api, &token, a)
        .await
        .get("api_hash")
        .is_none());
    assert_carry(
        &connections(&http, &control, PHONE_A, 0).await,
        &device_a,
        "account A",
    );
    assert_carry(
        &connections(&http, &control, PHONE_B, 0).await,
        &device_b,
        "account B",
    );

    // (3) Bad input: 422 naming each bad field, nothing written, no reconnect.
    let seen = newest_seq(&http, &control).await;
    let refused = patch(
        &http,
        &api,
        &token,
        a,
        json!({"device": {"device_model": "", "lang_code": "english!", "app_version": "11.1.3"}}),
    )
    .await;
    assert_eq!(refused.status().as_u16(), 422);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "VALIDATION_FAILED", "{body}");
    let fields: Vec<&str> = body["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["device.device_model", "device.lang_code"],
        "{body}"
    );
    for bad in [
        json!({"device": {"system_version": "x".repeat(65)}}),
        json!({"device": {"system_lang_code": "en_US"}}),
        json!({"device": {"device_model": "a\u{7}b"}}),
    ] {
        let r = patch(&http, &api, &token, a, bad.clone()).await;
        assert_eq!(r.status().as_u16(), 422, "{bad}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "VALIDATION_FAILED", "{bad}: {body}");
    }
    let unknown = patch(&http, &api, &token, a, json!({"device": {"colour": "red"}})).await;
    assert_eq!(unknown.status().as_u16(), 422);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["code"], "INVALID_BODY", "{body}");
    assert_eq!(account(&http, &api, &token, a).await["device"], device_a);
    assert!(
        connections(&http, &control, PHONE_A, seen).await.is_empty(),
        "a refused PATCH reconnected the account"
    );

    // (2) A PATCH reconnects the account at once, as the new device.
    let new_device = json!({
        "device_model": "Google Pixel 8 Pro",
        "system_version": "SDK 34",
        "app_version": "11.1.3",
        "system_lang_code": "de-DE",
        "lang_code": "de",
    });
    let patched = patch(&http, &api, &token, a, json!({"device": new_device})).await;
    assert_eq!(patched.status().as_u16(), 200);
    let patched: Value = patched.json().await.unwrap();
    assert_eq!(patched["device"], new_device);
    // Only what is named changes.
    let partial = patch(
        &http,
        &api,
        &token,
        a,
        json!({"device": {"lang_code": " de "}}),
    )
    .await;
    assert_eq!(partial.status().as_u16(), 200);
    assert_eq!(partial.json::<Value>().await.unwrap()["device"], new_device);
    let after_patch = next_connections(&http, &control, PHONE_A, seen, "after the PATCH").await;
    assert_carry(&after_patch, &new_device, "account A after the PATCH");
    wait_active(&http, &api, &token, a).await;
    assert_eq!(
        support::send(&http, &api, &token, a, "as a Pixel").await,
        201
    );
    assert_carry(
        &connections(&http, &control, PHONE_B, 0).await,
        &device_b,
        "account B, untouched",
    );

    // After the process is killed and started again: the same, from the row.
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    let seen = newest_seq(&http, &control).await;
    let (_second, api) = serve(dir.path(), &control, "serve2", &[]);
    wait_until_up(
        &http,
        &format!("{api}/api/v1/health"),
        "tgfleet serve again",
    )
    .await;
    wait_active(&http, &api, &token, a).await;
    wait_active(&http, &api, &token, b).await;
    assert_eq!(account(&http, &api, &token, a).await["device"], new_device);
    let restarted = next_connections(&http, &control, PHONE_A, seen, "after the restart").await;
    assert_carry(&restarted, &new_device, "account A after the restart");
    let restarted = next_connections(&http, &control, PHONE_B, seen, "after the restart").await;
    assert_carry(&restarted, &device_b, "account B after the restart");
}
