//! Everything one account actor holds between messages, and the only code that acts: it admits
//! commands, runs their Telegram operations in tasks, and carries out the [`Effect`]s that the
//! pure decisions (`commands/`, `lifecycle.rs`) return — the row, the log, the session, the
//! client, the timers.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use governor::DefaultDirectRateLimiter;
use ractor::ActorRef;
use tgfleet_persistence::{
    Account as Row, AccountId, AccountState, AccountUpdate, LogLevel, NewLogEntry, StoreError,
};
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::Instant;
use tracing::Instrument;

use crate::actor::{AccountMsg, Event, InternalMsg};
use crate::client::{LiveClient, Tg};
use crate::commands::health::Health;
use crate::commands::login::LoggedInUser;
use crate::commands::qr_poll::QrPoll;
use crate::commands::{Admission, Class, Handler, OpFailure, Port, View};
use crate::effect::{Delay, Effect, Line};
use crate::env::{AccountEnv, App};
use crate::flood::FloodControl;
use crate::lifecycle;
use crate::protocol::AccountError;
use crate::session::StoreSession;
use crate::state::State;
use crate::stop::StopReason;

/// One Telegram account's actor state: its [`State`] and the resources the executor acts on.
pub struct AccountActorState {
    pub(crate) id: AccountId,
    pub(crate) env: Arc<AccountEnv>,
    /// The fleet's app, or the account's own (opened from its row at start).
    pub(crate) app: Arc<App>,
    /// The proxy every connection of the account dials through (opened from its row at start;
    /// a binding changed by the owner is read by the next actor, which the API starts).
    pub(crate) proxy: Option<tgfleet_persistence::ProxyUrl>,
    /// The account row as the queued writes leave it (identity, flood-wait end, last error).
    /// `state` is the account's state; the row's copy of it is only what is shown.
    pub(crate) row: Row,
    pub(crate) state: State,
    pub(crate) session: Arc<StoreSession>,
    pub(crate) client: Option<LiveClient>,
    pub(crate) generation: u64,
    pub(crate) flood: Arc<FloodControl>,
    pub(crate) pacer: Arc<DefaultDirectRateLimiter>,
    pub(crate) inflight: InFlight,
    pub(crate) watchdog: Option<JoinHandle<()>>,
    /// The pending re-check timer, if any (one at a time).
    pub(crate) check: Option<AbortHandle>,
    /// Row and log writes this message decided, in order, and the answers that wait for them:
    /// they leave together when the message is done (`flush`).
    pending: Vec<Write>,
    answers: Vec<Box<dyn FnOnce() + Send>>,
    /// Answers read from memory, which need no write behind them.
    read_answers: Vec<Box<dyn FnOnce() + Send>>,
    pub(crate) last_ok: Instant,
    /// Last request that counts as use: hibernation counts idleness from here, since the
    /// watchdog's own liveness checks keep `last_ok` fresh.
    pub(crate) last_request: Instant,
}

/// A write of the account's row or log, carried out off the mailbox (`writes.rs`).
enum Write {
    Row(AccountUpdate),
    Log(NewLogEntry),
}

/// Operations spawned and not yet reported back.
#[derive(Default)]
pub(crate) struct InFlight {
    next_id: u64,
    running: Vec<Running>,
    /// A QR poll asked for while a login step ran; it starts when the step ends.
    pub(crate) qr_poll_queued: bool,
}

pub(crate) struct Running {
    id: u64,
    class: Class,
    key: Option<(&'static str, String)>,
    /// Who waits for its answer: the caller, and requests that joined it with the same key.
    /// Kept here, not in the task, so that an actor that stops meanwhile still answers them.
    waiters: Vec<Box<dyn Waiter>>,
    /// Aborted when the actor ends: an operation outliving its actor would keep writing the old
    /// actor's copy of the session over the one a restarted actor loaded — two writers for one
    /// account.
    task: AbortHandle,
}

impl InFlight {
    pub(crate) fn len(&self) -> usize {
        self.running.len()
    }

