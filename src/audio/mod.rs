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
    Attribute, Attributes, ObjectStore, ObjectStoreExt, PutMultipartOptions, PutOptions,
    PutPayload, PutPayloadMut, WriteMultipart,
};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::net::{self, RetryPolicy};
pub use facts::{Derivative, DerivedInfo};

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
    /// The media policy refused the URL, a redirect or the body (see [`net::MediaClient`]):
    /// fatal for this recording, never retried.
    #[error("{0}")]
    Refused(String),
    /// The run is stopping (SIGTERM/SIGINT): the transfer was aborted, to be redone next run.
    #[error("stopped before the transfer finished")]
    Stopped,
    #[error("refusing unsafe identifier {0:?} in an object key")]
    UnsafeId(String),
    #[error("object store error: {0}")]
    Store(#[from] object_store::Error),
    /// A derivative could not be made or stored (scratch disk full, say): may pass on retry.
    #[error("cannot derive audio: {0}")]
    Derive(String),
    /// The recording cannot be decoded, so nothing can be derived from it until it changes.
    #[error("cannot derive audio from this recording: {0}")]
    Undecodable(String),
    /// A stored object read back is not the one recorded (changed or damaged in place).
    #[error("stored object differs from its recorded size or checksum")]
    Changed,
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
    /// Client for pre-signed URLs (never carries the API's bearer token; applies the media
    /// policy).
    pub http: &'a net::MediaClient,
    pub store: &'a Arc<dyn ObjectStore>,
    pub retry: &'a RetryPolicy,
    /// Multipart part size; see [`part_size_for`].
    pub part_size: usize,
    /// What to compute from the bytes as they pass.
    pub processing: &'a Processing,
    /// A graceful stop (SIGTERM): a transfer in flight is aborted, its upload with it, so no
    /// partial object or orphaned multipart upload is left behind.
    pub stop: Option<&'a tokio_util::sync::CancellationToken>,
}

/// Work done on a recording's bytes while they stream past, so it costs no second read.
#[derive(Debug, Clone, Default)]
pub struct Processing {
    /// Feed the bytes to [`facts::analyze`].
    pub analyze: bool,
    /// Derived files to write beside the original (see [`derived_path`]); any order, repeats
    /// ignored.
    pub derive: Vec<Derivative>,
    /// Where derivatives are made before upload (anonymous files, gone even after a crash);
    /// `None`: the system's temporary directory.
    pub scratch_dir: Option<std::path::PathBuf>,
}

impl Processing {
    fn is_empty(&self) -> bool {
        !self.analyze && self.derive.is_empty()
    }
}

/// A stored recording and, when asked for, the analysis and derivatives of the very bytes that
/// were stored.
#[derive(Debug)]
pub struct Fetched {
    pub stored: StoredAudio,
    pub processed: Processed,
}

/// What [`Processing`] produced for one recording.
#[derive(Debug, Default)]
pub struct Processed {
    /// Present when analysis was asked for.
    pub facts: Option<facts::Result<facts::AudioFacts>>,
    /// One entry per derivative asked for, in [`Derivative`] order.
    pub derived: Vec<DerivedObject>,
}

/// One derivative of a recording, stored beside it (or why not).
#[derive(Debug)]
pub struct DerivedObject {
    pub kind: Derivative,
    pub path: Path,
    pub result: Result<(DerivedInfo, StoredAudio)>,
}

/// Where a derivative of the recording at `original` goes: `<recording>.<kind>.wav` beside it.
pub fn derived_path(original: &Path, kind: Derivative) -> Path {
    let s = original.as_ref();
    let stem = s.strip_suffix(".wav").unwrap_or(s);
    Path::from(format!("{stem}.{}.wav", kind.name()))
}

