//! `tgfleet accounts import FILE`: sessions from a JSONL or CSV file, a text file (one string
//! per line), or a folder of `.session` files, sent in batches to POST …/accounts/import.

use super::client::{Api, Failure};
use anyhow::Context;
use reqwest::Method;
use serde_json::{json, Value};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use tgfleet_actors::import::formats::{detect, SessionFormat};
use tgfleet_api::accounts::transfer::MAX_IMPORT_BATCH;

/// One session to import, and where it came from (for the summary). Its `Debug` leaves out the
/// session string and the api_hash: either one printed is a secret in a log.
#[derive(Clone)]
pub struct Item {
    pub source: String,
    pub format: Option<SessionFormat>,
    pub session: String,
    pub label: Option<String>,
    /// A JSONL line's `api_id`, `api_hash`, `device`, `proxy`, `proxy_id` and
    /// `two_fa_password`, passed on as written (the API checks them), or what a `.session`'s
    /// `.json` says of them: the app, device, proxy and 2FA password the session came with.
    pub passed_on: serde_json::Map<String, Value>,
    /// Fields of a `.session`'s `.json` that the import does not carry over, for the summary.
    pub left_out: Vec<String>,
}

impl std::fmt::Debug for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let passed_on: Vec<&String> = self.passed_on.keys().collect();
        f.debug_struct("Item")
            .field("source", &self.source)
            .field("format", &self.format)
            .field("session", &"<redacted>")
            .field("label", &self.label)
            .field("passed_on", &passed_on)
            .field("left_out", &self.left_out)
            .finish()
    }
}

