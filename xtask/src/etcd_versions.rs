//! The etcd versions the tests run against: 3.4 from the system (Debian bookworm's `etcd-server`, installed by
//! `cargo xtask test` when missing) and 3.5 fetched from Debian's archive into `target/etcd/` without
//! installing it (no conflict with the system's 3.4).
//!
//! The 3.5 route: a sources list of our own naming the suites that carry 3.5 (`sid`, `trixie`) on the Debian
//! mirror the machine's apt sources already use (read from them, never written into the project), apt's state
//! and cache in `target/etcd/apt/`, `apt-get download` of the newest `etcd-server`/`etcd-client` 3.5.x, and
//! `dpkg-deb -x`. It never installs a package, never touches the system's apt state, and never runs a binary it
//! has not just checked the version of.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util::{have, root, run};

/// The versions the test command runs, by name.
pub const VERSIONS: [&str; 2] = ["3.4", "3.5"];

/// The `etcd` binary of `version` ("3.4" or "3.5"), fetching 3.5 when it is missing.
pub fn etcd_bin(version: &str) -> Result<PathBuf, String> {
    match version {
        "3.4" => {
            crate::test::ensure_etcd()?;
            let bin = PathBuf::from("/usr/bin/etcd");
            check_version(&bin, "3.4.")?;
            Ok(bin)
        }
        "3.5" => fetch("3.5"),
        other => Err(format!("unknown etcd version {other:?}: the tests run {}", VERSIONS.join(" and "))),
    }
}

/// The Debian mirror the machine's apt sources use: the `URIs:` of a deb822 source (or the URI of a one-line
/// `deb` source) whose path ends in `/debian`.
fn debian_mirror() -> Result<String, String> {
    let mut texts = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".sources") || name.ends_with(".list") {
                texts.push(std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
    }
    texts.push(std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default());
    let uris = texts.iter().flat_map(|t| t.lines()).filter_map(|line| {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("URIs:") {
            return rest.split_whitespace().next();
        }
        let mut words = line.strip_prefix("deb ")?.split_whitespace().skip_while(|w| w.starts_with('['));
        words.next()
    });
    let mirror = uris.map(|u| u.trim_end_matches('/')).find(|u| u.ends_with("/debian"));
    mirror.map(str::to_owned).ok_or_else(|| "no Debian mirror in /etc/apt/sources.list{,.d}".to_owned())
}

/// Fetches the newest `etcd-server` of `minor` (3.5) into `target/etcd/<minor>/` unless it is there already.
fn fetch(minor: &str) -> Result<PathBuf, String> {
    let dir = root().join("target/etcd").join(minor);
    let bin = dir.join("usr/bin/etcd");
    if bin.is_file() && check_version(&bin, &format!("{minor}.")).is_ok() {
        return Ok(bin);
    }
    for tool in ["apt-get", "apt-cache", "dpkg-deb"] {
        if !have(tool) {
            return Err(format!(
                "fetching etcd {minor} needs Debian's {tool}; or put an etcd {minor} binary at {}",
                bin.display()
            ));
        }
    }
    let apt = root().join("target/etcd/apt");
    let options = apt_options(&apt)?;
    eprintln!("xtask: fetching etcd {minor} from Debian's archive into {}", dir.display());
    // apt's progress goes to stderr: stdout carries only the binary's path (`cargo xtask etcd-bin`).
    run(Command::new("apt-get").args(&options).args(["-q", "update"]).stdout(Stdio::from(std::io::stderr())))?;
    let version = newest(&options, "etcd-server", minor)?;
    let debs = apt.join("debs");
    let _ = std::fs::remove_dir_all(&debs);
    std::fs::create_dir_all(&debs).map_err(|e| format!("{}: {e}", debs.display()))?;
    let server = format!("etcd-server={version}");
    let client = format!("etcd-client={version}");
    // `apt-get download` writes into its working directory (which `util::run` would set to the root).
    let mut download = Command::new("apt-get");
    download.args(&options).args(["-q", "download", &server, &client]).current_dir(&debs);
    download.stdout(Stdio::from(std::io::stderr()));
    let status = download.status().map_err(|e| format!("cannot run {download:?}: {e}"))?;
    if !status.success() {
        return Err(format!("{download:?} failed: {status}"));
    }
    let _ = std::fs::remove_dir_all(&dir);
    for deb in std::fs::read_dir(&debs).map_err(|e| format!("{}: {e}", debs.display()))?.flatten() {
        let name = deb.file_name().to_string_lossy().into_owned();
        if name.ends_with(".deb") {
            run(Command::new("dpkg-deb").arg("-x").arg(deb.path()).arg(&dir))?;
        }
    }
    check_version(&bin, &format!("{minor}."))?;
    Ok(bin)
}

