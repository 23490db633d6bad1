//! Tests of the TLS and auth settings with real files: each bad file or missing partner is a configuration error
//! naming its flag and variable, `--scheme http` with client TLS is refused, and the password never shows.

use std::path::{Path, PathBuf};

use argh::FromArgs;
use etcd_spot_sim::{Ca, Validity};

use super::*;
use crate::error::Result;

/// A folder of test files, removed when dropped.
struct Files(PathBuf);

impl Files {
    fn new(name: &str) -> Files {
        let d = std::env::temp_dir().join(format!("etcd-spot-settings-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Files(d)
    }
    fn path(&self, f: &str) -> String {
        self.0.join(f).display().to_string()
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A client CA, a peer CA and their leaves, and a password file, in `dir`.
fn material(dir: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let ip = ["127.0.64.1".parse().unwrap()];
    let (client, peer) = (Ca::new("client ca"), Ca::new("peer ca"));
    client.write(dir, "ca.crt");
    peer.write(dir, "peer-ca.crt");
    let leaf = client.leaf("i-1", &ip, Validity::Now);
    leaf.write(dir, "client");
    leaf.with_wrong_key().write(dir, "wrong");
    peer.leaf("i-1", &ip, Validity::Now).write(dir, "peer");
    std::fs::write(dir.join("password"), "s3cret-pw\n").unwrap();
    std::fs::set_permissions(dir.join("password"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(dir.join("empty"), "\n").unwrap();
}

fn resolve(args: &[String]) -> Result<PruneConfig> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let parsed = PruneArgs::from_args(&["etcd-spot-prune"], &args).expect("argh parses");
    parsed.resolve(&|k| (k == "SPOTINST_TOKEN").then(|| "t".to_owned()))
}

#[test]
fn full_tls_and_auth_resolve_and_make_https_urls() {
    let f = Files::new("full");
    material(&f.0);
    let args: Vec<String> = [
        ("--cacert", "ca.crt"),
        ("--cert", "client.crt"),
        ("--key", "client.key"),
        ("--peer-cacert", "peer-ca.crt"),
        ("--peer-cert", "peer.crt"),
        ("--peer-key", "peer.key"),
        ("--etcd-password-file", "password"),
    ]
    .iter()
    .flat_map(|(flag, file)| [flag.to_string(), f.path(file)])
    .chain(["--etcd-user".to_owned(), "root".to_owned()])
    .collect();
    let cfg = resolve(&args).unwrap().common;
    assert_eq!((cfg.client_scheme(), cfg.peer_scheme()), (Scheme::Https, Scheme::Https));
    let auth = cfg.security.auth.as_ref().unwrap();
    assert_eq!((auth.user(), auth.password().expose()), ("root", "s3cret-pw"));
    let shown = format!("{cfg:?}");
    assert!(!shown.contains("s3cret-pw") && !shown.contains("PRIVATE KEY"), "{shown}");
    assert!(!cfg.security.changed());
    // Only the peer port with TLS: client URLs keep --scheme.
    let cfg = resolve(&["--peer-cacert".into(), f.path("peer-ca.crt")]).unwrap().common;
    assert_eq!((cfg.client_scheme(), cfg.peer_scheme()), (Scheme::Http, Scheme::Https));
}

#[test]
fn every_bad_tls_or_auth_setting_names_its_flag() {
    let f = Files::new("bad");
    material(&f.0);
    let check = |args: &[(&str, &str)], want: &str| {
        let args: Vec<String> = args
            .iter()
            .flat_map(|(flag, v)| {
                [
                    flag.to_string(),
                    if v.contains('.') || *v == "password" || *v == "empty" { f.path(v) } else { v.to_string() },
                ]
            })
            .collect();
        let err = resolve(&args).expect_err("should fail");
        assert_eq!(err.exit_code(), 2, "{err}");
        assert!(err.to_string().contains(want), "{err} should contain {want:?}");
    };
    check(
        &[("--cacert", "ca.crt"), ("--cert", "client.crt")],
        "--key (environment ETCD_SPOT_KEY): --cert needs its key",
    );
    check(&[("--cacert", "ca.crt"), ("--key", "client.key")], "--cert (environment ETCD_SPOT_CERT)");
    check(
        &[("--cert", "client.crt"), ("--key", "client.key")],
        "--cacert (environment ETCD_SPOT_CACERT): --cert needs --cacert",
    );
    check(
        &[("--cacert", "ca.crt"), ("--cert", "client.crt"), ("--key", "wrong.key")],
        "--key (environment ETCD_SPOT_KEY): ",
    );
    check(
        &[("--cacert", "ca.crt"), ("--cert", "client.crt"), ("--key", "wrong.key")],
        "is not the key of the certificate",
    );
    check(&[("--cacert", "ca.crt"), ("--cert", "client.crt"), ("--key", "missing.key")], "cannot read");
    check(&[("--cacert", "client.key")], "--cacert (environment ETCD_SPOT_CACERT)");
    check(
        &[("--cacert", "ca.crt"), ("--cert", "client.key"), ("--key", "client.key")],
        "--cert (environment ETCD_SPOT_CERT)",
    );
    check(
        &[("--peer-cacert", "peer-ca.crt"), ("--peer-cert", "peer.crt"), ("--peer-key", "client.key")],
        "--peer-key (environment ETCD_SPOT_PEER_KEY)",
    );
    check(
        &[("--peer-cert", "peer.crt"), ("--peer-key", "peer.key")],
        "--peer-cacert (environment ETCD_SPOT_PEER_CACERT)",
    );
    check(
        &[("--scheme", "http"), ("--cacert", "ca.crt")],
        "--scheme (environment ETCD_SPOT_SCHEME): http contradicts --cacert",
    );
    check(&[("--etcd-user", "root")], "--etcd-password-file (environment ETCD_SPOT_ETCD_PASSWORD_FILE)");
    check(&[("--etcd-password-file", "password")], "--etcd-user (environment ETCD_SPOT_ETCD_USER)");
    check(&[("--etcd-user", "root"), ("--etcd-password-file", "empty")], "is empty");
    check(&[("--etcd-user", "root"), ("--etcd-password-file", "missing.pw")], "cannot read");
}

/// Replacing a certificate file (as rotation does) is seen, and reading again gives the new material.
#[test]
fn a_replaced_file_is_seen_and_read_again() {
    let f = Files::new("reread");
    material(&f.0);
    let args = [
        "--cacert".to_owned(),
        f.path("ca.crt"),
        "--etcd-user".into(),
        "root".into(),
        "--etcd-password-file".into(),
        f.path("password"),
        "--spotinst-token-file".into(),
        f.path("token"),
    ];
    std::fs::write(f.0.join("token"), "spot-token-1\n").unwrap();
    let cfg = resolve(&args).unwrap().common;
    assert!(cfg.security.reread().is_none(), "nothing changed");
    assert_eq!(cfg.spotinst_token.as_ref().unwrap().expose(), "spot-token-1");
    let other = Ca::new("rotated ca");
    std::fs::write(f.0.join("ca.new"), other.pem()).unwrap();
    std::fs::rename(f.0.join("ca.new"), f.0.join("ca.crt")).unwrap();
    std::fs::write(f.0.join("pw.new"), "rotated-pw\n").unwrap();
    std::fs::rename(f.0.join("pw.new"), f.0.join("password")).unwrap();
    std::fs::write(f.0.join("token.new"), "spot-token-2\n").unwrap();
    std::fs::rename(f.0.join("token.new"), f.0.join("token")).unwrap();
    let again = cfg.security.reread().expect("a file changed").unwrap();
    let before = &cfg.security.client.as_ref().unwrap().material.roots;
    let after = &again.client.as_ref().unwrap().material.roots;
    assert_ne!(before, after);
    assert_eq!(again.auth.as_ref().unwrap().password().expose(), "rotated-pw");
    assert_eq!(again.spotinst_token.as_ref().unwrap().expose(), "spot-token-2");
    assert!(again.reread().is_none(), "the new stamps are kept");
}

/// `/dev/zero` as a CA or password file ate the memory and a FIFO hung the run: every settings file must be a
/// regular file of at most 1 MiB, else a configuration error naming its flag.
#[test]
fn a_device_or_fifo_as_a_settings_file_is_refused_naming_its_flag() {
    let f = Files::new("devices");
    material(&f.0);
    assert!(std::process::Command::new("mkfifo").arg(f.0.join("fifo")).status().unwrap().success());
    let fifo = f.path("fifo");
    let ca = f.path("ca.crt");
    for (args, flag) in [
        (vec!["--cacert", "/dev/zero"], "--cacert (environment ETCD_SPOT_CACERT)"),
        (vec!["--cacert", &fifo], "--cacert (environment ETCD_SPOT_CACERT)"),
        (vec!["--cacert", &ca, "--cert", "/dev/zero", "--key", &fifo], "--cert (environment ETCD_SPOT_CERT)"),
        (vec!["--etcd-user", "root", "--etcd-password-file", "/dev/zero"], "--etcd-password-file"),
        (vec!["--etcd-user", "root", "--etcd-password-file", &fifo], "--etcd-password-file"),
        (vec!["--spotinst-token-file", &fifo], "--spotinst-token-file"),
    ] {
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        let err = resolve(&args).expect_err("should fail");
        assert_eq!(err.exit_code(), 2, "{err}");
        let msg = err.to_string();
        assert!(msg.contains(flag) && msg.contains("not a regular file"), "{msg} should name {flag}");
    }
}
