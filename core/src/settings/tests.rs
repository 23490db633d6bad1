//! Tests of settings: flag over environment over default, errors that name the flag and its variable, the token
//! never shown, and every `--help` line matching its row of the settings table.

use std::path::PathBuf;
use std::time::Duration;

use argh::FromArgs;

use super::*;
use crate::error::Result;
/// The token every environment of these tests holds unless it sets its own: discover and prune need one.
const TOKEN: &str = "test-token";

/// An environment of `pairs`, plus [`TOKEN`] in `SPOTINST_TOKEN`.
fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |k| {
        let given = pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
        given.or_else(|| (k == "SPOTINST_TOKEN").then(|| TOKEN.to_owned()))
    }
}

/// An environment that holds only [`TOKEN`].
fn token_only(k: &str) -> Option<String> {
    (k == "SPOTINST_TOKEN").then(|| TOKEN.to_owned())
}

fn prune(args: &[&str], env: &'static [(&'static str, &'static str)]) -> Result<PruneConfig> {
    let parsed = PruneArgs::from_args(&["etcd-spot-prune"], args).expect("argh parses");
    parsed.resolve(&env_of(env))
}

/// Checks that the given flags and environment fail with a message that
/// names the flag and its variable, and exit code 2.
fn check_err(args: &[&str], env: &'static [(&'static str, &'static str)], expected: &str) {
    let err = prune(args, env).expect_err("should fail");
    assert_eq!(err.exit_code(), 2, "{err}");
    let msg = err.to_string();
    assert!(msg.contains(expected), "{msg:?} should contain {expected:?}");
}

#[test]
fn bad_values_name_flag_and_env() {
    check_err(&["--imds-url", "not a url"], &[], "--imds-url (environment ETCD_SPOT_IMDS_URL)");
    check_err(&[], &[("ETCD_SPOT_SPOTINST_URL", "ftp://x")], "--spotinst-url (environment ETCD_SPOT_SPOTINST_URL)");
    check_err(&["--client-port", "0"], &[], "--client-port (environment ETCD_SPOT_CLIENT_PORT): port 0");
    check_err(&[], &[("ETCD_SPOT_PEER_PORT", "70000")], "--peer-port (environment ETCD_SPOT_PEER_PORT)");
    check_err(
        &["--spotinst-token-file", "/nonexistent/token"],
        &[],
        "--spotinst-token-file (environment ETCD_SPOT_SPOTINST_TOKEN_FILE)",
    );
    check_err(&["--scheme", "ftp"], &[], "--scheme (environment ETCD_SPOT_SCHEME)");
    check_err(&["--max-voters", "0"], &[], "--max-voters");
    check_err(&["--data-dir", "relative"], &[], "--data-dir");
    check_err(&["--unstarted-grace", "-3"], &[], "--unstarted-grace (environment ETCD_SPOT_UNSTARTED_GRACE)");
    check_err(&["--imds-url", "http://127.0.0.1:0"], &[], "--imds-url");
}

#[test]
fn flag_wins_over_environment() {
    let env: &'static [(&str, &str)] = &[
        ("ETCD_SPOT_CLIENT_PORT", "3379"),
        ("ETCD_SPOT_PEER_PORT", "3380"),
        ("SPOTINST_GROUP_ID", "sig-env"),
        ("ETCD_SPOT_MAX_VOTERS", "3"),
    ];
    let cfg = prune(&["--client-port", "4379", "--group-id", "sig-flag"], env).unwrap();
    assert_eq!(cfg.common.client_port, 4379);
    assert_eq!(cfg.common.peer_port, 3380);
    assert_eq!(cfg.common.group_id.as_deref(), Some("sig-flag"));
    assert_eq!(cfg.common.max_voters, 3);
}

#[test]
fn defaults() {
    let cfg = prune(&[], &[]).unwrap();
    assert_eq!(cfg.common.imds_url, "http://169.254.169.254");
    assert_eq!(cfg.common.spotinst_url, "https://api.spotinst.io");
    assert_eq!((cfg.common.client_port, cfg.common.peer_port, cfg.common.max_voters), (2379, 2380, 5));
    assert_eq!(cfg.common.data_dir, PathBuf::from("/var/lib/etcd"));
    assert_eq!(cfg.unstarted_grace, Duration::from_secs(300));
    assert_eq!(cfg.common.spotinst_token.as_ref().map(|t| t.expose()), Some(TOKEN));
    let t = TerminateArgs::from_args(&["t"], &[]).unwrap().resolve(&|_| None).unwrap();
    assert!(t.common.spotinst_token.is_none(), "terminate runs on IMDS notices alone");
}

