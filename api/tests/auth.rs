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

/// `tgfleet_password_hashes_in_flight` as the metrics listener reports it.
async fn hashes_in_flight(app: &TestApp) -> i64 {
    let text = app
        .client
        .get(format!("{}/metrics", app.metrics))
        .send()
        .await
        .expect("metrics answer")
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("tgfleet_password_hashes_in_flight "))
        .expect("the gauge is exported")
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn logins_that_hang_up_cannot_queue_hashes_beyond_the_bound() {
    let app = TestApp::spawn().await;
    app.user("flood@example.org").await;
    let slots = tgfleet_api::auth::password::hash_slots() as i64;
    // A fresh connection per attempt, dropped at the client's 50 ms timeout: the server sees each
    // login hang up while its hash is queued or running.
    let impatient = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(std::time::Duration::from_millis(50))
        .build()
        .unwrap();
    let url = format!("{}/api/v1/auth/login", app.base);
    let flood = (0..500u64).map(|i| {
        let (client, url) = (impatient.clone(), url.clone());
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(2 * i)).await;
            let _ = client
                .post(&url)
                .json(&json!({"email": "flood@example.org", "password": "correct horse battery"}))
                .send()
                .await;
        })
    });
    let flood = futures::future::join_all(flood);
    tokio::pin!(flood);
    let mut most = 0;
    loop {
        tokio::select! {
            _ = &mut flood => break,
            () = tokio::time::sleep(std::time::Duration::from_millis(20)) => {
                most = most.max(hashes_in_flight(&app).await);
            }
        }
    }
    most = most.max(hashes_in_flight(&app).await);
    assert!(
        most <= slots,
        "{most} hashes queued or running after logins hung up; the bound is {slots}"
    );
    // An honest login right after: an answer (200, or 503 AUTH_BUSY while the slots drain), not a
    // wait behind hashes nobody is waiting for.
    let answer = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        app.post(
            "/api/v1/auth/login",
            None,
            json!({"email": "flood@example.org", "password": "correct horse battery"}),
        ),
    )
    .await
    .expect("the login answers");
    assert!(
        [200, 503].contains(&answer.status().as_u16()),
        "{}",
        answer.status()
    );
    app.shutdown().await;
}

/// The claims of an access token, unverified (the test only reads what the server put there).
fn claims_of(access: &str) -> Value {
    let payload = access.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn logout_without_a_body_revokes_the_logins_refresh_token() {
    let app = TestApp::spawn().await;
    let (_, access, refresh) = app.user("nobody-body@example.org").await;
    let r = app
        .client
        .post(format!("{}/api/v1/auth/logout", app.base))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": refresh}),
        )
        .await;
    assert_eq!(error_code(r, 401).await, "UNAUTHORIZED");
    app.shutdown().await;
}

#[tokio::test]
async fn a_refresh_token_reuse_also_revokes_the_familys_access_tokens() {
    let app = TestApp::spawn().await;
    let (_, first_access, first) = app.user("stolen@example.org").await;
    let other_login = app
        .login("stolen@example.org", "correct horse battery")
        .await;
    let rotated: Value = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": first}),
        )
        .await
        .json()
        .await
        .unwrap();
    let second_access = rotated["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&second_access))
            .await
            .status(),
        200
    );
    // The replay revokes the family: every access token minted for it stops working at once,
    // not when it expires; another login of the same user is untouched.
    let r = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": first}),
        )
        .await;
    assert_eq!(r.status(), 401);
    for (name, token) in [("rotated", &second_access), ("original", &first_access)] {
        assert_eq!(
            app.get("/api/v1/auth/me", Some(token)).await.status(),
            401,
            "{name} access token"
        );
    }
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&other_login.0))
            .await
            .status(),
        200
    );
    app.shutdown().await;
}

#[tokio::test]
async fn revoked_families_are_forgotten_once_their_tokens_expired() {
    let app = TestApp::spawn_with(|s| {
        s.auth.access_ttl_s = 1;
        s.auth.refresh_ttl_s = 2;
    })
    .await;
    let (_, access, _) = app.user("purge@example.org").await;
    let family = claims_of(&access)["fam"]
        .as_str()
        .expect("the access token names its family")
        .to_owned();
    assert_eq!(
        app.post("/api/v1/auth/logout", Some(&access), json!({}))
            .await
            .status(),
        204
    );
    let store = &app.state.store;
    assert!(store
        .is_access_token_revoked("any", Some(&family))
        .await
        .unwrap());
    // Kept while a token of the family is still valid.
    tgfleet_api::server::housekeeping(&app.state).await;
    assert!(store
        .is_access_token_revoked("any", Some(&family))
        .await
        .unwrap());
    // One refresh TTL later no token of it can be presented, and the table forgets it.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    tgfleet_api::server::housekeeping(&app.state).await;
    assert!(!store
        .is_access_token_revoked("any", Some(&family))
        .await
        .unwrap());
    app.shutdown().await;
}