/// Streams `url` into `store` at `path`, retrying transient failures (5xx, resets, short
/// bodies) under `retry`. An expired URL is returned at once so the caller can get a new one.
/// The bytes are also fed to the analysis and derivations asked for in `transfer.processing`, on
/// blocking threads as they pass, so they cost no second read and keep pace with the transfer.
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
    // Never log or echo the URL: it is a bearer credential until it expires.
    let resp = transfer
        .http
        .get(url.expose_secret())
        .await
        .map_err(|e| match e {
            net::MediaError::Transport(e) => AudioError::Transport(e),
            refused => AudioError::Refused(refused.to_string()),
        })?;
    match resp.status().as_u16() {
        200 => {}
        403 => return Err(AudioError::UrlExpired),
        s => return Err(AudioError::Status(s)),
    }
    let expected = resp.content_length();
    let cap = expected.unwrap_or(net::MAX_MEDIA_BYTES);
    let mut upload = Upload::start(transfer.store, path, ids, transfer.part_size);
    let mut taps = Taps::start(transfer.processing);
    let mut body = resp.bytes_stream();
    let stopped = async {
        match transfer.stop {
            Some(stop) => stop.cancelled().await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(stopped);
    loop {
        let chunk = tokio::select! {
            chunk = body.next() => chunk,
            () = &mut stopped => {
                upload.abort().await;
                return Err(AudioError::Stopped);
            }
        };
        let Some(chunk) = chunk else { break };
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                let received = upload.received;
                upload.abort().await;
                return Err(match expected {
                    Some(expected) if received < expected => {
                        AudioError::Truncated { expected, received }
                    }
                    _ => AudioError::Transport(e.without_url().to_string()),
                });
            }
        };
        if upload.received + chunk.len() as u64 > cap {
            upload.abort().await;
            return Err(AudioError::Refused(format!(
                "download body exceeds its {cap} byte limit"
            )));
        }
        taps.feed(&chunk).await;
        if let Err(e) = upload.put(chunk).await {
            upload.abort().await;
            return Err(e);
        }
    }
    if let Some(expected) = expected
        && expected != upload.received
    {
        let received = upload.received;
        upload.abort().await;
        return Err(AudioError::Truncated { expected, received });
    }
    let stored = upload.finish().await?;
    let processed = taps.finish(transfer, path, ids).await;
    Ok(Fetched { stored, processed })
}

/// A recording being stored and hashed. A body that fits in one part goes in one `put` (one
/// request; on local disk one blocking write, where a multipart upload takes three); a longer one
/// streams through a multipart upload holding at most `MAX_PARTS_IN_FLIGHT + 1` parts. Either
/// way the object only appears, whole, at [`Upload::finish`]. (object_store's `BufWriter` does
/// the same, but reports failures as `io::Error` and cannot fall back for a store that refuses
/// attributes once the body is handed over.)
struct Upload<'a> {
    store: &'a Arc<dyn ObjectStore>,
    path: &'a Path,
    ids: RecordingIds<'a>,
    part_size: usize,
    sink: Sink,
    hasher: Sha256,
    received: u64,
}

enum Sink {
    /// Under one part so far: nothing sent yet.
    Held(PutPayloadMut),
    Parts(WriteMultipart),
}

