//! A small object with compare-and-swap: create-if-absent and update-if-unchanged.
//!
//! Object stores do it natively (`PutMode::Create` / `PutMode::Update` on the version read).
//! object_store's `LocalFileSystem` has no `PutMode::Update`, so on local disk the swap happens
//! under an exclusive OS lock on a sidecar `<file>.guard`, and the new content lands by rename.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, UpdateVersion};

use crate::sync::state::{Result, StateError};

/// The version of `lock.json` a conditional write is based on.
#[derive(Debug, Clone)]
pub(super) enum Version {
    Store(UpdateVersion),
    /// Local disk: the exact bytes read (every record differs in `expires` or `run_id`).
    Local(Vec<u8>),
}

#[derive(Debug)]
pub(super) enum CasError {
    /// The object exists (create) or is no longer the version given (update).
    Conflict,
    State(StateError),
}

impl From<object_store::Error> for CasError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. } => CasError::Conflict,
            object_store::Error::NotImplemented { operation, .. } => {
                CasError::State(StateError::NoConditionalWrites { operation })
            }
            e => CasError::State(e.into()),
        }
    }
}

/// One small object that supports compare-and-swap.
#[derive(Clone)]
pub(crate) enum LockCell {
    Store {
        store: Arc<dyn ObjectStore>,
        path: Path,
    },
    Local {
        file: PathBuf,
    },
}

impl LockCell {
    pub(super) fn display(&self) -> String {
        match self {
            LockCell::Store { path, .. } => path.to_string(),
            LockCell::Local { file } => file.display().to_string(),
        }
    }

    pub(super) async fn read(&self) -> Result<Option<(Vec<u8>, Version)>> {
        match self {
            LockCell::Store { store, path } => match store.get(path).await {
                Ok(got) => {
                    let version = UpdateVersion {
                        e_tag: got.meta.e_tag.clone(),
                        version: got.meta.version.clone(),
                    };
                    let bytes = got.bytes().await?.to_vec();
                    Ok(Some((bytes, Version::Store(version))))
                }
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e.into()),
            },
            LockCell::Local { file } => {
                let file = file.clone();
                blocking(move || match std::fs::read(&file) {
                    Ok(bytes) => Ok(Some((bytes.clone(), Version::Local(bytes)))),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(source) => Err(local_error(&file, source)),
                })
                .await
            }
        }
    }

    /// Writes `body` if there is no object yet (`expected: None`) or if it is still
    /// `expected`.
    pub(super) async fn write(
        &self,
        body: Vec<u8>,
        expected: Option<&Version>,
    ) -> std::result::Result<Version, CasError> {
        match self {
            LockCell::Store { store, path } => {
                let mode = match expected {
                    None => PutMode::Create,
                    Some(Version::Store(v)) => PutMode::Update(v.clone()),
                    Some(Version::Local(_)) => unreachable!("local version on an object store"),
                };
                let opts = PutOptions {
                    mode,
                    ..Default::default()
                };
                let put = store.put_opts(path, body.into(), opts).await?;
                Ok(Version::Store(put.into()))
            }
            LockCell::Local { file } => {
                let file = file.clone();
                let expected = expected.map(|v| match v {
                    Version::Local(bytes) => bytes.clone(),
                    Version::Store(_) => unreachable!("object store version on local disk"),
                });
                blocking(move || local_cas(&file, &body, expected.as_deref()))
                    .await
                    .map_err(|e| match e {
                        LocalCas::Conflict => CasError::Conflict,
                        LocalCas::Io(s) => CasError::State(s),
                    })
            }
        }
    }
}

async fn blocking<T: Send + 'static, E: Send + 'static + From<StateError>>(
    f: impl FnOnce() -> std::result::Result<T, E> + Send + 'static,
) -> std::result::Result<T, E> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(StateError::Corrupt {
            path: "lock.json".into(),
            reason: format!("local lock task failed: {e}"),
        }
        .into()),
    }
}

enum LocalCas {
    Conflict,
    Io(StateError),
}

impl From<StateError> for LocalCas {
    fn from(e: StateError) -> Self {
        LocalCas::Io(e)
    }
}

fn local_error(path: &std::path::Path, source: std::io::Error) -> StateError {
    StateError::Local {
        path: path.display().to_string(),
        source,
    }
}

/// Compare-and-swap of a local file, under an exclusive lock on `<file>.guard`: the new
/// content lands by rename, so readers never see half a record.
fn local_cas(
    file: &std::path::Path,
    body: &[u8],
    expected: Option<&[u8]>,
) -> std::result::Result<Version, LocalCas> {
    fn io(p: &std::path::Path) -> impl FnOnce(std::io::Error) -> LocalCas + '_ {
        move |e| LocalCas::Io(local_error(p, e))
    }
    let dir = file.parent().expect("lock file has a folder");
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let guard_path = file.with_extension("json.guard");
    let guard = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&guard_path)
        .map_err(io(&guard_path))?;
    guard.lock().map_err(io(&guard_path))?;
    let current = match std::fs::read(file) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(file)(e)),
    };
    if current.as_deref() != expected {
        return Err(LocalCas::Conflict);
    }
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io(dir))?;
    std::io::Write::write_all(&mut tmp, body).map_err(io(file))?;
    tmp.persist(file).map_err(|e| io(file)(e.error))?;
    drop(guard); // unlocks
    Ok(Version::Local(body.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    async fn conditional_writes_hold(cell: LockCell) {
        let v1 = cell.write(b"one".to_vec(), None).await.unwrap();
        assert!(matches!(
            cell.write(b"two".to_vec(), None).await,
            Err(CasError::Conflict)
        ));
        let v2 = cell.write(b"two".to_vec(), Some(&v1)).await.unwrap();
        assert!(matches!(
            cell.write(b"three".to_vec(), Some(&v1)).await,
            Err(CasError::Conflict)
        ));
        cell.write(b"three".to_vec(), Some(&v2)).await.unwrap();
        assert_eq!(cell.read().await.unwrap().unwrap().0, b"three");
    }

    #[tokio::test]
    async fn memory_store_writes_are_conditional() {
        conditional_writes_hold(LockCell::Store {
            store: Arc::new(InMemory::new()),
            path: Path::from("_state/org_id=o/lock.json"),
        })
        .await;
    }

    #[tokio::test]
    async fn local_disk_writes_are_conditional() {
        let dir = tempfile::tempdir().unwrap();
        conditional_writes_hold(LockCell::Local {
            file: dir.path().join("_state/org_id=o/lock.json"),
        })
        .await;
    }
}
