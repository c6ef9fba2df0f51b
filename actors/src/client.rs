//! The live grammers client of one account, and the one way its Telegram calls are made.
//!
//! grammers 0.11 has no timeouts, retries flood waits by sleeping in the caller, and treats a
//! library panic as the end of its runner task. So: the retry policy is `NoRetries` (the account
//! owns flood waits), every call is bounded by `tokio::time::timeout`, the runner's task is
//! watched (a finished runner is a crashed client: the actor rebuilds it) and can be aborted (the
//! only way out of a black-holed connection), and the bounded updates channel is drained while
//! updates matter and closed once the account is logged in (see [`LiveClient::mute_updates`]).

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, RateLimiter};
use grammers_mtsender::{
    ConnectionParams, InvocationError, NoRetries, RpcError, SenderPool, SenderPoolHandle,
};
use grammers_session::updates::UpdatesLike;
use grammers_tl_types as tl;
use ractor::ActorRef;
use tgfleet_persistence::{AccountId, DeviceIdentity, ProxyUrl};
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::Instant;
use tracing::Instrument;

use crate::actor::{AccountMsg, Event, InternalMsg};
use crate::env::{AccountEnv, App};
use crate::flood::{FloodControl, Gate};
use crate::metrics::RpcOutcome;
use crate::session::StoreSession;

/// How a Telegram call failed, before it is mapped to an `AccountError` and a state.
#[derive(Debug, Clone)]
pub enum CallError {
    /// Telegram answered with an error (other than a flood wait).
    Rpc(RpcError),
    /// The method is blocked longer than the threshold.
    FloodWait { method: String, seconds: u32 },
    /// No answer within the call timeout (black hole, dead connection).
    Timeout,
    /// Connection-level failure; `runner_gone` when the client's runner no longer runs.
    Network { detail: String, runner_gone: bool },
    /// Our own session storage failed.
    Session(String),
}

impl CallError {
    pub fn is(&self, name: &str) -> bool {
        matches!(self, Self::Rpc(e) if e.is(name))
    }

    /// Short text for logs and `last_error`; never contains request data.
    pub fn describe(&self) -> String {
        match self {
            Self::Rpc(e) => format!("{} {}", e.code, e.name),
            Self::FloodWait { method, seconds } => format!("FLOOD_WAIT {seconds}s on {method}"),
            Self::Timeout => "timeout".into(),
            Self::Network { detail, .. } => format!("network: {detail}"),
            Self::Session(detail) => format!("session: {detail}"),
        }
    }

    /// The error code for the integration log's `error_code`.
    pub fn code(&self) -> String {
        match self {
            Self::Rpc(e) => e.name.clone(),
            Self::FloodWait { .. } => "FLOOD_WAIT".into(),
            Self::Timeout => "TELEGRAM_TIMEOUT".into(),
            Self::Network { .. } => "NETWORK".into(),
            Self::Session(_) => "SESSION_STORE".into(),
        }
    }
}

/// Pushed updates grammers buffers for the receiving loop before it drops one.
const UPDATES_CAPACITY: usize = 1000;

/// What grammers puts in the initConnection of every connection it opens for this client (the
/// first, and each reconnect): the account's own identity, never `ConnectionParams::default()`,
/// which would show Telegram this host's OS (the same for the whole fleet) and probe it on every
/// call.
///
/// With a proxy, every connection grammers opens for the account (first, reconnect, other DCs)
/// dials through it: the pool reads `proxy_url` for each one, and has no direct fallback.
///
/// The one place both a live client and the import's probe get their parameters, so the two
/// can never introduce an account differently; they differ only in how many pushed updates
/// wait for a reader.
pub(crate) fn connection_params(
    device: &DeviceIdentity,
    proxy: Option<&ProxyUrl>,
    updates_capacity: NonZeroUsize,
) -> ConnectionParams {
    ConnectionParams {
        proxy_url: proxy.map(|p| p.expose().to_owned()),
        device_model: device.device_model.clone(),
        system_version: device.system_version.clone(),
        app_version: device.app_version.clone(),
        system_lang_code: device.system_lang_code.clone(),
        lang_code: device.lang_code.clone(),
        use_ipv6: false,
        // The account owns flood waits (per method, in its own tasks) and reconnects; a probe
        // makes one call that either works or tells the importer why not.
        retry_policy: Box::new(NoRetries),
        updates_channel_capacity: updates_capacity,
        // Built field by field on purpose (no OS probe); this hidden field is grammers' way to
        // keep the struct open for additions.
        __non_exhaustive: (),
    }
}

