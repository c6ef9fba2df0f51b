mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::{error_code, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn register_login_me_refresh_logout() {
    let app = TestApp::spawn().await;
    let r = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "Ann@Example.org", "password": "correct horse battery", "username": "ann"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let user: Value = r.json().await.unwrap();
    assert_eq!(user["email"], "ann@example.org");
    assert_eq!(user["role"], "user");
    assert!(user.get("password_hash").is_none());

    let r = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "ann@example.org", "password": "correct horse battery"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let pair: Value = r.json().await.unwrap();
    assert_eq!(pair["token_type"], "Bearer");
    assert!(pair["expires_in"].as_i64().unwrap() > 0);
    let access = pair["access_token"].as_str().unwrap();
    let refresh = pair["refresh_token"].as_str().unwrap();

    let me: Value = app
        .get("/api/v1/auth/me", Some(access))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], "ann@example.org");

    let r = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": refresh}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let pair2: Value = r.json().await.unwrap();
    let access2 = pair2["access_token"].as_str().unwrap().to_owned();
    let refresh2 = pair2["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh2, refresh);

    // Logout revokes this access token at once, and the refresh token's family.
    let r = app
        .post(
            "/api/v1/auth/logout",
            Some(&access2),
            json!({"refresh_token": refresh2}),
        )
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        error_code(app.get("/api/v1/auth/me", Some(&access2)).await, 401).await,
        "UNAUTHORIZED"
    );
    let r = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": refresh2}),
        )
        .await;
    assert_eq!(r.status(), 401);
    app.shutdown().await;
}

#[tokio::test]
async fn reusing_a_revoked_refresh_token_revokes_the_whole_family() {
    let app = TestApp::spawn().await;
    let (_, _, first) = app.user("bob@example.org").await;
    let r = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": first}),
        )
        .await;
    let second = r.json::<Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // A thief replays the first token: refused, and the legitimate newer one dies with it.
    assert_eq!(
        app.post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": first})
        )
        .await
        .status(),
        401
    );
    assert_eq!(
        app.post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": second})
        )
        .await
        .status(),
        401
    );
    let logs = app
        .state
        .store
        .list_logs(tgfleet_persistence::LogFilter {
            event: Some("refresh_token_reused".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    // Both presentations were of revoked tokens: the replay, then the family member it killed.
    assert_eq!(logs.len(), 2);
    app.shutdown().await;
}

#[tokio::test]
async fn wrong_password_and_unknown_email_look_the_same() {
    let app = TestApp::spawn().await;
    app.user("carol@example.org").await;
    let wrong = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "carol@example.org", "password": "not the password"}),
        )
        .await;
    let unknown = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "nobody@example.org", "password": "not the password"}),
        )
        .await;
    assert_eq!(error_code(wrong, 401).await, "INVALID_CREDENTIALS");
    assert_eq!(error_code(unknown, 401).await, "INVALID_CREDENTIALS");
    app.shutdown().await;
}

fn forge(header: Value, claims: Value, signature: &str) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        signature
    )
}

#[tokio::test]
async fn tampered_expired_foreign_and_unsigned_tokens_get_401() {
    let app = TestApp::spawn().await;
    let (id, access, _) = app.user("dave@example.org").await;
    let now = chrono::Utc::now().timestamp();
    let claims =
        json!({"sub": id.to_string(), "role": "admin", "jti": "x", "iat": now, "exp": now + 600});

    let parts: Vec<&str> = access.split('.').collect();
    // Same signature, payload changed to claim admin.
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    let unsigned = forge(json!({"alg": "none", "typ": "JWT"}), claims.clone(), "");
    let foreign = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"some other service's secret, 32+ bytes"),
    )
    .unwrap();
    let real_expired = {
        let secret = std::fs::read_to_string(app.state.settings.jwt_secret_path()).unwrap();
        let secret = base64::engine::general_purpose::STANDARD
            .decode(secret.trim())
            .unwrap();
        let mut c = claims.clone();
        c["role"] = json!("user");
        c["exp"] = json!(now - 10);
        c["iat"] = json!(now - 100);
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &c,
            &jsonwebtoken::EncodingKey::from_secret(&secret),
        )
        .unwrap()
    };
    for (name, token) in [
        ("tampered", tampered),
        ("alg none", unsigned),
        ("wrong key", foreign),
        ("expired", real_expired),
        ("garbage", "not.a.jwt".to_owned()),
    ] {
        let r = app.get("/api/v1/auth/me", Some(&token)).await;
        assert_eq!(r.status(), 401, "{name}");
    }
    assert_eq!(app.get("/api/v1/auth/me", None).await.status(), 401);
    app.shutdown().await;
}

#[tokio::test]
async fn bad_registrations_list_every_bad_field() {
    let app = TestApp::spawn().await;
    let r = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "not-an-email", "password": "short"}),
        )
        .await;
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "VALIDATION_FAILED");
    let fields: Vec<&str> = v["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["email", "password"]);

    app.user("erin@example.org").await;
    let r = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "ERIN@example.org", "password": "correct horse battery"}),
        )
        .await;
    assert_eq!(error_code(r, 409).await, "EMAIL_TAKEN");
    app.shutdown().await;
}

