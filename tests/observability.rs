//! Issue 16, item 4: what an operator looks at. The Grafana dashboard (`deploy/grafana/tgfleet.json`)
//! and the Prometheus alerts (`deploy/prometheus/alerts.yml`) are only worth having if their
//! queries parse, every alert does what its unit test says (`promtool test rules
//! deploy/prometheus/alerts_test.yml`), and every metric they name is one tgfleet serves — a
//! renamed metric would otherwise leave a blank panel and an alert that never fires.
//!
//! promtool comes from Debian's `prometheus` package (scripts/test installs it); without it the
//! promtool tests skip with a notice, unless `TGFLEET_REQUIRE_SERVICES=1`.

mod support;

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{call, free_port, wait_until_up, Guard};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(deploy(path)).unwrap_or_else(|e| panic!("reading deploy/{path}: {e}"))
}

fn dashboard() -> Value {
    serde_json::from_str(&read("grafana/tgfleet.json"))
        .unwrap_or_else(|e| panic!("deploy/grafana/tgfleet.json is not JSON: {e}"))
}

/// Every panel, rows' collapsed panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().expect("panels") {
        out.push(p);
        if let Some(inner) = p["panels"].as_array() {
            out.extend(inner);
        }
    }
    out
}

/// Every PromQL query of the dashboard: panel targets and template variables.
fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    let mut out: Vec<String> = panels(dashboard)
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .map(|t| {
            t["expr"]
                .as_str()
                .expect("a target with an expr")
                .to_owned()
        })
        .collect();
    for var in dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
    {
        if var["type"] == "query" {
            out.push(var["query"]["query"].as_str().expect("query").to_owned());
        }
    }
    out
}

/// Every string in a JSON document (titles, descriptions and queries alike).
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
        Value::Object(o) => o.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// The metric names in `text`: identifiers starting `tgfleet_`, or `process_` (the process
/// collector's, which the dashboard and an alert use too).
fn metric_names(text: &str) -> BTreeSet<String> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = BTreeSet::new();
    for prefix in ["tgfleet_", "process_"] {
        let mut from = 0;
        while let Some(at) = text[from..].find(prefix) {
            let start = from + at;
            let end = text[start..]
                .find(|c: char| !ident(c))
                .map_or(text.len(), |n| start + n);
            if !text[..start].ends_with(ident) {
                out.insert(text[start..end].to_owned());
            }
            from = end;
        }
    }
    out
}

/// The values `state="…"` and `state=~"a|b"` matchers in `text` name.
fn state_values(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for matcher in ["state=\"", "state=~\""] {
        let mut from = 0;
        while let Some(at) = text[from..].find(matcher) {
            let start = from + at + matcher.len();
            let end = start + text[start..].find('"').expect("a closing quote");
            out.extend(text[start..end].split('|').map(str::to_owned));
            from = end;
        }
    }
    out
}

/// promtool, or `None` (with a notice) when it is not installed and services are optional.
fn promtool() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("promtool"))
            .find(|p| p.is_file())
    });
    match found {
        Some(p) => Some(p),
        None => tgfleet_persistence::testing::skip(
            "promtool",
            &"not on PATH (Debian: apt-get install prometheus; scripts/test does)",
        ),
    }
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed:\n{text}");
    text
}

#[test]
fn the_alert_rules_pass_promtool_and_every_alert_fires_and_stays_quiet_in_a_unit_test() {
    let Some(promtool) = promtool() else { return };
    let checked = run(
        Command::new(&promtool)
            .args(["check", "rules"])
            .arg(deploy("prometheus/alerts.yml")),
        "promtool check rules deploy/prometheus/alerts.yml",
    );
    assert!(checked.contains("SUCCESS"), "{checked}");
    // promtool resolves `rule_files` against the test file's directory.
    let tested = run(
        Command::new(&promtool)
            .args(["test", "rules", "alerts_test.yml"])
            .current_dir(deploy("prometheus")),
        "promtool test rules deploy/prometheus/alerts_test.yml",
    );
    assert!(tested.contains("SUCCESS"), "{tested}");

    let alerts: BTreeSet<String> = read("prometheus/alerts.yml")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .map(|a| a.trim().to_owned())
        .collect();
    assert!(alerts.len() >= 10, "{alerts:?}");
    let (mut fires, mut quiet) = (BTreeSet::new(), BTreeSet::new());
    let mut current = None;
    for line in read("prometheus/alerts_test.yml").lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("alertname: ") {
            current = Some(name.trim().to_owned());
        } else if let Some(rest) = line.strip_prefix("exp_alerts:") {
            let name = current.clone().expect("exp_alerts after an alertname");
            if rest.trim() == "[]" {
                quiet.insert(name);
            } else {
                fires.insert(name);
            }
        }
    }
    let untested: Vec<_> = alerts.difference(&fires).collect();
    assert!(
        untested.is_empty(),
        "no test makes these fire: {untested:?}"
    );
    let unquiet: Vec<_> = alerts.difference(&quiet).collect();
    assert!(unquiet.is_empty(), "no test shows these quiet: {unquiet:?}");
    let unknown: Vec<_> = fires
        .union(&quiet)
        .filter(|a| !alerts.contains(*a))
        .collect();
    assert!(
        unknown.is_empty(),
        "tests of alerts that do not exist: {unknown:?}"
    );
}

