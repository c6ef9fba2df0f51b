//! Catch-up through the RPC handlers themselves: requests serialised as a client sends them,
//! answers decoded as a client reads them, pushes caught on a registered connection.

use std::sync::Arc;

use grammers_tl_types::{self as tl, Deserializable, RemoteCall};
use tokio::sync::mpsc;

use crate::mtp::KeyId;
use crate::rpc::control_send::send;
use crate::rpc::{dispatch, Ctx, Reply};
use crate::shared::{ConnEntry, Push, Shared};
use crate::updates::UpdateLimits;
use crate::world::{Binding, World};
use crate::{TestDcConfig, UserSpec};

const DC: i32 = 2;

struct Dc {
    shared: Arc<Shared>,
}

/// A logged-in user: its id, phone and auth key.
#[derive(Clone)]
struct Account {
    id: i64,
    phone: String,
    key: KeyId,
}

impl Dc {
    fn new() -> Self {
        let shared = Shared::new(
            TestDcConfig::default(),
            Vec::new(),
            World::new(),
            Vec::new(),
            None,
        );
        Self {
            shared: Arc::new(shared),
        }
    }

    fn account(&self, phone: &str, name: &str) -> Account {
        let mut w = self.shared.world();
        let id = w.add_user(UserSpec::new(phone, name));
        let key: KeyId = rand::random();
        w.bindings.insert((key, DC), Binding::User(id));
        Account {
            id,
            phone: phone.to_owned(),
            key,
        }
    }

    /// A live connection of `a`: what is pushed to it arrives here.
    fn connect(&self, a: &Account) -> (u64, mpsc::UnboundedReceiver<Push>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let id = self
            .shared
            .next_conn
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.shared.conns().insert(
            id,
            ConnEntry {
                dc_id: DC,
                key_id: Some(a.key),
                session_id: Some(1),
                tx,
            },
        );
        (id, rx)
    }

    fn disconnect(&self, conn: u64) {
        self.shared.conns().remove(&conn);
    }

    async fn call<R: RemoteCall>(&self, a: &Account, req: &R) -> Result<R::Return, (i32, String)> {
        let ctx = Ctx {
            shared: &self.shared,
            dc_id: DC,
            key_id: a.key,
        };
        match dispatch(&ctx, &req.to_bytes()).await {
            Reply::Result(bytes) => Ok(R::Return::from_bytes(&bytes).expect("a decodable answer")),
            Reply::Error(code, name) => Err((code, name)),
            Reply::Swallow => panic!("swallowed"),
        }
    }

    async fn state(&self, a: &Account) -> tl::types::updates::State {
        let tl::enums::updates::State::State(s) = self
            .call(a, &tl::functions::updates::GetState {})
            .await
            .unwrap();
        s
    }

    async fn difference(
        &self,
        a: &Account,
        pts: i32,
        date: i32,
    ) -> Result<tl::enums::updates::Difference, (i32, String)> {
        self.call(a, &get_difference(pts, date, None)).await
    }

    fn send(&self, from: &Account, to: &str, text: &str) -> crate::SentMessage {
        send(&self.shared, &from.phone, to, text).expect("sent")
    }

    fn input_peer(&self, of: &Account) -> tl::enums::InputPeer {
        let hash = self.shared.world().users[&of.id].access_hash;
        tl::types::InputPeerUser {
            user_id: of.id,
            access_hash: hash,
        }
        .into()
    }

    fn input_channel(&self, cid: i64) -> tl::enums::InputChannel {
        let hash = self.shared.world().channels[&cid].access_hash;
        tl::types::InputChannel {
            channel_id: cid,
            access_hash: hash,
        }
        .into()
    }

    /// A broadcast channel of `creator` with `members` in it.
    fn channel(&self, creator: &Account, members: &[&Account]) -> i64 {
        let mut w = self.shared.world();
        let cid = w.create_channel(creator.id, "News", true);
        let c = w.channels.get_mut(&cid).unwrap();
        c.members.extend(members.iter().map(|m| m.id));
        cid
    }

    fn set_limits(&self, limits: UpdateLimits) {
        limits.check().unwrap();
        self.shared.set_limits(limits);
    }

