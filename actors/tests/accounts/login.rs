//! Every login flow, and the old bug fixed by design: a pending login survives a dropped
//! connection, an actor crash + restart in place, and a whole new process over the same database.

use std::sync::Arc;
use std::time::Duration;

use tgfleet_actors::session::{PendingLogin, StoreSession};
use tgfleet_actors::{
    AccountEnv, AccountError, AccountLimits, BotSignIn, CheckPassword, CodeSent, LogOut, LoginStep,
    Qr, QrLogin, SendCode, SendMessage, Sent, SignIn,
};
use tgfleet_persistence::{AccountId, AccountKind, AccountState};
use tgfleet_testdc::{TestDcConfig, UserSpec};

use crate::harness::{logs, qr_token, spawn, Harness, Running};

#[derive(Debug, Clone, Copy)]
enum Interruption {
    /// testdc closes every connection.
    DroppedConnection,
    /// The actor panics and is started again in place (what the supervisor does).
    ActorPanic,
    /// The fleet stops; a new "process" (new store connection, cipher, metrics) starts.
    NewProcess,
}

/// Interrupts the pending login; returns the actor to continue with and the env it runs in.
async fn interrupt(
    h: &Harness,
    running: Running,
    account_id: AccountId,
    how: Interruption,
) -> (Running, Arc<AccountEnv>) {
    match how {
        Interruption::DroppedConnection => {
            let dropped = h.dc.faults().drop_connections(None);
            assert!(dropped > 0, "the account had a live connection to drop");
            (running, Arc::clone(&h.env))
        }
        Interruption::ActorPanic => {
            running.crash().await;
            (spawn(&h.env, account_id).await, Arc::clone(&h.env))
        }
        Interruption::NewProcess => {
            running.stop().await;
            let (env, _registry) = h.new_process().await;
            (spawn(&env, account_id).await, env)
        }
    }
}

async fn assert_logged_in(env: &AccountEnv, running: &Running, account_id: AccountId) {
    let status = running.status().await;
    assert_eq!(status.state, AccountState::Active);
    assert!(status.tg_user_id.is_some(), "the Telegram user id is known");
    let row = env.store.account(account_id).await.expect("account row");
    assert_eq!(row.state, AccountState::Active);
    assert_eq!(row.tg_user_id, status.tg_user_id);
    assert!(row.dc_id.is_some());
    // The session really is authorized: Telegram accepts a message to Saved Messages.
    let sent = running
        .call(SendMessage {
            media: Vec::new(),
            random_id: None,
            peer: tgfleet_actors::Peer::Me,
            text: "logged in".into(),
            dedupe_key: None,
            options: Default::default(),
        })
        .await;
    assert!(matches!(sent, Ok(Sent { .. })), "{sent:?}");
}

async fn code_login_survives(how: Interruption) {
    let h = Harness::start().await;
    let phone = "+15550100";
    h.dc.add_user(UserSpec::new(phone, "Alice").username("alice"));
    let id = h.account(AccountKind::User, Some(phone)).await;
    let running = spawn(&h.env, id).await;

    let sent = running
        .call(SendCode {
            phone: phone.parse().expect("a phone"),
        })
        .await;
    assert!(matches!(sent, Ok(CodeSent { .. })), "{sent:?}");
    assert_eq!(running.status().await.state, AccountState::AwaitingCode);

    let (running, env) = interrupt(&h, running, id, how).await;
    assert_eq!(running.status().await.state, AccountState::AwaitingCode);

    let code = h.dc.last_code(phone).expect("testdc sent a code");
    let signed_in = running.call(SignIn { code }).await;
    assert!(
        matches!(
            signed_in,
            Ok(LoginStep {
                state: AccountState::Active,
                ..
            })
        ),
        "{signed_in:?}"
    );
    assert_logged_in(&env, &running, id).await;
    let status = running.status().await;
    assert_eq!(status.username.as_deref(), Some("alice"));
}

