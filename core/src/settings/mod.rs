//! Settings: the flags of the three binaries merged with the environment into validated configurations.
//!
//! A flag given on the command line wins over its environment variable, which wins over the default; every
//! variable name and default comes from the one table in [`table`]. Every bad value becomes an
//! [`Error::Config`] naming the flag and the variable (exit code 2). Resolving never touches the network; it
//! reads only the settings files (token, certificates, keys, password), each a regular file of at most 1 MiB. The
//! Spotinst token is held in a [`Secret`] that never prints.

mod args;
mod command_line;
mod secure;
mod table;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_secure;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use args::RawCommon;
pub use args::{DiscoverArgs, PruneArgs, TerminateArgs};
#[cfg(test)]
use command_line::parse_args;
pub use command_line::{Early, from_command_line, version_line};
pub(crate) use secure::Security;
pub use table::{SETTINGS, Scope, Spec};

use crate::error::{Error, Result};
use crate::types::{EtcdVersion, OutputFormat, Scheme, Secret};

/// Settings shared by all three binaries.
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) imds_url: String,
    pub(crate) spotinst_url: String,
    pub(crate) spotinst_token: Option<Secret>,
    pub(crate) spotinst_account: Option<String>,
    pub(crate) group_id: Option<String>,
    pub(crate) client_port: u16,
    pub(crate) peer_port: u16,
    /// `--scheme`: the scheme of client and peer URLs that no TLS setting decides.
    pub(crate) scheme: Scheme,
    /// TLS on both ports and etcd's auth.
    pub(crate) security: Security,
    pub(crate) max_voters: u32,
    pub(crate) data_dir: PathBuf,
    pub(crate) state_dir: PathBuf,
    /// Overall timeout of one HTTP request.
    pub(crate) timeout: Duration,
    /// Where to write the Prometheus textfile (`--metrics-dir`); none: no metrics.
    pub(crate) metrics_dir: Option<PathBuf>,
    /// Print the report as JSON on stdout.
    pub json: bool,
}

impl Config {
    /// The scheme of etcd's client URLs: https with client TLS (`--cacert`), else `--scheme`.
    pub(crate) fn client_scheme(&self) -> Scheme {
        if self.security.client.is_some() { Scheme::Https } else { self.scheme }
    }

    /// The scheme of etcd's peer URLs: https with peer TLS (`--peer-cacert`), else `--scheme`.
    pub(crate) fn peer_scheme(&self) -> Scheme {
        if self.security.peer.is_some() { Scheme::Https } else { self.scheme }
    }
}

/// Validated settings of `etcd-spot-discover`.
#[derive(Debug, Clone)]
pub struct DiscoverConfig {
    pub common: Config,
    pub(crate) output: PathBuf,
    pub(crate) output_format: OutputFormat,
    pub(crate) bootstrap_timeout: Duration,
    pub(crate) learner: bool,
    pub(crate) unstarted_grace: Duration,
    /// The version of the etcd this instance runs, when given.
    pub(crate) etcd_version: Option<EtcdVersion>,
    /// Most moved-aside copies kept in the data dir (`--keep-stale`).
    pub(crate) keep_stale: usize,
}

/// Validated settings of `etcd-spot-terminate`.
#[derive(Debug, Clone)]
pub struct TerminateConfig {
    pub common: Config,
    pub(crate) watch: bool,
    pub(crate) imds_interval: Duration,
    pub(crate) spotinst_interval: Duration,
    pub(crate) rebalance: bool,
    pub(crate) etcd_stop_command: String,
    /// Most moved-aside copies kept in the data dir (`--keep-stale`).
    pub(crate) keep_stale: usize,
}

/// Validated settings of `etcd-spot-prune`.
#[derive(Debug, Clone)]
pub struct PruneConfig {
    pub common: Config,
    pub(crate) dry_run: bool,
    pub(crate) unstarted_grace: Duration,
}

/// What every binary's flags answer before they are resolved: the flags that end or shape the run at once.
pub trait Flags: argh::TopLevelCommand {
    /// The binary's name, `etcd-spot-prune`.
    const BINARY: &'static str;
    /// `--version` was given.
    fn version(&self) -> bool;
    /// How many times `-v` was given.
    fn verbose(&self) -> u8;
    /// `--json` was given.
    fn json(&self) -> bool;

