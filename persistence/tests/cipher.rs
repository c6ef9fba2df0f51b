//! SessionCipher: the local key file, and Vault transit against a real OpenBao dev server (skipped
//! with a notice when `bao` is missing, failing when `TGFLEET_REQUIRE_SERVICES=1`).

use std::os::unix::fs::PermissionsExt as _;
use tgfleet_persistence::testing::{BaoServer, TestDb};
use tgfleet_persistence::*;

const MARKER: &[u8] = b"MARKER-7f3a9c1e-plaintext-session";

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn local_key_file_is_created_0600_and_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data/session.key");
    let first = SessionCipher::local(&path).unwrap();
    assert_eq!(mode(&path), 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.trim().len(), 64, "256-bit key as hex");
    // No temporary files left beside it.
    assert_eq!(
        std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
        1
    );

    let sealed = first.seal(1, MARKER).await.unwrap();
    let second = SessionCipher::local(&path).unwrap();
    assert_eq!(&second.open(1, &sealed).await.unwrap()[..], MARKER);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        text,
        "not regenerated"
    );
}

#[tokio::test]
async fn local_key_file_readable_by_others_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("session.key");
    SessionCipher::local(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = SessionCipher::local(&path).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("0644"), "{msg}");
}

#[tokio::test]
async fn malformed_local_key_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("session.key");
    for content in ["", "not hex at all", &"ab".repeat(31), &"zz".repeat(32)] {
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let msg = format!("{:#}", SessionCipher::local(&path).unwrap_err());
        assert!(msg.contains("malformed"), "{content:?}: {msg}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
    }
}

#[tokio::test]
async fn local_blob_moved_or_tampered_does_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let cipher = SessionCipher::local(dir.path().join("k")).unwrap();
    let sealed = cipher.seal(41, MARKER).await.unwrap();
    assert!(!sealed.windows(MARKER.len()).any(|w| w == MARKER));
    assert!(matches!(
        cipher.open(42, &sealed).await,
        Err(CipherError::Tampered)
    ));
    let mut tampered = sealed.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x80;
    assert!(matches!(
        cipher.open(41, &tampered).await,
        Err(CipherError::Tampered)
    ));
    assert!(matches!(
        cipher.open(41, b"garbage").await,
        Err(CipherError::Malformed(_))
    ));
    // A different key (another install) cannot open it either.
    let other = SessionCipher::local(dir.path().join("k2")).unwrap();
    assert!(matches!(
        other.open(41, &sealed).await,
        Err(CipherError::Tampered)
    ));
}

/// An account's own api_hash is sealed like a session but cannot pass for one, nor for another
/// account's.
#[tokio::test]
async fn an_api_hash_opens_only_as_that_accounts_api_hash() {
    let dir = tempfile::tempdir().unwrap();
    let cipher = SessionCipher::local(dir.path().join("k")).unwrap();
    let hash = "0123456789abcdef0123456789abcdef";
    let sealed = cipher.seal_api_hash(7, hash).await.unwrap();
    assert!(!sealed.windows(hash.len()).any(|w| w == hash.as_bytes()));
    assert_eq!(
        cipher.open_api_hash(7, &sealed).await.unwrap().as_str(),
        hash
    );
    assert!(matches!(
        cipher.open_api_hash(8, &sealed).await,
        Err(CipherError::Tampered)
    ));
    assert!(matches!(
        cipher.open(7, &sealed).await,
        Err(CipherError::Tampered)
    ));
    let session = cipher.seal(7, MARKER).await.unwrap();
    assert!(matches!(
        cipher.open_api_hash(7, &session).await,
        Err(CipherError::Tampered)
    ));
}