async fn password_step_survives(how: Interruption) {
    let h = Harness::start().await;
    let phone = "+15550109";
    h.dc.add_user(UserSpec::new(phone, "Bob").password("correct horse"));
    let id = h.account(AccountKind::User, Some(phone)).await;
    let running = spawn(&h.env, id).await;

    let code = h.code_for(&running, phone).await;
    let step = running.call(SignIn { code }).await;
    assert!(
        matches!(
            step,
            Ok(LoginStep {
                state: AccountState::AwaitingPassword,
                ..
            })
        ),
        "{step:?}"
    );

    let (running, env) = interrupt(&h, running, id, how).await;
    assert_eq!(running.status().await.state, AccountState::AwaitingPassword);

    let wrong = running
        .call(CheckPassword {
            password: "wrong".into(),
        })
        .await;
    assert!(
        matches!(wrong, Err(AccountError::PasswordInvalid)),
        "{wrong:?}"
    );
    assert_eq!(running.status().await.state, AccountState::AwaitingPassword);

    let right = running
        .call(CheckPassword {
            password: "correct horse".into(),
        })
        .await;
    assert!(
        matches!(
            right,
            Ok(LoginStep {
                state: AccountState::Active,
                ..
            })
        ),
        "{right:?}"
    );
    assert_logged_in(&env, &running, id).await;
}

async fn qr_login_survives(how: Interruption) {
    let h = Harness::start().await;
    let phone = "+15550200";
    h.dc.add_user(UserSpec::new(phone, "Carol"));
    let id = h.account(AccountKind::User, None).await;
    let running = spawn(&h.env, id).await;

    let url = match running.call(QrLogin).await {
        Ok(Qr { url, expires_at }) => {
            assert!(expires_at > chrono::Utc::now());
            url
        }
        other => panic!("QR login answered {other:?}"),
    };
    assert!(url.starts_with("tg://login?token="));
    assert_eq!(running.status().await.state, AccountState::AwaitingQr);

    let (running, env) = interrupt(&h, running, id, how).await;
    assert_eq!(running.status().await.state, AccountState::AwaitingQr);

    // The user scans the QR code shown before the interruption.
    h.dc.scan_qr(&qr_token(&url), phone).expect("scan");
    running.wait_for(AccountState::Active).await;
    assert_logged_in(&env, &running, id).await;
}

#[tokio::test]
async fn code_login_survives_dropped_connection() {
    code_login_survives(Interruption::DroppedConnection).await;
}

#[tokio::test]
async fn code_login_survives_actor_panic() {
    code_login_survives(Interruption::ActorPanic).await;
}

#[tokio::test]
async fn code_login_survives_new_process() {
    code_login_survives(Interruption::NewProcess).await;
}

#[tokio::test]
async fn password_step_survives_dropped_connection() {
    password_step_survives(Interruption::DroppedConnection).await;
}

#[tokio::test]
async fn password_step_survives_actor_panic() {
    password_step_survives(Interruption::ActorPanic).await;
}

#[tokio::test]
async fn password_step_survives_new_process() {
    password_step_survives(Interruption::NewProcess).await;
}

#[tokio::test]
async fn qr_login_survives_dropped_connection() {
    qr_login_survives(Interruption::DroppedConnection).await;
}

#[tokio::test]
async fn qr_login_survives_actor_panic() {
    qr_login_survives(Interruption::ActorPanic).await;
}

#[tokio::test]
async fn qr_login_survives_new_process() {
    qr_login_survives(Interruption::NewProcess).await;
}

