//! jemalloc options built into the `tgfleet` binary. The benches include this file too
//! (`benches/common/mod.rs`), so they measure the allocator as the service runs it.
//!
//! `narenas:1`: one arena instead of jemalloc's default four per CPU. Memory a connection frees on
//! one thread (grammers' 1 MiB buffers, the connection's tasks) is then reused by the next
//! connection whatever thread allocates it; with several arenas it stays in the arena it came
//! from. At 2,000 idle accounts this gave 77 KiB per account after three reconnect rounds in every
//! run, against 80–88 KiB with the defaults. At 10,000 it gave 73.1 against 74.0 KiB. No other
//! jemalloc option measured better (README, "Memory per connected idle account"). All threads
//! share the arena's lock, but small allocations go through per-thread caches first (`tcache`,
//! left on); `restart_in_place` latencies did not change.
//!
//! `background_thread:true`: a thread that returns freed pages to the OS on jemalloc's decay
//! schedule even when the process is quiet. Without it jemalloc purges only while allocating, and a
//! fleet that has gone idle or hibernated hardly allocates: after 2,000 accounts woke once and
//! hibernated again they left 52 KiB each resident with the default, 16 KiB with the thread
//! (1.63 against 1.15 KiB at 100,000; `benches/hibernated_rss.rs`). For connected idle accounts it
//! made no consistent difference either way.
//!
//! jemalloc reads its options at the first allocation from, in order: its build-time defaults, this
//! string, the `/etc/_rjem_malloc.conf` link and the `_RJEM_MALLOC_CONF` environment variable
//! (tikv-jemallocator prefixes jemalloc's symbols and variables with `_rjem_`). A later source
//! overrides an earlier one option by option, so `_RJEM_MALLOC_CONF=narenas:8` still wins.

/// jemalloc's `malloc_conf`: a C `const char *` to a NUL-terminated options string, read before
/// `main` runs.
// SAFETY: jemalloc declares `_rjem_malloc_conf` as a weak `const char *`; this strong definition
// is a thin pointer to a NUL-terminated, immutable static string, which is what it reads.
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static MALLOC_CONF: &u8 = &b"narenas:1,background_thread:true\0"[0];
