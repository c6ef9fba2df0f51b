//! Hibernation: an idle authorized account drops its connection and comes back on its next call
//! with the same session.

use std::time::Duration;

use tgfleet_actors::{AccountLimits, SendMessage, Sent};
use tgfleet_persistence::{AccountId, AccountState};
use tgfleet_testdc::{TestDcConfig, UserSpec};

use crate::harness::{logs, spawn, Ending, Harness, Running, BOUND};

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
async fn auth_keys(h: &Harness, id: AccountId) -> Vec<Option<[u8; 256]>> {
    tgfleet_actors::session::read_stored(&*h.env.store, &h.env.cipher, id)
        .await
        .expect("session read")
        .expect("a stored session")
        .dc_options
        .iter()
        .map(|o| o.auth_key)
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

/// Waits (bounded) until the actor has ended on its own.
async fn ended(running: Running) {
    tokio::time::timeout(BOUND, running.handle)
        .await
        .expect("the idle actor ended itself")
        .expect("actor task joins");
}

#[tokio::test]
async fn an_idle_account_hibernates_by_ending_its_actor_and_its_next_actor_keeps_the_session() {
    let h = Harness::with_config(TestDcConfig::default(), limits()).await;
    h.dc.add_user(UserSpec::new("+15551400", "Sleepy"));
    let (id, running, mut endings) = h.logged_in_supervised("+15551400").await;
    let keys = auth_keys(&h, id).await;

    // Hibernation leaves nothing in memory: the actor itself goes, as a normal stop (a failure
    // would make its supervisor restart it).
    ended(running).await;
    let ending = tokio::time::timeout(BOUND, endings.recv())
        .await
        .expect("the supervisor hears of the end");
    assert_eq!(ending, Some(Ending::Stopped(Some("Drained".into()))));
    wait_for_connections(&h, 0).await;
    let row = h.env.store.account(id).await.expect("account row");
    assert_eq!(row.state, AccountState::Hibernated);
    assert_eq!(
        h.env.metrics.state_of(id),
        Some(AccountState::Hibernated),
        "a hibernated account stays counted in tgfleet_accounts"
    );

    // The fleet starts a new actor on the next call: it reconnects with the same auth key.
    let woken = spawn(&h.env, id).await;
    assert_eq!(woken.status().await.state, AccountState::Hibernated);
    match woken
        .call(SendMessage {
            media: Vec::new(),
            random_id: None,
            peer: tgfleet_actors::Peer::Me,
            text: "wake up".into(),
            dedupe_key: None,
            options: Default::default(),
        })
        .await
    {
        Ok(Sent { .. }) => {}
        other => panic!("a hibernated account's send answered {other:?}"),
    }
    assert_eq!(woken.status().await.state, AccountState::Active);
    assert_eq!(auth_keys(&h, id).await, keys, "waking changed the auth key");
    let events: Vec<String> = logs(&h.env, id)
        .await
        .into_iter()
        .map(|l| l.event)
        .collect();
    assert!(events.iter().any(|e| e == "hibernated"), "{events:?}");
    assert!(events.iter().any(|e| e == "woken"), "{events:?}");
    woken.stop().await;
}

#[tokio::test]
async fn an_actor_started_for_a_hibernated_account_without_a_call_never_connects_and_ends_again() {
    let h = Harness::with_config(TestDcConfig::default(), limits()).await;
    h.dc.add_user(UserSpec::new("+15551401", "Sleepy Two"));
    let (id, running) = h.logged_in("+15551401").await;
    ended(running).await;
    wait_for_connections(&h, 0).await;

    // Started by a status read (or a crash restart): it answers, stays hibernated, and goes
    // again once idle, without ever opening a connection.
    let reader = spawn(&h.env, id).await;
    assert_eq!(reader.status().await.state, AccountState::Hibernated);
    assert_eq!(h.dc.connection_count(), 0);
    ended(reader).await;
    assert_eq!(h.dc.connection_count(), 0);
    let row = h.env.store.account(id).await.expect("account row");
    assert_eq!(row.state, AccountState::Hibernated);

    let woken = spawn(&h.env, id).await;
    assert!(matches!(
        woken
            .call(SendMessage {
                media: Vec::new(),
                random_id: None,
                peer: tgfleet_actors::Peer::Me,
                text: "after a restart".into(),
                dedupe_key: None,
                options: Default::default(),
            })
            .await,
        Ok(Sent { .. })
    ));
    woken.stop().await;
}