    /// Whether the report is wanted as JSON: `--json`, else `ETCD_SPOT_JSON` when it reads as true. Asked
    /// before resolving, so that a configuration error has its JSON report too (a variable that does not read
    /// as a boolean is itself a configuration error, reported as text).
    fn wants_json(&self, env: Env<'_>) -> bool {
        self.json() || setting("--json", None, env).switch(false).unwrap_or(false)
    }
}

macro_rules! flags {
    ($($args:ident => $binary:literal),*) => {$(
        impl Flags for $args {
            const BINARY: &'static str = $binary;
            fn version(&self) -> bool {
                self.version
            }
            fn verbose(&self) -> u8 {
                self.verbose
            }
            fn json(&self) -> bool {
                self.json
            }
        }
    )*};
}

flags!(DiscoverArgs => "etcd-spot-discover", TerminateArgs => "etcd-spot-terminate", PruneArgs => "etcd-spot-prune");

/// The process environment, for `resolve`.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// An environment lookup: the process's, or a test's.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// One setting being resolved: its row, the flag's value and the environment.
struct Value<'a> {
    spec: &'static Spec,
    flag: Option<&'a str>,
    env: Env<'a>,
}

fn setting<'a>(flag_name: &str, flag: Option<&'a str>, env: Env<'a>) -> Value<'a> {
    Value { spec: table::spec(flag_name), flag, env }
}

impl Value<'_> {
    fn error(&self, message: impl Into<String>) -> Error {
        Error::Config { flag: self.spec.flag, env: self.spec.env, message: message.into() }
    }

    /// The flag's value, else the environment's (empty counts as unset); no default.
    fn given(&self) -> Option<String> {
        self.flag
            .map(str::to_owned)
            .or_else(|| if self.spec.env.is_empty() { None } else { (self.env)(self.spec.env) })
            .filter(|v| !v.trim().is_empty())
    }

    /// The given value, else the table's default.
    fn text(&self) -> String {
        self.given().unwrap_or_else(|| self.spec.default.to_owned()).trim().to_owned()
    }

    fn number<T: FromStr>(&self) -> Result<T> {
        let text = self.text();
        text.parse().map_err(|_| self.error(format!("{text:?} is not a valid number")))
    }

    fn port(&self) -> Result<u16> {
        match self.number::<u16>()? {
            0 => Err(self.error("port 0 is not allowed")),
            port => Ok(port),
        }
    }

    fn seconds(&self, range: std::ops::RangeInclusive<f64>) -> Result<Duration> {
        let secs: f64 = self.number()?;
        if !range.contains(&secs) {
            return Err(self.error(format!("{secs} is outside {}..={} seconds", range.start(), range.end())));
        }
        Ok(Duration::from_secs_f64(secs))
    }

    /// A switch: on when the flag is given, else when its variable reads as true. `1`, `true`, `yes`, `on` are
    /// true and `0`, `false`, `no`, `off` or empty false, in any case; anything else is a configuration error
    /// naming the variable.
    fn switch(&self, flag: bool) -> Result<bool> {
        if flag {
            return Ok(true);
        }
        let Some(text) = self.given() else {
            return Ok(false);
        };
        match text.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(self
                .error(format!("{:?} is not a boolean (1, true, yes or on; 0, false, no, off or empty)", text.trim()))),
        }
    }

    fn url(&self) -> Result<String> {
        let text = self.text();
        let value = text.trim_end_matches('/');
        let rest = value
            .strip_prefix("http://")
            .or_else(|| value.strip_prefix("https://"))
            .ok_or_else(|| self.error(format!("{value:?} is not an http:// or https:// URL")))?;
        let authority = rest.split('/').next().unwrap_or("");
        let host_ok = crate::types::url_host(authority)
            .is_some_and(|h| h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-[]:".contains(&b)));
        let port_ok = match authority.rsplit_once(':') {
            Some((_, p)) if !authority.ends_with(']') => p.parse::<u16>().is_ok_and(|p| p > 0),
            _ => true,
        };
        if !host_ok || !port_ok {
            return Err(self.error(format!("{value:?} is not a valid URL")));
        }
        Ok(value.to_owned())
    }

    /// An optional Spotinst id (`act-…`, `sig-…`): letters, digits and `-`.
    fn spotinst_id(&self, what: &str) -> Result<Option<String>> {
        let Some(id) = self.given().map(|v| v.trim().to_owned()) else {
            return Ok(None);
        };
        if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(self.error(format!("{id:?} is not a Spotinst {what}")));
        }
        Ok(Some(id))
    }

    /// An absolute path when given; none when not.
    fn optional_absolute_path(&self) -> Result<Option<PathBuf>> {
        self.given().map(|_| self.absolute_path()).transpose()
    }

    fn absolute_path(&self) -> Result<PathBuf> {
        let path = PathBuf::from(self.text());
        if !path.is_absolute() || path.parent().is_none() {
            return Err(self.error(format!("{} must be an absolute path below /", path.display())));
        }
        Ok(path)
    }

    /// The token from the file the setting names, else from `SPOTINST_TOKEN`.
    fn token(&self) -> Result<Option<Secret>> {
        let from_file = self.given().is_some();
        let token = match self.given() {
            Some(path) => {
                let text = crate::clients::small_file::read_text(std::path::Path::new(&path))
                    .map_err(|e| self.error(format!("token file: {e}")))?;
                let token = text.trim();
                if token.is_empty() {
                    return Err(self.error(format!("token file {path} is empty")));
                }
                secure::warn_if_shared(std::path::Path::new(&path));
                Some(Secret::new(token))
            }
            None => {
                (self.env)("SPOTINST_TOKEN").map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).map(Secret::new)
            }
        };
        if token.as_ref().is_some_and(|t| !t.expose().bytes().all(|b| b.is_ascii_graphic())) {
            let message = "the token holds characters that cannot go in an HTTP header (only printable ASCII)";
            return Err(if from_file {
                self.error(message)
            } else {
                // The token came from the variable itself: name it, not the file flag that was not given.
                Error::Config { flag: "SPOTINST_TOKEN", env: "", message: message.into() }
            });
        }
        Ok(token)
    }
}

