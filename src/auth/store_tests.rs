use std::time::Duration;

use secrecy::ExposeSecret;

use super::*;

const KEY_A: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="; // bytes 0..32
const KEY_B: &str = "//////////////////////////////////////////8="; // 0xff × 32

fn key(b64: &str) -> Option<StoreKey> {
    Some(StoreKey::from_base64(b64).unwrap())
}

fn sample(generation: u64) -> StoredTokens {
    StoredTokens {
        client_id: "Cclient".into(),
        org_id: Some("org-1".into()),
        tokens: TokenSet {
            access_token: Some(SecretString::from("sekrit-access")),
            expires_at: Some(Utc::now() + chrono::Duration::hours(12)),
            lifetime: Some(Duration::from_secs(43_199)),
            refresh_token: Some(SecretString::from("sekrit-refresh")),
            refresh_expires_at: Some(Utc::now() + chrono::Duration::days(90)),
            scope: Some("cjp:config_read".into()),
        },
        client_secret: None,
        generation,
        updated_at: None,
    }
}

fn write(store: &TokenStore, s: &mut StoredTokens) -> Result<()> {
    let lock = store.lock_blocking()?;
    store.write(&lock, s)
}

#[test]
fn plain_round_trip_keeps_every_field_and_bumps_the_generation() {
    let dir = tempfile::tempdir().unwrap();
    let store = TokenStore::open(&dir.path().join("t"), None, "Cclient", Some("org-1")).unwrap();
    assert!(store.read().unwrap().is_none());
    let mut s = sample(0);
    write(&store, &mut s).unwrap();
    assert_eq!(s.generation, 1);
    write(&store, &mut s).unwrap();
    let back = store.read().unwrap().unwrap();
    assert_eq!(back.generation, 2);
    assert_eq!(back.client_id, "Cclient");
    assert_eq!(back.org_id.as_deref(), Some("org-1"));
    let t = back.tokens;
    assert_eq!(t.access_token.unwrap().expose_secret(), "sekrit-access");
    assert_eq!(t.refresh_token.unwrap().expose_secret(), "sekrit-refresh");
    assert_eq!(t.lifetime, Some(Duration::from_secs(43_199)));
    assert_eq!(t.scope.as_deref(), Some("cjp:config_read"));
    assert_eq!(store.encrypted_on_disk().unwrap(), Some(false));
    let name = store.path().file_name().unwrap().to_str().unwrap();
    assert_eq!(name, format!("{}-org-1.json", client_hash("Cclient")));
    assert_eq!(name.len(), 16 + "-org-1.json".len());
}

#[test]
fn encrypted_round_trip_hides_tokens_and_uses_a_fresh_nonce_per_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = TokenStore::open(dir.path(), key(KEY_A), "Cclient", Some("org-1")).unwrap();
    let mut s = sample(0);
    write(&store, &mut s).unwrap();
    let first = std::fs::read_to_string(store.path()).unwrap();
    write(&store, &mut s).unwrap();
    let second = std::fs::read_to_string(store.path()).unwrap();
    for text in [&first, &second] {
        assert!(!text.contains("sekrit"), "{text}");
        assert!(text.contains("xchacha20poly1305"));
    }
    let nonce = |t: &str| serde_json::from_str::<serde_json::Value>(t).unwrap()["nonce"].clone();
    assert_ne!(nonce(&first), nonce(&second));
    let back = store.read().unwrap().unwrap();
    assert_eq!(
        back.tokens.refresh_token.unwrap().expose_secret(),
        "sekrit-refresh"
    );
    assert_eq!(store.encrypted_on_disk().unwrap(), Some(true));
}

