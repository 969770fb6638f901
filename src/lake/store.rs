//! Opening a lake location as an object store plus a root prefix.
//!
//! The store is always rooted at the bucket/container (or `/` for local disk) and the lake's
//! folder is kept as a path prefix. That is the same split DataFusion makes for a table URL
//! (`scheme://authority` selects the registered store, the URL path is the object prefix), so the
//! query layer can register [`Lake::store`] under [`Lake::url`] and list `<root>/<table>/`.

use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "aws")]
use object_store::aws::AmazonS3Builder;
#[cfg(feature = "azure")]
use object_store::azure::MicrosoftAzureBuilder;
#[cfg(feature = "gcp")]
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
#[cfg(any(feature = "aws", feature = "gcp", feature = "azure"))]
use object_store::signer::Signer;
use object_store::{ObjectStore, ObjectStoreScheme};
use url::Url;

use super::error::{LakeError, Result};

/// A lake root: where the tables (and the audio the manifest points at) live.
///
/// Cheap to clone; clones share the store (for `memory://`, clones see the same objects,
/// separate [`Lake::open`] calls do not).
#[derive(Debug, Clone)]
pub struct Lake {
    url: Url,
    store: Arc<dyn ObjectStore>,
    /// The same store as a URL signer, for backends that can pre-sign (S3, GCS, Azure).
    signer: Option<Arc<DynSigner>>,
    root: Path,
    /// Rows per partition file (see [`crate::lake::partition`]).
    max_file_rows: usize,
}

impl Lake {
    /// Opens `location`: a plain path (relative or absolute; created if missing), `file:///abs`,
    /// `s3://bucket[/prefix]`, `gs://bucket[/prefix]`, `az://container[/prefix]` (also `azure://`,
    /// `adl://`, `abfs[s]://container@account.dfs.core.windows.net/prefix`) or `memory://`.
    ///
    /// Cloud credentials, regions and endpoints come from each cloud's standard environment
    /// variables (`AWS_ENDPOINT`, `AWS_ALLOW_HTTP`, `AWS_REGION`, `GOOGLE_SERVICE_ACCOUNT`,
    /// `AZURE_STORAGE_ACCOUNT_NAME`, ...) through the object_store builders' `from_env()`.
    /// Building a cloud store does not touch the network; bad credentials show on first use.
    pub fn open(location: &str) -> Result<Lake> {
        Lake::open_with_options(location, std::iter::empty::<(&str, &str)>())
    }

    /// Like [`Lake::open`], with object_store config keys (e.g. `aws_endpoint`,
    /// `azure_storage_account_name`) applied on top of the environment, so configuration from
    /// flags or a config file can override env vars. Keys for local/memory lakes are ignored.
    pub fn open_with_options<I, K, V>(location: &str, options: I) -> Result<Lake>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        let unsupported = |reason: &str| LakeError::UnsupportedLocation {
            location: location.to_string(),
            reason: reason.to_string(),
        };
        let url = if location.trim().is_empty() {
            return Err(unsupported("empty location"));
        } else if location == "memory://" || location == "memory:" {
            // `memory://` parses with an empty host; object_store wants `memory:///`.
            Url::parse("memory:///").map_err(|e| unsupported(&e.to_string()))?
        } else if location.contains("://") {
            Url::parse(location).map_err(|e| unsupported(&e.to_string()))?
        } else {
            local_dir_url(location)?
        };

