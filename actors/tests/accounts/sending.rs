//! SendMessage: peers by every accepted form, dedupe across re-sends, flood control per account.

use std::time::Duration;

use tgfleet_actors::{AccountError, AccountLimits, SendMessage, Sent};
use tgfleet_testdc::{TestDcConfig, UserSpec};

use crate::harness::{spawn, Harness, Running, BOUND};

async fn send(
    running: &Running,
    peer: &str,
    text: &str,
    key: Option<&str>,
) -> Result<i32, AccountError> {
    match running
        .call(SendMessage {
            // Parsed where a request enters, as the API does; a malformed one never reaches the actor.
            peer: peer
                .parse()
                .map_err(|why: &str| AccountError::PeerInvalid(why.into()))?,
            text: text.into(),
            media: Vec::new(),
            random_id: None,
            dedupe_key: key.map(str::to_owned),
            options: Default::default(),
        })
        .await
    {
        Ok(Sent { message_id, .. }) => Ok(message_id),
        Err(e) => Err(e),
    }
}

#[tokio::test]
async fn messages_reach_me_a_username_a_phone_and_a_numeric_id() {
    let h = Harness::start().await;
    h.dc.add_user(UserSpec::new("+15551000", "Sender"));
    let bob =
        h.dc.add_user(UserSpec::new("+15551001", "Bob").username("bobby"));
    let (_, running) = h.logged_in("+15551000").await;

    send(&running, "me", "to myself", None).await.expect("me");
    send(&running, "@bobby", "by username", None)
        .await
        .expect("username");
    send(&running, "+15551001", "by phone", None)
        .await
        .expect("phone");
    send(&running, &bob.to_string(), "by id", None)
        .await
        .expect("id");

    let texts_to_bob: Vec<String> =
        h.dc.messages()
            .into_iter()
            .filter(|m| format!("{:?}", m.to).contains(&bob.to_string()))
            .map(|m| m.text)
            .collect();
    assert_eq!(texts_to_bob, ["by username", "by phone", "by id"]);

    let unknown = send(&running, "@nobody_here", "lost", None).await;
    assert!(
        matches!(unknown, Err(AccountError::PeerInvalid(_))),
        "{unknown:?}"
    );
    let garbage = send(&running, "bob", "lost", None).await;
    assert!(
        matches!(garbage, Err(AccountError::PeerInvalid(_))),
        "{garbage:?}"
    );
}

#[tokio::test]
async fn a_re_sent_message_with_the_same_dedupe_key_is_sent_once() {
    let h = Harness::start().await;
    h.dc.add_user(UserSpec::new("+15551100", "Sender"));
    let (id, running) = h.logged_in("+15551100").await;

    let first = send(&running, "me", "once", Some("order-42"))
        .await
        .expect("sent");
    let again = send(&running, "me", "once", Some("order-42"))
        .await
        .expect("re-sent");
    assert_eq!(first, again);

    // Even across a crash and restart in place, the key still maps to the same message.
    running.crash().await;
    let running = spawn(&h.env, id).await;
    let after_crash = send(&running, "me", "once", Some("order-42"))
        .await
        .expect("re-sent");
    assert_eq!(first, after_crash);

    let other = send(&running, "me", "once", Some("order-43"))
        .await
        .expect("sent");
    assert_ne!(first, other);
    let count = h.dc.messages().iter().filter(|m| m.text == "once").count();
    assert_eq!(count, 2, "one message per dedupe key reached Telegram");
}

