//! A real grammers client that was away catches up through its own update stream
//! (`stream_updates` with `catch_up`): after being stopped with its state saved, and after its
//! connection dropped while it ran. Each update it missed comes exactly once, in order.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{bounded, client, log_in, start, API_HASH, API_ID};
use grammers_client::client::UpdateStream;
use grammers_client::session::storages::MemorySession;
use grammers_client::session::Session as _;
use grammers_client::{tl, Client, SenderPool};
use grammers_mtsender::{ConnectionParams, NoRetries, UpdatesConfiguration};
use tgfleet_testdc::{new_auth_key, seed_session, TestDc, UserSpec};
use tokio::task::JoinHandle;

const ALICE: &str = "+15550007001";
const BOB: &str = "+15550007002";
const CHANNEL_NAME: &str = "catchupnews";

/// Alice's client: what tgfleet's account actor holds, minus the actor.
struct Alice {
    client: Client,
    stream: UpdateStream,
    runner: JoinHandle<()>,
}

impl Alice {
    /// Starts a client on `session` (seeded, maybe logged in) and its update stream, which
    /// begins from the state the session holds.
    async fn start(session: &Arc<MemorySession>) -> Self {
        let pool = SenderPool::with_configuration(
            Arc::clone(session),
            API_ID,
            ConnectionParams {
                retry_policy: Box::new(NoRetries),
                ..Default::default()
            },
        );
        let runner = tokio::spawn(pool.runner.run());
        let client = Client::new(pool.handle);
        let stream = client
            .stream_updates(pool.updates, UpdatesConfiguration { catch_up: true })
            .await
            .expect("an update stream");
        Self {
            client,
            stream,
            runner,
        }
    }

    /// Saves the update state into the session and stops, as tgfleet does on shutdown.
    async fn stop(self) {
        self.stream.sync_update_state().await.expect("state saved");
        drop(self.stream);
        self.client.disconnect();
        self.runner.abort();
        let _ = self.runner.await;
    }

    /// The next `n` updates, then nothing more for a while.
    async fn exactly(&mut self, n: usize) -> Vec<tl::enums::Update> {
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            let (update, _, _) = bounded(self.stream.next_raw()).await.expect("an update");
            if counts(&update) {
                got.push(update);
            }
        }
        let extra = tokio::time::timeout(Duration::from_millis(1500), async {
            loop {
                let (update, _, _) = self.stream.next_raw().await.expect("an update");
                if counts(&update) {
                    break update;
                }
            }
        })
        .await;
        if let Ok(extra) = extra {
            panic!("one update more than the {n} expected: {extra:?}");
        }
        got
    }
}