/// A flag given explicitly with an empty value (`--cacert ''`) is a configuration error: it would otherwise count as
/// not given and silently fall back to its variable or default (an empty variable still counts as unset).
fn reject_empty(flags: &[(&str, &Option<String>)], env: Env<'_>) -> Result<()> {
    match flags.iter().find(|(_, v)| v.as_deref().is_some_and(|v| v.trim().is_empty())) {
        Some((flag, _)) => Err(setting(flag, None, env).error(
            "given with an empty value: give a value, or leave the flag out to use the variable or the default",
        )),
        None => Ok(()),
    }
}

impl Config {
    /// Builds the shared configuration from raw flags and an environment lookup.
    fn resolve(raw: &RawCommon, env: Env<'_>) -> Result<Config> {
        fn s<'a>(flag: &str, value: &'a Option<String>, env: Env<'a>) -> Value<'a> {
            setting(flag, value.as_deref(), env)
        }
        reject_empty(
            &[
                ("--imds-url", &raw.imds_url),
                ("--spotinst-url", &raw.spotinst_url),
                ("--spotinst-token-file", &raw.spotinst_token_file),
                ("--spotinst-account", &raw.spotinst_account),
                ("--group-id", &raw.group_id),
                ("--client-port", &raw.client_port),
                ("--peer-port", &raw.peer_port),
                ("--scheme", &raw.scheme),
                ("--cacert", &raw.cacert),
                ("--cert", &raw.cert),
                ("--key", &raw.key),
                ("--peer-cacert", &raw.peer_cacert),
                ("--peer-cert", &raw.peer_cert),
                ("--peer-key", &raw.peer_key),
                ("--etcd-user", &raw.etcd_user),
                ("--etcd-password-file", &raw.etcd_password_file),
                ("--max-voters", &raw.max_voters),
                ("--data-dir", &raw.data_dir),
                ("--state-dir", &raw.state_dir),
                ("--timeout", &raw.timeout),
                ("--metrics-dir", &raw.metrics_dir),
            ],
            env,
        )?;
        let scheme = s("--scheme", &raw.scheme, env);
        let scheme = match scheme.text().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => return Err(scheme.error(format!("{other:?} is neither http nor https"))),
        };
        let security = Security::resolve(
            &secure::RawSecurity {
                cacert: raw.cacert.as_deref(),
                cert: raw.cert.as_deref(),
                key: raw.key.as_deref(),
                peer_cacert: raw.peer_cacert.as_deref(),
                peer_cert: raw.peer_cert.as_deref(),
                peer_key: raw.peer_key.as_deref(),
                etcd_user: raw.etcd_user.as_deref(),
                etcd_password_file: raw.etcd_password_file.as_deref(),
                spotinst_token_file: raw.spotinst_token_file.as_deref(),
            },
            env,
        )?;
        let scheme_value = s("--scheme", &raw.scheme, env);
        if scheme == Scheme::Http && scheme_value.given().is_some() && security.client.is_some() {
            return Err(scheme_value.error(
                "http contradicts --cacert (ETCD_SPOT_CACERT), which makes etcd's client URLs https: drop --scheme \
                 or set it to https",
            ));
        }
        let max_voters = s("--max-voters", &raw.max_voters, env);
        let max_voters_value: u32 = max_voters.number()?;
        if max_voters_value == 0 || max_voters_value > 9 {
            return Err(max_voters.error(format!("{max_voters_value} is outside 1..=9")));
        }
        let state_dir = s("--state-dir", &raw.state_dir, env);
        let state_dir_value = PathBuf::from(state_dir.text());
        if !state_dir_value.is_absolute() {
            return Err(state_dir.error(format!("{} must be an absolute path", state_dir_value.display())));
        }
        Ok(Config {
            imds_url: s("--imds-url", &raw.imds_url, env).url()?,
            spotinst_url: s("--spotinst-url", &raw.spotinst_url, env).url()?,
            // A token file was read with the other secret files (and is followed by `--watch`); else the variable.
            spotinst_token: match &security.spotinst_token {
                Some(token) => Some(token.clone()),
                None => s("--spotinst-token-file", &raw.spotinst_token_file, env).token()?,
            },
            spotinst_account: s("--spotinst-account", &raw.spotinst_account, env).spotinst_id("account id (act-…)")?,
            group_id: s("--group-id", &raw.group_id, env).spotinst_id("group id (sig-…)")?,
            client_port: s("--client-port", &raw.client_port, env).port()?,
            peer_port: s("--peer-port", &raw.peer_port, env).port()?,
            scheme,
            security,
            max_voters: max_voters_value,
            data_dir: s("--data-dir", &raw.data_dir, env).absolute_path()?,
            state_dir: state_dir_value,
            timeout: s("--timeout", &raw.timeout, env).seconds(0.05..=300.0)?,
            metrics_dir: s("--metrics-dir", &raw.metrics_dir, env).optional_absolute_path()?,
            json: s("--json", &None, env).switch(raw.json)?,
        })
    }
}