#[tokio::test]
async fn a_key_sent_before_sends_left_the_sealed_session_still_answers_its_message() {
    let h = Harness::start().await;
    h.dc.add_user(UserSpec::new("+15551150", "Upgraded"));
    let (id, running) = h.logged_in("+15551150").await;
    let first = send(&running, "me", "before the upgrade", None)
        .await
        .expect("sent");
    running.stop().await;

    // The session as a binary from before `sent_messages` wrote it: the key's record inside.
    let sealed = h.env.store.session(id).await.unwrap().expect("a session");
    let plain = h.env.cipher.open(id, &sealed).await.unwrap();
    let mut stored: serde_json::Value = serde_json::from_slice(&plain).unwrap();
    stored["sent"] = serde_json::json!([
        {"key": "order-7", "random_id": 7007, "message_id": first}
    ]);
    let legacy = h
        .env
        .cipher
        .seal(id, &serde_json::to_vec(&stored).unwrap())
        .await
        .unwrap();
    h.env.store.put_session(id, &legacy).await.unwrap();

    let running = spawn(&h.env, id).await;
    let again = send(&running, "me", "before the upgrade", Some("order-7"))
        .await
        .expect("answered");
    assert_eq!(again, first, "the key's message, not a new one");
    let count =
        h.dc.messages()
            .iter()
            .filter(|m| m.text == "before the upgrade")
            .count();
    assert_eq!(count, 1, "nothing reached Telegram again");
    // The record moved to the store's table; the sealed session no longer carries it.
    let kept = h.env.store.sent_message(id, "order-7").await.unwrap();
    assert_eq!(kept.map(|k| k.message_ids), Some(vec![first]));
    let sealed = h.env.store.session(id).await.unwrap().expect("a session");
    let plain = h.env.cipher.open(id, &sealed).await.unwrap();
    let stored: serde_json::Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(stored["sent"], serde_json::json!([]));
}

#[tokio::test]
async fn a_long_flood_wait_fails_fast_with_its_seconds_until_it_expires() {
    let h = Harness::start().await;
    h.dc.add_user(UserSpec::new("+15551200", "Flooded"));
    let (_, running) = h.logged_in("+15551200").await;
    h.dc.faults()
        .flood_wait("messages.sendMessage", Some("+15551200"), 300);

    let first = send(&running, "me", "x", None).await;
    let Err(AccountError::FloodWait { method, seconds }) = first else {
        panic!("expected a flood wait, got {first:?}");
    };
    assert_eq!(method, "messages.sendMessage");
    assert!(seconds > 250 && seconds <= 300, "{seconds}");

    // The next call does not even reach Telegram.
    let before = h.dc.stats().requests;
    let second = send(&running, "me", "x", None).await;
    assert!(
        matches!(second, Err(AccountError::FloodWait { .. })),
        "{second:?}"
    );
    assert_eq!(h.dc.stats().requests, before);

    // One blocked method is not a blocked account.
    let status = running.status().await;
    assert_eq!(status.state, tgfleet_persistence::AccountState::Active);
    assert!(status.flood_wait_until.is_some());
}

#[tokio::test]
async fn an_account_waiting_out_a_flood_does_not_slow_another() {
    let limits = AccountLimits {
        flood_wait_threshold: Duration::from_secs(30),
        ..Default::default()
    };
    let h = Harness::with_config(TestDcConfig::default(), limits).await;
    h.dc.add_user(UserSpec::new("+15551300", "Slow"));
    h.dc.add_user(UserSpec::new("+15551301", "Fast"));
    let (_, slow) = h.logged_in("+15551300").await;
    let (_, fast) = h.logged_in("+15551301").await;

    // 3 s is below the threshold: the slow account waits it out (in a task) and then sends.
    h.dc.faults()
        .flood_wait("messages.sendMessage", Some("+15551300"), 3);
    let slow_actor = slow.actor.clone();
    let slow_send = tokio::spawn(async move {
        crate::harness::call(
            &slow_actor,
            SendMessage {
                media: Vec::new(),
                random_id: None,
                peer: tgfleet_actors::Peer::Me,
                text: "after the wait".into(),
                dedupe_key: None,
                options: Default::default(),
            },
        )
        .await
    });

    // Meanwhile the other account sends, and the slow one still answers its mailbox.
    send(&fast, "me", "right away", None)
        .await
        .expect("fast account sends");
    let status = slow.status().await;
    assert_eq!(status.state, tgfleet_persistence::AccountState::Active);
    assert!(
        !slow_send.is_finished(),
        "the fast account finished while the slow one was still waiting out its flood"
    );

    let slow_result = tokio::time::timeout(BOUND, slow_send)
        .await
        .expect("bounded")
        .expect("joins");
    assert!(matches!(slow_result, Ok(Sent { .. })), "{slow_result:?}");
}