    /// Every box's log replays from its base to its pts without a gap.
    fn assert_logs_consistent(&self) {
        let w = self.shared.world();
        for u in w.users.values() {
            assert!(u.updates.consistent_with(u.pts), "user {}", u.id);
        }
        for c in w.channels.values() {
            assert!(c.updates.consistent_with(c.pts), "channel {}", c.id);
        }
    }
}

/// A channel's Bot-API chat id.
fn chat_id(cid: i64) -> String {
    (-1_000_000_000_000 - cid).to_string()
}

fn get_difference(
    pts: i32,
    date: i32,
    total: Option<i32>,
) -> tl::functions::updates::GetDifference {
    tl::functions::updates::GetDifference {
        pts,
        pts_limit: None,
        pts_total_limit: total,
        date,
        qts: 0,
        qts_limit: None,
    }
}

fn channel_difference(
    channel: tl::enums::InputChannel,
    pts: i32,
    limit: i32,
) -> tl::functions::updates::GetChannelDifference {
    tl::functions::updates::GetChannelDifference {
        force: false,
        channel,
        filter: tl::enums::ChannelMessagesFilter::Empty,
        pts,
        limit,
    }
}

fn text_of(m: &tl::enums::Message) -> &str {
    match m {
        tl::enums::Message::Message(m) => &m.message,
        other => panic!("expected a message, got {other:?}"),
    }
}

fn id_of(m: &tl::enums::Message) -> i32 {
    match m {
        tl::enums::Message::Message(m) => m.id,
        other => panic!("expected a message, got {other:?}"),
    }
}

/// (pts, pts_count) of every update with them, in order.
fn pts_of(updates: &[tl::enums::Update]) -> Vec<(i32, i32)> {
    updates
        .iter()
        .filter_map(|u| match u {
            tl::enums::Update::NewMessage(u) => Some((u.pts, u.pts_count)),
            tl::enums::Update::EditMessage(u) => Some((u.pts, u.pts_count)),
            tl::enums::Update::DeleteMessages(u) => Some((u.pts, u.pts_count)),
            tl::enums::Update::PinnedMessages(u) => Some((u.pts, u.pts_count)),
            tl::enums::Update::NewChannelMessage(u) => Some((u.pts, u.pts_count)),
            tl::enums::Update::EditChannelMessage(u) => Some((u.pts, u.pts_count)),
            tl::enums::Update::DeleteChannelMessages(u) => Some((u.pts, u.pts_count)),
            _ => None,
        })
        .collect()
}

/// What was pushed so far, as (pts, pts_count) of each update.
fn drain_pushes(rx: &mut mpsc::UnboundedReceiver<Push>) -> Vec<(i32, i32)> {
    let mut out = Vec::new();
    while let Ok(push) = rx.try_recv() {
        let Push::Updates(bytes) = push else { continue };
        match tl::enums::Updates::from_bytes(&bytes).expect("pushed updates decode") {
            tl::enums::Updates::UpdateShortMessage(m) => out.push((m.pts, m.pts_count)),
            tl::enums::Updates::Updates(u) => out.extend(pts_of(&u.updates)),
            other => panic!("unexpected push {other:?}"),
        }
    }
    out
}

fn full(d: tl::enums::updates::Difference) -> tl::types::updates::Difference {
    match d {
        tl::enums::updates::Difference::Difference(d) => d,
        other => panic!("expected a full difference, got {other:?}"),
    }
}

fn state_pts(s: &tl::enums::updates::State) -> i32 {
    let tl::enums::updates::State::State(s) = s;
    s.pts
}

#[tokio::test]
async fn an_account_that_is_up_to_date_gets_an_empty_difference() {
    let dc = Dc::new();
    let alice = dc.account("+15550100001", "Alice");
    let s = dc.state(&alice).await;
    assert_eq!((s.qts, s.seq), (0, 0));
    let d = dc.difference(&alice, s.pts, s.date).await.unwrap();
    assert!(
        matches!(d, tl::enums::updates::Difference::Empty(_)),
        "{d:?}"
    );
}