/// Discover and prune cannot work without the Spotinst API: no token is a configuration error, found before any
/// network call (terminate goes on without one, on IMDS notices alone).
fn require_token(common: &Config, env: Env<'_>) -> Result<()> {
    match common.spotinst_token {
        Some(_) => Ok(()),
        None => Err(setting("--spotinst-token-file", None, env)
            .error("no spotinst token configured: set it, or put the token in SPOTINST_TOKEN")),
    }
}

/// The version of the etcd this instance runs, when given.
fn etcd_version(flag: Option<&str>, env: Env<'_>) -> Result<Option<EtcdVersion>> {
    let value = setting("--etcd-version", flag, env);
    value.given().map(|v| EtcdVersion::parse(&v).map_err(|e| value.error(e))).transpose()
}

/// How many moved-aside copies discover and terminate keep: 1 to 100 (the newest copy is always kept).
fn keep_stale(flag: Option<&str>, env: Env<'_>) -> Result<usize> {
    let value = setting("--keep-stale", flag, env);
    match value.number::<usize>()? {
        n @ 1..=100 => Ok(n),
        n => Err(value.error(format!("{n} is outside 1..=100"))),
    }
}

/// The unstarted-member grace period both discover and prune take.
fn unstarted_grace(flag: Option<&str>, env: Env<'_>) -> Result<Duration> {
    setting("--unstarted-grace", flag, env).seconds(0.0..=86_400.0)
}