#[tokio::test]
async fn qr_login_of_a_2fa_account_asks_for_the_password() {
    let h = Harness::start().await;
    let phone = "+15550209";
    h.dc.add_user(UserSpec::new(phone, "Dave").password("pw"));
    let id = h.account(AccountKind::User, None).await;
    let running = spawn(&h.env, id).await;
    let Ok(Qr { url, .. }) = running.call(QrLogin).await else {
        panic!("no QR");
    };
    h.dc.scan_qr(&qr_token(&url), phone).expect("scan");
    running.wait_for(AccountState::AwaitingPassword).await;
    let done = running
        .call(CheckPassword {
            password: "pw".into(),
        })
        .await;
    assert!(
        matches!(
            done,
            Ok(LoginStep {
                state: AccountState::Active,
                ..
            })
        ),
        "{done:?}"
    );
}

#[tokio::test]
async fn a_wrong_code_can_be_retried_an_expired_one_needs_a_new_code() {
    let cfg = TestDcConfig {
        code_lifetime: Duration::from_secs(3600),
        ..Default::default()
    };
    let h = Harness::with_config(cfg, AccountLimits::default()).await;
    let phone = "+15550300";
    h.dc.add_user(UserSpec::new(phone, "Erin"));
    let id = h.account(AccountKind::User, Some(phone)).await;
    let running = spawn(&h.env, id).await;
    running
        .call(SendCode {
            phone: phone.parse().expect("a phone"),
        })
        .await
        .expect("code sent");
    let wrong = running
        .call(SignIn {
            code: "00000".into(),
        })
        .await;
    assert!(matches!(wrong, Err(AccountError::CodeInvalid)), "{wrong:?}");
    assert_eq!(running.status().await.state, AccountState::AwaitingCode);
    let code = h.dc.last_code(phone).expect("code");
    let ok = running.call(SignIn { code }).await;
    assert!(ok.is_ok(), "{ok:?}");

    // Nobody's code is logged anywhere.
    let code = h.dc.last_code(phone).expect("code");
    for entry in logs(&h.env, id).await {
        assert!(!entry.message.contains(&code), "code leaked into {entry:?}");
        assert!(!entry.details.to_string().contains(&code));
    }
}

#[tokio::test]
async fn an_expired_code_is_reported_as_expired() {
    let cfg = TestDcConfig {
        code_lifetime: Duration::ZERO,
        ..Default::default()
    };
    let h = Harness::with_config(cfg, AccountLimits::default()).await;
    let phone = "+15550301";
    h.dc.add_user(UserSpec::new(phone, "Frank"));
    let id = h.account(AccountKind::User, Some(phone)).await;
    let running = spawn(&h.env, id).await;
    running
        .call(SendCode {
            phone: phone.parse().expect("a phone"),
        })
        .await
        .expect("code sent");
    // A code lifetime of zero: testdc counts the code expired as soon as it was sent.
    let code = h.dc.last_code(phone).expect("code");
    let expired = running.call(SignIn { code }).await;
    assert!(
        matches!(expired, Err(AccountError::CodeExpired)),
        "{expired:?}"
    );
    // A new code is needed: the pending login is gone.
    assert_eq!(running.status().await.state, AccountState::New);
}

#[tokio::test]
async fn a_bot_logs_in_with_its_token() {
    let h = Harness::start().await;
    h.dc.add_bot("123:abc", "fleet_bot");
    let id = h.account(AccountKind::Bot, None).await;
    let running = spawn(&h.env, id).await;
    let bad = running
        .call(BotSignIn {
            token: "999:nope".into(),
        })
        .await;
    assert!(matches!(bad, Err(AccountError::BotTokenInvalid)), "{bad:?}");
    let ok = running
        .call(BotSignIn {
            token: "123:abc".into(),
        })
        .await;
    assert!(
        matches!(
            ok,
            Ok(LoginStep {
                state: AccountState::Active,
                ..
            })
        ),
        "{ok:?}"
    );
    let status = running.status().await;
    assert_eq!(status.username.as_deref(), Some("fleet_bot"));
}

