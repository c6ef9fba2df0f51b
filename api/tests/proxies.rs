//! The proxy pool against real SOCKS5 servers: Debian's `microsocks`, started on free loopback
//! ports and killed by pid (`tgfleet_persistence::testing::SocksServer`). Without it these tests skip with a notice, unless
//! `TGFLEET_REQUIRE_SERVICES=1` (scripts/test installs it).

mod common;

use common::{code_login, error_code, json_of, sandbox, TestApp};
use serde_json::{json, Value};
use std::time::Duration;
use tgfleet_persistence::testing::SocksServer;

async fn add_proxy(app: &TestApp, token: &str, url: &str) -> Value {
    json_of(
        app.post(
            "/api/v1/proxies",
            Some(token),
            json!({"url": url, "label": "loopback"}),
        )
        .await,
        201,
    )
    .await
}

fn dc_ports(app: &TestApp) -> Vec<u16> {
    app.state
        .sandbox
        .as_ref()
        .unwrap()
        .dc_addrs()
        .into_iter()
        .map(|(_, a)| a.port())
        .collect()
}

/// The initConnections testdc has seen from `phone`'s keys.
fn inits(app: &TestApp, phone: &str) -> usize {
    app.state
        .sandbox
        .as_ref()
        .unwrap()
        .connection_inits(Some(phone))
        .len()
}

