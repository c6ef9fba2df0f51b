//! Delivers the event log to webhook endpoints, at least once, in order per (endpoint, account).
//!
//! Each round: every enabled endpoint's new events (after its cursor, of what its owner may
//! see, of the types and accounts it asked for) are queued as delivery rows, with the cursor
//! moved in the same transaction; then the head of each (endpoint, account) queue that is due
//! is claimed — one more attempt, and not due again before the attempt's timeout is long past,
//! so an attempt a crash cut short is repeated later with the same `webhook-id` — and sent.
//! A failure is retried with exponential backoff and jitter until `give_up_after_s` after the
//! first attempt, then dead-lettered (the next event of that queue goes on); an endpoint whose
//! every attempt failed for `disable_after_s` is disabled, and a `webhook.disabled` event says so.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tgfleet_persistence::{
    AttemptOutcome, Event, EventFilter, EventType, NewEvent, Role, Webhook, WebhookAttempt,
    WebhookDelivery,
};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

use crate::state::AppState;
use crate::webhooks::{sign, target};

/// Events looked at per endpoint and round, in pages of this size.
const PAGE: u32 = 500;
const PAGES_PER_ROUND: usize = 10;
/// A round runs at least this often (retries fall due, other nodes append).
const TICK: Duration = Duration::from_secs(1);
/// An attempt's claim lasts twice its timeout, and at least this long, before it is due again:
/// long enough that a live attempt has ended, short enough that one a crash cut short is soon
/// repeated.
const LEASE_MIN: Duration = Duration::from_secs(5);
/// How much of an error message a delivery log row keeps.
const ERROR_CHARS: usize = 300;

pub async fn run(state: AppState, stop: CancellationToken) {
    let settings = state.settings.webhooks.clone();
    let client = match client(&settings) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhooks: cannot build the HTTP client; no deliveries");
            return;
        }
    };
    let mut feed = state.store.event_feed();
    let mut worker = Worker {
        state: state.clone(),
        client,
        keys: HashMap::new(),
        in_flight: HashSet::new(),
        attempts: JoinSet::new(),
        slots: Arc::new(tokio::sync::Semaphore::new(settings.parallel)),
    };
    loop {
        feed.borrow_and_update();
        worker.round().await;
        tokio::select! {
            () = stop.cancelled() => break,
            Ok(()) = feed.changed() => {}
            Some(done) = worker.attempts.join_next() => worker.finished(done),
            () = tokio::time::sleep(TICK) => {}
        }
        while let Some(done) = worker.attempts.try_join_next() {
            worker.finished(done);
        }
    }
    // Attempts in flight are left to finish for a moment; one cut short is repeated after a
    // restart (its claim runs out), with the same webhook-id.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while worker.attempts.join_next().await.is_some() {}
    })
    .await;
}

