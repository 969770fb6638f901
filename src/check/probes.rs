//! The checks that touch the world outside the API client: output store, scratch disk, clock.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions};
use url::Url;

use super::{Check, Class};
use crate::lake::Lake;

/// Put, read back, conditionally create (twice: the second must be refused) and delete under
/// `_check/` at the output, as a run's Parquet, audio and lease writes would.
pub async fn store_roundtrip(lake: &Lake, min_free_bytes: u64) -> Check {
    let id = uuid::Uuid::new_v4();
    let plain = lake.path(&format!("_check/{id}.txt"));
    let create = lake.path(&format!("_check/{id}.lease"));
    let store = lake.store();
    let result = probe(store.as_ref(), &plain, &create).await;
    // Clean up whatever got written, even after a failure.
    let _ = store.delete(&plain).await;
    let _ = store.delete(&create).await;
    if let Ok(url) = lake.url().join("_check/")
        && let Ok(dir) = url.to_file_path()
    {
        let _ = std::fs::remove_dir(dir); // local disk keeps empty folders; others have none
    }
    let works = format!(
        "put, get, conditional create and delete work at {}",
        lake.url()
    );
    let mib = |b: u64| b / (1024 * 1024);
    // A local lake's disk can fill up: say how much room is left (cloud stores have no limit
    // to read).
    let local = lake.url().to_file_path().ok();
    match (result, local.map(|dir| free_bytes(&dir))) {
        (Err(why), _) => Check::fail("store", Class::Failure, format!("{}: {why}", lake.url())),
        (Ok(()), None) => Check::pass("store", works),
        (Ok(()), Some(Ok(free))) if free >= min_free_bytes => {
            Check::pass("store", format!("{works}; {} MiB free", mib(free)))
        }
        (Ok(()), Some(Ok(free))) => Check::fail(
            "store",
            Class::Failure,
            format!(
                "{works}, but its disk has {} MiB free, less than the {} MiB wanted \
                 (`--lake-mib`): free space or move the lake before a run fills it",
                mib(free),
                mib(min_free_bytes)
            ),
        ),
        (Ok(()), Some(Err(e))) => Check::fail(
            "store",
            Class::Failure,
            format!("{works}, but its free space cannot be read: {e}"),
        ),
    }
}

async fn probe(
    store: &dyn ObjectStore,
    plain: &object_store::path::Path,
    create: &object_store::path::Path,
) -> Result<(), String> {
    let body = Bytes::from_static(b"wxcc check\n");
    store
        .put(plain, body.clone().into())
        .await
        .map_err(|e| format!("cannot write: {e}"))?;
    let read = store
        .get(plain)
        .await
        .map_err(|e| format!("cannot read back: {e}"))?
        .bytes()
        .await
        .map_err(|e| format!("cannot read back: {e}"))?;
    if read != body {
        return Err("read back different bytes than written".into());
    }
    let opts = || PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    store
        .put_opts(create, body.clone().into(), opts())
        .await
        .map_err(|e| format!("conditional create failed: {e}"))?;
    match store.put_opts(create, body.into(), opts()).await {
        Err(object_store::Error::AlreadyExists { .. }) => {}
        Ok(_) => {
            return Err(
                "a second conditional create succeeded: the store does not honour \
                 create-if-absent, so two runs could both take the org's lease"
                    .into(),
            );
        }
        Err(e) => return Err(format!("conditional create failed: {e}")),
    }
    store
        .delete(plain)
        .await
        .map_err(|e| format!("cannot delete: {e}"))?;
    Ok(())
}