/// A running grammers client: the runner task, and the task that drains its updates and watches
/// it. Dropping it (actor stop, panic, rebuild) stops both, so no orphan keeps the auth key busy.
pub struct LiveClient {
    pub handle: SenderPoolHandle,
    runner: AbortHandle,
    watcher: JoinHandle<()>,
    /// Once logged in, what becomes of the updates: muted, or received into the event log.
    after_login: Option<tokio::sync::oneshot::Sender<AfterLogin>>,
}

/// What a logged-in account does with Telegram's updates.
enum AfterLogin {
    Mute,
    Receive {
        store: Arc<dyn tgfleet_persistence::Store>,
        account_id: AccountId,
        owner_id: tgfleet_persistence::UserId,
    },
}

impl LiveClient {
    /// A client whose every connection introduces itself as `device` of the app `api_id`.
    pub fn start(
        session: Arc<StoreSession>,
        api_id: i32,
        device: &DeviceIdentity,
        proxy: Option<&ProxyUrl>,
        generation: u64,
        myself: ActorRef<AccountMsg>,
    ) -> Self {
        let SenderPool {
            runner,
            handle,
            updates,
        } = SenderPool::with_configuration(
            Arc::clone(&session),
            api_id,
            // grammers drops a push that finds this channel full, and the gap comes back only
            // when a later update reveals it (or after 15 idle minutes): room for a burst of a
            // thousand while the receiving loop appends the previous batch. tokio adds a 165
            // KiB block per 32 queued items, so only a burst the store cannot keep up with pays
            // for the headroom (up to ~5 MiB on that account); the two blocks any receiver
            // cycles through are grammers' floor (README, "Memory per receiving account").
            connection_params(
                device,
                proxy,
                NonZeroUsize::new(UPDATES_CAPACITY).expect("non-zero"),
            ),
        );
        let runner = tokio::spawn(runner.run());
        let runner_abort = runner.abort_handle();
        let (after_login, decided) = tokio::sync::oneshot::channel();
        let watched = Watched {
            runner,
            updates,
            decided,
            myself,
            generation,
            handle: handle.thin.clone(),
            session,
        };
        let watcher = tokio::spawn(watch(watched));
        Self {
            handle: handle.thin,
            runner: runner_abort,
            watcher,
            after_login: Some(after_login),
        }
    }

    /// Closes the updates channel for good (idempotent). grammers' `UpdatesLike` is 5,272 bytes
    /// and tokio's channel stores it inline in blocks of 32 slots (a 192 KiB allocation), so
    /// every update delivered touches 5 KiB more of that block: a logged-in account receiving
    /// Telegram's updates ends up with 170–340 KiB resident for a channel nobody reads, since
    /// tgfleet consumes updates only during a login (`updateLoginToken`). Closed, grammers stops
    /// forwarding and nothing more is touched. The price: a logged-in account no longer hears
    /// `ConnectionClosed`, so a dropped connection is reopened by its next call (grammers
    /// reconnects on demand) or by the watchdog's health check, not at once.
    pub fn mute_updates(&mut self) {
        if let Some(after) = self.after_login.take() {
            let _ = after.send(AfterLogin::Mute);
        }
    }

    /// Hands the updates channel to grammers' update machinery for good (idempotent, and
    /// nothing once muted): what it yields goes into the event log (`crate::receive`).
    pub fn receive_updates(
        &mut self,
        store: Arc<dyn tgfleet_persistence::Store>,
        account_id: AccountId,
        owner_id: tgfleet_persistence::UserId,
    ) {
        if let Some(after) = self.after_login.take() {
            let _ = after.send(AfterLogin::Receive {
                store,
                account_id,
                owner_id,
            });
        }
    }

    pub fn runner_alive(&self) -> bool {
        !self.runner.is_finished()
    }
}

impl Drop for LiveClient {
    fn drop(&mut self) {
        // quit() would wait on a black-holed connection; aborting cannot hang.
        self.runner.abort();
        self.watcher.abort();
    }
}

fn notify(myself: &ActorRef<AccountMsg>, event: Event) {
    // The actor may be gone (stopping, crashed); nothing to tell then.
    let _ = myself.send_message(AccountMsg::Internal(InternalMsg(event)));
}

/// What the watcher task owns.
struct Watched {
    runner: JoinHandle<()>,
    updates: tokio::sync::mpsc::Receiver<UpdatesLike>,
    decided: tokio::sync::oneshot::Receiver<AfterLogin>,
    myself: ActorRef<AccountMsg>,
    generation: u64,
    handle: SenderPoolHandle,
    session: Arc<StoreSession>,
}

/// How long a receiving loop whose client ended may take to write its last update state.
const FINAL_SYNC: std::time::Duration = std::time::Duration::from_secs(2);