#[tokio::test]
async fn log_out_ends_the_authorization_and_wipes_the_session() {
    let h = Harness::start().await;
    let phone = "+15550400";
    h.dc.add_user(UserSpec::new(phone, "Gina"));
    let id = h.account(AccountKind::User, Some(phone)).await;
    let running = spawn(&h.env, id).await;
    let code = h.code_for(&running, phone).await;
    running.call(SignIn { code }).await.expect("signed in");

    let out = running.call(LogOut).await;
    assert!(matches!(out, Ok(())), "{out:?}");
    // The actor stops on its own (normal stop: the supervisor does not restart it).
    tokio::time::timeout(crate::harness::BOUND, running.handle)
        .await
        .expect("actor stops")
        .expect("joins");
    let row = h.env.store.account(id).await.expect("row");
    assert_eq!(row.state, AccountState::LoggedOut);
    assert_eq!(row.tg_user_id, None);
    assert_eq!(h.env.store.session(id).await.expect("store"), None);
}

/// Issue 11, item 6: finishing a login is one session write. Here the database refuses every
/// session write after the first one of the sign-in (a trigger in the real SQLite file). Whatever
/// the sign-in answered, the account started again must be logged in — not a session that holds
/// a user and a stale pending login at once, which refuses every login step and every send.
#[tokio::test]
async fn a_sign_in_whose_later_session_writes_fail_leaves_no_half_finished_login() {
    let h = Harness::start().await;
    let phone = "+15551600";
    h.dc.add_user(UserSpec::new(phone, "Atomic"));
    let id = h.account(AccountKind::User, Some(phone)).await;
    let running = spawn(&h.env, id).await;
    let code = h.code_for(&running, phone).await;

    let raw = tgfleet_persistence::SqliteStore::connect(&format!(
        "sqlite://{}/tgfleet.db",
        h.dir.path().display()
    ))
    .await
    .expect("raw connection");
    // A RAISE rolls the counter back with the write, so once it reached 1 every later write fails.
    sqlx::raw_sql(
        "CREATE TABLE session_writes (n INTEGER NOT NULL); \
         INSERT INTO session_writes VALUES (0); \
         CREATE TRIGGER only_one_session_write BEFORE UPDATE ON account_sessions BEGIN \
           UPDATE session_writes SET n = n + 1; \
           SELECT RAISE(ABORT, 'injected: session write refused') \
             WHERE (SELECT n FROM session_writes) > 1; \
         END;",
    )
    .execute(raw.pool())
    .await
    .expect("arm the trigger");
    let _ = running.call(SignIn { code }).await;
    sqlx::raw_sql("DROP TRIGGER only_one_session_write;")
        .execute(raw.pool())
        .await
        .expect("disarm");
    running.stop().await;

    let (env, _registry) = h.new_process().await;
    let again = spawn(&env, id).await;
    assert_logged_in(&env, &again, id).await;
    again.stop().await;
}

/// Issue 11, item 10: a login that waited for its code longer than `pending_login_ttl` is over.
/// The next start (a fleet boot) does not bring it back: the account is `new` again and says
/// why, and the call that started the actor (a request for a new code) is served.
#[tokio::test]
async fn a_login_older_than_its_codes_validity_is_expired_at_the_next_start() {
    let h = Harness::start().await;
    let phone = "+15551610";
    h.dc.add_user(UserSpec::new(phone, "Late"));
    let id = h.account(AccountKind::User, Some(phone)).await;
    let running = spawn(&h.env, id).await;
    running
        .call(SendCode {
            phone: phone.parse().expect("a phone"),
        })
        .await
        .expect("code sent");
    running.stop().await;
    assert_eq!(
        h.env.store.account(id).await.expect("row").state,
        AccountState::AwaitingCode
    );
    // The code was sent two hours ago, as far as the stored session says.
    let session = StoreSession::load_or_create(id, h.env.clone())
        .await
        .expect("the stored session");
    let Some(PendingLogin::Code {
        phone: code_phone,
        phone_code_hash,
        code_type,
        timeout_s,
        ..
    }) = session.pending_login()
    else {
        panic!("a code login is pending");
    };
    session
        .set_pending_login(Some(PendingLogin::Code {
            phone: code_phone,
            phone_code_hash,
            code_type,
            timeout_s,
            sent_at: chrono::Utc::now() - chrono::Duration::hours(2),
        }))
        .await
        .expect("backdated");
    drop(session);

    let again = spawn(&h.env, id).await;
    assert_eq!(again.status().await.state, AccountState::New);
    let row = h.env.store.account(id).await.expect("row");
    assert_eq!(row.state, AccountState::New);
    assert!(
        row.last_error
            .as_deref()
            .is_some_and(|e| e.contains("no longer valid")),
        "{row:?}"
    );
    // A new login starts from scratch on the same actor and completes.
    h.sign_in_by_code(&again, phone).await;
    again.stop().await;
}