#[test]
fn the_dashboard_is_grafana_json_whose_queries_all_parse() {
    let d = dashboard();
    assert_eq!(d["uid"], "tgfleet");
    assert!(d["title"].is_string());
    let vars: Vec<&str> = d["templating"]["list"]
        .as_array()
        .expect("templating")
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    for var in ["datasource", "job", "instance", "account"] {
        assert!(vars.contains(&var), "variable {var} missing: {vars:?}");
    }
    let titles: Vec<&str> = panels(&d)
        .iter()
        .filter(|p| p["type"] != "row")
        .map(|p| {
            let title = p["title"].as_str().expect("every panel has a title");
            let targets = p["targets"].as_array().map_or(0, Vec::len);
            assert!(targets > 0, "panel {title:?} has no query");
            assert_eq!(
                p["datasource"]["uid"], "${datasource}",
                "panel {title:?} must use the datasource variable, so an import works anywhere"
            );
            title
        })
        .collect();
    // What issue 16 asks to see.
    for wanted in [
        "Accounts by state",
        "Actor restarts by reason",
        "Flood wait imposed by Telegram",
        "Calls by method",
        "Call latency p99 by method",
        "Requests by route",
        "Latency p99 by route",
        "Errors by route and status",
        "Webhook backlog",
        "Webhook lag (oldest undelivered event)",
        "State of account $account",
    ] {
        assert!(titles.contains(&wanted), "no panel {wanted:?}: {titles:?}");
    }

    // Every query parses as PromQL: promtool checks them as recording rules, with Grafana's
    // variables replaced by what Grafana would put there.
    let Some(promtool) = promtool() else { return };
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (n, q) in dashboard_queries(&d).iter().enumerate() {
        if q.starts_with("label_values(") {
            continue; // Grafana's own function, not PromQL; its metric is checked below.
        }
        let q = q
            .replace("$__rate_interval", "1m")
            .replace("$job", "tgfleet")
            .replace("$instance", ".*")
            .replace("$account", ".*");
        rules.push_str(&format!(
            "      - record: dashboard_query_{n}\n        expr: {}\n",
            serde_json::to_string(&q).unwrap()
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard_queries.yml");
    std::fs::write(&file, &rules).unwrap();
    run(
        Command::new(&promtool).args(["check", "rules"]).arg(&file),
        &format!("promtool check rules on the dashboard's queries:\n{rules}"),
    );
}

/// A webhook receiver on loopback that answers every request 200 and counts them.
struct Receiver {
    url: String,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&requests);
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let counted = Arc::clone(&counted);
                tokio::spawn(async move {
                    // Read the head and the body it announces, then answer.
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let n = conn.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + length {
                            break;
                        }
                    }
                    counted.fetch_add(1, Ordering::SeqCst);
                    let _ = conn
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                });
            }
        });
        Self {
            url,
            requests,
            task,
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The sample names in a Prometheus text exposition.
fn served_samples(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            l.split(['{', ' '])
                .next()
                .expect("a sample name")
                .to_owned()
        })
        .collect()
}

/// The `state` label values of `tgfleet_accounts` in a Prometheus text exposition.
fn served_account_states(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("tgfleet_accounts{state=\""))
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