        let config_err = |source: object_store::Error| LakeError::StoreConfig {
            location: location.to_string(),
            source,
        };
        // A build without any cloud backend (cargo features) has no use for these.
        #[cfg(not(any(feature = "aws", feature = "gcp", feature = "azure")))]
        let _ = (options.into_iter().count(), config_err);
        let (store, signer): (Arc<dyn ObjectStore>, Option<Arc<DynSigner>>) = match url.scheme() {
            "file" => {
                let dir = url
                    .to_file_path()
                    .map_err(|()| unsupported("not an absolute local path"))?;
                std::fs::create_dir_all(&dir).map_err(|source| LakeError::LocalDir {
                    path: dir.display().to_string(),
                    source,
                })?;
                (Arc::new(LocalFileSystem::new()), None)
            }
            "memory" => (Arc::new(InMemory::new()), None),
            #[cfg(feature = "aws")]
            "s3" | "s3a" => {
                let mut b = AmazonS3Builder::from_env().with_url(url.as_str());
                for (k, v) in options {
                    b = b.with_config(parse_key(&k, "S3")?, v);
                }
                signing(Arc::new(b.build().map_err(config_err)?))
            }
            #[cfg(feature = "gcp")]
            "gs" => {
                let mut b = GoogleCloudStorageBuilder::from_env().with_url(url.as_str());
                for (k, v) in options {
                    b = b.with_config(parse_key(&k, "GCS")?, v);
                }
                signing(Arc::new(b.build().map_err(config_err)?))
            }
            #[cfg(feature = "azure")]
            "az" | "azure" | "adl" | "abfs" | "abfss" => {
                let mut b = MicrosoftAzureBuilder::from_env().with_url(url.as_str());
                for (k, v) in options {
                    b = b.with_config(parse_key(&k, "Azure")?, v);
                }
                signing(Arc::new(b.build().map_err(config_err)?))
            }
            // A cloud scheme whose backend was left out of this build (cargo features).
            #[cfg(not(feature = "aws"))]
            "s3" | "s3a" => return Err(unsupported(&missing_backend("aws"))),
            #[cfg(not(feature = "gcp"))]
            "gs" => return Err(unsupported(&missing_backend("gcp"))),
            #[cfg(not(feature = "azure"))]
            "az" | "azure" | "adl" | "abfs" | "abfss" => {
                return Err(unsupported(&missing_backend("azure")));
            }
            // https:// forms of S3/Azure put the bucket in the path, which would not match the
            // way DataFusion keys stores by scheme and host; ask for the canonical form instead.
            other => return Err(unsupported(&format!("scheme `{other}` is not supported"))),
        };
        let (_, root) = ObjectStoreScheme::parse(&url).map_err(|e| unsupported(&e.to_string()))?;