#[test]
fn token_never_shows_in_debug() {
    let dir = std::env::temp_dir().join(format!("etcd-spot-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, "s3cr3t-token-value\n").unwrap();
    let args = PruneArgs::from_args(&["etcd-spot-prune"], &["--spotinst-token-file", file.to_str().unwrap()]).unwrap();
    let cfg = args.resolve(&|_| None).unwrap();
    assert_eq!(cfg.common.spotinst_token.as_ref().map(|t| t.expose()), Some("s3cr3t-token-value"));
    assert!(!format!("{cfg:?}").contains("s3cr3t"));
    let cfg = prune(&[], &[("SPOTINST_TOKEN", "env-s3cr3t")]).unwrap();
    assert!(!format!("{cfg:?}").contains("env-s3cr3t"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn discover_and_terminate_specific_flags() {
    let d = DiscoverArgs::from_args(&["d"], &["--output-format", "env", "--no-learner", "--bootstrap-timeout", "7"])
        .unwrap()
        .resolve(&token_only)
        .unwrap();
    assert_eq!(d.output_format, OutputFormat::Env);
    assert!(!d.learner);
    assert_eq!(d.bootstrap_timeout, Duration::from_secs(7));
    let err = DiscoverArgs::from_args(&["d"], &["--output-format", "yaml"]).unwrap().resolve(&token_only).unwrap_err();
    assert!(err.to_string().contains("--output-format (environment ETCD_SPOT_OUTPUT_FORMAT)"));
    let t = TerminateArgs::from_args(&["t"], &["--watch", "--imds-interval", "0.5", "-v", "-v"]).unwrap();
    assert_eq!(t.verbose, 2);
    let t = t.resolve(&|k| (k == "ETCD_SPOT_ETCD_STOP_COMMAND").then(|| "true".to_string())).unwrap();
    assert!(t.watch);
    assert_eq!(t.imds_interval, Duration::from_millis(500));
    assert_eq!(t.etcd_stop_command, "true");
    assert_eq!(t.spotinst_interval, Duration::from_secs(60));
}

/// The `--help` text argh renders for a binary, with runs of whitespace collapsed (argh wraps long lines).
fn help<T: FromArgs + std::fmt::Debug>(binary: &str) -> String {
    let early = T::from_args(&[binary], &["--help"]).expect_err("--help exits early");
    early.output.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn every_help_line_is_its_settings_row() {
    let helps = [
        ("etcd-spot-discover", help::<DiscoverArgs>("etcd-spot-discover")),
        ("etcd-spot-terminate", help::<TerminateArgs>("etcd-spot-terminate")),
        ("etcd-spot-prune", help::<PruneArgs>("etcd-spot-prune")),
    ];
    for (binary, help) in &helps {
        for spec in SETTINGS {
            let shown = spec.help_line().split_whitespace().collect::<Vec<_>>().join(" ");
            let present = help.contains(&format!("{} ", spec.flag)) && help.contains(&shown);
            assert_eq!(present, spec.scope.includes(binary), "{binary} --help and the row of {}: {help}", spec.flag);
        }
        let flags: std::collections::BTreeSet<&str> = help
            .split_whitespace()
            .map(|w| w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric()))
            .filter(|w| w.starts_with("--") && *w != "--help")
            .collect();
        let flags = flags.len();
        let rows = SETTINGS.iter().filter(|s| s.scope.includes(binary)).count();
        assert_eq!(flags, rows, "{binary} has a flag without a settings row: {help}");
    }
}

#[test]
fn every_default_resolves() {
    let d = DiscoverArgs::from_args(&["d"], &[]).unwrap().resolve(&token_only).unwrap();
    assert_eq!(d.output, PathBuf::from(table::spec("--output").default));
    assert_eq!(d.bootstrap_timeout, Duration::from_secs(600));
    assert_eq!(d.unstarted_grace, Duration::from_secs(300));
    assert_eq!(d.output_format, OutputFormat::Dropin);
    let t = TerminateArgs::from_args(&["t"], &[]).unwrap().resolve(&|_| None).unwrap();
    assert_eq!(t.etcd_stop_command, table::spec("--etcd-stop-command").default);
    assert_eq!((t.imds_interval, t.spotinst_interval), (Duration::from_secs(5), Duration::from_secs(60)));
    assert_eq!(t.common.state_dir, PathBuf::from("/var/lib/etcd-spot"));
    assert_eq!((t.common.timeout, t.common.scheme), (Duration::from_secs(5), Scheme::Http));
    let env = env_of(&[("ETCD_SPOT_TIMEOUT", "0.5")]);
    let p = PruneArgs::from_args(&["p"], &[]).unwrap().resolve(&env).unwrap();
    assert_eq!(p.common.timeout, Duration::from_millis(500));
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let code = |r: std::result::Result<PruneArgs, (std::process::ExitCode, Option<String>)>| {
        r.err().map(|(c, _)| format!("{c:?}"))
    };
    assert_eq!(
        code(parse_args("etcd-spot-prune", &words(&["--bogus"]))),
        Some(format!("{:?}", std::process::ExitCode::from(2)))
    );
    assert_eq!(
        code(parse_args("etcd-spot-prune", &words(&["--timeout"]))),
        Some(format!("{:?}", std::process::ExitCode::from(2)))
    );
    assert_eq!(
        code(parse_args("etcd-spot-prune", &words(&["--help"]))),
        Some(format!("{:?}", std::process::ExitCode::SUCCESS))
    );
    assert!(parse_args::<PruneArgs>("etcd-spot-prune", &words(&["--dry-run"])).is_ok_and(|a| a.dry_run));
    // `-h` is `--help` (it was an unknown argument), but not as a value after `--`.
    assert_eq!(
        code(parse_args("etcd-spot-prune", &words(&["-h"]))),
        Some(format!("{:?}", std::process::ExitCode::SUCCESS))
    );
    assert_eq!(
        code(parse_args("etcd-spot-prune", &words(&["--", "-h"]))),
        Some(format!("{:?}", std::process::ExitCode::from(2)))
    );
}

#[test]
fn keep_stale_is_one_to_a_hundred_for_discover_and_terminate() {
    let env = env_of(&[("ETCD_SPOT_KEEP_STALE", "7")]);
    let discover = |args: &[&str]| DiscoverArgs::from_args(&["etcd-spot-discover"], args).expect("argh parses");
    let terminate = |args: &[&str]| TerminateArgs::from_args(&["etcd-spot-terminate"], args).expect("argh parses");
    assert_eq!(discover(&[]).resolve(&env_of(&[])).unwrap().keep_stale, 3, "the default");
    assert_eq!(discover(&[]).resolve(&env).unwrap().keep_stale, 7);
    assert_eq!(terminate(&["--keep-stale", "1"]).resolve(&env).unwrap().keep_stale, 1, "the flag wins");
    for bad in ["0", "101", "x"] {
        let err = terminate(&["--keep-stale", bad]).resolve(&env_of(&[])).expect_err(bad);
        assert!(err.to_string().contains("--keep-stale (environment ETCD_SPOT_KEEP_STALE)"), "{err}");
    }
    assert!(PruneArgs::from_args(&["etcd-spot-prune"], &["--keep-stale", "2"]).is_err(), "prune moves nothing");
}

/// Every switch has its variable, read as a boolean: 1/true/yes/on, 0/false/no/off/empty, any case; anything
/// else is a configuration error naming the flag and the variable. The flag wins: given, it is on.
#[test]
fn every_switch_has_a_boolean_variable() {
    fn switch_of(flag: &str, args: &[&str], env: &dyn Fn(&str) -> Option<String>) -> Result<bool> {
        let with_token = |k: &str| env(k).or_else(|| token_only(k));
        Ok(match flag {
            "--json" => PruneArgs::from_args(&["p"], args).unwrap().resolve(&with_token)?.common.json,
            "--dry-run" => PruneArgs::from_args(&["p"], args).unwrap().resolve(&with_token)?.dry_run,
            "--no-learner" => !DiscoverArgs::from_args(&["d"], args).unwrap().resolve(&with_token)?.learner,
            "--watch" => TerminateArgs::from_args(&["t"], args).unwrap().resolve(&with_token)?.watch,
            "--rebalance" => TerminateArgs::from_args(&["t"], args).unwrap().resolve(&with_token)?.rebalance,
            other => panic!("no test for the switch {other}"),
        })
    }
    let switches: Vec<&Spec> = SETTINGS.iter().filter(|s| s.switch && s.env.starts_with("ETCD_SPOT_")).collect();
    let names: Vec<&str> = switches.iter().map(|s| s.flag).collect();
    assert_eq!(names, ["--json", "--no-learner", "--watch", "--rebalance", "--dry-run"]);
    for spec in switches {
        let var = spec.env;
        let with = |value: &'static str| move |k: &str| (k == var).then(|| value.to_owned());
        assert!(!switch_of(spec.flag, &[], &|_| None).unwrap(), "{} is off by default", spec.flag);
        assert!(switch_of(spec.flag, &[spec.flag], &with("no")).unwrap(), "{}: the flag wins", spec.flag);
        for on in ["1", "true", "YES", " on "] {
            assert!(switch_of(spec.flag, &[], &with(on)).unwrap(), "{var}={on:?}");
        }
        for off in ["0", "false", "No", "off", "", "  "] {
            assert!(!switch_of(spec.flag, &[], &with(off)).unwrap(), "{var}={off:?}");
        }
        for bad in ["2", "y", "enabled"] {
            let err = switch_of(spec.flag, &[], &with(bad)).expect_err(bad);
            assert_eq!(err.exit_code(), 2);
            assert!(err.to_string().contains(&format!("{} (environment {var})", spec.flag)), "{err}");
        }
    }
}

/// Discover and prune need the Spotinst API: no token is a configuration error at resolve time, before any
/// network call, so it is one even when IMDS is down. Terminate resolves without one.
#[test]
fn missing_token_fails_at_resolve_for_discover_and_prune() {
    let check = |err: Error| {
        assert_eq!(err.exit_code(), 2);
        let msg = err.to_string();
        assert!(msg.contains("--spotinst-token-file (environment ETCD_SPOT_SPOTINST_TOKEN_FILE)"), "{msg}");
        assert!(msg.contains("SPOTINST_TOKEN"), "{msg}");
    };
    check(PruneArgs::from_args(&["p"], &[]).unwrap().resolve(&|_| None).unwrap_err());
    check(DiscoverArgs::from_args(&["d"], &[]).unwrap().resolve(&|_| None).unwrap_err());
    check(PruneArgs::from_args(&["p"], &[]).unwrap().resolve(&env_of(&[("SPOTINST_TOKEN", "  ")])).unwrap_err());
    assert!(TerminateArgs::from_args(&["t"], &[]).unwrap().resolve(&|_| None).is_ok());
}

/// `--json` (or `ETCD_SPOT_JSON`) is known before resolving, so a configuration error gets its JSON report; an
/// unreadable `ETCD_SPOT_JSON` is not a wish for JSON (and fails at resolve).
#[test]
fn json_is_known_before_resolving() {
    let wants = |args: &[&str], env: &'static [(&'static str, &'static str)]| {
        PruneArgs::from_args(&["p"], args).unwrap().wants_json(&env_of(env))
    };
    assert!(wants(&["--json"], &[]));
    assert!(wants(&[], &[("ETCD_SPOT_JSON", "yes")]));
    assert!(!wants(&[], &[("ETCD_SPOT_JSON", "0")]));
    assert!(!wants(&[], &[("ETCD_SPOT_JSON", "sure")]));
    assert!(!wants(&[], &[]));
}

#[test]
fn version_is_the_binary_and_the_package_version() {
    assert_eq!(version_line::<PruneArgs>(), format!("etcd-spot-prune {}\n", env!("CARGO_PKG_VERSION")));
    assert_eq!(version_line::<DiscoverArgs>(), format!("etcd-spot-discover {}\n", env!("CARGO_PKG_VERSION")));
    assert_eq!(version_line::<TerminateArgs>(), format!("etcd-spot-terminate {}\n", env!("CARGO_PKG_VERSION")));
    assert!(parse_args::<PruneArgs>("etcd-spot-prune", &["--version".to_owned()]).is_ok_and(|a| a.version));
}

/// Usage errors exit 2 whatever their kind: an unknown flag, a missing value, a value given to a switch, a
/// value that does not parse (found at resolve time, exit 2 too).
#[test]
fn every_kind_of_usage_error_exits_2() {
    let two = format!("{:?}", std::process::ExitCode::from(2));
    for args in [&["--bogus"][..], &["--timeout"], &["--json=1"], &["-x"], &["extra"]] {
        let words: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let code = parse_args::<PruneArgs>("etcd-spot-prune", &words).err().map(|(c, _)| format!("{c:?}"));
        assert_eq!(code.as_deref(), Some(two.as_str()), "{args:?}");
    }
    for (args, env) in [
        (&["--timeout", "soon"][..], &[][..]),
        (&["--max-voters", "many"], &[]),
        (&[], &[("ETCD_SPOT_TIMEOUT", "1e999")]),
        (&[], &[("ETCD_SPOT_DRY_RUN", "perhaps")]),
    ] {
        assert_eq!(prune(args, env).expect_err("bad value").exit_code(), 2, "{args:?} {env:?}");
    }
}

#[test]
fn verbose_may_be_spelled_vv_and_vvv() {
    let verbose = |w: &[&str]| {
        let words: Vec<String> = w.iter().map(|s| s.to_string()).collect();
        parse_args::<PruneArgs>("etcd-spot-prune", &words).map(|a| a.verbose).ok()
    };
    assert_eq!(verbose(&[]), Some(0));
    assert_eq!(verbose(&["-v"]), Some(1));
    assert_eq!(verbose(&["-vv"]), Some(2));
    assert_eq!(verbose(&["-vvv", "--json"]), Some(3));
    assert_eq!(verbose(&["-v", "-vv"]), Some(3));
    assert_eq!(verbose(&["-vx"]), None, "not a verbose flag: a usage error");
}

#[test]
fn output_that_is_relative_or_a_directory_is_a_configuration_error() {
    let dir = std::env::temp_dir();
    let dir = dir.to_str().expect("utf-8 temp dir");
    for bad in ["etcd.env", "out/etcd.env", dir] {
        let err = DiscoverArgs::from_args(&["d"], &["--output", bad]).unwrap().resolve(&token_only).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{err}");
        assert!(err.to_string().contains("--output (environment ETCD_SPOT_OUTPUT)"), "{err}");
    }
}

/// `--cacert ''` and `--client-port ''` were silently ignored, and even beat their variables.
#[test]
fn an_explicitly_empty_flag_is_a_configuration_error() {
    check_err(&["--cacert", ""], &[], "--cacert (environment ETCD_SPOT_CACERT): given with an empty value");
    check_err(&["--client-port", " "], &[("ETCD_SPOT_CLIENT_PORT", "2479")], "--client-port (environment");
    check_err(&["--unstarted-grace", ""], &[], "--unstarted-grace");
    let err = DiscoverArgs::from_args(&["d"], &["--output", ""]).unwrap().resolve(&token_only).unwrap_err();
    assert!(err.to_string().contains("--output (environment ETCD_SPOT_OUTPUT): given with an empty"), "{err}");
    let err = TerminateArgs::from_args(&["t"], &["--etcd-stop-command", ""]).unwrap().resolve(&token_only).unwrap_err();
    assert!(err.to_string().contains("--etcd-stop-command"), "{err}");
    // Every option of every binary, from the table.
    for spec in SETTINGS.iter().filter(|s| !s.switch) {
        for binary in ["etcd-spot-discover", "etcd-spot-terminate", "etcd-spot-prune"] {
            if !spec.scope.includes(binary) {
                continue;
            }
            let args = [spec.flag, ""];
            let err = match binary {
                "etcd-spot-discover" => DiscoverArgs::from_args(&["d"], &args).unwrap().resolve(&token_only).err(),
                "etcd-spot-terminate" => TerminateArgs::from_args(&["t"], &args).unwrap().resolve(&token_only).err(),
                _ => PruneArgs::from_args(&["p"], &args).unwrap().resolve(&token_only).err(),
            };
            let err = err.unwrap_or_else(|| panic!("{binary} {} '' resolved", spec.flag)).to_string();
            assert!(err.contains(spec.flag) && err.contains("given with an empty value"), "{binary}: {err}");
        }
    }
    // An empty variable still counts as unset.
    let cfg = prune(&[], &[("ETCD_SPOT_CACERT", ""), ("ETCD_SPOT_CLIENT_PORT", " ")]).unwrap();
    assert_eq!(cfg.common.client_port, 2379);
}

/// A bad `SPOTINST_TOKEN` blamed `--spotinst-token-file (ETCD_SPOT_SPOTINST_TOKEN_FILE)`, which was not given.
#[test]
fn a_bad_token_variable_names_spotinst_token() {
    let err = prune(&[], &[("SPOTINST_TOKEN", "tok en")]).unwrap_err().to_string();
    assert!(err.starts_with("invalid SPOTINST_TOKEN: ") && !err.contains("--spotinst-token-file"), "{err}");
    let dir = std::env::temp_dir().join(format!("etcd-spot-bad-token-{}", std::process::id()));
    std::fs::write(&dir, "tok\ten\n").unwrap();
    let file = dir.to_str().unwrap().to_owned();
    let parsed = PruneArgs::from_args(&["p"], &["--spotinst-token-file", &file]).unwrap();
    let err = parsed.resolve(&token_only).unwrap_err().to_string();
    std::fs::remove_file(&dir).unwrap();
    assert!(err.contains("--spotinst-token-file (environment ETCD_SPOT_SPOTINST_TOKEN_FILE)"), "{err}");
}
