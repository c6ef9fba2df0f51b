//! The operator console in a real browser: `tests/console/walkthrough.mjs` drives Debian's
//! headless Chromium (through Playwright, npm's `playwright-core`) against a real
//! `tgfleet serve --sandbox` started here. `scripts/test` installs both; without them the test
//! skips with a notice, unless `TGFLEET_REQUIRE_SERVICES=1`. Screenshots of each page land in
//! `target/console-screenshots/`.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use support::{free_port, tgfleet, wait_until_up, Guard};

fn chromium() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("TGFLEET_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// What the browser test needs, or why it cannot run.
fn browser_kit(root: &Path) -> Result<PathBuf, String> {
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Err("node is not installed".into());
    }
    if !root.join("node_modules/playwright-core").is_dir() {
        return Err(
            "tests/console/node_modules is missing (run `npm ci --prefix tests/console`)".into(),
        );
    }
    chromium().ok_or_else(|| "Chromium is not installed (Debian: apt-get install chromium)".into())
}

#[tokio::test]
async fn the_console_walkthrough_passes_in_headless_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console");
    let browser = match browser_kit(&root) {
        Ok(b) => b,
        Err(why) => {
            assert!(
                std::env::var("TGFLEET_REQUIRE_SERVICES").as_deref() != Ok("1"),
                "the console test needs a browser (TGFLEET_REQUIRE_SERVICES=1): {why}"
            );
            eprintln!("skipping the console walkthrough: {why}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let (admin, admin_password) = ("admin@example.org", "a long admin password");
    let mut create = tgfleet(
        dir.path(),
        &["users", "create", "--email", admin, "--role", "admin"],
        "users",
    )
    .stdin(Stdio::piped())
    .spawn()
    .unwrap();
    writeln!(create.stdin.take().unwrap(), "{admin_password}").unwrap();
    assert!(create.wait().unwrap().success(), "users create failed");

    let (port, metrics) = (free_port(), free_port());
    let mut serve = tgfleet(dir.path(), &["serve", "--sandbox"], "serve");
    serve
        .env("TGFLEET__API__LISTEN", format!("127.0.0.1:{port}"))
        .env("TGFLEET__METRICS__LISTEN", format!("127.0.0.1:{metrics}"));
    let _serve = Guard(serve.spawn().expect("spawn tgfleet serve --sandbox"));
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    wait_until_up(&http, &format!("{base}/api/v1/health"), "serve --sandbox").await;

    let shots = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("console-screenshots");
    let out = tokio::process::Command::new("node")
        .arg(root.join("walkthrough.mjs"))
        .current_dir(&root)
        .env("BASE_URL", &base)
        .env("CHROMIUM", &browser)
        .env("SCREENSHOTS", &shots)
        .env("ADMIN_EMAIL", admin)
        .env("ADMIN_PASSWORD", admin_password)
        .kill_on_drop(true)
        .output()
        .await
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the walkthrough failed:\n{stdout}\n{stderr}\n--- server log ---\n{}",
        support::log_of(dir.path(), "serve")
    );
    println!("{stdout}screenshots in {}", shots.display());
}

#[tokio::test]
async fn the_console_is_off_when_disabled_and_the_api_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let (port, metrics) = (free_port(), free_port());
    let mut serve = tgfleet(dir.path(), &["serve", "--sandbox"], "serve");
    serve
        .env("TGFLEET__API__LISTEN", format!("127.0.0.1:{port}"))
        .env("TGFLEET__METRICS__LISTEN", format!("127.0.0.1:{metrics}"))
        .env("TGFLEET__CONSOLE__ENABLED", "false");
    let _serve = Guard(serve.spawn().expect("spawn tgfleet serve"));
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    wait_until_up(&http, &format!("{base}/api/v1/health"), "serve").await;
    for path in ["/", "/console/js/app.js"] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path} with console.enabled = false");
    }
    let health: serde_json::Value = http
        .get(format!("{base}/api/v1/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["sandbox"], true);
}

#[tokio::test]
async fn the_console_is_served_with_its_protections_and_revalidated() {
    let dir = tempfile::tempdir().unwrap();
    let (port, metrics) = (free_port(), free_port());
    let mut serve = tgfleet(dir.path(), &["serve"], "serve");
    serve
        .env("TGFLEET__API__LISTEN", format!("127.0.0.1:{port}"))
        .env("TGFLEET__METRICS__LISTEN", format!("127.0.0.1:{metrics}"));
    let _serve = Guard(serve.spawn().expect("spawn tgfleet serve"));
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    wait_until_up(&http, &format!("{base}/api/v1/health"), "serve").await;

    let page = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let h = page.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<script type="module" src="/console/js/app.js">"#));

    let script = http
        .get(format!("{base}/console/js/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        script.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    let etag = script.headers()["etag"].clone();
    let again = http
        .get(format!("{base}/console/js/app.js"))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.status(),
        304,
        "an unchanged asset is revalidated, not resent"
    );

    // Nothing outside the embedded set (that no path walks to the disk is the unit test
    // `console::tests::only_the_listed_files_are_served…`: an HTTP client folds `..` away).
    for path in [
        "/console/nope.js",
        "/console/js/",
        "/console/index.html.bak",
    ] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "NOT_FOUND", "{path}");
    }
    // The API's own routes and errors are unchanged beside it.
    let r = http
        .get(format!("{base}/api/v1/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