impl<'a> Upload<'a> {
    fn start(
        store: &'a Arc<dyn ObjectStore>,
        path: &'a Path,
        ids: &RecordingIds<'a>,
        part_size: usize,
    ) -> Upload<'a> {
        Upload {
            store,
            path,
            ids: *ids,
            part_size,
            sink: Sink::Held(PutPayloadMut::new()),
            hasher: Sha256::new(),
            received: 0,
        }
    }

    /// Waits for room (so a slow store slows the source instead of growing memory), then adds.
    /// On error the caller aborts the upload.
    async fn put(&mut self, chunk: Bytes) -> Result<()> {
        self.hasher.update(&chunk);
        self.received += chunk.len() as u64;
        match &mut self.sink {
            Sink::Held(held) if held.content_length() + chunk.len() <= self.part_size => {
                held.push(chunk);
            }
            Sink::Held(held) => {
                let held = std::mem::take(held).freeze();
                let upload = start_upload(self.store, self.path, &self.ids).await?;
                let mut parts = WriteMultipart::new_with_chunk_size(upload, self.part_size);
                for bytes in &held {
                    parts.put(bytes.clone());
                }
                parts.put(chunk);
                self.sink = Sink::Parts(parts);
            }
            Sink::Parts(parts) => {
                parts.wait_for_capacity(MAX_PARTS_IN_FLIGHT).await?;
                parts.put(chunk);
            }
        }
        Ok(())
    }

    /// Completes the upload: only now does the object become visible, whole.
    async fn finish(self) -> Result<StoredAudio> {
        let stored = StoredAudio {
            size: self.received,
            sha256: hex::encode(self.hasher.finalize()),
        };
        match self.sink {
            Sink::Held(held) => {
                put_whole(self.store, self.path, &self.ids, held.freeze()).await?;
            }
            Sink::Parts(mut parts) => {
                // Settle the parts in flight first, so a failure among them can still abort the
                // upload (`finish` itself does not abort when it fails).
                if let Err(e) = parts.wait_for_capacity(0).await {
                    parts.abort().await.ok();
                    return Err(e.into());
                }
                parts.finish().await?;
            }
        }
        Ok(stored)
    }

    async fn abort(self) {
        if let Sink::Parts(parts) = self.sink {
            parts.abort().await.ok();
        }
    }
}

/// The analysis and derivation threads fed from one stream of bytes.
struct Taps {
    analysis: Option<Tap<facts::Result<facts::AudioFacts>>>,
    derivation: Option<Tap<Scratch>>,
    kinds: Vec<Derivative>,
}

/// Derivatives written to anonymous temporary files (freed when dropped), one per kind; the outer
/// error is the input's (every derivative failed), the inner ones each derivative's own.
type Scratch = facts::Result<Vec<(Derivative, facts::Result<(DerivedInfo, std::fs::File)>)>>;

impl Taps {
    fn start(processing: &Processing) -> Taps {
        let mut kinds = processing.derive.clone();
        kinds.sort();
        kinds.dedup();
        let analysis = processing.analyze.then(|| Tap::spawn(facts::analyze));
        let derivation = (!kinds.is_empty()).then(|| {
            let (kinds, dir) = (kinds.clone(), processing.scratch_dir.clone());
            Tap::spawn(move |reader| derive_to_scratch(reader, &kinds, dir.as_deref()))
        });
        Taps {
            analysis,
            derivation,
            kinds,
        }
    }

    async fn feed(&mut self, chunk: &Bytes) {
        if let Some(tap) = &mut self.analysis {
            tap.feed(chunk).await;
        }
        if let Some(tap) = &mut self.derivation {
            tap.feed(chunk).await;
        }
    }

    /// Ends the input, collects the analysis, and stores the derivatives beside `original`.
    async fn finish(
        self,
        transfer: &Transfer<'_>,
        original: &Path,
        ids: &RecordingIds<'_>,
    ) -> Processed {
        let facts = match self.analysis {
            Some(tap) => Some(
                tap.finish()
                    .await
                    .unwrap_or_else(|e| Err(facts::FactsError::Io(e))),
            ),
            None => None,
        };
        let derived = match self.derivation {
            Some(tap) => {
                let scratch = tap
                    .finish()
                    .await
                    .unwrap_or_else(|e| Err(facts::FactsError::Io(e)));
                store_derived(transfer, original, ids, &self.kinds, scratch).await
            }
            None => Vec::new(),
        };
        Processed { facts, derived }
    }
}

/// A blocking consumer of a byte stream, fed through a bounded channel. It starts once
/// [`TAP_START_BYTES`] have arrived or at the end, whichever is first: a recording shorter than
/// that (short calls, and the simulator's) is handed to its thread in one piece, one hand-off
/// instead of one per chunk.
struct Tap<T> {
    state: TapState<T>,
}

type Consumer<T> = Box<dyn FnOnce(TapReader) -> T + Send>;

