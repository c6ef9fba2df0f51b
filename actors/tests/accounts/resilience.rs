//! Telegram errors become states; transient trouble is survived; metrics and logs follow.

use std::time::Duration;

use tgfleet_actors::{AccountError, AccountLimits, SendMessage, Sent};
use tgfleet_persistence::AccountState;
use tgfleet_testdc::{RevokeKind, TestDcConfig, UserSpec};

use crate::harness::{logs, Ending, Harness, BOUND};

async fn send_me(running: &crate::harness::Running) -> Result<Sent, AccountError> {
    running
        .call(SendMessage {
            media: Vec::new(),
            random_id: None,
            peer: tgfleet_actors::Peer::Me,
            text: "ping".into(),
            dedupe_key: None,
            options: Default::default(),
        })
        .await
}

#[tokio::test]
async fn a_revoked_session_becomes_unauthorized_and_stops_without_restart() {
    let h = Harness::start().await;
    let phone = "+15552000";
    h.dc.add_user(UserSpec::new(phone, "Revoked"));
    let (id, running, mut endings) = h.logged_in_supervised(phone).await;

    h.dc.faults()
        .revoke(phone, RevokeKind::SessionRevoked)
        .expect("revoke");
    let answer = send_me(&running).await;
    assert!(
        matches!(answer, Err(AccountError::Unauthorized)),
        "{answer:?}"
    );

    let ending = tokio::time::timeout(BOUND, endings.recv())
        .await
        .expect("bounded");
    assert_eq!(ending, Some(Ending::Stopped(Some("unauthorized".into()))));
    let row = h.env.store.account(id).await.expect("row");
    assert_eq!(row.state, AccountState::Unauthorized);
    let log = logs(&h.env, id).await;
    assert!(
        log.iter()
            .any(|e| e.error_code.as_deref() == Some("SESSION_REVOKED")),
        "{log:?}"
    );
}

#[tokio::test]
async fn a_banned_account_becomes_banned_and_stops_without_restart() {
    let h = Harness::start().await;
    let phone = "+15552100";
    h.dc.add_user(UserSpec::new(phone, "Banned"));
    let (id, running, mut endings) = h.logged_in_supervised(phone).await;

    h.dc.faults().ban(phone).expect("ban");
    let answer = send_me(&running).await;
    assert!(matches!(answer, Err(AccountError::Banned)), "{answer:?}");
    let ending = tokio::time::timeout(BOUND, endings.recv())
        .await
        .expect("bounded");
    assert_eq!(ending, Some(Ending::Stopped(Some("banned".into()))));
    assert_eq!(
        h.env.store.account(id).await.expect("row").state,
        AccountState::Banned
    );
}

#[tokio::test]
async fn a_logged_in_account_whose_connections_drop_sends_on_its_next_call() {
    let h = Harness::start().await;
    let phone = "+15552003";
    h.dc.add_user(UserSpec::new(phone, "Dropped"));
    let (_id, running) = h.logged_in(phone).await;
    for round in 0..3 {
        assert!(send_me(&running).await.is_ok(), "send before drop {round}");
        assert!(
            h.dc.faults().drop_connections(None) > 0,
            "a live connection"
        );
        let sent = send_me(&running).await;
        assert!(matches!(sent, Ok(Sent { .. })), "round {round}: {sent:?}");
        assert_eq!(running.status().await.state, AccountState::Active);
    }
    running.stop().await;
}

