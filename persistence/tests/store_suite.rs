//! One suite, run against SQLite (always) and PostgreSQL (skipped with a notice when unreachable,
//! failing when `TGFLEET_REQUIRE_SERVICES=1`). Each test gets a fresh, migrated database.

use chrono::{Duration, Utc};
use serde_json::json;
use tgfleet_persistence::testing::TestDb;
use tgfleet_persistence::*;

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let db = super::TestDb::sqlite().await.expect("creating SQLite test database");
                    super::$name(&*db.store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(db) = super::TestDb::postgres().await else { return };
                    super::$name(&*db.store).await;
                }
            )*
        }
    };
}

suite!(
    ping_and_backend,
    duplicate_email_conflicts_case_insensitively,
    missing_rows_are_not_found,
    users_update_list_and_count,
    refresh_token_revocation,
    access_token_revocation_and_purge,
    revoked_families_reach_access_tokens_and_are_purged,
    account_update_sets_and_clears_fields,
    accounts_page_and_filter_by_owner_and_state,
    one_live_account_per_phone,
    sessions_roundtrip_and_overwrite,
    delete_account_cascades_session,
    logs_filter_page_newest_first,
    error_stats_count_codes_and_accounts,
    old_log_rows_are_purged,
    session_fingerprints_claim_once_and_go_with_the_account,
    sends_by_key_keep_the_newest_and_go_with_the_account,
    an_import_lands_whole_or_not_at_all,
    proxies_bind_accounts_and_are_not_deleted_under_them,
    media_dedupes_per_owner_pages_and_takes_its_telegram_files_along,
    posts_are_claimed_when_due_and_follow_their_deliveries,
    deliveries_finishing_at_once_still_finish_their_post,
    events_append_once_filter_and_purge,
    an_event_cursor_is_kept_per_reader,
    concurrent_appends_are_read_in_full_after_any_id,
    account_state_changes_and_flood_waits_are_events,
    a_finished_post_is_an_event_of_each_delivery_and_of_the_post,
    webhook_queues_keep_order_per_account_and_log_every_attempt,
    an_attempt_recorded_and_its_queues_next_head_claimed_are_one_transaction,
    a_webhook_replays_disables_with_an_event_and_rotates,
    device_identities_are_drawn_per_account_kept_and_changed_whole,
    an_imported_app_is_kept_sealed_beside_its_account,
);

