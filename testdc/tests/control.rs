//! The control HTTP API drives the same DC the real client talks to.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{
    bounded, client_with_key, client_with_params, log_in, rpc_error, start, API_HASH, API_ID,
};
use serde_json::{json, Value};
use tgfleet_testdc::{control_router, new_auth_key};
use tower::ServiceExt;

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(match body {
            Some(b) => Body::from(b.to_string()),
            None => Body::empty(),
        })
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn control_api_sets_up_users_keys_codes_and_faults() {
    let dc = start().await;
    let app = control_router(dc.clone());

    let (s, _) = call(
        &app,
        "POST",
        "/users",
        Some(json!({"phone": "+15550006001", "first_name": "Ctl", "username": "ctl"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let key = new_auth_key();
    let (s, _) = call(
        &app,
        "POST",
        "/keys",
        Some(json!({"key": hex::encode(key)})),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = call(&app, "POST", "/keys", Some(json!({"key": "abcd"}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let c = client_with_key(&dc, 2, key).await;
    let token = bounded(c.client.request_login_code("+15550006001", API_HASH))
        .await
        .unwrap();
    let (s, code) = call(&app, "GET", "/codes/15550006001", None).await;
    assert_eq!(s, StatusCode::OK);
    let code = code["code"].as_str().unwrap().to_owned();
    bounded(c.client.sign_in(&token, &code)).await.unwrap();

    let (s, _) = call(
        &app,
        "POST",
        "/faults",
        Some(json!({"kind": "flood_wait", "method": "users.getUsers", "seconds": 120})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let e = rpc_error(bounded(c.client.get_me()).await.map(|_| ()));
    assert_eq!(e.name, "FLOOD_WAIT");
    let (s, _) = call(&app, "POST", "/faults", Some(json!({"kind": "clear"}))).await;
    assert_eq!(s, StatusCode::OK);
    let me = bounded(c.client.get_me()).await.unwrap();
    let me_ref = me.to_ref().await.unwrap().unwrap();
    bounded(c.client.send_message(me_ref, "via control"))
        .await
        .unwrap();

    let (_, msgs) = call(&app, "GET", "/messages", None).await;
    assert_eq!(msgs[0]["text"], "via control");
    let (_, stats) = call(&app, "GET", "/stats", None).await;
    assert!(stats["connections"].as_u64().unwrap() >= 1);
    let (s, _) = call(&app, "POST", "/faults", Some(json!({"kind": "nonsense"}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn control_api_sends_messages_and_sets_catch_up_limits() {
    let dc = start().await;
    let app = control_router(dc.clone());
    let alice = dc.add_user(tgfleet_testdc::UserSpec::new("+15550006101", "Alice"));

    // A new sender phone becomes a user; the answer numbers the message on both sides.
    let (s, sent) = call(
        &app,
        "POST",
        "/messages",
        Some(json!({"from_phone": "+15550006199", "to": "+15550006101", "text": "hi"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{sent}");
    assert_eq!(sent["message_id"], 1);
    assert_eq!(sent["recipient_message_id"], 1);
    assert_eq!(sent["recipient_pts"], 2);
    assert!(sent["date"].as_i64().unwrap() > 0);
    // A Bot-API user id as a number works too.
    let (s, _) = call(
        &app,
        "POST",
        "/messages",
        Some(json!({"from_phone": "+15550006199", "to": alice, "text": "again"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let texts: Vec<_> = dc
        .chat_messages("+15550006101")
        .unwrap()
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(texts, ["hi", "again"]);

    let (s, e) = call(
        &app,
        "POST",
        "/messages",
        Some(json!({"from_phone": "+15550006199", "to": "@nobody_here", "text": "x"})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(e["error"]["code"], "PEER_ID_INVALID");
    let (s, _) = call(
        &app,
        "POST",
        "/messages",
        Some(json!({"from_phone": "+15550006199", "to": "+15550006101", "text": " "})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let (s, limits) = call(
        &app,
        "POST",
        "/limits",
        Some(json!({"difference_too_long": 3})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(limits["difference_too_long"], 3);
    assert_eq!(limits["difference_page"], 100);
    assert_eq!(dc.update_limits().difference_too_long, 3);
    let (s, _) = call(&app, "POST", "/limits", Some(json!({"difference_page": 0}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (_, limits) = call(&app, "POST", "/limits", Some(json!({}))).await;
    assert_eq!(limits["difference_too_long"], 10_000);
    let (s, limits) = call(&app, "GET", "/limits", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(limits["channel_difference_too_long"], 10_000);
}

/// Issue 16 item 2: what each connection's initConnection carried is on `GET /connections`,
/// with the user logged in on its key (also for a connection made before that login).
#[tokio::test]
async fn connections_show_what_each_initconnection_carried_and_whose_key_it_was() {
    let dc = start().await;
    let app = control_router(dc.clone());
    let params = |model: &str, lang: &str| grammers_mtsender::ConnectionParams {
        device_model: model.into(),
        system_version: "SDK 34".into(),
        app_version: "10.14.5".into(),
        system_lang_code: format!("{lang}-XX"),
        lang_code: lang.into(),
        retry_policy: Box::new(grammers_mtsender::NoRetries),
        ..Default::default()
    };
    let (k1, k2) = (new_auth_key(), new_auth_key());
    dc.register_auth_key(k1);
    dc.register_auth_key(k2);
    dc.add_user(tgfleet_testdc::UserSpec::new("+15550006161", "Device"));
    let one = client_with_params(&dc, 2, k1, params("Google Pixel 7", "de")).await;
    let two = client_with_params(&dc, 2, k2, params("iPhone 15", "fr")).await;
    log_in(&dc, &one, "+15550006161").await;
    // The second only connects, and is nobody yet.
    assert!(bounded(two.client.is_authorized()).await.is_ok());

    let (s, all) = call(&app, "GET", "/connections", None).await;
    assert_eq!(s, StatusCode::OK);
    let all = all["connections"].as_array().unwrap().clone();
    assert_eq!(all.len(), 2, "one connection each: {all:?}");
    let (s, mine) = call(&app, "GET", "/connections?phone=%2B15550006161", None).await;
    assert_eq!(s, StatusCode::OK);
    let mine = mine["connections"].as_array().unwrap();
    assert_eq!(mine.len(), 1, "{mine:?}");
    let c = &mine[0];
    assert_eq!(c["device_model"], "Google Pixel 7");
    assert_eq!(c["system_version"], "SDK 34");
    assert_eq!(c["app_version"], "10.14.5");
    assert_eq!(
        (&c["system_lang_code"], &c["lang_code"]),
        (&json!("de-XX"), &json!("de"))
    );
    assert_eq!(c["api_id"], API_ID);
    assert_eq!(c["layer"], grammers_tl_types::LAYER);
    assert_eq!(c["dc_id"], 2);
    assert_eq!(c["phone"], "15550006161");
    assert!(c["user_id"].as_i64().is_some(), "{c}");
    let other = all
        .iter()
        .find(|c| c["device_model"] == "iPhone 15")
        .unwrap();
    assert_eq!(
        (&other["user_id"], &other["lang_code"]),
        (&Value::Null, &json!("fr"))
    );

    // A new connection of the same key is a new record; `after` skips what was seen.
    let seen = all
        .iter()
        .map(|c| c["seq"].as_u64().unwrap())
        .max()
        .unwrap();
    drop(one);
    let again = client_with_params(&dc, 2, k1, params("Google Pixel 8 Pro", "de")).await;
    assert!(bounded(again.client.get_me()).await.is_ok());
    let (_, newer) = call(&app, "GET", &format!("/connections?after={seen}"), None).await;
    let newer = newer["connections"].as_array().unwrap();
    assert_eq!(newer.len(), 1, "{newer:?}");
    assert_eq!(newer[0]["device_model"], "Google Pixel 8 Pro");
    assert_eq!(newer[0]["phone"], "15550006161");
}
