//! Issue 11, items 7 and 10: who holds a phone (only an authorized account), and what one user
//! may hold (accounts, logins halfway).

mod common;

use common::{code_login, create_user_account, error_code, json_of, logged_in_account, TestApp};
use serde_json::{json, Value};

async fn account(app: &TestApp, token: &str, id: i64) -> Value {
    json_of(
        app.get(&format!("/api/v1/telegram/accounts/{id}"), Some(token))
            .await,
        200,
    )
    .await
}

async fn request_code(app: &TestApp, token: &str, id: i64, phone: &str) -> reqwest::Response {
    app.post(
        &format!("/api/v1/telegram/accounts/{id}/login/code"),
        Some(token),
        json!({"phone": phone}),
    )
    .await
}

#[tokio::test]
async fn a_refused_login_step_leaves_the_accounts_phone_as_it_was() {
    let app = common::sandbox().await;
    let (_, token, _) = app.user("ann@example.org").await;
    let id = logged_in_account(&app, &token, "+15550170001").await;
    // A logged-in account cannot start another login: the actor refuses, and nothing changed.
    let refused = request_code(&app, &token, id, "+15550170002").await;
    assert_eq!(error_code(refused, 409).await, "WRONG_ACCOUNT_STATE");
    let row = account(&app, &token, id).await;
    assert_eq!(row["phone"], "+15550170001", "{row}");
    assert_eq!(row["state"], "active");
    app.shutdown().await;
}

#[tokio::test]
async fn creating_an_account_with_a_phone_reserves_nothing() {
    let app = common::sandbox().await;
    let (_, ann, _) = app.user("ann@example.org").await;
    let (_, ben, _) = app.user("ben@example.org").await;
    let phone = "+15550170010";
    // Ann names the phone and never logs in; Ben logs in with it.
    let parked = json_of(
        app.post(
            "/api/v1/telegram/accounts",
            Some(&ann),
            json!({"kind": "user", "phone": phone}),
        )
        .await,
        201,
    )
    .await;
    let id = logged_in_account(&app, &ben, phone).await;
    assert_eq!(account(&app, &ben, id).await["phone"], phone);
    // Now Ben's authorized account holds it: Ann can neither log hers in nor create another.
    let pid = parked["id"].as_i64().unwrap();
    assert_eq!(
        error_code(request_code(&app, &ann, pid, phone).await, 409).await,
        "PHONE_TAKEN"
    );
    let again = app
        .post(
            "/api/v1/telegram/accounts",
            Some(&ann),
            json!({"kind": "user", "phone": phone}),
        )
        .await;
    assert_eq!(error_code(again, 409).await, "PHONE_TAKEN");
    app.shutdown().await;
}

#[tokio::test]
async fn a_logged_out_account_cannot_log_in_while_another_holds_its_phone() {
    let app = common::sandbox().await;
    let (_, token, _) = app.user("ann@example.org").await;
    let phone = "+15550170020";
    let first = logged_in_account(&app, &token, phone).await;
    json_of(
        app.post(
            &format!("/api/v1/telegram/accounts/{first}/logout"),
            Some(&token),
            json!({}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(account(&app, &token, first).await["state"], "logged_out");
    let second = logged_in_account(&app, &token, phone).await;
    // The logged-out row still names the phone; logging it in again would run one Telegram user
    // twice.
    let refused = request_code(&app, &token, first, phone).await;
    assert_eq!(error_code(refused, 409).await, "PHONE_TAKEN");
    assert_eq!(account(&app, &token, first).await["state"], "logged_out");
    assert_eq!(account(&app, &token, second).await["state"], "active");
    app.shutdown().await;
}

#[tokio::test]
async fn a_user_holds_at_most_the_configured_accounts_and_pending_logins() {
    let app = TestApp::spawn_with(|s| {
        s.sandbox = true;
        s.accounts.max_per_user = 3;
        s.accounts.max_pending_logins_per_user = 2;
    })
    .await;
    let (_, token, _) = app.user("ann@example.org").await;
    let ids: Vec<i64> = {
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(create_user_account(&app, &token).await);
        }
        ids
    };
    let fourth = app
        .post(
            "/api/v1/telegram/accounts",
            Some(&token),
            json!({"kind": "user"}),
        )
        .await;
    assert_eq!(error_code(fourth, 403).await, "ACCOUNT_QUOTA_EXCEEDED");

    // Two logins halfway; a third waits until one of them finishes.
    for (id, phone) in ids.iter().zip(["+15550170031", "+15550170032"]) {
        json_of(request_code(&app, &token, *id, phone).await, 200).await;
    }
    let third = request_code(&app, &token, ids[2], "+15550170033").await;
    assert_eq!(error_code(third, 403).await, "PENDING_LOGIN_QUOTA_EXCEEDED");
    // Asking again for a login already halfway is no new login.
    json_of(
        request_code(&app, &token, ids[0], "+15550170031").await,
        200,
    )
    .await;
    let step = code_login(&app, &token, ids[1], "+15550170032").await;
    assert_eq!(step["state"], "active");
    json_of(
        request_code(&app, &token, ids[2], "+15550170033").await,
        200,
    )
    .await;

    // Admins are not limited.
    let (_, admin) = app.admin("root@example.org").await;
    for _ in 0..4 {
        create_user_account(&app, &admin).await;
    }
    app.shutdown().await;
}