impl DiscoverArgs {
    /// Validates these flags merged with the environment.
    pub fn resolve(&self, env: Env<'_>) -> Result<DiscoverConfig> {
        let common = Config::resolve(&self.common(), env)?;
        reject_empty(
            &[
                ("--output", &self.output),
                ("--output-format", &self.output_format),
                ("--bootstrap-timeout", &self.bootstrap_timeout),
                ("--etcd-version", &self.etcd_version),
                ("--unstarted-grace", &self.unstarted_grace),
                ("--keep-stale", &self.keep_stale),
            ],
            env,
        )?;
        require_token(&common, env)?;
        if common.security.peer.as_ref().is_some_and(|p| !p.material.has_identity()) {
            return Err(setting("--peer-cert", None, env).error(
                "discover needs this instance's peer certificate under peer TLS (--peer-cacert): the boot handshake \
                 serves it and presents it; give --peer-cert and --peer-key",
            ));
        }
        let output = setting("--output", self.output.as_deref(), env);
        let output_path = output.absolute_path()?;
        if output_path.file_name().is_none() || output_path.is_dir() {
            return Err(
                output.error(format!("{} names no file (it must name the file to write)", output_path.display()))
            );
        }
        let format = setting("--output-format", self.output_format.as_deref(), env);
        let output_format = match format.text().as_str() {
            "dropin" => OutputFormat::Dropin,
            "env" => OutputFormat::Env,
            other => return Err(format.error(format!("{other:?} is neither dropin nor env"))),
        };
        Ok(DiscoverConfig {
            common,
            output: output_path,
            output_format,
            bootstrap_timeout: setting("--bootstrap-timeout", self.bootstrap_timeout.as_deref(), env)
                .seconds(0.0..=86_400.0)?,
            learner: !setting("--no-learner", None, env).switch(self.no_learner)?,
            unstarted_grace: unstarted_grace(self.unstarted_grace.as_deref(), env)?,
            etcd_version: etcd_version(self.etcd_version.as_deref(), env)?,
            keep_stale: keep_stale(self.keep_stale.as_deref(), env)?,
        })
    }
}

impl TerminateArgs {
    /// Validates these flags merged with the environment.
    pub fn resolve(&self, env: Env<'_>) -> Result<TerminateConfig> {
        let common = Config::resolve(&self.common(), env)?;
        reject_empty(
            &[
                ("--imds-interval", &self.imds_interval),
                ("--spotinst-interval", &self.spotinst_interval),
                ("--etcd-stop-command", &self.etcd_stop_command),
                ("--keep-stale", &self.keep_stale),
            ],
            env,
        )?;
        Ok(TerminateConfig {
            common,
            watch: setting("--watch", None, env).switch(self.watch)?,
            imds_interval: setting("--imds-interval", self.imds_interval.as_deref(), env).seconds(0.05..=3600.0)?,
            spotinst_interval: setting("--spotinst-interval", self.spotinst_interval.as_deref(), env)
                .seconds(1.0..=86_400.0)?,
            rebalance: setting("--rebalance", None, env).switch(self.rebalance)?,
            etcd_stop_command: setting("--etcd-stop-command", self.etcd_stop_command.as_deref(), env).text(),
            keep_stale: keep_stale(self.keep_stale.as_deref(), env)?,
        })
    }
}

impl PruneArgs {
    /// Validates these flags merged with the environment.
    pub fn resolve(&self, env: Env<'_>) -> Result<PruneConfig> {
        let common = Config::resolve(&self.common(), env)?;
        reject_empty(&[("--unstarted-grace", &self.unstarted_grace)], env)?;
        require_token(&common, env)?;
        Ok(PruneConfig {
            common,
            dry_run: setting("--dry-run", None, env).switch(self.dry_run)?,
            unstarted_grace: unstarted_grace(self.unstarted_grace.as_deref(), env)?,
        })
    }
}
