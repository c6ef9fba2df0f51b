//! A real grammers client wired to a testdc, as the fleet will build it.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use grammers_client::session::storages::MemorySession;
use grammers_client::session::updates::UpdatesLike;
use grammers_client::{Client, SenderPool};
use grammers_mtsender::{ConnectionParams, NoRetries};
use tgfleet_testdc::{new_auth_key, seed_session, TestDc, TestDcConfig};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub const API_ID: i32 = 12345;
pub const API_HASH: &str = "0123456789abcdef0123456789abcdef";

/// Generous bound for any single call: only there so a bug fails the test instead of hanging it.
pub const SAFETY: Duration = Duration::from_secs(30);

pub struct TestClient {
    pub client: Client,
    pub session: Arc<MemorySession>,
    pub key: [u8; 256],
    pub updates: mpsc::UnboundedReceiver<UpdatesLike>,
    runner: JoinHandle<()>,
}

impl Drop for TestClient {
    fn drop(&mut self) {
        self.client.disconnect();
        self.runner.abort();
    }
}

pub async fn start() -> TestDc {
    start_with(TestDcConfig::default()).await
}

pub async fn start_with(cfg: TestDcConfig) -> TestDc {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    TestDc::start(cfg).await.expect("testdc starts")
}

/// A client with a fresh registered key, homed on `home_dc`, that never retries on its own
/// (so tests see each error exactly as the server sent it).
pub async fn client(dc: &TestDc, home_dc: i32) -> TestClient {
    let key = new_auth_key();
    dc.register_auth_key(key);
    client_with_key(dc, home_dc, key).await
}

pub async fn client_with_key(dc: &TestDc, home_dc: i32, key: [u8; 256]) -> TestClient {
    let params = ConnectionParams {
        retry_policy: Box::new(NoRetries),
        ..Default::default()
    };
    client_with_params(dc, home_dc, key, params).await
}

/// A client whose connections introduce themselves with `params` (initConnection).
pub async fn client_with_params(
    dc: &TestDc,
    home_dc: i32,
    key: [u8; 256],
    params: ConnectionParams,
) -> TestClient {
    let session = Arc::new(MemorySession::default());
    seed_session(&*session, dc, home_dc, key)
        .await
        .expect("seeding a memory session");
    let pool = SenderPool::with_configuration(Arc::clone(&session), API_ID, params);
    let runner = tokio::spawn(pool.runner.run());
    let client = Client::new(pool.handle);
    // The updates channel is bounded and drops when full: always drain it.
    let (tx, updates) = mpsc::unbounded_channel();
    let mut raw = pool.updates;
    tokio::spawn(async move {
        while let Some(u) = raw.recv().await {
            if tx.send(u).is_err() {
                break;
            }
        }
    });
    TestClient {
        client,
        session,
        key,
        updates,
        runner,
    }
}

/// Bounds a future with [`SAFETY`].
pub async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(SAFETY, f)
        .await
        .expect("call finished within the safety bound")
}

/// Logs `c` in as the user with `phone` through the high-level code flow.
pub async fn log_in(dc: &TestDc, c: &TestClient, phone: &str) -> grammers_client::peer::User {
    let token = bounded(c.client.request_login_code(phone, API_HASH))
        .await
        .expect("send code");
    let code = dc.last_code(phone).expect("a code was sent");
    bounded(c.client.sign_in(&token, &code))
        .await
        .expect("sign in")
}

/// The name of an RPC error, failing the test on any other outcome.
pub fn rpc_error<T: std::fmt::Debug>(
    r: Result<T, grammers_client::InvocationError>,
) -> grammers_mtsender::RpcError {
    match r {
        Err(grammers_client::InvocationError::Rpc(e)) => e,
        other => panic!("expected an RPC error, got {other:?}"),
    }
}
