//! The OpenAPI document tells the truth: every route the server answers is in it, and every real
//! response — status and body — is one the document lists for that operation.

mod common;

use common::TestApp;
use reqwest::Method;
use serde_json::{json, Value};

struct Contract {
    doc: Value,
    checked: std::cell::RefCell<Vec<(String, String)>>,
}

impl Contract {
    async fn fetch(app: &TestApp) -> Self {
        let r = app.get("/openapi.json", None).await;
        assert_eq!(r.status(), 200);
        let doc: Value = r.json().await.unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        Self {
            doc,
            checked: Default::default(),
        }
    }

    /// Sends a request and checks its answer against the document; returns the body.
    async fn call(
        &self,
        app: &TestApp,
        method: Method,
        template: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let r = app.request(method.clone(), path, token, body).await;
        self.check(method, template, r).await
    }

    /// Checks the head of a streamed answer (SSE, which never ends) against the document.
    fn check_stream_head(&self, method: Method, template: &str, r: &reqwest::Response) {
        let status = r.status().as_u16();
        let m = method.as_str().to_lowercase();
        let resp = &self.doc["paths"][template][&m]["responses"][status.to_string()];
        let ctype = r.headers()["content-type"].to_str().unwrap();
        assert!(
            resp["content"][ctype].is_object(),
            "{m} {template} {status}: content type {ctype} not documented"
        );
        self.checked.borrow_mut().push((m, template.to_owned()));
    }

    /// Checks an answer to a request sent some other way (a raw upload body).
    async fn check(&self, method: Method, template: &str, r: reqwest::Response) -> (u16, Value) {
        let status = r.status().as_u16();
        let ctype = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = r.bytes().await.unwrap();
        let m = method.as_str().to_lowercase();
        let op = &self.doc["paths"][template][&m];
        assert!(
            op.is_object(),
            "{m} {template} is not in the OpenAPI document"
        );
        let resp = &op["responses"][status.to_string()];
        assert!(
            resp.is_object(),
            "{m} {template} answered {status}, which the document does not list: {}",
            String::from_utf8_lossy(&bytes)
        );
        let mut value = Value::Null;
        if ctype.starts_with("application/json") {
            value = serde_json::from_slice(&bytes).unwrap();
            let schema = &resp["content"]["application/json"]["schema"];
            assert!(
                schema.is_object(),
                "{m} {template} {status}: JSON body but no schema"
            );
            let mut root = schema.clone();
            root["components"] = self.doc["components"].clone();
            let validator = jsonschema::validator_for(&root).expect("schema compiles");
            let errors: Vec<String> = validator
                .iter_errors(&value)
                .map(|e| e.to_string())
                .collect();
            assert!(
                errors.is_empty(),
                "{m} {template} {status}: {errors:?}\nbody: {value}"
            );
        } else if status != 204 {
            let documented = resp["content"]
                .as_object()
                .map(|c| c.keys().cloned().collect::<Vec<_>>());
            assert!(
                documented.is_some_and(|d| d.iter().any(|k| ctype.starts_with(k.as_str()))),
                "{m} {template} {status}: content type {ctype} not documented"
            );
        }
        self.checked.borrow_mut().push((m, template.to_owned()));
        (status, value)
    }
}

