//! An account's row and log writes, off its mailbox: each message's writes leave as one job,
//! jobs of one account run one after another in the order they were submitted, and a message's
//! answers go out behind the jobs queued so far — so a caller reads in the store what it has seen
//! the actor do, while a slow database never stalls the mailbox (a status read, answered from
//! memory, goes at once).
//!
//! The order holds across the actors of one account: a restarted actor first waits for the jobs
//! its predecessor left (`settle`), so a late write of an old actor never lands over a new one's.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tgfleet_persistence::AccountId;
use tokio::task::JoinHandle;

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The write queues of every account of one fleet (in `AccountEnv`).
#[derive(Default)]
pub struct AccountWrites {
    /// The last job of each account with one unfinished, and its number.
    tails: std::sync::Mutex<HashMap<AccountId, (u64, JoinHandle<()>)>>,
    next: std::sync::atomic::AtomicU64,
}

impl AccountWrites {
    fn tails(&self) -> std::sync::MutexGuard<'_, HashMap<AccountId, (u64, JoinHandle<()>)>> {
        // A panic while holding this lock cannot leave the map half-changed.
        self.tails.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Nothing of this account is being written.
    pub(crate) fn idle(&self, account_id: AccountId) -> bool {
        self.tails()
            .get(&account_id)
            .is_none_or(|(_, tail)| tail.is_finished())
    }

    /// Runs `job` after every job submitted before it for this account.
    pub(crate) fn submit(
        self: &Arc<Self>,
        account_id: AccountId,
        job: impl Future<Output = ()> + Send + 'static,
    ) {
        let job: Job = Box::pin(job);
        let number = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let writes = Arc::clone(self);
        let mut tails = self.tails();
        let before = tails
            .remove(&account_id)
            .map(|(_, tail)| tail)
            .filter(|tail| !tail.is_finished());
        let task = tokio::spawn(async move {
            if let Some(before) = before {
                // A job that panicked has ended too; the ones after it still run.
                let _ = before.await;
            }
            job.await;
            // The last one out leaves no entry behind (an idle account costs nothing here).
            let mut tails = writes.tails();
            if tails.get(&account_id).is_some_and(|(n, _)| *n == number) {
                tails.remove(&account_id);
            }
        });
        tails.insert(account_id, (number, task));
    }

    /// Waits until every job submitted so far for this account is done.
    pub async fn settle(self: &Arc<Self>, account_id: AccountId) {
        if self.idle(account_id) {
            return;
        }
        let (done, wait) = tokio::sync::oneshot::channel();
        self.submit(account_id, async move {
            let _ = done.send(());
        });
        let _ = wait.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_of_one_account_run_in_order_and_leave_nothing_behind() {
        let writes = Arc::new(AccountWrites::default());
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        for n in 0..20u64 {
            let seen = Arc::clone(&seen);
            writes.submit(7, async move {
                // Later jobs are quicker: only the queue keeps them in order.
                tokio::time::sleep(std::time::Duration::from_millis(20 - n)).await;
                seen.lock().unwrap().push(n);
            });
        }
        writes.settle(7).await;
        assert_eq!(*seen.lock().unwrap(), (0..20).collect::<Vec<_>>());
        tokio::task::yield_now().await;
        for _ in 0..100 {
            if writes.tails().is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert!(writes.tails().is_empty());
        assert!(writes.idle(7));
    }
}