#[tokio::test]
async fn malformed_bodies_are_4xx_in_the_error_format() {
    let app = TestApp::spawn_with(|s| s.api.body_limit_bytes = 4096).await;
    let url = format!("{}/api/v1/auth/login", app.base);
    let send = |body: String, ctype: &'static str| {
        app.client
            .post(&url)
            .header("content-type", ctype)
            .body(body)
            .send()
    };
    assert_eq!(
        error_code(send("{".into(), "application/json").await.unwrap(), 400).await,
        "MALFORMED_JSON"
    );
    assert_eq!(
        error_code(
            send(
                r#"{"email": 5, "password": "x"}"#.into(),
                "application/json"
            )
            .await
            .unwrap(),
            422
        )
        .await,
        "INVALID_BODY"
    );
    assert_eq!(
        error_code(
            send(
                r#"{"email":"a@b.c","password":"xxxxxxxxxxxx","admin":true}"#.into(),
                "application/json"
            )
            .await
            .unwrap(),
            422
        )
        .await,
        "INVALID_BODY"
    );
    assert_eq!(
        error_code(send("{}".into(), "text/plain").await.unwrap(), 415).await,
        "UNSUPPORTED_MEDIA_TYPE"
    );
    let huge = format!(r#"{{"email":"{}","password":"x"}}"#, "a".repeat(10_000));
    assert_eq!(
        error_code(send(huge, "application/json").await.unwrap(), 413).await,
        "PAYLOAD_TOO_LARGE"
    );
    assert_eq!(
        error_code(app.get("/api/v1/nope", None).await, 404).await,
        "NOT_FOUND"
    );
    let (_, token, _) = app.user("fay@example.org").await;
    let r = app
        .request(
            Method::PATCH,
            "/api/v1/users/not-a-number",
            Some(&token),
            Some(json!({})),
        )
        .await;
    assert!(r.status().is_client_error());
    app.shutdown().await;
}

#[tokio::test]
async fn auth_routes_are_rate_limited_per_ip_with_retry_after() {
    let app = TestApp::spawn_with(|s| s.auth.auth_rate_per_minute = 3).await;
    let body = json!({"email": "gus@example.org", "password": "whatever it is"});
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = app.post("/api/v1/auth/login", None, body.clone()).await;
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            let retry: u64 = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=60).contains(&retry));
            assert_eq!(error_code(r, 429).await, "RATE_LIMITED");
        }
    }
    assert_eq!(statuses, [401, 401, 401, 429]);
    app.shutdown().await;
}

#[tokio::test]
async fn closed_registration_is_refused() {
    let app =
        TestApp::spawn_with(|s| s.auth.registration = tgfleet_config::Registration::Closed).await;
    let r = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "h@example.org", "password": "correct horse battery"}),
        )
        .await;
    assert_eq!(error_code(r, 403).await, "REGISTRATION_CLOSED");
    app.shutdown().await;
}

#[tokio::test]
async fn audit_trail_has_the_steps_and_never_a_secret() {
    let app = TestApp::spawn().await;
    let (_, access, refresh) = app.user("ivy@example.org").await;
    let _ = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "ivy@example.org", "password": "wrong password!"}),
        )
        .await;
    let r = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": refresh}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        app.post("/api/v1/auth/logout", Some(&access), json!({}))
            .await
            .status(),
        204
    );
    let logs = app
        .state
        .store
        .list_logs(tgfleet_persistence::LogFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let events: Vec<&str> = logs.iter().rev().map(|e| e.event.as_str()).collect();
    assert_eq!(
        events,
        [
            "user_registered",
            "login",
            "login_failed",
            "token_refreshed",
            "logout"
        ]
    );
    let dump = format!("{logs:?}");
    for secret in [
        "correct horse battery",
        "wrong password!",
        refresh.as_str(),
        access.as_str(),
    ] {
        assert!(!dump.contains(secret));
    }
    app.shutdown().await;
}

#[tokio::test]
async fn a_method_a_route_does_not_take_is_405() {
    let app = TestApp::spawn().await;
    let r = app.request(Method::PUT, "/api/v1/health", None, None).await;
    assert_eq!(error_code(r, 405).await, "METHOD_NOT_ALLOWED");
    app.shutdown().await;
}

#[tokio::test]
async fn concurrent_replays_of_one_refresh_token_leave_no_live_token() {
    let app = TestApp::spawn().await;
    let (_, _, token) = app.user("race@example.org").await;
    let attempts = (0..8).map(|_| {
        app.post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": token}),
        )
    });
    let answers = futures::future::join_all(attempts).await;
    let mut issued = Vec::new();
    for r in answers {
        if r.status() == 200 {
            let v: Value = r.json().await.unwrap();
            issued.push(v["refresh_token"].as_str().unwrap().to_owned());
        } else {
            assert_eq!(r.status(), 401);
        }
    }
    assert!(
        issued.len() <= 1,
        "one rotation at most wins: {}",
        issued.len()
    );
    // The replays revoked the family, so even the winner's new token is dead.
    for t in issued {
        let r = app
            .post("/api/v1/auth/refresh", None, json!({"refresh_token": t}))
            .await;
        assert_eq!(r.status(), 401);
    }
    app.shutdown().await;
}
