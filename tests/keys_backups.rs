//! Issue 16, item 5: `tgfleet backup` / `restore` on a SQLite install, `tgfleet keys rotate` for
//! the local key (resumable), `tgfleet keys rewrap` for Vault envelopes. The real binary over a
//! real data directory, with a standalone testdc as Telegram and a real OpenBao for Vault.

mod support;

use sqlx::ConnectOptions as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::{call, log_of, logged_in_account, send, serve, testdc, user_token, Guard};
use tgfleet_persistence::{SessionCipher, SqliteStore, Store as _};

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Runs `tgfleet ARGS` to its end: exit code and the `error:` lines of its stderr.
fn run(dir: &Path, args: &[&str], log: &str, env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = support::tgfleet(dir, args, log);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let status = cmd.status().expect("running tgfleet");
    (status.code().unwrap_or(-1), log_of(dir, log))
}

fn error_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.starts_with("error:")).collect()
}

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn data(dir: &Path) -> PathBuf {
    dir.join("data")
}

/// The ids of the caller's accounts, as the API lists them.
async fn account_ids(http: &reqwest::Client, api: &str, token: &str) -> Vec<i64> {
    let v = call(
        http.get(format!("{api}/api/v1/telegram/accounts"))
            .bearer_auth(token),
        200,
        "list accounts",
    )
    .await;
    let mut ids: Vec<i64> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

/// Waits until account `id` sends from the server at `api` (it reconnects after a start).
async fn sends(http: &reqwest::Client, api: &str, token: &str, id: i64, dir: &Path, log: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while send(http, api, token, id, "still here").await != 201 {
        assert!(
            Instant::now() < deadline,
            "account {id} never sent: {}",
            log_of(dir, log)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn start(dir: &Path, control: &str, log: &str, http: &reqwest::Client) -> (Guard, String) {
    let env = [("TGFLEET__WEBHOOKS__ALLOW_PRIVATE_TARGETS", "true")];
    let (guard, api) = serve(dir, control, log, &env);
    support::wait_until_up(http, &format!("{api}/api/v1/health"), log).await;
    (guard, api)
}

fn stop(mut guard: Guard) {
    guard.0.kill().unwrap();
    guard.0.wait().unwrap();
}

/// The sealed sessions in a database file, read as SQLite rows.
async fn sealed_sessions(db: &Path) -> Vec<(i64, Vec<u8>)> {
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .read_only(true)
        .connect()
        .await
        .unwrap();
    sqlx::query_as("SELECT account_id, sealed FROM account_sessions ORDER BY account_id")
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_serving_restores_the_accounts_it_had() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let http = http();
    let (_testdc, control) = testdc(dir, &[], &http).await;
    let (server, api) = start(dir, &control, "first", &http).await;
    let token = user_token(&http, &api).await;
    let a = logged_in_account(&http, &api, &token, &control, "+15553200001").await;
    let b = logged_in_account(&http, &api, &token, &control, "+15553200002").await;

    std::fs::create_dir(dir.join("backups")).unwrap();
    let file = dir.join("backups/tgfleet.db");
    let (code, stderr) = run(dir, &["backup", "backups/tgfleet.db"], "backup", &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("2 accounts, 2 sessions (still sealed)"),
        "{stderr}"
    );
    assert!(stderr.contains("keep a copy of"), "{stderr}");
    assert_eq!(mode_of(&file), 0o600, "the backup holds password hashes");
    // Sealed inside the backup: the blob format's header, never a bare session.
    let sessions = sealed_sessions(&file).await;
    assert_eq!(sessions.iter().map(|s| s.0).collect::<Vec<_>>(), vec![a, b]);
    for (_, blob) in &sessions {
        assert_eq!(&blob[..5], b"TGS\x01\x01");
    }
    // A second backup to the same name is refused, the first untouched.
    let before = std::fs::read(&file).unwrap();
    let (code, stderr) = run(dir, &["backup", "backups/tgfleet.db"], "backup-again", &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("exists already"), "{stderr}");
    assert_eq!(std::fs::read(&file).unwrap(), before);

    // Under a running server a restore is refused with its own exit code.
    let (code, stderr) = run(dir, &["restore", "backups/tgfleet.db"], "restore-live", &[]);
    assert_eq!(code, 4, "{stderr}");
    let errors = error_lines(&stderr);
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("a tgfleet server is running on this database"),
        "{stderr}"
    );

    // Made after the backup, so the restore takes it away.
    let c = logged_in_account(&http, &api, &token, &control, "+15553200003").await;
    assert_eq!(account_ids(&http, &api, &token).await, vec![a, b, c]);
    stop(server);

    let (code, stderr) = run(dir, &["restore", "backups/tgfleet.db"], "restore", &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("2 accounts, 2 sessions"), "{stderr}");
    let names = files_in(&data(dir));
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("tgfleet.db.pre-restore-")),
        "the replaced database is kept: {names:?}"
    );
    assert!(
        !names.iter().any(|n| n.contains(".restore-")),
        "nothing staged is left behind: {names:?}"
    );
    assert_eq!(mode_of(&data(dir).join("tgfleet.db")), 0o600);

    let (_server, api) = start(dir, &control, "second", &http).await;
    assert_eq!(account_ids(&http, &api, &token).await, vec![a, b]);
    for id in [a, b] {
        sends(&http, &api, &token, id, dir, "second").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_without_the_key_that_sealed_the_backup_fails_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let http = http();
    let (_testdc, control) = testdc(dir, &[], &http).await;
    let (server, api) = start(dir, &control, "first", &http).await;
    let token = user_token(&http, &api).await;
    let a = logged_in_account(&http, &api, &token, &control, "+15553200011").await;
    let (code, stderr) = run(dir, &["backup", "snapshot.db"], "backup", &[]);
    assert_eq!(code, 0, "{stderr}");
    stop(server);

    let key = data(dir).join("session.key");
    let kept = dir.join("the-right.key");
    std::fs::rename(&key, &kept).unwrap();
    let db = data(dir).join("tgfleet.db");
    let db_before = std::fs::read(&db).unwrap();
    let names_before = files_in(&data(dir));

    // No key at all: refused, and no key is made up.
    let (code, stderr) = run(dir, &["restore", "snapshot.db"], "restore-no-key", &[]);
    assert_eq!(code, 3, "{stderr}");
    let errors = error_lines(&stderr);
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("there is no session key at"), "{stderr}");
    assert!(!key.exists(), "a restore never generates a key");

    // Another key: refused, naming what did not open.
    SessionCipher::local(&key).unwrap();
    let (code, stderr) = run(dir, &["restore", "snapshot.db"], "restore-other-key", &[]);
    assert_eq!(code, 3, "{stderr}");
    let errors = error_lines(&stderr);
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains(
            "restore refused: the backup's sealed data does not open with the current session key"
        ),
        "{stderr}"
    );
    assert!(
        errors[0].contains(&format!("account_sessions.sealed row {a}")),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(&db).unwrap(),
        db_before,
        "the database is untouched"
    );
    let mut names_after = files_in(&data(dir));
    names_after.retain(|n| n != "session.key");
    assert_eq!(names_after, names_before, "nothing is left behind");

    // Not a backup at all.
    std::fs::write(dir.join("notes.txt"), "not a database").unwrap();
    std::fs::copy(&kept, &key).unwrap();
    let (code, stderr) = run(dir, &["restore", "notes.txt"], "restore-junk", &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("is not a tgfleet backup"), "{stderr}");
    assert_eq!(std::fs::read(&db).unwrap(), db_before);

    // The right key: restored.
    let (code, stderr) = run(dir, &["restore", "snapshot.db"], "restore", &[]);
    assert_eq!(code, 0, "{stderr}");
    let (_server, api) = start(dir, &control, "second", &http).await;
    sends(&http, &api, &token, a, dir, "second").await;
}