#[tokio::test]
async fn an_account_bound_to_a_proxy_connects_only_through_it() {
    let Some(mut proxy) = SocksServer::start(Some(("alice", "s3cret"))).await else {
        return;
    };
    let app = sandbox().await;
    let (_, token, _) = app.user("owner@example.org").await;
    let url = format!("socks5://alice:s3cret@127.0.0.1:{}", proxy.port);
    let created = add_proxy(&app, &token, &url).await;
    // Checked at creation, through the proxy to the DC; the URL is not in the answer.
    assert_eq!(created["state"], "ok", "{created}");
    assert!(created["latency_ms"].as_i64().is_some(), "{created}");
    assert!(!created.to_string().contains("s3cret"), "{created}");
    assert!(created.get("url").is_none(), "{created}");
    let proxy_id = created["id"].as_i64().unwrap();
    // The check itself went through the proxy; what comes after it is the account's.
    let dc_lines = |log: &str| {
        dc_ports(&app)
            .iter()
            .map(|p| log.matches(&format!("connected to 127.0.0.1:{p}")).count())
            .sum::<usize>()
    };
    let by_check = dc_lines(&proxy.log());
    assert_eq!(by_check, 1, "microsocks log: {:?}", proxy.log());

    let account = json_of(
        app.post(
            "/api/v1/telegram/accounts",
            Some(&token),
            json!({"kind": "user", "proxy_id": proxy_id}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(account["proxy_id"], proxy_id);
    let id = account["id"].as_i64().unwrap();
    let phone = "+15550100441";
    let step = code_login(&app, &token, id, phone).await;
    assert_eq!(step["state"], "active", "{step}");
    let sent = app
        .post(
            &format!("/api/v1/telegram/accounts/{id}/messages"),
            Some(&token),
            json!({"peer": "me", "text": "through the proxy"}),
        )
        .await;
    json_of(sent, 201).await;
    // The proxy made the account's connections to the DC: its own log names the DC's port.
    let log = proxy.log();
    assert!(
        dc_lines(&log) > by_check,
        "microsocks log: {log:?}, DC ports {:?}",
        dc_ports(&app)
    );
    // And no connection of the account's went around it: every initConnection testdc saw for
    // the account's key has a connection through the proxy behind it.
    assert!(
        inits(&app, phone) <= dc_lines(&log) - by_check,
        "{} initConnections, {} connections through the proxy",
        inits(&app, phone),
        dc_lines(&log) - by_check
    );

    // The proxy dies. The pool's check (the periodic round, run here at once) finds it
    // unreachable and has its idle account check its connection: the account leaves `active`
    // for `reconnecting`, its cause the proxy, and no connection replaces it directly.
    let seen = inits(&app, phone);
    proxy.kill();
    tgfleet_api::proxies::check_all(&app.state).await;
    let checked = json_of(
        app.get(&format!("/api/v1/proxies/{proxy_id}"), Some(&token))
            .await,
        200,
    )
    .await;
    assert_eq!(checked["state"], "unreachable", "{checked}");
    assert!(checked["last_error"].is_string(), "{checked}");
    assert!(!checked.to_string().contains("s3cret"), "{checked}");
    let mut account = Value::Null;
    for _ in 0..100 {
        account = json_of(
            app.get(&format!("/api/v1/telegram/accounts/{id}"), Some(&token))
                .await,
            200,
        )
        .await;
        if account["state"] == "reconnecting" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(account["state"], "reconnecting", "{account}");
    let logs = json_of(
        app.get(
            &format!("/api/v1/telegram/logs?account_id={id}&event=reconnecting"),
            Some(&token),
        )
        .await,
        200,
    )
    .await;
    assert!(
        logs.to_string().contains("proxy_unreachable"),
        "the reconnect names the proxy as its cause: {logs}"
    );
    // Its reconnect attempts (the first backoff is about a second) keep failing at the proxy.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let r = app
        .post(
            &format!("/api/v1/telegram/accounts/{id}/messages"),
            Some(&token),
            json!({"peer": "me", "text": "still not directly"}),
        )
        .await;
    assert_eq!(r.status(), 503);
    assert_eq!(
        inits(&app, phone),
        seen,
        "testdc saw a connection of the account without its proxy"
    );
    let delivered = app.state.sandbox.as_ref().unwrap().messages();
    assert!(!delivered.iter().any(|m| m.text.contains("directly")));
    app.shutdown().await;
}

#[tokio::test]
async fn the_pool_keeps_urls_sealed_and_bindings_honest() {
    let app = sandbox().await;
    let (_, token, _) = app.user("pool@example.org").await;
    let (_, other, _) = app.user("other@example.org").await;
    for bad in ["http://127.0.0.1:8080", "socks5://127.0.0.1", "nonsense"] {
        let r = app
            .post("/api/v1/proxies", Some(&token), json!({"url": bad}))
            .await;
        assert_eq!(error_code(r, 422).await, "INVALID_PROXY_URL", "{bad}");
    }
    // Nothing listens on port 1: created, and found unreachable by its first check.
    let created = add_proxy(&app, &token, "socks5://bob:hunter2@127.0.0.1:1").await;
    assert_eq!(created["state"], "unreachable", "{created}");
    assert!(!created.to_string().contains("hunter2"), "{created}");
    let proxy_id = created["id"].as_i64().unwrap();
    // Sealed at rest: the row holds no credentials in the clear, and opens to the URL.
    let sealed = app.state.store.proxy_url(proxy_id).await.unwrap();
    assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
    let opened = app
        .state
        .cipher
        .open_proxy_url(proxy_id, &sealed)
        .await
        .unwrap();
    assert_eq!(opened.expose(), "socks5://bob:hunter2@127.0.0.1:1");
    assert!(!format!("{opened:?}").contains("hunter2"));

    let listed = json_of(app.get("/api/v1/proxies", Some(&token)).await, 200).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let theirs = json_of(app.get("/api/v1/proxies", Some(&other)).await, 200).await;
    assert_eq!(theirs.as_array().unwrap().len(), 0);
    let r = app
        .get(&format!("/api/v1/proxies/{proxy_id}"), Some(&other))
        .await;
    assert_eq!(error_code(r, 404).await, "PROXY_NOT_FOUND");
    let renamed = json_of(
        app.request(
            reqwest::Method::PATCH,
            &format!("/api/v1/proxies/{proxy_id}"),
            Some(&token),
            Some(json!({"label": "renamed"})),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(renamed["label"], "renamed");

    // Someone else's proxy cannot be bound, at creation or later.
    let r = app
        .post(
            "/api/v1/telegram/accounts",
            Some(&other),
            json!({"kind": "user", "proxy_id": proxy_id}),
        )
        .await;
    assert_eq!(error_code(r, 422).await, "PROXY_NOT_FOUND");
    let id = common::create_user_account(&app, &token).await;
    let path = format!("/api/v1/telegram/accounts/{id}");
    let patch = |body: Value| app.request(reqwest::Method::PATCH, &path, Some(&token), Some(body));
    assert_eq!(
        error_code(patch(json!({"proxy_id": 999_999})).await, 422).await,
        "PROXY_NOT_FOUND"
    );
    let bound = json_of(patch(json!({"proxy_id": proxy_id})).await, 200).await;
    assert_eq!(bound["proxy_id"], proxy_id);
    // In use: not deleted, until asked to unbind.
    let r = app
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/proxies/{proxy_id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(error_code(r, 409).await, "PROXY_IN_USE");
    let r = app
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/proxies/{proxy_id}?unbind=true"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.status(), 204);
    let account = json_of(
        app.get(&format!("/api/v1/telegram/accounts/{id}"), Some(&token))
            .await,
        200,
    )
    .await;
    assert!(account["proxy_id"].is_null(), "{account}");
    app.shutdown().await;
}

#[tokio::test]
async fn bulk_assignment_spreads_accounts_evenly() {
    let app = sandbox().await;
    let (_, token, _) = app.user("bulk@example.org").await;
    let (_, other, _) = app.user("nosy@example.org").await;
    let a = add_proxy(&app, &token, "socks5://127.0.0.1:1").await["id"].clone();
    let b = add_proxy(&app, &token, "socks5://127.0.0.1:2").await["id"].clone();
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(common::create_user_account(&app, &token).await);
    }
    // Someone else's accounts or proxies: refused, nothing written.
    let r = app
        .post(
            "/api/v1/proxies/assign",
            Some(&other),
            json!({"account_ids": ids, "proxy_ids": [a]}),
        )
        .await;
    assert_eq!(error_code(r, 422).await, "PROXY_NOT_FOUND");
    let assigned = json_of(
        app.post(
            "/api/v1/proxies/assign",
            Some(&token),
            json!({"account_ids": ids, "proxy_ids": [a, b]}),
        )
        .await,
        200,
    )
    .await;
    let mut on = std::collections::HashMap::new();
    for (i, id) in ids.iter().enumerate() {
        let account = json_of(
            app.get(&format!("/api/v1/telegram/accounts/{id}"), Some(&token))
                .await,
            200,
        )
        .await;
        assert_eq!(account["proxy_id"], assigned[i]["proxy_id"], "{assigned}");
        *on.entry(account["proxy_id"].to_string()).or_insert(0) += 1;
    }
    let mut counts: Vec<i32> = on.into_values().collect();
    counts.sort_unstable();
    assert_eq!(counts, vec![2, 3], "five accounts over two proxies");
    app.shutdown().await;
}

#[tokio::test]
async fn an_imported_session_is_checked_through_its_proxy_and_keeps_it() {
    let Some(proxy) = SocksServer::start(None).await else {
        return;
    };
    let app = sandbox().await;
    let (_, token, _) = app.user("import@example.org").await;
    // A session logged in elsewhere: exported, its account deleted, its authorization kept.
    let phone = "+15550100442";
    let id = common::logged_in_account(&app, &token, phone).await;
    let exported = json_of(
        app.get(
            &format!("/api/v1/telegram/accounts/{id}/export?format=tgfleet&confirm=true"),
            Some(&token),
        )
        .await,
        200,
    )
    .await;
    let r = app
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/telegram/accounts/{id}?keep_authorization=true"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.status(), 204);
    assert!(!proxy.log().contains("connected to"), "{}", proxy.log());

    let proxy_id =
        add_proxy(&app, &token, &format!("socks5://127.0.0.1:{}", proxy.port)).await["id"].clone();
    let imported = json_of(
        app.post(
            "/api/v1/telegram/accounts/import",
            Some(&token),
            json!({"sessions": [{"format": "tgfleet", "session": exported["session"], "proxy_id": proxy_id}]}),
        )
        .await,
        200,
    )
    .await;
    let result = &imported["results"][0];
    assert_eq!(result["status"], "imported", "{imported}");
    let account_id = result["account_id"].as_i64().unwrap();
    let account = json_of(
        app.get(
            &format!("/api/v1/telegram/accounts/{account_id}"),
            Some(&token),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(account["proxy_id"], proxy_id);
    let sent = app
        .post(
            &format!("/api/v1/telegram/accounts/{account_id}/messages"),
            Some(&token),
            json!({"peer": "me", "text": "imported, through the proxy"}),
        )
        .await;
    json_of(sent, 201).await;
    let log = proxy.log();
    let connected = log.matches("connected to").count();
    // The proxy's own check, the import's probe, the account's connection: all through it.
    assert!(connected >= 3, "microsocks log: {log:?}");
    app.shutdown().await;
}

/// A session exported from a fresh login and its account deleted with its authorization kept:
/// a live tgfleet session string that belongs to no account.
async fn orphan(app: &TestApp, token: &str, phone: &str) -> Value {
    let id = common::logged_in_account(app, token, phone).await;
    let exported = json_of(
        app.get(
            &format!("/api/v1/telegram/accounts/{id}/export?format=tgfleet&confirm=true"),
            Some(token),
        )
        .await,
        200,
    )
    .await;
    let r = app
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/telegram/accounts/{id}?keep_authorization=true"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(r.status(), 204);
    exported["session"].clone()
}

/// Issue 16 item 3: an import item may name its proxy by URL (what a seller's `.json` carries):
/// the caller's proxy with that URL is used, or one is added for it, once however many items
/// and requests bring it; the account then goes only through it.
#[tokio::test]
async fn an_import_names_its_proxy_by_url_and_sessions_sharing_one_share_the_pool_entry() {
    let Some(proxy) = SocksServer::start(Some(("carol", "pw"))).await else {
        return;
    };
    let app = sandbox().await;
    let (_, token, _) = app.user("byurl@example.org").await;
    let (first, second, third) = (
        orphan(&app, &token, "+15550100451").await,
        orphan(&app, &token, "+15550100452").await,
        orphan(&app, &token, "+15550100453").await,
    );
    let url = proxy.url(Some(("carol", "pw")));
    let import = |items: Value| {
        let app = &app;
        let token = &token;
        async move {
            json_of(
                app.post(
                    "/api/v1/telegram/accounts/import",
                    Some(token),
                    json!({ "sessions": items }),
                )
                .await,
                200,
            )
            .await["results"]
                .as_array()
                .unwrap()
                .clone()
        }
    };
    let refused = import(json!([
        {"format": "tgfleet", "session": first, "proxy": url, "proxy_id": 1},
        {"format": "tgfleet", "session": first, "proxy": "http://127.0.0.1:8080"},
        {"format": "tgfleet", "session": first, "proxy": "socks5://carol:p%40ss@127.0.0.1:1080"},
    ]))
    .await;
    let codes: Vec<_> = refused.iter().map(|r| r["code"].clone()).collect();
    assert_eq!(
        codes,
        ["INVALID_PROXY", "INVALID_PROXY_URL", "INVALID_PROXY_URL"],
        "{refused:?}"
    );
    assert!(refused[2]["error"]
        .as_str()
        .unwrap()
        .contains("characters a URL escapes"));
    assert!(!serde_json::to_string(&refused).unwrap().contains("p%40ss"));
    assert_eq!(
        json_of(app.get("/api/v1/proxies", Some(&token)).await, 200).await,
        json!([]),
        "a refused request adds no proxy"
    );

    let results = import(json!([
        {"format": "tgfleet", "session": first, "proxy": url},
        {"format": "tgfleet", "session": second, "proxy": format!("{url}/")},
    ]))
    .await;
    let again = import(json!([{"format": "tgfleet", "session": third, "proxy": url}])).await;
    let mut bound = Vec::new();
    for r in results.iter().chain(&again) {
        assert_eq!(r["status"], "imported", "{r}");
        let id = r["account_id"].as_i64().unwrap();
        let account = json_of(
            app.get(&format!("/api/v1/telegram/accounts/{id}"), Some(&token))
                .await,
            200,
        )
        .await;
        bound.push(account["proxy_id"].clone());
        json_of(
            app.post(
                &format!("/api/v1/telegram/accounts/{id}/messages"),
                Some(&token),
                json!({"peer": "me", "text": "through the imported proxy"}),
            )
            .await,
            201,
        )
        .await;
    }
    let pool = json_of(app.get("/api/v1/proxies", Some(&token)).await, 200).await;
    let pool = pool.as_array().unwrap();
    assert_eq!(pool.len(), 1, "one entry for one URL: {pool:?}");
    assert_eq!(pool[0]["state"], "ok", "checked when added: {pool:?}");
    assert_eq!(
        pool[0]["label"],
        format!("imported 127.0.0.1:{}", proxy.port)
    );
    assert!(bound.iter().all(|b| *b == pool[0]["id"]), "{bound:?}");
    // Its check, three probes and three accounts' connections, all through it.
    let log = proxy.log();
    assert!(log.matches("connected to").count() >= 7, "{log}");
    app.shutdown().await;
}
