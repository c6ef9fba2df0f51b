//! auth.checkPassword: the 2FA step. The SRP proof (PBKDF2, 100k rounds) is CPU work, bounded
//! process-wide to one per core.

use grammers_crypto::two_factor_auth::{calculate_2fa, check_p_and_g};
use grammers_tl_types as tl;

use super::login::{self, LoginStep, Step};
use super::{Admission, Class, Decided, Handler, OpFailure, View};
use crate::client::Tg;
use crate::protocol::AccountError;
use crate::session::PendingLogin;
use zeroize::Zeroizing;

#[derive(Clone)]
pub struct CheckPassword {
    pub password: String,
}

impl std::fmt::Debug for CheckPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckPassword")
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Handler for CheckPassword {
    type Reply = LoginStep;
    type Op = String;
    type Done = Step;
    const NAME: &'static str = "check_password";
    const CLASS: Class = Class::Login;

    fn admit(self, view: &View) -> Admission<String, LoginStep> {
        view.login_step_allowed()
            .and_then(|()| match view.pending {
                Some(PendingLogin::Password { .. }) => Ok(self.password),
                _ => Err(view.wrong_state("awaiting_password")),
            })
            .into()
    }

    async fn run(password: String, tg: Tg) -> Result<Step, OpFailure> {
        let tg = &tg;
        if !matches!(
            tg.session.pending_login(),
            Some(PendingLogin::Password { .. })
        ) {
            return Err(OpFailure::user(AccountError::Internal(
                "no password step pending".into(),
            )));
        }
        // Fresh SRP parameters for every attempt: srp_id / srp_b are single-use on Telegram's side.
        let info: tl::types::account::Password = tg
            .call(&tl::functions::account::GetPassword {})
            .await?
            .into();
        prove(tg, info, Zeroizing::new(password)).await
    }

    fn on_done(view: &View, step: Step) -> Decided<LoginStep> {
        Decided {
            effects: login::step_effects(view, &step, "code and password"),
            answer: login::login_step(view, &step),
        }
    }
}

/// Answers Telegram's 2FA challenge `info` (one `account.getPassword`, used once) with
/// `password`, and finishes the login when it is right.
pub(crate) async fn prove(
    tg: &Tg,
    info: tl::types::account::Password,
    password: Zeroizing<String>,
) -> Result<Step, OpFailure> {
    let bad = |what: &str| OpFailure::user(AccountError::Internal(format!("2FA: {what}")));
    let Some(tl::enums::PasswordKdfAlgo::Sha256Sha256Pbkdf2Hmacsha512iter100000Sha256ModPow(algo)) =
        info.current_algo
    else {
        return Err(bad("unsupported or missing password algorithm"));
    };
    let (Some(srp_b), Some(srp_id)) = (info.srp_b, info.srp_id) else {
        return Err(bad("server sent no SRP parameters"));
    };
    let secure_random = info.secure_random;
    // PBKDF2 with 100k rounds: CPU work that must not block the async runtime, and bounded like
    // argon2 (one per core), its slot held by the blocking job itself. grammers panics on
    // malformed parameters; the blocking task contains that, and p/g are checked first.
    let slot = match tokio::time::timeout(SRP_SLOT_WAIT, srp_slots().acquire()).await {
        Ok(Ok(slot)) => slot,
        _ => return Err(OpFailure::user(AccountError::Busy("2FA password checks"))),
    };
    let srp = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let _counted = SrpInFlight::enter();
        if !check_p_and_g(&algo.p, &algo.g) {
            return None;
        }
        Some(calculate_2fa(
            &algo.salt1,
            &algo.salt2,
            &algo.p,
            &algo.g,
            srp_b,
            secure_random,
            password.as_bytes(),
        ))
    })
    .await;
    let (m1, g_a) = match srp {
        Ok(Some(v)) => v,
        Ok(None) => return Err(bad("server sent invalid SRP group")),
        Err(_) => return Err(bad("SRP computation failed")),
    };
    let request = tl::functions::auth::CheckPassword {
        password: tl::enums::InputCheckPasswordSrp::Srp(tl::types::InputCheckPasswordSrp {
            srp_id,
            a: g_a.to_vec(),
            m1: m1.to_vec(),
        }),
    };
    match tg.call(&request).await {
        Ok(tl::enums::auth::Authorization::Authorization(auth)) => {
            login::complete_login(tg, auth).await
        }
        Ok(tl::enums::auth::Authorization::SignUpRequired(_)) => {
            Err(OpFailure::user(AccountError::PhoneNotRegistered))
        }
        Err(e) if e.is("PASSWORD_HASH_INVALID") => Err(OpFailure {
            error: AccountError::PasswordInvalid,
            cause: Some(e),
        }),
        Err(e) => Err(e.into()),
    }
}

/// How long a 2FA check waits for a hashing slot before it answers busy.
const SRP_SLOT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// One SRP (PBKDF2) computation per core at a time, across every account of the process.
fn srp_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| tokio::sync::Semaphore::new(srp_slot_count()))
}

/// How many 2FA hashes may run at once: the cores this process may use.
pub fn srp_slot_count() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
}

static SRP_IN_FLIGHT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static SRP_PEAK: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The most 2FA hashes that ever ran at once in this process (for tests and health).
pub fn srp_peak_in_flight() -> usize {
    SRP_PEAK.load(std::sync::atomic::Ordering::Relaxed)
}

struct SrpInFlight;

impl SrpInFlight {
    fn enter() -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        let now = SRP_IN_FLIGHT.fetch_add(1, Relaxed) + 1;
        SRP_PEAK.fetch_max(now, Relaxed);
        Self
    }
}

impl Drop for SrpInFlight {
    fn drop(&mut self) {
        SRP_IN_FLIGHT.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}