enum TapState<T> {
    Waiting {
        /// Always `Some` until the tap starts.
        consume: Option<Consumer<T>>,
        held: Vec<Bytes>,
        bytes: usize,
    },
    Running {
        tx: Option<tokio::sync::mpsc::Sender<Bytes>>,
        task: tokio::task::JoinHandle<T>,
    },
}

impl<T: Send + 'static> Tap<T> {
    fn spawn(consume: impl FnOnce(TapReader) -> T + Send + 'static) -> Tap<T> {
        Tap {
            state: TapState::Waiting {
                consume: Some(Box::new(consume)),
                held: Vec::new(),
                bytes: 0,
            },
        }
    }

    /// Starts the consumer's thread with what was held; `open`: more bytes will follow.
    fn start(consume: Consumer<T>, held: Vec<Bytes>, open: bool) -> TapState<T> {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(TAP_CHUNKS);
        let task = tokio::task::spawn_blocking(move || consume(TapReader::new(held, rx)));
        TapState::Running {
            tx: open.then_some(tx),
            task,
        }
    }

    /// A consumer that stopped reading (the input is not a WAV, say) just stops getting bytes.
    async fn feed(&mut self, chunk: &Bytes) {
        match &mut self.state {
            TapState::Waiting { held, bytes, .. } => {
                held.push(chunk.clone());
                *bytes += chunk.len();
                if *bytes >= TAP_START_BYTES {
                    self.begin(true);
                }
            }
            TapState::Running { tx, .. } => {
                if let Some(sender) = tx
                    && sender.send(chunk.clone()).await.is_err()
                {
                    *tx = None;
                }
            }
        }
    }

    /// Moves a waiting tap to its thread.
    fn begin(&mut self, open: bool) {
        if let TapState::Waiting { consume, held, .. } = &mut self.state
            && let Some(consume) = consume.take()
        {
            self.state = Self::start(consume, std::mem::take(held), open);
        }
    }

    async fn finish(mut self) -> std::io::Result<T> {
        self.begin(false);
        match self.state {
            TapState::Running { tx, task } => {
                drop(tx); // end of input
                task.await.map_err(|e| std::io::Error::other(e.to_string()))
            }
            TapState::Waiting { .. } => unreachable!("begin started the tap"),
        }
    }
}

fn derive_to_scratch(
    reader: TapReader,
    kinds: &[Derivative],
    dir: Option<&std::path::Path>,
) -> Scratch {
    let mut files = Vec::with_capacity(kinds.len());
    for &kind in kinds {
        let file = match dir {
            Some(dir) => tempfile::tempfile_in(dir),
            None => tempfile::tempfile(),
        };
        files.push((kind, file?));
    }
    // Buffered: the derivation writes a block of samples at a time.
    let outputs = files
        .iter_mut()
        .map(|(k, f)| (*k, std::io::BufWriter::with_capacity(SCRATCH_BUFFER, f)))
        .collect();
    let results = facts::derive(reader, outputs)?;
    let mut out = Vec::with_capacity(results.len());
    for ((kind, result), (_, mut file)) in results.into_iter().zip(files) {
        let stored = result.and_then(|info| {
            std::io::Seek::rewind(&mut file)?;
            Ok((info, file))
        });
        out.push((kind, stored));
    }
    Ok(out)
}

/// Write buffer of each scratch file.
const SCRATCH_BUFFER: usize = 64 * 1024;

/// I/O trouble may pass; a recording that does not decode stays so.
fn derive_error(e: &facts::FactsError) -> AudioError {
    match e {
        facts::FactsError::Io(_) => AudioError::Derive(e.to_string()),
        _ => AudioError::Undecodable(e.to_string()),
    }
}