#[test]
fn wrong_or_missing_key_is_a_clear_error_and_the_file_is_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let good = TokenStore::open(dir.path(), key(KEY_A), "Cclient", Some("org-1")).unwrap();
    write(&good, &mut sample(0)).unwrap();
    let before = std::fs::read(good.path()).unwrap();

    let wrong = TokenStore::open(dir.path(), key(KEY_B), "Cclient", Some("org-1")).unwrap();
    let err = wrong.read().unwrap_err();
    assert!(matches!(err, StoreError::WrongKey { .. }), "{err}");
    assert!(err.to_string().contains("wrong WXCC_TOKEN_KEY?"), "{err}");
    assert!(err.is_usage());
    let err = write(&wrong, &mut sample(0)).unwrap_err();
    assert!(matches!(err, StoreError::WrongKey { .. }), "{err}");

    let none = TokenStore::open(dir.path(), None, "Cclient", Some("org-1")).unwrap();
    let err = write(&none, &mut sample(0)).unwrap_err();
    assert!(matches!(err, StoreError::NeedsKey { .. }), "{err}");
    assert_eq!(std::fs::read(good.path()).unwrap(), before);
}

#[test]
fn a_sealed_file_cannot_be_passed_off_as_another_clients() {
    let dir = tempfile::tempdir().unwrap();
    let a = TokenStore::open(dir.path(), key(KEY_A), "Cone", Some("org-1")).unwrap();
    write(&a, &mut sample(0)).unwrap();
    let b = TokenStore::open(dir.path(), key(KEY_A), "Ctwo", Some("org-1")).unwrap();
    std::fs::copy(a.path(), b.path()).unwrap();
    assert!(matches!(b.read(), Err(StoreError::WrongKey { .. })));
}

#[test]
fn plain_file_is_refused_when_a_key_is_set_until_explicitly_encrypted() {
    let dir = tempfile::tempdir().unwrap();
    let plain = TokenStore::open(dir.path(), None, "Cclient", None).unwrap();
    write(&plain, &mut sample(0)).unwrap();
    let before = std::fs::read(plain.path()).unwrap();

    // A key is configured: the plaintext file is neither read nor silently rewritten.
    let keyed = TokenStore::open(dir.path(), key(KEY_A), "Cclient", None).unwrap();
    let err = keyed.read().unwrap_err();
    assert!(matches!(err, StoreError::PlainWithKey { .. }), "{err}");
    assert!(err.is_usage());
    let msg = err.to_string();
    assert!(
        msg.contains("not encrypted") && msg.contains("wxcc auth encrypt"),
        "{msg}"
    );
    assert!(!msg.contains("sekrit"), "{msg}");
    assert!(matches!(
        write(&keyed, &mut sample(0)),
        Err(StoreError::PlainWithKey { .. })
    ));
    assert_eq!(std::fs::read(plain.path()).unwrap(), before);

    // The user's explicit, one-time encryption keeps the tokens and seals them.
    let lock = keyed.lock_blocking().unwrap();
    assert!(keyed.encrypt(&lock).unwrap());
    drop(lock);
    assert_eq!(keyed.encrypted_on_disk().unwrap(), Some(true));
    let back = keyed.read().unwrap().unwrap();
    assert_eq!(
        back.tokens.refresh_token.unwrap().expose_secret(),
        "sekrit-refresh"
    );
    assert_eq!(back.generation, 2);
    assert!(
        !std::fs::read_to_string(keyed.path())
            .unwrap()
            .contains("sekrit")
    );
    // Encrypting twice does nothing; with another key it is the usual wrong-key error.
    let lock = keyed.lock_blocking().unwrap();
    assert!(!keyed.encrypt(&lock).unwrap());
    drop(lock);
    let wrong = TokenStore::open(dir.path(), key(KEY_B), "Cclient", None).unwrap();
    let lock = wrong.lock_blocking().unwrap();
    assert!(matches!(
        wrong.encrypt(&lock),
        Err(StoreError::WrongKey { .. })
    ));
    drop(lock);
    // Without any file there is nothing to do.
    let other = TokenStore::open(dir.path(), key(KEY_A), "Cother", None).unwrap();
    let lock = other.lock_blocking().unwrap();
    assert!(!other.encrypt(&lock).unwrap());
}