/// Free space for non-root users on the file system holding `dir`.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let st = rustix::fs::statvfs(dir)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// The scratch directory exists, takes a file, and has at least `min_bytes` free.
pub fn scratch(dir: &Path, min_bytes: u64) -> Check {
    if let Err(e) = tempfile::tempfile_in(dir) {
        return Check::fail(
            "scratch",
            Class::Failure,
            format!("cannot create a file in {}: {e}", dir.display()),
        );
    }
    let mib = |b: u64| b / (1024 * 1024);
    match free_bytes(dir) {
        Ok(free) if free >= min_bytes => Check::pass(
            "scratch",
            format!("{} has {} MiB free", dir.display(), mib(free)),
        ),
        Ok(free) => Check::fail(
            "scratch",
            Class::Failure,
            format!(
                "{} has {} MiB free, less than the {} MiB wanted: free space or set \
                 WXCC_SCRATCH_DIR to a larger disk",
                dir.display(),
                mib(free),
                mib(min_bytes)
            ),
        ),
        Err(e) => Check::fail(
            "scratch",
            Class::Failure,
            format!("cannot read free space of {}: {e}", dir.display()),
        ),
    }
}

/// `server - local`, in whole seconds (an HTTP `Date` has one-second resolution).
pub fn clock_skew(local: DateTime<Utc>, server_date: &str) -> Option<chrono::Duration> {
    let server = DateTime::parse_from_rfc2822(server_date).ok()?;
    Some(server.with_timezone(&Utc) - local)
}

/// Compares the local clock with the API's `Date` header (one unauthenticated HEAD: any
/// status carries a `Date`). Token expiry, windows and the lease all read the local clock.
pub async fn clock_check(
    http: &reqwest::Client,
    base: &Url,
    now: fn() -> DateTime<Utc>,
    max_skew: Duration,
) -> Check {
    let before = now();
    let resp = match http.head(base.clone()).send().await {
        Ok(r) => r,
        Err(e) => {
            return Check::fail(
                "clock",
                Class::Failure,
                format!("cannot reach {base}: {}", chain(&e)),
            );
        }
    };
    let after = now();
    let local = before + (after - before) / 2;
    let Some(date) = resp.headers().get(reqwest::header::DATE) else {
        return Check::skip("clock", "the API sent no Date header to compare with");
    };
    let Some(skew) = date.to_str().ok().and_then(|d| clock_skew(local, d)) else {
        return Check::skip("clock", format!("unreadable Date header {date:?}"));
    };
    let secs = skew.num_seconds();
    if secs.unsigned_abs() > max_skew.as_secs() {
        Check::fail(
            "clock",
            Class::Failure,
            format!(
                "the local clock is {}s {} the API's: fix time sync (NTP); token expiry and \
                 the org lease depend on it",
                secs.abs(),
                if secs > 0 { "behind" } else { "ahead of" }
            ),
        )
    } else {
        Check::pass("clock", format!("within {}s of the API's Date", secs.abs()))
    }
}

/// An error and its sources on one line (reqwest's own message omits the cause).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(&format!(": {s}"));
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_is_server_minus_local_from_an_http_date() {
        let local = DateTime::parse_from_rfc3339("2026-12-02T17:18:07Z")
            .unwrap()
            .to_utc();
        let skew = clock_skew(local, "Wed, 02 Dec 2026 17:20:07 GMT").unwrap();
        assert_eq!(skew.num_seconds(), 120);
        assert!(clock_skew(local, "yesterday").is_none());
    }

    #[tokio::test]
    async fn store_probe_passes_on_memory_and_cleans_up() {
        let lake = Lake::open("memory://").unwrap();
        let check = store_roundtrip(&lake, 0).await;
        assert_eq!(check.status, super::super::Status::Pass, "{check:?}");
        use futures::TryStreamExt;
        let left: Vec<_> = lake.store().list(None).try_collect().await.unwrap();
        assert!(left.is_empty(), "{left:?}");
    }

    #[tokio::test]
    async fn a_local_lake_says_how_much_room_is_left_and_fails_when_too_little() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        let roomy = store_roundtrip(&lake, 1).await;
        assert_eq!(roomy.status, super::super::Status::Pass, "{roomy:?}");
        assert!(roomy.detail.ends_with(" MiB free"), "{roomy:?}");
        let cramped = store_roundtrip(&lake, u64::MAX).await;
        assert_eq!(cramped.status, super::super::Status::Fail, "{cramped:?}");
        assert!(cramped.detail.contains("less than the"), "{cramped:?}");
        assert!(cramped.detail.contains("--lake-mib"), "{cramped:?}");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "probe objects removed"
        );
    }
}