fn client(settings: &tgfleet_config::WebhooksSettings) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_millis(settings.timeout_ms))
        .connect_timeout(Duration::from_millis(settings.timeout_ms))
        .redirect(reqwest::redirect::Policy::none())
        // A proxy from the environment would connect on our behalf, past the address check.
        .no_proxy()
        .dns_resolver(Arc::new(target::GuardedResolver {
            allow_private: settings.allow_private_targets,
        }))
        .user_agent(concat!("tgfleet-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The additional data a webhook's secret is sealed with: negative, so it never equals an
/// account id, and distinct per webhook, so one endpoint's sealed secret does not open as
/// another's.
pub fn secret_aad(webhook_id: &str) -> i64 {
    let id = uuid::Uuid::parse_str(webhook_id).map_or(0, |u| u.as_u64_pair().1);
    i64::MIN | (id & (i64::MAX as u64)) as i64
}

type Keys = Vec<Zeroizing<Vec<u8>>>;

/// Signing keys opened for one endpoint: its `updated_at` then, and when the previous secret
/// among them stops signing.
struct OpenedKeys {
    at: DateTime<Utc>,
    overlap_until: Option<DateTime<Utc>>,
    keys: Arc<Keys>,
}

struct Worker {
    state: AppState,
    client: reqwest::Client,
    keys: HashMap<String, OpenedKeys>,
    in_flight: HashSet<(String, i64)>,
    attempts: JoinSet<(String, i64)>,
    slots: Arc<tokio::sync::Semaphore>,
}

impl Worker {
    async fn round(&mut self) {
        let hooks = match self.state.store.list_webhooks(None).await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "webhooks: listing endpoints");
                return;
            }
        };
        let mut roles = HashMap::new();
        for hook in hooks.iter().filter(|h| h.enabled) {
            if let Err(e) = self.enqueue(hook, &mut roles).await {
                tracing::warn!(webhook_id = %hook.id, error = %e, "webhooks: queueing events");
            }
        }
        let hooks: HashMap<&str, &Webhook> = hooks.iter().map(|h| (h.id.as_str(), h)).collect();
        let now = Utc::now();
        let limit = u32::try_from(self.state.settings.webhooks.parallel * 2).unwrap_or(u32::MAX);
        let due = match self.state.store.due_webhook_deliveries(now, limit).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "webhooks: finding due deliveries");
                return;
            }
        };
        for d in due {
            let key = (d.webhook_id.clone(), d.event_id);
            if self.in_flight.contains(&key) {
                continue;
            }
            let Some(hook) = hooks.get(d.webhook_id.as_str()) else {
                continue;
            };
            let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() else {
                break;
            };
            let keys = match self.keys_of(hook).await {
                Ok(k) => k,
                Err(e) => {
                    tracing::error!(webhook_id = %hook.id, error = %e, "webhooks: opening a secret");
                    continue;
                }
            };
            let timeout = Duration::from_millis(self.state.settings.webhooks.timeout_ms);
            let lease = chrono::Duration::from_std((timeout * 2).max(LEASE_MIN))
                .unwrap_or(chrono::Duration::seconds(60));
            let claimed = match self
                .state
                .store
                .claim_webhook_delivery(&d.webhook_id, d.event_id, now, now + lease)
                .await
            {
                Ok(Some(c)) => c,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "webhooks: claiming a delivery");
                    continue;
                }
            };
            self.in_flight.insert(key.clone());
            let attempt = Attempt {
                state: self.state.clone(),
                client: self.client.clone(),
                hook: (*hook).clone(),
                keys,
                delivery: claimed,
            };
            self.attempts.spawn(async move {
                attempt.run().await;
                drop(slot);
                key
            });
        }
    }

    fn finished(&mut self, done: Result<(String, i64), tokio::task::JoinError>) {
        match done {
            Ok(key) => {
                self.in_flight.remove(&key);
            }
            Err(e) => {
                // A panicked attempt's claim runs out and it is tried again; forget what is in
                // flight so nothing stays blocked in memory.
                tracing::error!(error = %e, "webhooks: an attempt panicked");
                self.in_flight.clear();
            }
        }
    }

    /// Queues the endpoint's new events and moves its cursor past what was looked at.
    async fn enqueue(&self, hook: &Webhook, roles: &mut HashMap<i64, Role>) -> anyhow::Result<()> {
        let role = match roles.get(&hook.owner_id) {
            Some(r) => *r,
            None => {
                let user = self.state.store.user_by_id(hook.owner_id).await?;
                // A disabled user's endpoints receive nothing (their cursor stays put).
                if user.disabled {
                    return Ok(());
                }
                roles.insert(hook.owner_id, user.role);
                user.role
            }
        };
        let mut cursor = hook.cursor;
        for _ in 0..PAGES_PER_ROUND {
            let page = self
                .state
                .store
                .events(EventFilter {
                    after: cursor,
                    limit: PAGE,
                    owner_id: (role != Role::Admin).then_some(hook.owner_id),
                    ..Default::default()
                })
                .await?;
            let Some(last) = page.last().map(|e| e.id) else {
                return Ok(());
            };
            let matched: Vec<(i64, i64)> = page
                .iter()
                .filter(|e| wants(hook, e))
                .map(|e| (e.id, e.account_id.unwrap_or(0)))
                .collect();
            let moved = self
                .state
                .store
                .enqueue_webhook_events(&hook.id, cursor, last, &matched, Utc::now())
                .await?;
            if !moved {
                // A replay or a patch moved the cursor: the next round starts from there.
                return Ok(());
            }
            cursor = last;
            if page.len() < PAGE as usize {
                return Ok(());
            }
        }
        Ok(())
    }

    async fn keys_of(&mut self, hook: &Webhook) -> anyhow::Result<Arc<Keys>> {
        if let Some(opened) = self.keys.get(&hook.id) {
            if opened.at == hook.updated_at && opened.overlap_until.is_none_or(|u| u > Utc::now()) {
                return Ok(Arc::clone(&opened.keys));
            }
        }
        let aad = secret_aad(&hook.id);
        let cipher = &self.state.cipher;
        let mut keys: Keys = Vec::new();
        let mut sealed = vec![hook.secret.as_slice()];
        let mut overlap = None;
        if let (Some(prev), Some(until)) = (&hook.previous_secret, hook.previous_until) {
            if until > Utc::now() {
                sealed.push(prev);
                overlap = Some(until);
            }
        }
        for blob in sealed {
            let secret = cipher.open(aad, blob).await?;
            let text = std::str::from_utf8(&secret)?;
            keys.push(sign::key_of(text).ok_or_else(|| anyhow::anyhow!("malformed secret"))?);
        }
        let keys = Arc::new(keys);
        let opened = OpenedKeys {
            at: hook.updated_at,
            overlap_until: overlap,
            keys: Arc::clone(&keys),
        };
        self.keys.insert(hook.id.clone(), opened);
        Ok(keys)
    }
}

