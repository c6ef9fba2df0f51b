//! The media storage, on a directory and on a real S3 API server (moto; skipped with a notice
//! when `moto_server` is missing, failing when `TGFLEET_REQUIRE_SERVICES=1`): what is written
//! in pieces reads back whole with its hash, an abandoned write leaves nothing, deletes stick.

use futures::TryStreamExt as _;
use sha2::Digest as _;
use tgfleet_config::{MediaStorageKind, Settings};
use tgfleet_persistence::testing::S3Server;
use tgfleet_persistence::MediaStorage;

/// 12 MiB and a bit: more than two of the storage's 5 MiB parts.
fn bytes() -> Vec<u8> {
    (0..12 * 1024 * 1024 + 4321)
        .map(|i: u32| (i * 7 + i / 4096) as u8)
        .collect()
}

async fn read_all(storage: &MediaStorage, key: &str, offset: u64) -> Vec<u8> {
    let chunks: Vec<bytes::Bytes> = storage
        .read(key, offset)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    chunks.concat()
}

async fn suite(storage: MediaStorage) {
    let data = bytes();
    let mut writer = storage.create("7/first").await.unwrap();
    // Uneven pieces, as a network delivers them.
    for piece in data.chunks(777_777) {
        writer.write(piece).await.unwrap();
    }
    assert_eq!(writer.size(), data.len() as u64);
    let blob = writer.finish().await.unwrap();
    assert_eq!(blob.size, data.len() as u64);
    assert_eq!(blob.sha256, hex::encode(sha2::Sha256::digest(&data)));
    assert_eq!(blob.head, data[..tgfleet_persistence::media_storage::HEAD]);
    assert_eq!(read_all(&storage, "7/first", 0).await, data);
    assert_eq!(
        read_all(&storage, "7/first", 5_000_000).await,
        data[5_000_000..]
    );

    // Given up halfway (explicitly, or by dropping the writer when a client hangs up): no object.
    let mut abandoned = storage.create("7/abandoned").await.unwrap();
    abandoned.write(&data[..6 << 20]).await.unwrap();
    abandoned.abort().await;
    assert!(storage.read("7/abandoned", 0).await.is_err());
    let mut dropped = storage.create("7/dropped").await.unwrap();
    dropped.write(&data[..6 << 20]).await.unwrap();
    drop(dropped);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(storage.read("7/dropped", 0).await.is_err());

    storage.delete("7/first").await.unwrap();
    assert!(storage.read("7/first", 0).await.is_err());
    // Deleting what is gone is no error.
    storage.delete("7/first").await.unwrap();
}

#[tokio::test]
async fn a_directory_keeps_streamed_files_whole() {
    let dir = tempfile::tempdir().unwrap();
    let storage = MediaStorage::local(&dir.path().join("media")).unwrap();
    assert_eq!(storage.kind(), "local");
    suite(storage).await;
    // Nothing is left behind: no staging files of the aborted writes.
    let mut left = Vec::new();
    for entry in walk(&dir.path().join("media")) {
        left.push(entry);
    }
    assert!(left.is_empty(), "left behind: {left:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test]
async fn an_s3_bucket_keeps_streamed_files_whole() {
    let Some(s3) = S3Server::start().await else {
        return;
    };
    let mut settings = Settings::default();
    settings.media.storage = MediaStorageKind::S3;
    settings.media.s3.bucket = s3.bucket.clone();
    settings.media.s3.endpoint = Some(s3.endpoint.clone());
    settings.media.s3.access_key_id = Some("testing".into());
    settings.media.s3.secret_access_key = Some(tgfleet_config::Secret::new("testing"));
    settings.media.s3.prefix = "install-a".into();
    let storage = MediaStorage::from_settings(&settings).unwrap();
    assert_eq!(storage.kind(), "s3");
    suite(storage).await;
}
