//! Issue 7, item 7: `kill -9` of the real `tgfleet serve` while accounts are being onboarded, then
//! a restart over the same data dir. The fake Telegram is a standalone `tgfleet testdc` process
//! (`telegram.testdc_control`), so it keeps its users, keys and sent codes across the crash, as
//! Telegram would. Every account that was active is active again, and every login that was waiting
//! for its code completes with that code.
//!
//! CI form: 60 accounts. `TGFLEET_CHAOS_FULL=1`: 500.

mod support;

use futures::StreamExt;
use serde_json::json;
use std::time::{Duration, Instant};
use support::{call, code, serve, wait_until_up};

async fn states(http: &reqwest::Client, api: &str, token: &str) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    let mut cursor: Option<i64> = None;
    for _page in 0..100 {
        let mut url = format!("{api}/api/v1/telegram/accounts?limit=200");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let v = call(http.get(url).bearer_auth(token), 200, "listing").await;
        for a in v["items"].as_array().unwrap() {
            out.push((
                a["id"].as_i64().unwrap(),
                a["state"].as_str().unwrap().to_owned(),
            ));
        }
        match v["next_cursor"].as_i64() {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
    panic!("more than 100 pages of accounts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_onboarding_loses_no_account_and_no_pending_login() {
    let n: usize = if std::env::var("TGFLEET_CHAOS_FULL").is_ok_and(|v| v == "1") {
        500
    } else {
        60
    };
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();

    // The fake Telegram, in its own process: it outlives both tgfleet runs.
    let (_testdc, control) = support::testdc(dir.path(), &[], &http).await;

    let (mut first, api) = serve(dir.path(), &control, "serve1", &[]);
    wait_until_up(&http, &format!("{api}/api/v1/health"), "tgfleet serve").await;
    // The JWT secret lives in the data dir, so this token is still good after the restart.
    let token = support::user_token(&http, &api).await;

    // Onboard: every account gets its code sent; the even ones also sign in.
    let phones: Vec<String> = (0..)
        .map(|i| format!("+1555080{i:04}"))
        .filter(|p| !p.ends_with('9')) // phones ending in 9 have 2FA in the sandbox directory
        .take(n)
        .collect();
    let started = Instant::now();
    let onboarded: Vec<(i64, String, bool)> =
        futures::stream::iter(phones.iter().cloned().enumerate())
            .map(|(i, phone)| {
                let (http, api, token, control) =
                    (http.clone(), api.clone(), token.clone(), control.clone());
                async move {
                    let account = call(
                        http.post(format!("{api}/api/v1/telegram/accounts"))
                            .bearer_auth(&token)
                            .json(&json!({"kind": "user", "label": format!("bulk {i}")})),
                        201,
                        "create",
                    )
                    .await;
                    let id = account["id"].as_i64().unwrap();
                    let sent = call(
                        http.post(format!("{api}/api/v1/telegram/accounts/{id}/login/code"))
                            .bearer_auth(&token)
                            .json(&json!({"phone": phone})),
                        200,
                        "send code",
                    )
                    .await;
                    assert_eq!(sent["state"], "awaiting_code");
                    let sign_in = i % 2 == 0;
                    if sign_in {
                        let code = code(&http, &control, &phone).await;
                        let step = call(
                            http.post(format!("{api}/api/v1/telegram/accounts/{id}/login/sign-in"))
                                .bearer_auth(&token)
                                .json(&json!({"code": code})),
                            200,
                            "sign in",
                        )
                        .await;
                        assert_eq!(step["state"], "active");
                    }
                    (id, phone, sign_in)
                }
            })
            .buffer_unordered(8)
            .collect()
            .await;
    let onboarding = started.elapsed();
    let before = states(&http, &api, &token).await;
    let active_before = before.iter().filter(|(_, s)| s == "active").count();
    assert_eq!(active_before, n.div_ceil(2));
    assert_eq!(before.len(), n);

    // kill -9 (std's Child::kill is SIGKILL on Unix): no shutdown hook runs.
    first.0.kill().expect("SIGKILL tgfleet");
    first.0.wait().unwrap();
    drop(first);

    let restarted = Instant::now();
    let (_second, api) = serve(dir.path(), &control, "serve2", &[]);
    wait_until_up(
        &http,
        &format!("{api}/api/v1/health"),
        "tgfleet serve (again)",
    )
    .await;

    // Every account that was active is active again (the deadline is a safety bound).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let now = states(&http, &api, &token).await;
        let want_active: Vec<_> = onboarded
            .iter()
            .filter(|(_, _, signed_in)| *signed_in)
            .filter(|(id, _, _)| !now.iter().any(|(i, s)| i == id && s == "active"))
            .collect();
        if want_active.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not active again after the restart: {want_active:?}; states {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let actives_back = restarted.elapsed();
    // Active in the database is not enough: each of them sends a message with its old session.
    for (id, _, _) in onboarded.iter().filter(|(_, _, signed_in)| *signed_in) {
        call(
            http.post(format!("{api}/api/v1/telegram/accounts/{id}/messages"))
                .bearer_auth(&token)
                .json(&json!({"peer": "me", "text": "after kill -9"})),
            201,
            "sending with a session from before the crash",
        )
        .await;
    }

    // Every pending login is still waiting for its code, and completes with it.
    let now = states(&http, &api, &token).await;
    let pending: Vec<_> = onboarded.iter().filter(|(_, _, s)| !*s).collect();
    for (id, _, _) in &pending {
        let state = &now.iter().find(|(i, _)| i == id).expect("account listed").1;
        assert_eq!(state, "awaiting_code", "account {id}");
    }
    let completed: Vec<i64> = futures::stream::iter(pending.iter())
        .map(|(id, phone, _)| {
            let (http, api, token, control) =
                (http.clone(), api.clone(), token.clone(), control.clone());
            async move {
                let code = code(&http, &control, phone).await;
                let step = call(
                    http.post(format!("{api}/api/v1/telegram/accounts/{id}/login/sign-in"))
                        .bearer_auth(&token)
                        .json(&json!({"code": code})),
                    200,
                    "sign in after the restart",
                )
                .await;
                assert_eq!(step["state"], "active", "account {id}");
                *id
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    assert_eq!(completed.len(), pending.len());
    let after = states(&http, &api, &token).await;
    assert_eq!(after.len(), n, "no account lost or duplicated");
    let not_active: Vec<_> = after.iter().filter(|(_, s)| s != "active").collect();
    assert!(not_active.is_empty(), "{not_active:?}");
    println!(
        "crash_onboarding: {n} accounts onboarded in {onboarding:.1?} ({active_before} active, {} \
         awaiting_code); kill -9; restarted: all {active_before} active again {actives_back:.2?} \
         after the restart began; {} pending logins completed; all {n} active {:.2?} after it",
        pending.len(),
        completed.len(),
        restarted.elapsed()
    );
}
