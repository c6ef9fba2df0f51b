//! `tgfleet accounts import FILE`: sessions from a JSONL or CSV file, a text file (one string
//! per line), or a folder of `.session` files, sent in batches to POST …/accounts/import.

use super::client::{Api, Failure};
use anyhow::Context;
use reqwest::Method;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use tgfleet_actors::import::formats::{detect, SessionFormat};
use tgfleet_api::accounts::transfer::MAX_IMPORT_BATCH;

/// One session to import, and where it came from (for the summary).
#[derive(Debug, Clone)]
pub struct Item {
    pub source: String,
    pub format: Option<SessionFormat>,
    pub session: String,
    pub label: Option<String>,
}

/// A row that never reaches the API (an unreadable file).
#[derive(Debug, Clone)]
pub struct Unreadable {
    pub source: String,
    pub error: String,
}

pub async fn read_input(
    path: &Path,
    forced: Option<SessionFormat>,
) -> anyhow::Result<(Vec<Item>, Vec<Unreadable>)> {
    let mut items = Vec::new();
    let mut bad = Vec::new();
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("reading folder {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "session"))
            .collect();
        files.sort();
        for file in files {
            let source = file.display().to_string();
            match super::session_files::read(&file).await {
                Ok(session) => items.push(Item {
                    source,
                    format: Some(SessionFormat::Tgfleet),
                    session,
                    label: file.file_stem().map(|s| s.to_string_lossy().into_owned()),
                }),
                Err(error) => bad.push(Unreadable { source, error }),
            }
        }
        return Ok((items, bad));
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let name = path.display().to_string();
    if ext == "csv" {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let mut header: Option<Vec<String>> = None;
        for (n, record) in reader.records().enumerate() {
            let source = format!("{name}:{}", n + 1);
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    bad.push(Unreadable {
                        source,
                        error: e.to_string(),
                    });
                    continue;
                }
            };
            let cells: Vec<String> = record.iter().map(str::to_owned).collect();
            if n == 0 && cells.iter().any(|c| c.eq_ignore_ascii_case("session")) {
                header = Some(cells.iter().map(|c| c.to_lowercase()).collect());
                continue;
            }
            let col = |name: &str, fallback: usize| -> Option<String> {
                let i = match &header {
                    Some(h) => h.iter().position(|c| c == name)?,
                    None => fallback,
                };
                cells.get(i).filter(|c| !c.is_empty()).cloned()
            };
            // Without a header: `session`, or `format,session[,label]`.
            let (format, session, label) = if header.is_none() && cells.len() == 1 {
                (None, cells.first().cloned(), None)
            } else {
                (col("format", 0), col("session", 1), col("label", 2))
            };
            push(&mut items, &mut bad, source, format, session, label, forced);
        }
    } else {
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let source = format!("{name}:{}", n + 1);
            if line.starts_with('{') || line.starts_with('"') {
                match serde_json::from_str::<Value>(line) {
                    Ok(Value::String(s)) => {
                        push(&mut items, &mut bad, source, None, Some(s), None, forced)
                    }
                    Ok(v) => {
                        let s = |k: &str| v[k].as_str().map(str::to_owned);
                        push(
                            &mut items,
                            &mut bad,
                            source,
                            s("format"),
                            s("session"),
                            s("label"),
                            forced,
                        )
                    }
                    Err(e) => bad.push(Unreadable {
                        source,
                        error: format!("not JSON: {e}"),
                    }),
                }
            } else {
                push(
                    &mut items,
                    &mut bad,
                    source,
                    None,
                    Some(line.to_owned()),
                    None,
                    forced,
                );
            }
        }
    }
    Ok((items, bad))
}

fn push(
    items: &mut Vec<Item>,
    bad: &mut Vec<Unreadable>,
    source: String,
    format: Option<String>,
    session: Option<String>,
    label: Option<String>,
    forced: Option<SessionFormat>,
) {
    let Some(session) = session else {
        bad.push(Unreadable {
            source,
            error: "no session string".into(),
        });
        return;
    };
    let format = match (forced, format.as_deref()) {
        (Some(f), _) => Some(f),
        (None, None) => None,
        (None, Some(name)) if name.parse::<SessionFormat>().is_ok() => name.parse().ok(),
        (None, Some(other)) => {
            bad.push(Unreadable {
                source,
                error: format!("unknown format {other:?} (telethon, pyrogram, tgfleet)"),
            });
            return;
        }
    };
    items.push(Item {
        source,
        format,
        session,
        label,
    });
}

/// Imports everything; returns the summary's rows and whether every item ended well
/// (imported, or a duplicate: importing twice is not an error).
pub async fn run(api: &Api, items: Vec<Item>, unreadable: Vec<Unreadable>) -> anyhow::Result<bool> {
    let bar = indicatif::ProgressBar::new((items.len() + unreadable.len()) as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut ok = true;
    for u in &unreadable {
        ok = false;
        rows.push(vec![
            u.source.clone(),
            "invalid".into(),
            String::new(),
            u.error.clone(),
        ]);
        bar.inc(1);
    }
    for chunk in items.chunks(MAX_IMPORT_BATCH) {
        let sessions: Vec<Value> = chunk
            .iter()
            .map(|i| {
                let format = i.format.unwrap_or_else(|| detect(&i.session));
                json!({"format": format.as_str(), "session": i.session, "label": i.label})
            })
            .collect();
        let answer = api
            .send(
                Method::POST,
                "/api/v1/telegram/accounts/import",
                Some(&json!({ "sessions": sessions })),
                &|secs, code| bar.set_message(format!("waiting {secs}s ({code})")),
            )
            .await;
        match answer {
            Ok(v) => {
                let results = v["results"].as_array().cloned().unwrap_or_default();
                for (item, r) in chunk
                    .iter()
                    .zip(results.iter().chain(std::iter::repeat(&Value::Null)))
                {
                    let status = r["status"].as_str().unwrap_or("failed").to_owned();
                    if !matches!(status.as_str(), "imported" | "duplicate") {
                        ok = false;
                    }
                    let detail = match (r["state"].as_str(), r["error"].as_str()) {
                        (Some(s), _) => s.to_owned(),
                        (None, Some(e)) => format!("{}: {e}", r["code"].as_str().unwrap_or("")),
                        _ => "no answer for this item".into(),
                    };
                    let id = r["account_id"]
                        .as_i64()
                        .map(|i| i.to_string())
                        .unwrap_or_default();
                    rows.push(vec![item.source.clone(), status, id, detail]);
                }
            }
            Err(Failure { code, message, .. }) => {
                ok = false;
                for item in chunk {
                    rows.push(vec![
                        item.source.clone(),
                        "failed".into(),
                        String::new(),
                        format!("{code}: {message}"),
                    ]);
                }
            }
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    print!(
        "{}",
        super::table(&["source", "status", "account", "detail"], &rows)
    );
    let count = |s: &str| rows.iter().filter(|r| r[1] == s).count();
    println!(
        "\n{} imported, {} duplicate, {} invalid, {} failed",
        count("imported"),
        count("duplicate"),
        count("invalid"),
        count("failed")
    );
    Ok(ok)
}
