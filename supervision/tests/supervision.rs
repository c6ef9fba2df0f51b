//! The supervision guarantees, exercised with a tiny test actor (see `common`): one actor per
//! account, restart in place, restart intensity and quarantine, backoff, watchdog, start-up and
//! shutdown.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use tgfleet_actors::{LogOut, SendMessage, Sent, SignIn, Status};
use tgfleet_persistence::AccountState;
use tgfleet_supervision::{FleetError, RestartReason, SupervisionSettings, UnavailableKind};

fn unavailable_kind(err: &FleetError) -> Option<UnavailableKind> {
    match err {
        FleetError::Unavailable { kind, .. } => Some(*kind),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_starts_yield_exactly_one_actor() {
    let h = Harness::sqlite(fast_settings()).await;
    let id = h.account(AccountState::Active).await;

    let mut tasks = Vec::new();
    for n in 0..64 {
        let fleet = h.fleet.clone();
        tasks.push(tokio::spawn(async move {
            if n % 2 == 0 {
                fleet.ensure_started(id).await.map(|_| ())
            } else {
                fleet.call(id, Status).await.map(|_| ())
            }
        }));
    }
    for task in tasks {
        task.await.expect("task").expect("start or call");
    }

    assert_eq!(h.journal.starts(id), 1, "spawned more than once");
    assert_eq!(h.journal.live(id), 1);
    assert_eq!(h.fleet.actor_count(), 1);
    let stats = h.fleet.supervisor_stats().await;
    assert_eq!(stats.children, 1);
    assert_eq!(stats.supervisors, 4);
    h.fleet.shutdown().await;
}

#[tokio::test]
async fn crash_restarts_in_place_with_state_reloaded() {
    let h = Harness::sqlite(fast_settings()).await;
    let id = h.account(AccountState::Active).await;
    h.fleet.ensure_started(id).await.expect("started");
    let first = h.fleet.actor_id(id).expect("running");

    // A pending login persisted by the actor before it crashes: the restarted actor must see it.
    h.store
        .update_account(
            id,
            tgfleet_persistence::AccountUpdate {
                state: Some(AccountState::AwaitingCode),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    h.crash_and_wait(id).await;

    let status = h.wait_answering(id).await;
    assert_eq!(status.account_id, id);
    assert_eq!(
        status.state,
        AccountState::AwaitingCode,
        "state not reloaded"
    );
    assert_ne!(h.fleet.actor_id(id), Some(first));
    assert_eq!(h.journal.starts(id), 2);
    assert_eq!(h.metrics.restarts(id, RestartReason::Failed), 1);
    // The restart is written off the supervisor's mailbox; give the writer a moment.
    // The log row is written after the counter: once it is there, both are.
    for _ in 0..POLLS {
        if !h.logs(id, "actor_restarted").await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(h.store.account(id).await.unwrap().restarts, 1);
    let rows = h.logs(id, "actor_restarted").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].details["reason"], "failed");
    h.fleet.shutdown().await;
}

#[tokio::test]
async fn restart_intensity_quarantines_one_account_only() {
    let settings = SupervisionSettings {
        restart_max: 3,
        ..fast_settings()
    };
    let h = Harness::sqlite(settings).await;
    let victim = h.account(AccountState::Active).await;
    let bystander = h.account(AccountState::Active).await;
    h.fleet.ensure_started(victim).await.unwrap();
    h.fleet.ensure_started(bystander).await.unwrap();
    let bystander_actor = h.fleet.actor_id(bystander);

    for _ in 0..3 {
        h.crash_and_wait(victim).await;
        h.status(bystander).await.expect("bystander answers");
    }
    // The fourth failure within the window exceeds the intensity.
    h.fleet.crash(victim).unwrap();
    // The log row is written after the state: once it is there, both are.
    for _ in 0..POLLS {
        if !h.logs(victim, "account_quarantined").await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        h.store.account(victim).await.unwrap().state,
        AccountState::Quarantined
    );
    let err = h.status(victim).await.expect_err("quarantined");
    assert_eq!(unavailable_kind(&err), Some(UnavailableKind::Quarantined));
    assert_eq!(err.code(), "ACCOUNT_QUARANTINED");
    assert!(err.to_string().contains("operator restart"), "{err}");
    assert_eq!(h.logs(victim, "account_quarantined").await.len(), 1);
    assert_eq!(h.journal.starts(victim), 4, "restarted after quarantine");

    // The other account never noticed.
    h.status(bystander).await.expect("bystander still answers");
    assert_eq!(h.fleet.actor_id(bystander), bystander_actor);
    assert_eq!(h.journal.starts(bystander), 1);
    let stats = h.fleet.supervisor_stats().await;
    assert_eq!(stats.quarantined, 1);
    assert_eq!(stats.restarts, 3);
    h.fleet.shutdown().await;
}

#[tokio::test]
async fn operator_restart_lifts_quarantine() {
    let settings = SupervisionSettings {
        restart_max: 1,
        ..fast_settings()
    };
    let h = Harness::sqlite(settings).await;
    let id = h.account(AccountState::Active).await;
    h.fleet.ensure_started(id).await.unwrap();
    h.crash_and_wait(id).await;
    h.fleet.crash(id).unwrap();
    h.wait_until("quarantine", || h.fleet.actor_id(id).is_none())
        .await;
    for _ in 0..POLLS {
        if h.store.account(id).await.unwrap().state == AccountState::Quarantined {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        h.store.account(id).await.unwrap().state,
        AccountState::Quarantined
    );

    h.fleet.restart(id).await.expect("operator restart");
    let status = h.status(id).await.expect("answers after the restart");
    assert_eq!(
        status.state,
        AccountState::Active,
        "previous state restored"
    );
    assert_eq!(h.store.account(id).await.unwrap().last_error, None);
    assert_eq!(h.logs(id, "account_quarantine_lifted").await.len(), 1);
    assert_eq!(h.fleet.supervisor_stats().await.quarantined, 0);
    // A fresh restart budget: one more crash is restarted, not quarantined again.
    h.crash_and_wait(id).await;
    h.wait_answering(id).await;
    h.fleet.shutdown().await;
}

#[tokio::test]
async fn operator_restart_of_a_running_actor_replaces_it() {
    let h = Harness::sqlite(fast_settings()).await;
    let id = h.account(AccountState::Active).await;
    h.fleet.ensure_started(id).await.unwrap();
    let before = h.fleet.actor_id(id);
    h.fleet.restart(id).await.expect("restart");
    assert_ne!(h.fleet.actor_id(id), before);
    assert_eq!(
        h.journal.graceful_stops(id),
        1,
        "old actor not stopped gracefully"
    );
    assert_eq!(h.metrics.restarts(id, RestartReason::Operator), 1);
    h.status(id).await.expect("answers");
    h.fleet.shutdown().await;
}

/// A quarantine read from the store (as after a process restart) holds until an operator lifts it.
#[tokio::test]
async fn a_stored_quarantine_holds_until_an_operator_restart() {
    let h = Harness::sqlite(fast_settings()).await;
    let id = h.account(AccountState::Quarantined).await;
    let err = h.fleet.ensure_started(id).await.expect_err("quarantined");
    assert_eq!(unavailable_kind(&err), Some(UnavailableKind::Quarantined));
    assert_eq!(h.journal.starts(id), 0);
    h.fleet.restart(id).await.expect("operator restart");
    assert_eq!(h.journal.starts(id), 1);
    // Without a quarantine log row the previous state is unknown: `stopped` claims nothing.
    assert_eq!(
        h.store.account(id).await.unwrap().state,
        AccountState::Stopped
    );
    h.fleet.shutdown().await;
}

#[tokio::test]
async fn unknown_account_is_not_found() {
    let h = Harness::sqlite(fast_settings()).await;
    let err = h.status(9999).await.expect_err("unknown");
    assert!(matches!(err, FleetError::NotFound(9999)), "{err:?}");
    assert_eq!(err.code(), "ACCOUNT_NOT_FOUND");
    assert!(h.fleet.crash(9999).is_err());
    assert!(matches!(
        h.fleet.ensure_started(9999).await,
        Err(FleetError::NotFound(9999))
    ));
    assert_eq!(h.fleet.actor_count(), 0);
    h.fleet.shutdown().await;
}

#[tokio::test]
async fn the_actors_own_errors_pass_through() {
    let h = Harness::sqlite(fast_settings()).await;
    let id = h.account(AccountState::AwaitingCode).await;
    let err = h
        .fleet
        .call(
            id,
            SignIn {
                code: "00000".into(),
            },
        )
        .await
        .expect_err("the test actor refuses every code");
    assert!(
        matches!(
            err,
            FleetError::Account(tgfleet_actors::AccountError::CodeInvalid)
        ),
        "{err:?}"
    );
    h.fleet.shutdown().await;
}

#[tokio::test]
async fn a_normal_stop_is_not_restarted() {
    let h = Harness::sqlite(fast_settings()).await;
    let id = h.account(AccountState::Active).await;
    // Its only successful answer is "logged out" (the reply type is `()`).
    h.fleet.call(id, LogOut).await.expect("logged out");
    h.wait_until("the actor to stop", || h.journal.live(id) == 0)
        .await;
    h.wait_until("the registry to drop it", || h.fleet.actor_count() == 0)
        .await;
    let stats = h.fleet.supervisor_stats().await;
    assert_eq!(
        (stats.children, stats.starting, stats.backing_off),
        (0, 0, 0),
        "a restart was scheduled: {stats:?}"
    );
    assert_eq!(stats.restarts, 0);
    assert_eq!(h.journal.starts(id), 1);
    h.fleet.shutdown().await;
}

fn send(text: &str) -> SendMessage {
    SendMessage {
        media: Vec::new(),
        random_id: None,
        peer: tgfleet_actors::Peer::Me,
        text: text.into(),
        dedupe_key: None,
        options: Default::default(),
    }
}

#[tokio::test]
async fn a_call_queued_behind_hibernation_is_run_by_the_next_actor() {
    let h = Harness::sqlite(fast_settings()).await;
    let id = h.account(AccountState::Active).await;
    h.fleet.ensure_started(id).await.unwrap();
    let hibernating = tokio::spawn({
        let fleet = h.fleet.clone();
        async move { fleet.call(id, send("hibernate")).await }
    });
    // Queued while the actor decides to hibernate: it answers `Hibernating`, the fleet resends.
    h.wait_until("the hibernate call to start", || {
        h.journal.hibernations_begun(id) == 1
    })
    .await;
    let queued = h.status(id).await;
    assert!(queued.is_ok(), "{queued:?}");
    assert!(matches!(hibernating.await.unwrap(), Ok(Sent { .. })));
    assert_eq!(h.journal.starts(id), 2, "the next actor answered");
    assert_eq!(h.fleet.supervisor_stats().await.restarts, 0);
    h.fleet.shutdown().await;
}

#[tokio::test]
async fn a_call_reaching_an_actor_that_is_ending_waits_for_the_next_one() {
    let h = Harness::sqlite(fast_settings()).await;
    let id = h.account(AccountState::Active).await;
    h.fleet.ensure_started(id).await.unwrap();
    let sent = h.fleet.call(id, send("hibernate")).await;
    assert!(matches!(sent, Ok(Sent { .. })), "{sent:?}");
    // The actor is draining and takes 300 ms to exit: the call waits for its exit rather than
    // failing, and is answered by a new actor started only after the old one is gone.
    assert_eq!(h.journal.live(id), 1);
    let answer = h.status(id).await;
    assert!(answer.is_ok(), "{answer:?}");
    assert_eq!(h.journal.starts(id), 2);
    assert_eq!(h.journal.graceful_stops(id), 1, "the old actor ended first");
    assert_eq!(h.journal.live(id), 1, "never two actors");
    assert_eq!(h.fleet.supervisor_stats().await.restarts, 0);
    h.fleet.shutdown().await;
}

#[tokio::test]
async fn stop_persists_and_a_later_call_starts_again() {
    let h = Harness::sqlite(fast_settings()).await;
    let id = h.account(AccountState::Active).await;
    h.fleet.ensure_started(id).await.unwrap();
    h.fleet.stop(id).await.expect("stop");
    assert_eq!(h.journal.graceful_stops(id), 1);
    assert_eq!(h.fleet.actor_count(), 0);
    h.status(id).await.expect("started again by the call");
    assert_eq!(h.journal.starts(id), 2);
    assert_eq!(h.fleet.supervisor_stats().await.restarts, 0);
    h.fleet.shutdown().await;
}

#[tokio::test]
async fn a_failing_start_backs_off_then_quarantines() {
    let settings = SupervisionSettings {
        restart_max: 2,
        ..fast_settings()
    };
    let h = Harness::sqlite(settings).await;
    let id = h
        .account_labelled(AccountState::Active, Some("fails-to-start"))
        .await;
    let err = h.fleet.ensure_started(id).await.expect_err("cannot start");
    assert_eq!(unavailable_kind(&err), Some(UnavailableKind::Restarting));
    assert!(matches!(
        err,
        FleetError::Unavailable {
            retry_after: Some(_),
            ..
        }
    ));
    for _ in 0..POLLS {
        if h.fleet.supervisor_stats().await.quarantined == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(h.fleet.supervisor_stats().await.quarantined, 1);
    assert_eq!(h.metrics.restarts(id, RestartReason::Failed), 2);
    h.fleet.shutdown().await;
}

#[tokio::test]
async fn a_silent_actor_is_restarted_by_the_liveness_check() {
    let settings = SupervisionSettings {
        liveness_interval: Some(Duration::from_millis(50)),
        // Longer than the call timeout, so the caller's own timeout is what it sees first.
        liveness_timeout: Duration::from_millis(300),
        call_timeout: Duration::from_millis(100),
        ..fast_settings()
    };
    let h = Harness::sqlite(settings).await;
    let id = h.account(AccountState::Active).await;
    h.fleet.ensure_started(id).await.unwrap();
    let before = h.fleet.actor_id(id);

    // The caller of a wedged actor is not left hanging.
    let err = h
        .fleet
        .call(
            id,
            SendMessage {
                media: Vec::new(),
                random_id: None,
                peer: tgfleet_actors::Peer::Me,
                text: "hang".into(),
                dedupe_key: None,
                options: Default::default(),
            },
        )
        .await
        .expect_err("no answer");
    assert_eq!(unavailable_kind(&err), Some(UnavailableKind::Timeout));

    h.wait_until("a watchdog restart", || {
        h.fleet.actor_id(id).is_some_and(|now| Some(now) != before)
    })
    .await;
    assert_eq!(h.metrics.restarts(id, RestartReason::Watchdog), 1);
    h.status(id).await.expect("answers after the restart");
    h.fleet.shutdown().await;
}

#[tokio::test]
async fn report_silent_restarts_with_reason_watchdog() {
    let h = Harness::sqlite(fast_settings()).await;
    let id = h.account(AccountState::Active).await;
    h.fleet.ensure_started(id).await.unwrap();
    let before = h.fleet.actor_id(id);
    h.fleet.report_silent(id, "test");
    h.wait_until("a watchdog restart", || {
        h.fleet.actor_id(id).is_some_and(|now| Some(now) != before)
    })
    .await;
    assert_eq!(h.metrics.restarts(id, RestartReason::Watchdog), 1);
    assert_eq!(h.metrics.restarts(id, RestartReason::Failed), 0);
    h.fleet.shutdown().await;
}

#[tokio::test]
async fn startup_starts_authorized_and_pending_accounts_only() {
    let (store, _dir) = sqlite_store().await;
    let owner = owner(&*store).await;
    // Accounts exist before the fleet does, as after a process restart.
    let seed = Harness::with_store(fast_settings(), store.clone(), owner, None).await;
    seed.fleet.shutdown().await;
    let mut wanted = Vec::new();
    let mut unwanted = Vec::new();
    for state in AccountState::ALL {
        let id = seed.account(state).await;
        let pending = matches!(
            state,
            AccountState::AwaitingCode | AccountState::AwaitingPassword | AccountState::AwaitingQr
        );
        if state.is_authorized() || pending {
            wanted.push(id);
        } else {
            unwanted.push(id);
        }
    }

    let h = Harness::with_store(fast_settings(), store, owner, None).await;
    h.fleet.startup_finished().await;
    h.wait_until("every wanted account up", || {
        wanted.iter().all(|id| h.fleet.actor_id(*id).is_some())
    })
    .await;
    for id in &unwanted {
        assert_eq!(h.journal.starts(*id), 0, "account {id} started");
    }
    assert_eq!(h.fleet.actor_count(), wanted.len());
    h.fleet.shutdown().await;
}

#[tokio::test]
async fn shutdown_stops_every_actor_gracefully() {
    let h = Harness::sqlite(fast_settings()).await;
    let mut ids = Vec::new();
    for _ in 0..6 {
        let id = h.account(AccountState::Active).await;
        h.fleet.ensure_started(id).await.unwrap();
        ids.push(id);
    }
    assert_eq!(h.fleet.actor_count(), 6);
    h.fleet.shutdown().await;
    for id in &ids {
        assert_eq!(
            h.journal.graceful_stops(*id),
            1,
            "account {id} not persisted"
        );
    }
    assert_eq!(h.journal.live_total(), 0);
    assert_eq!(h.fleet.actor_count(), 0);
    let err = h.status(ids[0]).await.expect_err("shut down");
    assert_eq!(unavailable_kind(&err), Some(UnavailableKind::ShuttingDown));
    assert_eq!(h.fleet.supervisor_stats().await.supervisors, 0);
    // Twice is harmless.
    h.fleet.shutdown().await;
}

/// On paused time with the in-memory store: the restart really waits out a backoff that grows
/// with every failure, and callers meanwhile get `Unavailable` with a `retry_after`.
#[tokio::test(start_paused = true)]
async fn backoff_grows_and_is_waited_out() {
    let settings = SupervisionSettings {
        backoff_base: Duration::from_secs(1),
        backoff_max: Duration::from_secs(60),
        restart_max: 5,
        restart_window: Duration::from_secs(600),
        ..fast_settings()
    };
    let store = Arc::new(MemStore::default());
    store.add_account(7, AccountState::Active);
    let h = mem_harness(settings, store).await;
    h.fleet.ensure_started(7).await.unwrap();

    // The first restart is immediate: on the paused clock the actor answers again before any
    // backoff could have run out (the shortest one is base/2 = 500 ms).
    let crashed_at = tokio::time::Instant::now();
    h.fleet.crash(7).unwrap();
    let status = h.wait_answering(7).await;
    assert_eq!(status.account_id, 7);
    assert!(
        crashed_at.elapsed() < Duration::from_millis(100),
        "first restart waited {:?}",
        crashed_at.elapsed()
    );

    let mut delays = Vec::new();
    for attempt in 2..=4u32 {
        h.fleet.crash(7).unwrap();
        // Let the failure reach the supervisor; no time passes meanwhile.
        let mut wait = None;
        for _ in 0..100 {
            settle().await;
            if let Err(FleetError::Unavailable {
                kind: UnavailableKind::Restarting,
                retry_after: Some(w),
                ..
            }) = h.status(7).await
            {
                wait = Some(w);
                break;
            }
        }
        let wait = wait.expect("a backoff with retry_after");
        let full = Duration::from_secs(1 << (attempt - 2));
        assert!(
            wait <= full && wait >= full / 2 - Duration::from_millis(1),
            "attempt {attempt}: {wait:?}"
        );
        // Just before the delay ends the actor is still down…
        tokio::time::advance(wait.saturating_sub(Duration::from_millis(20))).await;
        settle().await;
        assert!(
            h.fleet.actor_id(7).is_none(),
            "restarted before its backoff ended"
        );
        // …and right after it is back.
        tokio::time::advance(Duration::from_millis(40)).await;
        let status = h.wait_answering(7).await;
        assert_eq!(status.account_id, 7);
        delays.push(wait);
    }
    assert!(
        delays.windows(2).all(|w| w[1] >= w[0]),
        "backoff did not grow: {delays:?}"
    );
    assert_eq!(h.journal.starts(7), 5);
    h.fleet.shutdown().await;
}

/// On paused time: persisted accounts come up at the configured rate, not all at once.
#[tokio::test(start_paused = true)]
async fn startup_is_paced() {
    let store = Arc::new(MemStore::default());
    for id in 1..=5 {
        store.add_account(id, AccountState::Active);
    }
    let settings = SupervisionSettings {
        start_rate: std::num::NonZeroU32::new(2).unwrap(),
        ..fast_settings()
    };
    let started_at = tokio::time::Instant::now();
    let h = mem_harness(settings, store).await;
    h.fleet.startup_finished().await;
    // 5 starts at 2/s: the first at once, the last two seconds later.
    assert!(
        started_at.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started_at.elapsed()
    );
    h.wait_until("all five up", || h.fleet.actor_count() == 5)
        .await;
    h.fleet.shutdown().await;
}
