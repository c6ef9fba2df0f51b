//! What the event log and its webhooks are doing, for Prometheus: events by type, deliveries by
//! outcome and their latency, and each endpoint's backlog and the age of its oldest
//! undelivered event (the number to alert on when a receiver is down).

use std::collections::HashSet;
use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

/// How often the backlog gauges are read from the store.
const BACKLOG_EVERY: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct EventMetrics {
    events: IntCounterVec,
    deliveries: IntCounterVec,
    delivery_seconds: HistogramVec,
    backlog: IntGaugeVec,
    oldest: IntGaugeVec,
}

impl EventMetrics {
    pub fn register(registry: &Registry) -> anyhow::Result<Self> {
        let events = IntCounterVec::new(
            Opts::new(
                "tgfleet_events_total",
                "Events appended to the log (seen by this process), by type",
            ),
            &["type"],
        )?;
        let deliveries = IntCounterVec::new(
            Opts::new(
                "tgfleet_webhook_deliveries_total",
                "Webhook delivery attempts by outcome (succeeded, retrying, dead)",
            ),
            &["outcome"],
        )?;
        let delivery_seconds = HistogramVec::new(
            HistogramOpts::new(
                "tgfleet_webhook_delivery_seconds",
                "How long one webhook attempt took, by outcome",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["outcome"],
        )?;
        let backlog = IntGaugeVec::new(
            Opts::new(
                "tgfleet_webhook_backlog",
                "Events queued for a webhook endpoint and not yet delivered",
            ),
            &["webhook_id"],
        )?;
        let oldest = IntGaugeVec::new(
            Opts::new(
                "tgfleet_webhook_oldest_undelivered_seconds",
                "Age of the oldest event queued for a webhook endpoint (0: none)",
            ),
            &["webhook_id"],
        )?;
        registry.register(Box::new(events.clone()))?;
        registry.register(Box::new(deliveries.clone()))?;
        registry.register(Box::new(delivery_seconds.clone()))?;
        registry.register(Box::new(backlog.clone()))?;
        registry.register(Box::new(oldest.clone()))?;
        Ok(Self {
            events,
            deliveries,
            delivery_seconds,
            backlog,
            oldest,
        })
    }

    pub fn delivery(&self, outcome: &str, seconds: f64) {
        self.deliveries.with_label_values(&[outcome]).inc();
        self.delivery_seconds
            .with_label_values(&[outcome])
            .observe(seconds);
    }
}

/// Follows the log to count events by type, and keeps the backlog gauges current.
pub async fn run(state: AppState, stop: CancellationToken) {
    let metrics = state.event_metrics.clone();
    let mut feed = state.store.event_feed();
    let mut after = *feed.borrow_and_update();
    let mut backlog_tick = tokio::time::interval(BACKLOG_EVERY);
    let mut shown: HashSet<String> = HashSet::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            Ok(()) = feed.changed() => {}
            _ = backlog_tick.tick() => {
                backlog(&state, &metrics, &mut shown).await;
            }
        }
        feed.borrow_and_update();
        loop {
            let page = match state.store.event_types(after, 1000).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::debug!(error = %e, "event metrics: reading the log");
                    break;
                }
            };
            for (_, kind) in &page {
                metrics.events.with_label_values(&[kind.as_str()]).inc();
            }
            match page.last() {
                Some(&(last, _)) => after = last,
                None => break,
            }
        }
    }
}

async fn backlog(state: &AppState, metrics: &EventMetrics, shown: &mut HashSet<String>) {
    let rows = match state.store.webhook_backlog().await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, "event metrics: reading the webhook backlog");
            return;
        }
    };
    let now = chrono::Utc::now();
    let mut seen = HashSet::new();
    for row in rows {
        let age = row.oldest.map_or(0, |at| (now - at).num_seconds().max(0));
        metrics
            .backlog
            .with_label_values(&[&row.webhook_id])
            .set(row.pending);
        metrics
            .oldest
            .with_label_values(&[&row.webhook_id])
            .set(age);
        seen.insert(row.webhook_id);
    }
    // A deleted endpoint's series go, so the label set follows the endpoints that exist.
    for gone in shown.difference(&seen) {
        let _ = metrics.backlog.remove_label_values(&[gone]);
        let _ = metrics.oldest.remove_label_values(&[gone]);
    }
    *shown = seen;
}
