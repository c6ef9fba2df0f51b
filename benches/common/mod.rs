//! Pieces the fleet benches share (each bench includes this module; not every bench uses all).
#![allow(dead_code)]

// The `tgfleet` binary's jemalloc options (`narenas:1`), so the benches measure the same allocator.
#[path = "../../src/malloc_conf.rs"]
mod malloc_conf;

pub mod cluster;

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorRef};
use tgfleet_actors::{AccountActor, AccountArgs, AccountEnv, AccountMsg, Command};
use tgfleet_persistence::{NewUser, Role, Store, UserId};

/// utime + stime of a whole process (every thread), in clock ticks; 0 once it is gone.
pub fn cpu_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name: state is the 1st, utime the 12th, stime the 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// A `kB` field of /proc/self/status, e.g. `VmRSS:` or `VmHWM:`.
pub fn proc_status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

/// A bench's size from the environment (`FANOUT_ACCOUNTS=…`), or its default.
pub fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn rss_kib() -> u64 {
    proc_status_kib("VmRSS:")
}

pub async fn spawn_actor(env: &Arc<AccountEnv>, account_id: i64) -> ActorRef<AccountMsg> {
    let args = AccountArgs {
        account_id,
        env: Arc::clone(env),
    };
    Actor::spawn(None, AccountActor, args)
        .await
        .expect("actor starts")
        .0
}

/// One request to an actor, bounded by `bound`; a bench stops at the first failure.
pub async fn request<C: Command>(
    actor: &ActorRef<AccountMsg>,
    req: C,
    bound: Duration,
) -> C::Reply {
    match actor
        .call(
            |reply| AccountMsg::Request(req.into_request(reply)),
            Some(bound),
        )
        .await
        .expect("actor reachable")
    {
        ractor::rpc::CallResult::Success(Ok(reply)) => reply,
        other => panic!("request failed: {other:?}"),
    }
}

/// A user account for `phone`, owned by `owner`; its id.
pub async fn user_account(store: &dyn Store, owner: UserId, phone: String) -> i64 {
    store
        .create_account(tgfleet_persistence::NewAccount {
            owner_id: owner,
            label: None,
            kind: tgfleet_persistence::AccountKind::User,
            phone: Some(phone.parse().expect("a bench phone is E.164")),
        })
        .await
        .expect("account")
        .id
}

/// The API user every bench account belongs to.
pub async fn bench_owner(store: &dyn Store) -> UserId {
    store
        .create_user(NewUser {
            email: "bench@example.com".into(),
            username: None,
            password_hash: "x".into(),
            role: Role::User,
        })
        .await
        .expect("owner")
        .id
}

/// Thousands of accounts need as many sockets in this process and in the testdc and server
/// processes it starts (children inherit the limit): lift the soft limit to the hard one.
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