/// A metric named in a query is served when its samples are there; a histogram's family name
/// (`tgfleet_rpc_seconds`) stands for its `_bucket`, `_sum` and `_count` samples.
fn missing(named: &BTreeSet<String>, served: &BTreeSet<String>) -> Vec<String> {
    named
        .iter()
        .filter(|m| !served.contains(*m) && !served.contains(&format!("{m}_count")))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_and_the_alerts_name_is_served_by_serve_sandbox() {
    let mut named = BTreeSet::new();
    let mut texts = Vec::new();
    strings(&dashboard(), &mut texts);
    texts.push(read("prometheus/alerts.yml"));
    // The unit tests' input series too: a test fed a metric that does not exist proves nothing.
    texts.push(read("prometheus/alerts_test.yml"));
    let mut states = BTreeSet::new();
    for t in &texts {
        named.extend(metric_names(t));
        states.extend(state_values(t));
    }
    for expected in [
        "tgfleet_accounts",
        "tgfleet_account_state",
        "tgfleet_rpc_total",
        "tgfleet_rpc_seconds_bucket",
        "tgfleet_flood_wait_seconds_total",
        "tgfleet_actor_restarts_total",
        "tgfleet_dependency_waits_total",
        "tgfleet_http_requests_total",
        "tgfleet_http_seconds_bucket",
        "tgfleet_webhook_backlog",
        "tgfleet_webhook_oldest_undelivered_seconds",
    ] {
        assert!(named.contains(expected), "{expected} is named nowhere");
    }

    // The README's first session, on the real binary: sign in, connect an account, send, hit a
    // flood wait, restart the account, and have a webhook receive the events.
    let dir = tempfile::tempdir().unwrap();
    let (api_port, metrics_port) = (free_port(), free_port());
    let child = support::tgfleet(dir.path(), &["serve", "--sandbox"], "serve")
        .env("TGFLEET__API__LISTEN", format!("127.0.0.1:{api_port}"))
        .env(
            "TGFLEET__METRICS__LISTEN",
            format!("127.0.0.1:{metrics_port}"),
        )
        .spawn()
        .expect("spawn tgfleet serve --sandbox");
    let _serve = Guard(child);
    let api = format!("http://127.0.0.1:{api_port}");
    let metrics = format!("http://127.0.0.1:{metrics_port}/metrics");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    wait_until_up(
        &http,
        &format!("{api}/api/v1/health"),
        "tgfleet serve --sandbox",
    )
    .await;
    let token = support::user_token(&http, &api).await;
    let receiver = Receiver::start().await;
    call(
        http.post(format!("{api}/api/v1/webhooks"))
            .bearer_auth(&token)
            .json(&json!({"url": receiver.url, "events": ["*"]})),
        201,
        "create a webhook",
    )
    .await;

    let phone = "+15550100123";
    let account = call(
        http.post(format!("{api}/api/v1/telegram/accounts"))
            .bearer_auth(&token)
            .json(&json!({"kind": "user", "label": "demo"})),
        201,
        "create an account",
    )
    .await;
    let id = account["id"].as_i64().expect("account id");
    call(
        http.post(format!("{api}/api/v1/telegram/accounts/{id}/login/code"))
            .bearer_auth(&token)
            .json(&json!({ "phone": phone })),
        200,
        "request a login code",
    )
    .await;
    let code = call(
        http.get(format!("{api}/api/v1/sandbox/codes/{phone}"))
            .bearer_auth(&token),
        200,
        "read the code the sandbox sent",
    )
    .await;
    let step = call(
        http.post(format!("{api}/api/v1/telegram/accounts/{id}/login/sign-in"))
            .bearer_auth(&token)
            .json(&json!({"code": code["code"]})),
        200,
        "sign in",
    )
    .await;
    assert_eq!(step["state"], "active", "{step}");
    assert_eq!(
        support::send(&http, &api, &token, id, "hello from tgfleet").await,
        201
    );
    call(
        http.post(format!("{api}/api/v1/sandbox/faults"))
            .bearer_auth(&token)
            .json(&json!({"kind": "flood_wait", "phone": phone,
                          "method": "messages.sendMessage", "seconds": 120})),
        200,
        "inject a flood wait",
    )
    .await;
    assert_eq!(
        support::send(&http, &api, &token, id, "too fast").await,
        429,
        "a flood wait above fleet.flood_wait_threshold_s is passed on"
    );
    call(
        http.post(format!("{api}/api/v1/telegram/accounts/{id}/restart"))
            .bearer_auth(&token),
        200,
        "restart the account",
    )
    .await;

    // Deliveries and the webhook gauges (read from the store every 5 s) come a little later.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (text, gone) = loop {
        let text = http
            .get(&metrics)
            .send()
            .await
            .expect("scrape /metrics")
            .text()
            .await
            .unwrap();
        let gone = missing(&named, &served_samples(&text));
        if gone.is_empty() && receiver.requests.load(Ordering::SeqCst) > 0 {
            break (text, gone);
        }
        if Instant::now() > deadline {
            break (text, gone);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        receiver.requests.load(Ordering::SeqCst) > 0,
        "the webhook never received an event"
    );
    assert!(
        gone.is_empty(),
        "named by the dashboard or the alerts but not served: {gone:?}\n{text}"
    );

    // A state matcher with a typo would match nothing, silently: every state named is one the
    // accounts gauge shows (all of them, from the start).
    let served_states = served_account_states(&text);
    let unknown: Vec<_> = states.difference(&served_states).collect();
    assert!(
        unknown.is_empty(),
        "states named that accounts are never in: {unknown:?} (known: {served_states:?})"
    );
    assert!(served_states.contains("quarantined"), "{served_states:?}");
}