#[tokio::test]
async fn every_route_is_documented_and_every_response_matches_it() {
    let app = TestApp::spawn_with(|s| s.sandbox = true).await;
    let c = Contract::fetch(&app).await;
    use Method as M;

    c.call(&app, M::GET, "/api/v1/health", "/api/v1/health", None, None)
        .await;
    let (_, user) = c
        .call(
            &app,
            M::POST,
            "/api/v1/auth/register",
            "/api/v1/auth/register",
            None,
            Some(json!({"email": "doc@example.org", "password": "correct horse battery"})),
        )
        .await;
    let uid = user["id"].as_i64().unwrap();
    c.call(
        &app,
        M::POST,
        "/api/v1/auth/register",
        "/api/v1/auth/register",
        None,
        Some(json!({"email": "doc@example.org", "password": "correct horse battery"})),
    )
    .await;
    c.call(
        &app,
        M::POST,
        "/api/v1/auth/register",
        "/api/v1/auth/register",
        None,
        Some(json!({"email": "x", "password": "y"})),
    )
    .await;
    let (_, pair) = c
        .call(
            &app,
            M::POST,
            "/api/v1/auth/login",
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "doc@example.org", "password": "correct horse battery"})),
        )
        .await;
    c.call(
        &app,
        M::POST,
        "/api/v1/auth/login",
        "/api/v1/auth/login",
        None,
        Some(json!({"email": "doc@example.org", "password": "wrong password"})),
    )
    .await;
    let token = pair["access_token"].as_str().unwrap().to_owned();
    let t = Some(token.as_str());
    let (_, pair2) = c
        .call(
            &app,
            M::POST,
            "/api/v1/auth/refresh",
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": pair["refresh_token"]})),
        )
        .await;
    c.call(
        &app,
        M::POST,
        "/api/v1/auth/refresh",
        "/api/v1/auth/refresh",
        None,
        Some(json!({"refresh_token": "nope"})),
    )
    .await;
    c.call(&app, M::GET, "/api/v1/auth/me", "/api/v1/auth/me", t, None)
        .await;
    c.call(
        &app,
        M::GET,
        "/api/v1/auth/me",
        "/api/v1/auth/me",
        None,
        None,
    )
    .await;

    let (_, admin) = app.admin("root@example.org").await;
    let a = Some(admin.as_str());
    c.call(&app, M::GET, "/api/v1/users", "/api/v1/users", a, None)
        .await;
    c.call(&app, M::GET, "/api/v1/users", "/api/v1/users", t, None)
        .await;
    c.call(
        &app,
        M::PATCH,
        "/api/v1/users/{id}",
        &format!("/api/v1/users/{uid}"),
        a,
        Some(json!({"disabled": false})),
    )
    .await;
    c.call(
        &app,
        M::PATCH,
        "/api/v1/users/{id}",
        "/api/v1/users/999999",
        a,
        Some(json!({})),
    )
    .await;
    c.call(
        &app,
        M::GET,
        "/api/v1/health/detailed",
        "/api/v1/health/detailed",
        a,
        None,
    )
    .await;
    c.call(
        &app,
        M::GET,
        "/api/v1/health/detailed",
        "/api/v1/health/detailed",
        t,
        None,
    )
    .await;

    let (_, acc) = c
        .call(
            &app,
            M::POST,
            "/api/v1/telegram/accounts",
            "/api/v1/telegram/accounts",
            t,
            Some(json!({"kind": "user", "label": "doc"})),
        )
        .await;
    let id = acc["id"].as_i64().unwrap();
    c.call(
        &app,
        M::POST,
        "/api/v1/telegram/accounts",
        "/api/v1/telegram/accounts",
        t,
        Some(json!({"kind": "bot"})),
    )
    .await;
    c.call(
        &app,
        M::GET,
        "/api/v1/telegram/accounts",
        "/api/v1/telegram/accounts?limit=10",
        t,
        None,
    )
    .await;
    let one = "/api/v1/telegram/accounts/{id}";
    c.call(
        &app,
        M::GET,
        one,
        &format!("/api/v1/telegram/accounts/{id}"),
        t,
        None,
    )
    .await;
    c.call(
        &app,
        M::PATCH,
        one,
        &format!("/api/v1/telegram/accounts/{id}"),
        t,
        Some(json!({})),
    )
    .await;
    c.call(
        &app,
        M::PATCH,
        one,
        &format!("/api/v1/telegram/accounts/{id}"),
        t,
        Some(json!({"receive_updates": "yes"})),
    )
    .await;
    c.call(
        &app,
        M::PATCH,
        one,
        &format!("/api/v1/telegram/accounts/{id}"),
        t,
        Some(json!({"device": {"device_model": "Google Pixel 7", "lang_code": "de"}})),
    )
    .await;
    c.call(
        &app,
        M::PATCH,
        one,
        &format!("/api/v1/telegram/accounts/{id}"),
        t,
        Some(json!({"device": {"lang_code": "not a language"}})),
    )
    .await;
    c.call(
        &app,
        M::GET,
        one,
        "/api/v1/telegram/accounts/424242",
        t,
        None,
    )
    .await;

    let phone = "+15550100999";
    let code_t = "/api/v1/telegram/accounts/{id}/login/code";
    c.call(
        &app,
        M::POST,
        code_t,
        &format!("/api/v1/telegram/accounts/{id}/login/code"),
        t,
        Some(json!({"phone": "12"})),
    )
    .await;
    c.call(
        &app,
        M::POST,
        code_t,
        &format!("/api/v1/telegram/accounts/{id}/login/code"),
        t,
        Some(json!({"phone": phone})),
    )
    .await;
    let (_, code) = c
        .call(
            &app,
            M::GET,
            "/api/v1/sandbox/codes/{phone}",
            &format!("/api/v1/sandbox/codes/{phone}"),
            t,
            None,
        )
        .await;
    let sign_t = "/api/v1/telegram/accounts/{id}/login/sign-in";
    c.call(
        &app,
        M::POST,
        sign_t,
        &format!("/api/v1/telegram/accounts/{id}/login/sign-in"),
        t,
        Some(json!({"code": "00000"})),
    )
    .await;
    c.call(
        &app,
        M::POST,
        sign_t,
        &format!("/api/v1/telegram/accounts/{id}/login/sign-in"),
        t,
        Some(json!({"code": code["code"]})),
    )
    .await;
    let pw_t = "/api/v1/telegram/accounts/{id}/login/password";
    c.call(
        &app,
        M::POST,
        pw_t,
        &format!("/api/v1/telegram/accounts/{id}/login/password"),
        t,
        Some(json!({"password": "sandbox-2fa"})),
    )
    .await;
    let msg_t = "/api/v1/telegram/accounts/{id}/messages";
    c.call(
        &app,
        M::POST,
        msg_t,
        &format!("/api/v1/telegram/accounts/{id}/messages"),
        t,
        Some(json!({"peer": "me", "text": "documented"})),
    )
    .await;
    c.call(
        &app,
        M::POST,
        msg_t,
        &format!("/api/v1/telegram/accounts/{id}/messages"),
        t,
        Some(json!({"peer": "nobody!", "text": ""})),
    )
    .await;
    // The media library: a raw upload (201, then 200 for the same bytes), a list, one item, an
    // album sent with it, and its deletion.
    let upload = |bytes: Vec<u8>| {
        app.client
            .post(format!("{}/api/v1/media?file_name=doc.png", app.base))
            .bearer_auth(&token)
            .body(bytes)
            .send()
    };
    let png = |tag: u8| {
        let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        b.extend([tag; 64]);
        b
    };
    let (_, item) = c
        .check(M::POST, "/api/v1/media", upload(png(1)).await.unwrap())
        .await;
    c.check(M::POST, "/api/v1/media", upload(png(1)).await.unwrap())
        .await;
    let (_, second) = c
        .check(M::POST, "/api/v1/media", upload(png(2)).await.unwrap())
        .await;
    c.check(M::POST, "/api/v1/media", upload(Vec::new()).await.unwrap())
        .await;
    let media_id = item["id"].as_str().unwrap().to_owned();
    c.call(
        &app,
        M::GET,
        "/api/v1/media",
        "/api/v1/media?limit=1",
        t,
        None,
    )
    .await;
    c.call(
        &app,
        M::GET,
        "/api/v1/media",
        "/api/v1/media?limit=0",
        t,
        None,
    )
    .await;
    let media_t = "/api/v1/media/{id}";
    c.call(
        &app,
        M::GET,
        media_t,
        &format!("/api/v1/media/{media_id}"),
        t,
        None,
    )
    .await;
    c.call(
        &app,
        M::POST,
        msg_t,
        &format!("/api/v1/telegram/accounts/{id}/messages"),
        t,
        Some(json!({"peer": "me", "media": [media_id, second["id"]], "text": "album"})),
    )
    .await;
    // A file of no known type, sent and downloaded again.
    let (_, blob) = c
        .check(
            M::POST,
            "/api/v1/media",
            upload(b"opaque bytes".to_vec()).await.unwrap(),
        )
        .await;
    let (_, sent) = c
        .call(
            &app,
            M::POST,
            msg_t,
            &format!("/api/v1/telegram/accounts/{id}/messages"),
            t,
            Some(json!({"peer": "me", "media": [blob["id"]]})),
        )
        .await;
    let media_of_t = "/api/v1/telegram/accounts/{id}/chats/{chat}/messages/{msg}/media";
    c.call(
        &app,
        M::GET,
        media_of_t,
        &format!(
            "/api/v1/telegram/accounts/{id}/chats/me/messages/{}/media",
            sent["message_id"]
        ),
        t,
        None,
    )
    .await;
    c.call(
        &app,
        M::GET,
        media_of_t,
        &format!("/api/v1/telegram/accounts/{id}/chats/me/messages/999999/media"),
        t,
        None,
    )
    .await;
    c.call(
        &app,
        M::DELETE,
        media_t,
        &format!("/api/v1/media/{media_id}"),
        t,
        None,
    )
    .await;
    c.call(
        &app,
        M::GET,
        media_t,
        &format!("/api/v1/media/{media_id}"),
        t,
        None,
    )
    .await;
    // Posts: created for tomorrow, listed, read, edited, refused when bad, cancelled, then 409.
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let (_, post) = c
        .call(
            &app,
            M::POST,
            "/api/v1/posts",
            "/api/v1/posts",
            t,
            Some(json!({"targets": [{"account_id": id, "chat": "me"}], "text": "later", "publish_at": tomorrow})),
        )
        .await;
    c.call(
        &app,
        M::POST,
        "/api/v1/posts",
        "/api/v1/posts",
        t,
        Some(json!({"targets": [], "text": "x"})),
    )
    .await;
    let post_t = "/api/v1/posts/{id}";
    let post_url = format!("/api/v1/posts/{}", post["id"].as_str().unwrap());
    c.call(
        &app,
        M::GET,
        "/api/v1/posts",
        "/api/v1/posts?state=scheduled",
        t,
        None,
    )
    .await;
    c.call(
        &app,
        M::GET,
        "/api/v1/posts",
        "/api/v1/posts?state=odd",
        t,
        None,
    )
    .await;
    c.call(&app, M::GET, post_t, &post_url, t, None).await;
    c.call(
        &app,
        M::PATCH,
        post_t,
        &post_url,
        t,
        Some(json!({"text": "later still"})),
    )
    .await;
    c.call(&app, M::DELETE, post_t, &post_url, t, None).await;
    c.call(
        &app,
        M::PATCH,
        post_t,
        &post_url,
        t,
        Some(json!({"text": "no"})),
    )
    .await;
    c.call(&app, M::DELETE, post_t, &post_url, t, None).await;
    c.call(&app, M::GET, post_t, "/api/v1/posts/missing", t, None)
        .await;
    let chats_t = "/api/v1/telegram/accounts/{id}/chats";
    let chats = format!("/api/v1/telegram/accounts/{id}/chats");
    c.call(
        &app,
        M::POST,
        chats_t,
        &chats,
        t,
        Some(json!({"type": "channel", "title": "Documented"})),
    )
    .await;
    c.call(
        &app,
        M::POST,
        chats_t,
        &chats,
        t,
        Some(json!({"type": "forum", "title": ""})),
    )
    .await;
    c.call(&app, M::GET, chats_t, &chats, t, None).await;
    c.call(
        &app,
        M::GET,
        chats_t,
        &format!("{chats}?type=nope"),
        t,
        None,
    )
    .await;
    let (_, made) = c
        .call(
            &app,
            M::POST,
            chats_t,
            &chats,
            t,
            Some(json!({"type": "supergroup", "title": "Documented too", "username": "documented_group"})),
        )
        .await;
    let chat = format!("{chats}/{}", made["chat_id"]);
    let chat_t = "/api/v1/telegram/accounts/{id}/chats/{chat}";
    c.call(&app, M::GET, chat_t, &chat, t, None).await;
    c.call(&app, M::GET, chat_t, &format!("{chats}/me"), t, None)
        .await;
    c.call(
        &app,
        M::PATCH,
        chat_t,
        &chat,
        t,
        Some(json!({"about": "documented"})),
    )
    .await;
    c.call(&app, M::PATCH, chat_t, &chat, t, Some(json!({})))
        .await;
    let invite_t = "/api/v1/telegram/accounts/{id}/chats/{chat}/invite-link";
    c.call(
        &app,
        M::POST,
        invite_t,
        &format!("{chat}/invite-link"),
        t,
        None,
    )
    .await;
    let admin_t = "/api/v1/telegram/accounts/{id}/chats/{chat}/admins/{user}";
    c.call(
        &app,
        M::PUT,
        admin_t,
        &format!("{chat}/admins/@nobody_here"),
        t,
        Some(json!({"rights": ["post_messages"]})),
    )
    .await;
    c.call(
        &app,
        M::PUT,
        admin_t,
        &format!("{chat}/admins/@nobody_here"),
        t,
        Some(json!({"rights": ["fly"]})),
    )
    .await;
    c.call(
        &app,
        M::DELETE,
        admin_t,
        &format!("{chat}/admins/me"),
        t,
        None,
    )
    .await;
    let join_t = "/api/v1/telegram/accounts/{id}/chats/join";
    c.call(
        &app,
        M::POST,
        join_t,
        &format!("{chats}/join"),
        t,
        Some(json!({"link": "t.me/documented_group"})),
    )
    .await;
    c.call(
        &app,
        M::POST,
        join_t,
        &format!("{chats}/join"),
        t,
        Some(json!({"link": "example.org"})),
    )
    .await;
    let (_, posted) = c
        .call(
            &app,
            M::POST,
            msg_t,
            &format!("/api/v1/telegram/accounts/{id}/messages"),
            t,
            Some(json!({"peer": made["chat_id"].to_string(), "text": "<b>to edit</b>", "parse_mode": "html"})),
        )
        .await;
    let history_t = "/api/v1/telegram/accounts/{id}/chats/{chat}/messages";
    c.call(
        &app,
        M::GET,
        history_t,
        &format!("{chat}/messages?limit=5"),
        t,
        None,
    )
    .await;
    c.call(
        &app,
        M::GET,
        history_t,
        &format!("{chat}/messages?limit=500"),
        t,
        None,
    )
    .await;
    let one_t = "/api/v1/telegram/accounts/{id}/chats/{chat}/messages/{msg}";
    let msg_path = format!("{chat}/messages/{}", posted["message_id"]);
    c.call(
        &app,
        M::PATCH,
        one_t,
        &msg_path,
        t,
        Some(json!({"text": "<i>edited</i>", "parse_mode": "html"})),
    )
    .await;
    c.call(
        &app,
        M::PATCH,
        one_t,
        &msg_path,
        t,
        Some(json!({"text": "<i>edited", "parse_mode": "html"})),
    )
    .await;
    let pin_t = "/api/v1/telegram/accounts/{id}/chats/{chat}/messages/{msg}/pin";
    c.call(
        &app,
        M::POST,
        pin_t,
        &format!("{msg_path}/pin?silent=true"),
        t,
        None,
    )
    .await;
    c.call(&app, M::DELETE, pin_t, &format!("{msg_path}/pin"), t, None)
        .await;
    c.call(&app, M::DELETE, one_t, &msg_path, t, None).await;
    c.call(
        &app,
        M::DELETE,
        one_t,
        &format!("{chat}/messages/0"),
        t,
        None,
    )
    .await;
    c.call(
        &app,
        M::DELETE,
        chat_t,
        &format!("{chat}?delete=true"),
        t,
        None,
    )
    .await;
    c.call(&app, M::POST, "/api/v1/sandbox/faults", "/api/v1/sandbox/faults", t,
        Some(json!({"kind": "flood_wait", "method": "messages.sendMessage", "phone": phone, "seconds": 300}))).await;
    c.call(
        &app,
        M::POST,
        msg_t,
        &format!("/api/v1/telegram/accounts/{id}/messages"),
        t,
        Some(json!({"peer": "me", "text": "flooded"})),
    )
    .await;
    c.call(
        &app,
        M::POST,
        "/api/v1/sandbox/faults",
        "/api/v1/sandbox/faults",
        t,
        Some(json!({"kind": "meteor"})),
    )
    .await;
    for body in [
        json!({"from_phone": "+15550009911", "to": phone, "text": "hello from outside"}),
        json!({"from_phone": "+15550009911", "to": phone, "text": ""}),
        json!({"from_phone": "+15550009911", "to": "@nobody_here_at_all", "text": "x"}),
    ] {
        c.call(
            &app,
            M::POST,
            "/api/v1/sandbox/messages",
            "/api/v1/sandbox/messages",
            t,
            Some(body),
        )
        .await;
    }

    let (_, qr_acc) = c
        .call(
            &app,
            M::POST,
            "/api/v1/telegram/accounts",
            "/api/v1/telegram/accounts",
            t,
            Some(json!({"kind": "user"})),
        )
        .await;
    let qid = qr_acc["id"].as_i64().unwrap();
    c.call(
        &app,
        M::POST,
        "/api/v1/telegram/accounts/{id}/login/qr",
        &format!("/api/v1/telegram/accounts/{qid}/login/qr"),
        t,
        None,
    )
    .await;
    c.call(
        &app,
        M::GET,
        "/api/v1/telegram/accounts/{id}/login/qr.png",
        &format!("/api/v1/telegram/accounts/{qid}/login/qr.png"),
        t,
        None,
    )
    .await;
    let scan = "/api/v1/sandbox/qr/scan";
    for (body, want) in [
        (json!({"account_id": qid, "phone": "12"}), 422),
        (json!({"account_id": 999_999, "phone": "+15550009912"}), 404),
        (json!({"account_id": qid, "phone": "+15550009912"}), 204),
    ] {
        let (status, _) = c.call(&app, M::POST, scan, scan, t, Some(body)).await;
        assert_eq!(status, want);
    }
    let preview = "/api/v1/formatting/preview";
    for (body, want) in [
        (json!({"text": "<b>bold</b>", "parse_mode": "html"}), 200),
        (json!({"text": "<b>open", "parse_mode": "html"}), 422),
    ] {
        let (status, _) = c.call(&app, M::POST, preview, preview, t, Some(body)).await;
        assert_eq!(status, want);
    }
    c.call(
        &app,
        M::POST,
        "/api/v1/telegram/accounts/import",
        "/api/v1/telegram/accounts/import",
        t,
        Some(json!({"sessions": [{"format": "telethon", "session": "1not-a-session"}]})),
    )
    .await;
    let export_t = "/api/v1/telegram/accounts/{id}/export";
    c.call(
        &app,
        M::GET,
        export_t,
        &format!("/api/v1/telegram/accounts/{id}/export?format=tgfleet"),
        t,
        None,
    )
    .await;
    c.call(
        &app,
        M::GET,
        export_t,
        &format!("/api/v1/telegram/accounts/{id}/export?format=tgfleet&confirm=true"),
        t,
        None,
    )
    .await;
    c.call(
        &app,
        M::POST,
        "/api/v1/telegram/accounts/{id}/restart",
        &format!("/api/v1/telegram/accounts/{id}/restart"),
        t,
        None,
    )
    .await;
    c.call(
        &app,
        M::GET,
        "/api/v1/telegram/logs",
        &format!("/api/v1/telegram/logs?account_id={id}&level=info"),
        t,
        None,
    )
    .await;
    c.call(
        &app,
        M::GET,
        "/api/v1/telegram/logs",
        "/api/v1/telegram/logs?level=loud",
        t,
        None,
    )
    .await;
    c.call(
        &app,
        M::GET,
        "/api/v1/telegram/stats/errors",
        "/api/v1/telegram/stats/errors",
        t,
        None,
    )
    .await;
    c.call(
        &app,
        M::GET,
        "/api/v1/telegram/stats/errors",
        "/api/v1/telegram/stats/errors",
        a,
        None,
    )
    .await;
    c.call(
        &app,
        M::POST,
        "/api/v1/telegram/accounts/{id}/logout",
        &format!("/api/v1/telegram/accounts/{id}/logout"),
        t,
        None,
    )
    .await;
    c.call(
        &app,
        M::DELETE,
        one,
        &format!("/api/v1/telegram/accounts/{qid}"),
        t,
        None,
    )
    .await;
    events_and_webhooks(&app, &c, t).await;
    proxies(&app, &c, t, id).await;
    c.call(
        &app,
        M::POST,
        "/api/v1/auth/logout",
        "/api/v1/auth/logout",
        Some(pair2["access_token"].as_str().unwrap()),
        None,
    )
    .await;

    // Every operation in the document was exercised at least once, so none is stale.
    let checked = c.checked.borrow().clone();
    for (path, item) in c.doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            assert!(
                checked.iter().any(|(m, p)| m == method && p == path),
                "{method} {path} is documented but this test never called it"
            );
        }
    }
    app.shutdown().await;
}

