//! A small client of tgfleet's REST API for the command line: bearer token, JSON, the API's
//! error format, and waiting out 429/503 answers that carry `Retry-After`.

use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::time::Duration;

/// A request that failed: the API's stable code and message, or why no answer came.
#[derive(Debug, Clone)]
pub struct Failure {
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// How many times one request waits out a 429/503 with Retry-After before giving up: a flood
/// wait is usually one wait, rate limiting a few; more means something else is wrong.
const MAX_RETRIES: u32 = 6;
/// A Retry-After longer than this is not waited out here: the row fails and a later run
/// resumes it (Telegram's long flood waits last hours).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    pub fn new(base: &str, token: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            // Above the server's own bound on one Telegram call (2 × 20 s + flood wait + 5 s),
            // so the server answers before the client gives up.
            .timeout(Duration::from_secs(90))
            .build()?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        })
    }

    /// Sends one request; `on_wait` hears of every Retry-After wait (for the progress bar).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        on_wait: &(dyn Fn(u64, &str) + Sync),
    ) -> Result<Value, Failure> {
        let mut attempt = 0;
        loop {
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .bearer_auth(&self.token);
            if let Some(b) = body {
                req = req.json(b);
            }
            let resp = req.send().await.map_err(|e| Failure {
                code: "UNREACHABLE".into(),
                message: format!("{}: {e}", self.base),
            })?;
            let status = resp.status();
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let text = resp.text().await.unwrap_or_default();
            let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if status.is_success() {
                return Ok(json);
            }
            let failure = Failure {
                code: json["error"]["code"]
                    .as_str()
                    .unwrap_or(status.canonical_reason().unwrap_or("HTTP_ERROR"))
                    .to_owned(),
                message: json["error"]["message"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("HTTP {status}")),
            };
            let retryable = matches!(
                status,
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
            );
            match retry_after {
                Some(secs)
                    if retryable
                        && attempt < MAX_RETRIES
                        && Duration::from_secs(secs) <= MAX_RETRY_AFTER =>
                {
                    attempt += 1;
                    on_wait(secs, &failure.code);
                    tokio::time::sleep(Duration::from_secs(secs.max(1))).await;
                }
                _ => return Err(failure),
            }
        }
    }

    pub async fn get(&self, path: &str) -> Result<Value, Failure> {
        self.send(Method::GET, path, None, &|_, _| {}).await
    }
}