/// Issue 16 item 2: the row's identity is what every connection says, reconnects and a restarted
/// actor included, and each account its own.
#[tokio::test]
async fn every_connection_of_an_account_carries_its_rows_identity() {
    let h = Harness::start().await;
    let (pa, pb) = ("+15552010", "+15552011");
    h.dc.add_user(UserSpec::new(pa, "Device A"));
    h.dc.add_user(UserSpec::new(pb, "Device B"));
    let (a, running_a) = h.logged_in(pa).await;
    let (b, running_b) = h.logged_in(pb).await;
    let device_b = h.env.store.account(b).await.expect("row").device;
    // Drawn ones may coincide; a fixed one for A makes the two tell apart.
    let device_a = tgfleet_persistence::DeviceIdentity {
        device_model: "MacBookAir10,1".into(),
        system_version: "macOS 15.1".into(),
        app_version: "5.8.3".into(),
        system_lang_code: "pt-BR".into(),
        lang_code: "pt-br".into(),
    };
    h.env
        .store
        .update_account(
            a,
            tgfleet_persistence::AccountUpdate {
                device: Some(Box::new(device_a.clone().into())),
                ..Default::default()
            },
        )
        .await
        .expect("identity written");
    let carried = |phone: &str, after: u64| {
        h.dc.connection_inits(Some(phone))
            .into_iter()
            .filter(move |c| c.seq > after)
            .map(|c| {
                let i = c.init;
                tgfleet_persistence::DeviceIdentity {
                    device_model: i.device_model,
                    system_version: i.system_version,
                    app_version: i.app_version,
                    system_lang_code: i.system_lang_code,
                    lang_code: i.lang_code,
                }
            })
            .collect::<Vec<_>>()
    };
    let newest = || h.dc.connection_inits(None).last().map_or(0, |c| c.seq);
    assert!(carried(pb, 0).iter().all(|d| *d == device_b));
    assert!(!carried(pb, 0).is_empty());

    // The running actor read its row before the change; a new actor reads the new one.
    running_a.stop().await;
    let seen = newest();
    let running_a = crate::harness::spawn(&h.env, a).await;
    assert!(send_me(&running_a).await.is_ok());
    let first = carried(pa, seen);
    assert!(
        !first.is_empty() && first.iter().all(|d| *d == device_a),
        "{first:?}"
    );

    // Dropped connections come back as the same device, for each account.
    for round in 0..2 {
        let seen = newest();
        assert!(h.dc.faults().drop_connections(None) > 0, "round {round}");
        assert!(send_me(&running_a).await.is_ok(), "round {round}");
        assert!(send_me(&running_b).await.is_ok(), "round {round}");
        let (again_a, again_b) = (carried(pa, seen), carried(pb, seen));
        assert!(
            !again_a.is_empty() && !again_b.is_empty(),
            "round {round}: no reconnect"
        );
        assert!(again_a.iter().all(|d| *d == device_a), "{again_a:?}");
        assert!(again_b.iter().all(|d| *d == device_b), "{again_b:?}");
    }
    running_a.stop().await;
    running_b.stop().await;
}

#[tokio::test]
async fn a_crash_is_a_failure_the_supervisor_restarts() {
    let h = Harness::start().await;
    h.dc.add_user(UserSpec::new("+15552200", "Crashy"));
    let (_, running, mut endings) = h.logged_in_supervised("+15552200").await;
    let _ = running
        .actor
        .send_message(tgfleet_actors::AccountMsg::Crash);
    let ending = tokio::time::timeout(BOUND, endings.recv())
        .await
        .expect("bounded");
    assert!(matches!(ending, Some(Ending::Failed(_))), "{ending:?}");
}

#[tokio::test]
async fn a_black_holed_dc_makes_the_account_reconnect_never_hang_or_die() {
    let limits = AccountLimits {
        call_timeout: Duration::from_secs(1),
        reconnect_backoff_min: Duration::from_millis(100),
        reconnect_backoff_max: Duration::from_millis(500),
        ..Default::default()
    };
    let h = Harness::with_config(TestDcConfig::default(), limits).await;
    h.dc.add_user(UserSpec::new("+15552300", "Holed"));
    let (id, running) = h.logged_in("+15552300").await;

    h.dc.faults().black_hole(true);
    let answer = send_me(&running).await;
    assert!(matches!(answer, Err(AccountError::Timeout)), "{answer:?}");
    assert_eq!(running.status().await.state, AccountState::Reconnecting);
    // While reconnecting, callers get a clear answer at once instead of hanging.
    let answer = send_me(&running).await;
    assert!(
        matches!(answer, Err(AccountError::Reconnecting)),
        "{answer:?}"
    );

    h.dc.faults().black_hole(false);
    running.wait_for(AccountState::Active).await;
    let answer = send_me(&running).await;
    assert!(matches!(answer, Ok(Sent { .. })), "{answer:?}");
    let states: Vec<String> = logs(&h.env, id)
        .await
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert!(states.contains(&"reconnecting".to_owned()), "{states:?}");
    assert!(states.contains(&"reconnected".to_owned()), "{states:?}");
}

#[tokio::test]
async fn metrics_show_the_state_and_the_calls_of_each_account() {
    let h = Harness::start().await;
    h.dc.add_user(UserSpec::new("+15552400", "Measured"));
    let (id, running) = h.logged_in("+15552400").await;
    send_me(&running).await.expect("sent");

    let text = prometheus::TextEncoder::new()
        .encode_to_string(&h.registry.gather())
        .expect("encode");
    assert!(
        text.contains("tgfleet_accounts{state=\"active\"} 1"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "tgfleet_account_state{{account_id=\"{id}\",state=\"active\"}} 1"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "tgfleet_rpc_total{{account_id=\"{id}\",method=\"messages.sendMessage\",outcome=\"ok\"}} 1"
        )),
        "{text}"
    );
    assert!(
        text.contains("tgfleet_rpc_seconds_bucket{method=\"auth.signIn\""),
        "{text}"
    );
}

