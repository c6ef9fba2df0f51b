//! `tgfleet accounts onboard phones.csv`: for each phone, create the account, send the code, get
//! the code (prompt, codes file, command, or the sandbox), sign in, answer 2FA from the CSV.
//!
//! Resumable without a state file: before starting, the API is asked which phones already have
//! accounts of the caller. Active ones are skipped, half-done ones continue where they stopped
//! (a new code is sent), and the API's one-live-account-per-phone rule makes a duplicate account
//! impossible even if two runs overlap.

use super::client::{Api, Failure};
use anyhow::Context;
use futures::stream::{self, StreamExt};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

#[derive(Debug, Clone)]
pub struct Row {
    pub line: usize,
    pub phone: String,
    pub password: Option<String>,
    pub label: Option<String>,
}

pub enum CodeSource {
    /// Asks on the terminal, one phone at a time.
    Prompt,
    /// phone,code pairs.
    File(HashMap<String, String>),
    /// Run through `sh -c` with the phone as its last argument (and in `TGFLEET_PHONE`); the
    /// first line it prints is the code.
    Command(String),
    /// `GET /api/v1/sandbox/codes/{phone}` of a `serve --sandbox`.
    Sandbox,
}

pub struct Options {
    /// Account starts per second.
    pub rate: f64,
    /// Rows in flight at once.
    pub concurrency: usize,
    pub codes: CodeSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Active,
    Skipped,
    Failed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Skipped => "already active",
            Self::Failed => "failed",
        }
    }
}

/// Reads `phone[,password][,label]` rows; a first row whose first cell is `phone` is a header.
/// A row that cannot be onboarded: (line, phone as written, why).
pub type BadRow = (usize, String, String);

pub fn read_rows(path: &Path) -> anyhow::Result<(Vec<Row>, Vec<BadRow>)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut rows = Vec::new();
    let mut bad = Vec::new();
    let mut seen = HashMap::new();
    for (n, record) in reader.records().enumerate() {
        let line = n + 1;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                bad.push((line, String::new(), e.to_string()));
                continue;
            }
        };
        let cell = |i: usize| record.get(i).filter(|c| !c.is_empty()).map(str::to_owned);
        let Some(raw) = cell(0) else { continue };
        if n == 0 && raw.eq_ignore_ascii_case("phone") {
            continue;
        }
        if raw.starts_with('#') {
            continue;
        }
        let Ok(phone) = raw.parse::<tgfleet_actors::Phone>().map(String::from) else {
            bad.push((
                line,
                raw,
                "not a phone number (+ and 7 to 15 digits)".into(),
            ));
            continue;
        };
        if let Some(first) = seen.insert(phone.clone(), line) {
            bad.push((line, phone, format!("the same phone as line {first}")));
            continue;
        }
        rows.push(Row {
            line,
            phone,
            password: cell(1),
            label: cell(2),
        });
    }
    Ok((rows, bad))
}

pub fn read_codes(path: &PathBuf) -> anyhow::Result<HashMap<String, String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut codes = HashMap::new();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    for record in reader.records() {
        let record = record?;
        if let (Some(phone), Some(code)) = (
            record
                .get(0)
                .and_then(|p| p.parse::<tgfleet_actors::Phone>().ok())
                .map(String::from),
            record.get(1),
        ) {
            codes.insert(phone, code.to_owned());
        }
    }
    Ok(codes)
}

/// The caller's accounts by phone (all pages), leaving out logged-out ones (their phone is free).
async fn existing(api: &Api) -> Result<HashMap<String, (i64, String)>, Failure> {
    let mut map = HashMap::new();
    let mut cursor: Option<i64> = None;
    loop {
        let path = match cursor {
            Some(c) => format!("/api/v1/telegram/accounts?limit=500&cursor={c}"),
            None => "/api/v1/telegram/accounts?limit=500".to_owned(),
        };
        let page = api.get(&path).await?;
        for a in page["items"].as_array().into_iter().flatten() {
            let (Some(phone), Some(id), Some(state)) =
                (a["phone"].as_str(), a["id"].as_i64(), a["state"].as_str())
            else {
                continue;
            };
            if state != "logged_out" {
                map.insert(phone.to_owned(), (id, state.to_owned()));
            }
        }
        match page["next_cursor"].as_i64() {
            Some(c) => cursor = Some(c),
            None => return Ok(map),
        }
    }
}

struct Ctx {
    api: Api,
    codes: CodeSource,
    prompt: Mutex<()>,
    bar: indicatif::ProgressBar,
    existing: HashMap<String, (i64, String)>,
}

