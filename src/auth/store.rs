//! The token store: one small JSON file per Integration client id and organization.
//!
//! Invariants, each enforced here and nowhere else:
//! - the directory is private (0700; an existing one is tightened or refused) and files are 0600;
//! - writes are atomic (temp file in the same directory, fsync, rename, fsync of the directory);
//! - writes need a [`StoreLock`], an exclusive lock on a sibling `.lock` file, so two `wxcc`
//!   processes never refresh at the same time; the holder re-reads the file before deciding;
//! - a file that cannot be decoded with the configured key (or without one) is never
//!   overwritten: the error says what to fix and the file stays as it was;
//! - with a key, the tokens are sealed with XChaCha20-Poly1305 and a random nonce per write;
//!   the file name is authenticated too, so a file cannot be swapped for another client's.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use secrecy::zeroize::Zeroizing;
use sha2::{Digest, Sha256};

use super::TokenSet;
pub use super::sealed::StoreKey;
use super::sealed::{self, FormatError};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "token directory {} is accessible by other users (mode {mode:03o}) and could not be \
         made private: `chmod 700` it or set WXCC_TOKEN_DIR to a private directory",
        path.display()
    )]
    Insecure { path: PathBuf, mode: u32 },
    #[error(
        "refusing token directory {}: it is {reason}; point WXCC_TOKEN_DIR at a directory of \
         your own (it is never chmodded for you)",
        path.display()
    )]
    UnsafeDir { path: PathBuf, reason: &'static str },
    #[error(
        "bad token-store key ({reason}): expected the base64 encoding of 32 random bytes, \
         e.g. from `openssl rand -base64 32`"
    )]
    BadKey { reason: &'static str },
    #[error(
        "cannot decrypt token store {}: wrong WXCC_TOKEN_KEY? The file was left untouched; \
         use the key it was written with, or `wxcc auth logout` and log in again",
        path.display()
    )]
    WrongKey { path: PathBuf },
    #[error(
        "token store {} is encrypted: set WXCC_TOKEN_KEY or WXCC_TOKEN_KEY_FILE to the key it \
         was written with",
        path.display()
    )]
    NeedsKey { path: PathBuf },
    #[error(
        "token store {} is not encrypted, but a token-store key is configured (WXCC_TOKEN_KEY \
         or token_key_file): refusing it, as a plaintext file where an encrypted one belongs \
         may have been put there by someone else. If you wrote it yourself before setting the \
         key, encrypt it once with `wxcc auth encrypt`; otherwise remove it with `wxcc auth \
         logout` and run `wxcc auth login` again",
        path.display()
    )]
    PlainWithKey { path: PathBuf },
    #[error(
        "token store {} is unreadable ({reason}); remove it with `wxcc auth logout` and run \
         `wxcc auth login` again",
        path.display()
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "several token stores in {} could be meant ({candidates}): set WXCC_CLIENT_ID and \
         WXCC_ORG_ID to pick one",
        dir.display()
    )]
    Ambiguous { dir: PathBuf, candidates: String },
    #[error(
        "organization id {0:?} cannot name a token file: expected letters, digits and '-' only"
    )]
    BadOrg(String),
}

impl StoreError {
    /// Errors only the user's configuration can fix (exit code 2), as opposed to I/O failures.
    pub fn is_usage(&self) -> bool {
        !matches!(self, StoreError::Io { .. })
    }