/// Uploads each derivative made in scratch files; a failure is that derivative's alone.
async fn store_derived(
    transfer: &Transfer<'_>,
    original: &Path,
    ids: &RecordingIds<'_>,
    kinds: &[Derivative],
    scratch: Scratch,
) -> Vec<DerivedObject> {
    let scratch = match scratch {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%original, error = %e, "derivative not stored");
            return kinds
                .iter()
                .map(|&kind| DerivedObject {
                    kind,
                    path: derived_path(original, kind),
                    result: Err(derive_error(&e)),
                })
                .collect();
        }
    };
    let mut out = Vec::with_capacity(scratch.len());
    for (kind, made) in scratch {
        let path = derived_path(original, kind);
        let result = match made {
            Ok((info, file)) => upload_file(transfer, file, &path, ids)
                .await
                .map(|stored| (info, stored)),
            Err(e) => Err(derive_error(&e)),
        };
        if let Err(e) = &result {
            tracing::warn!(%path, error = %e, "derivative not stored");
        }
        out.push(DerivedObject { kind, path, result });
    }
    out
}

/// Streams a local file into the store in parts, hashing it on the way.
async fn upload_file(
    transfer: &Transfer<'_>,
    file: std::fs::File,
    path: &Path,
    ids: &RecordingIds<'_>,
) -> Result<StoredAudio> {
    use tokio::io::AsyncReadExt;
    let mut file = tokio::fs::File::from_std(file);
    let mut upload = Upload::start(transfer.store, path, ids, transfer.part_size);
    loop {
        let mut buf = bytes::BytesMut::with_capacity(transfer.part_size);
        while buf.len() < transfer.part_size {
            match file.read_buf(&mut buf).await {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    upload.abort().await;
                    return Err(AudioError::Derive(format!("reading scratch file: {e}")));
                }
            }
        }
        if buf.is_empty() {
            break;
        }
        if let Err(e) = upload.put(buf.freeze()).await {
            upload.abort().await;
            return Err(e);
        }
    }
    upload.finish().await
}

/// Chunks buffered between the transfer and each consumer (analysis, derivation): bounded, so a
/// slow consumer slows the transfer instead of growing memory. Few, because a chunk can hold up
/// to ~400 KiB (hyper's adaptive read buffer) and a consumer slower than the network keeps its
/// queue full: with 16, eight derivations held ~50 MiB of queued chunks.
const TAP_CHUNKS: usize = 4;
/// Bytes held before a consumer gets its own thread (see [`Tap`]): about 30 s of 8 kHz 16-bit
/// stereo audio, and no more than a local part, which the upload holds anyway (the chunks are
/// shared, not copied).
const TAP_START_BYTES: usize = LOCAL_PART_SIZE;

/// `Read` over the chunks of a transfer in progress, for a blocking consumer thread: those held
/// before it started, then those sent since.
struct TapReader {
    held: std::vec::IntoIter<Bytes>,
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl TapReader {
    fn new(held: Vec<Bytes>, rx: tokio::sync::mpsc::Receiver<Bytes>) -> TapReader {
        TapReader {
            held: held.into_iter(),
            rx,
            current: Bytes::new(),
        }
    }
}

impl std::io::Read for TapReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            if let Some(chunk) = self.held.next() {
                self.current = chunk;
                continue;
            }
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

/// Analyses and/or derives from an object already in the store, streaming it once (for audio
/// stored before analysis or derivation was asked for, or found without a manifest row).
///
/// The bytes read are hashed on the way: when they are not `expected` (the object changed in
/// place since it was recorded), nothing is stored and [`AudioError::Changed`] says to download
/// the recording again, so no derivative is ever attributed to bytes it was not made from.
pub async fn process_stored(
    transfer: &Transfer<'_>,
    path: &Path,
    ids: &RecordingIds<'_>,
    expected: &StoredAudio,
) -> Result<Processed> {
    if transfer.processing.is_empty() {
        return Ok(Processed::default());
    }
    let got = transfer.store.get(path).await?;
    let mut taps = Taps::start(transfer.processing);
    let mut stream = got.into_stream();
    let (mut hasher, mut size) = (Sha256::new(), 0u64);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        hasher.update(&chunk);
        size += chunk.len() as u64;
        taps.feed(&chunk).await;
    }
    let read = StoredAudio {
        size,
        sha256: hex::encode(hasher.finalize()),
    };
    if read != *expected {
        return Err(AudioError::Changed); // dropping the taps discards their work
    }
    Ok(taps.finish(transfer, path, ids).await)
}

