//! Delivers posts: claims the deliveries that are due, one task per account (an account's
//! deliveries go one after another, at its own pacing; different accounts in parallel), and
//! records each attempt before and after it. A delivery's random_id was fixed when the post was
//! created, so an attempt cut short by a crash is repeated on the next start as the same message,
//! and Telegram drops the repeat: each delivery is sent exactly once.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tgfleet_persistence::{Delivery, DeliveryOutcome, DeliveryState, Post, PostState};
use tgfleet_supervision::account::{AccountError, DeleteMessage, Peer, SendMessage, SendOptions};
use tgfleet_supervision::FleetError;
use tokio_util::sync::CancellationToken;

use crate::accounts::messages::{content_text, upload_time};
use crate::state::AppState;

/// Looked at this often even when nothing wakes the scheduler (a retry falling due).
const TICK: Duration = Duration::from_secs(1);
/// Deliveries claimed per look.
const BATCH: u32 = 500;
/// A transient failure's first retry; doubled per attempt up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_secs(2);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

pub async fn run(state: AppState, stop: CancellationToken) {
    let busy: Arc<Mutex<HashSet<i64>>> = Arc::default();
    let permits = Arc::new(tokio::sync::Semaphore::new(
        state.settings.posts.parallel_accounts,
    ));
    // A full page means more is due now (other accounts' deliveries): look again at once —
    // unless the page starts where the previous one did (its attempts ended without changing
    // their rows, e.g. a store error), which would only spin.
    let mut more = false;
    let mut last_first: Option<(String, i32)> = None;
    loop {
        if !more {
            tokio::select! {
                () = stop.cancelled() => return,
                () = state.posts_due.notified() => {}
                () = tokio::time::sleep(TICK) => {}
            }
        } else if stop.is_cancelled() {
            return;
        }
        let at_work: Vec<i64> = lock(&busy).iter().copied().collect();
        let due = match state
            .store
            .due_deliveries(Utc::now(), BATCH, &at_work)
            .await
        {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "looking for due deliveries failed");
                more = false;
                continue;
            }
        };
        let first = due.first().map(|d| (d.post_id.clone(), d.idx));
        more = due.len() >= BATCH as usize && first != last_first;
        last_first = first;
        let mut by_account: BTreeMap<i64, Vec<Delivery>> = BTreeMap::new();
        for d in due {
            by_account.entry(d.account_id).or_default().push(d);
        }
        for (account_id, deliveries) in by_account {
            if !lock(&busy).insert(account_id) {
                continue; // its task is still at work; it looks again when done
            }
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let (state, busy, stop) = (state.clone(), busy.clone(), stop.clone());
            tokio::spawn(async move {
                for d in deliveries {
                    if stop.is_cancelled() {
                        break;
                    }
                    deliver(&state, d).await;
                }
                lock(&busy).remove(&account_id);
                drop(permit);
                state.posts_due.notify_one();
            });
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One attempt at one delivery, claimed before it starts (with the post as it is then: an edit,
/// a cancel or a reschedule since the due query is seen) and recorded after it ends.
async fn deliver(state: &AppState, due: Delivery) {
    let store = &state.store;
    let (d, post) = match store
        .start_delivery(&due.post_id, due.idx, Utc::now())
        .await
    {
        Ok(Some(claimed)) => claimed,
        Ok(None) => return, // not due any more
        Err(e) => {
            tracing::warn!(post_id = %due.post_id, error = %e, "starting a delivery failed");
            return;
        }
    };
    let outcome = attempt(state, &post, &d).await;
    tracing::info!(
        post_id = %d.post_id, account_id = d.account_id, attempt = d.attempts,
        state = outcome.state.as_str(), error = outcome.error_code.as_deref().unwrap_or(""),
        "delivery attempt"
    );
    let sent = outcome.message_ids.clone();
    match store.finish_delivery(&d.post_id, d.idx, outcome).await {
        // Unpublished while this one was on its way (a scheduled post cannot be cancelled
        // once a delivery has started): what it sent goes too.
        Ok(PostState::Cancelled) if !sent.is_empty() => unsend(state, &d, sent).await,
        Ok(_) => {}
        // Left `sending`: the next look repeats it with the same random_id.
        Err(e) => tracing::warn!(post_id = %d.post_id, error = %e, "recording a delivery failed"),
    }
}

/// Deletes what a delivery sent after its post was unpublished.
async fn unsend(state: &AppState, d: &Delivery, message_ids: Vec<i32>) {
    let (Some(fleet), Ok(chat)) = (&state.fleet, d.chat.parse::<Peer>()) else {
        return;
    };
    for message_id in message_ids {
        let command = DeleteMessage {
            chat: chat.clone(),
            message_id,
        };
        match fleet.call(d.account_id, command).await {
            // Already gone: the unpublish request got to it first.
            Err(e) if e.code() != "MESSAGE_ID_INVALID" => tracing::warn!(
                post_id = %d.post_id, account_id = d.account_id, message_id, error = %e,
                "deleting a message sent after its post was unpublished failed"
            ),
            _ => {}
        }
    }
}

async fn attempt(state: &AppState, post: &Post, d: &Delivery) -> DeliveryOutcome {
    let now = Utc::now();
    let failed = |code: &str, message: String| DeliveryOutcome {
        state: DeliveryState::Failed,
        next_attempt_at: now,
        message_ids: Vec::new(),
        error_code: Some(code.to_owned()),
        error_message: Some(message),
    };
    let Some(fleet) = &state.fleet else {
        return failed(
            "TELEGRAM_NOT_CONFIGURED",
            "Telegram is not configured".into(),
        );
    };
    let Ok(peer) = d.chat.parse::<Peer>() else {
        return failed("PEER_INVALID", format!("{:?} names no chat", d.chat));
    };
    let mut media = Vec::with_capacity(post.media.len());
    for id in &post.media {
        match state.store.media(id).await {
            Ok(m) => media.push(m),
            Err(tgfleet_persistence::StoreError::NotFound) => {
                return failed("MEDIA_NOT_FOUND", format!("media {id} was deleted"));
            }
            Err(e) => return retry_or_fail(state, d, now, "STORE_UNAVAILABLE", e.to_string()),
        }
    }
    let text = match content_text(
        (!post.text.is_empty() || media.is_empty()).then(|| post.text.clone()),
        post.parse_mode.as_deref(),
        &media,
    ) {
        Ok(t) => t,
        Err(e) => return failed(e.code(), e.to_string()),
    };
    let extra = upload_time(&media);
    let command = SendMessage {
        peer,
        text,
        media,
        random_id: Some(d.random_id),
        dedupe_key: None,
        options: SendOptions {
            reply_to: None,
            silent: post.silent,
            no_link_preview: !post.link_preview,
        },
    };
    match fleet
        .call_with_extra_time(d.account_id, command, extra)
        .await
    {
        Ok(sent) => DeliveryOutcome {
            state: DeliveryState::Sent,
            next_attempt_at: now,
            message_ids: if sent.message_ids.is_empty() {
                vec![sent.message_id]
            } else {
                sent.message_ids
            },
            error_code: None,
            error_message: None,
        },
        Err(e) => classify(state, post, d, now, e),
    }
}

/// What a failed attempt means: wait out a flood wait (up to `posts.max_delay_s` after the
/// publish time), retry transient trouble with backoff, fail on Telegram's refusals.
fn classify(
    state: &AppState,
    post: &Post,
    d: &Delivery,
    now: DateTime<Utc>,
    e: FleetError,
) -> DeliveryOutcome {
    let code = e.code();
    let message = e.to_string();
    match e {
        FleetError::Account(AccountError::FloodWait { seconds, .. }) => {
            let at = now + chrono::Duration::seconds(i64::from(seconds));
            let latest = post.publish_at
                + chrono::Duration::seconds(state.settings.posts.max_delay_s as i64);
            if at <= latest {
                DeliveryOutcome {
                    state: DeliveryState::Pending,
                    next_attempt_at: at,
                    message_ids: Vec::new(),
                    error_code: Some(code.to_owned()),
                    error_message: Some(message),
                }
            } else {
                fail(
                    now,
                    code,
                    format!("{message}: later than posts.max_delay_s allows"),
                )
            }
        }
        FleetError::Unavailable { .. }
        | FleetError::Account(
            AccountError::Timeout
            | AccountError::Reconnecting
            | AccountError::Internal(_)
            | AccountError::Busy(_)
            | AccountError::Hibernating,
        ) => retry_or_fail(state, d, now, code, message),
        // Telegram's own trouble (5xx), or a repeat of a send it is still working on
        // (RANDOM_ID_DUPLICATE): tried again with the same random_id, which Telegram answers with
        // the message it already has.
        FleetError::Account(AccountError::Telegram { code, ref name })
            if code >= 500 || name == "RANDOM_ID_DUPLICATE" =>
        {
            retry_or_fail(state, d, now, &name.clone(), message)
        }
        FleetError::Account(AccountError::Telegram { ref name, .. }) => {
            fail(now, &name.clone(), message)
        }
        _ => fail(now, code, message),
    }
}

fn fail(now: DateTime<Utc>, code: &str, message: String) -> DeliveryOutcome {
    DeliveryOutcome {
        state: DeliveryState::Failed,
        next_attempt_at: now,
        message_ids: Vec::new(),
        error_code: Some(code.to_owned()),
        error_message: Some(message),
    }
}

fn retry_or_fail(
    state: &AppState,
    d: &Delivery,
    now: DateTime<Utc>,
    code: &str,
    message: String,
) -> DeliveryOutcome {
    let attempts = u32::try_from(d.attempts).unwrap_or(u32::MAX);
    if attempts >= state.settings.posts.max_attempts {
        return fail(now, code, format!("{message} (after {attempts} attempts)"));
    }
    let backoff = BACKOFF_MIN
        .saturating_mul(1 << attempts.min(16))
        .min(BACKOFF_MAX);
    DeliveryOutcome {
        state: DeliveryState::Pending,
        next_attempt_at: now + chrono::Duration::from_std(backoff).unwrap_or_default(),
        message_ids: Vec::new(),
        error_code: Some(code.to_owned()),
        error_message: Some(message),
    }
}
