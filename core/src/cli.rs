//! Command-line flags of the three binaries (DESIGN §3.7), parsed by argh,
//! and their conversion into validated configurations.
//!
//! The flags shared by all binaries are declared once, in
//! [`with_common_flags`]; each binary's struct adds its own. Conversion never
//! touches the network.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{Config, Setting};
use crate::error::Result;

/// The shared flags, exactly as given (before the environment is consulted).
#[derive(Debug, Clone, Default)]
pub struct RawCommon {
    pub imds_url: Option<String>,
    pub spotinst_url: Option<String>,
    pub spotinst_token_file: Option<String>,
    pub spotinst_account: Option<String>,
    pub group_id: Option<String>,
    pub client_port: Option<String>,
    pub peer_port: Option<String>,
    pub scheme: Option<String>,
    pub max_voters: Option<String>,
    pub data_dir: Option<String>,
    pub state_dir: Option<String>,
    pub timeout: Option<String>,
    pub json: bool,
    pub verbose: u8,
}

macro_rules! with_common_flags {
    ($(#[$($meta:tt)*])* pub struct $name:ident { $($(#[$($fmeta:tt)*])* pub $field:ident : $ty:ident $(< $gen:ident >)?,)* }) => {
        $(#[$($meta)*])*
        #[derive(argh::FromArgs, Debug)]
        pub struct $name {
            /// base URL of the AWS instance metadata service [ETCD_SPOT_IMDS_URL] (http://169.254.169.254)
            #[argh(option)]
            pub imds_url: Option<String>,
            /// base URL of the Spotinst API [ETCD_SPOT_SPOTINST_URL] (https://api.spotinst.io)
            #[argh(option)]
            pub spotinst_url: Option<String>,
            /// file holding the Spotinst API token [ETCD_SPOT_SPOTINST_TOKEN_FILE]; else SPOTINST_TOKEN
            #[argh(option)]
            pub spotinst_token_file: Option<String>,
            /// the Spotinst account id, act-… [SPOTINST_ACCOUNT]
            #[argh(option)]
            pub spotinst_account: Option<String>,
            /// the Elastigroup id, sig-… [SPOTINST_GROUP_ID] (default: discovered)
            #[argh(option)]
            pub group_id: Option<String>,
            /// etcd client port [ETCD_SPOT_CLIENT_PORT] (2379)
            #[argh(option)]
            pub client_port: Option<String>,
            /// etcd peer port [ETCD_SPOT_PEER_PORT] (2380)
            #[argh(option)]
            pub peer_port: Option<String>,
            /// scheme of etcd URLs, http or https [ETCD_SPOT_SCHEME] (http)
            #[argh(option)]
            pub scheme: Option<String>,
            /// most voting members; more instances stay learners [ETCD_SPOT_MAX_VOTERS] (5)
            #[argh(option)]
            pub max_voters: Option<String>,
            /// etcd data dir [ETCD_SPOT_DATA_DIR] (/var/lib/etcd)
            #[argh(option)]
            pub data_dir: Option<String>,
            /// etcd-spot's own state dir [ETCD_SPOT_STATE_DIR] (/var/lib/etcd-spot)
            #[argh(option)]
            pub state_dir: Option<String>,
            /// overall timeout of one HTTP request in seconds [ETCD_SPOT_TIMEOUT] (5)
            #[argh(option)]
            pub timeout: Option<String>,
            /// print one JSON report on stdout
            #[argh(switch)]
            pub json: bool,
            /// more log output (repeat for more) [RUST_LOG]
            #[argh(switch, short = 'v')]
            pub verbose: u8,
            $($(#[$($fmeta)*])* pub $field: $ty $(< $gen >)?,)*
        }

        impl $name {
            /// The shared flags of this binary.
            pub fn common(&self) -> RawCommon {
                RawCommon {
                    imds_url: self.imds_url.clone(),
                    spotinst_url: self.spotinst_url.clone(),
                    spotinst_token_file: self.spotinst_token_file.clone(),
                    spotinst_account: self.spotinst_account.clone(),
                    group_id: self.group_id.clone(),
                    client_port: self.client_port.clone(),
                    peer_port: self.peer_port.clone(),
                    scheme: self.scheme.clone(),
                    max_voters: self.max_voters.clone(),
                    data_dir: self.data_dir.clone(),
                    state_dir: self.state_dir.clone(),
                    timeout: self.timeout.clone(),
                    json: self.json,
                    verbose: self.verbose,
                }
            }
        }
    };
}

with_common_flags! {
    /// Runs once at boot, before etcd: bootstraps, joins or rejoins the
    /// cluster and writes etcd's configuration.
    pub struct DiscoverArgs {
        /// where to write etcd's settings [ETCD_SPOT_OUTPUT] (/run/systemd/system/etcd-member.service.d/30-etcd-spot.conf)
        #[argh(option)]
        pub output: Option<String>,
        /// dropin (systemd drop-in) or env (environment file) [ETCD_SPOT_OUTPUT_FORMAT] (dropin)
        #[argh(option)]
        pub output_format: Option<String>,
        /// seconds to wait for the group to reach its target before giving up [ETCD_SPOT_BOOTSTRAP_TIMEOUT] (600)
        #[argh(option)]
        pub bootstrap_timeout: Option<String>,
        /// add this instance as a voter instead of a learner
        #[argh(switch)]
        pub no_learner: bool,
    }
}

with_common_flags! {
    /// Checks for a spot termination notice and deregisters this member.
    pub struct TerminateArgs {
        /// keep checking instead of checking once
        #[argh(switch)]
        pub watch: bool,
        /// seconds between IMDS checks in --watch [ETCD_SPOT_IMDS_INTERVAL] (5)
        #[argh(option)]
        pub imds_interval: Option<String>,
        /// seconds between Spotinst checks in --watch [ETCD_SPOT_SPOTINST_INTERVAL] (60)
        #[argh(option)]
        pub spotinst_interval: Option<String>,
        /// also treat the EC2 rebalance recommendation as a termination
        #[argh(switch)]
        pub rebalance: bool,
        /// command that stops etcd [ETCD_SPOT_ETCD_STOP_COMMAND] (systemctl stop etcd-member.service)
        #[argh(option)]
        pub etcd_stop_command: Option<String>,
    }
}

with_common_flags! {
    /// Removes members whose instances are gone and promotes caught-up learners.
    pub struct PruneArgs {
        /// print the plan and change nothing
        #[argh(switch)]
        pub dry_run: bool,
        /// seconds an added member may stay unstarted before removal [ETCD_SPOT_UNSTARTED_GRACE] (300)
        #[argh(option)]
        pub unstarted_grace: Option<String>,
    }
}

/// How discover writes etcd's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// `[Service]` plus `Environment="…"` lines.
    Dropin,
    /// `KEY="value"` lines for `EnvironmentFile=`.
    Env,
}

/// Validated settings of `etcd-spot-discover`.
#[derive(Debug, Clone)]
pub struct DiscoverConfig {
    pub common: Config,
    pub output: PathBuf,
    pub output_format: OutputFormat,
    pub bootstrap_timeout: Duration,
    pub learner: bool,
}

/// Validated settings of `etcd-spot-terminate`.
#[derive(Debug, Clone)]
pub struct TerminateConfig {
    pub common: Config,
    pub watch: bool,
    pub imds_interval: Duration,
    pub spotinst_interval: Duration,
    pub rebalance: bool,
    pub etcd_stop_command: String,
}

/// Validated settings of `etcd-spot-prune`.
#[derive(Debug, Clone)]
pub struct PruneConfig {
    pub common: Config,
    pub dry_run: bool,
    pub unstarted_grace: Duration,
}

fn seconds(
    setting: &Setting,
    flag: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    default: f64,
    range: std::ops::RangeInclusive<f64>,
) -> Result<Duration> {
    let secs: f64 = setting.parse_num(flag, env, default)?;
    if !range.contains(&secs) {
        return Err(setting.error(format!("{secs} is outside {}..={} seconds", range.start(), range.end())));
    }
    Ok(Duration::from_secs_f64(secs))
}

impl DiscoverArgs {
    pub fn resolve(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<DiscoverConfig> {
        let common = Config::resolve(&self.common(), env)?;
        let output = Setting { flag: "--output", env: "ETCD_SPOT_OUTPUT" };
        let format = Setting { flag: "--output-format", env: "ETCD_SPOT_OUTPUT_FORMAT" };
        let timeout = Setting { flag: "--bootstrap-timeout", env: "ETCD_SPOT_BOOTSTRAP_TIMEOUT" };
        let output_path = PathBuf::from(
            output
                .pick(self.output.as_deref(), env)
                .unwrap_or_else(|| "/run/systemd/system/etcd-member.service.d/30-etcd-spot.conf".into()),
        );
        if output_path.file_name().is_none() {
            return Err(output.error(format!("{} names no file", output_path.display())));
        }
        let output_format = match format.pick(self.output_format.as_deref(), env).as_deref().map(str::trim) {
            None | Some("dropin") => OutputFormat::Dropin,
            Some("env") => OutputFormat::Env,
            Some(other) => return Err(format.error(format!("{other:?} is neither dropin nor env"))),
        };
        Ok(DiscoverConfig {
            common,
            output: output_path,
            output_format,
            bootstrap_timeout: seconds(&timeout, self.bootstrap_timeout.as_deref(), env, 600.0, 0.0..=86_400.0)?,
            learner: !self.no_learner,
        })
    }
}

impl TerminateArgs {
    pub fn resolve(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<TerminateConfig> {
        let common = Config::resolve(&self.common(), env)?;
        let imds = Setting { flag: "--imds-interval", env: "ETCD_SPOT_IMDS_INTERVAL" };
        let spot = Setting { flag: "--spotinst-interval", env: "ETCD_SPOT_SPOTINST_INTERVAL" };
        let stop = Setting { flag: "--etcd-stop-command", env: "ETCD_SPOT_ETCD_STOP_COMMAND" };
        let etcd_stop_command = stop
            .pick(self.etcd_stop_command.as_deref(), env)
            .unwrap_or_else(|| "systemctl stop etcd-member.service".into());
        Ok(TerminateConfig {
            common,
            watch: self.watch,
            imds_interval: seconds(&imds, self.imds_interval.as_deref(), env, 5.0, 0.05..=3600.0)?,
            spotinst_interval: seconds(&spot, self.spotinst_interval.as_deref(), env, 60.0, 1.0..=86_400.0)?,
            rebalance: self.rebalance,
            etcd_stop_command,
        })
    }
}

impl PruneArgs {
    pub fn resolve(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<PruneConfig> {
        let common = Config::resolve(&self.common(), env)?;
        let grace = Setting { flag: "--unstarted-grace", env: "ETCD_SPOT_UNSTARTED_GRACE" };
        Ok(PruneConfig {
            common,
            dry_run: self.dry_run,
            unstarted_grace: seconds(&grace, self.unstarted_grace.as_deref(), env, 300.0, 0.0..=86_400.0)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argh::FromArgs;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
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
        assert!(cfg.common.spotinst_token.is_none());
    }

    #[test]
    fn token_never_shows_in_debug() {
        let dir = std::env::temp_dir().join(format!("etcd-spot-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "s3cr3t-token-value\n").unwrap();
        let args =
            PruneArgs::from_args(&["etcd-spot-prune"], &["--spotinst-token-file", file.to_str().unwrap()]).unwrap();
        let cfg = args.resolve(&|_| None).unwrap();
        assert_eq!(cfg.common.spotinst_token.as_ref().map(|t| t.expose()), Some("s3cr3t-token-value"));
        assert!(!format!("{cfg:?}").contains("s3cr3t"));
        let cfg = prune(&[], &[("SPOTINST_TOKEN", "env-s3cr3t")]).unwrap();
        assert!(!format!("{cfg:?}").contains("env-s3cr3t"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn discover_and_terminate_specific_flags() {
        let d =
            DiscoverArgs::from_args(&["d"], &["--output-format", "env", "--no-learner", "--bootstrap-timeout", "7"])
                .unwrap()
                .resolve(&|_| None)
                .unwrap();
        assert_eq!(d.output_format, OutputFormat::Env);
        assert!(!d.learner);
        assert_eq!(d.bootstrap_timeout, Duration::from_secs(7));
        let err =
            DiscoverArgs::from_args(&["d"], &["--output-format", "yaml"]).unwrap().resolve(&|_| None).unwrap_err();
        assert!(err.to_string().contains("--output-format (environment ETCD_SPOT_OUTPUT_FORMAT)"));
        let t = TerminateArgs::from_args(&["t"], &["--watch", "--imds-interval", "0.5", "-v", "-v"]).unwrap();
        assert_eq!(t.verbose, 2);
        let t = t.resolve(&|k| (k == "ETCD_SPOT_ETCD_STOP_COMMAND").then(|| "true".to_string())).unwrap();
        assert!(t.watch);
        assert_eq!(t.imds_interval, Duration::from_millis(500));
        assert_eq!(t.etcd_stop_command, "true");
        assert_eq!(t.spotinst_interval, Duration::from_secs(60));
    }
}