async fn posts_are_claimed_when_due_and_follow_their_deliveries(store: &dyn Store) {
    let owner = user(store, "poster@posts.test").await;
    let t0 = chrono::DateTime::from_timestamp(1_900_000_000, 0).unwrap();
    let post = |id: &str, at| Post {
        id: id.into(),
        owner_id: owner.id,
        state: PostState::Scheduled,
        text: "hello".into(),
        parse_mode: Some("html".into()),
        media: vec!["m1".into()],
        silent: false,
        link_preview: true,
        publish_at: at,
        created_at: t0,
        updated_at: t0,
    };
    let delivery = |post_id: &str, idx, at| Delivery {
        post_id: post_id.into(),
        idx,
        account_id: 40 + i64::from(idx),
        chat: "@chan".into(),
        state: DeliveryState::Pending,
        random_id: -77 - i64::from(idx),
        attempts: 0,
        next_attempt_at: at,
        message_ids: Vec::new(),
        error_code: None,
        error_message: None,
        updated_at: t0,
    };
    let later = t0 + Duration::hours(1);
    store
        .create_post(
            post("p1", t0),
            vec![delivery("p1", 0, t0), delivery("p1", 1, t0)],
        )
        .await
        .unwrap();
    store
        .create_post(post("p2", later), vec![delivery("p2", 0, later)])
        .await
        .unwrap();
    let (p1, d1) = store.post("p1").await.unwrap();
    assert_eq!(p1, post("p1", t0));
    assert_eq!(d1, vec![delivery("p1", 0, t0), delivery("p1", 1, t0)]);

    let due = store.due_deliveries(t0, 10, &[]).await.unwrap();
    assert_eq!(
        due.iter()
            .map(|d| (d.post_id.as_str(), d.idx))
            .collect::<Vec<_>>(),
        [("p1", 0), ("p1", 1)]
    );
    // Not due yet (p2 publishes later): not claimed.
    assert!(store.start_delivery("p2", 0, t0).await.unwrap().is_none());
    let (started, claimed_post) = store.start_delivery("p1", 0, t0).await.unwrap().unwrap();
    assert_eq!(claimed_post.state, PostState::Publishing);
    assert_eq!(claimed_post.text, "hello");
    assert_eq!(
        (started.state, started.attempts, started.random_id),
        (DeliveryState::Sending, 1, -77)
    );
    assert_eq!(
        store.post("p1").await.unwrap().0.state,
        PostState::Publishing
    );
    // A delivery left `sending` (a crash) is due again, with its random_id.
    assert_eq!(store.due_deliveries(t0, 10, &[]).await.unwrap().len(), 2);
    // An account at work is left out.
    let others = store.due_deliveries(t0, 10, &[40]).await.unwrap();
    assert_eq!(
        others.iter().map(|d| d.account_id).collect::<Vec<_>>(),
        [41]
    );
    let sent = DeliveryOutcome {
        state: DeliveryState::Sent,
        next_attempt_at: t0,
        message_ids: vec![5, 6],
        error_code: None,
        error_message: None,
    };
    assert_eq!(
        store.finish_delivery("p1", 0, sent).await.unwrap(),
        PostState::Publishing
    );
    let failed = DeliveryOutcome {
        state: DeliveryState::Failed,
        next_attempt_at: t0,
        message_ids: Vec::new(),
        error_code: Some("CHAT_WRITE_FORBIDDEN".into()),
        error_message: Some("no".into()),
    };
    store.start_delivery("p1", 1, t0).await.unwrap().unwrap();
    assert_eq!(
        store.finish_delivery("p1", 1, failed).await.unwrap(),
        PostState::PartiallyFailed
    );
    let (p1, d1) = store.post("p1").await.unwrap();
    assert_eq!(p1.state, PostState::PartiallyFailed);
    assert_eq!(d1[0].message_ids, [5, 6]);
    assert_eq!(d1[1].error_code.as_deref(), Some("CHAT_WRITE_FORBIDDEN"));
    assert!(store
        .due_deliveries(later, 10, &[])
        .await
        .unwrap()
        .iter()
        .all(|d| d.post_id == "p2"));

    // Only a scheduled post changes; rescheduling moves its pending deliveries.
    assert!(store
        .edit_post(
            "p1",
            PostEdit {
                text: Some("x".into()),
                ..Default::default()
            }
        )
        .await
        .unwrap()
        .is_none());
    let even_later = later + Duration::hours(1);
    let edited = store
        .edit_post(
            "p2",
            PostEdit {
                text: Some("bye".into()),
                parse_mode: Some(None),
                publish_at: Some(even_later),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            edited.text.as_str(),
            edited.parse_mode.as_deref(),
            edited.publish_at
        ),
        ("bye", None, even_later)
    );
    assert_eq!(edited.media, ["m1"]);
    assert!(store
        .due_deliveries(later, 10, &[])
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.deliveries("p2").await.unwrap()[0].next_attempt_at,
        even_later
    );
    assert!(store.cancel_post("p2").await.unwrap());
    assert!(!store.cancel_post("p2").await.unwrap());
    // A delivery the scheduler read before the cancel is not claimed after it.
    assert!(store
        .start_delivery("p2", 0, even_later)
        .await
        .unwrap()
        .is_none());
    assert!(
        store
            .due_deliveries(even_later, 10, &[])
            .await
            .unwrap()
            .is_empty(),
        "a cancelled post is not delivered"
    );

    let all = store
        .list_posts(PostFilter {
            owner_id: Some(owner.id),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        ["p2", "p1"]
    );
    let cancelled = store
        .list_posts(PostFilter {
            state: Some(PostState::Cancelled),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(cancelled.len(), 1);
    assert!(matches!(
        store.post("nope").await,
        Err(StoreError::NotFound)
    ));
}

/// The last two deliveries of a post, on two accounts, finishing at the same moment: each
/// counts the other's outcome, so the post ends `published` instead of staying `publishing`.
async fn deliveries_finishing_at_once_still_finish_their_post(store: &dyn Store) {
    let owner = user(store, "race@posts.test").await;
    let t0 = Utc::now() - Duration::minutes(1);
    for round in 0..10 {
        let id = format!("race{round}");
        let post = Post {
            id: id.clone(),
            owner_id: owner.id,
            state: PostState::Scheduled,
            text: "hi".into(),
            parse_mode: None,
            media: Vec::new(),
            silent: false,
            link_preview: true,
            publish_at: t0,
            created_at: t0,
            updated_at: t0,
        };
        let deliveries = (0..2)
            .map(|idx| Delivery {
                post_id: id.clone(),
                idx,
                account_id: 70 + i64::from(idx),
                chat: "@chan".into(),
                state: DeliveryState::Pending,
                random_id: 1000 * i64::from(round) + i64::from(idx),
                attempts: 0,
                next_attempt_at: t0,
                message_ids: Vec::new(),
                error_code: None,
                error_message: None,
                updated_at: t0,
            })
            .collect();
        store.create_post(post, deliveries).await.unwrap();
        for idx in 0..2 {
            store
                .start_delivery(&id, idx, Utc::now())
                .await
                .unwrap()
                .unwrap();
        }
        let sent = |n: i32| DeliveryOutcome {
            state: DeliveryState::Sent,
            next_attempt_at: t0,
            message_ids: vec![n],
            error_code: None,
            error_message: None,
        };
        let (a, b) = tokio::join!(
            store.finish_delivery(&id, 0, sent(1)),
            store.finish_delivery(&id, 1, sent(2))
        );
        let states = [a.unwrap(), b.unwrap()];
        assert!(states.contains(&PostState::Published), "{states:?}");
        assert_eq!(store.post(&id).await.unwrap().0.state, PostState::Published);
    }
}

fn media_item(owner: UserId, sha: &str) -> Media {
    Media {
        id: uuid::Uuid::now_v7().to_string(),
        owner_id: owner,
        sha256: sha.into(),
        size: 1234,
        mime: "image/png".into(),
        kind: MediaKind::Photo,
        file_name: "cat.png".into(),
        storage_key: format!("{owner}/{sha}"),
        created_at: chrono::DateTime::from_timestamp(1_800_000_000, 123_000).unwrap(),
    }
}

async fn media_dedupes_per_owner_pages_and_takes_its_telegram_files_along(store: &dyn Store) {
    let alice = user(store, "alice@media.test").await;
    let bob = user(store, "bob@media.test").await;
    let first = media_item(alice.id, "aa");
    let (stored, created) = store.insert_media(first.clone()).await.unwrap();
    assert!(created);
    assert_eq!(stored, first);
    assert_eq!(store.media(&first.id).await.unwrap(), first);
    // The same bytes again for the same owner: nothing new, the first item back.
    let (again, created) = store
        .insert_media(media_item(alice.id, "aa"))
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again, first);
    // Another owner's copy is its own.
    let (bobs, created) = store.insert_media(media_item(bob.id, "aa")).await.unwrap();
    assert!(created);
    assert_ne!(bobs.id, first.id);
    let second = store
        .insert_media(media_item(alice.id, "bb"))
        .await
        .unwrap()
        .0;

    let page = |owner, before, limit| MediaFilter {
        owner_id: owner,
        before_id: before,
        limit,
    };
    let alices = store
        .list_media(page(Some(alice.id), None, 0))
        .await
        .unwrap();
    assert_eq!(
        alices.iter().map(|m| &m.id).collect::<Vec<_>>(),
        [&second.id, &first.id],
        "newest first"
    );
    let older = store
        .list_media(page(Some(alice.id), Some(second.id.clone()), 1))
        .await
        .unwrap();
    assert_eq!(older, std::slice::from_ref(&first));
    assert_eq!(
        store.list_media(page(None, None, 0)).await.unwrap().len(),
        3
    );

    let acc = account(store, alice.id, None).await;
    assert_eq!(store.telegram_file(acc.id, &first.id).await.unwrap(), None);
    store
        .put_telegram_file(acc.id, &first.id, "{\"v\":1}")
        .await
        .unwrap();
    store
        .put_telegram_file(acc.id, &first.id, "{\"v\":2}")
        .await
        .unwrap();
    assert_eq!(
        store
            .telegram_file(acc.id, &first.id)
            .await
            .unwrap()
            .as_deref(),
        Some("{\"v\":2}")
    );
    store
        .put_telegram_file(acc.id, &second.id, "{}")
        .await
        .unwrap();
    // An account's Telegram files go with the account, an item's with the item.
    assert_eq!(store.delete_media(&first.id).await.unwrap(), first);
    assert!(matches!(
        store.media(&first.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete_media(&first.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.telegram_file(acc.id, &first.id).await.unwrap(), None);
    store.delete_account(acc.id).await.unwrap();
    assert_eq!(store.telegram_file(acc.id, &second.id).await.unwrap(), None);
}

async fn user(store: &dyn Store, email: &str) -> User {
    store
        .create_user(NewUser {
            email: email.into(),
            username: None,
            password_hash: "$argon2id$fake".into(),
            role: Role::User,
        })
        .await
        .expect("creating user")
}

async fn account(store: &dyn Store, owner: UserId, phone: Option<&str>) -> Account {
    store
        .create_account(NewAccount {
            owner_id: owner,
            label: Some("test".into()),
            kind: AccountKind::User,
            phone: phone.map(|p| p.parse().expect("a test phone is E.164")),
        })
        .await
        .expect("creating account")
}

fn log(
    level: LogLevel,
    event: &str,
    account: Option<AccountId>,
    code: Option<&str>,
) -> NewLogEntry {
    NewLogEntry {
        level,
        event: event.into(),
        account_id: account,
        user_id: None,
        error_code: code.map(Into::into),
        message: format!("{event} happened"),
        details: json!({"k": 1}),
    }
}

async fn ping_and_backend(store: &dyn Store) {
    store.ping().await.unwrap();
    assert!(["sqlite", "postgres"].contains(&store.backend()));
}

async fn duplicate_email_conflicts_case_insensitively(store: &dyn Store) {
    let u = user(store, "Alice@Example.com").await;
    assert_eq!(u.email, "Alice@Example.com");
    assert_eq!(u.role, Role::User);
    assert!(!u.disabled);
    let again = store
        .create_user(NewUser {
            email: "alice@example.COM".into(),
            username: Some("other".into()),
            password_hash: "x".into(),
            role: Role::Admin,
        })
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let found = store.user_by_email("ALICE@example.com").await.unwrap();
    assert_eq!(found, u);
    assert_eq!(store.user_by_id(u.id).await.unwrap(), u);
}

async fn missing_rows_are_not_found(store: &dyn Store) {
    let nf = |r: Result<(), StoreError>| assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    nf(store.user_by_id(4242).await.map(drop));
    nf(store.user_by_email("nobody@x").await.map(drop));
    nf(store
        .update_user(4242, UserPatch::default())
        .await
        .map(drop));
    nf(store.refresh_token("nope").await.map(drop));
    nf(store.revoke_refresh_token("nope").await.map(drop));
    nf(store.account(4242).await.map(drop));
    nf(store
        .update_account(4242, AccountUpdate::default())
        .await
        .map(drop));
    nf(store.delete_account(4242).await);
    // A write that refers to a missing row is NotFound too (foreign key).
    nf(store.put_session(4242, b"sealed").await);
    nf(store
        .create_account(NewAccount {
            owner_id: 4242,
            label: None,
            kind: AccountKind::Bot,
            phone: None,
        })
        .await
        .map(drop));
    assert_eq!(store.session(4242).await.unwrap(), None);
    store.delete_session(4242).await.unwrap();
}

async fn users_update_list_and_count(store: &dyn Store) {
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(user(store, &format!("u{i}@x.test")).await.id);
    }
    assert_eq!(store.count_users().await.unwrap(), 5);
    let first = store.list_users(None, 2).await.unwrap();
    assert_eq!(first.iter().map(|u| u.id).collect::<Vec<_>>(), ids[..2]);
    let rest = store.list_users(Some(ids[1]), 0).await.unwrap();
    assert_eq!(rest.iter().map(|u| u.id).collect::<Vec<_>>(), ids[2..]);

    let changed = store
        .update_user(
            ids[0],
            UserPatch {
                role: Some(Role::Admin),
                disabled: Some(true),
            },
        )
        .await
        .unwrap();
    assert_eq!((changed.role, changed.disabled), (Role::Admin, true));
    // An empty patch changes nothing.
    let same = store
        .update_user(ids[0], UserPatch::default())
        .await
        .unwrap();
    assert_eq!(same, changed);
}

async fn refresh_token_revocation(store: &dyn Store) {
    let u = user(store, "r@x.test").await;
    let now = Utc::now();
    let token = |hash: &str, family: &str| RefreshToken {
        token_hash: hash.into(),
        user_id: u.id,
        family_id: family.into(),
        expires_at: now + Duration::days(30),
        revoked_at: None,
        created_at: now,
    };
    for (h, f) in [("a1", "fa"), ("a2", "fa"), ("a3", "fa"), ("b1", "fb")] {
        store.insert_refresh_token(token(h, f)).await.unwrap();
    }
    let dup = store.insert_refresh_token(token("a1", "fa")).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");

    let got = store.refresh_token("a1").await.unwrap();
    assert_eq!((got.user_id, got.family_id.as_str()), (u.id, "fa"));
    assert_eq!(got.revoked_at, None);

    assert!(store.revoke_refresh_token("a1").await.unwrap());
    assert!(
        !store.revoke_refresh_token("a1").await.unwrap(),
        "second revoke is reuse"
    );
    assert!(store
        .refresh_token("a1")
        .await
        .unwrap()
        .revoked_at
        .is_some());

    // a1 is already revoked: the family revocation counts only a2 and a3, and leaves fb alone.
    assert_eq!(store.revoke_refresh_family("fa").await.unwrap(), 2);
    assert!(store
        .refresh_token("a3")
        .await
        .unwrap()
        .revoked_at
        .is_some());
    assert!(store
        .refresh_token("b1")
        .await
        .unwrap()
        .revoked_at
        .is_none());
    assert_eq!(store.revoke_refresh_family("fa").await.unwrap(), 0);

    // A rotation that lost the race with the revocation cannot add a live token to the family.
    let late = store.insert_refresh_token(token("a4", "fa")).await;
    assert!(matches!(late, Err(StoreError::Conflict(_))), "{late:?}");
    store.insert_refresh_token(token("b2", "fb")).await.unwrap();
}

async fn access_token_revocation_and_purge(store: &dyn Store) {
    let now = Utc::now();
    assert!(!store.is_access_token_revoked("j1", None).await.unwrap());
    store
        .revoke_access_token("j1", now + Duration::minutes(15))
        .await
        .unwrap();
    // Revoking twice (logout retried) is fine.
    store
        .revoke_access_token("j1", now + Duration::minutes(15))
        .await
        .unwrap();
    store
        .revoke_access_token("old", now - Duration::minutes(1))
        .await
        .unwrap();
    assert!(store.is_access_token_revoked("j1", None).await.unwrap());

    let u = user(store, "p@x.test").await;
    store
        .insert_refresh_token(RefreshToken {
            token_hash: "expired".into(),
            user_id: u.id,
            family_id: "f".into(),
            expires_at: now - Duration::days(1),
            revoked_at: None,
            created_at: now - Duration::days(31),
        })
        .await
        .unwrap();
    assert_eq!(store.purge_expired_tokens(now).await.unwrap(), 2);
    assert!(store.is_access_token_revoked("j1", None).await.unwrap());
    assert!(!store.is_access_token_revoked("old", None).await.unwrap());
    assert!(matches!(
        store.refresh_token("expired").await,
        Err(StoreError::NotFound)
    ));
}

async fn revoked_families_reach_access_tokens_and_are_purged(store: &dyn Store) {
    assert!(!store
        .is_access_token_revoked("j", Some("fa"))
        .await
        .unwrap());
    store.revoke_refresh_family("fa").await.unwrap();
    assert!(store
        .is_access_token_revoked("j", Some("fa"))
        .await
        .unwrap());
    assert!(!store
        .is_access_token_revoked("j", Some("fb"))
        .await
        .unwrap());
    assert!(!store.is_access_token_revoked("j", None).await.unwrap());

    // Kept while a token of the family could still be presented, forgotten after.
    let now = Utc::now();
    assert_eq!(
        store
            .purge_revoked_families(now - Duration::minutes(1))
            .await
            .unwrap(),
        0
    );
    assert!(store
        .is_access_token_revoked("j", Some("fa"))
        .await
        .unwrap());
    assert_eq!(
        store
            .purge_revoked_families(now + Duration::minutes(1))
            .await
            .unwrap(),
        1
    );
    assert!(!store
        .is_access_token_revoked("j", Some("fa"))
        .await
        .unwrap());
}

async fn account_update_sets_and_clears_fields(store: &dyn Store) {
    let u = user(store, "a@x.test").await;
    let a = account(store, u.id, Some("+15550001")).await;
    assert_eq!(a.state, AccountState::New);
    assert_eq!((a.restarts, a.tg_user_id), (0, None));
    assert_eq!(store.account(a.id).await.unwrap(), a);

    let until = Utc::now() + Duration::seconds(30);
    let b = store
        .update_account(
            a.id,
            AccountUpdate {
                state: Some(AccountState::FloodWait),
                tg_user_id: Some(Some(777)),
                username: Some(Some("alice".into())),
                dc_id: Some(Some(2)),
                flood_wait_until: Some(Some(until)),
                last_error: Some(Some("FLOOD_WAIT_30".into())),
                add_restarts: 2,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(b.state, AccountState::FloodWait);
    assert_eq!(b.tg_user_id, Some(777));
    assert_eq!(b.username.as_deref(), Some("alice"));
    assert_eq!(b.dc_id, Some(2));
    assert_eq!(
        b.flood_wait_until.map(|t| t.timestamp_micros()),
        Some(until.timestamp_micros())
    );
    assert_eq!(b.restarts, 2);
    assert_eq!(b.phone.as_deref(), Some("+15550001"), "untouched");
    assert!(b.updated_at >= a.updated_at);
    assert_eq!(store.account(a.id).await.unwrap(), b);

    let c = store
        .update_account(
            a.id,
            AccountUpdate {
                state: Some(AccountState::Active),
                flood_wait_until: Some(None),
                last_error: Some(None),
                add_restarts: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(c.state, AccountState::Active);
    assert_eq!((c.flood_wait_until, c.last_error.clone()), (None, None));
    assert_eq!((c.tg_user_id, c.restarts), (Some(777), 3));
}

async fn accounts_page_and_filter_by_owner_and_state(store: &dyn Store) {
    let alice = user(store, "alice@x.test").await;
    let bob = user(store, "bob@x.test").await;
    let mut alices = Vec::new();
    for _ in 0..5 {
        alices.push(account(store, alice.id, None).await.id);
    }
    let bobs = account(store, bob.id, None).await.id;
    for id in [alices[1], alices[3], bobs] {
        store
            .update_account(
                id,
                AccountUpdate {
                    state: Some(AccountState::Active),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    let ids = |v: Vec<Account>| v.into_iter().map(|a| a.id).collect::<Vec<_>>();
    let page1 = store
        .list_accounts(AccountFilter {
            owner_id: Some(alice.id),
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(page1), alices[..2]);
    let page2 = store
        .list_accounts(AccountFilter {
            owner_id: Some(alice.id),
            after_id: Some(alices[1]),
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(page2), alices[2..4]);
    let active = store
        .list_accounts(AccountFilter {
            owner_id: Some(alice.id),
            state: Some(AccountState::Active),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(active), vec![alices[1], alices[3]]);
    let all_active = store
        .list_accounts(AccountFilter {
            state: Some(AccountState::Active),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(all_active), vec![alices[1], alices[3], bobs]);
    assert_eq!(
        store.count_accounts_by_state().await.unwrap(),
        vec![(AccountState::Active, 3), (AccountState::New, 3)]
    );
}

async fn one_live_account_per_phone(store: &dyn Store) {
    let alice = user(store, "alice@x.test").await;
    let bob = user(store, "bob@x.test").await;
    let phone = "+15550002";
    let set_state = |id, state| {
        store.update_account(
            id,
            AccountUpdate {
                state: Some(state),
                ..Default::default()
            },
        )
    };
    // Creating accounts with a phone reserves nothing: only an authorized account holds it.
    let a = account(store, alice.id, Some(phone)).await;
    let b = account(store, bob.id, Some(phone)).await;
    assert_eq!(
        store
            .account_holding_phone(&phone.parse().unwrap())
            .await
            .unwrap(),
        None
    );
    set_state(a.id, AccountState::AwaitingCode).await.unwrap();
    set_state(b.id, AccountState::AwaitingCode).await.unwrap();
    // The first to be authorized holds it; the other cannot become authorized beside it.
    set_state(a.id, AccountState::Active).await.unwrap();
    assert_eq!(
        store
            .account_holding_phone(&phone.parse().unwrap())
            .await
            .unwrap(),
        Some(a.id)
    );
    let clash = set_state(b.id, AccountState::Active).await;
    assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");
    // A logged-out account keeps its phone but no longer holds it.
    set_state(a.id, AccountState::LoggedOut).await.unwrap();
    set_state(b.id, AccountState::Active).await.unwrap();
    assert_eq!(
        store
            .account_holding_phone(&phone.parse().unwrap())
            .await
            .unwrap(),
        Some(b.id)
    );
    let revive = set_state(a.id, AccountState::Hibernated).await;
    assert!(matches!(revive, Err(StoreError::Conflict(_))), "{revive:?}");
    // Accounts without a phone (bots, not yet logged-in users) never clash.
    let c = account(store, alice.id, None).await;
    let d = account(store, bob.id, None).await;
    set_state(c.id, AccountState::Active).await.unwrap();
    set_state(d.id, AccountState::Active).await.unwrap();
}

async fn sessions_roundtrip_and_overwrite(store: &dyn Store) {
    let u = user(store, "s@x.test").await;
    let a = account(store, u.id, None).await;
    assert_eq!(store.session(a.id).await.unwrap(), None);
    let blob: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    store.put_session(a.id, &blob).await.unwrap();
    assert_eq!(
        store.session(a.id).await.unwrap().as_deref(),
        Some(&blob[..])
    );
    store.put_session(a.id, b"second").await.unwrap();
    assert_eq!(
        store.session(a.id).await.unwrap().as_deref(),
        Some(&b"second"[..])
    );
    store.delete_session(a.id).await.unwrap();
    assert_eq!(store.session(a.id).await.unwrap(), None);
    // The account itself stays.
    store.account(a.id).await.unwrap();
}

async fn delete_account_cascades_session(store: &dyn Store) {
    let u = user(store, "d@x.test").await;
    let a = account(store, u.id, Some("+15550003")).await;
    let keep = account(store, u.id, None).await;
    store.put_session(a.id, b"sealed-a").await.unwrap();
    store.put_session(keep.id, b"sealed-keep").await.unwrap();
    let entry = store
        .append_log(log(LogLevel::Info, "account_created", Some(a.id), None))
        .await
        .unwrap();

    store.delete_account(a.id).await.unwrap();
    assert!(matches!(
        store.account(a.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.session(a.id).await.unwrap(), None);
    assert!(matches!(
        store.delete_account(a.id).await,
        Err(StoreError::NotFound)
    ));
    // Nothing else goes: the sibling's session and the log stay.
    assert_eq!(
        store.session(keep.id).await.unwrap().as_deref(),
        Some(&b"sealed-keep"[..])
    );
    let logs = store
        .list_logs(LogFilter {
            account_id: Some(a.id),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(logs.iter().map(|l| l.id).collect::<Vec<_>>(), vec![entry]);
    // The phone is free again.
    account(store, u.id, Some("+15550003")).await;
}

fn sent(key: &str, random_id: i64) -> SentMessage {
    SentMessage {
        dedupe_key: key.to_owned(),
        random_id,
        message_ids: Vec::new(),
    }
}

async fn sends_by_key_keep_the_newest_and_go_with_the_account(store: &dyn Store) {
    let u = user(store, "sent@x.test").await;
    let a = account(store, u.id, None).await;
    let b = account(store, u.id, None).await;
    assert_eq!(store.sent_message(a.id, "k1").await.unwrap(), None);
    store
        .record_sent_messages(a.id, vec![sent("k1", 11)], 3)
        .await
        .unwrap();
    // Before Telegram answered: the random_id only.
    assert_eq!(
        store.sent_message(a.id, "k1").await.unwrap(),
        Some(sent("k1", 11))
    );
    // Keys are per account.
    assert_eq!(store.sent_message(b.id, "k1").await.unwrap(), None);
    store
        .complete_sent_message(a.id, "k1", &[501, 502])
        .await
        .unwrap();
    let done = store.sent_message(a.id, "k1").await.unwrap().unwrap();
    assert_eq!((done.random_id, done.message_ids), (11, vec![501, 502]));
    // Completing a key the account does not keep is nothing.
    store
        .complete_sent_message(a.id, "gone", &[1])
        .await
        .unwrap();
    assert_eq!(store.sent_message(a.id, "gone").await.unwrap(), None);

    // Past `keep` the oldest go; recording a key again makes it the newest.
    store
        .record_sent_messages(a.id, vec![sent("k2", 12), sent("k3", 13)], 3)
        .await
        .unwrap();
    store
        .record_sent_messages(a.id, vec![sent("k1", 21)], 3)
        .await
        .unwrap();
    store
        .record_sent_messages(a.id, vec![sent("k4", 14)], 3)
        .await
        .unwrap();
    assert_eq!(store.sent_message(a.id, "k2").await.unwrap(), None);
    for (key, random_id) in [("k3", 13), ("k1", 21), ("k4", 14)] {
        assert_eq!(
            store.sent_message(a.id, key).await.unwrap(),
            Some(sent(key, random_id)),
            "{key}"
        );
    }
    store
        .record_sent_messages(b.id, vec![sent("b1", 31)], 3)
        .await
        .unwrap();
    store.delete_account(a.id).await.unwrap();
    assert_eq!(store.sent_message(a.id, "k4").await.unwrap(), None);
    assert_eq!(
        store.sent_message(b.id, "b1").await.unwrap(),
        Some(sent("b1", 31))
    );
}

async fn session_fingerprints_claim_once_and_go_with_the_account(store: &dyn Store) {
    let u = user(store, "f@x.test").await;
    let a = account(store, u.id, None).await;
    let b = account(store, u.id, None).await;
    let fp = "ab".repeat(32);
    assert_eq!(
        store.account_by_session_fingerprint(&fp).await.unwrap(),
        None
    );
    store.claim_session_fingerprint(a.id, &fp).await.unwrap();
    // Idempotent for the holder, a conflict for anyone else.
    store.claim_session_fingerprint(a.id, &fp).await.unwrap();
    assert!(matches!(
        store.claim_session_fingerprint(b.id, &fp).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.account_by_session_fingerprint(&fp).await.unwrap(),
        Some(a.id)
    );
    store.delete_account(a.id).await.unwrap();
    assert_eq!(
        store.account_by_session_fingerprint(&fp).await.unwrap(),
        None
    );
    store.claim_session_fingerprint(b.id, &fp).await.unwrap();
}

async fn logs_filter_page_newest_first(store: &dyn Store) {
    let before = Utc::now() - Duration::seconds(1);
    let mut ids = Vec::new();
    for (i, level) in [
        LogLevel::Debug,
        LogLevel::Info,
        LogLevel::Warn,
        LogLevel::Error,
        LogLevel::Info,
    ]
    .into_iter()
    .enumerate()
    {
        let event = if i % 2 == 0 {
            "state_changed"
        } else {
            "rpc_failed"
        };
        let acct = if i < 3 { Some(1) } else { Some(2) };
        ids.push(
            store
                .append_log(log(level, event, acct, None))
                .await
                .unwrap(),
        );
    }
    let ids_of = |v: &[LogEntry]| v.iter().map(|l| l.id).collect::<Vec<_>>();
    let newest_first: Vec<i64> = ids.iter().rev().copied().collect();

    let all = store.list_logs(LogFilter::default()).await.unwrap();
    assert_eq!(ids_of(&all), newest_first);
    assert!(all.windows(2).all(|w| w[0].at >= w[1].at));
    let first = &all[4];
    assert_eq!(first.level, LogLevel::Debug);
    assert_eq!(first.event, "state_changed");
    assert_eq!(first.account_id, Some(1));
    assert_eq!(first.message, "state_changed happened");
    assert_eq!(first.details, json!({"k": 1}));

    let page = |before_id, limit| LogFilter {
        before_id,
        limit,
        ..Default::default()
    };
    let p1 = store.list_logs(page(None, 2)).await.unwrap();
    assert_eq!(ids_of(&p1), newest_first[..2]);
    let p2 = store.list_logs(page(Some(p1[1].id), 2)).await.unwrap();
    assert_eq!(ids_of(&p2), newest_first[2..4]);

    let warn_up = store
        .list_logs(LogFilter {
            min_level: Some(LogLevel::Warn),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids_of(&warn_up), vec![ids[3], ids[2]]);
    let by_account_event = store
        .list_logs(LogFilter {
            account_id: Some(1),
            event: Some("state_changed".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids_of(&by_account_event), vec![ids[2], ids[0]]);
    let since_now = store
        .list_logs(LogFilter {
            since: Some(Utc::now() + Duration::seconds(5)),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(since_now.is_empty());
    let since_before = store
        .list_logs(LogFilter {
            since: Some(before),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(since_before.len(), 5);
}

async fn old_log_rows_are_purged(store: &dyn Store) {
    for i in 0..3 {
        store
            .append_log(log(LogLevel::Info, &format!("e{i}"), None, None))
            .await
            .unwrap();
    }
    // Nothing is older than a minute ago…
    let kept = store
        .purge_logs_before(Utc::now() - Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(kept, 0);
    // …and everything is older than a moment from now.
    let gone = store
        .purge_logs_before(Utc::now() + Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(gone, 3);
    let left = store
        .list_logs(LogFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(left.is_empty());
}

async fn error_stats_count_codes_and_accounts(store: &dyn Store) {
    let since = Utc::now() - Duration::seconds(1);
    for (acct, code) in [
        (Some(1), "FLOOD_WAIT"),
        (Some(1), "FLOOD_WAIT"),
        (Some(2), "FLOOD_WAIT"),
        (Some(2), "AUTH_KEY_UNREGISTERED"),
        (None, "DB_TIMEOUT"),
    ] {
        store
            .append_log(log(LogLevel::Error, "rpc_failed", acct, Some(code)))
            .await
            .unwrap();
    }
    // Entries without an error code are not errors.
    store
        .append_log(log(LogLevel::Info, "state_changed", Some(3), None))
        .await
        .unwrap();
    let stats = store.error_stats(since, None).await.unwrap();
    assert_eq!(
        stats.by_code,
        vec![
            ("FLOOD_WAIT".to_owned(), 3),
            ("AUTH_KEY_UNREGISTERED".to_owned(), 1),
            ("DB_TIMEOUT".to_owned(), 1),
        ]
    );
    assert_eq!(stats.by_account, vec![(1, 2), (2, 2)]);
    let later = store
        .error_stats(Utc::now() + Duration::seconds(5), None)
        .await
        .unwrap();
    assert_eq!(later, ErrorStats::default());
}

#[tokio::test]
async fn sqlite_connect_creates_missing_directories_and_uses_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/data/tgfleet.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let store = SqliteStore::connect(&url).await.unwrap();
    assert!(path.exists());
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(fk, 1);
    drop(store);
    // Reopening runs the (already applied) migrations again without complaint.
    connect(&url).await.unwrap().ping().await.unwrap();
}

#[tokio::test]
async fn sqlite_in_memory_keeps_its_data() {
    let store = connect("sqlite::memory:").await.unwrap();
    user(&*store, "m@x.test").await;
    assert_eq!(store.count_users().await.unwrap(), 1);
}

#[tokio::test]
async fn unknown_scheme_and_unreachable_postgres_are_clear_errors() {
    let err = connect("mysql://x").await.err().expect("mysql is refused");
    assert!(format!("{err:#}").contains("\"mysql\""), "{err:#}");
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let err = connect("postgres://u:hunter2@127.0.0.1:1/db")
        .await
        .err()
        .expect("nothing listens on port 1");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("connecting to PostgreSQL at postgres://u:***@127.0.0.1:1/db"),
        "{msg}"
    );
    assert!(!msg.contains("hunter2"), "{msg}");
}

/// Issue 16 item 1: a proxy's URL is sealed for its id inside the insert, a check is recorded,
/// and a proxy accounts use is deleted only together with unbinding them.
async fn proxies_bind_accounts_and_are_not_deleted_under_them(store: &dyn Store) {
    let owner = user(store, "proxy@x.test").await;
    let proxy = store
        .create_proxy(NewProxy {
            owner_id: owner.id,
            label: Some("p".into()),
            seal_url: Box::new(|id| Box::pin(async move { Ok(format!("url {id}").into_bytes()) })),
        })
        .await
        .unwrap();
    assert_eq!(proxy.state, ProxyState::Unchecked);
    assert_eq!(
        store.proxy_url(proxy.id).await.unwrap(),
        format!("url {}", proxy.id).into_bytes()
    );
    let at = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 6);
    let checked = store
        .update_proxy(
            proxy.id,
            None,
            Some(ProxyHealth {
                state: ProxyState::Ok,
                latency_ms: Some(12),
                error: None,
                checked_at: at,
            }),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            checked.state,
            checked.latency_ms,
            checked.checked_at,
            checked.label
        ),
        (ProxyState::Ok, Some(12), Some(at), Some("p".into()))
    );
    assert_eq!(store.list_proxies(Some(owner.id)).await.unwrap().len(), 1);
    assert_eq!(
        store
            .list_proxies(Some(owner.id + 1000))
            .await
            .unwrap()
            .len(),
        0
    );
    let account = account(store, owner.id, None).await;
    let missing = AccountUpdate {
        proxy_id: Some(Some(proxy.id + 1000)),
        ..Default::default()
    };
    assert!(matches!(
        store.update_account(account.id, missing).await,
        Err(StoreError::NotFound)
    ));
    let bind = AccountUpdate {
        proxy_id: Some(Some(proxy.id)),
        ..Default::default()
    };
    let bound = store.update_account(account.id, bind).await.unwrap();
    assert_eq!(bound.proxy_id, Some(proxy.id));
    assert_eq!(
        store.accounts_on_proxy(proxy.id).await.unwrap(),
        vec![account.id]
    );
    assert!(matches!(
        store.delete_proxy(proxy.id, false).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.account(account.id).await.unwrap().proxy_id,
        Some(proxy.id)
    );
    assert_eq!(
        store.delete_proxy(proxy.id, true).await.unwrap(),
        vec![account.id]
    );
    assert_eq!(store.account(account.id).await.unwrap().proxy_id, None);
    assert!(matches!(
        store.proxy(proxy.id).await,
        Err(StoreError::NotFound)
    ));
}

/// Issue 11, item 6: an imported account is its row, its fingerprint claim and its sealed
/// session, written together or not at all.
async fn an_import_lands_whole_or_not_at_all(store: &dyn Store) {
    let owner = user(store, "import@x.test").await;
    let imported = |fingerprint: &str, fail: bool| ImportedAccount {
        new: NewAccount {
            owner_id: owner.id,
            label: Some("imported".into()),
            kind: AccountKind::User,
            phone: Some("+15550009".parse().unwrap()),
        },
        tg_user_id: 777,
        username: Some("imp".into()),
        dc_id: 2,
        fingerprint: fingerprint.into(),
        seal: Box::new(move |id| {
            Box::pin(async move {
                if fail {
                    anyhow::bail!("sealing failed");
                }
                Ok(format!("sealed for {id}").into_bytes())
            })
        }),
        device: None,
        app: None,
        proxy_id: None,
        seal_two_fa_password: None,
    };
    // Sealing fails after the row and the claim were written: nothing of it stays.
    assert!(store
        .create_imported_account(imported("fp-1", true))
        .await
        .is_err());
    assert_eq!(
        store.account_by_session_fingerprint("fp-1").await.unwrap(),
        None
    );
    assert_eq!(
        store
            .account_holding_phone(&"+15550009".parse().unwrap())
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.count_owned_accounts(owner.id).await.unwrap(), (0, 0));

    let account = store
        .create_imported_account(imported("fp-1", false))
        .await
        .unwrap()
        .expect("imported");
    assert_eq!(account.state, AccountState::Active);
    assert_eq!(account.tg_user_id, Some(777));
    assert_eq!(
        store.session(account.id).await.unwrap(),
        Some(format!("sealed for {}", account.id).into_bytes())
    );
    assert_eq!(
        store.account_by_session_fingerprint("fp-1").await.unwrap(),
        Some(account.id)
    );
    // The same session again, or another session of the same phone: refused, nothing written.
    assert_eq!(
        store
            .create_imported_account(imported("fp-1", false))
            .await
            .unwrap()
            .err(),
        Some(ImportConflict::Session(account.id))
    );
    assert_eq!(
        store
            .create_imported_account(imported("fp-2", false))
            .await
            .unwrap()
            .err(),
        Some(ImportConflict::Phone)
    );
    assert_eq!(
        store.account_by_session_fingerprint("fp-2").await.unwrap(),
        None
    );
    assert_eq!(store.count_owned_accounts(owner.id).await.unwrap(), (1, 0));
}

fn new_event(
    kind: EventType,
    account: Option<AccountId>,
    owner: UserId,
    key: Option<&str>,
) -> NewEvent {
    NewEvent {
        kind,
        account_id: account,
        owner_id: owner,
        occurred_at: Utc::now(),
        data: json!({"text": "hello", "n": 1}),
        dedupe_key: key.map(Into::into),
    }
}

async fn an_event_cursor_is_kept_per_reader(store: &dyn Store) {
    assert_eq!(store.event_cursor("amqp:a").await.unwrap(), None);
    store.set_event_cursor("amqp:a", 17).await.unwrap();
    store.set_event_cursor("amqp:b", 3).await.unwrap();
    store.set_event_cursor("amqp:a", 4000).await.unwrap();
    assert_eq!(store.event_cursor("amqp:a").await.unwrap(), Some(4000));
    assert_eq!(store.event_cursor("amqp:b").await.unwrap(), Some(3));
}

async fn events_append_once_filter_and_purge(store: &dyn Store) {
    let mut feed = store.event_feed();
    let before = *feed.borrow_and_update();
    let ids = store
        .append_events(vec![
            new_event(EventType::MessageReceived, Some(1), 10, Some("1:5:7:new")),
            new_event(EventType::MessageReceived, Some(2), 20, Some("2:5:7:new")),
            new_event(EventType::AccountStateChanged, Some(1), 10, None),
        ])
        .await
        .unwrap();
    assert_eq!(ids.len(), 3);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert!(feed.has_changed().unwrap());
    assert_eq!(*feed.borrow_and_update(), ids[2]);
    assert!(ids[0] > before);
    // A catch-up that replays an update writes nothing.
    let again = store
        .append_events(vec![new_event(
            EventType::MessageReceived,
            Some(1),
            10,
            Some("1:5:7:new"),
        )])
        .await
        .unwrap();
    assert!(again.is_empty());
    assert_eq!(store.last_event_id().await.unwrap(), ids[2]);

    let all = store
        .events(EventFilter {
            after: before,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.iter().map(|e| e.id).collect::<Vec<_>>(), ids);
    assert_eq!(all[0].data, json!({"text": "hello", "n": 1}));
    assert_eq!(all[0].kind, EventType::MessageReceived);
    let mine = store
        .events(EventFilter {
            after: before,
            owner_id: Some(10),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        mine.iter().map(|e| e.id).collect::<Vec<_>>(),
        [ids[0], ids[2]]
    );
    let typed = store
        .events(EventFilter {
            after: before,
            types: vec![EventType::AccountStateChanged],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(typed.iter().map(|e| e.id).collect::<Vec<_>>(), [ids[2]]);
    let of_two = store
        .events(EventFilter {
            after: before,
            account_ids: vec![2],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(of_two.iter().map(|e| e.id).collect::<Vec<_>>(), [ids[1]]);
    let page = store
        .events(EventFilter {
            after: ids[0],
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.iter().map(|e| e.id).collect::<Vec<_>>(), [ids[1]]);

    let mut old = new_event(EventType::Ping, None, 10, None);
    old.occurred_at = Utc::now() - Duration::hours(100);
    let old_id = store.append_events(vec![old]).await.unwrap()[0];
    assert_eq!(
        store
            .purge_events_before(Utc::now() - Duration::hours(72))
            .await
            .unwrap(),
        1
    );
    let left = store
        .events(EventFilter {
            after: before,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(left.iter().all(|e| e.id != old_id));
    assert_eq!(left.len(), 3);
}

/// Readers follow the log by "after id N": an id committed after a larger one was read would
/// be skipped for good. Writers racing each other must not leave such a hole.
async fn concurrent_appends_are_read_in_full_after_any_id(store: &dyn Store) {
    const WRITERS: usize = 8;
    const EACH: usize = 25;
    let start = store.last_event_id().await.unwrap();
    let writers = futures::future::join_all((0..WRITERS).map(|w| async move {
        for i in 0..EACH {
            let e = new_event(EventType::MessageReceived, Some(w as i64 + 1), 1, None);
            store.append_events(vec![e.clone(), e]).await.unwrap();
            if i % 5 == 0 {
                tokio::task::yield_now().await;
            }
        }
    }));
    let reader = async {
        let mut cursor = start;
        let mut seen = 0;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        while seen < WRITERS * EACH * 2 && tokio::time::Instant::now() < deadline {
            let page = store
                .events(EventFilter {
                    after: cursor,
                    limit: 1000,
                    ..Default::default()
                })
                .await
                .unwrap();
            if let Some(last) = page.last() {
                cursor = last.id;
            }
            seen += page.len();
            tokio::task::yield_now().await;
        }
        seen
    };
    let (_, seen) = tokio::join!(writers, reader);
    assert_eq!(
        seen,
        WRITERS * EACH * 2,
        "the reader following by id missed events"
    );
}

async fn account_state_changes_and_flood_waits_are_events(store: &dyn Store) {
    let owner = user(store, "states@events.test").await;
    let acc = account(store, owner.id, None).await;
    let start = store.last_event_id().await.unwrap();
    let set = |state, cause: &str| AccountUpdate {
        state: Some(state),
        cause: Some(cause.into()),
        ..Default::default()
    };
    store
        .update_account(acc.id, set(AccountState::AwaitingCode, "code_sent"))
        .await
        .unwrap();
    // The same state again is no change.
    store
        .update_account(acc.id, set(AccountState::AwaitingCode, "code_sent"))
        .await
        .unwrap();
    // Nor is a write of other columns.
    store
        .update_account(
            acc.id,
            AccountUpdate {
                last_error: Some(Some("x".into())),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let until = Utc::now() + Duration::seconds(120);
    store
        .update_account(
            acc.id,
            AccountUpdate {
                state: Some(AccountState::FloodWait),
                flood_wait_until: Some(Some(until)),
                cause: Some("FLOOD_WAIT".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let events = store
        .events(EventFilter {
            after: start,
            ..Default::default()
        })
        .await
        .unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventType::AccountStateChanged,
            EventType::AccountStateChanged,
            EventType::AccountFloodWait
        ]
    );
    assert!(events
        .iter()
        .all(|e| e.account_id == Some(acc.id) && e.owner_id == owner.id));
    assert_eq!(
        events[0].data,
        json!({"from": "new", "to": "awaiting_code", "cause": "code_sent"})
    );
    assert_eq!(events[1].data["from"], "awaiting_code");
    assert_eq!(events[1].data["to"], "flood_wait");
    assert_eq!(events[1].data["cause"], "FLOOD_WAIT");
    let seconds = events[2].data["seconds"].as_i64().unwrap();
    assert!((118..=120).contains(&seconds), "{seconds}");
    assert_eq!(
        store
            .update_account(acc.id + 1000, set(AccountState::Active, "x"))
            .await
            .err()
            .map(|e| e.to_string()),
        Some("not found".into())
    );
}

async fn a_finished_post_is_an_event_of_each_delivery_and_of_the_post(store: &dyn Store) {
    let owner = user(store, "events@posts.test").await;
    let acc = account(store, owner.id, None).await;
    let t0 = Utc::now() - Duration::minutes(1);
    let post = Post {
        id: "evpost".into(),
        owner_id: owner.id,
        state: PostState::Scheduled,
        text: "hi".into(),
        parse_mode: None,
        media: Vec::new(),
        silent: false,
        link_preview: true,
        publish_at: t0,
        created_at: t0,
        updated_at: t0,
    };
    let deliveries = (0..2)
        .map(|idx| Delivery {
            post_id: "evpost".into(),
            idx,
            // The second account is gone: its events belong to the post's owner.
            account_id: if idx == 0 { acc.id } else { acc.id + 999 },
            chat: "@chan".into(),
            state: DeliveryState::Pending,
            random_id: 5 + i64::from(idx),
            attempts: 0,
            next_attempt_at: t0,
            message_ids: Vec::new(),
            error_code: None,
            error_message: None,
            updated_at: t0,
        })
        .collect();
    store.create_post(post, deliveries).await.unwrap();
    let start = store.last_event_id().await.unwrap();
    for idx in 0..2 {
        store
            .start_delivery("evpost", idx, Utc::now())
            .await
            .unwrap()
            .unwrap();
    }
    let retry = DeliveryOutcome {
        state: DeliveryState::Pending,
        next_attempt_at: t0,
        message_ids: Vec::new(),
        error_code: Some("TIMEOUT".into()),
        error_message: Some("no answer".into()),
    };
    store.finish_delivery("evpost", 1, retry).await.unwrap();
    assert!(
        store
            .events(EventFilter {
                after: start,
                ..Default::default()
            })
            .await
            .unwrap()
            .is_empty(),
        "a retry is not an event"
    );
    store
        .start_delivery("evpost", 1, Utc::now())
        .await
        .unwrap()
        .unwrap();
    let sent = DeliveryOutcome {
        state: DeliveryState::Sent,
        next_attempt_at: t0,
        message_ids: vec![41],
        error_code: None,
        error_message: None,
    };
    store.finish_delivery("evpost", 0, sent).await.unwrap();
    let failed = DeliveryOutcome {
        state: DeliveryState::Failed,
        next_attempt_at: t0,
        message_ids: Vec::new(),
        error_code: Some("CHAT_WRITE_FORBIDDEN".into()),
        error_message: Some("no rights".into()),
    };
    assert_eq!(
        store.finish_delivery("evpost", 1, failed).await.unwrap(),
        PostState::PartiallyFailed
    );
    let events = store
        .events(EventFilter {
            after: start,
            ..Default::default()
        })
        .await
        .unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventType::PostDeliverySucceeded,
            EventType::PostDeliveryFailed,
            EventType::PostPublished
        ]
    );
    assert_eq!(events[0].account_id, Some(acc.id));
    assert_eq!(events[0].data["message_ids"], json!([41]));
    assert_eq!(events[0].data["chat"], "@chan");
    assert_eq!(events[1].data["error"]["code"], "CHAT_WRITE_FORBIDDEN");
    assert_eq!(events[1].data["attempts"], 2);
    assert!(events.iter().all(|e| e.owner_id == owner.id));
    assert_eq!(events[2].account_id, None);
    assert_eq!(
        events[2].data,
        json!({"post_id": "evpost", "state": "partially_failed", "sent": 1, "failed": 1})
    );
}

/// Now at the stores' precision (PostgreSQL keeps microseconds), so rows read back compare equal.
fn micros_now() -> chrono::DateTime<Utc> {
    chrono::SubsecRound::trunc_subsecs(Utc::now(), 6)
}

fn webhook(id: &str, owner: UserId, cursor: i64) -> Webhook {
    let t = micros_now();
    Webhook {
        id: id.into(),
        owner_id: owner,
        url: "https://hooks.example/tg".into(),
        events: vec!["*".into()],
        account_ids: Some(vec![1, 2]),
        description: Some("mine".into()),
        secret: vec![1, 2, 3],
        previous_secret: None,
        previous_until: None,
        enabled: true,
        disabled_reason: None,
        failing_since: None,
        cursor,
        created_at: t,
        updated_at: t,
    }
}

fn attempt(
    d: &WebhookDelivery,
    outcome: AttemptOutcome,
    next: Option<chrono::DateTime<Utc>>,
) -> WebhookAttempt {
    WebhookAttempt {
        id: 0,
        webhook_id: d.webhook_id.clone(),
        event_id: d.event_id,
        attempt: d.attempts,
        at: Utc::now(),
        status: Some(if outcome == AttemptOutcome::Succeeded {
            200
        } else {
            500
        }),
        latency_ms: 3,
        error: (outcome != AttemptOutcome::Succeeded).then(|| "the endpoint answered 500".into()),
        outcome,
        next_attempt_at: next,
    }
}

async fn an_attempt_recorded_and_its_queues_next_head_claimed_are_one_transaction(
    store: &dyn Store,
) {
    let owner = user(store, "pipeline@events.test").await;
    store
        .create_webhook(webhook("wh-pipe", owner.id, 0))
        .await
        .unwrap();
    let now = micros_now();
    assert!(store
        .enqueue_webhook_events("wh-pipe", 0, 3, &[(1, 1), (2, 1), (3, 1)], now)
        .await
        .unwrap());
    let lease = now + Duration::seconds(40);
    let pair = |id: i64| [("wh-pipe".to_owned(), id)];
    let head = store
        .claim_webhook_deliveries(&pair(1), now, lease)
        .await
        .unwrap()
        .pop()
        .unwrap();
    // Behind a head in flight, the next is not claimable on its own…
    let (failing, claimed) = store
        .finish_and_claim_webhook_deliveries(Vec::new(), &pair(2), now, lease)
        .await
        .unwrap();
    assert!(failing.is_empty() && claimed.is_empty(), "{claimed:?}");
    // …but it is in the transaction that records the head's success, which comes first.
    let (failing, claimed) = store
        .finish_and_claim_webhook_deliveries(
            vec![attempt(&head, AttemptOutcome::Succeeded, None)],
            &pair(2),
            now,
            lease,
        )
        .await
        .unwrap();
    assert_eq!(failing, [("wh-pipe".to_owned(), None)]);
    assert_eq!(
        claimed
            .iter()
            .map(|d| (d.event_id, d.attempts, d.next_attempt_at))
            .collect::<Vec<_>>(),
        [(2, 1, lease)]
    );
    // Both parts are in the store: the head's attempt is logged, the next one is in flight.
    let log = store
        .webhook_attempts("wh-pipe", None, None, 10)
        .await
        .unwrap();
    assert_eq!(
        log.iter()
            .map(|a| (a.event_id, a.outcome))
            .collect::<Vec<_>>(),
        [(1, AttemptOutcome::Succeeded)]
    );
    let pending: Vec<(i64, chrono::DateTime<Utc>)> = store
        .pending_webhook_deliveries(Some("wh-pipe"), None, 10)
        .await
        .unwrap()
        .iter()
        .map(|d| (d.event_id, d.next_attempt_at))
        .collect();
    assert_eq!(pending, [(2, lease), (3, now)]);
}

async fn webhook_queues_keep_order_per_account_and_log_every_attempt(store: &dyn Store) {
    let owner = user(store, "hooks@events.test").await;
    let hook = webhook("wh-order", owner.id, 0);
    store.create_webhook(hook.clone()).await.unwrap();
    assert_eq!(store.webhook("wh-order").await.unwrap(), hook);
    // Events 1..=3 of account 1, 4 of account 2 (ids are the queue's, not the log's, here).
    let queued = [(1, 1), (2, 1), (3, 1), (4, 2)];
    let now = micros_now();
    assert!(store
        .enqueue_webhook_events("wh-order", 0, 4, &queued, now)
        .await
        .unwrap());
    // A stale cursor writes nothing.
    assert!(!store
        .enqueue_webhook_events("wh-order", 0, 9, &[(9, 1)], now)
        .await
        .unwrap());
    assert_eq!(store.webhook("wh-order").await.unwrap().cursor, 4);
    // The heads of the queues, due at `at`.
    let due = |at| async move {
        let mut ids: Vec<i64> = store
            .pending_webhook_deliveries(Some("wh-order"), None, 1)
            .await
            .unwrap()
            .iter()
            .filter(|d| d.next_attempt_at <= at)
            .map(|d| d.event_id)
            .collect();
        ids.sort_unstable();
        ids
    };
    let claim = |id: i64, at, lease| async move {
        store
            .claim_webhook_deliveries(&[("wh-order".to_owned(), id)], at, lease)
            .await
            .unwrap()
            .pop()
    };
    // A window of two: account 1's queue says the store holds more.
    let window = store
        .pending_webhook_deliveries(Some("wh-order"), None, 2)
        .await
        .unwrap();
    assert_eq!(
        window
            .iter()
            .map(|d| (d.account_key, d.event_id, d.more))
            .collect::<Vec<_>>(),
        [(1, 1, false), (1, 2, true), (2, 4, false)]
    );
    let account_two = store
        .pending_webhook_deliveries(Some("wh-order"), Some(2), 10)
        .await
        .unwrap();
    assert_eq!(account_two.len(), 1);
    // The head of each account's queue only.
    assert_eq!(due(now).await, [1, 4]);
    let lease = now + Duration::seconds(40);
    let claimed = claim(1, now, lease).await.unwrap();
    assert_eq!((claimed.attempts, claimed.first_attempt_at), (1, Some(now)));
    assert!(claim(1, now, lease).await.is_none(), "claimed twice");
    assert!(
        claim(2, lease, lease).await.is_none(),
        "claimed behind its queue's head"
    );
    // In flight, it still holds its queue; after its claim runs out (a crash) it is due again.
    assert_eq!(due(now).await, [4]);
    assert_eq!(due(lease).await, [1, 4]);
    let retry_at = now + Duration::seconds(5);
    let since = store
        .finish_webhook_attempts(vec![attempt(
            &claimed,
            AttemptOutcome::Retrying,
            Some(retry_at),
        )])
        .await
        .unwrap();
    assert_eq!(since.len(), 1);
    assert!(
        since[0].1.is_some(),
        "a failure leaves the endpoint failing"
    );
    assert_eq!(due(now).await, [4]);
    let again = claim(1, retry_at, lease).await.unwrap();
    assert_eq!((again.attempts, again.first_attempt_at), (2, Some(now)));
    assert_eq!(
        store
            .finish_webhook_attempts(vec![attempt(&again, AttemptOutcome::Succeeded, None)])
            .await
            .unwrap(),
        [("wh-order".to_owned(), None)]
    );
    assert_eq!(due(retry_at).await, [2, 4]);
    // Two heads claimed in one statement, finished in one batch: after the success before,
    // the endpoint is failing since the batch's first failure.
    let both = store
        .claim_webhook_deliveries(
            &[("wh-order".to_owned(), 2), ("wh-order".to_owned(), 4)],
            retry_at,
            lease,
        )
        .await
        .unwrap();
    assert_eq!(both.len(), 2);
    let (two, four) = if both[0].event_id == 2 {
        (&both[0], &both[1])
    } else {
        (&both[1], &both[0])
    };
    let mut failed = attempt(four, AttemptOutcome::Retrying, Some(lease));
    failed.at = retry_at + Duration::seconds(1);
    assert_eq!(
        store
            .finish_webhook_attempts(vec![failed, attempt(two, AttemptOutcome::Dead, None)])
            .await
            .unwrap(),
        [("wh-order".to_owned(), Some(retry_at + Duration::seconds(1)))]
    );
    // A dead letter lets the queue go on; the other waits for its retry.
    assert_eq!(due(retry_at).await, [3]);
    assert_eq!(due(lease).await, [3, 4]);
    let log = store
        .webhook_attempts("wh-order", None, None, 10)
        .await
        .unwrap();
    assert_eq!(
        log.iter()
            .map(|a| (a.event_id, a.attempt, a.outcome))
            .collect::<Vec<_>>(),
        [
            (2, 1, AttemptOutcome::Dead),
            (4, 1, AttemptOutcome::Retrying),
            (1, 2, AttemptOutcome::Succeeded),
            (1, 1, AttemptOutcome::Retrying)
        ]
    );
    assert_eq!(log[3].next_attempt_at, Some(retry_at));
    let dead = store
        .webhook_attempts("wh-order", Some(AttemptOutcome::Dead), None, 10)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    let older = store
        .webhook_attempts("wh-order", None, Some(log[0].id), 1)
        .await
        .unwrap();
    assert_eq!(older.iter().map(|a| a.id).collect::<Vec<_>>(), [log[1].id]);
    // A disabled endpoint's deliveries wait in the store (the dispatcher leaves its queues).
    store
        .update_webhook(
            "wh-order",
            WebhookPatch {
                enabled: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(due(lease).await, [3, 4]);
    assert!(
        claim(3, lease, lease).await.is_none(),
        "claimed while disabled"
    );
    let backlog = store.webhook_backlog().await.unwrap();
    let mine = backlog.iter().find(|b| b.webhook_id == "wh-order").unwrap();
    assert_eq!(mine.pending, 2);
    store.delete_webhook("wh-order").await.unwrap();
    assert!(matches!(
        store.webhook("wh-order").await,
        Err(StoreError::NotFound)
    ));
    assert!(store
        .webhook_attempts("wh-order", None, None, 10)
        .await
        .unwrap()
        .is_empty());
}

async fn a_webhook_replays_disables_with_an_event_and_rotates(store: &dyn Store) {
    let owner = user(store, "replay@events.test").await;
    store
        .create_webhook(webhook("wh-replay", owner.id, 0))
        .await
        .unwrap();
    let now = Utc::now();
    store
        .enqueue_webhook_events("wh-replay", 0, 3, &[(1, 1), (2, 1), (3, 1)], now)
        .await
        .unwrap();
    for id in 1..=2 {
        let d = store
            .claim_webhook_deliveries(&[("wh-replay".to_owned(), id)], now, now)
            .await
            .unwrap()
            .pop()
            .unwrap();
        store
            .finish_webhook_attempts(vec![attempt(&d, AttemptOutcome::Succeeded, None)])
            .await
            .unwrap();
    }
    // From event 2 on: 2 is forgotten (done), 3 still pending stays; the cursor goes back to 1.
    assert_eq!(store.replay_webhook("wh-replay", 2).await.unwrap(), 1);
    assert_eq!(store.webhook("wh-replay").await.unwrap().cursor, 1);
    assert!(store
        .enqueue_webhook_events("wh-replay", 1, 3, &[(2, 1), (3, 1)], now)
        .await
        .unwrap());
    assert_eq!(
        store
            .pending_webhook_deliveries(Some("wh-replay"), None, 10)
            .await
            .unwrap()
            .iter()
            .map(|d| d.event_id)
            .collect::<Vec<_>>(),
        [2, 3]
    );
    assert!(matches!(
        store.replay_webhook("nope", 1).await,
        Err(StoreError::NotFound)
    ));

    let start = store.last_event_id().await.unwrap();
    let event = new_event(EventType::WebhookDisabled, None, owner.id, None);
    assert!(store
        .disable_webhook("wh-replay", "a day of failures", event.clone())
        .await
        .unwrap());
    assert!(
        !store
            .disable_webhook("wh-replay", "again", event)
            .await
            .unwrap(),
        "disabled twice"
    );
    let logged = store
        .events(EventFilter {
            after: start,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        logged.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [EventType::WebhookDisabled]
    );
    let off = store.webhook("wh-replay").await.unwrap();
    assert!(!off.enabled);
    assert_eq!(off.disabled_reason.as_deref(), Some("a day of failures"));
    let on = store
        .update_webhook(
            "wh-replay",
            WebhookPatch {
                enabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(on.enabled && on.disabled_reason.is_none() && on.failing_since.is_none());

    let until = Utc::now() + Duration::hours(1);
    let rotated = store
        .rotate_webhook_secret("wh-replay", vec![9, 9], until)
        .await
        .unwrap();
    assert_eq!(rotated.secret, vec![9, 9]);
    assert_eq!(rotated.previous_secret, Some(vec![1, 2, 3]));
    let edited = store
        .update_webhook(
            "wh-replay",
            WebhookPatch {
                url: Some("https://other.example/".into()),
                events: Some(vec!["message.received".into()]),
                account_ids: Some(None),
                description: Some(None),
                enabled: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(edited.url, "https://other.example/");
    assert_eq!(edited.events, ["message.received"]);
    assert_eq!((edited.account_ids, edited.description), (None, None));
    assert!(edited.enabled);
    assert_eq!(store.list_webhooks(Some(owner.id)).await.unwrap().len(), 1);
    assert!(store
        .list_webhooks(Some(owner.id + 1))
        .await
        .unwrap()
        .is_empty());
}

/// Issue 16 item 2: every account gets its own identity for initConnection, kept until changed,
/// and changed as a whole.
async fn device_identities_are_drawn_per_account_kept_and_changed_whole(store: &dyn Store) {
    let owner = user(store, "device@x.test").await;
    let mut accounts = Vec::new();
    for _ in 0..8 {
        accounts.push(account(store, owner.id, None).await);
    }
    for a in &accounts {
        let d = &a.device;
        for text in [&d.device_model, &d.system_version, &d.app_version] {
            assert_eq!(device::check_text(text).as_ref(), Ok(text), "{d:?}");
        }
        for code in [&d.system_lang_code, &d.lang_code] {
            assert_eq!(device::check_lang_code(code).as_ref(), Ok(code), "{d:?}");
        }
        assert_eq!(a.api_id, None);
        assert_eq!(
            store.account(a.id).await.unwrap(),
            *a,
            "read back as written"
        );
        assert_eq!(store.account_api_hash(a.id).await.unwrap(), None);
    }
    let models: std::collections::HashSet<_> =
        accounts.iter().map(|a| &a.device.device_model).collect();
    assert!(models.len() > 1, "eight accounts, one device: {models:?}");

    let first = &accounts[0];
    let changed = DeviceIdentity {
        device_model: "Google Pixel 8 Pro".into(),
        system_version: "SDK 34".into(),
        app_version: "11.1.3".into(),
        system_lang_code: "de-DE".into(),
        lang_code: "de".into(),
    };
    let after = store
        .update_account(
            first.id,
            AccountUpdate {
                device: Some(Box::new(changed.clone().into())),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(after.device, changed);
    assert_eq!(
        (after.state, after.label.clone()),
        (first.state, first.label.clone())
    );
    // Other writes leave it alone, and other accounts keep theirs.
    let later = store
        .update_account(
            first.id,
            AccountUpdate {
                state: Some(AccountState::Active),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(later.device, changed);
    assert_eq!(store.account(first.id).await.unwrap().device, changed);
    assert_eq!(
        store.account(accounts[1].id).await.unwrap().device,
        accounts[1].device
    );
    // Two edits of different fields (two PATCHes at once) both stand.
    for patch in [
        DevicePatch {
            lang_code: Some("fr".into()),
            ..Default::default()
        },
        DevicePatch {
            app_version: Some("11.2.0".into()),
            ..Default::default()
        },
    ] {
        store
            .update_account(
                first.id,
                AccountUpdate {
                    device: Some(Box::new(patch)),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    let both = store.account(first.id).await.unwrap().device;
    assert_eq!(
        (both.lang_code.as_str(), both.app_version.as_str()),
        ("fr", "11.2.0")
    );
    assert_eq!(both.device_model, changed.device_model);
    assert!(matches!(
        store.account_api_hash(first.id + 1000).await,
        Err(StoreError::NotFound)
    ));
}

/// An imported session's app (api_id, sealed api_hash) and 2FA password land with its account,
/// or none of them does.
async fn an_imported_app_is_kept_sealed_beside_its_account(store: &dyn Store) {
    let owner = user(store, "app@x.test").await;
    let device = DeviceIdentity {
        device_model: "iPhone 15".into(),
        system_version: "17.6.1".into(),
        app_version: "11.0".into(),
        system_lang_code: "en-GB".into(),
        lang_code: "en".into(),
    };
    let sealer = |what: &'static str, fail: bool| -> tgfleet_persistence::SealForAccount {
        Box::new(move |id| {
            Box::pin(async move {
                if fail {
                    anyhow::bail!("sealing the {what} failed");
                }
                Ok(format!("{what} {id}").into_bytes())
            })
        })
    };
    let imported = |fingerprint: &str, failing: Option<&str>| ImportedAccount {
        new: NewAccount {
            owner_id: owner.id,
            label: None,
            kind: AccountKind::User,
            phone: None,
        },
        tg_user_id: 4242,
        username: None,
        dc_id: 2,
        fingerprint: fingerprint.into(),
        seal: Box::new(|id| Box::pin(async move { Ok(format!("session {id}").into_bytes()) })),
        device: Some(device.clone()),
        app: Some(ImportedApp {
            api_id: 123456,
            seal_api_hash: sealer("api hash", failing == Some("api hash")),
        }),
        proxy_id: None,
        seal_two_fa_password: Some(sealer("2fa", failing == Some("2fa"))),
    };
    for failing in ["api hash", "2fa"] {
        assert!(
            store
                .create_imported_account(imported("app-1", Some(failing)))
                .await
                .is_err(),
            "{failing}"
        );
        assert_eq!(store.count_owned_accounts(owner.id).await.unwrap(), (0, 0));
        assert_eq!(
            store.account_by_session_fingerprint("app-1").await.unwrap(),
            None
        );
    }

    let account = store
        .create_imported_account(imported("app-1", None))
        .await
        .unwrap()
        .expect("imported");
    assert_eq!(account.api_id, Some(123456));
    assert_eq!(account.device, device);
    assert!(account.two_fa_stored);
    assert_eq!(store.account(account.id).await.unwrap(), account);
    assert_eq!(
        store.account_api_hash(account.id).await.unwrap(),
        Some(format!("api hash {}", account.id).into_bytes())
    );
    assert_eq!(
        store.account_two_fa_password(account.id).await.unwrap(),
        Some(format!("2fa {}", account.id).into_bytes())
    );

    // Changed and forgotten by an update, which says so in the row it returns.
    let changed = store
        .update_account(
            account.id,
            AccountUpdate {
                two_fa_sealed: Some(Some(b"another".to_vec())),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(changed.two_fa_stored);
    assert_eq!(
        store.account_two_fa_password(account.id).await.unwrap(),
        Some(b"another".to_vec())
    );
    let forgotten = store
        .update_account(
            account.id,
            AccountUpdate {
                two_fa_sealed: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(!forgotten.two_fa_stored);
    assert_eq!(store.account(account.id).await.unwrap(), forgotten);
    assert_eq!(
        store.account_two_fa_password(account.id).await.unwrap(),
        None
    );
    // A state change leaves it alone.
    store
        .update_account(
            account.id,
            AccountUpdate {
                two_fa_sealed: Some(Some(b"kept".to_vec())),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let moved = store
        .update_account(
            account.id,
            AccountUpdate {
                state: Some(AccountState::Stopped),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(moved.two_fa_stored);
    assert!(matches!(
        store.account_two_fa_password(account.id + 1000).await,
        Err(StoreError::NotFound)
    ));
}

/// Rows from before migration 0012 have no identity: read, they show the one derived from their
/// id (stable across reads); the next connect writes that same one, which then stays.
macro_rules! rows_before_0012_get_an_identity {
    ($db:expr, $store:ty) => {{
        let db = $db;
        let owner = user(&*db.store, "old@x.test").await;
        let id = account(&*db.store, owner.id, None).await.id;
        let raw = <$store>::connect(&db.url).await.unwrap();
        sqlx::query(
            "UPDATE telegram_accounts SET device_model = NULL, system_version = NULL, \
             app_version = NULL, system_lang_code = NULL, lang_code = NULL WHERE id = $1",
        )
        .bind(id)
        .execute(raw.pool())
        .await
        .unwrap();
        let derived = DeviceIdentity::pick(id as u64);
        assert_eq!(raw.account(id).await.unwrap().device, derived);
        assert_eq!(db.store.account(id).await.unwrap().device, derived);

        let reconnected = <$store>::connect(&db.url).await.unwrap();
        let stored: Option<String> =
            sqlx::query_scalar("SELECT device_model FROM telegram_accounts WHERE id = $1")
                .bind(id)
                .fetch_one(reconnected.pool())
                .await
                .unwrap();
        let filled = reconnected.account(id).await.unwrap().device;
        assert_eq!(stored.as_ref(), Some(&filled.device_model));
        assert_eq!(
            filled, derived,
            "the fill writes what the row already showed"
        );

        // One column missing (a hand edit): the whole derived identity, not a mix.
        let other = account(&*db.store, owner.id, None).await;
        sqlx::query("UPDATE telegram_accounts SET system_version = NULL WHERE id = $1")
            .bind(other.id)
            .execute(raw.pool())
            .await
            .unwrap();
        assert_eq!(
            raw.account(other.id).await.unwrap().device,
            DeviceIdentity::pick(other.id as u64)
        );
        let again = <$store>::connect(&db.url).await.unwrap();
        assert_eq!(
            again.account(id).await.unwrap().device,
            filled,
            "drawn once"
        );
    }};
}

#[tokio::test]
async fn sqlite_rows_from_before_0012_get_an_identity_once() {
    rows_before_0012_get_an_identity!(TestDb::sqlite().await.unwrap(), SqliteStore);
}

#[tokio::test]
async fn postgres_rows_from_before_0012_get_an_identity_once() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    rows_before_0012_get_an_identity!(db, PgStore);
}
