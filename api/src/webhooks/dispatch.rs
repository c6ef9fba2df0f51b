//! Delivers the event log to webhook endpoints, at least once, in order per (endpoint, account).
//!
//! One worker: new events (after each endpoint's cursor, of what its owner may see, of the types
//! and accounts it asked for) are queued as delivery rows, with the cursor moved in the same
//! transaction, and into the worker's picture of the queues (`queues.rs`). The heads that are
//! due are claimed in one statement — one more attempt each, and not due again before the
//! attempt's timeout is long past, so an attempt a crash cut short is repeated later with the
//! same `webhook-id` — and sent; the attempts that ended meanwhile are recorded in one
//! transaction. A failure is retried with exponential backoff and jitter until
//! `give_up_after_s` after the first attempt, then dead-lettered (the next event of that queue
//! goes on); an endpoint whose every attempt failed for `disable_after_s` is disabled, and a
//! `webhook.disabled` event says so.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tgfleet_persistence::{
    AttemptOutcome, Event, EventFilter, EventType, NewEvent, Role, Webhook, WebhookAttempt,
    WebhookDelivery, WebhookFailing,
};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

use crate::state::AppState;
use crate::webhooks::queues::{Finish, QueueKey, Queues, WINDOW};
use crate::webhooks::{sign, target};

/// Events looked at per endpoint and round, in pages of this size.
const PAGE: u32 = 500;
const PAGES_PER_ROUND: usize = 10;
/// The endpoints and their owners are read again at least this often (another node's change,
/// a replay's cursor), and at most this often when new events wake the dispatcher.
const TICK: Duration = Duration::from_secs(1);
const REFRESH_MIN: Duration = Duration::from_millis(250);
/// While there is something to send, new events are queued at most this often.
const ENQUEUE_EVERY: Duration = Duration::from_millis(20);
/// An attempt's claim lasts twice its timeout, and at least this long, before it is due again:
/// long enough that a live attempt has ended, short enough that one a crash cut short is soon
/// repeated.
const LEASE_MIN: Duration = Duration::from_secs(5);
/// How much of an error message a delivery log row keeps.
const ERROR_CHARS: usize = 300;
/// Events read for queueing are kept this many at a time, so their first attempts need not
/// read them again.
const EVENT_CACHE: usize = 4096;
/// An ended attempt waits at most this long for others in flight to end too, so that one
/// transaction records several: recorded one by one, each cost a transaction and a claim of
/// its own, most of the server's CPU per delivery (`benches/events_throughput.rs`).
const GATHER: Duration = Duration::from_millis(2);

pub async fn run(state: AppState, stop: CancellationToken) {
    let client = match client(&state.settings.webhooks) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhooks: cannot build the HTTP client; no deliveries");
            return;
        }
    };
    let mut feed = state.store.event_feed();
    let mut worker = Worker {
        state,
        client,
        keys: HashMap::new(),
        hooks: HashMap::new(),
        cursors: HashMap::new(),
        owners: HashMap::new(),
        reload: HashSet::new(),
        refreshed: None,
        queues: Queues::default(),
        events: EventCache::default(),
        attempts: JoinSet::new(),
        running: HashMap::new(),
        finished: Vec::new(),
        first_finished: None,
    };
    let mut new_events = true;
    let mut last_enqueue = Instant::now();
    loop {
        let refresh_after = if new_events { REFRESH_MIN } else { TICK };
        if worker
            .refreshed
            .is_none_or(|at| at.elapsed() >= refresh_after)
        {
            worker.refresh().await;
            new_events = true;
        }
        // While appends keep coming, queueing waits its turn so that sending goes on.
        let queue_now = new_events
            && (worker.queues.next_due().is_none() || last_enqueue.elapsed() >= ENQUEUE_EVERY);
        if queue_now {
            worker.enqueue_all().await;
            last_enqueue = Instant::now();
            new_events = false;
        }
        worker.reload_marked().await;
        worker.dispatch().await;
        let mut wake = worker.next_wake();
        if new_events {
            wake = wake.min(ENQUEUE_EVERY.saturating_sub(last_enqueue.elapsed()));
        }
        let wake = wake.max(Duration::from_millis(1));
        tokio::select! {
            () = stop.cancelled() => break,
            Ok(()) = feed.changed() => {
                // Seen now, or `changed` would answer at once until the next queueing.
                feed.borrow_and_update();
                new_events = true;
            }
            Some(done) = worker.attempts.join_next_with_id() => worker.collect(done),
            () = tokio::time::sleep(wake) => {}
        }
        while let Some(done) = worker.attempts.try_join_next_with_id() {
            worker.collect(done);
        }
        if worker.batch_ready() {
            worker.finish_batch(true).await;
        }
    }
    // Attempts in flight are left to finish for a moment; one cut short is repeated after a
    // restart (its claim runs out), with the same webhook-id.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(done) = worker.attempts.join_next_with_id().await {
            worker.collect(done);
        }
    })
    .await;
    // Recorded only: an attempt started now would be cut off when the worker returns.
    worker.finish_batch(false).await;
}