#[tokio::test]
async fn a_duplicated_key_stops_the_account_and_keeps_its_session() {
    let h = Harness::with_config(
        TestDcConfig {
            strict_duplicate_keys: true,
            ..Default::default()
        },
        AccountLimits::default(),
    )
    .await;
    let phone = "+15552300";
    h.dc.add_user(UserSpec::new(phone, "Twice"));
    let (id, first) = h.logged_in(phone).await;
    assert!(send_me(&first).await.is_ok());

    // A second process runs the same account: the same key on another connection, with another
    // session id: Telegram answers AUTH_KEY_DUPLICATED to the newcomer.
    let (env2, _registry) = h.new_process().await;
    let (second, mut endings) = crate::harness::spawn_supervised(&env2, id).await;
    // Its start-up probe may meet the duplicate before this call does: either way it refuses.
    let answer = send_me(&second).await;
    assert!(
        matches!(&answer, Err(AccountError::Telegram { name, .. }) if name == "AUTH_KEY_DUPLICATED")
            || matches!(
                &answer,
                Err(AccountError::WrongState {
                    state: AccountState::Stopped,
                    ..
                })
            ),
        "{answer:?}"
    );
    let ending = tokio::time::timeout(BOUND, endings.recv())
        .await
        .expect("bounded");
    assert_eq!(ending, Some(Ending::Stopped(Some("duplicated".into()))));

    // The key is still valid: the account is stopped with the error, its session kept.
    let row = h.env.store.account(id).await.expect("row");
    assert_eq!(row.state, AccountState::Stopped);
    assert!(
        row.last_error
            .as_deref()
            .is_some_and(|e| e.contains("AUTH_KEY_DUPLICATED")),
        "{row:?}"
    );
    assert!(
        h.env
            .store
            .session(id)
            .await
            .expect("session read")
            .is_some(),
        "AUTH_KEY_DUPLICATED must not wipe the session"
    );

    // Once only one process runs it, the same session sends again.
    assert!(send_me(&first).await.is_ok());
    first.stop().await;
    let deadline = tokio::time::Instant::now() + BOUND;
    while h.dc.connection_count() > 0 {
        assert!(tokio::time::Instant::now() < deadline, "connections close");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let again = crate::harness::spawn(&h.env, id).await;
    assert!(
        send_me(&again).await.is_ok(),
        "the kept session still works"
    );
    again.stop().await;
}

/// Issue 12, item 3: store writes leave the mailbox. While another connection holds SQLite's
/// write lock, a flood wait is decided and the account's status is still answered (the write
/// waits, the mailbox does not); the caller whose call caused the write hears back only once it
/// is in the store, so what it reads next is what it caused.
#[tokio::test]
async fn a_stalled_database_does_not_stall_the_mailbox() {
    let h = Harness::start().await;
    let phone = "+15552400";
    h.dc.add_user(UserSpec::new(phone, "Stalled"));
    let (id, running) = h.logged_in(phone).await;
    h.dc.faults()
        .flood_wait("messages.sendMessage", Some(phone), 3600);

    let raw = tgfleet_persistence::SqliteStore::connect(&format!(
        "sqlite://{}/tgfleet.db",
        h.dir.path().display()
    ))
    .await
    .expect("raw connection");
    let mut lock = raw.pool().acquire().await.expect("connection");
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut *lock)
        .await
        .expect("take the write lock");

    let actor = running.actor.clone();
    let send = tokio::spawn(async move {
        crate::harness::call(
            &actor,
            SendMessage {
                media: Vec::new(),
                random_id: None,
                peer: tgfleet_actors::Peer::Me,
                text: "into a flood wait".into(),
                dedupe_key: None,
                options: Default::default(),
            },
        )
        .await
    });
    // The wait is decided and shown while its row write cannot land.
    let deadline = tokio::time::Instant::now() + BOUND;
    while running.status().await.flood_wait_until.is_none() {
        assert!(tokio::time::Instant::now() < deadline, "flood wait decided");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !send.is_finished(),
        "the caller hears back only after the write"
    );

    sqlx::raw_sql("ROLLBACK")
        .execute(&mut *lock)
        .await
        .expect("release the write lock");
    let answer = tokio::time::timeout(BOUND, send)
        .await
        .expect("bounded")
        .expect("send task");
    assert!(
        matches!(answer, Err(AccountError::FloodWait { .. })),
        "{answer:?}"
    );
    let row = h.env.store.account(id).await.expect("row");
    assert!(row.flood_wait_until.is_some(), "{row:?}");
    running.stop().await;
}