/// Runs a store call with the recording's attributes: tagged `audio/wav` with the task and
/// recording ids, where the backend keeps metadata (S3, GCS, Azure). The local filesystem has no
/// place for them and refuses them, so there the call is made again without.
async fn with_attributes<T, F>(
    ids: &RecordingIds<'_>,
    call: impl Fn(Attributes) -> F,
) -> object_store::Result<T>
where
    F: std::future::Future<Output = object_store::Result<T>>,
{
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
    match call(attributes).await {
        Err(object_store::Error::NotImplemented { .. }) => call(Attributes::new()).await,
        other => other,
    }
}

/// Starts a multipart upload with the recording's attributes (see [`with_attributes`]).
async fn start_upload(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    ids: &RecordingIds<'_>,
) -> Result<Box<dyn object_store::MultipartUpload>> {
    let upload = with_attributes(ids, |attributes| {
        store.put_multipart_opts(
            path,
            PutMultipartOptions {
                attributes,
                ..Default::default()
            },
        )
    });
    Ok(upload.await?)
}

/// Stores a whole body in one `put` with the recording's attributes (see [`with_attributes`]).
async fn put_whole(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    ids: &RecordingIds<'_>,
    body: PutPayload,
) -> Result<()> {
    let put = with_attributes(ids, |attributes| {
        let opts = PutOptions {
            attributes,
            ..Default::default()
        };
        store.put_opts(path, body.clone(), opts)
    });
    put.await?;
    Ok(())
}

/// Bytes read from the start of a stored object to find its audio's duration: the header and
/// any metadata chunks before the samples fit in far less.
const HEADER_PROBE_BYTES: u64 = 64 * 1024;

