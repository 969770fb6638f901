//! Sync into Azure Blob Storage as emulated by Azurite (npm) on a free loopback port.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use crate::s3::{free_port, sync_and_verify};
use crate::util::text;

/// Azurite's published development account (not a secret: it is in Microsoft's docs).
const ACCOUNT: &str = "devstoreaccount1";
const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The node_modules folder the test script installed Azurite into (`WXCC_TEST_NODE_MODULES`),
/// or `None` to skip locally; in CI a missing tool is a failure.
fn node_modules() -> Option<PathBuf> {
    match std::env::var("WXCC_TEST_NODE_MODULES") {
        Ok(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ if std::env::var_os("CI").is_some() => {
            panic!("WXCC_TEST_NODE_MODULES is not set: run the suite through scripts/test.sh")
        }
        _ => {
            eprintln!("skipping: WXCC_TEST_NODE_MODULES not set (scripts/test.sh sets it up)");
            None
        }
    }
}

struct Azurite {
    child: tokio::process::Child,
    endpoint: String,
    _data: tempfile::TempDir,
}

impl Azurite {
    async fn start(modules: &std::path::Path) -> Azurite {
        let port = free_port();
        let data = tempfile::tempdir().unwrap();
        let child = tokio::process::Command::new(modules.join(".bin/azurite-blob"))
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(data.path())
            .args(["--silent", "--skipApiVersionCheck"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("azurite starts");
        let endpoint = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Azurite {
                    child,
                    endpoint,
                    _data: data,
                };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("azurite did not come up on {endpoint}");
    }

    /// Containers cannot be created through object_store; Azure's own SDK does it.
    async fn create_container(&self, modules: &std::path::Path, name: &str) {
        let conn = format!(
            "DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};\
             BlobEndpoint={}/{ACCOUNT};",
            self.endpoint
        );
        let script = format!(
            "require('@azure/storage-blob').BlobServiceClient.fromConnectionString('{conn}')\
             .getContainerClient('{name}').create().then(() => process.exit(0), e => {{ console.error(e); process.exit(1) }})"
        );
        let out = tokio::process::Command::new("node")
            .args(["-e", &script])
            .env("NODE_PATH", modules)
            .output()
            .await
            .expect("node runs");
        assert!(
            out.status.success(),
            "create container: {}",
            text(&out.stderr)
        );
    }

    fn env(&self) -> HashMap<String, String> {
        HashMap::from([
            ("AZURE_STORAGE_USE_EMULATOR".into(), "true".into()),
            ("AZURITE_BLOB_STORAGE_URL".into(), self.endpoint.clone()),
            ("AZURE_STORAGE_ACCOUNT_NAME".into(), ACCOUNT.into()),
            ("AZURE_STORAGE_ACCOUNT_KEY".into(), KEY.into()),
        ])
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_into_azurite_stores_verified_audio() {
    let Some(modules) = node_modules() else {
        return;
    };
    let azurite = Azurite::start(&modules).await;
    azurite.create_container(&modules, "wxcc").await;
    sync_and_verify("az://wxcc/lake", azurite.env()).await;
}
