//! What each store operation costs, for `/metrics`: `tgfleet_store_queries_total{op}` and
//! `tgfleet_store_seconds{op}`, where `op` is the [`crate::Store`] method (one operation may be a
//! transaction of several statements; it counts once).

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use std::time::Instant;

/// One store's counters. Each store owns its own, so two stores in one process (tests, tools)
/// never mix their figures; the app registers its store's with [`StoreMetrics::register`].
pub struct StoreMetrics {
    queries: IntCounterVec,
    seconds: HistogramVec,
}

impl StoreMetrics {
    pub(crate) fn new() -> Self {
        let queries = IntCounterVec::new(
            Opts::new(
                "tgfleet_store_queries_total",
                "Store operations run, by operation (a Store method)",
            ),
            &["op"],
        )
        .expect("valid metric options");
        let seconds = HistogramVec::new(
            HistogramOpts::new(
                "tgfleet_store_seconds",
                "Time a store operation took, by operation",
            )
            // From a cached SQLite read (~20 µs) to a PostgreSQL transaction under load.
            .buckets(vec![
                0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05,
                0.1, 0.25, 1.0,
            ]),
            &["op"],
        )
        .expect("valid metric options");
        Self { queries, seconds }
    }

    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.queries.clone()))?;
        registry.register(Box::new(self.seconds.clone()))
    }

    /// Counts `op` and times it until the guard drops, so an operation whose caller hung up
    /// (its future dropped mid-query) is counted with the time it ran.
    pub(crate) fn op(&self, op: &'static str) -> OpTimer<'_> {
        OpTimer {
            metrics: self,
            op,
            started: Instant::now(),
        }
    }
}

pub(crate) struct OpTimer<'a> {
    metrics: &'a StoreMetrics,
    op: &'static str,
    started: Instant,
}

impl Drop for OpTimer<'_> {
    fn drop(&mut self) {
        self.metrics.queries.with_label_values(&[self.op]).inc();
        self.metrics
            .seconds
            .with_label_values(&[self.op])
            .observe(self.started.elapsed().as_secs_f64());
    }
}
