//! Issue 16 item 3: what operators receive from account sellers and other panels — a Telethon
//! `.session` next to a `.json` of the same name, in a folder or a zip — imported by
//! `tgfleet accounts import` with the app, device, 2FA password and proxy the JSON names. The
//! `.session` files are written by Telethon itself (python3; `scripts/test` installs it), the
//! proxy is a real microsocks; the accounts are checked through the API, against testdc's record
//! of what each connection's initConnection carried, and against the proxy's log.

mod support;

use serde_json::{json, Value};
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};
use support::{call, serve, wait_until_up};
use tgfleet_persistence::testing::SocksServer;

const PHONE_DIR: &str = "+15550016701";
const PHONE_ZIP: &str = "+15550016702";
const PHONE_BARE: &str = "+15550016703";
const HASH: &str = "00112233445566778899aabbccddeeff";

/// Writes `<stem>.session` with Telethon's own SQLiteSession; `false` (test skipped) when
/// Telethon is missing and services are not required.
const TELETHON: &str = r#"
import sys
from telethon.sessions import SQLiteSession
from telethon.crypto import AuthKey
s = SQLiteSession(sys.argv[1])
s.set_dc(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
s.auth_key = AuthKey(bytes.fromhex(sys.argv[5]))
s.save()
s.close()
"#;

fn telethon_session(stem: &Path, dc: i32, addr: std::net::SocketAddr, key: &[u8]) -> bool {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(TELETHON)
        .arg(stem)
        .arg(dc.to_string())
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .arg(hex::encode(key))
        .output();
    match out {
        Ok(o) if o.status.success() => true,
        other => {
            let why = format!("{other:?}");
            assert!(
                std::env::var("TGFLEET_REQUIRE_SERVICES").as_deref() != Ok("1"),
                "Telethon is required (TGFLEET_REQUIRE_SERVICES=1): {why}"
            );
            eprintln!("skipping: Telethon not available ({why})");
            false
        }
    }
}

/// A logged-in account's session, exported and then the account deleted with its authorization
/// kept: a live session that belongs to no account, as a bought one does.
async fn orphan(
    http: &reqwest::Client,
    api: &str,
    token: &str,
    control: &str,
    phone: &str,
) -> tgfleet_actors::import::ForeignSession {
    let id = support::logged_in_account(http, api, token, control, phone).await;
    let exported = call(
        http.get(format!(
            "{api}/api/v1/telegram/accounts/{id}/export?format=tgfleet&confirm=true"
        ))
        .bearer_auth(token),
        200,
        "export",
    )
    .await;
    let session =
        tgfleet_actors::import::formats::parse_tgfleet(exported["session"].as_str().unwrap())
            .unwrap();
    let gone = http
        .delete(format!(
            "{api}/api/v1/telegram/accounts/{id}?keep_authorization=true"
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status().as_u16(), 204);
    session
}

/// The initConnection records of `phone`'s keys (testdc's control API), waited for (bounded)
/// until one with `api_id` shows.
async fn inits(http: &reqwest::Client, control: &str, phone: &str) -> Vec<Value> {
    let page = call(
        http.get(format!("{control}/connections"))
            .query(&[("phone", phone)]),
        200,
        "reading testdc's connections",
    )
    .await;
    page["connections"].as_array().unwrap().clone()
}

async fn account_labelled(http: &reqwest::Client, api: &str, token: &str, label: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let page = call(
            http.get(format!("{api}/api/v1/telegram/accounts"))
                .bearer_auth(token),
            200,
            "listing accounts",
        )
        .await;
        let items = page["items"]
            .as_array()
            .or(page.as_array())
            .cloned()
            .unwrap_or_default();
        if let Some(a) = items.into_iter().find(|a| a["label"] == label) {
            if a["state"] == "active" {
                return a;
            }
        }
        assert!(Instant::now() < deadline, "no active account {label}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_with_its_json_imports_as_that_app_and_device_from_a_folder_or_a_zip() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let (_testdc, control) = support::testdc(dir.path(), &[], &http).await;
    let (_serve, api) = serve(dir.path(), &control, "serve", &[]);
    wait_until_up(&http, &format!("{api}/api/v1/health"), "tgfleet serve").await;
    let token = support::user_token(&http, &api).await;

    let folder = dir.path().join("bought");
    std::fs::create_dir(&folder).unwrap();
    let stem = |phone: &str| phone.trim_start_matches('+').to_owned();

    // A folder: one pair with a seller's JSON, one `.session` alone.
    let s = orphan(&http, &api, &token, &control, PHONE_DIR).await;
    if !telethon_session(
        &folder.join(stem(PHONE_DIR)),
        s.dc_id,
        s.addr.unwrap(),
        &s.auth_key,
    ) {
        return;
    }
    std::fs::write(
        folder.join(format!("{}.json", stem(PHONE_DIR))),
        json!({
            "session_file": stem(PHONE_DIR), "phone": stem(PHONE_DIR),
            "app_id": 4242, "app_hash": HASH,
            "device": "Latitude 5420", "sdk": "Windows 11", "app_version": "5.8.3 x64",
            "lang_pack": "de", "system_lang_pack": "de-DE",
            "twoFA": "seller's password", "first_name": "Bought",
            "proxy": ["http", "10.0.0.1", 8080],
        })
        .to_string(),
    )
    .unwrap();
    let s = orphan(&http, &api, &token, &control, PHONE_BARE).await;
    assert!(telethon_session(
        &folder.join(stem(PHONE_BARE)),
        s.dc_id,
        s.addr.unwrap(),
        &s.auth_key
    ));

    // A zip: the pair inside a folder of the archive, its JSON naming the device model and a
    // SOCKS5 proxy with credentials.
    let Some(socks) = SocksServer::start(Some(("bob", "pw"))).await else {
        return;
    };
    let staging = dir.path().join("staging");
    std::fs::create_dir(&staging).unwrap();
    let s = orphan(&http, &api, &token, &control, PHONE_ZIP).await;
    assert!(telethon_session(
        &staging.join(stem(PHONE_ZIP)),
        s.dc_id,
        s.addr.unwrap(),
        &s.auth_key
    ));
    let archive = dir.path().join("bought.zip");
    {
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&archive).unwrap());
        let opts = zip::write::SimpleFileOptions::default();
        let session = std::fs::read(staging.join(format!("{}.session", stem(PHONE_ZIP)))).unwrap();
        zip.start_file(format!("accounts/{}.session", stem(PHONE_ZIP)), opts)
            .unwrap();
        zip.write_all(&session).unwrap();
        zip.start_file(format!("accounts/{}.json", stem(PHONE_ZIP)), opts)
            .unwrap();
        // Telethon's proxy tuple: (type, addr, port, rdns, username, password).
        zip.write_all(
            json!({"device": "iPhone 15",
                   "proxy": ["socks5", "127.0.0.1", socks.port, true, "bob", "pw"]})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        zip.start_file("README.txt", opts).unwrap();
        zip.write_all(b"not a session").unwrap();
        zip.finish().unwrap();
    }

    for (what, input) in [("folder", &folder), ("zip", &archive)] {
        let status = support::tgfleet(
            dir.path(),
            &[
                "accounts",
                "import",
                "--url",
                &api,
                "--token",
                &token,
                input.to_str().unwrap(),
            ],
            what,
        )
        .status()
        .unwrap();
        let out = std::fs::read_to_string(dir.path().join(format!("{what}.out"))).unwrap();
        assert!(
            status.success(),
            "{what}: {status}\n{out}{}",
            support::log_of(dir.path(), what)
        );
        if what == "folder" {
            assert!(out.contains("2 imported"), "{out}");
            // An HTTP proxy cannot be carried (grammers dials SOCKS5 only): said, not dropped.
            assert!(
                out.contains("not carried over from its .json: proxy (http proxy: only SOCKS5"),
                "{out}"
            );
            assert!(!out.contains("seller's password"), "{out}");
        } else {
            assert!(out.contains("1 imported"), "{out}");
        }
        assert!(!out.contains(HASH), "the api_hash printed: {out}");
    }

    // The pair from the folder: the JSON's app and device, shown and spoken.
    let a = account_labelled(&http, &api, &token, &stem(PHONE_DIR)).await;
    assert_eq!(a["api_id"], 4242, "{a}");
    assert_eq!(
        a["device"],
        json!({"device_model": "Latitude 5420", "system_version": "Windows 11",
               "app_version": "5.8.3 x64", "system_lang_code": "de-DE", "lang_code": "de"}),
    );
    assert!(!a.to_string().contains(HASH));
    assert_eq!(a["two_fa_password_stored"], true, "{a}");
    assert_eq!(a["proxy_id"], Value::Null, "{a}");
    let seen = inits(&http, &control, PHONE_DIR).await;
    let imported: Vec<_> = seen.iter().filter(|c| c["api_id"] == 4242).collect();
    assert!(!imported.is_empty(), "no connection as app 4242: {seen:?}");
    for c in imported {
        assert_eq!(c["device_model"], "Latitude 5420", "{c}");
        assert_eq!(c["system_version"], "Windows 11", "{c}");
        assert_eq!(c["lang_code"], "de", "{c}");
    }

    // The `.session` alone: the fleet's app, a drawn device.
    let bare = account_labelled(&http, &api, &token, &stem(PHONE_BARE)).await;
    assert_eq!(bare["api_id"], Value::Null, "{bare}");
    assert_eq!(bare["two_fa_password_stored"], false, "{bare}");

    // The pair from the zip: an iPhone, completed with an iOS system and app version.
    let z = account_labelled(&http, &api, &token, &stem(PHONE_ZIP)).await;
    assert_eq!(z["device"]["device_model"], "iPhone 15", "{z}");
    let system = z["device"]["system_version"].as_str().unwrap();
    assert!(
        system.starts_with("17.") || system.starts_with("18."),
        "{z}"
    );
    let newest = inits(&http, &control, PHONE_ZIP).await;
    assert_eq!(
        newest.last().unwrap()["device_model"],
        "iPhone 15",
        "{newest:?}"
    );
    // Its proxy, added to the pool for it, is the one the check and the account went through.
    let proxy_id = z["proxy_id"].as_i64().expect("bound to a proxy");
    let proxy = call(
        http.get(format!("{api}/api/v1/proxies/{proxy_id}"))
            .bearer_auth(&token),
        200,
        "the imported proxy",
    )
    .await;
    assert_eq!(
        proxy["label"],
        format!("imported 127.0.0.1:{}", socks.port),
        "{proxy}"
    );
    assert_eq!(proxy["state"], "ok", "{proxy}");
    assert!(!proxy.to_string().contains("pw"), "{proxy}");
    let log = socks.log();
    // The proxy's own check, the session's check and the account's connection at least.
    assert!(
        log.matches("connected to").count() >= 3,
        "microsocks log: {log}"
    );

    // Sent through an imported account: it works as an account, not only as a row.
    assert_eq!(
        support::send(&http, &api, &token, a["id"].as_i64().unwrap(), "bought").await,
        201
    );
}
