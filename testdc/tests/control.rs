//! The control HTTP API drives the same DC the real client talks to.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{bounded, client_with_key, rpc_error, start, API_HASH};
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