/// Whether the endpoint asked for this event (its owner may see it: the read was filtered).
pub(crate) fn wants(hook: &Webhook, e: &Event) -> bool {
    if e.kind == EventType::Ping {
        // A ping goes to the endpoint it tests, whatever it subscribed to.
        return e.data.get("webhook_id").and_then(|v| v.as_str()) == Some(hook.id.as_str());
    }
    let typed = hook.events.iter().any(|t| t == "*" || t == e.kind.as_str());
    // Events of no single account (a post's end, an endpoint disabled) belong to the owner as a
    // whole and pass an account filter.
    let accounted = match (&hook.account_ids, e.account_id) {
        (Some(ids), Some(id)) => ids.contains(&id),
        _ => true,
    };
    typed && accounted
}

struct Attempt {
    state: AppState,
    client: reqwest::Client,
    hook: Webhook,
    keys: Arc<Keys>,
    delivery: WebhookDelivery,
}

impl Attempt {
    async fn run(self) {
        let d = &self.delivery;
        let started = Instant::now();
        let at = Utc::now();
        let sent = self.send().await;
        let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let (status, error) = match &sent {
            Ok(status) if (200..300).contains(status) => (Some(*status), None),
            Ok(status) => (
                Some(*status),
                Some(format!("the endpoint answered {status}")),
            ),
            Err(e) => (None, Some(clip(e))),
        };
        let settings = &self.state.settings.webhooks;
        let (outcome, next) = if error.is_none() {
            (AttemptOutcome::Succeeded, None)
        } else {
            let delay = backoff(settings, d.attempts, rand::random::<f64>());
            let next = at + delay;
            let first = d.first_attempt_at.unwrap_or(at);
            let give_up = first + chrono::Duration::seconds(settings.give_up_after_s as i64);
            if matches!(&sent, Err(SendError::Gone)) || next > give_up {
                (AttemptOutcome::Dead, None)
            } else {
                (AttemptOutcome::Retrying, Some(next))
            }
        };
        let record = WebhookAttempt {
            id: 0,
            webhook_id: d.webhook_id.clone(),
            event_id: d.event_id,
            attempt: d.attempts,
            at,
            status: status.map(i32::from),
            latency_ms,
            error,
            outcome,
            next_attempt_at: next,
        };
        self.state
            .event_metrics
            .delivery(outcome.as_str(), started.elapsed().as_secs_f64());
        let failing_since = match self.state.store.finish_webhook_attempt(record).await {
            Ok(since) => since,
            Err(e) => {
                // The claim runs out and the attempt is made again: at least once.
                tracing::warn!(webhook_id = %d.webhook_id, event_id = d.event_id, error = %e,
                    "webhooks: recording an attempt");
                return;
            }
        };
        if let Some(since) = failing_since {
            let limit = chrono::Duration::seconds(settings.disable_after_s as i64);
            if at - since >= limit {
                self.disable(since).await;
            }
        }
    }

    async fn send(&self) -> Result<u16, SendError> {
        let event = self.event().await?;
        let body = serde_json::to_vec(&crate::events::view(event))
            .map_err(|e| SendError::Other(format!("encoding the event: {e}")))?;
        let allow_private = self.state.settings.webhooks.allow_private_targets;
        // An address literal never reaches the resolver: checked here, on every attempt.
        let url = target::check_url(&self.hook.url, allow_private).map_err(SendError::Forbidden)?;
        let id = self.delivery.event_id.to_string();
        let timestamp = Utc::now().timestamp();
        let keys: Vec<&[u8]> = self.keys.iter().map(|k| k.as_slice()).collect();
        let signature = sign::header(&keys, &id, timestamp, &body);
        let response = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| SendError::Other(describe(&e)))?;
        Ok(response.status().as_u16())
    }

    async fn event(&self) -> Result<Event, SendError> {
        let id = self.delivery.event_id;
        let page = self
            .state
            .store
            .events(EventFilter {
                after: id - 1,
                limit: 1,
                ..Default::default()
            })
            .await
            .map_err(|e| SendError::Other(format!("reading the event: {e}")))?;
        page.into_iter().find(|e| e.id == id).ok_or(SendError::Gone)
    }

    async fn disable(&self, since: DateTime<Utc>) {
        let reason = format!(
            "every delivery failed since {since}; re-enable with PATCH {{\"enabled\": true}}"
        );
        let event = NewEvent {
            kind: EventType::WebhookDisabled,
            account_id: None,
            owner_id: self.hook.owner_id,
            occurred_at: Utc::now(),
            data: serde_json::json!({
                "webhook_id": self.hook.id,
                "url": self.hook.url,
                "failing_since": since,
                "reason": reason,
            }),
            dedupe_key: None,
        };
        match self
            .state
            .store
            .disable_webhook(&self.hook.id, &reason, event)
            .await
        {
            Ok(true) => tracing::warn!(webhook_id = %self.hook.id, "webhook disabled: {reason}"),
            Ok(false) => {}
            Err(e) => tracing::warn!(webhook_id = %self.hook.id, error = %e, "disabling a webhook"),
        }
    }
}

