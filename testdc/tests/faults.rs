//! Injected faults as the real client experiences them.

mod common;

use std::time::Duration;

use common::{bounded, client, client_with_key, log_in, rpc_error, start, start_with, API_HASH};
use grammers_client::tl;
use grammers_client::InvocationError;
use tgfleet_testdc::{new_auth_key, RevokeKind, TestDcConfig, UserSpec};

fn self_note(text: &str, random_id: i64) -> tl::functions::messages::SendMessage {
    tl::functions::messages::SendMessage {
        no_webpage: true,
        silent: false,
        background: false,
        clear_draft: false,
        noforwards: false,
        update_stickersets_order: false,
        invert_media: false,
        allow_paid_floodskip: false,
        peer: tl::enums::InputPeer::PeerSelf,
        reply_to: None,
        message: text.into(),
        random_id,
        reply_markup: None,
        entities: None,
        schedule_date: None,
        schedule_repeat_period: None,
        send_as: None,
        quick_reply_shortcut: None,
        effect: None,
        allow_paid_stars: None,
        suggested_post: None,
        rich_message: None,
    }
}

#[tokio::test]
async fn flood_wait_reaches_the_client_as_an_rpc_error_with_its_value() {
    let dc = start().await;
    dc.add_user(UserSpec::new("+15550003001", "Flooded"));
    dc.add_user(UserSpec::new("+15550003002", "Fine"));
    let flooded = client(&dc, 2).await;
    let fine = client(&dc, 2).await;
    log_in(&dc, &flooded, "+15550003001").await;
    log_in(&dc, &fine, "+15550003002").await;

    dc.faults()
        .flood_wait("messages.sendMessage", Some("+15550003001"), 3600);
    let e = rpc_error(bounded(flooded.client.invoke(&self_note("a", 1))).await);
    assert_eq!(e.code, 420);
    assert!(e.is("FLOOD_WAIT"));
    let secs = e.value.expect("FLOOD_WAIT carries its seconds");
    assert!((3500..=3600).contains(&secs), "got {secs}");

    // Only that phone and that method are limited.
    bounded(fine.client.invoke(&self_note("b", 2)))
        .await
        .unwrap();
    bounded(flooded.client.get_me()).await.unwrap();

    dc.faults().clear();
    bounded(flooded.client.invoke(&self_note("c", 3)))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_connection_dropped_mid_call_fails_that_call_and_the_next_call_reconnects() {
    let dc = start().await;
    dc.add_user(UserSpec::new("+15550003003", "Dropped"));
    let c = client(&dc, 2).await;
    log_in(&dc, &c, "+15550003003").await;

    // Hold the call inside testdc, then cut the connection under it.
    dc.faults().black_hole(true);
    let call = tokio::spawn({
        let client = c.client.clone();
        async move { client.invoke(&self_note("in flight", 9)).await }
    });
    bounded(async {
        while dc.faults().swallowed() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    dc.faults().black_hole(false);
    assert!(dc.faults().drop_connections(Some("+15550003003")) >= 1);

    let result = bounded(call).await.unwrap();
    assert!(
        matches!(result, Err(ref e) if !matches!(e, InvocationError::Rpc(_))),
        "expected a transport failure, got {result:?}"
    );
    assert!(dc.messages().is_empty());

    // The client reconnects lazily and the account is still logged in.
    bounded(c.client.invoke(&self_note("after reconnect", 10)))
        .await
        .unwrap();
    assert_eq!(dc.messages().len(), 1);
}

#[tokio::test]
async fn a_black_hole_is_ended_only_by_the_callers_timeout() {
    let dc = start().await;
    dc.add_user(UserSpec::new("+15550003004", "Hole"));
    let c = client(&dc, 2).await;
    log_in(&dc, &c, "+15550003004").await;
    dc.faults().black_hole(true);
    let r = tokio::time::timeout(Duration::from_millis(300), c.client.get_me()).await;
    assert!(r.is_err(), "the call must still be pending: {r:?}");
    assert!(dc.connection_count() >= 1, "the connection stays open");
}

#[tokio::test]
async fn revoked_sessions_see_session_revoked_or_auth_key_unregistered() {
    let dc = start().await;
    dc.add_user(UserSpec::new("+15550003005", "Revoked"));
    dc.add_user(UserSpec::new("+15550003006", "Unregistered"));
    let a = client(&dc, 2).await;
    let b = client(&dc, 2).await;
    log_in(&dc, &a, "+15550003005").await;
    log_in(&dc, &b, "+15550003006").await;

    dc.faults()
        .revoke("+15550003005", RevokeKind::SessionRevoked)
        .unwrap();
    let e = rpc_error(bounded(a.client.invoke(&tl::functions::updates::GetState {})).await);
    assert_eq!((e.code, e.name.as_str()), (401, "SESSION_REVOKED"));

    dc.faults()
        .revoke("+15550003006", RevokeKind::AuthKeyUnregistered)
        .unwrap();
    assert!(!bounded(b.client.is_authorized()).await.unwrap());

    // Logging in again works.
    log_in(&dc, &a, "+15550003005").await;
    assert!(bounded(a.client.is_authorized()).await.unwrap());
}

#[tokio::test]
async fn a_banned_user_is_deactivated() {
    let dc = start().await;
    dc.add_user(UserSpec::new("+15550003007", "Banned"));
    let c = client(&dc, 2).await;
    log_in(&dc, &c, "+15550003007").await;
    dc.faults().ban("+15550003007").unwrap();
    let e = rpc_error(bounded(c.client.get_me()).await);
    assert_eq!((e.code, e.name.as_str()), (401, "USER_DEACTIVATED_BAN"));

    let other = client(&dc, 2).await;
    let e = rpc_error(
        bounded(other.client.request_login_code("+15550003007", API_HASH))
            .await
            .map(|_| ()),
    );
    assert_eq!(e.name, "PHONE_NUMBER_BANNED");
}

#[tokio::test]
async fn strict_mode_rejects_one_key_used_in_two_places_at_once() {
    let dc = start_with(TestDcConfig {
        strict_duplicate_keys: true,
        ..Default::default()
    })
    .await;
    let key = new_auth_key();
    dc.register_auth_key(key);
    let first = client_with_key(&dc, 2, key).await;
    assert!(!bounded(first.client.is_authorized()).await.unwrap());

    let second = client_with_key(&dc, 2, key).await;
    let e = rpc_error(bounded(second.client.invoke(&tl::functions::updates::GetState {})).await);
    assert_eq!((e.code, e.name.as_str()), (406, "AUTH_KEY_DUPLICATED"));

    // Without strict mode the same thing is allowed.
    let relaxed = start().await;
    relaxed.register_auth_key(key);
    let a = client_with_key(&relaxed, 2, key).await;
    let b = client_with_key(&relaxed, 2, key).await;
    assert!(!bounded(a.client.is_authorized()).await.unwrap());
    assert!(!bounded(b.client.is_authorized()).await.unwrap());
}

#[tokio::test]
async fn an_unregistered_key_is_refused_without_disturbing_others() {
    let dc = start().await;
    dc.add_user(UserSpec::new("+15550003008", "Other"));
    let good = client(&dc, 2).await;
    log_in(&dc, &good, "+15550003008").await;

    let stranger = client_with_key(&dc, 2, new_auth_key()).await;
    let r = bounded(stranger.client.is_authorized()).await;
    assert!(
        matches!(r, Err(ref e) if !matches!(e, InvocationError::Rpc(_))),
        "an unknown key cannot talk to testdc: {r:?}"
    );
    bounded(good.client.get_me()).await.unwrap();
}
