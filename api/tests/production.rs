//! The production switches: PostgreSQL instead of SQLite, Vault transit and KV instead of local
//! files; and the browser-facing settings (CORS, Swagger UI) and per-user rate limits.

mod common;

use common::{error_code, TestApp};
use serde_json::{json, Value};
use std::collections::HashMap;
use tgfleet_config::{Secret, SecretsBackend};
use tgfleet_persistence::testing::{BaoServer, TestDb};

#[tokio::test]
async fn the_sandbox_walkthrough_runs_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let url = db.url.clone();
    let app = TestApp::spawn_with(move |s| {
        s.sandbox = true;
        s.database.url = Some(serde_json::from_value(json!(url)).unwrap());
    })
    .await;
    assert_eq!(app.state.store.backend(), "postgres");
    let (_, token, _) = app.user("pg@example.org").await;
    let acc: Value = app
        .post(
            "/api/v1/telegram/accounts",
            Some(&token),
            json!({"kind": "user"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = acc["id"].as_i64().unwrap();
    let phone = "+15550100321";
    let r = app
        .post(
            &format!("/api/v1/telegram/accounts/{id}/login/code"),
            Some(&token),
            json!({"phone": phone}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let code: Value = app
        .get(&format!("/api/v1/sandbox/codes/{phone}"), Some(&token))
        .await
        .json()
        .await
        .unwrap();
    let step: Value = app
        .post(
            &format!("/api/v1/telegram/accounts/{id}/login/sign-in"),
            Some(&token),
            json!({"code": code["code"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(step["state"], "active");
    let r = app
        .post(
            &format!("/api/v1/telegram/accounts/{id}/messages"),
            Some(&token),
            json!({"peer": "me", "text": "pg"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    // The session row in PostgreSQL is sealed: the auth key never appears in the clear.
    let sealed = app
        .state
        .store
        .session(id)
        .await
        .unwrap()
        .expect("a stored session");
    assert!(!sealed.is_empty());
    let opened = app
        .state
        .cipher
        .open(id, &sealed)
        .await
        .expect("opens for its account");
    assert_ne!(&sealed[..], &opened[..]);
    assert!(
        app.state.cipher.open(id + 1, &sealed).await.is_err(),
        "bound to its account id"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn vault_backend_seals_sessions_and_reads_secrets_from_kv() {
    let Some(bao) = BaoServer::start().await else {
        return;
    };
    let params = bao.transit_params("tgfleet-sessions").await.unwrap();
    let jwt_secret = "a-jwt-secret-from-vault-kv-that-is-long-enough";
    bao.put_kv(
        "tgfleet",
        &HashMap::from([
            ("jwt_secret".to_owned(), jwt_secret.to_owned()),
            (
                "api_hash".to_owned(),
                "0123456789abcdef0123456789abcdef".to_owned(),
            ),
        ]),
    )
    .await
    .unwrap();
    let app = TestApp::spawn_with(move |s| {
        s.secrets.backend = SecretsBackend::Vault;
        s.vault.addr = Some(params.addr.clone());
        s.vault.token = Some(Secret::new(params.token.clone()));
        s.vault.kv_mount = "kv".into();
        s.vault.kv_path = "tgfleet".into();
        s.telegram.api_id = Some(12345);
    })
    .await;
    assert_eq!(app.state.cipher.describe(), "vault");
    // The api_hash came from KV, so Telegram counts as configured: the fleet runs.
    assert!(app.state.fleet.is_some());
    // Tokens are signed with the KV secret, and no secret file was written.
    let (_, token, _) = app.user("vault@example.org").await;
    let claims = jsonwebtoken::decode::<Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_secret(jwt_secret.as_bytes()),
        &jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256),
    );
    assert!(claims.is_ok(), "signed with the Vault secret");
    assert!(!app.state.settings.jwt_secret_path().exists());
    assert!(!app.state.settings.session_key_path().exists());

    let (_, admin) = app.admin("root@example.org").await;
    let health: Value = app
        .get("/api/v1/health/detailed", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(health["vault"]["status"], "ok");
    assert_eq!(health["database"]["status"], "ok");
    assert_eq!(health["status"], "ok");
    app.shutdown().await;
}

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let app =
        TestApp::spawn_with(|s| s.api.cors_origins = vec!["https://app.example.org".into()]).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/api/v1/auth/me", app.base),
            )
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let ok = preflight("https://app.example.org").await.unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example.org"
    );
    assert!(
        ok.headers()
            .get("access-control-allow-credentials")
            .is_none(),
        "no cookies, no credentials"
    );
    let other = preflight("https://evil.example.com").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    app.shutdown().await;

    // The default: no origin at all.
    let app = TestApp::spawn().await;
    let r = app
        .client
        .get(format!("{}/api/v1/health", app.base))
        .header("origin", "https://app.example.org")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    app.shutdown().await;
}

#[tokio::test]
async fn swagger_ui_only_in_debug() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/docs/", None).await.status(), 404);
    assert_eq!(app.get("/openapi.json", None).await.status(), 200);
    app.shutdown().await;
    let app = TestApp::spawn_with(|s| s.debug = true).await;
    let r = app.get("/docs/", None).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().to_lowercase().contains("swagger"));
    app.shutdown().await;
}

#[tokio::test]
async fn each_user_has_their_own_rate_limit() {
    let app = TestApp::spawn_with(|s| s.auth.user_rate_per_second = 3).await;
    let (_, ann, _) = app.user("ann@example.org").await;
    let (_, ben, _) = app.user("ben@example.org").await;
    let mut last = None;
    for _ in 0..4 {
        last = Some(app.get("/api/v1/auth/me", Some(&ann)).await);
    }
    let limited = last.unwrap();
    assert!(limited.headers().contains_key("retry-after"));
    assert_eq!(error_code(limited, 429).await, "RATE_LIMITED");
    // Ann's burst does not cost Ben anything.
    assert_eq!(app.get("/api/v1/auth/me", Some(&ben)).await.status(), 200);
    app.shutdown().await;
}

#[tokio::test]
async fn a_short_jwt_secret_in_vault_refuses_start_up_like_a_configured_one() {
    let Some(bao) = BaoServer::start().await else {
        return;
    };
    let params = bao.transit_params("tgfleet-sessions").await.unwrap();
    let short = "only-twenty-chars-xx";
    bao.put_kv(
        "tgfleet",
        &HashMap::from([("jwt_secret".to_owned(), short.to_owned())]),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut settings = tgfleet_config::Settings {
        data_dir: dir.path().join("data"),
        ..Default::default()
    };
    settings.secrets.backend = SecretsBackend::Vault;
    settings.vault.addr = Some(params.addr.clone());
    settings.vault.token = Some(Secret::new(params.token.clone()));
    settings.vault.kv_mount = "kv".into();
    settings.vault.kv_path = "tgfleet".into();
    let Err(refused) = tgfleet_api::build_state(settings).await else {
        panic!(
            "started with a {}-character JWT secret from Vault",
            short.len()
        );
    };
    let line = refused.to_string();
    assert!(!line.contains('\n'), "{line}");
    assert!(line.contains("jwt_secret"), "{line}");
    assert!(
        line.contains(&format!(
            "at least {}",
            tgfleet_config::AuthSettings::MIN_JWT_SECRET
        )),
        "{line}"
    );
    assert!(
        !line.contains(short),
        "the secret itself is never printed: {line}"
    );
}

#[tokio::test]
async fn a_lost_session_key_with_sealed_sessions_refuses_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let settings = tgfleet_config::Settings {
        data_dir: dir.path().join("data"),
        ..Default::default()
    };
    let state = tgfleet_api::build_state(settings.clone())
        .await
        .expect("first start");
    let owner = state
        .store
        .create_user(tgfleet_persistence::NewUser {
            email: "keys@example.org".into(),
            username: None,
            password_hash: "x".into(),
            role: tgfleet_persistence::Role::User,
        })
        .await
        .unwrap();
    let account = state
        .store
        .create_account(tgfleet_persistence::NewAccount {
            owner_id: owner.id,
            label: None,
            kind: tgfleet_persistence::AccountKind::User,
            phone: None,
        })
        .await
        .unwrap();
    let sealed = state.cipher.seal(account.id, b"a session").await.unwrap();
    state.store.put_session(account.id, &sealed).await.unwrap();
    drop(state);

    std::fs::remove_file(settings.session_key_path()).unwrap();
    let Err(refused) = tgfleet_api::build_state(settings.clone()).await else {
        panic!("started with a new key beside sessions sealed by the lost one");
    };
    let line = refused.to_string();
    assert!(!line.contains('\n'), "{line}");
    assert!(
        line.contains("session.key is missing") && line.contains("1 sessions"),
        "{line}"
    );
    assert!(
        !settings.session_key_path().exists(),
        "no new key was written in place of the lost one"
    );
}
