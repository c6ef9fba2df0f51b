//! Issue 11, item 1: a second `tgfleet serve` on the same database (a rolling deploy, a second
//! terminal) must refuse to start with one line, before it touches a session. The fake Telegram
//! answers AUTH_KEY_DUPLICATED the way Telegram does when one key is live twice, so a second
//! process that got as far as connecting would show here as stopped or wiped accounts.

mod support;

use std::path::Path;
use std::time::Duration;
use support::{call, exit_within, log_of, logged_in_account, send, serve, testdc, user_token};

async fn second_serve_refuses_and_every_session_stays(dir: &Path, env: &[(&str, &str)]) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let (_testdc, control) = testdc(dir, &["--strict-duplicate-keys"], &http).await;

    let (_first, api) = serve(dir, &control, "first", env);
    support::wait_until_up(&http, &format!("{api}/api/v1/health"), "first serve").await;
    let token = user_token(&http, &api).await;
    let mut ids = Vec::new();
    for phone in ["+15553100001", "+15553100002", "+15553100003"] {
        ids.push(logged_in_account(&http, &api, &token, &control, phone).await);
    }

    let (mut second, _api2) = serve(dir, &control, "second", env);
    let status = exit_within(&mut second.0, Duration::from_secs(60));
    let stderr = log_of(dir, "second");
    let status = status.unwrap_or_else(|| {
        panic!("the second serve on the same database kept running; its log:\n{stderr}")
    });
    assert!(!status.success(), "{status}: {stderr}");
    let errors: Vec<_> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one clear line: {stderr}");
    assert!(
        errors[0].contains("another tgfleet process is running on this database"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    // The first process never noticed: every account active, every session sends.
    for id in &ids {
        let account = call(
            http.get(format!("{api}/api/v1/telegram/accounts/{id}"))
                .bearer_auth(&token),
            200,
            "account",
        )
        .await;
        assert_eq!(account["state"], "active", "{account}");
        assert_eq!(send(&http, &api, &token, *id, "still mine").await, 201);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_serve_on_the_same_sqlite_database_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    second_serve_refuses_and_every_session_stays(dir.path(), &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_serve_on_the_same_postgres_database_refuses_to_start() {
    let Some(db) = tgfleet_persistence::testing::TestDb::postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    second_serve_refuses_and_every_session_stays(
        dir.path(),
        &[("TGFLEET__DATABASE__URL", db.url.as_str())],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_goes_with_the_process_so_the_next_one_starts() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let (_testdc, control) = testdc(dir, &["--strict-duplicate-keys"], &http).await;
    let (mut first, api) = serve(dir, &control, "first", &[]);
    support::wait_until_up(&http, &format!("{api}/api/v1/health"), "first serve").await;
    let token = user_token(&http, &api).await;
    let id = logged_in_account(&http, &api, &token, &control, "+15553100010").await;
    // kill -9: no shutdown hook releases anything; the kernel does.
    first.0.kill().unwrap();
    first.0.wait().unwrap();

    let (_next, api) = serve(dir, &control, "next", &[]);
    support::wait_until_up(&http, &format!("{api}/api/v1/health"), "next serve").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while send(&http, &api, &token, id, "after kill -9").await != 201 {
        assert!(
            std::time::Instant::now() < deadline,
            "the account never sent from the next process: {}",
            log_of(dir, "next")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
