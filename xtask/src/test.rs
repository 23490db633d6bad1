//! `cargo xtask test [--etcd 3.4|3.5|all] [cargo test args]`: installs or fetches what the tests need, then
//! runs fmt, clippy and every test on etcd 3.4, and the suites that run real etcd again on every other version
//! (see [`crate::etcd_versions`]). This is the README's test command and what `.ci/run` calls. It installs
//! `promtool` and `prometheus-node-exporter` for the metrics tests, and sets `ETCD_SPOT_SIM_METRICS` so the
//! end-to-end tests check the metrics every run writes (`sim/src/metrics.rs`).

use crate::etcd_versions::{VERSIONS, etcd_bin};
use crate::util::{apt_install, cargo, have, is_root};

/// The test targets that start real etcd, run again on each further version: the etcd client, the three
/// binaries end to end, and the harness's own etcd tests. (`e2e_upgrade` runs both versions itself, once.)
const ETCD_SUITES: [&[&str]; 5] = [
    &["-p", "etcd-spot-core", "--test", "etcd_client", "--test", "etcd_tls"],
    &[
        "-p",
        "etcd-spot-discover",
        "--test",
        "e2e_discover",
        "--test",
        "e2e_rediscover",
        "--test",
        "e2e_founders",
        "--test",
        "e2e_adopt",
        "--test",
        "e2e_tls",
        "--test",
        "e2e_tls_bad",
        "--test",
        "e2e_tls_beacon",
    ],
    &["-p", "etcd-spot-terminate"],
    &["-p", "etcd-spot-prune"],
    &[
        "-p",
        "etcd-spot-sim",
        "--test",
        "etcd",
        "--test",
        "group",
        "--test",
        "tls",
        "--test",
        "partition",
        "--test",
        "failpoints",
    ],
];

pub fn run(args: &[String]) -> Result<(), String> {
    let (versions, rest) = versions(args)?;
    // Every binary first: a fetch that cannot work says so before the long part.
    let bins: Vec<_> = versions.iter().map(|v| etcd_bin(v).map(|b| (*v, b))).collect::<Result<_, _>>()?;
    ensure_prometheus_tools()?;
    ensure_nftables()?;
    crate::util::run(cargo().args(["fmt", "--all", "--check"]))?;
    crate::util::run(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    for (i, (version, bin)) in bins.iter().enumerate() {
        eprintln!("xtask test: etcd {version} ({})", bin.display());
        if i == 0 {
            let mut test = cargo();
            test.env("ETCD_BIN", bin).env("ETCD_SPOT_SIM_METRICS", "1").args(["test", "--workspace"]).args(&rest);
            crate::util::run(&mut test)?;
            continue;
        }
        for suite in ETCD_SUITES {
            let mut test = cargo();
            test.env("ETCD_BIN", bin).env("ETCD_SPOT_SIM_METRICS", "1").arg("test").args(suite).args(&rest);
            crate::util::run(&mut test)?;
        }
    }
    Ok(())
}

/// The versions `--etcd` asks for (default: all, 3.4 first) and the remaining arguments for cargo test.
fn versions(args: &[String]) -> Result<(Vec<&'static str>, Vec<String>), String> {
    let mut rest = Vec::new();
    let mut chosen: Vec<&'static str> = VERSIONS.to_vec();
    let mut words = args.iter();
    while let Some(word) = words.next() {
        if word != "--etcd" {
            rest.push(word.clone());
            continue;
        }
        chosen = match words.next().map(String::as_str) {
            Some("all") => VERSIONS.to_vec(),
            Some(v) => {
                let known = VERSIONS.iter().find(|k| **k == v);
                vec![*known.ok_or_else(|| format!("--etcd {v}: not one of all, {}", VERSIONS.join(", ")))?]
            }
            None => return Err("--etcd needs a version: all, 3.4 or 3.5".into()),
        };
    }
    Ok((chosen, rest))
}

/// Makes sure the `etcd` 3.4 server is on PATH: installs Debian's etcd-server
/// when we are root with apt-get, otherwise says exactly what to install.
pub fn ensure_etcd() -> Result<(), String> {
    if have("etcd") {
        return Ok(());
    }
    if is_root() && have("apt-get") {
        eprintln!("xtask: etcd not found; installing Debian's etcd-server and etcd-client");
        apt_install(&["--no-install-recommends", "etcd-server", "etcd-client"])?;
        if have("etcd") {
            return Ok(());
        }
    }
    Err("the tests need etcd 3.4: run `sudo apt-get update && sudo apt-get install etcd-server etcd-client` \
         (Debian/Ubuntu), or put an etcd 3.4+ binary on PATH"
        .into())
}

/// Makes sure `promtool` and `prometheus-node-exporter` are on PATH for the metrics and alert-rule tests
/// (`sim/tests/metrics.rs`, `xtask/tests/alert_rules.rs`): installs Debian's `prometheus` and
/// `prometheus-node-exporter` when we are root with apt-get, otherwise says exactly what to install.
pub fn ensure_prometheus_tools() -> Result<(), String> {
    let missing = |tools: &[(&'static str, &'static str)]| -> Vec<&'static str> {
        tools.iter().filter(|(program, _)| !have(program)).map(|(_, package)| *package).collect()
    };
    let tools = [("promtool", "prometheus"), ("prometheus-node-exporter", "prometheus-node-exporter")];
    let packages = missing(&tools);
    if packages.is_empty() {
        return Ok(());
    }
    if is_root() && have("apt-get") {
        eprintln!("xtask: installing Debian's {} for the metrics tests", packages.join(" and "));
        let mut args = vec!["--no-install-recommends"];
        args.extend(&packages);
        apt_install(&args)?;
        if missing(&tools).is_empty() {
            return Ok(());
        }
    }
    Err(format!(
        "the metrics tests need promtool and prometheus-node-exporter: run `sudo apt-get update && sudo apt-get \
         install --no-install-recommends {}` (Debian/Ubuntu)",
        packages.join(" ")
    ))
}

/// Makes sure `nft` is on PATH for the network partitions (`sim/tests/partition.rs`, `cargo xtask chaos
/// --partitions`): installs Debian's `nftables` when we are root with apt-get, otherwise says what to do.
pub fn ensure_nftables() -> Result<(), String> {
    if have("nft") {
        return Ok(());
    }
    if is_root() && have("apt-get") {
        eprintln!("xtask: installing Debian's nftables for the network partitions");
        apt_install(&["--no-install-recommends", "nftables"])?;
        if have("nft") {
            return Ok(());
        }
    }
    Err("the network partitions need nft, as root: run `sudo apt-get update && sudo apt-get install \
         --no-install-recommends nftables` (Debian/Ubuntu)"
        .to_string())
}

/// `cargo xtask etcd-bin 3.4|3.5`: prints the path of that version's `etcd`, fetching it when missing (for
/// `ETCD_BIN=$(cargo xtask etcd-bin 3.5) cargo xtask chaos …`).
pub fn etcd_bin_task(args: &[String]) -> Result<(), String> {
    let [version] = args else {
        return Err(format!("usage: cargo xtask etcd-bin <{}>", VERSIONS.join("|")));
    };
    println!("{}", etcd_bin(version)?.display());
    Ok(())
}