type Keys = Vec<Zeroizing<Vec<u8>>>;

/// Signing keys opened for one endpoint: its `updated_at` then, and when the previous secret
/// among them stops signing.
struct OpenedKeys {
    at: DateTime<Utc>,
    overlap_until: Option<DateTime<Utc>>,
    keys: Arc<Keys>,
}

/// Recently read events, oldest evicted first.
#[derive(Default)]
struct EventCache {
    map: HashMap<i64, Arc<Event>>,
    order: VecDeque<i64>,
}

impl EventCache {
    fn put(&mut self, e: &Event) {
        if self.map.insert(e.id, Arc::new(e.clone())).is_none() {
            self.order.push_back(e.id);
        }
        while self.order.len() > EVENT_CACHE {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }
}

/// A queue head taken to be claimed and sent.
struct Due {
    key: QueueKey,
    event_id: i64,
    hook: Arc<Webhook>,
    keys: Arc<Keys>,
}

fn claim_pairs(due: &[Due]) -> Vec<(String, i64)> {
    due.iter()
        .map(|d| (d.key.0.to_string(), d.event_id))
        .collect()
}

/// What an attempt left, for the worker to record.
struct Finished {
    key: QueueKey,
    record: WebhookAttempt,
}

struct Worker {
    state: AppState,
    client: reqwest::Client,
    keys: HashMap<String, OpenedKeys>,
    /// Enabled endpoints, as last read.
    hooks: HashMap<Arc<str>, Arc<Webhook>>,
    /// Each enabled endpoint's cursor as this worker last wrote or read it: another value in
    /// the store means someone else moved it (a replay), and its queues are read again.
    cursors: HashMap<Arc<str>, i64>,
    /// Each endpoint owner's role; `None`: disabled (their endpoints receive nothing new).
    owners: HashMap<i64, Option<Role>>,
    /// Endpoints whose queues are to be read again from the store.
    reload: HashSet<Arc<str>>,
    refreshed: Option<Instant>,
    queues: Queues,
    events: EventCache,
    attempts: JoinSet<Finished>,
    /// What each attempt task is attempting, for one that panics.
    running: HashMap<tokio::task::Id, (QueueKey, i64, DateTime<Utc>)>,
    finished: Vec<Finished>,
    /// When the oldest of `finished` ended.
    first_finished: Option<Instant>,
}

impl Worker {
    /// Reads the endpoints and their owners again; queues of new or re-enabled endpoints, and
    /// of those whose cursor someone else moved, are read from the store.
    async fn refresh(&mut self) {
        // Also after a failure: the next try waits for the tick.
        self.refreshed = Some(Instant::now());
        let listed = match self.state.store.list_webhooks(None).await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "webhooks: listing endpoints");
                return;
            }
        };
        let mut hooks = HashMap::new();
        let mut owners = HashMap::new();
        for hook in listed.into_iter().filter(|h| h.enabled) {
            if let std::collections::hash_map::Entry::Vacant(slot) = owners.entry(hook.owner_id) {
                match self.state.store.user_by_id(hook.owner_id).await {
                    Ok(user) => {
                        slot.insert((!user.disabled).then_some(user.role));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "webhooks: reading an endpoint's owner");
                        slot.insert(None);
                    }
                }
            }
            let id: Arc<str> = match self.hooks.get_key_value(hook.id.as_str()) {
                Some((id, _)) => Arc::clone(id),
                None => Arc::from(hook.id.as_str()),
            };
            if self.cursors.get(&id) != Some(&hook.cursor) {
                self.cursors.insert(Arc::clone(&id), hook.cursor);
                self.reload.insert(Arc::clone(&id));
            }
            hooks.insert(id, Arc::new(hook));
        }
        let gone: Vec<Arc<str>> = self
            .hooks
            .keys()
            .filter(|id| !hooks.contains_key(*id))
            .cloned()
            .collect();
        for id in gone {
            self.queues.drop_webhook(&id);
            self.cursors.remove(&id);
            self.reload.remove(&id);
            self.keys.remove(&*id);
        }
        self.hooks = hooks;
        self.owners = owners;
    }

    async fn enqueue_all(&mut self) {
        let hooks: Vec<Arc<Webhook>> = self.hooks.values().cloned().collect();
        for hook in hooks {
            if let Err(e) = self.enqueue(&hook).await {
                tracing::warn!(webhook_id = %hook.id, error = %e, "webhooks: queueing events");
            }
        }
    }

    /// Queues the endpoint's new events and moves its cursor past what was looked at.
    async fn enqueue(&mut self, hook: &Webhook) -> anyhow::Result<()> {
        let Some(&Some(role)) = self.owners.get(&hook.owner_id) else {
            // A disabled user's endpoints receive nothing (their cursor stays put).
            return Ok(());
        };
        let Some((id, &start)) = self.cursors.get_key_value(hook.id.as_str()) else {
            return Ok(());
        };
        let id = Arc::clone(id);
        let mut cursor = start;
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
            let matched: Vec<&Event> = page.iter().filter(|e| wants(hook, e)).collect();
            let rows: Vec<(i64, i64)> = matched
                .iter()
                .map(|e| (e.id, e.account_id.unwrap_or(0)))
                .collect();
            let now = Utc::now();
            let moved = self
                .state
                .store
                .enqueue_webhook_events(&hook.id, cursor, last, &rows, now)
                .await?;
            if !moved {
                // A replay or another node moved the cursor: read the endpoint again.
                self.cursors.remove(&id);
                self.refreshed = None;
                return Ok(());
            }
            cursor = last;
            self.cursors.insert(Arc::clone(&id), cursor);
            if !self.reload.contains(&id) {
                for e in matched {
                    self.events.put(e);
                    let key = (Arc::clone(&id), e.account_id.unwrap_or(0));
                    self.queues.push(key, e.id, now);
                }
            }
            if page.len() < PAGE as usize {
                return Ok(());
            }
        }
        Ok(())
    }

    async fn reload_marked(&mut self) {
        let marked: Vec<Arc<str>> = self.reload.iter().cloned().collect();
        for id in marked {
            match self
                .state
                .store
                .pending_webhook_deliveries(Some(&id), None, WINDOW)
                .await
            {
                Ok(rows) => {
                    self.queues.reload(&id, None, &rows);
                    self.reload.remove(&id);
                }
                Err(e) => {
                    // This one and those not read yet stay marked for the next round.
                    tracing::warn!(webhook_id = %id, error = %e, "webhooks: reading a queue");
                    return;
                }
            }
        }
    }

    async fn reload_queue(&mut self, key: &QueueKey) {
        self.queues.forget(key);
        match self
            .state
            .store
            .pending_webhook_deliveries(Some(&key.0), Some(key.1), WINDOW)
            .await
        {
            Ok(rows) => self.queues.reload(&key.0, Some(key.1), &rows),
            Err(e) => {
                tracing::warn!(webhook_id = %key.0, error = %e, "webhooks: reading a queue");
                self.reload.insert(Arc::clone(&key.0));
            }
        }
    }

    fn free_slots(&self) -> usize {
        self.state
            .settings
            .webhooks
            .parallel
            .saturating_sub(self.attempts.len() + self.finished.len())
    }

    fn next_wake(&self) -> Duration {
        let tick = TICK.saturating_sub(self.refreshed.map_or(TICK, |at| at.elapsed()));
        let due = match (self.free_slots() > 0, self.queues.next_due()) {
            (true, Some(at)) => (at - Utc::now()).to_std().unwrap_or(Duration::ZERO),
            _ => TICK,
        };
        let gather = self
            .first_finished
            .map_or(TICK, |at| GATHER.saturating_sub(at.elapsed()));
        tick.min(due).min(gather).max(Duration::from_millis(1))
    }

    /// Claims the heads that are due, in one statement, and starts their attempts.
    async fn dispatch(&mut self) {
        let now = Utc::now();
        let due = self.take_due(now).await;
        if due.is_empty() {
            return;
        }
        let pairs = claim_pairs(&due);
        let lease_until = now + self.lease();
        match self
            .state
            .store
            .claim_webhook_deliveries(&pairs, now, lease_until)
            .await
        {
            Ok(claimed) => self.start(due, claimed).await,
            Err(e) => {
                tracing::warn!(error = %e, "webhooks: claiming deliveries");
                let later = now + chrono::Duration::from_std(TICK).unwrap_or_default();
                self.unclaim(&due, later);
            }
        }
    }

    /// How long a claim keeps an attempt from being due again.
    fn lease(&self) -> chrono::Duration {
        let timeout = Duration::from_millis(self.state.settings.webhooks.timeout_ms);
        chrono::Duration::from_std((timeout * 2).max(LEASE_MIN))
            .unwrap_or(chrono::Duration::seconds(60))
    }

    /// Takes the heads due at `now` that free slots allow (their queues become busy), with
    /// their endpoints and signing keys. What cannot be sent is not taken: a claim counts an
    /// attempt.
    async fn take_due(&mut self, now: DateTime<Utc>) -> Vec<Due> {
        let taken = self.queues.take_due(now, self.free_slots());
        let mut due = Vec::with_capacity(taken.len());
        for (key, id) in taken {
            let Some(hook) = self.hooks.get(&key.0).cloned() else {
                // Deleted or disabled meanwhile.
                self.queues.forget(&key);
                continue;
            };
            match self.keys_of(&hook).await {
                Ok(keys) => due.push(Due {
                    key,
                    event_id: id,
                    hook,
                    keys,
                }),
                Err(e) => {
                    tracing::error!(webhook_id = %hook.id, error = %e, "webhooks: opening a secret");
                    let later = now + chrono::Duration::from_std(LEASE_MIN).unwrap_or_default();
                    self.queues.finish(&key, id, Finish::DueAt(later));
                }
            }
        }
        due
    }

    /// Gives back heads taken but not claimed: their queues are due again at `at`.
    fn unclaim(&mut self, due: &[Due], at: DateTime<Utc>) {
        for d in due {
            self.queues.finish(&d.key, d.event_id, Finish::DueAt(at));
        }
    }

    /// Starts an attempt for each head the store let us claim; a queue whose head it did not
    /// is read again.
    async fn start(&mut self, due: Vec<Due>, claimed: Vec<WebhookDelivery>) {
        let mut claimed: HashMap<(String, i64), WebhookDelivery> = claimed
            .into_iter()
            .map(|d| ((d.webhook_id.clone(), d.event_id), d))
            .collect();
        // This round's events: from the cache, the rest read at once (and kept apart from the
        // cache, whose evictions must not take them away before they are sent).
        let mut events: HashMap<i64, Arc<Event>> = HashMap::new();
        let mut missing = Vec::new();
        for d in &due {
            match self.events.map.get(&d.event_id) {
                Some(e) => {
                    events.insert(d.event_id, Arc::clone(e));
                }
                None => missing.push(d.event_id),
            }
        }
        let mut read = true;
        if !missing.is_empty() {
            match self.state.store.events_by_id(&missing).await {
                Ok(found) => {
                    for e in found {
                        self.events.put(&e);
                        events.insert(e.id, Arc::new(e));
                    }
                }
                // Each attempt then fails as a store error and is retried.
                Err(e) => {
                    tracing::warn!(error = %e, "webhooks: reading events to deliver");
                    read = false;
                }
            }
        }
        let mut stale = Vec::new();
        for Due {
            key,
            event_id: id,
            hook,
            keys,
        } in due
        {
            let Some(delivery) = claimed.remove(&(key.0.to_string(), id)) else {
                // Not claimable in the store (someone else's claim, a replay): read it again.
                stale.push(key);
                continue;
            };
            let event = match events.get(&id) {
                Some(e) => Ok(Arc::clone(e)),
                None if read => Err(SendError::Gone),
                None => Err(SendError::Other("the event could not be read".into())),
            };
            let lease_until = delivery.next_attempt_at;
            let attempt = Attempt {
                state: self.state.clone(),
                client: self.client.clone(),
                hook,
                keys,
                delivery,
                event,
            };
            let record_key = key.clone();
            let task = self.attempts.spawn(async move {
                let record = attempt.run().await;
                Finished {
                    key: record_key,
                    record,
                }
            });
            self.running.insert(task.id(), (key, id, lease_until));
        }
        for key in stale {
            self.reload_queue(&key).await;
        }
    }

    /// Whether the attempts that ended are recorded now: when none is left in flight, when at
    /// least as many ended as are still in flight, or when the first of them waited `GATHER`.
    fn batch_ready(&self) -> bool {
        let Some(first) = self.first_finished else {
            return false;
        };
        self.finished.len() >= self.attempts.len() || first.elapsed() >= GATHER
    }

    fn collect(&mut self, done: Result<(tokio::task::Id, Finished), tokio::task::JoinError>) {
        match done {
            Ok((task, finished)) => {
                self.running.remove(&task);
                if self.finished.is_empty() {
                    self.first_finished = Some(Instant::now());
                }
                self.finished.push(finished);
            }
            Err(e) => {
                // A panicked attempt's claim runs out and it is tried again then.
                tracing::error!(error = %e, "webhooks: an attempt panicked");
                if let Some((key, id, lease_until)) = self.running.remove(&e.id()) {
                    self.queues.finish(&key, id, Finish::DueAt(lease_until));
                }
            }
        }
    }

    /// Records every attempt that ended since the last batch and (with `claim`) claims the heads
    /// now due — their queues' next events among them — in one transaction, then starts those
    /// attempts. The queues move on before the store has answered: if it fails, what it did not
    /// record is read back from it.
    async fn finish_batch(&mut self, claim: bool) {
        if self.finished.is_empty() {
            return;
        }
        let finished = std::mem::take(&mut self.finished);
        self.first_finished = None;
        let mut refill = Vec::new();
        for f in &finished {
            let how = match (f.record.outcome, f.record.next_attempt_at) {
                (AttemptOutcome::Retrying, Some(at)) => Finish::DueAt(at),
                _ => Finish::Done,
            };
            if self.queues.finish(&f.key, f.record.event_id, how) {
                refill.push(f.key.clone());
            }
        }
        let now = Utc::now();
        let mut due = if claim {
            self.take_due(now).await
        } else {
            Vec::new()
        };
        let pairs = claim_pairs(&due);
        let records: Vec<WebhookAttempt> = finished.iter().map(|f| f.record.clone()).collect();
        let (failing, claimed) = match self
            .state
            .store
            .finish_and_claim_webhook_deliveries(records, &pairs, now, now + self.lease())
            .await
        {
            Ok(done) => done,
            Err(e) => {
                tracing::debug!(error = %e, "webhooks: recording attempts as one batch");
                self.unclaim(&due, now);
                due.clear();
                (self.finish_one_by_one(&finished).await, Vec::new())
            }
        };
        // An endpoint failing too long is disabled before anything claimed for it is sent:
        // those claims run out and wait in the store until it is enabled again.
        let limit = chrono::Duration::seconds(self.state.settings.webhooks.disable_after_s as i64);
        for (webhook_id, since) in failing {
            let Some(since) = since else { continue };
            let last = finished
                .iter()
                .filter(|f| f.record.webhook_id == webhook_id)
                .map(|f| f.record.at)
                .max();
            if last.is_some_and(|at| at - since >= limit) {
                if let Some(hook) = self.hooks.get(webhook_id.as_str()).cloned() {
                    self.disable(&hook, since).await;
                }
            }
        }
        if !due.is_empty() {
            let due = due
                .into_iter()
                .filter(|d| self.hooks.contains_key(&d.key.0))
                .collect();
            self.start(due, claimed).await;
        }
        for key in refill {
            self.reload_queue(&key).await;
        }
    }

    /// Records attempts one at a time, so that one that cannot be recorded (its endpoint
    /// deleted meanwhile) does not hold back the others. The queue of one not recorded is read
    /// back from the store, where its claim runs out and it is attempted again: at least once.
    async fn finish_one_by_one(&mut self, finished: &[Finished]) -> WebhookFailing {
        let mut failing: WebhookFailing = Vec::new();
        for f in finished {
            match self
                .state
                .store
                .finish_webhook_attempts(vec![f.record.clone()])
                .await
            {
                Ok(one) => {
                    failing.retain(|(id, _)| !one.iter().any(|(o, _)| o == id));
                    failing.extend(one);
                }
                Err(e) => {
                    tracing::warn!(webhook_id = %f.record.webhook_id,
                        event_id = f.record.event_id, error = %e,
                        "webhooks: recording an attempt");
                    self.reload_queue(&f.key).await;
                }
            }
        }
        failing
    }

    async fn disable(&mut self, hook: &Webhook, since: DateTime<Utc>) {
        let reason = format!(
            "every delivery failed since {since}; re-enable with PATCH {{\"enabled\": true}}"
        );
        let event = NewEvent {
            kind: EventType::WebhookDisabled,
            account_id: None,
            owner_id: hook.owner_id,
            occurred_at: Utc::now(),
            data: serde_json::json!({
                "webhook_id": hook.id,
                "url": hook.url,
                "failing_since": since,
                "reason": reason,
            }),
            dedupe_key: None,
        };
        match self
            .state
            .store
            .disable_webhook(&hook.id, &reason, event)
            .await
        {
            Ok(true) => tracing::warn!(webhook_id = %hook.id, "webhook disabled: {reason}"),
            Ok(false) => {}
            Err(e) => tracing::warn!(webhook_id = %hook.id, error = %e, "disabling a webhook"),
        }
        // Its queues wait in the store until it is enabled again.
        self.queues.drop_webhook(&hook.id);
        self.hooks.remove(hook.id.as_str());
        self.cursors.remove(hook.id.as_str());
        self.reload.remove(hook.id.as_str());
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
    tgfleet_persistence::sealed::webhook_secret_aad(webhook_id)
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
    hook: Arc<Webhook>,
    keys: Arc<Keys>,
    delivery: WebhookDelivery,
    event: Result<Arc<Event>, SendError>,
}

impl Attempt {
    /// Sends the event and says what the attempt left; the worker records it.
    async fn run(self) -> WebhookAttempt {
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
        self.state
            .event_metrics
            .delivery(outcome.as_str(), started.elapsed().as_secs_f64());
        WebhookAttempt {
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
        }
    }

    async fn send(&self) -> Result<u16, SendError> {
        let event = self.event.as_ref().map_err(Clone::clone)?;
        let body = serde_json::to_vec(&crate::events::view((**event).clone()))
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
}

#[derive(Clone)]
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