/// Duration in ms of the audio in a stored object of `size` bytes, read from its header (one
/// ranged read). `None` when it is not a WAV the header can be read from.
pub async fn stored_duration_ms(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    size: u64,
) -> Result<Option<i64>> {
    if size == 0 {
        return Ok(None);
    }
    let head = store
        .get_range(path, 0..size.min(HEADER_PROBE_BYTES))
        .await?;
    Ok(facts::header_duration_ms(&head, size).ok())
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

    fn memory_store() -> Arc<dyn ObjectStore> {
        Arc::new(object_store::memory::InMemory::new())
    }

    /// Processes the object at `path` of `store` as a sync would for a recording already stored
    /// and recorded as `recorded` (default: as it is).
    async fn process_as(
        store: &Arc<dyn ObjectStore>,
        path: &Path,
        processing: Processing,
        recorded: Option<StoredAudio>,
    ) -> Result<Processed> {
        let http = net::MediaClient::new(net::MediaPolicy { loopback: true });
        let retry = RetryPolicy::default();
        let transfer = Transfer {
            http: &http,
            store,
            retry: &retry,
            part_size: 1024,
            processing: &processing,
            stop: None,
        };
        let ids = RecordingIds {
            task_id: "t",
            recording_id: "r",
        };
        let recorded = match recorded {
            Some(r) => r,
            None => hash_object(store, path).await?,
        };
        process_stored(&transfer, path, &ids, &recorded).await
    }

    async fn process(
        store: &Arc<dyn ObjectStore>,
        path: &Path,
        processing: Processing,
    ) -> Processed {
        process_as(store, path, processing, None).await.unwrap()
    }

    /// Two seconds of 8 kHz stereo: a tone on the first channel, silence on the second.
    fn stereo_wav() -> Vec<u8> {
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut out = std::io::Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut out, spec).unwrap();
        for i in 0..16_000 {
            let x = (i as f64 * 2.0 * std::f64::consts::PI * 440.0 / 8000.0).sin();
            w.write_sample((x * 16_000.0) as i16).unwrap();
            w.write_sample(0i16).unwrap();
        }
        w.finalize().unwrap();
        out.into_inner()
    }

    #[tokio::test]
    async fn stored_objects_that_are_not_wav_get_a_clear_verdict_not_a_crash() {
        let store = memory_store();
        let path = Path::from("audio/o/t/r.wav");
        store
            .put(&path, b"<html>AccessDenied</html>".to_vec().into())
            .await
            .unwrap();
        let processing = Processing {
            analyze: true,
            derive: vec![Derivative::Mono16k],
            ..Processing::default()
        };
        let processed = process(&store, &path, processing).await;
        let verdict = processed.facts.unwrap();
        assert!(
            matches!(verdict, Err(facts::FactsError::NotWav(_))),
            "{verdict:?}"
        );
        let [derived] = &processed.derived[..] else {
            panic!("one derivative asked for: {:?}", processed.derived)
        };
        assert!(
            matches!(&derived.result, Err(AudioError::Undecodable(m)) if m.contains("RIFF")),
            "{:?}",
            derived.result
        );
        assert!(
            store.head(&derived.path).await.is_err(),
            "no object for a failed derivative"
        );
        let hashed = hash_object(&store, &path).await.unwrap();
        assert_eq!(hashed.size, 25);
    }

    #[tokio::test]
    async fn derivatives_land_beside_the_original_with_their_size_and_checksum() {
        let store = memory_store();
        let path = Path::from("audio/o/t/r.wav");
        store.put(&path, stereo_wav().into()).await.unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let processing = Processing {
            analyze: false,
            // Any order, repeats ignored.
            derive: vec![
                Derivative::Channel2,
                Derivative::Mono16k,
                Derivative::Channel1,
                Derivative::Channel2,
            ],
            scratch_dir: Some(scratch.path().to_owned()),
        };
        let processed = process(&store, &path, processing).await;
        let left = std::fs::read_dir(scratch.path()).unwrap().count();
        assert_eq!(left, 0, "scratch files leave nothing behind");
        assert!(processed.facts.is_none());
        let names: Vec<String> = processed
            .derived
            .iter()
            .map(|d| d.path.to_string())
            .collect();
        assert_eq!(
            names,
            [
                "audio/o/t/r.mono16k.wav",
                "audio/o/t/r.ch1_16k.wav",
                "audio/o/t/r.ch2_16k.wav"
            ]
        );
        for d in &processed.derived {
            let (info, stored) = d.result.as_ref().unwrap();
            assert_eq!(
                (info.sample_rate, info.channels, info.frames),
                (16_000, 1, 32_000)
            );
            assert_eq!(&hash_object(&store, &d.path).await.unwrap(), stored);
            let bytes = store.get(&d.path).await.unwrap().bytes().await.unwrap();
            let reader = hound::WavReader::new(&bytes[..]).unwrap();
            assert_eq!(
                (reader.spec().sample_rate, reader.spec().channels),
                (16_000, 1)
            );
            assert_eq!(reader.duration(), 32_000);
            // Larger than one 1 KiB part: the multipart path is exercised.
            assert_eq!(stored.size, 44 + 64_000);
            // Each file holds what its name says: the tone on channel 1, silence on channel 2.
            let level = facts::analyze(&bytes[..]).unwrap().channel_stats[0].rms_dbfs;
            match d.kind {
                Derivative::Mono16k => assert!((level + 15.3).abs() < 0.5, "mix {level}"),
                Derivative::Channel1 => assert!((level + 9.3).abs() < 0.5, "ch1 {level}"),
                Derivative::Channel2 => assert_eq!(level, facts::DBFS_FLOOR, "ch2"),
            }
        }
    }

    #[tokio::test]
    async fn a_stored_object_changed_since_it_was_recorded_is_not_derived_from() {
        let store = memory_store();
        let path = Path::from("audio/o/t/r.wav");
        store.put(&path, stereo_wav().into()).await.unwrap();
        let recorded = StoredAudio {
            size: 44 + 64_000,
            sha256: "00".repeat(32),
        };
        let processing = Processing {
            analyze: true,
            derive: vec![Derivative::Mono16k],
            ..Processing::default()
        };
        let got = process_as(&store, &path, processing, Some(recorded)).await;
        assert!(matches!(got, Err(AudioError::Changed)), "{got:?}");
        let derived = derived_path(&path, Derivative::Mono16k);
        assert!(store.head(&derived).await.is_err(), "nothing stored");
    }

    /// Bytes 0..len in chunks of `chunk`.
    fn chunks(len: usize, chunk: usize) -> (Vec<u8>, Vec<Bytes>) {
        let body: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let parts = body.chunks(chunk).map(Bytes::copy_from_slice).collect();
        (body, parts)
    }

    #[tokio::test]
    async fn uploads_of_any_size_appear_whole_only_when_finished() {
        let store = memory_store();
        let ids = RecordingIds {
            task_id: "t",
            recording_id: "r",
        };
        // Part size 1 KiB: empty, under one part (one put), exactly one part, several parts.
        for len in [0, 700, 1024, 5000] {
            let path = Path::from(format!("audio/o/t/{len}.wav"));
            let (body, parts) = chunks(len, 300);
            let mut upload = Upload::start(&store, &path, &ids, 1024);
            for chunk in parts {
                upload.put(chunk).await.unwrap();
            }
            assert!(store.head(&path).await.is_err(), "{len}: visible early");
            let stored = upload.finish().await.unwrap();
            let got = store.get(&path).await.unwrap().bytes().await.unwrap();
            assert_eq!(got.as_ref(), &body[..], "{len}");
            assert_eq!(stored.size, len as u64);
            assert_eq!(stored.sha256, hex::encode(Sha256::digest(&body)));
            assert_eq!(hash_object(&store, &path).await.unwrap(), stored);
        }
        // An aborted upload leaves nothing, whichever way it was going.
        for len in [700, 5000] {
            let path = Path::from(format!("audio/o/t/aborted-{len}.wav"));
            let mut upload = Upload::start(&store, &path, &ids, 1024);
            for chunk in chunks(len, 300).1 {
                upload.put(chunk).await.unwrap();
            }
            upload.abort().await;
            assert!(
                store.head(&path).await.is_err(),
                "{len}: aborted but stored"
            );
        }
    }

    #[tokio::test]
    async fn a_tap_reads_every_byte_in_order_whether_or_not_it_started_early() {
        // Under the start threshold (handed over whole at the end) and over it (started
        // mid-stream, then fed chunk by chunk).
        for len in [0, 10_000, TAP_START_BYTES, 3 * TAP_START_BYTES + 17] {
            let (body, parts) = chunks(len, 64 * 1024 + 3);
            let mut tap = Tap::spawn(|mut reader: TapReader| {
                let mut got = Vec::new();
                std::io::Read::read_to_end(&mut reader, &mut got).map(|_| got)
            });
            for chunk in &parts {
                tap.feed(chunk).await;
            }
            let got = tap.finish().await.unwrap().unwrap();
            assert!(got == body, "{len}: {} bytes read back", got.len());
        }
        // A consumer that stops early does not hold up the stream.
        let mut tap = Tap::spawn(|_reader: TapReader| ());
        for chunk in &chunks(4 * TAP_START_BYTES, 64 * 1024).1 {
            tap.feed(chunk).await;
        }
        tap.finish().await.unwrap();
    }

    #[test]
    fn derivatives_are_named_after_the_original() {
        let original = Path::from("prefix/audio/o/t/r.wav");
        assert_eq!(
            derived_path(&original, Derivative::Mono16k).as_ref(),
            "prefix/audio/o/t/r.mono16k.wav"
        );
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
