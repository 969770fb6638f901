//! Recordings: streamed from their pre-signed URL into object storage, hashed on the way.
//!
//! The body is never held whole: it flows chunk by chunk into a multipart upload, so memory
//! stays flat however long the call. Size is checked against `Content-Length`, and a short
//! body aborts the upload instead of leaving a truncated object behind.

pub mod facts;

use std::sync::Arc;
use std::time::Duration;

use backon::Retryable;
use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, ObjectStore, ObjectStoreExt, PutMultipartOptions, WriteMultipart,
};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::net::{self, RetryPolicy};

/// Object metadata keys (S3 `x-amz-meta-…`, Azure and GCS metadata) naming the recording;
/// underscores, since Azure only accepts C# identifiers as metadata names.
pub const META_TASK_ID: &str = "wxcc_task_id";
pub const META_RECORDING_ID: &str = "wxcc_recording_id";
/// Content type recorded with every audio object.
pub const WAV_CONTENT_TYPE: &str = "audio/wav";
/// Part size for cloud stores: S3 needs at least 5 MiB for every part but the last.
pub const CLOUD_PART_SIZE: usize = 5 * 1024 * 1024;
/// Part size for local disk and memory, which have no minimum: small parts keep memory low.
pub const LOCAL_PART_SIZE: usize = 1024 * 1024;
/// Parts uploading while the next one fills. Memory per transfer is about
/// `part_size * (MAX_PARTS_IN_FLIGHT + 1)`, so with 8 concurrent downloads about 24 MiB on
/// local disk and 80 MiB on a cloud store, whatever the recordings' length.
const MAX_PARTS_IN_FLIGHT: usize = 1;

/// The part size that fits a store, by its URL scheme.
pub fn part_size_for(scheme: &str) -> usize {
    match scheme {
        "file" | "memory" => LOCAL_PART_SIZE,
        _ => CLOUD_PART_SIZE,
    }
}

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

/// How recordings move into a store.
pub struct Transfer<'a> {
    /// Client for pre-signed URLs (never carries the API's bearer token).
    pub http: &'a reqwest::Client,
    pub store: &'a Arc<dyn ObjectStore>,
    pub retry: &'a RetryPolicy,
    /// Feed the bytes to [`facts::analyze`] as they pass.
    pub analyze: bool,
    /// Multipart part size; see [`part_size_for`].
    pub part_size: usize,
}

/// A stored recording and, when asked for, the analysis of the very bytes that were stored.
#[derive(Debug)]
pub struct Fetched {
    pub stored: StoredAudio,
    pub facts: Option<facts::Result<facts::AudioFacts>>,
}

/// Streams `url` into `store` at `path`, retrying transient failures (5xx, resets, short
/// bodies) under `retry`. An expired URL is returned at once so the caller can get a new one.
/// With `analyze`, the bytes are also fed to [`facts::analyze`] on a blocking thread as they
/// pass, so analysis costs no second read and keeps pace with the transfer.
pub async fn fetch_to_store(
    transfer: &Transfer<'_>,
    url: &SecretString,
    path: &Path,
    ids: &RecordingIds<'_>,
) -> Result<Fetched> {
    let retry = transfer.retry;
    let attempt = || fetch_once(transfer, url, path, ids);
    attempt
        .retry(retry.backoff().with_max_times(retry.max_retries.min(5)))
        .sleep(tokio::time::sleep)
        .when(AudioError::is_transient)
        .notify(|e, wait: Duration| tracing::debug!(error = %e, ?wait, %path, "download retry"))
        .await
}

/// Which recording an object holds, kept as object metadata where the backend has it, so a
/// bucket browsed without the tables still says what each file is.
#[derive(Debug, Clone, Copy)]
pub struct RecordingIds<'a> {
    pub task_id: &'a str,
    pub recording_id: &'a str,
}