#[tokio::test]
async fn missed_messages_come_back_exactly_once_with_their_sender() {
    let dc = Dc::new();
    let alice = dc.account("+15550100002", "Alice");
    let bob = dc.account("+15550100003", "Bob");
    let before = dc.state(&alice).await;
    for i in 0..5 {
        dc.send(&bob, "+15550100002", &format!("m{i}"));
    }
    let d = full(
        dc.difference(&alice, before.pts, before.date)
            .await
            .unwrap(),
    );
    let texts: Vec<&str> = d.new_messages.iter().map(text_of).collect();
    assert_eq!(texts, ["m0", "m1", "m2", "m3", "m4"]);
    assert_eq!(state_pts(&d.state), before.pts + 5);
    assert!(d
        .users
        .iter()
        .any(|u| matches!(u, tl::enums::User::User(u) if u.id == bob.id)));
    // From the new state there is nothing more.
    let again = dc
        .difference(&alice, before.pts + 5, before.date)
        .await
        .unwrap();
    assert!(matches!(again, tl::enums::updates::Difference::Empty(_)));
    dc.assert_logs_consistent();
}

#[tokio::test]
async fn more_than_a_page_comes_in_slices_that_add_up() {
    let dc = Dc::new();
    dc.set_limits(UpdateLimits {
        difference_page: 2,
        ..Default::default()
    });
    let alice = dc.account("+15550100004", "Alice");
    let bob = dc.account("+15550100005", "Bob");
    let before = dc.state(&alice).await;
    for i in 0..5 {
        dc.send(&bob, "+15550100004", &format!("m{i}"));
    }
    let mut pts = before.pts;
    let mut texts = Vec::new();
    let mut pages = 0;
    loop {
        pages += 1;
        match dc.difference(&alice, pts, before.date).await.unwrap() {
            tl::enums::updates::Difference::Slice(s) => {
                assert_eq!(s.new_messages.len(), 2);
                texts.extend(s.new_messages.iter().map(|m| text_of(m).to_owned()));
                let next = state_pts(&s.intermediate_state);
                assert_eq!(next, pts + 2);
                pts = next;
            }
            tl::enums::updates::Difference::Difference(d) => {
                texts.extend(d.new_messages.iter().map(|m| text_of(m).to_owned()));
                pts = state_pts(&d.state);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(texts, ["m0", "m1", "m2", "m3", "m4"]);
    assert_eq!(pts, before.pts + 5);
}

#[tokio::test]
async fn a_gap_past_the_threshold_is_too_long() {
    let dc = Dc::new();
    let alice = dc.account("+15550100006", "Alice");
    let bob = dc.account("+15550100007", "Bob");
    let before = dc.state(&alice).await;
    for i in 0..5 {
        dc.send(&bob, "+15550100006", &format!("m{i}"));
    }
    // The client's own pts_total_limit.
    let d = dc
        .call(&alice, &get_difference(before.pts, before.date, Some(3)))
        .await
        .unwrap();
    let tl::enums::updates::Difference::TooLong(t) = d else {
        panic!("expected too long, got {d:?}");
    };
    assert_eq!(t.pts, before.pts + 5);
    // The knob.
    dc.set_limits(UpdateLimits {
        difference_too_long: 4,
        ..Default::default()
    });
    let d = dc
        .difference(&alice, before.pts, before.date)
        .await
        .unwrap();
    assert!(matches!(d, tl::enums::updates::Difference::TooLong(_)));
    // Within it, the difference itself.
    let d = dc
        .difference(&alice, before.pts + 1, before.date)
        .await
        .unwrap();
    assert_eq!(full(d).new_messages.len(), 4);
}

#[tokio::test]
async fn a_pts_the_dc_never_gave_is_refused() {
    let dc = Dc::new();
    let alice = dc.account("+15550100008", "Alice");
    let s = dc.state(&alice).await;
    let e = dc.difference(&alice, s.pts + 10, s.date).await.unwrap_err();
    assert_eq!(e, (400, "PERSISTENT_TIMESTAMP_INVALID".into()));
    let e = dc.difference(&alice, 0, s.date).await.unwrap_err();
    assert_eq!(e.1, "PERSISTENT_TIMESTAMP_EMPTY");
}

#[tokio::test]
async fn edits_and_deletions_are_replayed_in_order_with_their_pushed_pts() {
    let dc = Dc::new();
    let alice = dc.account("+15550100009", "Alice");
    let bob = dc.account("+15550100010", "Bob");
    let (_conn, mut pushed) = dc.connect(&alice);
    let start = dc.state(&alice).await;
    let sent: Vec<_> = (0..3)
        .map(|i| dc.send(&bob, "+15550100009", &format!("m{i}")))
        .collect();
    let seen = dc.state(&alice).await;
    let edit = tl::functions::messages::EditMessage {
        no_webpage: false,
        invert_media: false,
        peer: dc.input_peer(&alice),
        id: sent[0].message_id,
        message: Some("m0, edited".into()),
        media: None,
        reply_markup: None,
        entities: None,
        schedule_date: None,
        schedule_repeat_period: None,
        quick_reply_shortcut_id: None,
        rich_message: None,
    };
    dc.call(&bob, &edit).await.unwrap();
    let delete = tl::functions::messages::DeleteMessages {
        revoke: true,
        id: vec![sent[1].message_id],
    };
    dc.call(&bob, &delete).await.unwrap();

    // From after the messages: the edit, then the deletion, numbered as they were pushed.
    let d = full(dc.difference(&alice, seen.pts, seen.date).await.unwrap());
    assert!(d.new_messages.is_empty());
    assert_eq!(
        pts_of(&d.other_updates),
        [(seen.pts + 1, 1), (seen.pts + 2, 1)]
    );
    let their = |i: usize| sent[i].recipient_message_id.unwrap();
    match &d.other_updates[..] {
        [tl::enums::Update::EditMessage(e), tl::enums::Update::DeleteMessages(del)] => {
            assert_eq!(id_of(&e.message), their(0));
            assert_eq!(text_of(&e.message), "m0, edited");
            assert_eq!(del.messages, [their(1)]);
        }
        other => panic!("unexpected {other:?}"),
    }
    // Every push carried the pts the log replays: a gap-free run from the start.
    let pushes = drain_pushes(&mut pushed);
    let expected: Vec<(i32, i32)> = (1..=5).map(|i| (start.pts + i, 1)).collect();
    assert_eq!(pushes, expected);

    // From before the messages: the state, not every step of it: m0 as edited, no m1 (its
    // deletion is still told), m2.
    let d = full(dc.difference(&alice, start.pts, start.date).await.unwrap());
    let texts: Vec<&str> = d.new_messages.iter().map(text_of).collect();
    assert_eq!(texts, ["m0, edited", "m2"]);
    assert_eq!(pts_of(&d.other_updates), [(start.pts + 5, 1)]);
    assert_eq!(state_pts(&d.state), start.pts + 5);
    dc.assert_logs_consistent();
}

#[tokio::test]
async fn a_deletion_of_several_messages_counts_each() {
    let dc = Dc::new();
    let alice = dc.account("+15550100011", "Alice");
    let bob = dc.account("+15550100012", "Bob");
    let ids: Vec<i32> = (0..3)
        .map(|i| dc.send(&alice, "+15550100012", &format!("m{i}")).message_id)
        .collect();
    let seen = dc.state(&alice).await;
    // One id that is not there is skipped, as Telegram skips it.
    let mut gone = ids.clone();
    gone.push(9_999);
    let tl::enums::messages::AffectedMessages::Messages(a) = dc
        .call(
            &alice,
            &tl::functions::messages::DeleteMessages {
                revoke: true,
                id: gone,
            },
        )
        .await
        .unwrap();
    assert_eq!((a.pts, a.pts_count), (seen.pts + 3, 3));
    let d = full(dc.difference(&alice, seen.pts, seen.date).await.unwrap());
    assert_eq!(pts_of(&d.other_updates), [(seen.pts + 3, 3)]);
    // Bob lost his copies too, in his own numbering.
    let bob_state = dc.state(&bob).await;
    let d = full(dc.difference(&bob, bob_state.pts - 3, 1).await.unwrap());
    assert_eq!(pts_of(&d.other_updates), [(bob_state.pts, 3)]);
    dc.assert_logs_consistent();
}

#[tokio::test]
async fn a_channel_difference_pages_by_the_clients_limit() {
    let dc = Dc::new();
    let alice = dc.account("+15550100013", "Alice");
    let bob = dc.account("+15550100014", "Bob");
    let cid = dc.channel(&bob, &[&alice]);
    let to = chat_id(cid);
    for i in 0..5 {
        dc.send(&bob, &to, &format!("p{i}"));
    }
    let channel = dc.input_channel(cid);
    let mut pts = 1;
    let mut texts = Vec::new();
    let mut finals = Vec::new();
    loop {
        let d = dc
            .call(&alice, &channel_difference(channel.clone(), pts, 2))
            .await
            .unwrap();
        match d {
            tl::enums::updates::ChannelDifference::Difference(d) => {
                texts.extend(d.new_messages.iter().map(|m| text_of(m).to_owned()));
                assert!(d.new_messages.len() <= 2);
                assert!(d.pts > pts);
                pts = d.pts;
                finals.push(d.r#final);
                if d.r#final {
                    break;
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(texts, ["p0", "p1", "p2", "p3", "p4"]);
    assert_eq!(finals, [false, false, true]);
    assert_eq!(pts, 6);
    let d = dc
        .call(&alice, &channel_difference(channel.clone(), pts, 2))
        .await
        .unwrap();
    let tl::enums::updates::ChannelDifference::Empty(e) = d else {
        panic!("expected empty, got {d:?}");
    };
    assert!(e.r#final);
    assert_eq!(e.pts, 6);
}

#[tokio::test]
async fn a_channels_edits_and_deletions_end_on_an_empty_final_page() {
    let dc = Dc::new();
    let alice = dc.account("+15550100015", "Alice");
    let bob = dc.account("+15550100016", "Bob");
    let cid = dc.channel(&bob, &[&alice]);
    let to = chat_id(cid);
    let ids: Vec<i32> = (0..3)
        .map(|i| dc.send(&bob, &to, &format!("p{i}")).message_id)
        .collect();
    let (_conn, mut pushed) = dc.connect(&alice);
    let channel = dc.input_channel(cid);
    let peer = tl::types::InputPeerChannel {
        channel_id: cid,
        access_hash: dc.shared.world().channels[&cid].access_hash,
    };
    let edit = tl::functions::messages::EditMessage {
        no_webpage: false,
        invert_media: false,
        peer: peer.into(),
        id: ids[0],
        message: Some("p0, edited".into()),
        media: None,
        reply_markup: None,
        entities: None,
        schedule_date: None,
        schedule_repeat_period: None,
        quick_reply_shortcut_id: None,
        rich_message: None,
    };
    dc.call(&bob, &edit).await.unwrap();
    dc.call(
        &bob,
        &tl::functions::channels::DeleteMessages {
            channel: channel.clone(),
            id: vec![ids[1], ids[2]],
        },
    )
    .await
    .unwrap();
    // Alice was connected: she heard both, with the channel's pts.
    assert_eq!(drain_pushes(&mut pushed), [(5, 1), (7, 2)]);

    let d = dc
        .call(&alice, &channel_difference(channel.clone(), 4, 100))
        .await
        .unwrap();
    let tl::enums::updates::ChannelDifference::Difference(d) = d else {
        panic!("expected a difference, got {d:?}");
    };
    assert!(!d.r#final, "a page with other updates is not final");
    assert_eq!(d.pts, 7);
    assert_eq!(pts_of(&d.other_updates), [(5, 1), (7, 2)]);
    let d = dc
        .call(&alice, &channel_difference(channel.clone(), 7, 100))
        .await
        .unwrap();
    assert!(matches!(
        d,
        tl::enums::updates::ChannelDifference::Empty(tl::types::updates::ChannelDifferenceEmpty {
            r#final: true,
            pts: 7,
            ..
        })
    ));
    // From the start: p0 as edited, and the deletion (p1 and p2 are not delivered).
    let d = dc
        .call(&alice, &channel_difference(channel, 1, 100))
        .await
        .unwrap();
    let tl::enums::updates::ChannelDifference::Difference(d) = d else {
        panic!("expected a difference, got {d:?}");
    };
    let texts: Vec<&str> = d.new_messages.iter().map(text_of).collect();
    assert_eq!(texts, ["p0, edited"]);
    assert_eq!(pts_of(&d.other_updates), [(7, 2)]);
    dc.assert_logs_consistent();
}

#[tokio::test]
async fn a_channel_gap_past_the_threshold_is_too_long_with_the_dialog() {
    let dc = Dc::new();
    dc.set_limits(UpdateLimits {
        channel_difference_too_long: 2,
        ..Default::default()
    });
    let alice = dc.account("+15550100017", "Alice");
    let bob = dc.account("+15550100018", "Bob");
    let cid = dc.channel(&bob, &[&alice]);
    let to = chat_id(cid);
    for i in 0..4 {
        dc.send(&bob, &to, &format!("p{i}"));
    }
    let d = dc
        .call(&alice, &channel_difference(dc.input_channel(cid), 1, 100))
        .await
        .unwrap();
    let tl::enums::updates::ChannelDifference::TooLong(t) = d else {
        panic!("expected too long, got {d:?}");
    };
    let tl::enums::Dialog::Dialog(dialog) = t.dialog else {
        panic!("expected a dialog");
    };
    assert_eq!(dialog.pts, Some(5));
    assert_eq!(t.messages.len(), 4);
    assert_eq!(text_of(&t.messages[0]), "p3");
    // Within the threshold, the difference itself.
    let d = dc
        .call(&alice, &channel_difference(dc.input_channel(cid), 3, 100))
        .await
        .unwrap();
    assert!(matches!(
        d,
        tl::enums::updates::ChannelDifference::Difference(_)
    ));
}

#[tokio::test]
async fn a_channel_difference_is_for_members_of_a_channel_that_exists() {
    let dc = Dc::new();
    let bob = dc.account("+15550100019", "Bob");
    let carol = dc.account("+15550100020", "Carol");
    let cid = dc.channel(&bob, &[]);
    let e = dc
        .call(&carol, &channel_difference(dc.input_channel(cid), 1, 10))
        .await
        .unwrap_err();
    assert_eq!(e, (400, "CHANNEL_PRIVATE".into()));
    let wrong_hash = tl::types::InputChannel {
        channel_id: cid,
        access_hash: 1,
    };
    let e = dc
        .call(&bob, &channel_difference(wrong_hash.into(), 1, 10))
        .await
        .unwrap_err();
    assert_eq!(e.1, "CHANNEL_INVALID");
    let e = dc
        .call(&bob, &channel_difference(dc.input_channel(cid), 9, 10))
        .await
        .unwrap_err();
    assert_eq!(e.1, "PERSISTENT_TIMESTAMP_INVALID");
}

#[tokio::test]
async fn get_difference_names_channels_that_moved_from_where_the_client_was_told() {
    let dc = Dc::new();
    let alice = dc.account("+15550100021", "Alice");
    let bob = dc.account("+15550100022", "Bob");
    let cid = dc.channel(&bob, &[&alice]);
    let to = chat_id(cid);
    let (conn, mut pushed) = dc.connect(&alice);
    dc.send(&bob, &to, "heard");
    dc.send(&bob, &to, "heard too");
    assert_eq!(drain_pushes(&mut pushed), [(2, 1), (3, 1)]);
    let seen = dc.state(&alice).await;
    // The connection drops; two more posts nobody pushes to her.
    dc.disconnect(conn);
    dc.send(&bob, &to, "missed");
    dc.send(&bob, &to, "missed too");
    let d = full(dc.difference(&alice, seen.pts, seen.date).await.unwrap());
    assert!(d.new_messages.is_empty());
    match &d.other_updates[..] {
        [tl::enums::Update::ChannelTooLong(t)] => {
            assert_eq!((t.channel_id, t.pts), (cid, Some(3)));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(d
        .chats
        .iter()
        .any(|c| matches!(c, tl::enums::Chat::Channel(c) if c.id == cid)));
    // The channel difference from there is what she missed, and then she is told of it.
    let c = dc
        .call(&alice, &channel_difference(dc.input_channel(cid), 3, 100))
        .await
        .unwrap();
    let tl::enums::updates::ChannelDifference::Difference(c) = c else {
        panic!("expected a difference, got {c:?}");
    };
    let texts: Vec<&str> = c.new_messages.iter().map(text_of).collect();
    assert_eq!(texts, ["missed", "missed too"]);
    assert!(c.r#final);
    // Her client's state is now the difference's.
    let tl::enums::updates::State::State(now) = d.state;
    let d = dc.difference(&alice, now.pts, now.date).await.unwrap();
    assert!(
        matches!(d, tl::enums::updates::Difference::Empty(_)),
        "{d:?}"
    );
}

#[tokio::test]
async fn a_channel_never_heard_of_resumes_from_the_clients_date() {
    let dc = Dc::new();
    let alice = dc.account("+15550100023", "Alice");
    let bob = dc.account("+15550100024", "Bob");
    let cid = dc.channel(&bob, &[&alice]);
    let to = chat_id(cid);
    let seen = dc.state(&alice).await;
    dc.send(&bob, &to, "while away");
    let d = full(dc.difference(&alice, seen.pts, seen.date).await.unwrap());
    match &d.other_updates[..] {
        [tl::enums::Update::ChannelTooLong(t)] => assert_eq!(t.pts, Some(1)),
        other => panic!("unexpected {other:?}"),
    }
    // A state dated after the post: it is history, not a missed update.
    let d = dc
        .difference(&alice, seen.pts, seen.date + 5)
        .await
        .unwrap();
    assert!(
        matches!(d, tl::enums::updates::Difference::Empty(_)),
        "{d:?}"
    );
}

#[tokio::test]
async fn a_posts_own_author_is_not_told_it_missed_it() {
    let dc = Dc::new();
    let bob = dc.account("+15550100025", "Bob");
    let cid = dc.channel(&bob, &[]);
    let seen = dc.state(&bob).await;
    let peer = tl::types::InputPeerChannel {
        channel_id: cid,
        access_hash: dc.shared.world().channels[&cid].access_hash,
    };
    let send = tl::functions::messages::SendMessage {
        no_webpage: true,
        silent: false,
        background: false,
        clear_draft: false,
        noforwards: false,
        update_stickersets_order: false,
        invert_media: false,
        allow_paid_floodskip: false,
        peer: peer.into(),
        reply_to: None,
        message: "mine".into(),
        random_id: 5,
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
    };
    dc.call(&bob, &send).await.unwrap();
    let d = dc.difference(&bob, seen.pts, seen.date).await.unwrap();
    assert!(
        matches!(d, tl::enums::updates::Difference::Empty(_)),
        "{d:?}"
    );
}

#[tokio::test]
async fn outside_sends_reach_recipients_and_refuse_what_telegram_refuses() {
    let dc = Dc::new();
    let alice = dc.account("+15550100026", "Alice");
    let (_conn, mut pushed) = dc.connect(&alice);
    // A new phone becomes a user on first use.
    let sent = send(&dc.shared, "+15550100099", "+15550100026", "hello").unwrap();
    let s = dc.state(&alice).await;
    assert_eq!(sent.recipient_pts, Some(s.pts));
    let pushes = drain_pushes(&mut pushed);
    assert_eq!(pushes, [(s.pts, 1)]);
    let stranger = dc
        .shared
        .world()
        .user_by_phone("+15550100099")
        .map(|u| u.id)
        .expect("created");
    // By id and by username too.
    dc.shared
        .world()
        .set_username(crate::PeerRef::User(alice.id), "alice");
    send(&dc.shared, "+15550100099", &alice.id.to_string(), "by id").unwrap();
    send(&dc.shared, "+15550100099", "@Alice", "by name").unwrap();

    let e = send(&dc.shared, "+15550100099", "+19999999999", "x").unwrap_err();
    assert_eq!(e.status, 404);
    let e = send(&dc.shared, "+15550100099", "-1001234", "x").unwrap_err();
    assert_eq!(e.status, 404);
    let e = send(&dc.shared, "+15550100099", "+15550100026", "  ").unwrap_err();
    assert_eq!((e.status, e.code.as_str()), (400, "MESSAGE_EMPTY"));
    let e = send(&dc.shared, "12", "+15550100026", "x").unwrap_err();
    assert_eq!(e.status, 400);

    // Only who may post writes into a broadcast channel.
    let cid = dc.channel(&alice, &[]);
    let to = chat_id(cid);
    let e = send(&dc.shared, "+15550100099", &to, "x").unwrap_err();
    assert_eq!((e.status, e.code.as_str()), (403, "CHAT_WRITE_FORBIDDEN"));
    dc.shared
        .world()
        .channels
        .get_mut(&cid)
        .unwrap()
        .members
        .push(stranger);
    let e = send(&dc.shared, "+15550100099", &to, "x").unwrap_err();
    assert_eq!((e.status, e.code.as_str()), (403, "CHAT_WRITE_FORBIDDEN"));
    let posted = send(&dc.shared, &alice.phone, &to, "news").unwrap();
    assert_eq!((posted.channel_id, posted.pts), (Some(cid), 2));
    dc.assert_logs_consistent();
}
