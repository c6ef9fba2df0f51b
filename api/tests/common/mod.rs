//! Starts the real API (same `launch` as `tgfleet serve`) on random loopback ports over a fresh
//! SQLite database in a temporary directory.

#![allow(dead_code)]

use reqwest::{Client, Method, Response};
use serde_json::{json, Value};
use tgfleet_api::{build_state, launch, AppState, Listeners};
use tgfleet_config::Settings;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub struct TestApp {
    pub base: String,
    pub metrics: String,
    pub state: AppState,
    pub client: Client,
    _dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut settings = Settings {
            data_dir: dir.path().join("data"),
            ..Settings::default()
        };
        // Generous defaults so tests of other things never trip the limits by accident.
        settings.auth.auth_rate_per_minute = 10_000;
        settings.auth.user_rate_per_second = 10_000;
        configure(&mut settings);
        let state = build_state(settings).await.expect("state builds");
        let api = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", api.local_addr().unwrap());
        let metrics_base = format!("http://{}", metrics.local_addr().unwrap());
        let (tx, rx) = oneshot::channel();
        let server = tokio::spawn(launch(state.clone(), Listeners { api, metrics }, async {
            let _ = rx.await;
        }));
        Self {
            base,
            metrics: metrics_base,
            state,
            client: Client::new(),
            _dir: dir,
            stop: Some(tx),
            server: Some(server),
        }
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.expect("request sent")
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.request(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        self.request(Method::POST, path, token, Some(body)).await
    }

    /// Registers a user and logs in; returns (user id, access token, refresh token).
    pub async fn user(&self, email: &str) -> (i64, String, String) {
        let r = self
            .post(
                "/api/v1/auth/register",
                None,
                json!({"email": email, "password": "correct horse battery"}),
            )
            .await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        let id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
        let (access, refresh) = self.login(email, "correct horse battery").await;
        (id, access, refresh)
    }

    pub async fn login(&self, email: &str, password: &str) -> (String, String) {
        let r = self
            .post(
                "/api/v1/auth/login",
                None,
                json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        let v: Value = r.json().await.unwrap();
        (
            v["access_token"].as_str().unwrap().to_owned(),
            v["refresh_token"].as_str().unwrap().to_owned(),
        )
    }

    /// A user promoted to admin directly in the store, as `tgfleet users create --role admin` does.
    pub async fn admin(&self, email: &str) -> (i64, String) {
        let (id, _, _) = self.user(email).await;
        // Through the process's own cache of roles, as every write of the server's is.
        self.state
            .auth_cache
            .update_user(
                id,
                tgfleet_persistence::UserPatch {
                    role: Some(tgfleet_persistence::Role::Admin),
                    disabled: None,
                },
            )
            .await
            .unwrap();
        let (access, _) = self.login(email, "correct horse battery").await;
        (id, access)
    }

    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(s) = self.server.take() {
            s.await.expect("server task").expect("server stops cleanly");
        }
    }
}

/// Asserts the contract's error shape and returns the code.
pub async fn error_code(r: Response, status: u16) -> String {
    assert_eq!(r.status().as_u16(), status);
    let v: Value = r.json().await.expect("error body is JSON");
    let code = v["error"]["code"].as_str().expect("error.code").to_owned();
    assert!(v["error"]["message"].is_string(), "error.message in {v}");
    assert!(
        code.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
        "{code}"
    );
    code
}

pub async fn sandbox() -> TestApp {
    TestApp::spawn_with(|s| s.sandbox = true).await
}

/// Asserts the status (showing the body when it differs) and returns the JSON body.
pub async fn json_of(r: Response, status: u16) -> Value {
    let got = r.status().as_u16();
    let body = r.text().await.unwrap();
    assert_eq!(got, status, "{body}");
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

/// Adds a bot to the sandbox's testdc (DC 1) and creates its account over HTTP; returns its id.
/// (Only with the `sandbox` feature: a production build links no testdc.)
#[cfg(feature = "sandbox")]
pub async fn sandbox_bot(app: &TestApp, token: &str, bot_token: &str, username: &str) -> i64 {
    app.state
        .sandbox
        .as_ref()
        .expect("a sandbox app")
        .add_bot_on(bot_token, username, 1);
    json_of(
        app.post(
            "/api/v1/telegram/accounts",
            Some(token),
            json!({"kind": "bot", "bot_token": bot_token}),
        )
        .await,
        201,
    )
    .await["id"]
        .as_i64()
        .unwrap()
}

/// Creates a user account and logs it in over HTTP with the code the sandbox sent; returns its id.
pub async fn logged_in_account(app: &TestApp, token: &str, phone: &str) -> i64 {
    let id = create_user_account(app, token).await;
    let step = code_login(app, token, id, phone).await;
    assert_eq!(step["state"], "active");
    id
}

/// Requests a login code for `phone`, reads it from the sandbox and signs in with it; returns the
/// sign-in answer (`active`, or `awaiting_password` for a 2FA phone).
pub async fn code_login(app: &TestApp, token: &str, id: i64, phone: &str) -> Value {
    send_code(app, token, id, phone).await;
    let code = json_of(
        app.get(&format!("/api/v1/sandbox/codes/{phone}"), Some(token))
            .await,
        200,
    )
    .await;
    json_of(
        app.post(
            &format!("/api/v1/telegram/accounts/{id}/login/sign-in"),
            Some(token),
            json!({"code": code["code"]}),
        )
        .await,
        200,
    )
    .await
}

/// Creates a user (not bot) account for the caller; returns its id.
pub async fn create_user_account(app: &TestApp, token: &str) -> i64 {
    let account = json_of(
        app.post(
            "/api/v1/telegram/accounts",
            Some(token),
            json!({"kind": "user"}),
        )
        .await,
        201,
    )
    .await;
    account["id"].as_i64().unwrap()
}

/// Requests a login code for `phone` on account `id`; the account is then awaiting it.
pub async fn send_code(app: &TestApp, token: &str, id: i64, phone: &str) {
    let sent = json_of(
        app.post(
            &format!("/api/v1/telegram/accounts/{id}/login/code"),
            Some(token),
            json!({"phone": phone}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(sent["state"], "awaiting_code");
}