/// Issue 11, item 11: a phone as people write it reaches Telegram as `+` and digits, whoever
/// sent the request (the REST API normalises too, but the actor is the last step before Telegram).
#[tokio::test]
async fn a_phone_written_with_spaces_and_brackets_reaches_telegram_normalised() {
    let h = Harness::start().await;
    h.dc.add_user(UserSpec::new("+15551620000", "Formatted"));
    let id = h.account(AccountKind::User, None).await;
    let running = spawn(&h.env, id).await;
    let sent = running
        .call(SendCode {
            // Parsed where it enters, as the REST API and the CLI do.
            phone: " +1 (555) 162-0000 "
                .parse()
                .expect("a phone as people write it"),
        })
        .await;
    assert!(matches!(sent, Ok(CodeSent { .. })), "{sent:?}");
    let code =
        h.dc.last_code("+15551620000")
            .expect("testdc sent the code");
    let step = running.call(SignIn { code }).await;
    assert!(
        matches!(
            step,
            Ok(LoginStep {
                state: AccountState::Active,
                ..
            })
        ),
        "{step:?}"
    );
    let row = h.env.store.account(id).await.expect("row");
    assert_eq!(row.phone.as_deref(), Some("+15551620000"));
    // Nothing that is not a phone can be asked for: it does not parse.
    let refused = "555 not a phone".parse::<tgfleet_actors::Phone>();
    assert!(refused.is_err(), "{refused:?}");
    running.stop().await;
}

/// Issue 11, item 5: 2FA checks (PBKDF2, 100k rounds each) are bounded like argon2: however
/// many accounts check a password at once, no more hashes run than the process has cores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_2fa_checks_run_no_more_hashes_than_cores() {
    let h = Harness::start().await;
    let n = 4 * tgfleet_actors::srp_slot_count() + 2;
    let mut waiting = Vec::new();
    for i in 0..n {
        let phone = format!("+1555163{i:04}");
        h.dc.add_user(UserSpec::new(&phone, "Locked").password("correct horse"));
        let id = h.account(AccountKind::User, Some(&phone)).await;
        let running = spawn(&h.env, id).await;
        let code = h.code_for(&running, &phone).await;
        let step = running.call(SignIn { code }).await;
        assert!(
            matches!(
                step,
                Ok(LoginStep {
                    state: AccountState::AwaitingPassword,
                    ..
                })
            ),
            "{step:?}"
        );
        waiting.push(running);
    }
    let checks = waiting.iter().map(|running| {
        running.call(CheckPassword {
            password: "correct horse".into(),
        })
    });
    for answer in futures::future::join_all(checks).await {
        assert!(
            matches!(
                answer,
                Ok(LoginStep {
                    state: AccountState::Active,
                    ..
                })
            ),
            "{answer:?}"
        );
    }
    assert!(
        tgfleet_actors::srp_peak_in_flight() <= tgfleet_actors::srp_slot_count(),
        "{} 2FA hashes ran at once; the bound is {}",
        tgfleet_actors::srp_peak_in_flight(),
        tgfleet_actors::srp_slot_count()
    );
    for running in waiting {
        running.stop().await;
    }
}