        // Canonical root URL: normalised prefix, always with a trailing slash.
        let mut root_url = url.clone();
        root_url.set_query(None);
        root_url.set_fragment(None);
        root_url.set_path(&if root.as_ref().is_empty() {
            "/".to_string()
        } else {
            format!("/{root}/")
        });
        tracing::debug!(lake = %root_url, "opened lake");
        Ok(Lake {
            url: root_url,
            store,
            signer,
            root,
            max_file_rows: super::partition::MAX_FILE_ROWS,
        })
    }

    /// Spreads each partition over files of at most `rows` rows (default
    /// [`MAX_FILE_ROWS`](super::partition::MAX_FILE_ROWS)).
    pub fn with_max_file_rows(mut self, rows: usize) -> Lake {
        self.max_file_rows = rows.max(1);
        self
    }

    /// Rows per partition file.
    pub fn max_file_rows(&self) -> usize {
        self.max_file_rows
    }

    /// Root URL with a trailing slash, e.g. `file:///abs/wxcc-data/` or `s3://bucket/prefix/`.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The object store, rooted at the bucket/container (or `/`), not at the lake folder:
    /// always combine with [`Lake::path`].
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Whether anything wxcc writes is at the root (a table, `_state/`, `_rejects/`, `audio/`):
    /// what tells a lake from a mistyped location, local or in a bucket, which would otherwise
    /// answer every query with nothing.
    pub async fn holds_a_lake(&self) -> Result<bool> {
        const OURS: [&str; 3] = ["_state", "_rejects", "audio"];
        let root = (!self.root.as_ref().is_empty()).then(|| self.root.clone());
        Ok(self
            .folders(root)
            .await?
            .iter()
            .any(|name| OURS.contains(&name.as_str()) || super::Table::from_name(name).is_some()))
    }

    /// The orgs with an `org_id=<org>` folder under `folder` (a table, `_state`), sorted.
    pub async fn org_ids(&self, folder: &str) -> Result<Vec<String>> {
        let mut orgs: Vec<String> = self
            .folders(Some(self.path(folder)))
            .await?
            .into_iter()
            .filter_map(|name| name.strip_prefix("org_id=").map(str::to_owned))
            .collect();
        orgs.sort();
        Ok(orgs)
    }

    /// Names of the folders directly under `prefix` (none when it does not exist).
    async fn folders(&self, prefix: Option<Path>) -> Result<Vec<String>> {
        match self.store.list_with_delimiter(prefix.as_ref()).await {
            Ok(listing) => Ok(listing
                .common_prefixes
                .iter()
                .filter_map(|p| p.filename().map(str::to_owned))
                .collect()),
            Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
            Err(source) => Err(LakeError::Store {
                path: prefix.map_or_else(|| self.url.to_string(), |p| self.uri(&p)),
                source,
            }),
        }
    }

    /// The object path of `relative` (`/`-separated) under the lake root. Each segment is
    /// encoded as one path part, so `..` cannot climb out of the root.
    pub fn path(&self, relative: &str) -> Path {
        let root = self.root.as_ref();
        if root.is_empty() {
            Path::from(relative)
        } else {
            Path::from(format!("{root}/{relative}"))
        }
    }

    /// The object path of a full URI produced by [`Lake::uri`] (e.g. a manifest `object_uri`),
    /// or `None` when the URI is not in this lake's store (another scheme, bucket or host).
    pub fn path_of_uri(&self, uri: &str) -> Option<Path> {
        let parsed = Url::parse(uri).ok()?;
        let same_store = parsed.scheme() == self.url.scheme()
            && parsed.host_str() == self.url.host_str()
            && parsed.port() == self.url.port();
        if !same_store {
            return None;
        }
        Path::from_url_path(parsed.path()).ok()
    }

    /// The object path of a recording (or derivative) URI in this lake: under the lake's own
    /// `audio/` prefix and of the object-key grammar `audio/<org>/<task>/<recording>[.<kind>].wav`
    /// with plain-token ids. `None` for anything else, so a manifest row pointing at another
    /// object (a table, state, another prefix) can never be pre-signed.
    pub fn audio_path_of_uri(&self, uri: &str) -> Option<Path> {
        let path = self.path_of_uri(uri)?;
        let root = self.root.as_ref();
        let rest = match root.is_empty() {
            true => path.as_ref(),
            false => path.as_ref().strip_prefix(root)?.strip_prefix('/')?,
        };
        let token = |s: &str| {
            !s.is_empty()
                && s.len() <= 128
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let [audio, org, task, file] = parts.as_slice() else {
            return None;
        };
        let stem = file.strip_suffix(".wav")?;
        let (recording, kind) = stem.split_once('.').unwrap_or((stem, "x"));
        let ok = *audio == "audio" && token(org) && token(task) && token(recording) && token(kind);
        ok.then_some(path)
    }

    /// A pre-signed HTTPS `GET` URL for `path`, valid for `expires_in`, that a transcription
    /// service can fetch without credentials. Computed locally from the store's credentials (no
    /// request is sent); S3, GCS and Azure only.
    pub async fn signed_get_url(&self, path: &Path, expires_in: Duration) -> Result<Url> {
        let signer = self
            .signer
            .as_ref()
            .ok_or_else(|| LakeError::SigningUnsupported {
                location: self.url.to_string(),
            })?;
        signer
            .signed_url(reqwest::Method::GET, path, expires_in)
            .await
            .map_err(|source| LakeError::Sign {
                path: path.to_string(),
                source,
            })
    }

    /// Whether this store's signed URLs carry a session token (S3 `X-Amz-Security-Token`, from
    /// STS or an instance role): such a URL stops working when the session ends, which may come
    /// before its own expiry. Signs one probe path locally to find out.
    pub async fn signs_with_session_credentials(&self) -> Result<bool> {
        let probe = self
            .signed_get_url(&self.path("audio"), Duration::from_secs(60))
            .await?;
        Ok(probe
            .query_pairs()
            .any(|(k, _)| k.eq_ignore_ascii_case("X-Amz-Security-Token")))
    }

    /// Whether [`Lake::signed_get_url`] can work for this store (S3, GCS or Azure).
    pub fn can_sign(&self) -> bool {
        self.signer.is_some()
    }

    /// Where an object lives on local disk, for a `file://` lake (`None` for any other store).
    pub fn local_file(&self, path: &Path) -> Option<std::path::PathBuf> {
        if self.url.scheme() != "file" {
            return None;
        }
        Url::parse(&self.uri(path)).ok()?.to_file_path().ok()
    }

    /// Full URI of an object (for the manifest), e.g. `s3://bucket/prefix/audio/<org>/<task>/<rec>.wav`.
    pub fn uri(&self, path: &Path) -> String {
        let mut u = self.url.clone();
        u.set_path(&format!("/{path}"));
        u.to_string()
    }
}

