//! The integration log and error statistics as a user and an admin see them.

mod common;

use common::TestApp;
use serde_json::{json, Value};
use tgfleet_persistence::{LogLevel, NewAccount, NewLogEntry};

async fn seed(app: &TestApp, owner: i64, other: i64) -> (i64, i64) {
    let mine = app
        .state
        .store
        .create_account(NewAccount {
            owner_id: owner,
            label: None,
            kind: tgfleet_persistence::AccountKind::User,
            phone: None,
        })
        .await
        .unwrap();
    let theirs = app
        .state
        .store
        .create_account(NewAccount {
            owner_id: other,
            label: None,
            kind: tgfleet_persistence::AccountKind::User,
            phone: None,
        })
        .await
        .unwrap();
    for (account, code, n) in [
        (mine.id, "FLOOD_WAIT", 3),
        (mine.id, "PHONE_CODE_INVALID", 1),
        (theirs.id, "AUTH_KEY_UNREGISTERED", 2),
    ] {
        for _ in 0..n {
            app.state
                .store
                .append_log(NewLogEntry {
                    level: LogLevel::Warn,
                    event: "telegram_error".into(),
                    account_id: Some(account),
                    user_id: None,
                    error_code: Some(code.into()),
                    message: format!("{code} seen"),
                    details: json!({}),
                })
                .await
                .unwrap();
        }
    }
    (mine.id, theirs.id)
}

#[tokio::test]
async fn users_see_their_own_rows_and_admins_see_all() {
    let app = TestApp::spawn().await;
    let (ann_id, ann, _) = app.user("ann@example.org").await;
    let (ben_id, _, _) = app.user("ben@example.org").await;
    let (_, admin) = app.admin("root@example.org").await;
    let (mine, theirs) = seed(&app, ann_id, ben_id).await;

    let page: Value = app
        .get("/api/v1/telegram/logs?event=telegram_error", Some(&ann))
        .await
        .json()
        .await
        .unwrap();
    let rows = page["items"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().all(|r| r["account_id"] == mine));
    // Newest first.
    let ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]));

    assert_eq!(
        app.get(
            &format!("/api/v1/telegram/logs?account_id={theirs}"),
            Some(&ann)
        )
        .await
        .status(),
        404
    );
    let all: Value = app
        .get("/api/v1/telegram/logs?event=telegram_error", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all["items"].as_array().unwrap().len(), 6);

    // Paging: two at a time, then the rest, no row twice.
    let p1: Value = app
        .get(
            "/api/v1/telegram/logs?event=telegram_error&limit=2",
            Some(&admin),
        )
        .await
        .json()
        .await
        .unwrap();
    let cursor = p1["next_cursor"].as_i64().unwrap();
    let p2: Value = app
        .get(
            &format!("/api/v1/telegram/logs?event=telegram_error&limit=10&cursor={cursor}"),
            Some(&admin),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        p1["items"].as_array().unwrap().len() + p2["items"].as_array().unwrap().len(),
        6
    );
    assert!(p2["next_cursor"].is_null());

    let errors: Value = app
        .get("/api/v1/telegram/logs?level=error", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert!(errors["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["level"] == "error"));
    app.shutdown().await;
}

#[tokio::test]
async fn error_stats_count_by_code_and_by_account_within_the_caller_scope() {
    let app = TestApp::spawn().await;
    let (ann_id, ann, _) = app.user("ann@example.org").await;
    let (ben_id, _, _) = app.user("ben@example.org").await;
    let (_, admin) = app.admin("root@example.org").await;
    let (mine, theirs) = seed(&app, ann_id, ben_id).await;

    let stats: Value = app
        .get("/api/v1/telegram/stats/errors", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        stats["by_code"][0],
        json!({"code": "FLOOD_WAIT", "count": 3})
    );
    assert!(stats["by_account"]
        .as_array()
        .unwrap()
        .contains(&json!({"account_id": theirs, "count": 2})));
    assert!(stats["by_account"]
        .as_array()
        .unwrap()
        .contains(&json!({"account_id": mine, "count": 4})));

    let own: Value = app
        .get("/api/v1/telegram/stats/errors", Some(&ann))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        own["by_code"],
        json!([{"code": "FLOOD_WAIT", "count": 3}, {"code": "PHONE_CODE_INVALID", "count": 1}])
    );
    assert_eq!(own["by_account"], json!([{"account_id": mine, "count": 4}]));

    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let later: Value = app
        .client
        .get(format!("{}/api/v1/telegram/stats/errors", app.base))
        .query(&[("since", future)])
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(later["by_code"], json!([]));
    app.shutdown().await;
}

#[tokio::test]
async fn admins_change_roles_and_disable_users_and_it_takes_effect_at_once() {
    let app = TestApp::spawn().await;
    let (ann_id, ann, _) = app.user("ann@example.org").await;
    let (admin_id, admin) = app.admin("root@example.org").await;
    let r = app
        .request(
            reqwest::Method::PATCH,
            &format!("/api/v1/users/{ann_id}"),
            Some(&admin),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(r.status(), 200);
    // The promotion applies to Ann's existing token: roles are read per request.
    assert_eq!(app.get("/api/v1/users", Some(&ann)).await.status(), 200);
    let r = app
        .request(
            reqwest::Method::PATCH,
            &format!("/api/v1/users/{ann_id}"),
            Some(&admin),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.get("/api/v1/auth/me", Some(&ann)).await.status(), 401);
    let r = app
        .request(
            reqwest::Method::PATCH,
            &format!("/api/v1/users/{admin_id}"),
            Some(&admin),
            Some(json!({"role": "user"})),
        )
        .await;
    assert_eq!(common::error_code(r, 409).await, "SELF_LOCKOUT");
    let logs = app
        .state
        .store
        .list_logs(tgfleet_persistence::LogFilter {
            event: Some("role_changed".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(logs.len(), 1);
    app.shutdown().await;
}
