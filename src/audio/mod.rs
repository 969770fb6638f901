//! Recordings: streamed from their pre-signed URL into object storage, hashed on the way.
//!
//! The body is never held whole: it flows chunk by chunk into a multipart upload, so memory
//! stays flat however long the call. Size is checked against `Content-Length`, and a short
//! body aborts the upload instead of leaving a truncated object behind.

use std::sync::Arc;
use std::time::Duration;

use backon::Retryable;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, ObjectStore, ObjectStoreExt, PutMultipartOptions, WriteMultipart,
};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::net::{self, RetryPolicy};

/// Content type recorded with every audio object.
pub const WAV_CONTENT_TYPE: &str = "audio/wav";
/// Part size of multipart uploads (S3 needs at least 5 MiB for all parts but the last).
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts in flight per upload; bounds memory to about `PART_SIZE * (MAX_PARTS_IN_FLIGHT + 1)`.
const MAX_PARTS_IN_FLIGHT: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// 403 from the storage host: the pre-signed URL expired (or was revoked). A fresh one
    /// comes from querying captures again.
    #[error("download URL expired or was refused (HTTP 403)")]
    UrlExpired,
    #[error("download failed with HTTP {0}")]
    Status(u16),
    #[error("download cut short: expected {expected} bytes, received {received}")]
    Truncated { expected: u64, received: u64 },
    #[error("download failed: {0}")]
    Transport(String),
    #[error("the recording has no download URL")]
    NoUrl,
    #[error("refusing unsafe identifier {0:?} in an object key")]
    UnsafeId(String),
    #[error("object store error: {0}")]
    Store(#[from] object_store::Error),
}

impl AudioError {
    fn is_transient(&self) -> bool {
        matches!(
            self,
            AudioError::Truncated { .. } | AudioError::Transport(_)
        ) || matches!(self, AudioError::Status(s) if net::is_transient(reqwest::StatusCode::from_u16(*s).unwrap_or_default()))
    }
}

pub type Result<T, E = AudioError> = std::result::Result<T, E>;

/// What was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAudio {
    pub size: u64,
    /// Lowercase hex SHA-256 of the bytes stored.
    pub sha256: String,
}

/// Object key of a recording: `audio/<org>/<task>/<recording>.wav`. Identifiers come from the
/// API, so each must be a plain token: nothing in a response can steer a write elsewhere.
pub fn object_key(org_id: &str, task_id: &str, recording_id: &str) -> Result<String> {
    for id in [org_id, task_id, recording_id] {
        check_id(id)?;
    }
    Ok(format!("audio/{org_id}/{task_id}/{recording_id}.wav"))
}

/// Accepts UUID-like tokens: ASCII letters, digits, `-` and `_`, 1 to 128 characters.
pub fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(AudioError::UnsafeId(id.chars().take(64).collect()))
    }
}

/// Streams `url` into `store` at `path`, retrying transient failures (5xx, resets, short
/// bodies) under `retry`. An expired URL is returned at once so the caller can get a new one.
pub async fn fetch_to_store(
    http: &reqwest::Client,
    url: &SecretString,
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    retry: &RetryPolicy,
) -> Result<StoredAudio> {
    let attempt = || fetch_once(http, url, store, path);
    attempt
        .retry(retry.backoff().with_max_times(retry.max_retries.min(5)))
        .sleep(tokio::time::sleep)
        .when(AudioError::is_transient)
        .notify(|e, wait: Duration| tracing::debug!(error = %e, ?wait, %path, "download retry"))
        .await
}

async fn fetch_once(
    http: &reqwest::Client,
    url: &SecretString,
    store: &Arc<dyn ObjectStore>,
    path: &Path,
) -> Result<StoredAudio> {
    // Never log or echo the URL: it is a bearer credential until it expires.
    let resp = http
        .get(url.expose_secret())
        .send()
        .await
        .map_err(|e| AudioError::Transport(e.without_url().to_string()))?;
    match resp.status().as_u16() {
        200 => {}
        403 => return Err(AudioError::UrlExpired),
        s => return Err(AudioError::Status(s)),
    }
    let expected = resp.content_length();
    let upload = start_upload(store, path).await?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
    let mut hasher = Sha256::new();
    let mut received: u64 = 0;
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                writer.abort().await.ok();
                return Err(match expected {
                    Some(expected) if received < expected => {
                        AudioError::Truncated { expected, received }
                    }
                    _ => AudioError::Transport(e.without_url().to_string()),
                });
            }
        };
        if let Err(e) = writer.wait_for_capacity(MAX_PARTS_IN_FLIGHT).await {
            writer.abort().await.ok();
            return Err(e.into());
        }
        hasher.update(&chunk);
        received += chunk.len() as u64;
        writer.put(chunk);
    }
    if let Some(expected) = expected
        && expected != received
    {
        writer.abort().await.ok();
        return Err(AudioError::Truncated { expected, received });
    }
    writer.finish().await?;
    Ok(StoredAudio {
        size: received,
        sha256: hex::encode(hasher.finalize()),
    })
}

/// Starts a multipart upload tagged `audio/wav` where the backend keeps metadata (S3, GCS,
/// Azure); the local filesystem has no place for it and refuses attributes, so it gets none.
async fn start_upload(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
) -> Result<Box<dyn object_store::MultipartUpload>> {
    let mut attributes = Attributes::new();
    attributes.insert(Attribute::ContentType, WAV_CONTENT_TYPE.into());
    let opts = PutMultipartOptions {
        attributes,
        ..Default::default()
    };
    match store.put_multipart_opts(path, opts).await {
        Err(object_store::Error::NotImplemented { .. }) => {
            Ok(store.put_multipart_opts(path, Default::default()).await?)
        }
        other => Ok(other?),
    }
}

/// Size and hash of an object already in the store, streamed (used to verify before skipping).
pub async fn hash_object(store: &Arc<dyn ObjectStore>, path: &Path) -> Result<StoredAudio> {
    let got = store.get(path).await?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut stream = got.into_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        size += chunk.len() as u64;
        hasher.update(&chunk);
    }
    Ok(StoredAudio {
        size,
        sha256: hex::encode(hasher.finalize()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys_are_built_from_plain_ids_only() {
        assert_eq!(
            object_key("org-1", "task_2", "REC3").unwrap(),
            "audio/org-1/task_2/REC3.wav"
        );
        for bad in ["../etc", "a/b", "", "x y", "a\0b", "ü"] {
            assert!(object_key("o", bad, "r").is_err(), "{bad:?} accepted");
        }
    }
}
