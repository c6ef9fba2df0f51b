//! Where the media library keeps its bytes: a directory on this machine, or an S3-compatible
//! bucket, both through the `object_store` crate (its `ObjectStore` trait is the storage trait).
//! A file is written in chunks as it arrives and hashed on the way, so an upload of any size
//! costs a few chunks of memory, and an upload that does not finish leaves no object behind.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt as _, TryStreamExt as _};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, WriteMultipart};
use sha2::{Digest as _, Sha256};
use tgfleet_config::{MediaStorageKind, Settings};

/// Parts of this size go to the storage while an upload streams in: S3's smallest multipart
/// part (5 MiB) — which bounds what one upload holds in memory to a few of them.
const CHUNK: usize = 5 << 20;
/// Parts in flight to the storage per upload, besides the one being filled.
const IN_FLIGHT: usize = 2;
/// How much of a file's beginning is kept for sniffing its type.
pub const HEAD: usize = 8 << 10;

#[derive(Clone)]
pub struct MediaStorage {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    kind: &'static str,
}

impl std::fmt::Debug for MediaStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaStorage")
            .field("kind", &self.kind)
            .field("prefix", &self.prefix.as_ref())
            .finish()
    }
}

impl MediaStorage {
    /// The storage `settings.media` names.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        match settings.media.storage {
            MediaStorageKind::Local => Self::local(&settings.media_dir()),
            MediaStorageKind::S3 => {
                let s3 = &settings.media.s3;
                let mut builder = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(&s3.bucket)
                    .with_region(s3.region.as_deref().unwrap_or("us-east-1"));
                if let Some(endpoint) = &s3.endpoint {
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_allow_http(endpoint.starts_with("http://"))
                        .with_virtual_hosted_style_request(false);
                }
                if let Some(key) = &s3.access_key_id {
                    builder = builder.with_access_key_id(key);
                }
                if let Some(secret) = &s3.secret_access_key {
                    builder = builder.with_secret_access_key(secret.expose());
                }
                let store = builder
                    .build()
                    .with_context(|| format!("configuring S3 bucket {:?}", s3.bucket))?;
                Ok(Self {
                    store: Arc::new(store),
                    prefix: ObjectPath::from(s3.prefix.as_str()),
                    kind: "s3",
                })
            }
        }
    }

    /// A directory (created private when missing).
    pub fn local(dir: &Path) -> anyhow::Result<Self> {
        crate::create_private_dir(dir)
            .with_context(|| format!("creating the media directory {}", dir.display()))?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(dir)
            .with_context(|| format!("opening the media directory {}", dir.display()))?;
        Ok(Self {
            store: Arc::new(store),
            prefix: ObjectPath::default(),
            kind: "local",
        })
    }

    /// "local" or "s3", for health reports.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    fn path(&self, key: &str) -> ObjectPath {
        self.prefix
            .parts()
            .chain(ObjectPath::from(key).parts())
            .collect()
    }

    /// Starts writing a new object under `key`.
    pub async fn create(&self, key: &str) -> anyhow::Result<BlobWriter> {
        let upload = self
            .store
            .put_multipart(&self.path(key))
            .await
            .with_context(|| format!("starting to store media {key}"))?;
        Ok(BlobWriter {
            key: key.to_owned(),
            upload: Some(WriteMultipart::new_with_chunk_size(upload, CHUNK)),
            hasher: Sha256::new(),
            size: 0,
            head: Vec::new(),
        })
    }

    /// The object's bytes from `offset` on, as they come from the storage.
    pub async fn read(
        &self,
        key: &str,
        offset: u64,
    ) -> anyhow::Result<BoxStream<'static, anyhow::Result<Bytes>>> {
        let options = object_store::GetOptions {
            range: (offset > 0).then_some(object_store::GetRange::Offset(offset)),
            ..Default::default()
        };
        let got = self
            .store
            .get_opts(&self.path(key), options)
            .await
            .with_context(|| format!("reading media {key}"))?;
        Ok(got
            .into_stream()
            .map_err(|e| anyhow::Error::new(e).context("reading media"))
            .boxed())
    }

    /// The bytes in `range` of the object (a part to send on).
    pub async fn read_range(
        &self,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> anyhow::Result<Bytes> {
        self.store
            .get_range(&self.path(key), range)
            .await
            .with_context(|| format!("reading media {key}"))
    }

    /// Removes the object; one that is already gone is no error.
    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(anyhow::Error::new(e).context(format!("deleting media {key}"))),
        }
    }
}

/// An object being written. Dropped before [`BlobWriter::finish`] (a client hung up, an error),
/// it aborts the upload, so no partial object stays behind.
pub struct BlobWriter {
    key: String,
    upload: Option<WriteMultipart>,
    hasher: Sha256,
    size: u64,
    head: Vec<u8>,
}

/// A stored object: its key, lower-case hex SHA-256, size and first [`HEAD`] bytes.
#[derive(Debug, Clone)]
pub struct Blob {
    pub key: String,
    pub sha256: String,
    pub size: u64,
    pub head: Vec<u8>,
}

impl BlobWriter {
    pub fn size(&self) -> u64 {
        self.size
    }

    pub async fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        let upload = self.upload.as_mut().context("media upload already ended")?;
        // Waits while IN_FLIGHT parts are still on their way: memory stays bounded however
        // fast the client sends.
        upload
            .wait_for_capacity(IN_FLIGHT)
            .await
            .context("storing media")?;
        upload.write(bytes);
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
        if self.head.len() < HEAD {
            let take = (HEAD - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..take]);
        }
        Ok(())
    }

    /// Completes the object.
    pub async fn finish(mut self) -> anyhow::Result<Blob> {
        let upload = self.upload.take().context("media upload already ended")?;
        upload.finish().await.context("completing stored media")?;
        Ok(Blob {
            key: std::mem::take(&mut self.key),
            sha256: hex::encode(std::mem::take(&mut self.hasher).finalize()),
            size: self.size,
            head: std::mem::take(&mut self.head),
        })
    }

    /// Gives the object up, waiting until the storage has dropped what it had.
    pub async fn abort(mut self) {
        if let Some(upload) = self.upload.take() {
            if let Err(e) = upload.abort().await {
                tracing::warn!(key = %self.key, error = %e, "aborting a media upload failed");
            }
        }
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if let Some(upload) = self.upload.take() {
            let key = std::mem::take(&mut self.key);
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    if let Err(e) = upload.abort().await {
                        tracing::warn!(%key, error = %e, "aborting a media upload failed");
                    }
                });
            }
        }
    }
}