#[cfg(any(feature = "aws", feature = "gcp", feature = "azure"))]
type DynSigner = dyn Signer;

/// A build without cloud backends has no store that can pre-sign (nor object_store's signer).
#[cfg(not(any(feature = "aws", feature = "gcp", feature = "azure")))]
#[derive(Debug)]
enum DynSigner {}

#[cfg(not(any(feature = "aws", feature = "gcp", feature = "azure")))]
impl DynSigner {
    async fn signed_url(
        &self,
        _method: reqwest::Method,
        _path: &Path,
        _expires_in: Duration,
    ) -> object_store::Result<Url> {
        match *self {}
    }
}

/// One concrete cloud store, used both as the object store and as its URL signer.
#[cfg(any(feature = "aws", feature = "gcp", feature = "azure"))]
fn signing<S: ObjectStore + Signer>(
    store: Arc<S>,
) -> (Arc<dyn ObjectStore>, Option<Arc<dyn Signer>>) {
    (
        Arc::clone(&store) as Arc<dyn ObjectStore>,
        Some(store as Arc<dyn Signer>),
    )
}

/// Why a cloud URL cannot be opened by a build without its backend.
#[cfg(not(all(feature = "aws", feature = "gcp", feature = "azure")))]
fn missing_backend(feature: &str) -> String {
    format!(
        "this wxcc was built without the `{feature}` feature: rebuild with \
         `cargo install --path . --features {feature}`"
    )
}

/// `file://` URL of a plain local folder, creating it first so it can be canonicalised.
fn local_dir_url(location: &str) -> Result<Url> {
    let io_err = |source| LakeError::LocalDir {
        path: location.to_string(),
        source,
    };
    std::fs::create_dir_all(location).map_err(io_err)?;
    let abs = std::fs::canonicalize(location).map_err(io_err)?;
    Url::from_directory_path(&abs).map_err(|()| LakeError::UnsupportedLocation {
        location: location.to_string(),
        reason: "cannot turn the folder into a file:// URL".to_string(),
    })
}