/// Drains the updates channel (grammers drops updates when it is full) and forwards what the
/// actor acts on, until the login decides: muted, it drains what is buffered and stops; set to
/// receive, it hands the channel to grammers' update machinery. Reports the runner's end.
async fn watch(w: Watched) {
    let Watched {
        mut runner,
        mut updates,
        mut decided,
        myself,
        generation,
        handle,
        session,
    } = w;
    let mut updates_open = true;
    let mut muted = false;
    loop {
        tokio::select! {
            biased;
            end = &mut runner => {
                let panicked = matches!(&end, Err(e) if e.is_panic());
                notify(&myself, Event::RunnerExited { generation, panicked });
                return;
            }
            after = &mut decided, if !muted => match after {
                Ok(AfterLogin::Receive { store, account_id, owner_id }) => {
                    let to = crate::receive::Receiving { store, account_id, owner_id };
                    let receiving = crate::receive::run(to, handle, session, updates);
                    tokio::pin!(receiving);
                    tokio::select! {
                        end = &mut runner => {
                            // The runner's end closes the channel: the receiving loop sees it,
                            // writes the update state it has not written yet, and returns. It
                            // is waited for (briefly: an append may be retrying) before the
                            // actor hears of the end and starts a new client.
                            let _ = tokio::time::timeout(FINAL_SYNC, &mut receiving).await;
                            let panicked = matches!(&end, Err(e) if e.is_panic());
                            notify(&myself, Event::RunnerExited { generation, panicked });
                        }
                        () = &mut receiving => {}
                    }
                    return;
                }
                // Muted (or the client is being dropped): what is buffered still drains below;
                // nothing new gets in.
                Ok(AfterLogin::Mute) | Err(_) => {
                    muted = true;
                    updates.close();
                }
            },
            update = updates.recv(), if updates_open => match update {
                Some(UpdatesLike::Updates(updates)) if has_login_token(&updates) => {
                    notify(&myself, Event::LoginTokenUpdated { generation });
                }
                Some(UpdatesLike::ConnectionClosed) => {
                    notify(&myself, Event::ConnectionClosed { generation });
                }
                Some(_) => {}
                None => updates_open = false,
            },
        }
    }
}

fn has_login_token(updates: &tl::enums::Updates) -> bool {
    use tl::enums::{Update, Updates};
    let is_token = |u: &Update| matches!(u, Update::LoginToken);
    match updates {
        Updates::UpdateShort(short) => is_token(&short.update),
        Updates::Combined(c) => c.updates.iter().any(is_token),
        Updates::Updates(u) => u.updates.iter().any(is_token),
        _ => false,
    }
}

/// The name Telegram's docs use for a request, e.g. `messages.sendMessage`: from the type's
/// constructor id, without serializing the request (a message with media is kilobytes).
pub fn method_name<R: tl::RemoteCall + tl::Identifiable>(_request: &R) -> &'static str {
    tl::name_for_id(R::CONSTRUCTOR_ID)
}

/// Everything a task needs to make this account's Telegram calls.
#[derive(Clone)]
pub struct Tg {
    pub account_id: AccountId,
    pub env: Arc<AccountEnv>,
    /// The app the account's logins speak for (the connections already do).
    pub app: Arc<App>,
    pub handle: SenderPoolHandle,
    pub session: Arc<StoreSession>,
    pub flood: Arc<FloodControl>,
    pub pacer: Arc<DefaultDirectRateLimiter>,
}

/// Waits a flood wait this many times at most per call before giving up; Telegram rarely asks
/// twice in a row for the same call, and a loop here would hide a real problem.
const MAX_FLOOD_RETRIES: u32 = 2;

/// Pauses before retrying a call whose connection died under it: the first covers the runner
/// reaping the dead connection (microseconds when idle, more on a busy machine), the second a
/// short blip. Longer trouble is the account's `reconnecting` state, with its own backoff.
const NETWORK_RETRY_PAUSES: [Duration; 2] = [Duration::from_millis(20), Duration::from_millis(200)];

pub fn new_pacer(env: &AccountEnv) -> Arc<DefaultDirectRateLimiter> {
    Arc::new(RateLimiter::direct(env.limits.pacing))
}

impl Tg {
    pub async fn call<R: tl::RemoteCall + tl::Identifiable>(
        &self,
        request: &R,
    ) -> Result<R::Return, CallError> {
        let dc = self.session.home_dc();
        self.call_in_dc(dc, request).await
    }

    /// One Telegram call: flood gate → pacing → bounded invoke → flood bookkeeping, in a span
    /// named for the method (inside the account's span of the command that made it).
    pub async fn call_in_dc<R: tl::RemoteCall + tl::Identifiable>(
        &self,
        dc_id: i32,
        request: &R,
    ) -> Result<R::Return, CallError> {
        let method = method_name(request);
        let span = tracing::debug_span!("telegram", method, dc = dc_id);
        self.call_traced(dc_id, request, method, true)
            .instrument(span)
            .await
    }