#[test]
fn bad_keys_are_refused_with_the_expected_format() {
    for bad in ["not base64!!", "AAEC"] {
        let err = StoreKey::from_base64(bad).unwrap_err().to_string();
        assert!(err.contains("32 random bytes"), "{err}");
    }
    assert!(StoreKey::from_base64(&format!(" {KEY_A}\n")).is_ok());
    assert!(!format!("{:?}", key(KEY_A)).contains("AAEC"));
}

#[cfg(unix)]
#[test]
fn files_are_0600_in_a_0700_directory_and_a_loose_directory_is_tightened() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("a").join("tokens");
    let store = TokenStore::open(&dir, None, "Cclient", None).unwrap();
    write(&store, &mut sample(0)).unwrap();
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(store.path()), 0o600);
    assert_eq!(mode(&dir.join(format!("{}.lock", store.stem))), 0o600);

    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    write(&store, &mut sample(0)).unwrap();
    assert_eq!(mode(&dir), 0o700);
    // No temporary files are left behind.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn find_picks_the_only_store_and_refuses_to_guess_between_several() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(TokenStore::find(d, None, None, None).unwrap().is_none());
    assert!(
        TokenStore::find(&d.join("absent"), None, None, None)
            .unwrap()
            .is_none()
    );
    let one = TokenStore::open(d, None, "Cone", Some("org-1")).unwrap();
    write(&one, &mut sample(0)).unwrap();
    let found = TokenStore::find(d, None, None, None).unwrap().unwrap();
    assert_eq!(found.path(), one.path());
    assert_eq!(
        TokenStore::find(d, None, Some("Cone"), None)
            .unwrap()
            .unwrap()
            .path(),
        one.path()
    );
    assert!(
        TokenStore::find(d, None, Some("Cother"), None)
            .unwrap()
            .is_none()
    );
    assert!(
        TokenStore::find(d, None, Some("Cone"), Some("org-2"))
            .unwrap()
            .is_none()
    );
    let two = TokenStore::open(d, None, "Cone", Some("org-2")).unwrap();
    let mut s = sample(0);
    s.client_id = "Cone".into();
    write(&two, &mut s).unwrap();
    let err = TokenStore::find(d, None, Some("Cone"), None).unwrap_err();
    assert!(matches!(err, StoreError::Ambiguous { .. }), "{err}");
    assert_eq!(
        TokenStore::find(d, None, None, Some("org-2"))
            .unwrap()
            .unwrap()
            .path(),
        two.path()
    );
    assert!(matches!(
        TokenStore::open(d, None, "C", Some("../etc")),
        Err(StoreError::BadOrg(_))
    ));
}

#[test]
fn the_lock_excludes_a_second_holder_until_released() {
    let dir = tempfile::tempdir().unwrap();
    let store = TokenStore::open(dir.path(), None, "Cclient", None).unwrap();
    let held = store.lock_blocking().unwrap();
    let other = store.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _lock = other.lock_blocking().unwrap();
        tx.send(()).unwrap();
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "second lock granted while the first is held"
    );
    drop(held);
    rx.recv_timeout(Duration::from_secs(5))
        .expect("second lock granted after release");
    waiter.join().unwrap();
}

#[test]
fn debug_output_never_shows_secrets() {
    let mut s = sample(0);
    s.client_secret = Some(SecretString::from("sekrit-client"));
    assert!(!format!("{s:?}").contains("sekrit"));
}

#[cfg(unix)]
#[test]
fn symlinked_or_sticky_token_dirs_are_refused_untouched() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    std::fs::create_dir(&real).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o755)).unwrap();
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let err = ensure_private_dir(&link).unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    let sticky = tmp.path().join("shared");
    std::fs::create_dir(&sticky).unwrap();
    std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let err = ensure_private_dir(&sticky).unwrap_err();
    assert!(err.to_string().contains("sticky"), "{err}");
    for dir in [&real, &sticky] {
        let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o7777;
        assert!(mode == 0o755 || mode == 0o1777, "{mode:o}: never chmodded");
    }
}