enum SendError {
    /// The event is no longer in the log (retention): nothing to deliver, ever.
    Gone,
    Forbidden(String),
    Other(String),
}

fn clip(e: &SendError) -> String {
    let text = match e {
        SendError::Gone => "the event is no longer in the log (events.retention_h)".to_owned(),
        SendError::Forbidden(why) => format!("TARGET_FORBIDDEN: {why}"),
        SendError::Other(why) => why.clone(),
    };
    text.chars().take(ERROR_CHARS).collect()
}

/// reqwest's error with its causes ("error sending request: … connection refused").
fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_owned()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The wait before attempt `attempts + 1`: `retry_initial_ms` doubling per attempt up to
/// `retry_max_ms`, then between 80 % and 120 % of that (`jitter` in 0..1), so endpoints that
/// failed together do not all retry at the same instant.
pub(crate) fn backoff(
    settings: &tgfleet_config::WebhooksSettings,
    attempts: i32,
    jitter: f64,
) -> chrono::Duration {
    let exp = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(30);
    let base = settings
        .retry_initial_ms
        .saturating_mul(1u64 << exp)
        .min(settings.retry_max_ms) as f64;
    let ms = base * (0.8 + 0.4 * jitter.clamp(0.0, 1.0));
    chrono::Duration::milliseconds(ms as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(events: &[&str], accounts: Option<Vec<i64>>) -> Webhook {
        Webhook {
            id: "0190a0a0-0000-7000-8000-000000000001".into(),
            owner_id: 1,
            url: "https://example.com/".into(),
            events: events.iter().map(|s| (*s).to_owned()).collect(),
            account_ids: accounts,
            description: None,
            secret: Vec::new(),
            previous_secret: None,
            previous_until: None,
            enabled: true,
            disabled_reason: None,
            failing_since: None,
            cursor: 0,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn event(kind: EventType, account: Option<i64>, data: serde_json::Value) -> Event {
        Event {
            id: 1,
            kind,
            account_id: account,
            owner_id: 1,
            occurred_at: Utc::now(),
            data,
        }
    }

    #[test]
    fn an_endpoint_gets_the_types_and_accounts_it_asked_for() {
        let received = event(EventType::MessageReceived, Some(7), serde_json::json!({}));
        assert!(wants(&hook(&["*"], None), &received));
        assert!(wants(
            &hook(&["message.received"], Some(vec![7])),
            &received
        ));
        assert!(!wants(&hook(&["post.published"], None), &received));
        assert!(!wants(&hook(&["*"], Some(vec![8])), &received));
        let published = event(EventType::PostPublished, None, serde_json::json!({}));
        assert!(wants(&hook(&["*"], Some(vec![8])), &published));
    }

    #[test]
    fn a_ping_goes_only_to_the_endpoint_it_tests() {
        let h = hook(&["message.received"], None);
        let mine = event(
            EventType::Ping,
            None,
            serde_json::json!({ "webhook_id": h.id }),
        );
        let other = event(
            EventType::Ping,
            None,
            serde_json::json!({ "webhook_id": "x" }),
        );
        assert!(wants(&h, &mine));
        assert!(!wants(&hook(&["*"], None), &other));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let s = tgfleet_config::WebhooksSettings::default();
        let ms = |attempts, jitter| backoff(&s, attempts, jitter).num_milliseconds();
        assert_eq!(ms(1, 0.5), 5_000);
        assert_eq!(ms(2, 0.5), 10_000);
        assert_eq!(ms(3, 0.5), 20_000);
        assert_eq!(ms(40, 0.5), 3_600_000);
        assert_eq!(ms(1, 0.0), 4_000);
        assert_eq!(ms(1, 1.0), 6_000);
    }

    #[test]
    fn secret_aads_are_negative_and_distinct() {
        let a = secret_aad("0190a0a0-0000-7000-8000-000000000001");
        let b = secret_aad("0190a0a0-0000-7000-8000-000000000002");
        assert!(a < 0 && b < 0 && a != b);
    }
}