async fn proxies(app: &TestApp, c: &Contract, t: Option<&str>, account: i64) {
    use Method as M;
    let pool = "/api/v1/proxies";
    let one = "/api/v1/proxies/{id}";
    c.call(
        app,
        M::POST,
        pool,
        pool,
        t,
        Some(json!({"url": "http://x:1"})),
    )
    .await;
    let (_, proxy) = c
        .call(
            app,
            M::POST,
            pool,
            pool,
            t,
            Some(json!({"url": "socks5://u:p@127.0.0.1:1", "label": "p"})),
        )
        .await;
    let id = proxy["id"].as_i64().unwrap();
    c.call(app, M::GET, pool, pool, t, None).await;
    c.call(app, M::GET, one, &format!("{pool}/{id}"), t, None)
        .await;
    c.call(app, M::GET, one, &format!("{pool}/999999"), t, None)
        .await;
    c.call(
        app,
        M::PATCH,
        one,
        &format!("{pool}/{id}"),
        t,
        Some(json!({"label": null})),
    )
    .await;
    let assign = "/api/v1/proxies/assign";
    c.call(
        app,
        M::POST,
        assign,
        assign,
        t,
        Some(json!({"account_ids": [account], "proxy_ids": [999999]})),
    )
    .await;
    c.call(
        app,
        M::POST,
        assign,
        assign,
        t,
        Some(json!({"account_ids": [account], "proxy_ids": [id]})),
    )
    .await;
    c.call(app, M::DELETE, one, &format!("{pool}/{id}"), t, None)
        .await;
    c.call(
        app,
        M::DELETE,
        one,
        &format!("{pool}/{id}?unbind=true"),
        t,
        None,
    )
    .await;
}

