//! Hibernation: an idle authorized account drops its connection and comes back on its next call
//! with the same session.

use std::time::Duration;

use tgfleet_actors::{AccountLimits, AccountReply, AccountRequest};
use tgfleet_persistence::{AccountId, AccountState};
use tgfleet_testdc::{TestDcConfig, UserSpec};

use crate::harness::{logs, spawn, Harness, BOUND};

/// Short periods so the test takes a second, not minutes: the watchdog ticks every 50 ms and an
/// account idle for 200 ms hibernates.
fn limits() -> AccountLimits {
    AccountLimits {
        watchdog_period: Duration::from_millis(50),
        hibernate_after: Some(Duration::from_millis(200)),
        ..Default::default()
    }
}

/// The auth keys of the account's stored session, as the sealed blob holds them.
async fn auth_keys(h: &Harness, id: AccountId) -> Vec<serde_json::Value> {
    let sealed = h
        .env
        .store
        .session(id)
        .await
        .expect("session read")
        .expect("a stored session");
    let plain = h.env.cipher.open(id, &sealed).await.expect("session opens");
    let stored: serde_json::Value = serde_json::from_slice(&plain).expect("session JSON");
    stored["dc_options"]
        .as_array()
        .expect("dc options")
        .iter()
        .map(|o| o["auth_key"].clone())
        .collect()
}

async fn wait_for_connections(h: &Harness, n: usize) {
    let deadline = tokio::time::Instant::now() + BOUND;
    while h.dc.connection_count() != n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "testdc still counts {} connections, expected {n}",
            h.dc.connection_count()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_hibernated_account_reconnects_on_its_next_call_with_the_same_session() {
    let h = Harness::with_config(TestDcConfig::default(), limits()).await;
    h.dc.add_user(UserSpec::new("+15551400", "Sleepy"));
    let (id, running) = h.logged_in("+15551400").await;
    let keys = auth_keys(&h, id).await;

    running.wait_for(AccountState::Hibernated).await;
    wait_for_connections(&h, 0).await;
    let row = h.env.store.account(id).await.expect("account row");
    assert_eq!(row.state, AccountState::Hibernated);

    match running
        .call(AccountRequest::SendMessage {
            peer: "me".into(),
            text: "wake up".into(),
            dedupe_key: None,
        })
        .await
    {
        Ok(AccountReply::Sent { .. }) => {}
        other => panic!("a hibernated account's send answered {other:?}"),
    }
    assert_eq!(running.status().await.state, AccountState::Active);
    assert_eq!(auth_keys(&h, id).await, keys, "waking changed the auth key");
    let events: Vec<String> = logs(&h.env, id)
        .await
        .into_iter()
        .map(|l| l.event)
        .collect();
    assert!(events.iter().any(|e| e == "hibernated"), "{events:?}");
    assert!(events.iter().any(|e| e == "woken"), "{events:?}");
    running.stop().await;
}

#[tokio::test]
async fn a_hibernated_account_restarts_hibernated_without_connecting() {
    let h = Harness::with_config(TestDcConfig::default(), limits()).await;
    h.dc.add_user(UserSpec::new("+15551401", "Sleepy Two"));
    let (id, running) = h.logged_in("+15551401").await;
    running.wait_for(AccountState::Hibernated).await;
    running.crash().await;
    wait_for_connections(&h, 0).await;

    let restarted = spawn(&h.env, id).await;
    assert_eq!(restarted.status().await.state, AccountState::Hibernated);
    // Give a wrongly eager actor time to connect before looking.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.dc.connection_count(), 0);
    assert!(matches!(
        restarted
            .call(AccountRequest::SendMessage {
                peer: "me".into(),
                text: "after a restart".into(),
                dedupe_key: None,
            })
            .await,
        Ok(AccountReply::Sent { .. })
    ));
    restarted.stop().await;
}