pub async fn run(api: Api, path: &Path, opts: Options) -> anyhow::Result<bool> {
    let started = Instant::now();
    let (rows, bad) = read_rows(path)?;
    let existing = existing(&api)
        .await
        .map_err(|f| anyhow::anyhow!("listing existing accounts: {f}"))?;
    let bar = indicatif::ProgressBar::new(rows.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} {bar:40} {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let ctx = Arc::new(Ctx {
        api,
        codes: opts.codes,
        prompt: Mutex::new(()),
        bar,
        existing,
    });
    let period = Duration::from_secs_f64(1.0 / opts.rate.clamp(0.001, 1000.0));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let tick = Arc::new(Mutex::new(tick));
    let mut results: Vec<(Row, Outcome, Option<i64>, String)> = stream::iter(rows)
        .then(|row| {
            let ctx = Arc::clone(&ctx);
            let tick = Arc::clone(&tick);
            async move {
                // Only accounts that need Telegram calls wait for the pace.
                let done = ctx
                    .existing
                    .get(&row.phone)
                    .is_some_and(|(_, s)| is_done(s));
                if !done {
                    tick.lock().await.tick().await;
                }
                (row, ctx)
            }
        })
        .map(|(row, ctx)| async move {
            let (outcome, id, detail) = onboard_one(&ctx, &row).await;
            ctx.bar.inc(1);
            if outcome == Outcome::Failed {
                ctx.bar.println(format!("{}: {detail}", row.phone));
            }
            (row, outcome, id, detail)
        })
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await;
    ctx.bar.finish_and_clear();
    results.sort_by_key(|(row, ..)| row.line);

    let mut table_rows: Vec<Vec<String>> = bad
        .iter()
        .map(|(line, phone, why)| {
            vec![
                line.to_string(),
                phone.clone(),
                String::new(),
                "failed".into(),
                why.clone(),
            ]
        })
        .collect();
    for (row, outcome, id, detail) in &results {
        if *outcome == Outcome::Failed {
            table_rows.push(vec![
                row.line.to_string(),
                row.phone.clone(),
                id.map(|i| i.to_string()).unwrap_or_default(),
                outcome.as_str().into(),
                detail.clone(),
            ]);
        }
    }
    table_rows.sort_by_key(|r| r[0].parse::<usize>().unwrap_or(0));
    let count = |o: Outcome| results.iter().filter(|r| r.1 == o).count();
    let failed = count(Outcome::Failed) + bad.len();
    let summary = vec![
        vec![
            "logged in now".to_owned(),
            count(Outcome::Active).to_string(),
        ],
        vec![
            "already active".to_owned(),
            count(Outcome::Skipped).to_string(),
        ],
        vec!["failed".to_owned(), failed.to_string()],
    ];
    print!("{}", super::table(&["outcome", "rows"], &summary));
    if !table_rows.is_empty() {
        println!();
        print!(
            "{}",
            super::table(
                &["line", "phone", "account", "outcome", "detail"],
                &table_rows
            )
        );
    }
    eprintln!("onboarding took {:.1} s", started.elapsed().as_secs_f64());
    Ok(failed == 0)
}

fn is_done(state: &str) -> bool {
    matches!(
        state,
        "active" | "reconnecting" | "flood_wait" | "hibernated"
    )
}

async fn onboard_one(ctx: &Ctx, row: &Row) -> (Outcome, Option<i64>, String) {
    let mut id = None;
    match steps(ctx, row, &mut id).await {
        Ok(outcome) => (outcome, id, String::new()),
        Err(detail) => (Outcome::Failed, id, detail),
    }
}

async fn call(
    ctx: &Ctx,
    method: Method,
    path: &str,
    body: Option<Value>,
    phone: &str,
) -> Result<Value, Failure> {
    let bar = &ctx.bar;
    ctx.api
        .send(method, path, body.as_ref(), &|secs, code| {
            bar.set_message(format!("{phone}: waiting {secs}s ({code})"));
        })
        .await
}

async fn steps(ctx: &Ctx, row: &Row, id_out: &mut Option<i64>) -> Result<Outcome, String> {
    let phone = row.phone.as_str();
    let fail = |what: &str| {
        let what = what.to_owned();
        move |f: Failure| format!("{what}: {f}")
    };
    let (id, state) = match ctx.existing.get(phone) {
        Some((_, state)) if is_done(state) => return Ok(Outcome::Skipped),
        Some((id, state))
            if matches!(
                state.as_str(),
                "new" | "awaiting_code" | "awaiting_password" | "awaiting_qr"
            ) =>
        {
            (*id, state.clone())
        }
        Some((id, state)) => {
            *id_out = Some(*id);
            return Err(format!(
                "account {id} is {state}: needs an operator (restart or delete it)"
            ));
        }
        None => {
            let mut body = json!({"kind": "user", "phone": phone});
            if let Some(l) = &row.label {
                body["label"] = json!(l);
            }
            let v = call(
                ctx,
                Method::POST,
                "/api/v1/telegram/accounts",
                Some(body),
                phone,
            )
            .await
            .map_err(fail("creating the account"))?;
            let id = v["id"]
                .as_i64()
                .ok_or("creating the account: no id in the answer")?;
            (id, "new".to_owned())
        }
    };
    *id_out = Some(id);
    // A killed earlier run may have left a login step running on the server (its actor finishes
    // it even though nobody waits): WRONG_ACCOUNT_STATE then means "look again", so re-read the
    // account and continue from the state it is in now.
    let mut state = state;
    let mut attempt = 0;
    loop {
        match login_from(ctx, row, id, &state).await {
            Ok(outcome) => return Ok(outcome),
            Err(Step::Failed(detail)) => return Err(detail),
            Err(Step::WrongState(detail)) => {
                attempt += 1;
                if attempt > 5 {
                    return Err(detail);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                let v = call(
                    ctx,
                    Method::GET,
                    &format!("/api/v1/telegram/accounts/{id}"),
                    None,
                    phone,
                )
                .await
                .map_err(fail("reading the account"))?;
                state = v["state"].as_str().unwrap_or_default().to_owned();
                if is_done(&state) {
                    return Ok(Outcome::Active);
                }
            }
        }
    }
}

enum Step {
    Failed(String),
    WrongState(String),
}

fn step_err(what: &'static str) -> impl Fn(Failure) -> Step {
    move |f: Failure| {
        let detail = format!("{what}: {f}");
        if f.code == "WRONG_ACCOUNT_STATE" {
            Step::WrongState(detail)
        } else {
            Step::Failed(detail)
        }
    }
}

async fn login_from(ctx: &Ctx, row: &Row, id: i64, state: &str) -> Result<Outcome, Step> {
    let phone = row.phone.as_str();
    let base = format!("/api/v1/telegram/accounts/{id}/login");
    let mut state = state.to_owned();
    if state != "awaiting_password" {
        call(
            ctx,
            Method::POST,
            &format!("{base}/code"),
            Some(json!({"phone": phone})),
            phone,
        )
        .await
        .map_err(step_err("sending the code"))?;
        let code = code_for(ctx, phone).await.map_err(Step::Failed)?;
        let v = call(
            ctx,
            Method::POST,
            &format!("{base}/sign-in"),
            Some(json!({"code": code})),
            phone,
        )
        .await
        .map_err(step_err("signing in"))?;
        state = v["state"].as_str().unwrap_or_default().to_owned();
    }
    if state == "awaiting_password" {
        let Some(password) = &row.password else {
            return Err(Step::Failed(
                "the account has 2FA and the CSV has no password for it".into(),
            ));
        };
        let v = call(
            ctx,
            Method::POST,
            &format!("{base}/password"),
            Some(json!({"password": password})),
            phone,
        )
        .await
        .map_err(step_err("checking the 2FA password"))?;
        state = v["state"].as_str().unwrap_or_default().to_owned();
    }
    if state == "active" {
        Ok(Outcome::Active)
    } else {
        Err(Step::Failed(format!("login ended in state {state:?}")))
    }
}

async fn code_for(ctx: &Ctx, phone: &str) -> Result<String, String> {
    match &ctx.codes {
        CodeSource::File(codes) => codes
            .get(phone)
            .cloned()
            .ok_or_else(|| "no code for this phone in the codes file".into()),
        CodeSource::Sandbox => {
            let v = ctx
                .api
                .get(&format!("/api/v1/sandbox/codes/{}", phone))
                .await
                .map_err(|f| format!("reading the sandbox code: {f}"))?;
            v["code"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| "the sandbox sent no code".into())
        }
        CodeSource::Command(cmd) => {
            let run = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(format!("{cmd} \"$1\""))
                .arg("tgfleet-code")
                .arg(phone)
                .env("TGFLEET_PHONE", phone)
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .output();
            // An SMS gateway may take minutes; longer than that the code has expired anyway.
            let out = tokio::time::timeout(Duration::from_secs(300), run)
                .await
                .map_err(|_| "the code command did not finish within 300 s".to_string())?
                .map_err(|e| format!("running the code command: {e}"))?;
            if !out.status.success() {
                return Err(format!("the code command failed with {}", out.status));
            }
            let text = String::from_utf8_lossy(&out.stdout);
            let code = text.lines().next().unwrap_or("").trim().to_owned();
            if code.is_empty() {
                return Err("the code command printed no code".into());
            }
            Ok(code)
        }
        CodeSource::Prompt => {
            let _one_at_a_time = ctx.prompt.lock().await;
            let bar = ctx.bar.clone();
            let phone = phone.to_owned();
            tokio::task::spawn_blocking(move || {
                bar.suspend(|| {
                    eprint!("login code for {phone}: ");
                    let mut line = String::new();
                    std::io::stdin()
                        .read_line(&mut line)
                        .map_err(|e| format!("reading the code: {e}"))?;
                    let code = line.trim().to_owned();
                    if code.is_empty() {
                        Err("no code entered".to_string())
                    } else {
                        Ok(code)
                    }
                })
            })
            .await
            .map_err(|e| format!("prompt: {e}"))?
        }
    }
}
