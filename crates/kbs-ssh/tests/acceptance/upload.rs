use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use kbs_ssh::{Owner, Privilege, Secret};
use kbs_testkit::ensure_test_users;

use crate::Env;

#[tokio::test]
async fn upload_sets_mode_owner_and_replaces_atomically() {
    let users = ensure_test_users();
    let env = Env::new();
    let conn = env.connect("root").await;
    let dir = env.dir.path().join("etc");
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join("config.yaml");
    let path_s = path.to_str().unwrap();

    let owner = Owner::new(users.nopasswd, users.nopasswd);
    conn.upload(b"first\n", path_s, 0o640, Some(&owner), &Privilege::None)
        .await
        .unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
    let uid = String::from_utf8(
        std::process::Command::new("id")
            .args(["-u", users.nopasswd])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(meta.uid().to_string(), uid.trim());
    assert_eq!(std::fs::read(&path).unwrap(), b"first\n");

    // A reader holding the old file keeps the old contents: the new one is renamed into place.
    let old_inode = meta.ino();
    conn.upload(b"second\n", path_s, 0o600, None, &Privilege::None)
        .await
        .unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    assert_ne!(meta.ino(), old_inode, "file was rewritten in place, not replaced");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    assert_eq!(std::fs::read(&path).unwrap(), b"second\n");
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "temp files left behind: {leftovers:?}");

    // Failure leaves no temp file and says why.
    let err = conn
        .upload(
            b"x",
            path_s,
            0o600,
            Some(&Owner::new("no-such-user-kbs", "root")),
            &Privilege::None,
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no-such-user-kbs") && err.contains(path_s), "{err}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    assert_eq!(std::fs::read(&path).unwrap(), b"second\n");

    let err = conn
        .upload(b"x", "relative/path", 0o600, None, &Privilege::None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("absolute"), "{err}");
}

/// A secret uploaded through password sudo: 0600, intact, and neither it nor the sudo password in
/// any process's arguments or in sshd's most verbose log.
#[tokio::test]
async fn secret_upload_stays_out_of_arguments_and_logs() {
    let users = ensure_test_users();
    let env = Env::with(|o| o.log_level("DEBUG3"));
    let conn = env.connect(users.passwd).await;
    let secret = "kbs-secret-token-5e2f9a";
    let mut contents = format!("token: {secret}\n").into_bytes();
    // Big enough that the upload takes a while and the watcher sees its processes.
    contents.extend(std::iter::repeat_n(b'#', 4 * 1024 * 1024));
    contents.push(b'\n');

    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        let needles = [secret.to_string(), users.password.to_string()];
        std::thread::spawn(move || {
            let mut hits = Vec::new();
            let mut scans = 0;
            while !stop.load(Ordering::Relaxed) {
                scans += 1;
                for entry in std::fs::read_dir("/proc").unwrap().flatten() {
                    for f in ["cmdline", "environ"] {
                        if let Ok(bytes) = std::fs::read(entry.path().join(f)) {
                            let text = String::from_utf8_lossy(&bytes);
                            for n in &needles {
                                if text.contains(n.as_str()) {
                                    hits.push(format!("{}/{f}: {text}", entry.path().display()));
                                }
                            }
                        }
                    }
                }
            }
            (hits, scans)
        })
    };
    let dir = env.dir.path().join("pki");
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join("token");
    let sudo = Privilege::Sudo {
        password: Some(Secret::new(users.password)),
    };
    conn.upload(
        &contents,
        path.to_str().unwrap(),
        0o600,
        Some(&Owner::new("root", "root")),
        &sudo,
    )
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    let (hits, scans) = watcher.join().unwrap();
    assert!(scans > 0);
    assert!(hits.is_empty(), "secret visible in processes: {hits:?}");

    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    assert_eq!(meta.uid(), 0);
    assert!(
        std::fs::read(&path).unwrap() == contents,
        "uploaded contents differ"
    );

    let log = env.sshd.log();
    assert!(
        log.contains(path.to_str().unwrap()),
        "sshd log does not record commands; check is void:\n{log}"
    );
    assert!(
        !log.contains(secret) && !log.contains(users.password),
        "secret in sshd log"
    );
}