    /// A file part: flood waits apply, the account's pacing does not. Telegram limits uploads by
    /// their own measure, and 5 calls/s would cap an account's uploads at 2.5 MB/s.
    pub async fn call_upload<R: tl::RemoteCall + tl::Identifiable>(
        &self,
        request: &R,
    ) -> Result<R::Return, CallError> {
        self.call_upload_in_dc(self.session.home_dc(), request)
            .await
    }

    /// [`Tg::call_upload`] in the DC that holds a file (a download).
    pub async fn call_upload_in_dc<R: tl::RemoteCall + tl::Identifiable>(
        &self,
        dc_id: i32,
        request: &R,
    ) -> Result<R::Return, CallError> {
        let method = method_name(request);
        self.call_traced(dc_id, request, method, false).await
    }

    async fn call_traced<R: tl::RemoteCall + tl::Identifiable>(
        &self,
        dc_id: i32,
        request: &R,
        method: &'static str,
        paced: bool,
    ) -> Result<R::Return, CallError> {
        let limits = &self.env.limits;
        let metrics = &self.env.metrics;
        let mut flood_retries = 0;
        let mut network_retries = 0;
        loop {
            match self.flood.gate(method, limits.flood_wait_threshold) {
                Gate::Open => {}
                Gate::WaitFor(d) => tokio::time::sleep(d).await,
                Gate::Blocked { seconds } => {
                    return Err(CallError::FloodWait {
                        method: method.to_owned(),
                        seconds,
                    })
                }
            }
            if paced {
                self.pacer.until_ready().await;
            }
            let started = Instant::now();
            let result = tokio::time::timeout(
                limits.call_timeout,
                self.handle.invoke_in_dc(dc_id, request),
            )
            .await;
            let took = started.elapsed();
            let observe = |outcome| metrics.observe_rpc(self.account_id, method, outcome, took);
            let error = match result {
                Err(_elapsed) => {
                    observe(RpcOutcome::Timeout);
                    return Err(CallError::Timeout);
                }
                Ok(Ok(value)) => {
                    observe(RpcOutcome::Ok);
                    return Ok(value);
                }
                Ok(Err(e)) => e,
            };
            match error {
                InvocationError::Rpc(rpc) if is_flood(&rpc) => {
                    observe(RpcOutcome::FloodWait);
                    let seconds = rpc.value.unwrap_or(1);
                    metrics.add_flood_wait(self.account_id, seconds);
                    self.flood.block(method, seconds);
                    let short =
                        Duration::from_secs(u64::from(seconds)) <= limits.flood_wait_threshold;
                    if short && flood_retries < MAX_FLOOD_RETRIES {
                        flood_retries += 1;
                        continue; // the gate waits it out
                    }
                    return Err(CallError::FloodWait {
                        method: method.to_owned(),
                        seconds,
                    });
                }
                InvocationError::Rpc(rpc) => {
                    observe(RpcOutcome::Error);
                    return Err(CallError::Rpc(rpc));
                }
                InvocationError::Session(e) => {
                    observe(RpcOutcome::Error);
                    return Err(CallError::Session(e.to_string()));
                }
                other => {
                    observe(RpcOutcome::Network);
                    let runner_gone = matches!(other, InvocationError::Dropped(_));
                    // The connection died under the call (Telegram closed it, a network blip):
                    // the pool opens a new one once its runner has reaped the dead connection's
                    // task, so the retries wait a moment first (grammers' own default policy
                    // waits 1 s); the request keeps its random_id, so Telegram does not apply a
                    // send twice. `Dropped` is retried too: a call pending on a connection that
                    // dies is dropped the same way as one sent to a runner that is gone, and
                    // only a retry tells them apart.
                    if let Some(pause) = NETWORK_RETRY_PAUSES.get(network_retries) {
                        network_retries += 1;
                        tokio::time::sleep(*pause).await;
                        continue;
                    }
                    return Err(CallError::Network {
                        runner_gone,
                        detail: other.to_string(),
                    });
                }
            }
        }
    }
}

fn is_flood(rpc: &RpcError) -> bool {
    rpc.code == 420
        || rpc.is("FLOOD_WAIT")
        || rpc.is("FLOOD_PREMIUM_WAIT")
        || rpc.is("SLOWMODE_WAIT")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_method_is_named_as_in_telegrams_docs() {
        assert_eq!(
            method_name(&tl::functions::updates::GetState {}),
            "updates.getState"
        );
        assert_eq!(
            method_name(&tl::functions::help::GetConfig {}),
            "help.getConfig"
        );
        let upload = tl::functions::upload::SaveFilePart {
            file_id: 1,
            file_part: 0,
            bytes: vec![0; 512 * 1024],
        };
        assert_eq!(method_name(&upload), "upload.saveFilePart");
    }
}