    /// One login step at a time: steps read and write the same pending login.
    pub(crate) fn login_busy(&self) -> bool {
        self.running.iter().any(|r| r.class == Class::Login)
    }

    fn health_running(&self) -> bool {
        self.running.iter().any(|r| r.class == Class::Health)
    }

    fn finish(&mut self, id: u64) -> Option<Running> {
        let at = self.running.iter().position(|r| r.id == id)?;
        Some(self.running.swap_remove(at))
    }

    /// Aborts every operation (the actor ends before they do) and returns who waits for them.
    fn stop_all(&mut self) -> Vec<Box<dyn Waiter>> {
        let mut waiters = Vec::new();
        for running in self.running.drain(..) {
            running.task.abort();
            waiters.extend(running.waiters);
        }
        waiters
    }
}

/// A reply port of some command, its reply type erased.
pub(crate) trait Waiter: Send + Sync {
    fn refuse(self: Box<Self>, error: AccountError);
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send + Sync>;
}

impl<R: Send + 'static> Waiter for Port<R> {
    fn refuse(self: Box<Self>, error: AccountError) {
        let _ = self.send(Err(error));
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any + Send + Sync> {
        self
    }
}

/// A finished operation on its way back to the actor, its command's types erased.
pub(crate) trait Finish: Send {
    fn succeeded(&self) -> bool;
    /// Its effects and answer, decided from the state it finds.
    fn decide(
        self: Box<Self>,
        view: &View,
        waiters: Vec<Box<dyn Waiter>>,
    ) -> (Vec<Effect>, Box<dyn Answer>);
}

/// An answer waiting for its effects to be carried out.
pub(crate) trait Answer: Send {
    /// `refused`: an effect failed in a way the caller must hear instead.
    fn send(self: Box<Self>, refused: Option<AccountError>);
}

struct Finished<C: Handler> {
    result: Result<C::Done, OpFailure>,
}

struct Answers<R> {
    ports: Vec<Port<R>>,
    answer: Result<R, AccountError>,
}

impl<C: Handler> Finish for Finished<C> {
    fn succeeded(&self) -> bool {
        self.result.is_ok()
    }

    fn decide(
        self: Box<Self>,
        view: &View,
        waiters: Vec<Box<dyn Waiter>>,
    ) -> (Vec<Effect>, Box<dyn Answer>) {
        let decided = match self.result {
            Ok(done) => C::on_done(view, done),
            Err(failure) => C::on_failure(view, failure),
        };
        // Every waiter of a running operation was put there by `spawn::<C>`.
        let ports = waiters
            .into_iter()
            .filter_map(|w| w.into_any().downcast::<Port<C::Reply>>().ok())
            .map(|port| *port)
            .collect();
        let answer = Answers {
            ports,
            answer: decided.answer,
        };
        (decided.effects, Box::new(answer))
    }
}

impl<R: Clone + Send + 'static> Answer for Answers<R> {
    fn send(self: Box<Self>, refused: Option<AccountError>) {
        let answer = match refused {
            Some(error) => Err(error),
            None => self.answer,
        };
        for port in self.ports {
            let _ = port.send(answer.clone());
        }
    }
}

impl Drop for AccountActorState {
    fn drop(&mut self) {
        // Runs on every end, panics included (ractor skips post_stop then): the client's tasks
        // stop with `self.client`, the timers and operations here, and the gauges drop an
        // account whose actor went away without a final state (a restart counts it again).
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.abort();
        }
        if let Some(check) = self.check.take() {
            check.abort();
        }
        // What the message that panicked (or was killed) had decided still lands, so the row and
        // the log keep every change an actor made; its answers go as well.
        if !self.pending.is_empty() && tokio::runtime::Handle::try_current().is_ok() {
            self.flush();
        }
        // Their callers see the reply port dropped: the request may or may not have run.
        for op in self.inflight.running.drain(..) {
            op.task.abort();
        }
        if !self.state.is_ending() {
            self.env.metrics.forget(self.id);
        }
    }
}