#[tokio::test]
async fn ipv6_clients_rotating_addresses_in_their_64_share_one_limit() {
    let app = TestApp::spawn_with(|s| {
        s.auth.auth_rate_per_minute = 3;
        // Behind a proxy on loopback, so the test can say which address each attempt came from.
        s.api.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let attempt = |from: String| {
        app.client
            .post(format!("{}/api/v1/auth/login", app.base))
            .header("x-forwarded-for", from)
            .json(&json!({"email": "v6@example.org", "password": "whatever it is"}))
            .send()
    };
    let mut statuses = Vec::new();
    for i in 1..=4 {
        let r = attempt(format!("2001:db8:5:6:{i:x}::{i:x}")).await.unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 429]);
    // The neighbouring /64 is another client.
    let r = attempt("2001:db8:5:7::1".into()).await.unwrap();
    assert_eq!(r.status(), 401);
    app.shutdown().await;
}

#[tokio::test]
async fn a_token_pair_never_prints_its_tokens() {
    let app = TestApp::spawn().await;
    app.user("print@example.org").await;
    let pair: tgfleet_api::auth::routes::TokenPair = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "print@example.org", "password": "correct horse battery"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let printed = format!("{pair:?} {pair:#?}");
    assert!(!printed.contains(&pair.access_token), "{printed}");
    assert!(!printed.contains(&pair.refresh_token), "{printed}");
    assert!(printed.contains("expires_in"), "{printed}");
    app.shutdown().await;
}

/// Roles, disables, logouts and account owners are held in memory after their first read; a
/// change through the API is still seen by the very next request.
#[tokio::test]
async fn changes_take_effect_at_once_on_a_warm_path() {
    let app = TestApp::spawn().await;
    let (ann_id, ann, _) = app.user("warm-ann@example.org").await;
    let (_, bob, _) = app.user("warm-bob@example.org").await;
    let (_, admin) = app.admin("warm-root@example.org").await;
    let patch = |body: Value| {
        let app = &app;
        let admin = admin.clone();
        async move {
            let r = app
                .request(
                    Method::PATCH,
                    &format!("/api/v1/users/{ann_id}"),
                    Some(&admin),
                    Some(body),
                )
                .await;
            assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        }
    };
    // Warm: Ann's role is read once and kept.
    assert_eq!(app.get("/api/v1/users", Some(&ann)).await.status(), 403);
    assert_eq!(app.get("/api/v1/users", Some(&ann)).await.status(), 403);
    patch(json!({"role": "admin"})).await;
    assert_eq!(app.get("/api/v1/users", Some(&ann)).await.status(), 200);
    patch(json!({"role": "user", "disabled": true})).await;
    assert_eq!(app.get("/api/v1/auth/me", Some(&ann)).await.status(), 401);
    patch(json!({"disabled": false})).await;
    assert_eq!(app.get("/api/v1/auth/me", Some(&ann)).await.status(), 200);
    assert_eq!(app.get("/api/v1/users", Some(&ann)).await.status(), 403);

    // An account's owner, on the send path: Ann's account is not Bob's, and once deleted it
    // is no one's.
    let account = app
        .state
        .store
        .create_account(tgfleet_persistence::NewAccount {
            owner_id: ann_id,
            label: None,
            kind: tgfleet_persistence::AccountKind::User,
            phone: None,
        })
        .await
        .unwrap();
    let send = |token: String| {
        let app = &app;
        async move {
            app.request(
                Method::POST,
                &format!("/api/v1/telegram/accounts/{}/messages", account.id),
                Some(&token),
                Some(json!({"peer": "me", "text": "warm"})),
            )
            .await
            .status()
        }
    };
    let first = send(ann.clone()).await;
    assert_ne!(
        first, 404,
        "the owner's send reaches past the ownership check"
    );
    assert_eq!(send(ann.clone()).await, first);
    assert_eq!(send(bob.clone()).await, 404);
    let r = app
        .request(
            Method::DELETE,
            &format!("/api/v1/telegram/accounts/{}", account.id),
            Some(&ann),
            None,
        )
        .await;
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(send(ann.clone()).await, 404);

    // A logout refuses the access token at once, though it was accepted a moment ago.
    assert_eq!(app.get("/api/v1/auth/me", Some(&bob)).await.status(), 200);
    let r = app.post("/api/v1/auth/logout", Some(&bob), json!({})).await;
    assert_eq!(r.status(), 204);
    assert_eq!(app.get("/api/v1/auth/me", Some(&bob)).await.status(), 401);
    app.shutdown().await;
}
