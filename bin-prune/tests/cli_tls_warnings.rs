//! What the real `etcd-spot-prune` says of TLS and auth files that read but are doubtful or wrong, before any
//! network call: a CA bundle that also holds a private key, our certificate from another CA than the one given
//! (both warnings), an encrypted key and a password file whose first line is blank (configuration errors that say
//! what to do). IMDS is 127.0.128.1 port 9, where nothing listens; no etcd.

use std::path::Path;

use etcd_spot_sim::{Ca, Validity, run_captured, scratch_dir};

const BINARY: &str = env!("CARGO_BIN_EXE_etcd-spot-prune");

fn prune(dir: &Path, extra: &[&str]) -> (i32, String) {
    let state = dir.join("state").display().to_string();
    let mut args = vec!["--imds-url", "http://127.0.128.1:9", "--timeout", "0.2", "--state-dir", &state];
    args.extend_from_slice(extra);
    let (code, _, stderr) = run_captured(Path::new(BINARY), &args, &[("SPOTINST_TOKEN", "t")]);
    (code, stderr)
}

#[test]
fn doubtful_tls_files_are_warned_about_and_wrong_ones_say_what_to_do() {
    let dir = scratch_dir("tls-warn-files");
    let ca = Ca::new("ca");
    let ca_file = ca.write(&dir, "ca.crt");
    let leaf = ca.leaf("i-1", &[], Validity::Now).write(&dir, "leaf");
    let foreign = Ca::new("other").leaf("i-1", &[], Validity::Now).write(&dir, "foreign");
    let p = |p: &Path| p.display().to_string();

    // A CA bundle that also holds a private key: a warning naming the flag.
    let with_key = dir.join("ca-with-key.pem");
    let key_pem = std::fs::read_to_string(&leaf.key).unwrap();
    std::fs::write(&with_key, format!("{}{key_pem}", ca.pem())).unwrap();
    let (code, stderr) = prune(&dir, &["--cacert", &p(&with_key)]);
    assert_eq!(code, 1, "resolves, then IMDS is unreachable: {stderr}");
    assert!(stderr.contains("(--cacert) also holds a private key"), "{stderr}");

    // Our certificate from another CA: a warning (the peer port's beacons would refuse it).
    let (code, stderr) =
        prune(&dir, &["--peer-cacert", &p(&ca_file), "--peer-cert", &p(&foreign.cert), "--peer-key", &p(&foreign.key)]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("(--peer-cert): it was not issued by a CA of the given bundle"), "{stderr}");

    // An encrypted key: a configuration error with the way out.
    let enc = dir.join("enc.key");
    let made = std::process::Command::new("openssl")
        .args(["pkey", "-in", &p(&leaf.key), "-out", &p(&enc), "-aes256", "-passout", "pass:x"])
        .status()
        .expect("openssl runs");
    assert!(made.success());
    let (code, stderr) = prune(&dir, &["--cacert", &p(&ca_file), "--cert", &p(&leaf.cert), "--key", &p(&enc)]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("invalid --key")
            && stderr.contains("encrypted private key")
            && stderr.contains("openssl pkey -in"),
        "{stderr}"
    );

    // A password file whose first line is blank, and a blank user.
    let pw = dir.join("pw");
    std::fs::write(&pw, "\nsecret\n").unwrap();
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let (code, stderr) = prune(&dir, &["--etcd-user", "root", "--etcd-password-file", &p(&pw)]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("invalid --etcd-password-file") && stderr.contains("first line") && stderr.contains("is blank"),
        "{stderr}"
    );
    let state = dir.join("state").display().to_string();
    let args = ["--imds-url", "http://127.0.128.1:9", "--state-dir", &state, "--etcd-password-file", &p(&pw)];
    let (code, _, stderr) =
        run_captured(Path::new(BINARY), &args, &[("SPOTINST_TOKEN", "t"), ("ETCD_SPOT_ETCD_USER", "  ")]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("invalid --etcd-user") && stderr.contains("the user is blank"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
