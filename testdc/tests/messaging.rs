//! What a logged-in account does: users, usernames, messages, updates, dialogs, channels.

mod common;

use common::{bounded, client, log_in, rpc_error, start};
use grammers_client::tl;
use tgfleet_testdc::{PeerRef, UserSpec};

fn send(
    peer: tl::enums::InputPeer,
    text: &str,
    random_id: i64,
) -> tl::functions::messages::SendMessage {
    tl::functions::messages::SendMessage {
        no_webpage: true,
        silent: false,
        background: false,
        clear_draft: false,
        noforwards: false,
        update_stickersets_order: false,
        invert_media: false,
        allow_paid_floodskip: false,
        peer,
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

fn resolved_user(r: tl::enums::contacts::ResolvedPeer) -> (i64, i64) {
    let tl::enums::contacts::ResolvedPeer::Peer(r) = r;
    match r.users.into_iter().next() {
        Some(tl::enums::User::User(u)) => (u.id, u.access_hash.expect("access hash")),
        other => panic!("expected a user, got {other:?}"),
    }
}

#[tokio::test]
async fn send_to_self_user_username_and_channel_is_stored_with_consistent_pts() {
    let dc = start().await;
    let alice_id = dc.add_user(UserSpec::new("+15550002001", "Alice"));
    let bob_id = dc.add_user(UserSpec::new("+15550002002", "Bob").username("bob"));
    let alice = client(&dc, 2).await;
    let mut bob = client(&dc, 2).await;
    log_in(&dc, &alice, "+15550002001").await;
    log_in(&dc, &bob, "+15550002002").await;

    let tl::enums::updates::State::State(before) =
        bounded(alice.client.invoke(&tl::functions::updates::GetState {}))
            .await
            .unwrap();

    // To self, through the high-level API (updateShortSentMessage).
    let me = bounded(alice.client.get_me()).await.unwrap();
    let me_ref = me.to_ref().await.unwrap().expect("self is cached");
    let sent = bounded(alice.client.send_message(me_ref, "note to self"))
        .await
        .unwrap();
    assert_eq!(sent.text(), "note to self");

    // To a user found by username.
    let r = bounded(
        alice
            .client
            .invoke(&tl::functions::contacts::ResolveUsername {
                username: "bob".into(),
                referer: None,
            }),
    )
    .await
    .unwrap();
    let (id, hash) = resolved_user(r);
    assert_eq!(id, bob_id);
    let u = bounded(
        alice.client.invoke(&send(
            tl::types::InputPeerUser {
                user_id: id,
                access_hash: hash,
            }
            .into(),
            "hi bob",
            7,
        )),
    )
    .await
    .unwrap();
    let tl::enums::Updates::UpdateShortSentMessage(short) = u else {
        panic!("expected updateShortSentMessage, got {u:?}");
    };
    // Each message moves the sender's pts by exactly one.
    assert_eq!(short.pts, before.pts + 2);
    assert_eq!(short.pts_count, 1);

    // Bob is told about it, pushed as a bare update with his own pts.
    let pushed = bounded(async {
        loop {
            if let Some(grammers_client::session::updates::UpdatesLike::Updates(
                tl::enums::Updates::UpdateShortMessage(m),
            )) = bob.updates.recv().await
            {
                break m;
            }
        }
    })
    .await;
    assert_eq!(pushed.message, "hi bob");
    assert_eq!(pushed.user_id, alice_id);

    // A channel, created by Alice, then written to.
    let created = bounded(
        alice
            .client
            .invoke(&tl::functions::channels::CreateChannel {
                broadcast: true,
                megagroup: false,
                for_import: false,
                forum: false,
                title: "Announcements".into(),
                about: String::new(),
                geo_point: None,
                address: None,
                ttl_period: None,
            }),
    )
    .await
    .unwrap();
    let tl::enums::Updates::Updates(created) = created else {
        panic!("expected updates");
    };
    let Some(tl::enums::Chat::Channel(channel)) = created.chats.into_iter().next() else {
        panic!("expected the new channel");
    };
    let u = bounded(
        alice.client.invoke(&send(
            tl::types::InputPeerChannel {
                channel_id: channel.id,
                access_hash: channel.access_hash.unwrap(),
            }
            .into(),
            "first post",
            8,
        )),
    )
    .await
    .unwrap();
    assert!(matches!(u, tl::enums::Updates::Updates(_)));

    let stored = dc.messages();
    let texts: Vec<_> = stored.iter().map(|m| (m.to, m.text.as_str())).collect();
    assert_eq!(
        texts,
        vec![
            (PeerRef::User(alice_id), "note to self"),
            (PeerRef::User(bob_id), "hi bob"),
            (PeerRef::Channel(channel.id), "first post"),
        ]
    );
    assert!(stored.iter().all(|m| m.from_user_id == alice_id));

    // getDifference from the old state returns what happened since.
    let diff = bounded(alice.client.invoke(&tl::functions::updates::GetDifference {
        pts: before.pts,
        pts_limit: None,
        pts_total_limit: None,
        date: before.date,
        qts: before.qts,
        qts_limit: None,
    }))
    .await
    .unwrap();
    let tl::enums::updates::Difference::Difference(diff) = diff else {
        panic!("expected a difference, got {diff:?}");
    };
    assert_eq!(diff.new_messages.len(), 2);

    // Dialogs list all three conversations.
    let tl::enums::messages::Dialogs::Dialogs(d) =
        bounded(alice.client.invoke(&tl::functions::messages::GetDialogs {
            exclude_pinned: false,
            folder_id: None,
            offset_date: 0,
            offset_id: 0,
            offset_peer: tl::enums::InputPeer::Empty,
            limit: 20,
            hash: 0,
        }))
        .await
        .unwrap()
    else {
        panic!("expected dialogs");
    };
    assert_eq!(d.dialogs.len(), 3);
}

#[tokio::test]
async fn a_resent_message_with_the_same_random_id_is_stored_once() {
    let dc = start().await;
    dc.add_user(UserSpec::new("+15550002003", "Carol"));
    let c = client(&dc, 2).await;
    log_in(&dc, &c, "+15550002003").await;
    let first = bounded(
        c.client
            .invoke(&send(tl::enums::InputPeer::PeerSelf, "once", 42)),
    )
    .await
    .unwrap();
    let again = bounded(
        c.client
            .invoke(&send(tl::enums::InputPeer::PeerSelf, "once", 42)),
    )
    .await
    .unwrap();
    assert_eq!(first, again);
    assert_eq!(dc.messages().len(), 1);
}

#[tokio::test]
async fn users_and_full_user_and_unknown_username() {
    let dc = start().await;
    dc.add_user(UserSpec::new("+15550002004", "Dora").username("dora"));
    let c = client(&dc, 2).await;
    log_in(&dc, &c, "+15550002004").await;

    let users = bounded(c.client.invoke(&tl::functions::users::GetUsers {
        id: vec![tl::enums::InputUser::UserSelf],
    }))
    .await
    .unwrap();
    let [tl::enums::User::User(me)] = &users[..] else {
        panic!("expected one user");
    };
    assert!(me.is_self);

    let tl::enums::users::UserFull::Full(full) =
        bounded(c.client.invoke(&tl::functions::users::GetFullUser {
            id: tl::enums::InputUser::UserSelf,
        }))
        .await
        .unwrap();
    let tl::enums::UserFull::Full(f) = full.full_user;
    assert_eq!(f.id, me.id);

    let peer = bounded(c.client.resolve_username("dora")).await.unwrap();
    assert!(peer.is_some());
    let e = rpc_error(
        bounded(c.client.invoke(&tl::functions::contacts::ResolveUsername {
            username: "nobody_here".into(),
            referer: None,
        }))
        .await,
    );
    assert_eq!(e.name, "USERNAME_NOT_OCCUPIED");
}

#[tokio::test]
async fn calls_before_login_are_unauthorized() {
    let dc = start().await;
    let c = client(&dc, 2).await;
    let e = rpc_error(bounded(c.client.invoke(&tl::functions::updates::GetState {})).await);
    assert_eq!((e.code, e.name.as_str()), (401, "AUTH_KEY_UNREGISTERED"));
    let e = rpc_error(
        bounded(
            c.client
                .invoke(&send(tl::enums::InputPeer::PeerSelf, "x", 1)),
        )
        .await,
    );
    assert_eq!(e.code, 401);
}
