//! `tgfleet accounts onboard` as an operator runs it: the real binary against a real
//! `tgfleet serve --sandbox` (free ports, a temporary data dir), 200 phones, one run killed
//! half-way and a second run that finishes the job without duplicates.

mod support;

use serde_json::Value;
use std::time::{Duration, Instant};
use support::{free_port, tgfleet, Guard};

async fn accounts(http: &reqwest::Client, api: &str, token: &str) -> Vec<Value> {
    // The CLI shares this user's request budget, so a 429 here just means "ask again".
    loop {
        let r = http
            .get(format!("{api}/api/v1/telegram/accounts?limit=500"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        match v["items"].as_array() {
            Some(items) => return items.clone(),
            None if status == 429 => tokio::time::sleep(Duration::from_millis(200)).await,
            None => panic!("listing accounts: {status} {v}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onboarding_200_phones_survives_a_kill_and_finishes_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let (port, metrics) = (free_port(), free_port());
    let api = format!("http://127.0.0.1:{port}");
    let _server = Guard(
        tgfleet(dir.path(), &["serve", "--sandbox"], "serve")
            .env("TGFLEET__API__LISTEN", format!("127.0.0.1:{port}"))
            .env("TGFLEET__METRICS__LISTEN", format!("127.0.0.1:{metrics}"))
            // 200 accounts of one user, 16 logins halfway at once: past the per-user defaults,
            // as an operator onboarding this many raises them.
            .env("TGFLEET__ACCOUNTS__MAX_PER_USER", "1000")
            .env("TGFLEET__ACCOUNTS__MAX_PENDING_LOGINS_PER_USER", "100")
            .spawn()
            .expect("spawn tgfleet serve"),
    );
    let http = reqwest::Client::new();
    support::wait_until_up(&http, &format!("{api}/api/v1/health"), "tgfleet serve").await;
    let token = support::user_token(&http, &api).await;

    // 200 phones; the 20 ending in 9 have 2FA, and the CSV carries their password.
    let mut csv = String::from("phone,password,label\n");
    for i in 0..200 {
        let phone = format!("+1555030{i:04}");
        let password = if i % 10 == 9 { "sandbox-2fa" } else { "" };
        csv.push_str(&format!("{phone},{password},bulk {i}\n"));
    }
    std::fs::write(dir.path().join("phones.csv"), csv).unwrap();
    let onboard = |log: &str| {
        let mut cmd = tgfleet(
            dir.path(),
            &[
                "accounts",
                "onboard",
                "phones.csv",
                "--sandbox-codes",
                "--rate",
                "40",
                "--concurrency",
                "16",
            ],
            log,
        );
        cmd.env("TGFLEET_URL", &api).env("TGFLEET_TOKEN", &token);
        cmd
    };

    // First run: killed once about half the phones are active.
    let started = Instant::now();
    let mut first = Guard(onboard("first").spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let active = accounts(&http, &api, &token)
            .await
            .iter()
            .filter(|a| a["state"] == "active")
            .count();
        if active >= 100 {
            break;
        }
        if let Ok(Some(status)) = first.0.try_wait() {
            panic!("the first run ended before it was killed: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "only {active} active after 300 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    let at_kill = accounts(&http, &api, &token).await;
    let half_done = at_kill.iter().filter(|a| a["state"] != "active").count();
    eprintln!(
        "killed after {:.1} s: {} accounts, {} not active yet",
        started.elapsed().as_secs_f64(),
        at_kill.len(),
        half_done
    );
    assert!(
        at_kill.len() < 200,
        "the kill came too late to test resuming"
    );

    // Second run: finishes, skipping what is done.
    let second_start = Instant::now();
    let status = onboard("second").status().unwrap();
    let out = std::fs::read_to_string(dir.path().join("second.out")).unwrap();
    let err = std::fs::read_to_string(dir.path().join("second.err")).unwrap();
    assert!(status.success(), "{out}\n{err}");
    eprintln!(
        "second run: {:.1} s; total {:.1} s\n{out}",
        second_start.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert!(out.contains("already active"), "{out}");

    let all = accounts(&http, &api, &token).await;
    assert_eq!(all.len(), 200, "one account per phone");
    let mut phones: Vec<&str> = all.iter().map(|a| a["phone"].as_str().unwrap()).collect();
    phones.sort();
    phones.dedup();
    assert_eq!(phones.len(), 200);
    assert!(all.iter().all(|a| a["state"] == "active"));

    // A third run has nothing to do.
    let status = onboard("third").status().unwrap();
    assert!(status.success());
    let out = std::fs::read_to_string(dir.path().join("third.out")).unwrap();
    assert!(out.contains("already active  200"), "{out}");

    // Rows that cannot work: a bad phone, a 2FA phone without its password. Exit code 1.
    std::fs::write(
        dir.path().join("bad.csv"),
        "+15550409999\nnot-a-phone\n+15550400001\n",
    )
    .unwrap();
    let status = tgfleet(
        dir.path(),
        &[
            "accounts",
            "onboard",
            "bad.csv",
            "--sandbox-codes",
            "--url",
            &api,
            "--token",
            &token,
        ],
        "bad",
    )
    .status()
    .unwrap();
    let out = std::fs::read_to_string(dir.path().join("bad.out")).unwrap();
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("not-a-phone"), "{out}");
    assert!(out.contains("2FA"), "{out}");
    assert!(out.contains("logged in now   1"), "{out}");
}