async fn fetch_once(
    transfer: &Transfer<'_>,
    url: &SecretString,
    path: &Path,
    ids: &RecordingIds<'_>,
) -> Result<Fetched> {
    let (http, store, analyze) = (transfer.http, transfer.store, transfer.analyze);
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
    let upload = start_upload(store, path, ids).await?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, transfer.part_size);
    let (mut tap, analysis) = if analyze {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(TAP_CHUNKS);
        let task = tokio::task::spawn_blocking(move || facts::analyze(TapReader::new(rx)));
        (Some(tx), Some(task))
    } else {
        (None, None)
    };
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
        // An analyser that stopped reading (not a WAV, say) just stops getting bytes.
        if let Some(tx) = &tap
            && tx.send(chunk.clone()).await.is_err()
        {
            tap = None;
        }
        writer.put(chunk);
    }
    if let Some(expected) = expected
        && expected != received
    {
        writer.abort().await.ok();
        return Err(AudioError::Truncated { expected, received });
    }
    writer.finish().await?;
    drop(tap); // end of input for the analyser
    let facts =
        match analysis {
            Some(task) => Some(task.await.unwrap_or_else(|e| {
                Err(facts::FactsError::Io(std::io::Error::other(e.to_string())))
            })),
            None => None,
        };
    Ok(Fetched {
        stored: StoredAudio {
            size: received,
            sha256: hex::encode(hasher.finalize()),
        },
        facts,
    })
}

/// Chunks buffered between the transfer and the analyser (bounded, so a slow analyser slows the
/// transfer instead of growing memory).
const TAP_CHUNKS: usize = 16;

/// `Read` over the chunks of a transfer in progress, for the blocking analyser thread.
struct TapReader {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl TapReader {
    fn new(rx: tokio::sync::mpsc::Receiver<Bytes>) -> TapReader {
        TapReader {
            rx,
            current: Bytes::new(),
        }
    }
}

impl std::io::Read for TapReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Analyses an object already in the store, streaming it (for audio stored before analysis
/// existed, or found without a manifest row).
pub async fn analyze_object(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
) -> Result<facts::Result<facts::AudioFacts>> {
    let got = store.get(path).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(TAP_CHUNKS);
    let task = tokio::task::spawn_blocking(move || facts::analyze(TapReader::new(rx)));
    let mut stream = got.into_stream();
    while let Some(chunk) = stream.next().await {
        if tx.send(chunk?).await.is_err() {
            break;
        }
    }
    drop(tx);
    Ok(task
        .await
        .unwrap_or_else(|e| Err(facts::FactsError::Io(std::io::Error::other(e.to_string())))))
}

/// Starts a multipart upload tagged `audio/wav` with the task and recording ids, where the
/// backend keeps metadata (S3, GCS, Azure); the local filesystem has no place for it and
/// refuses attributes, so it gets none.
async fn start_upload(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    ids: &RecordingIds<'_>,
) -> Result<Box<dyn object_store::MultipartUpload>> {
    let mut attributes = Attributes::new();
    attributes.insert(Attribute::ContentType, WAV_CONTENT_TYPE.into());
    attributes.insert(
        Attribute::Metadata(META_TASK_ID.into()),
        ids.task_id.to_owned().into(),
    );
    attributes.insert(
        Attribute::Metadata(META_RECORDING_ID.into()),
        ids.recording_id.to_owned().into(),
    );
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

    #[tokio::test]
    async fn stored_objects_that_are_not_wav_get_a_clear_verdict_not_a_crash() {
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let path = Path::from("audio/o/t/r.wav");
        store
            .put(&path, b"<html>AccessDenied</html>".to_vec().into())
            .await
            .unwrap();
        let verdict = analyze_object(&store, &path).await.unwrap();
        assert!(
            matches!(verdict, Err(facts::FactsError::NotWav(_))),
            "{verdict:?}"
        );
        let hashed = hash_object(&store, &path).await.unwrap();
        assert_eq!(hashed.size, 25);
    }

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