/// The fields of a JSONL line the API takes as they are.
const PASSED_ON: [&str; 6] = [
    "api_id",
    "api_hash",
    "device",
    "proxy",
    "proxy_id",
    "two_fa_password",
];

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
        read_folder(path, &path.display().to_string(), &mut items, &mut bad).await?;
        return Ok((items, bad));
    }
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if ext == "zip" {
        let unpacked = unzip(path)?;
        let name = path.display().to_string();
        read_folder(unpacked.path(), &name, &mut items, &mut bad).await?;
        return Ok((items, bad));
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
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
                        let pushed = items.len();
                        push(
                            &mut items,
                            &mut bad,
                            source,
                            s("format"),
                            s("session"),
                            s("label"),
                            forced,
                        );
                        if let Some(item) = items.get_mut(pushed) {
                            item.passed_on = PASSED_ON
                                .iter()
                                .filter_map(|k| Some(((*k).to_owned(), v.get(*k)?.clone())))
                                .collect();
                        }
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

/// Every `.session` file of `dir`, each with the `.json` of the same name beside it when there
/// is one; `shown` names the folder (or archive) in the summary.
async fn read_folder(
    dir: &Path,
    shown: &str,
    items: &mut Vec<Item>,
    bad: &mut Vec<Unreadable>,
) -> anyhow::Result<()> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading folder {shown}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "session"))
        .collect();
    files.sort();
    for file in files {
        let file_name = file.file_name().unwrap_or_default().to_string_lossy();
        let source = format!("{}/{file_name}", shown.trim_end_matches('/'));
        let sidecar = file.with_extension("json");
        let sidecar = match std::fs::read_to_string(&sidecar) {
            Ok(text) => match super::session_json::read(&text) {
                Ok(s) => s,
                Err(error) => {
                    bad.push(Unreadable { source, error });
                    continue;
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Default::default(),
            Err(e) => {
                bad.push(Unreadable {
                    source,
                    error: format!("the .json beside it: {e}"),
                });
                continue;
            }
        };
        match super::session_files::read(&file).await {
            Ok(session) => items.push(Item {
                source,
                format: Some(SessionFormat::Tgfleet),
                session,
                label: file.file_stem().map(|s| s.to_string_lossy().into_owned()),
                passed_on: sidecar.passed_on,
                left_out: sidecar.left_out,
            }),
            Err(error) => bad.push(Unreadable { source, error }),
        }
    }
    Ok(())
}

/// Largest `.session` taken from an archive (Telethon's entity cache makes big ones, but not
/// this big), and largest `.json`: a bound on what a hostile archive can make us write.
const MAX_SESSION_BYTES: u64 = 256 << 20;
const MAX_JSON_BYTES: u64 = 1 << 20;

/// The `.session` and `.json` files of a zip archive, unpacked by their file names alone (any
/// folders inside are flattened, nothing lands outside) into a temporary folder only this user
/// can read: the sessions are live authorizations. Deleted when the returned value is dropped.
fn unzip(path: &Path) -> anyhow::Result<tempfile::TempDir> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file))
        .with_context(|| format!("{} is not a zip archive", path.display()))?;
    // tempfile creates the folder 0700.
    let dir = tempfile::Builder::new()
        .prefix("tgfleet-import-")
        .tempdir()?;
    let mut seen = std::collections::HashSet::new();
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .with_context(|| format!("reading entry {i} of {}", path.display()))?;
        if !entry.is_file() {
            continue;
        }
        let inner = entry.name().to_owned();
        let Some(name) = Path::new(&inner).file_name().map(|n| n.to_owned()) else {
            continue;
        };
        let limit = match Path::new(&name).extension().and_then(|e| e.to_str()) {
            Some("session") => MAX_SESSION_BYTES,
            Some("json") => MAX_JSON_BYTES,
            _ => continue,
        };
        anyhow::ensure!(
            seen.insert(name.clone()),
            "{}: two entries are named {}; unpack it and import the folders one by one",
            path.display(),
            name.to_string_lossy()
        );
        let target = dir.path().join(&name);
        let mut out =
            std::fs::File::create(&target).with_context(|| format!("unpacking {inner}"))?;
        let written = std::io::copy(&mut (&mut entry).take(limit + 1), &mut out)
            .with_context(|| format!("unpacking {inner}"))?;
        anyhow::ensure!(
            written <= limit,
            "{}: {inner} is larger than {limit} bytes",
            path.display()
        );
    }
    Ok(dir)
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
        passed_on: Default::default(),
        left_out: Vec::new(),
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
                let mut item =
                    json!({"format": format.as_str(), "session": i.session, "label": i.label});
                if let Value::Object(fields) = &mut item {
                    fields.extend(i.passed_on.clone());
                }
                item
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
                    let mut detail = match (r["state"].as_str(), r["error"].as_str()) {
                        (Some(s), _) => s.to_owned(),
                        (None, Some(e)) => format!("{}: {e}", r["code"].as_str().unwrap_or("")),
                        _ => "no answer for this item".into(),
                    };
                    if !item.left_out.is_empty() {
                        detail.push_str(&format!(
                            "; not carried over from its .json: {}",
                            item.left_out.join(", ")
                        ));
                    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_jsonl_line_passes_its_app_and_device_on() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sessions.jsonl");
        std::fs::write(
            &file,
            concat!(
                r#"{"format":"tgfleet","session":"tgf1.a","api_id":4242,"api_hash":"00112233445566778899aabbccddeeff","device":{"lang_code":"de"},"colour":"red"}"#,
                "\n",
                r#"{"format":"tgfleet","session":"tgf1.b","label":"plain"}"#,
                "\n",
            ),
        )
        .unwrap();
        let (items, bad) = read_input(&file, None).await.unwrap();
        assert!(bad.is_empty());
        assert_eq!(items.len(), 2);
        let mut first: Vec<_> = items[0].passed_on.keys().map(String::as_str).collect();
        first.sort_unstable();
        assert_eq!(first, ["api_hash", "api_id", "device"], "and nothing else");
        assert_eq!(items[0].passed_on["device"]["lang_code"], "de");
        assert!(items[1].passed_on.is_empty());
    }
}