impl AccountActorState {
    pub(crate) fn new(
        env: Arc<AccountEnv>,
        app: Arc<App>,
        proxy: Option<tgfleet_persistence::ProxyUrl>,
        row: Row,
        state: State,
        session: Arc<StoreSession>,
    ) -> Self {
        Self {
            id: row.id,
            app,
            proxy,
            flood: Arc::new(FloodControl::new()),
            pacer: crate::client::new_pacer(&env),
            env,
            row,
            state,
            session,
            client: None,
            generation: 0,
            inflight: InFlight::default(),
            pending: Vec::new(),
            answers: Vec::new(),
            read_answers: Vec::new(),
            watchdog: None,
            check: None,
            last_ok: Instant::now(),
            last_request: Instant::now(),
        }
    }

    pub(crate) fn view(&self) -> View<'_> {
        View {
            state: &self.state,
            authorized: self.session.self_user_id().is_some(),
            pending: self.session.pending_login(),
            login_busy: self.inflight.login_busy(),
            check_scheduled: self.check.is_some(),
            ops_in_flight: self.inflight.len(),
            row: &self.row,
            since_request: self.last_request.elapsed(),
            since_ok: self.last_ok.elapsed(),
            limits: &self.env.limits,
            now: chrono::Utc::now(),
        }
    }

    /// Runs `command`: admission, then its operation in a task (or its answer at once).
    pub(crate) async fn run<C: Handler>(
        &mut self,
        myself: &ActorRef<AccountMsg>,
        command: C,
        reply: Option<Port<C::Reply>>,
        span: tracing::Span,
    ) {
        let traced = span.clone();
        self.admit_and_spawn(myself, command, reply, span)
            .instrument(traced)
            .await
    }

    async fn admit_and_spawn<C: Handler>(
        &mut self,
        myself: &ActorRef<AccountMsg>,
        command: C,
        reply: Option<Port<C::Reply>>,
        span: tracing::Span,
    ) {
        if C::IS_USE {
            self.last_request = Instant::now();
            // Only a hibernated account wakes: no view is built for it on every other request.
            if matches!(self.state, State::Hibernated) {
                let effects = lifecycle::wake(&self.view());
                self.execute(myself, effects).await;
            }
        }
        let admission = command.admit(&self.view());
        match admission {
            Admission::Answer(answer) => {
                if let Some(reply) = reply {
                    let send = move || {
                        let _ = reply.send(answer);
                    };
                    if C::CLASS == Class::Read {
                        self.read_answers.push(Box::new(send));
                    } else {
                        self.answer_after_writes(send);
                    }
                }
            }
            Admission::Run(op) => self.spawn::<C>(myself, op, reply, span.clone()),
        }
    }

    fn spawn<C: Handler>(
        &mut self,
        myself: &ActorRef<AccountMsg>,
        op: C::Op,
        reply: Option<Port<C::Reply>>,
        span: tracing::Span,
    ) {
        let key = C::joins(&op).map(|key| (C::NAME, key));
        let waiters: Vec<Box<dyn Waiter>> = match reply {
            Some(reply) => vec![Box::new(reply)],
            None => Vec::new(),
        };
        if key.is_some() {
            // A re-send while the first is still in flight waits for its answer.
            if let Some(first) = self.inflight.running.iter_mut().find(|r| r.key == key) {
                first.waiters.extend(waiters);
                return;
            }
        }
        let tg = self.tg(myself);
        self.inflight.next_id += 1;
        let id = self.inflight.next_id;
        let me = myself.clone();
        let task = tokio::spawn(
            async move {
                // A panic inside grammers or our operation code must still end the operation, or
                // the account would wait for it forever.
                let result = AssertUnwindSafe(C::run(op, tg))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| {
                        Err(OpFailure::user(AccountError::Internal(
                            "the operation crashed".into(),
                        )))
                    });
                let finish: Box<dyn Finish> = Box::new(Finished::<C> { result });
                let _ = me.send_message(AccountMsg::Internal(InternalMsg(Event::OpDone {
                    id,
                    finish,
                })));
            }
            .instrument(span),
        );
        self.inflight.running.push(Running {
            id,
            class: C::CLASS,
            key,
            waiters,
            task: task.abort_handle(),
        });
    }

    /// The live client for an operation, built (again) when it has none or its runner died.
    fn tg(&mut self, myself: &ActorRef<AccountMsg>) -> Tg {
        let alive = self.client.as_ref().is_some_and(LiveClient::runner_alive);
        let authorized = self.session.self_user_id().is_some();
        let client = match &mut self.client {
            Some(client) if alive => client,
            _ => {
                self.generation += 1;
                // The row as it is now: an identity changed by the owner is read by the next
                // actor (the API restarts a connected one), never mid-client.
                self.client.insert(LiveClient::start(
                    Arc::clone(&self.session),
                    self.app.api_id,
                    &self.row.device,
                    self.proxy.as_ref(),
                    self.generation,
                    myself.clone(),
                ))
            }
        };
        if authorized {
            after_login(client, &self.env, self.id, &self.row);
        }
        Tg {
            account_id: self.id,
            env: Arc::clone(&self.env),
            app: Arc::clone(&self.app),
            handle: client.handle.clone(),
            session: Arc::clone(&self.session),
            flood: Arc::clone(&self.flood),
            pacer: Arc::clone(&self.pacer),
        }
    }

    pub(crate) async fn on_op_done(
        &mut self,
        myself: &ActorRef<AccountMsg>,
        id: u64,
        finish: Box<dyn Finish>,
    ) {
        let waiters = self
            .inflight
            .finish(id)
            .map(|r| r.waiters)
            .unwrap_or_default();
        if finish.succeeded() {
            self.last_ok = Instant::now();
        }
        let (effects, answer) = finish.decide(&self.view(), waiters);
        let refused = self.execute(myself, effects).await;
        self.answer_after_writes(move || answer.send(refused));
        if self.inflight.qr_poll_queued && !self.inflight.login_busy() && !self.state.is_ending() {
            self.execute(myself, vec![Effect::PollQr]).await;
        }
    }

    /// Carries `effects` out in order. Returns the error the caller must hear instead of the
    /// decided answer, if an effect was refused.
    pub(crate) async fn execute(
        &mut self,
        myself: &ActorRef<AccountMsg>,
        effects: Vec<Effect>,
    ) -> Option<AccountError> {
        let mut refused = None;
        for effect in effects {
            match effect {
                Effect::Become { to, update, log } => self.transition(myself, to, update, log),
                Effect::Set(to) => self.state = to,
                Effect::Log { line, details } => self.log(line, details),
                Effect::CompleteLogin { user, how } => {
                    if let Err(e) = self.complete_login(myself, user, how).await {
                        refused = Some(e);
                    }
                }
                Effect::ScheduleCheck(delay) => self.schedule_check(myself, delay),
                Effect::DropClient => self.client = None,
                Effect::WipeSession => {
                    // The final row first: a crash between the two must not leave a row that
                    // says active beside a session with no key.
                    self.settle().await;
                    if let Err(e) = self.session.wipe().await {
                        tracing::error!(account_id = self.id, error = %e, "wiping a dead session");
                    }
                }
                Effect::ForgetPendingLogin => {
                    self.settle().await;
                    if let Err(e) = self.session.set_pending_login(None).await {
                        // What follows assumes the login is gone; it is not.
                        tracing::warn!(account_id = self.id, error = %e, "could not forget an expired login");
                        return refused;
                    }
                }
                Effect::CheckHealth => {
                    if !self.inflight.health_running() {
                        let span = own_span(self.id, Health::NAME);
                        self.spawn::<Health>(myself, (), None, span);
                    }
                }
                Effect::PollQr => {
                    if self.inflight.login_busy() {
                        self.inflight.qr_poll_queued = true;
                    } else {
                        self.inflight.qr_poll_queued = false;
                        let span = own_span(self.id, QrPoll::NAME);
                        self.spawn::<QrPoll>(myself, (), None, span);
                    }
                }
                Effect::StartWatchdog => {
                    if self.watchdog.is_none() {
                        let period = self.env.limits.watchdog_period;
                        self.watchdog = Some(myself.send_interval(period, || {
                            AccountMsg::Internal(InternalMsg(Event::Watchdog))
                        }));
                    }
                }
                Effect::Hibernate => self.hibernate(myself),
            }
        }
        refused
    }

    /// Moves the account to `to` (see [`Effect::Become`]). The row changes in memory now and in
    /// the store when the message's writes go out. A write that fails there is logged; every
    /// later write carries the state again, so the stored state catches up, while a field only
    /// that write carried (a flood-wait end, a last error) stays as it was in the store.
    fn transition(
        &mut self,
        myself: &ActorRef<AccountMsg>,
        to: State,
        update: AccountUpdate,
        log: Line,
    ) {
        let from = self.state.account_state();
        self.transition_from(myself, from, to, update, log);
    }

    /// Like `transition`, from the row state `from` (a new actor's start, where the row may
    /// lag behind the session).
    pub(crate) fn transition_from(
        &mut self,
        myself: &ActorRef<AccountMsg>,
        from: AccountState,
        to: State,
        mut update: AccountUpdate,
        log: Line,
    ) {
        let shown = to.account_state();
        update.state = Some(shown);
        update.cause = Some(cause_of(&log));
        update.apply_to(&mut self.row);
        self.pending.push(Write::Row(update));
        self.entered(myself, from, to, log);
    }

    /// Bookkeeping of a state just written: the gauge, the log line, the end of a final state.
    fn entered(&mut self, myself: &ActorRef<AccountMsg>, from: AccountState, to: State, log: Line) {
        let shown = to.account_state();
        self.state = to;
        // Logged in just now: the updates are received or muted at once, not at the next call
        // (a receiving bot may make none for a while).
        if shown == AccountState::Active && self.session.self_user_id().is_some() {
            if let Some(client) = &mut self.client {
                after_login(client, &self.env, self.id, &self.row);
            }
        }
        self.env.metrics.set_state(self.id, shown);
        if from != shown || log.level >= LogLevel::Warn {
            let details = serde_json::json!({ "from": from.as_str(), "to": shown.as_str() });
            self.log(log, details);
        }
        if let State::Final(reason) = self.state {
            self.end(myself, reason);
        }
    }

    /// A final state was reached: no client any more, and the actor stops once the requests
    /// already queued have been answered with that state's error.
    fn end(&mut self, myself: &ActorRef<AccountMsg>, reason: StopReason) {
        self.client = None;
        let _ = myself.send_message(AccountMsg::Internal(InternalMsg(Event::StopNow(reason))));
    }

    /// One integration-log row (written with the message's other writes).
    fn log(&mut self, line: Line, details: serde_json::Value) {
        let entry = NewLogEntry {
            level: line.level,
            event: line.event.to_owned(),
            account_id: Some(self.id),
            user_id: Some(self.row.owner_id),
            error_code: line.error_code,
            message: line.message,
            details,
        };
        self.pending.push(Write::Log(entry));
    }

    /// `send` runs once every write queued so far for this account is in the store (at once
    /// when there is none), so a caller reads in the store what it has seen the actor do.
    pub(crate) fn answer_after_writes(&mut self, send: impl FnOnce() + Send + 'static) {
        self.answers.push(Box::new(send));
    }

    fn refuse_after_writes(&mut self, waiters: Vec<Box<dyn Waiter>>, error: AccountError) {
        self.answer_after_writes(move || {
            for waiter in waiters {
                waiter.refuse(error.clone());
            }
        });
    }

    /// Sends this message's writes off the mailbox, its answers behind them. Called once a
    /// message is handled.
    pub(crate) fn flush(&mut self) {
        let writes = std::mem::take(&mut self.pending);
        let answers = std::mem::take(&mut self.answers);
        // Reads of memory (a status) go at once, even while the database stalls: the supervisor's
        // liveness check is one, and must not take a stall for a hung actor.
        for send in std::mem::take(&mut self.read_answers) {
            send();
        }
        if answers.is_empty() && writes.is_empty() {
            return;
        }
        if writes.is_empty() && self.env.writes.idle(self.id) {
            for send in answers {
                send();
            }
            return;
        }
        let env = Arc::clone(&self.env);
        let account_id = self.id;
        self.env.writes.submit(account_id, async move {
            for write in writes {
                write_now(&env, account_id, write).await;
            }
            for send in answers {
                send();
            }
        });
    }

    /// Waits until every write of this account so far is in the store.
    pub(crate) async fn settle(&mut self) {
        self.flush();
        self.env.writes.settle(self.id).await;
    }

    /// Writes the finished login. Refused when another account of the fleet got authorized for
    /// this phone first: this authorization is then undone at Telegram rather than run one
    /// Telegram user twice.
    async fn complete_login(
        &mut self,
        myself: &ActorRef<AccountMsg>,
        user: LoggedInUser,
        how: &'static str,
    ) -> Result<(), AccountError> {
        let update = AccountUpdate {
            state: Some(AccountState::Active),
            tg_user_id: Some(Some(user.user_id)),
            username: Some(user.username.clone()),
            dc_id: Some(Some(user.dc_id)),
            last_error: Some(None),
            // Only now, authorized, does the account hold its phone (the store's unique index).
            phone: user.phone.clone().map(Some),
            cause: Some("login_completed".into()),
            ..Default::default()
        };
        let message = format!(
            "logged in by {how} as Telegram {} {}",
            if user.bot { "bot" } else { "user" },
            user.user_id
        );
        let from = self.state.account_state();
        let line = Line::new(LogLevel::Info, "login_completed", message);
        // The one write whose answer decides the state (the store refuses a phone another account
        // holds), so it is awaited here, after the writes queued before it.
        self.settle().await;
        match self.env.store.update_account(self.id, update.clone()).await {
            Err(StoreError::Conflict(_)) => {}
            Ok(row) => {
                self.row = row;
                self.entered(myself, from, State::Active, line);
                return Ok(());
            }
            Err(e) => {
                tracing::error!(account_id = self.id, error = %e, "could not write the account state");
                update.apply_to(&mut self.row);
                self.entered(myself, from, State::Active, line);
                return Ok(());
            }
        }
        let tg = self.tg(myself);
        if let Err(e) = crate::commands::log_out::log_out(&tg).await {
            // Telegram not reached: the key cannot stay here either, beside the account that
            // holds the phone.
            tracing::warn!(account_id = self.id, error = %e.error, "logging out a login whose phone is taken");
            if let Err(e) = self.session.wipe().await {
                tracing::error!(account_id = self.id, error = %e, "wiping a login whose phone is taken");
            }
        }
        let reason = "PHONE_TAKEN: another account of this fleet is logged in with this phone; \
                      this login was logged out again";
        let update = AccountUpdate {
            tg_user_id: Some(None),
            username: Some(None),
            last_error: Some(Some(reason.into())),
            ..Default::default()
        };
        let line = Line::new(LogLevel::Warn, "login_refused", reason).code("PHONE_TAKEN");
        self.transition(myself, State::Final(StopReason::LoggedOut), update, line);
        Err(AccountError::PhoneTaken)
    }

    fn schedule_check(&mut self, myself: &ActorRef<AccountMsg>, delay: Delay) {
        if self.check.is_some() {
            return;
        }
        let delay = match delay {
            Delay::Exactly(d) => d,
            Delay::Backoff { attempt } => self.backoff(attempt),
        };
        // A timer message, never a sleep in the handler: the mailbox stays responsive.
        let timer = myself.send_after(delay, || AccountMsg::Internal(InternalMsg(Event::CheckNow)));
        self.check = Some(timer.abort_handle());
    }

    fn backoff(&self, attempt: u32) -> Duration {
        use rand::Rng;
        let jitter = rand::thread_rng().gen_range(0.0..=1.0);
        crate::lifecycle::reconnect_delay(&self.env.limits, attempt, jitter)
    }

    /// Disconnects and drains the mailbox to end (the state is already `Hibernating`).
    fn hibernate(&mut self, myself: &ActorRef<AccountMsg>) {
        self.client = None;
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.abort();
        }
        // Its per-call series go with the actor (a woken account's counters start again from
        // 0, which Prometheus reads as a counter reset); its state stays counted as hibernated.
        self.env.metrics.forget_calls(self.id);
        if myself.drain().is_err() {
            // Already stopping for another reason; that end is as good.
            tracing::debug!(account_id = self.id, "hibernation met a stopping actor");
        }
    }

    /// The answer to a request that reaches an ending actor.
    pub(crate) fn ending_error(&self) -> AccountError {
        match self.state {
            State::Hibernating => AccountError::Hibernating,
            State::Final(StopReason::Unauthorized) => AccountError::Unauthorized,
            State::Final(StopReason::Banned) => AccountError::Banned,
            _ => AccountError::WrongState {
                state: self.state.account_state(),
                expected: "a running account",
            },
        }
    }

    /// The actor's own events (finished operations, client lifecycle, timers).
    pub(crate) async fn on_event(&mut self, myself: &ActorRef<AccountMsg>, event: Event) {
        if self.state.is_ending() {
            // Nothing but the stop matters any more; late results must not move the account out
            // of a final state again (a late health check "reviving" a banned account).
            let late = self.ending_error();
            match event {
                Event::StopNow(reason) => {
                    // Requests still running get the state's answer rather than a dropped port.
                    let waiters = self.inflight.stop_all();
                    self.refuse_after_writes(waiters, late);
                    myself.stop(Some(reason.as_str().to_owned()));
                }
                Event::OpDone { id, .. } => {
                    if let Some(running) = self.inflight.finish(id) {
                        self.refuse_after_writes(running.waiters, late);
                    }
                }
                _ => {}
            }
            return;
        }
        let current = |generation: u64, s: &Self| generation == s.generation && s.client.is_some();
        let effects = match event {
            Event::OpDone { id, finish } => return self.on_op_done(myself, id, finish).await,
            Event::StopNow(reason) => {
                myself.stop(Some(reason.as_str().to_owned()));
                return;
            }
            Event::RunnerExited {
                generation,
                panicked,
            } if current(generation, self) => lifecycle::on_runner_exited(&self.view(), panicked),
            Event::ConnectionClosed { generation } if current(generation, self) => {
                lifecycle::on_connection_closed(&self.view())
            }
            Event::LoginTokenUpdated { generation } if current(generation, self) => {
                lifecycle::on_login_token(&self.view())
            }
            Event::RunnerExited { .. }
            | Event::ConnectionClosed { .. }
            | Event::LoginTokenUpdated { .. } => Vec::new(),
            Event::CheckNow => {
                self.check = None;
                lifecycle::on_check(&self.view())
            }
            Event::Watchdog => lifecycle::on_watchdog(&self.view()),
        };
        self.execute(myself, effects).await;
    }
}