#[cfg(any(feature = "aws", feature = "gcp", feature = "azure"))]
fn parse_key<K: AsRef<str>, T: std::str::FromStr>(key: &K, backend: &'static str) -> Result<T> {
    key.as_ref()
        .to_ascii_lowercase()
        .parse()
        .map_err(|_| LakeError::UnknownOption {
            backend,
            key: key.as_ref().to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_path_is_created_and_becomes_an_absolute_file_url() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let rel = tmp.path().join("nested/wxcc-data");
        // A relative spelling of the same folder, from the current directory.
        let cwd = std::env::current_dir().expect("cwd");
        let relative = pathdiff(&rel, &cwd);
        let lake = Lake::open(&relative).expect("open");
        assert!(rel.is_dir());
        assert_eq!(lake.url().scheme(), "file");
        assert!(
            lake.url().as_str().ends_with("/nested/wxcc-data/"),
            "{}",
            lake.url()
        );
        let p = lake.path("tasks/part-0.parquet");
        assert!(
            lake.uri(&p)
                .ends_with("/nested/wxcc-data/tasks/part-0.parquet")
        );
    }

    /// `target` relative to `base` using `..` segments (enough for two absolute paths).
    fn pathdiff(target: &std::path::Path, base: &std::path::Path) -> String {
        let t: Vec<_> = target.components().collect();
        let b: Vec<_> = base.components().collect();
        let common = t.iter().zip(&b).take_while(|(x, y)| x == y).count();
        let mut parts: Vec<String> = vec!["..".to_string(); b.len() - common];
        parts.extend(
            t[common..]
                .iter()
                .map(|c| c.as_os_str().to_string_lossy().into_owned()),
        );
        parts.join("/")
    }

    #[test]
    fn file_url_keeps_its_folder_and_adds_a_trailing_slash() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("lake");
        let url = Url::from_file_path(&dir).expect("url");
        let lake = Lake::open(url.as_str()).expect("open");
        assert!(dir.is_dir());
        assert_eq!(lake.url().as_str(), format!("{url}/"));
        let p = lake.path("audio/o/t/r.wav");
        assert_eq!(lake.uri(&p), format!("{url}/audio/o/t/r.wav"));
    }

    #[test]
    fn memory_lake_has_an_empty_root() {
        let lake = Lake::open("memory://").expect("open");
        assert_eq!(lake.url().as_str(), "memory:///");
        assert_eq!(lake.path("tasks/x").as_ref(), "tasks/x");
        assert_eq!(lake.uri(&lake.path("tasks/x")), "memory:///tasks/x");
    }

    #[test]
    fn s3_bucket_opens_without_network_and_keeps_its_prefix() {
        let opts = [
            ("aws_access_key_id", "dummy"),
            ("aws_secret_access_key", "dummy"),
            ("aws_region", "us-east-1"),
            ("aws_endpoint", "http://127.0.0.1:9"),
            ("aws_allow_http", "true"),
        ];
        let lake = Lake::open_with_options("s3://bucket/exports/wxcc", opts).expect("open");
        assert_eq!(lake.url().as_str(), "s3://bucket/exports/wxcc/");
        assert_eq!(lake.path("tasks").as_ref(), "exports/wxcc/tasks");
        assert_eq!(
            lake.uri(&lake.path("audio/a.wav")),
            "s3://bucket/exports/wxcc/audio/a.wav"
        );
        let bare = Lake::open_with_options("s3://bucket", opts).expect("open");
        assert_eq!(bare.url().as_str(), "s3://bucket/");
        // Plain `open` reads AWS_* from the environment; building still needs no network.
        assert!(Lake::open("s3://bucket").is_ok());
    }

    #[tokio::test]
    async fn s3_lake_pre_signs_get_urls_offline() {
        let opts = [
            ("aws_access_key_id", "AKIDEXAMPLE"),
            ("aws_secret_access_key", "dummy-secret"),
            ("aws_region", "us-east-1"),
            ("aws_endpoint", "http://127.0.0.1:9"),
            ("aws_allow_http", "true"),
        ];
        let lake = Lake::open_with_options("s3://bucket/wxcc", opts).expect("open");
        assert!(lake.can_sign());
        let uri = lake.uri(&lake.path("audio/o/t/r 1.wav"));
        let path = lake.path_of_uri(&uri).expect("own object");
        assert_eq!(path.as_ref(), "wxcc/audio/o/t/r 1.wav");
        let url = lake
            .signed_get_url(&path, Duration::from_secs(3600))
            .await
            .expect("signs without network");
        let s = url.as_str();
        assert!(
            s.starts_with("http://127.0.0.1:9/bucket/wxcc/audio/o/t/r%201.wav?"),
            "{s}"
        );
        assert!(
            s.contains("X-Amz-Signature=") && s.contains("X-Amz-Expires=3600"),
            "{s}"
        );
        assert!(!s.contains("dummy-secret"), "{s}");
    }

    #[tokio::test]
    async fn local_lake_refuses_to_pre_sign_with_a_clear_message() {
        let lake = Lake::open("memory://").expect("open");
        assert!(!lake.can_sign());
        let err = lake
            .signed_get_url(&lake.path("a.wav"), Duration::from_secs(60))
            .await
            .expect_err("must fail");
        assert!(
            err.to_string()
                .contains("pre-signed URLs need an S3, GCS or Azure store"),
            "{err}"
        );
    }

    #[test]
    fn uri_from_another_store_has_no_path_in_this_lake() {
        let lake = Lake::open_with_options("s3://bucket/wxcc", [("aws_region", "us-east-1")])
            .expect("open");
        assert!(lake.path_of_uri("s3://other/wxcc/audio/a.wav").is_none());
        assert!(lake.path_of_uri("gs://bucket/wxcc/audio/a.wav").is_none());
        assert!(lake.path_of_uri("not a uri").is_none());
    }

    #[test]
    fn only_recordings_under_the_own_audio_prefix_can_be_signed() {
        let lake = Lake::open_with_options("s3://bucket/root", [("aws_region", "us-east-1")])
            .expect("open");
        let ok = "s3://bucket/root/audio/org-1/task_2/rec3.wav";
        assert_eq!(
            lake.audio_path_of_uri(ok).unwrap().as_ref(),
            "root/audio/org-1/task_2/rec3.wav"
        );
        assert!(
            lake.audio_path_of_uri("s3://bucket/root/audio/o/t/r.mono16k.wav")
                .is_some()
        );
        for bad in [
            "s3://bucket/root/tasks/org_id=o/date=2026-01-01/part-0.parquet",
            "s3://bucket/root/_state/org_id=o/watermark.json",
            "s3://bucket/other/audio/o/t/r.wav",
            "s3://bucket/root/audio/o/t/r.wav.json",
            "s3://bucket/root/audio/o/t/x/r.wav",
            "s3://bucket/root/audio/o/t/r%2Fx.wav",
            "s3://bucket/root/audio/o/../r.wav",
            "s3://other/root/audio/o/t/r.wav",
        ] {
            assert!(lake.audio_path_of_uri(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn azure_container_opens_with_an_account_option() {
        let opts = [
            ("azure_storage_account_name", "devstoreaccount1"),
            ("azure_storage_use_emulator", "true"),
        ];
        let lake = Lake::open_with_options("az://recordings/wxcc", opts).expect("open");
        assert_eq!(lake.url().as_str(), "az://recordings/wxcc/");
    }

    #[test]
    fn unknown_store_option_is_named_in_the_error() {
        let err = Lake::open_with_options("s3://bucket", [("aws_colour", "blue")])
            .expect_err("must fail");
        assert!(err.to_string().contains("aws_colour"), "{err}");
    }

    #[test]
    fn unsupported_scheme_error_lists_the_supported_ones() {
        let err = Lake::open("ftp://host/dir").expect_err("must fail");
        let msg = err.to_string();
        assert!(msg.contains("ftp"), "{msg}");
        for s in ["s3://", "gs://", "az://", "file://", "memory://"] {
            assert!(msg.contains(s), "{msg} lacks {s}");
        }
        assert!(Lake::open("https://example.com/x").is_err());
    }

    #[test]
    fn path_segments_cannot_climb_out_of_the_root() {
        let lake = Lake::open_with_options("s3://bucket/root", [("aws_region", "us-east-1")])
            .expect("open");
        let p = lake.path("../../etc/passwd");
        assert!(p.as_ref().starts_with("root/"), "{p}");
        assert!(!p.parts().any(|part| part.as_ref() == ".."));
    }
}