/// Seals a marker through the store and checks the raw database never holds it.
async fn marker_absent_from_raw_database(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let cipher = SessionCipher::local(dir.path().join("k")).unwrap();
    let owner = db
        .store
        .create_user(NewUser {
            email: "m@x.test".into(),
            username: None,
            password_hash: "h".into(),
            role: Role::User,
        })
        .await
        .unwrap();
    let account = db
        .store
        .create_account(NewAccount {
            owner_id: owner.id,
            label: None,
            kind: AccountKind::User,
            phone: None,
        })
        .await
        .unwrap();
    let sealed = cipher.seal(account.id, MARKER).await.unwrap();
    db.store.put_session(account.id, &sealed).await.unwrap();
    let back = db.store.session(account.id).await.unwrap().unwrap();
    assert_eq!(&cipher.open(account.id, &back).await.unwrap()[..], MARKER);

    let contains = |hay: &[u8]| hay.windows(MARKER.len()).any(|w| w == MARKER);
    if let Some(path) = db.sqlite_path() {
        // The main file and the WAL (where fresh writes sit until a checkpoint).
        for file in [path.clone(), path.with_extension("db-wal")] {
            if let Ok(bytes) = std::fs::read(&file) {
                assert!(!contains(&bytes), "marker found in {}", file.display());
            }
        }
    } else {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        let rows: Vec<(Vec<u8>, String)> =
            sqlx::query_as("SELECT sealed, t::text FROM account_sessions t")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(rows.len(), 1);
        for (raw, as_text) in rows {
            assert!(!contains(&raw));
            assert!(!contains(as_text.as_bytes()));
        }
        pool.close().await;
    }
}

#[tokio::test]
async fn sqlite_file_never_holds_the_plaintext_session() {
    let db = TestDb::sqlite().await.unwrap();
    marker_absent_from_raw_database(&db).await;
}

#[tokio::test]
async fn postgres_rows_never_hold_the_plaintext_session() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    marker_absent_from_raw_database(&db).await;
}

#[tokio::test]
async fn vault_seal_open_roundtrip() {
    let Some(bao) = BaoServer::start().await else {
        return;
    };
    let params = bao.transit_params("sessions").await.unwrap();
    assert!(!format!("{params:?}").contains(&bao.root_token));
    let cipher = SessionCipher::vault(params.clone()).await.unwrap();
    assert_eq!(cipher.describe(), "vault");
    assert_eq!(cipher.key_version(), 1);
    let sealed = cipher.seal(5, MARKER).await.unwrap();
    assert!(!sealed.windows(MARKER.len()).any(|w| w == MARKER));
    assert_eq!(&cipher.open(5, &sealed).await.unwrap()[..], MARKER);
    assert!(!cipher.needs_rewrap(&sealed));

    // A cold process (empty cache) unwraps through Vault.
    let cold = SessionCipher::vault(params).await.unwrap();
    assert_eq!(&cold.open(5, &sealed).await.unwrap()[..], MARKER);

    // A local blob is not a vault blob.
    let dir = tempfile::tempdir().unwrap();
    let local = SessionCipher::local(dir.path().join("k")).unwrap();
    let local_blob = local.seal(5, MARKER).await.unwrap();
    assert!(matches!(
        cipher.open(5, &local_blob).await,
        Err(CipherError::Malformed(_))
    ));
}

#[tokio::test]
async fn vault_blob_moved_or_tampered_does_not_open() {
    let Some(bao) = BaoServer::start().await else {
        return;
    };
    let params = bao.transit_params("sessions").await.unwrap();
    let cipher = SessionCipher::vault(params.clone()).await.unwrap();
    let sealed = cipher.seal(5, MARKER).await.unwrap();
    assert!(matches!(
        cipher.open(6, &sealed).await,
        Err(CipherError::Tampered)
    ));
    let mut body = sealed.clone();
    let last = body.len() - 1;
    body[last] ^= 1;
    assert!(matches!(
        cipher.open(5, &body).await,
        Err(CipherError::Tampered)
    ));
    // A changed byte inside the wrapped key: a cold cipher must ask Vault, which refuses it.
    let cold = SessionCipher::vault(params).await.unwrap();
    let mut wrapped = sealed.clone();
    wrapped[30] ^= 1;
    let r = cold.open(5, &wrapped).await;
    assert!(matches!(r, Err(CipherError::Tampered)), "{r:?}");
}