async fn write_now(env: &AccountEnv, account_id: AccountId, write: Write) {
    match write {
        Write::Row(update) => {
            if let Err(e) = env.store.update_account(account_id, update).await {
                tracing::error!(account_id, error = %e, "could not write the account state");
            }
        }
        Write::Log(entry) => {
            if let Err(e) = env.store.append_log(entry).await {
                tracing::warn!(account_id, error = %e, "could not write the integration log");
            }
        }
    }
}

/// What a logged-in account's client does with its updates (idempotent).
fn after_login(
    client: &mut LiveClient,
    env: &AccountEnv,
    id: AccountId,
    row: &tgfleet_persistence::Account,
) {
    if row.receives() {
        client.receive_updates(Arc::clone(&env.store), id, row.owner_id);
    } else {
        client.mute_updates();
    }
}

/// What an `account.state_changed` event gives as its cause: the Telegram error code when there
/// is one (`AUTH_KEY_UNREGISTERED`, `FLOOD_WAIT`), else the log line's event (`login_completed`).
fn cause_of(line: &Line) -> String {
    line.error_code
        .clone()
        .unwrap_or_else(|| line.event.to_owned())
}

/// The span of an operation the account starts on its own (no request behind it).
fn own_span(account_id: AccountId, op: &'static str) -> tracing::Span {
    tracing::info_span!(parent: None, "account", account_id, command = op)
}