/// apt options that keep every list, cache and status file in `apt` and read only our own sources list.
fn apt_options(apt: &Path) -> Result<Vec<String>, String> {
    let mirror = debian_mirror()?;
    for sub in ["lists/partial", "cache/archives/partial"] {
        std::fs::create_dir_all(apt.join(sub)).map_err(|e| format!("{}: {e}", apt.display()))?;
    }
    let keyring = "/usr/share/keyrings/debian-archive-keyring.gpg";
    let signed = if Path::new(keyring).is_file() { format!("[signed-by={keyring}] ") } else { String::new() };
    let list = apt.join("sources.list");
    let text = format!("deb {signed}{mirror} sid main\ndeb {signed}{mirror} trixie main\n");
    std::fs::write(&list, text).map_err(|e| format!("{}: {e}", list.display()))?;
    Ok(vec![
        format!("-o=Dir::Etc::SourceList={}", list.display()),
        "-o=Dir::Etc::SourceParts=/dev/null".to_owned(),
        format!("-o=Dir::State::Lists={}", apt.join("lists").display()),
        format!("-o=Dir::Cache={}", apt.join("cache").display()),
        "-o=APT::Sandbox::User=root".to_owned(),
    ])
}

/// The newest version of `package` in our lists whose upstream version starts with `minor.`.
fn newest(options: &[String], package: &str, minor: &str) -> Result<String, String> {
    let out = Command::new("apt-cache")
        .args(options)
        .args(["madison", package])
        .output()
        .map_err(|e| format!("apt-cache madison {package}: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut versions: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split('|').nth(1).map(str::trim))
        .filter(|v| v.split(':').next_back().is_some_and(|u| u.starts_with(&format!("{minor}."))))
        .collect();
    versions.sort_by_key(|v| version_key(v));
    versions.last().map(|v| (*v).to_owned()).ok_or_else(|| format!("Debian's archive lists no {package} {minor}.x"))
}

/// A sort key for Debian versions like `3.5.30-2` or `1:3.5.16-4`: the epoch (0 when absent), then the numbers
/// in order.
fn version_key(v: &str) -> (u64, Vec<u64>) {
    let (epoch, rest) = v.split_once(':').map_or((0, v), |(e, r)| (e.parse().unwrap_or(0), r));
    (epoch, rest.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok()).collect())
}

/// Checks that `bin --version` reports an etcd version starting with `prefix` (read by the test kit's
/// `binary_version`, the one place that parses it for the harness).
fn check_version(bin: &Path, prefix: &str) -> Result<(), String> {
    let version = etcd_spot_sim::binary_version(bin)?;
    if version.starts_with(prefix) {
        Ok(())
    } else {
        Err(format!("{} is etcd {version:?}, not {prefix}x", bin.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_by_their_numbers() {
        let mut v = vec!["3.5.9-1", "3.5.30-2", "1:3.5.16-4", "3.5.30-10"];
        v.sort_by_key(|x| version_key(x));
        assert_eq!(v, ["3.5.9-1", "3.5.30-2", "3.5.30-10", "1:3.5.16-4"]);
    }
}