    pub(super) fn io(
        action: &'static str,
        path: &Path,
    ) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.to_owned();
        move |source| StoreError::Io {
            action,
            path,
            source,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What the store holds for one client and organization.
#[derive(Clone, Debug, Default)]
pub struct StoredTokens {
    pub client_id: String,
    pub org_id: Option<String>,
    pub tokens: TokenSet,
    /// Only when the user imported it with `--store-client-secret`; otherwise the secret comes
    /// from WXCC_CLIENT_SECRET each run.
    pub client_secret: Option<SecretString>,
    /// Bumped on every write; a process that sees a different number than it last read knows
    /// another process refreshed in between.
    pub generation: u64,
    pub updated_at: Option<DateTime<Utc>>,
}

/// Proof that the caller holds the store's exclusive lock; released on drop.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

/// The file of one client id + organization.
#[derive(Debug, Clone)]
pub struct TokenStore {
    dir: PathBuf,
    path: PathBuf,
    lock_path: PathBuf,
    key: Option<StoreKey>,
    stem: String,
}

/// `<sha256(client_id) hex, first 16>` — the client id is not secret, but file names end up in
/// logs and listings, and a hash keeps them short and uniform.
fn client_hash(client_id: &str) -> String {
    hex::encode(Sha256::digest(client_id.as_bytes()))[..16].to_owned()
}

/// The org part of a file name; `default` when the organization is unknown.
fn org_part(org_id: Option<&str>) -> Result<String> {
    match org_id {
        None => Ok("default".to_owned()),
        Some(org) => {
            let ok = !org.is_empty()
                && org.len() <= 64
                && org.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            ok.then(|| org.to_ascii_lowercase())
                .ok_or_else(|| StoreError::BadOrg(org.to_owned()))
        }
    }
}

impl TokenStore {
    /// The store for `client_id` in `org_id` (whether or not its file exists yet).
    pub fn open(
        dir: &Path,
        key: Option<StoreKey>,
        client_id: &str,
        org_id: Option<&str>,
    ) -> Result<TokenStore> {
        let stem = format!("{}-{}", client_hash(client_id), org_part(org_id)?);
        Ok(TokenStore::at(dir, stem, key))
    }

    fn at(dir: &Path, stem: String, key: Option<StoreKey>) -> TokenStore {
        TokenStore {
            dir: dir.to_owned(),
            path: dir.join(format!("{stem}.json")),
            lock_path: dir.join(format!("{stem}.lock")),
            key,
            stem,
        }
    }

    /// The existing store for the configured client and org. Without an org, the client's only
    /// store; without a client id, the directory's only store. `None` when there is none.
    pub fn find(
        dir: &Path,
        key: Option<StoreKey>,
        client_id: Option<&str>,
        org_id: Option<&str>,
    ) -> Result<Option<TokenStore>> {
        if let (Some(client), Some(_)) = (client_id, org_id) {
            let store = TokenStore::open(dir, key, client, org_id)?;
            return Ok(store.path.is_file().then_some(store));
        }
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io("list", dir)(e)),
        };
        let prefix = client_id.map(|c| format!("{}-", client_hash(c)));
        let suffix = org_id.map(|o| org_part(Some(o))).transpose()?;
        let mut stems: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| !name.starts_with('.'))
            .filter_map(|name| name.strip_suffix(".json").map(str::to_owned))
            .filter(|stem| prefix.as_ref().is_none_or(|p| stem.starts_with(p.as_str())))
            .filter(|stem| {
                suffix
                    .as_ref()
                    .is_none_or(|o| stem.split_once('-').is_some_and(|(_, org)| org == o))
            })
            .collect();
        stems.sort();
        match stems.len() {
            0 => Ok(None),
            1 => Ok(Some(TokenStore::at(dir, stems.remove(0), key))),
            _ => Err(StoreError::Ambiguous {
                dir: dir.to_owned(),
                candidates: stems
                    .iter()
                    .map(|s| format!("{s}.json"))
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when writes will be encrypted (a key is configured).
    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }

    /// Whether the file on disk is encrypted; `None` when there is no file.
    pub fn encrypted_on_disk(&self) -> Result<Option<bool>> {
        let Some(bytes) = self.read_bytes()? else {
            return Ok(None);
        };
        sealed::is_sealed(&bytes)
            .map(Some)
            .map_err(|e| self.format_error(e))
    }

    /// Reads and decodes the file; `None` when there is none.
    pub fn read(&self) -> Result<Option<StoredTokens>> {
        let Some(bytes) = self.read_bytes()? else {
            return Ok(None);
        };
        sealed::decode(&bytes, self.key.as_ref(), &self.aad())
            .map(Some)
            .map_err(|e| self.format_error(e))
    }

    fn read_bytes(&self) -> Result<Option<Zeroizing<Vec<u8>>>> {
        match std::fs::read(&self.path) {
            Ok(b) => Ok(Some(Zeroizing::new(b))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io("read", &self.path)(e)),
        }
    }

    fn format_error(&self, e: FormatError) -> StoreError {
        let path = self.path.clone();
        match e {
            FormatError::NeedsKey => StoreError::NeedsKey { path },
            FormatError::WrongKey => StoreError::WrongKey { path },
            FormatError::PlainWithKey => StoreError::PlainWithKey { path },
            FormatError::Corrupt(reason) => StoreError::Corrupt { path, reason },
        }
    }

    /// Authenticated with the ciphertext: the file name, so a sealed file cannot be passed off
    /// as another client's or org's.
    fn aad(&self) -> String {
        sealed::aad(&self.stem)
    }

    /// Takes the exclusive cross-process lock, creating the private directory if needed.
    /// Blocks while another process holds it.
    pub fn lock_blocking(&self) -> Result<StoreLock> {
        ensure_private_dir(&self.dir)?;
        let file = private_options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.lock_path)
            .map_err(StoreError::io("open the lock file", &self.lock_path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                tracing::info!(path = %self.lock_path.display(), "waiting for another wxcc process to finish with the token store");
                file.lock()
                    .map_err(StoreError::io("lock", &self.lock_path))?;
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StoreError::io("lock", &self.lock_path)(e));
            }
        }
        Ok(StoreLock { _file: file })
    }