/// Waits until the DC has seen the connections of a stopped client close: tgfleet stopped
/// means its connections are gone, not closing.
async fn wait_connections(dc: &TestDc, at_most: usize) {
    bounded(async {
        while dc.connection_count() > at_most {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// Updates about messages (what tgfleet turns into events).
fn counts(u: &tl::enums::Update) -> bool {
    use tl::enums::Update as U;
    matches!(
        u,
        U::NewMessage(_)
            | U::NewChannelMessage(_)
            | U::EditMessage(_)
            | U::EditChannelMessage(_)
            | U::DeleteMessages(_)
            | U::DeleteChannelMessages(_)
    )
}

fn text(m: &tl::enums::Message) -> String {
    match m {
        tl::enums::Message::Message(m) => m.message.clone(),
        other => panic!("expected a message, got {other:?}"),
    }
}

/// What the updates say happened, one line each.
fn describe(updates: &[tl::enums::Update]) -> Vec<String> {
    use tl::enums::Update as U;
    updates
        .iter()
        .map(|u| match u {
            U::NewMessage(u) => format!("new {}", text(&u.message)),
            U::NewChannelMessage(u) => format!("post {}", text(&u.message)),
            U::EditMessage(u) => format!("edit {}", text(&u.message)),
            U::EditChannelMessage(u) => format!("edit post {}", text(&u.message)),
            U::DeleteMessages(u) => format!("delete {:?}", u.messages),
            U::DeleteChannelMessages(u) => format!("delete posts {:?}", u.messages),
            other => format!("{other:?}"),
        })
        .collect()
}

struct World {
    dc: TestDc,
    session: Arc<MemorySession>,
    alice: Alice,
    bob: common::TestClient,
    alice_peer: tl::enums::InputPeer,
    channel: tl::types::InputPeerChannel,
    /// "live 1" as Bob numbers it, and "live post".
    live_id: i32,
    live_post_id: i32,
}

fn edit(peer: tl::enums::InputPeer, id: i32, text: &str) -> tl::functions::messages::EditMessage {
    tl::functions::messages::EditMessage {
        no_webpage: false,
        invert_media: false,
        peer,
        id,
        message: Some(text.into()),
        media: None,
        reply_markup: None,
        entities: None,
        schedule_date: None,
        schedule_repeat_period: None,
        quick_reply_shortcut_id: None,
        rich_message: None,
    }
}

/// Alice, logged in and subscribed to Bob's channel, has received one private message and one
/// post live.
async fn world() -> World {
    let dc = start().await;
    let alice_id = dc.add_user(UserSpec::new(ALICE, "Alice"));
    dc.add_user(UserSpec::new(BOB, "Bob"));

    let bob = client(&dc, 2).await;
    log_in(&dc, &bob, BOB).await;
    let created = bounded(bob.client.invoke(&tl::functions::channels::CreateChannel {
        broadcast: true,
        megagroup: false,
        for_import: false,
        forum: false,
        title: "Catch-up news".into(),
        about: String::new(),
        geo_point: None,
        address: None,
        ttl_period: None,
    }))
    .await
    .unwrap();
    let tl::enums::Updates::Updates(created) = created else {
        panic!("expected updates");
    };
    let Some(tl::enums::Chat::Channel(c)) = created.chats.into_iter().next() else {
        panic!("expected the channel");
    };
    let channel = tl::types::InputPeerChannel {
        channel_id: c.id,
        access_hash: c.access_hash.unwrap(),
    };
    let input_channel: tl::enums::InputChannel = tl::types::InputChannel {
        channel_id: c.id,
        access_hash: c.access_hash.unwrap(),
    }
    .into();
    bounded(bob.client.invoke(&tl::functions::channels::UpdateUsername {
        channel: input_channel.clone(),
        username: CHANNEL_NAME.into(),
    }))
    .await
    .unwrap();
    let tl::enums::contacts::ResolvedPeer::Peer(found) =
        bounded(bob.client.invoke(&tl::functions::contacts::ResolvePhone {
            phone: ALICE.trim_start_matches('+').into(),
        }))
        .await
        .unwrap();
    let Some(tl::enums::User::User(a)) = found.users.into_iter().next() else {
        panic!("expected Alice");
    };
    assert_eq!(a.id, alice_id);
    let alice_peer: tl::enums::InputPeer = tl::types::InputPeerUser {
        user_id: a.id,
        access_hash: a.access_hash.unwrap(),
    }
    .into();

    // Alice logs in, joins, and starts listening.
    let key = new_auth_key();
    dc.register_auth_key(key);
    let session = Arc::new(MemorySession::default());
    seed_session(&*session, &dc, 2, key).await.unwrap();
    let alice = Alice::start(&session).await;
    let token = bounded(alice.client.request_login_code(ALICE, API_HASH))
        .await
        .unwrap();
    let code = dc.last_code(ALICE).unwrap();
    bounded(alice.client.sign_in(&token, &code)).await.unwrap();
    bounded(alice.client.resolve_username(CHANNEL_NAME))
        .await
        .unwrap()
        .expect("the channel is public");
    bounded(alice.client.invoke(&tl::functions::channels::JoinChannel {
        channel: input_channel,
    }))
    .await
    .unwrap();
    // The stream was made before login: start it again from the state login saved.
    alice.stop().await;
    wait_connections(&dc, 1).await;
    let mut alice = Alice::start(&session).await;

    let live = dc.send_message(BOB, ALICE, "live 1").unwrap();
    let to_channel = format!("@{CHANNEL_NAME}");
    let live_post = dc.send_message(BOB, &to_channel, "live post").unwrap();
    let got = alice.exactly(2).await;
    assert_eq!(describe(&got), ["new live 1", "post live post"]);
    World {
        dc,
        session,
        alice,
        bob,
        alice_peer,
        channel,
        live_id: live.message_id,
        live_post_id: live_post.message_id,
    }
}

#[tokio::test]
async fn a_stopped_client_catches_up_on_everything_exactly_once() {
    let w = world().await;
    w.alice.stop().await;
    wait_connections(&w.dc, 1).await;
    assert!(
        !w.session.updates_state().await.unwrap().channels.is_empty(),
        "the saved state knows the channel"
    );

    // While Alice is stopped: more than a page of private messages, an edit and a deletion,
    // and in the channel three posts and an edit.
    let mut off = Vec::new();
    for i in 0..150 {
        off.push(w.dc.send_message(BOB, ALICE, &format!("off {i}")).unwrap());
    }
    let to_channel = format!("@{CHANNEL_NAME}");
    for i in 0..3 {
        w.dc.send_message(BOB, &to_channel, &format!("post {i}"))
            .unwrap();
    }
    let bob = &w.bob.client;
    bounded(bob.invoke(&edit(w.alice_peer.clone(), w.live_id, "live 1, edited")))
        .await
        .unwrap();
    bounded(bob.invoke(&tl::functions::messages::DeleteMessages {
        revoke: true,
        id: vec![off[120].message_id],
    }))
    .await
    .unwrap();
    bounded(bob.invoke(&edit(
        w.channel.clone().into(),
        w.live_post_id,
        "live post, edited",
    )))
    .await
    .unwrap();

    let mut alice = Alice::start(&w.session).await;
    // 149 messages (the deleted one was created and deleted while away, so only its deletion
    // comes), the edit and the deletion; 3 posts and the post's edit.
    let got = describe(&alice.exactly(149 + 2 + 3 + 1).await);
    let mut expected: Vec<String> = (0..150)
        .filter(|i| *i != 120)
        .map(|i| format!("new off {i}"))
        .collect();
    // Within a page, grammers hands out the other updates before the new messages.
    expected.insert(100, "edit live 1, edited".into());
    expected.insert(
        101,
        format!("delete {:?}", [off[120].recipient_message_id.unwrap()]),
    );
    expected.extend(["edit post live post, edited".to_owned()]);
    expected.extend((0..3).map(|i| format!("post post {i}")));
    assert_eq!(got, expected);
    alice.stop().await;
}

#[tokio::test]
async fn a_dropped_connection_catches_up_exactly_once() {
    let w = world().await;
    let mut alice = w.alice;
    assert_eq!(w.dc.faults().drop_connections(Some(ALICE)), 1);
    wait_connections(&w.dc, 1).await;

    // Nobody can push these to Alice: her client has not reconnected yet.
    for i in 0..3 {
        w.dc.send_message(BOB, ALICE, &format!("while dropped {i}"))
            .unwrap();
    }
    let to_channel = format!("@{CHANNEL_NAME}");
    w.dc.send_message(BOB, &to_channel, "post while dropped")
        .unwrap();

    // The stream notices the closed connection, reconnects and asks for what it missed.
    let got = describe(&alice.exactly(4).await);
    assert_eq!(
        got,
        [
            "new while dropped 0",
            "new while dropped 1",
            "new while dropped 2",
            "post post while dropped",
        ]
    );
    // And live again afterwards.
    w.dc.send_message(BOB, ALICE, "back").unwrap();
    assert_eq!(describe(&alice.exactly(1).await), ["new back"]);
    alice.stop().await;
}