async fn events_and_webhooks(app: &TestApp, c: &Contract, t: Option<&str>) {
    use Method as M;
    let stream = app
        .client
        .get(format!("{}/api/v1/events?types=ping", app.base))
        .bearer_auth(t.unwrap())
        .send()
        .await
        .unwrap();
    c.check_stream_head(M::GET, "/api/v1/events", &stream);
    drop(stream);
    let bad = app
        .client
        .get(format!("{}/api/v1/events", app.base))
        .bearer_auth(t.unwrap())
        .header("last-event-id", "x")
        .send()
        .await
        .unwrap();
    c.check(M::GET, "/api/v1/events", bad).await;
    let log = "/api/v1/events/log";
    c.call(
        app,
        M::GET,
        log,
        "/api/v1/events/log?after=0&limit=5",
        t,
        None,
    )
    .await;
    c.call(app, M::GET, log, "/api/v1/events/log?limit=0", t, None)
        .await;
    c.call(
        app,
        M::GET,
        log,
        "/api/v1/events/log?account_id=999999",
        t,
        None,
    )
    .await;
    let hooks = "/api/v1/webhooks";
    let (_, hook) = c
        .call(
            app,
            M::POST,
            hooks,
            hooks,
            t,
            Some(json!({"url": "https://hooks.example.org/tg", "events": ["*"]})),
        )
        .await;
    c.call(
        app,
        M::POST,
        hooks,
        hooks,
        t,
        Some(json!({"url": "http://127.0.0.1:9464/", "events": ["*"]})),
    )
    .await;
    c.call(app, M::GET, hooks, hooks, t, None).await;
    let id = hook["id"].as_str().unwrap();
    let one = "/api/v1/webhooks/{id}";
    let url = format!("/api/v1/webhooks/{id}");
    c.call(app, M::GET, one, &url, t, None).await;
    c.call(app, M::GET, one, "/api/v1/webhooks/missing", t, None)
        .await;
    c.call(
        app,
        M::PATCH,
        one,
        &url,
        t,
        Some(json!({"events": ["message.received"], "description": null})),
    )
    .await;
    c.call(app, M::PATCH, one, &url, t, Some(json!({"events": []})))
        .await;
    c.call(
        app,
        M::POST,
        "/api/v1/webhooks/{id}/rotate-secret",
        &format!("{url}/rotate-secret"),
        t,
        None,
    )
    .await;
    c.call(
        app,
        M::POST,
        "/api/v1/webhooks/{id}/test",
        &format!("{url}/test"),
        t,
        None,
    )
    .await;
    let deliveries = "/api/v1/webhooks/{id}/deliveries";
    c.call(
        app,
        M::GET,
        deliveries,
        &format!("{url}/deliveries"),
        t,
        None,
    )
    .await;
    c.call(
        app,
        M::GET,
        deliveries,
        &format!("{url}/deliveries?state=odd"),
        t,
        None,
    )
    .await;
    let replay = "/api/v1/webhooks/{id}/replay";
    c.call(
        app,
        M::POST,
        replay,
        &format!("{url}/replay"),
        t,
        Some(json!({"since_event_id": 1})),
    )
    .await;
    c.call(
        app,
        M::POST,
        replay,
        &format!("{url}/replay"),
        t,
        Some(json!({"since_event_id": 0})),
    )
    .await;
    c.call(app, M::DELETE, one, &url, t, None).await;
    c.call(app, M::DELETE, one, &url, t, None).await;
}