    /// [`TokenStore::lock_blocking`] off the async runtime.
    pub async fn lock(&self) -> Result<StoreLock> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.lock_blocking())
            .await
            .map_err(|e| StoreError::Io {
                action: "lock",
                path: self.lock_path.clone(),
                source: std::io::Error::other(e.to_string()),
            })?
    }

    /// Replaces the file atomically with `stored`, whose generation is bumped and written back.
    /// Refuses to replace a file it cannot decode (wrong or missing key, corrupt): the error
    /// names the fix, and the file stays as it was.
    pub fn write(&self, lock: &StoreLock, stored: &mut StoredTokens) -> Result<()> {
        let previous = self.read()?;
        self.replace(lock, previous, stored)
    }

    /// Seals a plaintext file with the configured key, once, at the user's request (a plain
    /// file is otherwise refused while a key is set). Returns false when there is nothing to
    /// do: no file, or one already sealed with this key (a wrong key is still an error).
    pub fn encrypt(&self, lock: &StoreLock) -> Result<bool> {
        if self.key.is_none() {
            return Err(StoreError::BadKey {
                reason: "none configured; set WXCC_TOKEN_KEY or token_key_file",
            });
        }
        let Some(bytes) = self.read_bytes()? else {
            return Ok(false);
        };
        if sealed::is_sealed(&bytes).map_err(|e| self.format_error(e))? {
            self.read()?;
            return Ok(false);
        }
        let plain = sealed::decode_plain(&bytes).map_err(|e| self.format_error(e))?;
        let mut stored = plain.clone();
        self.replace(lock, Some(plain), &mut stored)?;
        Ok(true)
    }

    /// Writes `stored` over the file whose decoded content was `previous`.
    fn replace(
        &self,
        _lock: &StoreLock,
        previous: Option<StoredTokens>,
        stored: &mut StoredTokens,
    ) -> Result<()> {
        if let Some(prev) = &previous
            && prev.client_id != stored.client_id
        {
            return Err(StoreError::Corrupt {
                path: self.path.clone(),
                reason: "it belongs to another client id".into(),
            });
        }
        stored.generation = previous.map_or(0, |p| p.generation).max(stored.generation) + 1;
        stored.updated_at = Some(Utc::now());
        let bytes = sealed::encode(stored, self.key.as_ref(), &self.aad())
            .map_err(|e| self.format_error(e))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{}.", self.stem))
            .suffix(".tmp")
            .tempfile_in(&self.dir)
            .map_err(StoreError::io("create a temporary file in", &self.dir))?;
        set_private(tmp.path(), 0o600)?;
        tmp.write_all(&bytes)
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(StoreError::io("write", tmp.path()))?;
        tmp.persist(&self.path)
            .map_err(|e| StoreError::io("replace", &self.path)(e.error))?;
        sync_dir(&self.dir)?;
        tracing::debug!(path = %self.path.display(), generation = stored.generation, encrypted = self.key.is_some(), "token store written");
        Ok(())
    }

    /// Deletes the file (the lock file stays: removing it could let two processes hold
    /// "the" lock on different inodes). Returns whether there was a file.
    pub fn delete(&self, _lock: &StoreLock) -> Result<bool> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => {
                sync_dir(&self.dir)?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StoreError::io("delete", &self.path)(e)),
        }
    }
}

#[cfg(unix)]
fn private_options() -> OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = OpenOptions::new();
    o.mode(0o600);
    o
}

#[cfg(not(unix))]
fn private_options() -> OpenOptions {
    OpenOptions::new()
}

/// Creates `dir` (0700) or checks an existing one: a symlink, a directory owned by someone
/// else or a sticky (shared, like /tmp) directory is refused untouched; a group/world-accessible
/// directory of our own is tightened to 0700.
fn ensure_private_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
        if let Ok(meta) = std::fs::symlink_metadata(dir) {
            let unsafe_dir = |reason| StoreError::UnsafeDir {
                path: dir.to_owned(),
                reason,
            };
            if meta.file_type().is_symlink() {
                return Err(unsafe_dir("a symbolic link"));
            }
            if meta.uid() != rustix::process::geteuid().as_raw() {
                return Err(unsafe_dir("owned by another user"));
            }
            if meta.mode() & 0o1000 != 0 {
                return Err(unsafe_dir("sticky (a shared directory such as /tmp)"));
            }
        }
        if !dir.is_dir() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(StoreError::io("create the token directory", dir))?;
        }
        let mode = std::fs::metadata(dir)
            .map_err(StoreError::io("inspect", dir))?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(
                |_| StoreError::Insecure {
                    path: dir.to_owned(),
                    mode,
                },
            )?;
            tracing::warn!(path = %dir.display(), was = format!("{mode:03o}"), "token directory was accessible by other users; tightened to 700");
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir).map_err(StoreError::io("create the token directory", dir))
    }
}

#[cfg(unix)]
fn set_private(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(StoreError::io("set permissions on", path))
}

#[cfg(not(unix))]
fn set_private(_path: &Path, _mode: u32) -> Result<()> {
    Ok(())
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(StoreError::io("sync", dir))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