#[tokio::test]
async fn vault_rotation_loses_nothing_and_rewraps_on_next_seal() {
    let Some(bao) = BaoServer::start().await else {
        return;
    };
    let params = bao.transit_params("sessions").await.unwrap();
    let cipher = SessionCipher::vault(params.clone()).await.unwrap();
    let db = TestDb::sqlite().await.unwrap();
    let owner = db
        .store
        .create_user(NewUser {
            email: "rot@x.test".into(),
            username: None,
            password_hash: "h".into(),
            role: Role::User,
        })
        .await
        .unwrap();
    let mut accounts = Vec::new();
    for i in 0..20 {
        let a = db
            .store
            .create_account(NewAccount {
                owner_id: owner.id,
                label: None,
                kind: AccountKind::User,
                phone: None,
            })
            .await
            .unwrap();
        let sealed = cipher
            .seal(a.id, format!("session {i}").as_bytes())
            .await
            .unwrap();
        db.store.put_session(a.id, &sealed).await.unwrap();
        accounts.push(a.id);
    }

    bao.rotate("sessions").await.unwrap();
    // What the server's maintenance task and health check run: a read of the key's versions.
    cipher.check().await.unwrap();
    assert_eq!(cipher.key_version(), 2);

    // Every stored session still opens, in this process and in a cold one, and is flagged.
    let cold = SessionCipher::vault(params.clone()).await.unwrap();
    for (i, id) in accounts.iter().enumerate() {
        let sealed = db.store.session(*id).await.unwrap().unwrap();
        let want = format!("session {i}");
        assert_eq!(
            &cipher.open(*id, &sealed).await.unwrap()[..],
            want.as_bytes()
        );
        assert_eq!(&cold.open(*id, &sealed).await.unwrap()[..], want.as_bytes());
        assert!(cipher.needs_rewrap(&sealed), "account {id}");
        assert!(cold.needs_rewrap(&sealed), "account {id}");
        // The next write re-wraps with the newest version.
        let resealed = cipher.seal(*id, want.as_bytes()).await.unwrap();
        assert!(!cipher.needs_rewrap(&resealed));
        assert!(std::str::from_utf8(&resealed[7..17])
            .unwrap()
            .starts_with("vault:v2:"));
        db.store.put_session(*id, &resealed).await.unwrap();
    }
    for id in &accounts {
        let sealed = db.store.session(*id).await.unwrap().unwrap();
        assert!(!cold.needs_rewrap(&sealed));
        cold.open(*id, &sealed).await.unwrap();
    }
}

#[tokio::test]
async fn unreachable_vault_is_unavailable_not_a_panic() {
    // Nothing listens on a port we just released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let params = VaultParams {
        addr: format!("http://127.0.0.1:{port}"),
        token: "t".into(),
        transit_key: "sessions".into(),
        mount: "transit".into(),
    };
    let r = SessionCipher::vault(params.clone()).await;
    assert!(matches!(r, Err(CipherError::Unavailable(_))), "{r:?}");
    let r = SessionCipher::vault(VaultParams {
        addr: "not a url".into(),
        ..params.clone()
    })
    .await;
    assert!(matches!(r, Err(CipherError::Unavailable(_))), "{r:?}");
    let r = VaultSecrets::read(&params, "kv", "tgfleet").await;
    assert!(matches!(r, Err(CipherError::Unavailable(_))), "{r:?}");
}

#[tokio::test]
async fn vault_going_away_keeps_cached_keys_working() {
    let Some(bao) = BaoServer::start().await else {
        return;
    };
    let params = bao.transit_params("sessions").await.unwrap();
    let writer = SessionCipher::vault(params.clone()).await.unwrap();
    let first = writer.seal(1, b"one").await.unwrap();
    let second = writer.seal(2, b"two").await.unwrap();
    let reader = SessionCipher::vault(params.clone()).await.unwrap();
    let stranger = SessionCipher::vault(params.clone()).await.unwrap();
    let unseen = stranger.seal(4, b"four").await.unwrap();
    // One unwrap through Vault, cached by the wrapped key's bytes…
    reader.open(1, &first).await.unwrap();
    let bad_token = SessionCipher::vault(VaultParams {
        token: "wrong".into(),
        ..params
    })
    .await;
    assert!(
        matches!(&bad_token, Err(CipherError::Unavailable(m)) if m.contains("403")),
        "{bad_token:?}"
    );
    drop(bao);
    // …so a blob under the same data key opens with Vault gone, and sealing goes on.
    assert_eq!(&reader.open(2, &second).await.unwrap()[..], b"two");
    let third = reader.seal(3, b"three").await.unwrap();
    assert_eq!(&reader.open(3, &third).await.unwrap()[..], b"three");
    // A blob under a data key this process never saw needs Vault: Unavailable, not a panic.
    let r = reader.open(4, &unseen).await;
    assert!(matches!(r, Err(CipherError::Unavailable(_))), "{r:?}");
    let r = reader.refresh().await;
    assert!(matches!(r, Err(CipherError::Unavailable(_))), "{r:?}");
}