/// A webhook (its secret is sealed too); returns its id.
async fn webhook(http: &reqwest::Client, api: &str, token: &str) -> String {
    let v = call(
        http.post(format!("{api}/api/v1/webhooks"))
            .bearer_auth(token)
            .json(&serde_json::json!({"url": "http://127.0.0.1:9/hook", "events": ["*"]})),
        201,
        "create webhook",
    )
    .await;
    v["id"].as_str().unwrap().to_owned()
}

/// A cipher over a copy of the key file at `key` (the original may be replaced meanwhile).
fn cipher_of(key: &Path, copy: &Path) -> SessionCipher {
    std::fs::copy(key, copy).unwrap();
    SessionCipher::local(copy).unwrap()
}

/// `keys rotate` over the database `url` (SQLite in `dir/data` when `None`).
async fn rotation_seals_everything_with_a_new_key(dir: &Path, url: Option<&str>) {
    let http = http();
    let (_testdc, control) = testdc(dir, &[], &http).await;
    let db_env: Vec<(&str, &str)> = url
        .map(|u| vec![("TGFLEET__DATABASE__URL", u)])
        .unwrap_or_default();
    let mut env = vec![("TGFLEET__WEBHOOKS__ALLOW_PRIVATE_TARGETS", "true")];
    env.extend(db_env.iter().copied());
    let (server, api) = serve(dir, &control, "first", &env);
    support::wait_until_up(&http, &format!("{api}/api/v1/health"), "first").await;
    let token = user_token(&http, &api).await;
    let a = logged_in_account(&http, &api, &token, &control, "+15553200021").await;
    let b = logged_in_account(&http, &api, &token, &control, "+15553200022").await;
    let hook = webhook(&http, &api, &token).await;

    let (code, stderr) = run(dir, &["keys", "rotate"], "rotate-live", &db_env);
    assert_eq!(code, 4, "{stderr}");
    assert!(
        stderr.contains("stop it before rotating the session key"),
        "{stderr}"
    );
    stop(server);

    let key = data(dir).join("session.key");
    let old_text = std::fs::read_to_string(&key).unwrap();
    let old = cipher_of(&key, &dir.join("old.key"));
    let (code, stderr) = run(dir, &["keys", "rotate"], "rotate", &db_env);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("all 3 sealed values open with the new key"),
        "{stderr}"
    );
    let new_text = std::fs::read_to_string(&key).unwrap();
    assert_ne!(new_text, old_text);
    assert_eq!(mode_of(&key), 0o600);
    assert!(!data(dir).join("session.key.next").exists());
    assert!(!data(dir).join("session.key.rotation-old").exists());

    let new = cipher_of(&key, &dir.join("new.key"));
    let default_url = format!("sqlite://{}", data(dir).join("tgfleet.db").display());
    let store = tgfleet_persistence::connect(url.unwrap_or(&default_url))
        .await
        .unwrap();
    for id in [a, b] {
        let blob = store.session(id).await.unwrap().unwrap();
        assert!(new.open(id, &blob).await.is_ok(), "account {id}");
        assert!(old.open(id, &blob).await.is_err(), "account {id}");
    }
    let aad = tgfleet_persistence::sealed::webhook_secret_aad(&hook);
    let secret = store.webhook(&hook).await.unwrap().secret;
    assert!(new.open(aad, &secret).await.is_ok());
    assert!(old.open(aad, &secret).await.is_err());
    drop(store);

    let (_server, api) = serve(dir, &control, "second", &env);
    support::wait_until_up(&http, &format!("{api}/api/v1/health"), "second").await;
    for id in [a, b] {
        sends(&http, &api, &token, id, dir, "second").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_seals_everything_with_a_new_key_and_the_accounts_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    rotation_seals_everything_with_a_new_key(dir.path(), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_works_on_postgres_too() {
    let Some(db) = tgfleet_persistence::testing::TestDb::postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    rotation_seals_everything_with_a_new_key(dir.path(), Some(&db.url)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_rotation_blocks_serve_and_finishes_on_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let http = http();
    let (_testdc, control) = testdc(dir, &[], &http).await;
    let (server, api) = start(dir, &control, "first", &http).await;
    let token = user_token(&http, &api).await;
    let a = logged_in_account(&http, &api, &token, &control, "+15553200031").await;
    let b = logged_in_account(&http, &api, &token, &control, "+15553200032").await;
    stop(server);

    let key = data(dir).join("session.key");
    let next = data(dir).join("session.key.next");
    let db = data(dir).join("tgfleet.db");
    let store = SqliteStore::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();

    // Cut short after the new key was written and one of two sessions sealed with it.
    let old = SessionCipher::local(&key).unwrap();
    let new = SessionCipher::local(&next).unwrap();
    let sealed = store.session(a).await.unwrap().unwrap();
    let plain = old.open(a, &sealed).await.unwrap();
    store
        .put_session(a, &new.seal(a, &plain).await.unwrap())
        .await
        .unwrap();
    store.pool().close().await;
    let new_text = std::fs::read_to_string(&next).unwrap();

    let (mut refused, _) = serve(dir, &control, "refused", &[]);
    let status = support::exit_within(&mut refused.0, Duration::from_secs(60));
    let stderr = log_of(dir, "refused");
    assert!(status.is_some_and(|s| !s.success()), "{stderr}");
    let errors = error_lines(&stderr);
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("a key rotation is unfinished"),
        "{stderr}"
    );
    assert!(errors[0].contains("tgfleet keys rotate"), "{stderr}");

    let (code, stderr) = run(dir, &["keys", "rotate"], "rotate", &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("finishing an interrupted key rotation"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&key).unwrap(),
        new_text,
        "the key some sessions already used is the one put in force"
    );
    assert!(!next.exists());
    assert!(!data(dir).join("session.key.rotation-old").exists());

    // Cut short later: every blob sealed with a newer key, the old one linked aside, the new
    // one not yet in force.
    let current = cipher_of(&key, &dir.join("current.key"));
    let newer = SessionCipher::local(&next).unwrap();
    let store = SqliteStore::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    for id in [a, b] {
        let sealed = store.session(id).await.unwrap().unwrap();
        let plain = current.open(id, &sealed).await.unwrap();
        store
            .put_session(id, &newer.seal(id, &plain).await.unwrap())
            .await
            .unwrap();
    }
    store.pool().close().await;
    std::fs::hard_link(&key, data(dir).join("session.key.rotation-old")).unwrap();
    let newer_text = std::fs::read_to_string(&next).unwrap();
    let (code, stderr) = run(dir, &["keys", "rotate"], "rotate-again", &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(std::fs::read_to_string(&key).unwrap(), newer_text);
    assert!(!next.exists());
    assert!(!data(dir).join("session.key.rotation-old").exists());

    // Cut short after the new key was put in force, and a power cut took one re-sealed row
    // back to the old key: the server refuses, and the next run seals that row again.
    let rotation_old = data(dir).join("session.key.rotation-old");
    std::fs::rename(&key, &rotation_old).unwrap();
    let previous = SessionCipher::local(&rotation_old).unwrap();
    let in_force = SessionCipher::local(&key).unwrap(); // creates the new key
    let store = SqliteStore::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let sealed = store.session(a).await.unwrap().unwrap();
    let plain = previous.open(a, &sealed).await.unwrap();
    store
        .put_session(a, &in_force.seal(a, &plain).await.unwrap())
        .await
        .unwrap();
    store.pool().close().await;
    let (mut refused, _) = serve(dir, &control, "refused-again", &[]);
    let status = support::exit_within(&mut refused.0, Duration::from_secs(60));
    let stderr = log_of(dir, "refused-again");
    assert!(status.is_some_and(|s| !s.success()), "{stderr}");
    assert!(stderr.contains("a key rotation is unfinished"), "{stderr}");
    let (code, stderr) = run(dir, &["keys", "rotate"], "rotate-converge", &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!rotation_old.exists());
    let store = SqliteStore::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    for id in [a, b] {
        let sealed = store.session(id).await.unwrap().unwrap();
        assert!(in_force.open(id, &sealed).await.is_ok(), "account {id}");
    }
    store.pool().close().await;

    let (_server, api) = start(dir, &control, "second", &http).await;
    for id in [a, b] {
        sends(&http, &api, &token, id, dir, "second").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rewrap_moves_every_vault_envelope_to_the_newest_transit_key_version() {
    let Some(bao) = tgfleet_persistence::testing::BaoServer::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let transit_key = "tgfleet-sessions";
    let params = bao.transit_params(transit_key).await.unwrap();
    let cipher = SessionCipher::vault(params.clone()).await.unwrap();

    let db = data(dir).join("tgfleet.db");
    let store = SqliteStore::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let owner = store
        .create_user(tgfleet_persistence::NewUser {
            email: "ops@example.org".into(),
            username: None,
            password_hash: "x".into(),
            role: tgfleet_persistence::Role::Admin,
        })
        .await
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let account = store
            .create_account(tgfleet_persistence::NewAccount {
                owner_id: owner.id,
                label: None,
                kind: tgfleet_persistence::AccountKind::User,
                phone: None,
            })
            .await
            .unwrap();
        let sealed = cipher
            .seal(account.id, format!("session {}", account.id).as_bytes())
            .await
            .unwrap();
        store.put_session(account.id, &sealed).await.unwrap();
        ids.push(account.id);
    }
    store.pool().close().await;

    bao.rotate(transit_key).await.unwrap();
    let env = [
        ("TGFLEET__SECRETS__BACKEND", "vault"),
        ("TGFLEET__VAULT__ADDR", bao.addr.as_str()),
        ("TGFLEET__VAULT__TOKEN", bao.root_token.as_str()),
        ("TGFLEET__VAULT__TRANSIT_KEY", transit_key),
    ];
    let (code, stderr) = run(dir, &["keys", "rewrap"], "rewrap", &env);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(
            "re-wrapped 3 sealed values to transit key transit/tgfleet-sessions version 2"
        ),
        "{stderr}"
    );

    // Version 1 retired: only envelopes of version 2 still open, and every one does.
    let mut retire = vaultrs::api::transit::requests::UpdateKeyConfigurationRequest::builder();
    retire.min_decryption_version(2u64);
    vaultrs::transit::key::update(bao.client(), "transit", transit_key, Some(&mut retire))
        .await
        .unwrap();
    let fresh = SessionCipher::vault(params).await.unwrap();
    for (id, blob) in sealed_sessions(&db).await {
        let plain = fresh.open(id, &blob).await.unwrap();
        assert_eq!(&plain[..], format!("session {id}").as_bytes());
        assert!(!fresh.needs_rewrap(&blob));
    }

    // Again, logged in with AppRole instead of a token, the SecretID in a file: nothing is
    // left to re-wrap.
    let (role_id, secret_id) = bao.approle("tgfleet", "1h", "2h").await.unwrap();
    let secret_id_file = dir.join("secret-id");
    std::fs::write(&secret_id_file, format!("{secret_id}\n")).unwrap();
    let approle = [
        ("TGFLEET__SECRETS__BACKEND", "vault"),
        ("TGFLEET__VAULT__ADDR", bao.addr.as_str()),
        ("TGFLEET__VAULT__ROLE_ID", role_id.as_str()),
        (
            "TGFLEET__VAULT__SECRET_ID_FILE",
            secret_id_file.to_str().unwrap(),
        ),
        ("TGFLEET__VAULT__TRANSIT_KEY", transit_key),
    ];
    let (code, stderr) = run(dir, &["keys", "rewrap"], "rewrap-approle", &approle);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("re-wrapped 0 sealed values"), "{stderr}");
}
