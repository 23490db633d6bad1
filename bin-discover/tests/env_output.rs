//! The settings the shipped units have discover write, an environment file (`ETCD_SPOT_OUTPUT_FORMAT=env`) that
//! the etcd unit's static drop-in reads with `EnvironmentFile=`, read back by systemd's rules for such files
//! (the kit's independent reader, `etcd_spot_sim::parse_env_file`) as etcd's `ETCD_*` variables, the same ones
//! the drop-in format carries. Discover bootstraps a one-instance group and only writes the file: no etcd is
//! started. Owns 127.0.118.x.

use std::collections::BTreeMap;

use etcd_spot_sim::{SimGroup, parse_env_file};

/// Bootstraps a one-instance group on 127.0.118.`host` with discover writing `format`; returns the file's text
/// and what systemd's rules read from it.
fn bootstrap_writing(name: &str, host: u8, format: &str) -> (String, BTreeMap<String, String>, String) {
    let mut g = SimGroup::new(name, 118, 1);
    let id = g.launch(host);
    let output = g.instance_dir(&id).join(if format == "env" { "etcd.env" } else { "30-etcd-spot.conf" });
    g.set_env("ETCD_SPOT_OUTPUT", &output.display().to_string());
    g.set_env("ETCD_SPOT_OUTPUT_FORMAT", format);
    let run = g.discover(&id, &["--json"]);
    assert_eq!(run.code, 0, "discover ({format}) failed:\n{}", run.stderr);
    assert_eq!(run.decision(), "bootstrap", "{}", run.stderr);
    let text = std::fs::read_to_string(&output).expect("discover wrote its output");
    let vars = parse_env_file(&text).unwrap_or_else(|e| panic!("systemd's rules cannot read it ({e}):\n{text}"));
    (text, vars.into_iter().collect(), id)
}

#[test]
fn the_env_file_the_units_use_reads_as_etcds_variables() {
    let (text, vars, id) = bootstrap_writing("env-output", 1, "env");
    assert!(!text.contains("[Service]"), "an environment file, not a drop-in:\n{text}");
    assert!(vars.keys().all(|k| k.starts_with("ETCD_")), "{vars:?}");
    assert_eq!(vars.get("ETCD_NAME"), Some(&id));
    assert_eq!(vars.get("ETCD_INITIAL_CLUSTER_STATE").map(String::as_str), Some("new"));
    assert_eq!(vars.get("ETCD_INITIAL_CLUSTER"), Some(&format!("{id}=http://127.0.118.1:2380")));
    assert_eq!(vars.get("ETCD_INITIAL_ADVERTISE_PEER_URLS").map(String::as_str), Some("http://127.0.118.1:2380"));
    assert!(vars.get("ETCD_DATA_DIR").is_some_and(|d| d.ends_with("etcd-data")), "{vars:?}");

    // The drop-in format, the binary's default, carries the same variables.
    let (dropin, from_dropin, _) = bootstrap_writing("dropin-output", 2, "dropin");
    assert!(dropin.contains("[Service]\n"), "{dropin}");
    let keys = |m: &BTreeMap<String, String>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&vars), keys(&from_dropin), "the two formats carry different variables");
}