#[tokio::test]
async fn vault_secrets_come_from_kv_v2() {
    let Some(bao) = BaoServer::start().await else {
        return;
    };
    let params = bao.transit_params("sessions").await.unwrap();
    bao.put_kv(
        "tgfleet",
        &[
            ("jwt_secret".to_owned(), "jwt-from-vault".to_owned()),
            ("api_hash".to_owned(), "hash-from-vault".to_owned()),
        ]
        .into(),
    )
    .await
    .unwrap();
    let secrets = VaultSecrets::read(&params, "kv", "tgfleet").await.unwrap();
    assert_eq!(
        secrets.jwt_secret.as_ref().map(|s| s.expose()),
        Some("jwt-from-vault")
    );
    assert_eq!(
        secrets.api_hash.as_ref().map(|s| s.expose()),
        Some("hash-from-vault")
    );
    assert!(!format!("{secrets:?}").contains("from-vault"));
    let missing = VaultSecrets::read(&params, "kv", "nothing-here").await;
    assert!(
        matches!(missing, Err(CipherError::Unavailable(_))),
        "{missing:?}"
    );
}

/// Issue 11, item 11: a Vault token with a TTL (what AppRole and child tokens are) is renewed by
/// the cipher before it runs out, so a service running for longer than the TTL keeps working.
#[tokio::test]
async fn a_vault_token_with_a_ttl_is_renewed_before_it_expires() {
    let Some(bao) = BaoServer::start().await else {
        return;
    };
    let mut params = bao.transit_params("renewed").await.unwrap();
    let mut opts = vaultrs::api::token::requests::CreateTokenRequest::builder();
    opts.ttl("4s").renewable(true);
    let token = vaultrs::token::new(bao.client(), Some(&mut opts))
        .await
        .unwrap();
    params.token = token.client_token;
    let cipher = SessionCipher::vault(params).await.unwrap();
    // Twice the TTL: without renewal the token is gone and Vault answers 403.
    tokio::time::sleep(std::time::Duration::from_secs(9)).await;
    cipher
        .check()
        .await
        .expect("the token was renewed and still works");
}

/// Issue 16, item 5: a service logs in with AppRole (RoleID + SecretID) instead of holding a
/// token. Its token has the role's TTL and is renewed; when the role's max TTL ends renewals, the
/// cipher logs in again before the token dies.
#[tokio::test]
async fn an_approle_login_outlives_its_tokens_ttl_and_max_ttl() {
    let Some(bao) = BaoServer::start().await else {
        return;
    };
    let base = bao.transit_params("approle-sessions").await.unwrap();
    let (role_id, secret_id) = bao.approle("tgfleet", "2s", "4s").await.unwrap();
    let login = |secret_id: &str| AppRoleLogin {
        mount: "approle".into(),
        role_id: role_id.clone(),
        secret_id: tgfleet_config::Secret::new(secret_id),
        secret_id_file: None,
    };

    let wrong = approle_login(&bao.addr, &login("not-the-secret-id")).await;
    let Err(CipherError::Unavailable(why)) = wrong else {
        panic!("a wrong SecretID must not log in: {wrong:?}");
    };
    assert!(
        why.contains("logging in with AppRole at auth/approle"),
        "{why}"
    );

    let token = approle_login(&bao.addr, &login(&secret_id)).await.unwrap();
    assert_ne!(token.expose(), bao.root_token);
    let params = VaultParams {
        token: token.expose().to_owned(),
        ..base.clone()
    };
    let cipher = SessionCipher::vault_approle(params, login(&secret_id))
        .await
        .unwrap();
    let sealed = cipher.seal(5, b"through approle").await.unwrap();
    // Well past the max TTL: the first token is dead whatever renewed it.
    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    let dead = SessionCipher::vault(VaultParams {
        token: token.expose().to_owned(),
        ..base.clone()
    })
    .await;
    assert!(dead.is_err(), "the first token outlived its max TTL");
    cipher
        .refresh()
        .await
        .expect("the cipher logged in again and still reaches Vault");
    let resealed = cipher.seal(6, b"after the max ttl").await.unwrap();
    let root = SessionCipher::vault(base).await.unwrap();
    assert_eq!(
        &root.open(5, &sealed).await.unwrap()[..],
        b"through approle"
    );
    assert_eq!(
        &root.open(6, &resealed).await.unwrap()[..],
        b"after the max ttl"
    );
}
