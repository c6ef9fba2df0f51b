//! The operator console: the pages in `api/console/`, embedded in the binary at compile time and
//! served at `/` (the shell) and `/console/…` (its scripts and styles). It is a client of the
//! public REST API and SSE only — it holds no route of its own — so anything an operator does in
//! it a script can do too. `console.enabled = false` leaves both paths to the 404 fallback.

use crate::state::AppState;
use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// Scripts, styles and images from this origin only, nothing inline (the pages hold no inline
/// script or style), API calls to this origin only, QR codes as `blob:` images the page made
/// from the PNG route, never framed, no `<base>` or form posts elsewhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' blob:; connect-src 'self'; font-src 'none'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

struct Asset {
    path: &'static str,
    mime: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $mime:literal) => {
        Asset {
            path: $path,
            mime: $mime,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/console/", $path)),
        }
    };
}

/// Every file of `api/console/`; a test fails when one there is missing here.
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("js/app.js", "text/javascript; charset=utf-8"),
    asset!("js/api.js", "text/javascript; charset=utf-8"),
    asset!("js/ui.js", "text/javascript; charset=utf-8"),
    asset!("js/pages/signin.js", "text/javascript; charset=utf-8"),
    asset!("js/pages/accounts.js", "text/javascript; charset=utf-8"),
    asset!("js/pages/connect.js", "text/javascript; charset=utf-8"),
    asset!("js/pages/account.js", "text/javascript; charset=utf-8"),
    asset!("js/pages/publish.js", "text/javascript; charset=utf-8"),
    asset!("js/pages/webhooks.js", "text/javascript; charset=utf-8"),
    asset!("js/pages/admin.js", "text/javascript; charset=utf-8"),
];

/// Strong validators computed once: a browser revalidates (`no-cache`) and gets a 304 until the
/// binary changes, so a new release's console is never mixed with an old cached script.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| format!("\"{}\"", hex::encode(&Sha256::digest(a.body)[..12])))
        .collect()
});

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/console/{*path}", get(file))
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn file(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers)
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.path == path) else {
        return crate::ApiError::NotFound("route").into_response();
    };
    let asset = &ASSETS[i];
    let etag = &ETAGS[i];
    // If-None-Match compares weakly (RFC 9110 13.1.2): a proxy that compressed the body hands
    // back `W/"…"`, and `*` matches any current representation.
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(str::trim)
                .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag.as_str())
        });
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.mime)], asset.body).into_response()
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files(&path, root, out);
            } else {
                let rel = path.strip_prefix(root).unwrap();
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }

    #[test]
    fn every_file_of_the_console_folder_is_served() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
        let mut on_disk = Vec::new();
        files(&root, &root, &mut on_disk);
        on_disk.sort();
        let mut served: Vec<String> = ASSETS.iter().map(|a| a.path.to_owned()).collect();
        served.sort();
        assert_eq!(
            on_disk, served,
            "api/console/ and ASSETS must list the same files"
        );
    }

    #[test]
    fn the_pages_hold_no_inline_script_or_style() {
        // The CSP would block them silently; better to fail here than in an operator's browser.
        let html = std::str::from_utf8(ASSETS[0].body).unwrap().to_lowercase();
        for tag in html.split("<script").skip(1) {
            let open = &tag[..tag.find('>').expect("a closed <script> tag")];
            assert!(
                open.contains(" src="),
                "an inline <script{open}> in index.html"
            );
        }
        assert!(!html.contains("style="), "inline style in index.html");
        assert!(!html.contains("<style"), "inline style in index.html");
        let handler = html.split_whitespace().find(|w| {
            w.strip_prefix("on")
                .and_then(|r| r.split_once('='))
                .is_some_and(|(name, _)| name.chars().all(|c| c.is_ascii_lowercase()))
        });
        assert_eq!(handler, None, "an inline event handler in index.html");
        for a in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            let js = std::str::from_utf8(a.body).unwrap();
            for banned in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
                "new Function",
                "style",
            ] {
                assert!(!js.contains(banned), "{} uses {banned}", a.path);
            }
        }
    }

    #[test]
    fn only_the_listed_files_are_served_and_revalidation_is_weak() {
        // The table is the whole namespace: nothing is looked up on disk, so no path escapes it.
        for path in ["../Cargo.toml", "js/../index.html", "", "js", "/index.html"] {
            assert_eq!(
                serve(path, &HeaderMap::new()).status(),
                StatusCode::NOT_FOUND,
                "{path:?}"
            );
        }
        let etag = serve("style.css", &HeaderMap::new()).headers()[header::ETAG].clone();
        let etag = etag.to_str().unwrap();
        for sent in [
            etag.to_owned(),
            format!("W/{etag}"),
            "*".into(),
            format!("\"x\", {etag}"),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(header::IF_NONE_MATCH, sent.parse().unwrap());
            assert_eq!(
                serve("style.css", &headers).status(),
                StatusCode::NOT_MODIFIED,
                "{sent}"
            );
        }
        let mut stale = HeaderMap::new();
        stale.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"0\""));
        assert_eq!(serve("style.css", &stale).status(), StatusCode::OK);
    }
}
