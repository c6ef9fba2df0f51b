//! Per-account metrics. Registered into a caller-supplied `prometheus::Registry`, never the global
//! one, so several fleets (e.g. parallel tests) can live in one process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};
use tgfleet_persistence::{AccountId, AccountState};

/// Cheap to clone; every clone updates the same series.
#[derive(Clone)]
pub struct AccountMetrics {
    accounts: IntGaugeVec,
    account_state: IntGaugeVec,
    rpc_total: IntCounterVec,
    rpc_seconds: HistogramVec,
    flood_wait_seconds_total: IntCounterVec,
    /// The state each account is counted under in `tgfleet_accounts`, so a transition moves exactly
    /// one count and a restarted actor does not count its account twice.
    current: Arc<Mutex<HashMap<AccountId, AccountState>>>,
    /// The (method, outcome) series each account has, with their counters: a call increments
    /// its counter without formatting the account id or hashing label strings, under a lock of
    /// one shard, not the process; and the series can be removed without a scan (the prometheus
    /// crate removes series by their exact labels only).
    calls: Arc<DashMap<AccountId, CallSeries>>,
    /// `tgfleet_rpc_seconds` per method, resolved once.
    latency: Arc<DashMap<&'static str, Histogram>>,
}

/// The `tgfleet_rpc_total` series (method, outcome) one account has used.
type CallSeries = Vec<(&'static str, RpcOutcome, IntCounter)>;

/// How an RPC ended, for `tgfleet_rpc_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcOutcome {
    Ok,
    /// Telegram answered with an RPC error other than a flood wait.
    Error,
    FloodWait,
    Timeout,
    /// Connection-level failure (I/O, transport, dead runner).
    Network,
}

impl RpcOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::FloodWait => "flood_wait",
            Self::Timeout => "timeout",
            Self::Network => "network",
        }
    }
}

impl AccountMetrics {
    /// Creates the account metrics and registers them into `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let accounts = IntGaugeVec::new(
            Opts::new("tgfleet_accounts", "Accounts by state"),
            &["state"],
        )?;
        let account_state = IntGaugeVec::new(
            Opts::new(
                "tgfleet_account_state",
                "1 for the current state of each account",
            ),
            &["account_id", "state"],
        )?;
        let rpc_total = IntCounterVec::new(
            Opts::new(
                "tgfleet_rpc_total",
                "Telegram calls by account, method and outcome",
            ),
            &["account_id", "method", "outcome"],
        )?;
        let rpc_seconds = HistogramVec::new(
            HistogramOpts::new("tgfleet_rpc_seconds", "Telegram call latency").buckets(vec![
                0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0,
            ]),
            &["method"],
        )?;
        let flood_wait_seconds_total = IntCounterVec::new(
            Opts::new(
                "tgfleet_flood_wait_seconds_total",
                "Seconds of FLOOD_WAIT imposed by Telegram per account",
            ),
            &["account_id"],
        )?;
        registry.register(Box::new(accounts.clone()))?;
        registry.register(Box::new(account_state.clone()))?;
        registry.register(Box::new(rpc_total.clone()))?;
        registry.register(Box::new(rpc_seconds.clone()))?;
        registry.register(Box::new(flood_wait_seconds_total.clone()))?;
        // Every state is shown from the start, at 0: an alert on `state="quarantined"` then
        // compares numbers instead of meeting a series that does not exist until the first one.
        for state in AccountState::ALL {
            accounts.with_label_values(&[state.as_str()]);
        }
        Ok(Self {
            accounts,
            account_state,
            rpc_total,
            rpc_seconds,
            flood_wait_seconds_total,
            current: Arc::default(),
            calls: Arc::default(),
            latency: Arc::default(),
        })
    }

    /// Moves `account_id` to `state` in both state gauges.
    pub fn set_state(&self, account_id: AccountId, state: AccountState) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let id = account_id.to_string();
        if let Some(old) = current.insert(account_id, state) {
            if old == state {
                return;
            }
            self.accounts.with_label_values(&[old.as_str()]).dec();
            let _ = self.account_state.remove_label_values(&[&id, old.as_str()]);
        }
        self.accounts.with_label_values(&[state.as_str()]).inc();
        self.account_state
            .with_label_values(&[&id, state.as_str()])
            .set(1);
    }

    /// Removes an account from the state gauges (its actor went away without a final state, or
    /// the account was deleted).
    pub fn forget(&self, account_id: AccountId) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = current.remove(&account_id) {
            self.accounts.with_label_values(&[old.as_str()]).dec();
            let _ = self
                .account_state
                .remove_label_values(&[&account_id.to_string(), old.as_str()]);
        }
    }

    /// Removes an account's per-call series (`tgfleet_rpc_total`, flood-wait seconds): a
    /// hibernated account keeps only its state series, so 100,000 of them cost next to nothing.
    pub fn forget_calls(&self, account_id: AccountId) {
        let id = account_id.to_string();
        // The entry stays locked while its series go: a call observed meanwhile waits, then
        // makes a fresh entry and series, instead of caching a counter being unregistered.
        if let dashmap::mapref::entry::Entry::Occupied(used) = self.calls.entry(account_id) {
            for (method, outcome, _) in used.get() {
                let _ = self
                    .rpc_total
                    .remove_label_values(&[&id, *method, outcome.as_str()]);
            }
            used.remove();
        }
        let _ = self.flood_wait_seconds_total.remove_label_values(&[&id]);
    }

    /// The state an account is currently counted under, if any.
    pub fn state_of(&self, account_id: AccountId) -> Option<AccountState> {
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        current.get(&account_id).copied()
    }

    pub fn observe_rpc(
        &self,
        account_id: AccountId,
        method: &'static str,
        outcome: RpcOutcome,
        took: Duration,
    ) {
        {
            let mut used = self.calls.entry(account_id).or_default();
            match used.iter().find(|(m, o, _)| *m == method && *o == outcome) {
                Some((_, _, counter)) => counter.inc(),
                None => {
                    let counter = self.rpc_total.with_label_values(&[
                        &account_id.to_string(),
                        method,
                        outcome.as_str(),
                    ]);
                    counter.inc();
                    used.push((method, outcome, counter));
                }
            }
        }
        let latency = match self.latency.get(method) {
            Some(h) => h.clone(),
            None => self
                .latency
                .entry(method)
                .or_insert_with(|| self.rpc_seconds.with_label_values(&[method]))
                .clone(),
        };
        latency.observe(took.as_secs_f64());
    }

    pub fn add_flood_wait(&self, account_id: AccountId, seconds: u32) {
        self.flood_wait_seconds_total
            .with_label_values(&[&account_id.to_string()])
            .inc_by(u64::from(seconds));
    }
}
