//! Validated configuration, built from flags and the environment.
//!
//! A flag given on the command line wins over its environment variable, which
//! wins over the default. Every bad value becomes an [`Error::Config`] naming
//! the flag and the variable (exit code 2). The Spotinst token is held in a
//! [`Secret`] that never prints.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::RawCommon;
use crate::error::{Error, Result};

/// A value that must never appear in logs, errors or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it (an HTTP header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// URL scheme used for etcd's peer and client URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// Settings shared by all three binaries.
#[derive(Debug, Clone)]
pub struct Config {
    pub imds_url: String,
    pub spotinst_url: String,
    pub spotinst_token: Option<Secret>,
    pub spotinst_account: Option<String>,
    pub group_id: Option<String>,
    pub client_port: u16,
    pub peer_port: u16,
    pub scheme: Scheme,
    pub max_voters: u32,
    pub data_dir: PathBuf,
    pub state_dir: PathBuf,
    /// Overall timeout of one HTTP request.
    pub timeout: Duration,
    pub json: bool,
    pub verbosity: u8,
}

/// Where a value came from, for error messages.
pub(crate) struct Setting {
    pub flag: &'static str,
    pub env: &'static str,
}

impl Setting {
    pub(crate) fn error(&self, message: impl Into<String>) -> Error {
        Error::Config { flag: self.flag, env: self.env, message: message.into() }
    }

    /// The flag's value, else the environment's (empty counts as unset).
    pub(crate) fn pick(&self, flag: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
        flag.map(str::to_owned)
            .or_else(|| if self.env.is_empty() { None } else { env(self.env) })
            .filter(|v| !v.trim().is_empty())
    }

    pub(crate) fn parse_num<T: std::str::FromStr>(
        &self,
        flag: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
        default: T,
    ) -> Result<T> {
        match self.pick(flag, env) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|_| self.error(format!("{v:?} is not a valid number"))),
        }
    }
}

pub(crate) fn parse_url(setting: &Setting, value: &str) -> Result<String> {
    let value = value.trim().trim_end_matches('/');
    let rest = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"))
        .ok_or_else(|| setting.error(format!("{value:?} is not an http:// or https:// URL")))?;
    let authority = rest.split('/').next().unwrap_or("");
    let host_ok = crate::types::url_host(authority)
        .is_some_and(|h| h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-[]:".contains(&b)));
    let port_ok = match authority.rsplit_once(':') {
        Some((_, p)) if !authority.ends_with(']') => p.parse::<u16>().is_ok_and(|p| p > 0),
        _ => true,
    };
    if !host_ok || !port_ok {
        return Err(setting.error(format!("{value:?} is not a valid URL")));
    }
    Ok(value.to_owned())
}

fn parse_port(
    setting: &Setting,
    flag: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    default: u16,
) -> Result<u16> {
    let port: u16 = setting.parse_num(flag, env, default)?;
    if port == 0 {
        return Err(setting.error("port 0 is not allowed"));
    }
    Ok(port)
}

impl Config {
    /// Builds the configuration from raw flags and an environment lookup.
    pub fn resolve(raw: &RawCommon, env: &dyn Fn(&str) -> Option<String>) -> Result<Config> {
        let imds = Setting { flag: "--imds-url", env: "ETCD_SPOT_IMDS_URL" };
        let spot = Setting { flag: "--spotinst-url", env: "ETCD_SPOT_SPOTINST_URL" };
        let token_file = Setting { flag: "--spotinst-token-file", env: "ETCD_SPOT_SPOTINST_TOKEN_FILE" };
        let account = Setting { flag: "--spotinst-account", env: "SPOTINST_ACCOUNT" };
        let group = Setting { flag: "--group-id", env: "SPOTINST_GROUP_ID" };
        let client_port = Setting { flag: "--client-port", env: "ETCD_SPOT_CLIENT_PORT" };
        let peer_port = Setting { flag: "--peer-port", env: "ETCD_SPOT_PEER_PORT" };
        let scheme = Setting { flag: "--scheme", env: "ETCD_SPOT_SCHEME" };
        let max_voters = Setting { flag: "--max-voters", env: "ETCD_SPOT_MAX_VOTERS" };
        let data_dir = Setting { flag: "--data-dir", env: "ETCD_SPOT_DATA_DIR" };
        let state_dir = Setting { flag: "--state-dir", env: "ETCD_SPOT_STATE_DIR" };
        let timeout = Setting { flag: "--timeout", env: "ETCD_SPOT_TIMEOUT" };

        let imds_url = parse_url(
            &imds,
            &imds.pick(raw.imds_url.as_deref(), env).unwrap_or_else(|| "http://169.254.169.254".into()),
        )?;
        let spotinst_url = parse_url(
            &spot,
            &spot.pick(raw.spotinst_url.as_deref(), env).unwrap_or_else(|| "https://api.spotinst.io".into()),
        )?;

        let spotinst_token = match token_file.pick(raw.spotinst_token_file.as_deref(), env) {
            Some(path) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| token_file.error(format!("cannot read token file {path}: {e}")))?;
                let token = text.trim();
                if token.is_empty() {
                    return Err(token_file.error(format!("token file {path} is empty")));
                }
                Some(Secret::new(token))
            }
            None => env("SPOTINST_TOKEN").map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).map(Secret::new),
        };
        if let Some(t) = &spotinst_token
            && !t.expose().bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(token_file.error("the token holds characters that cannot go in an HTTP header"));
        }

        let spotinst_account = account.pick(raw.spotinst_account.as_deref(), env).map(|a| a.trim().to_owned());
        if let Some(a) = &spotinst_account
            && !a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(account.error(format!("{a:?} is not a Spotinst account id (act-…)")));
        }
        let group_id = group.pick(raw.group_id.as_deref(), env).map(|g| g.trim().to_owned());
        if let Some(g) = &group_id
            && !g.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(group.error(format!("{g:?} is not a Spotinst group id (sig-…)")));
        }

        let scheme_value = scheme.pick(raw.scheme.as_deref(), env).unwrap_or_else(|| "http".into());
        let scheme_parsed = match scheme_value.trim() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => return Err(scheme.error(format!("{other:?} is neither http nor https"))),
        };

        let max_voters_value: u32 = max_voters.parse_num(raw.max_voters.as_deref(), env, 5)?;
        if max_voters_value == 0 || max_voters_value > 9 {
            return Err(max_voters.error(format!("{max_voters_value} is outside 1..=9")));
        }

        let data_dir_value =
            PathBuf::from(data_dir.pick(raw.data_dir.as_deref(), env).unwrap_or_else(|| "/var/lib/etcd".into()));
        if !data_dir_value.is_absolute() || data_dir_value.parent().is_none() {
            return Err(data_dir.error(format!("{} must be an absolute path below /", data_dir_value.display())));
        }
        let state_dir_value =
            PathBuf::from(state_dir.pick(raw.state_dir.as_deref(), env).unwrap_or_else(|| "/var/lib/etcd-spot".into()));
        if !state_dir_value.is_absolute() {
            return Err(state_dir.error(format!("{} must be an absolute path", state_dir_value.display())));
        }
        let timeout_secs: f64 = timeout.parse_num(raw.timeout.as_deref(), env, 5.0)?;
        if !(0.05..=300.0).contains(&timeout_secs) {
            return Err(timeout.error(format!("{timeout_secs} is outside 0.05..=300 seconds")));
        }

        Ok(Config {
            imds_url,
            spotinst_url,
            spotinst_token,
            spotinst_account,
            group_id,
            client_port: parse_port(&client_port, raw.client_port.as_deref(), env, 2379)?,
            peer_port: parse_port(&peer_port, raw.peer_port.as_deref(), env, 2380)?,
            scheme: scheme_parsed,
            max_voters: max_voters_value,
            data_dir: data_dir_value,
            state_dir: state_dir_value,
            timeout: Duration::from_secs_f64(timeout_secs),
            json: raw.json,
            verbosity: raw.verbose,
        })
    }

    /// This instance's peer URL for a given private IP.
    pub fn peer_url(&self, ip: std::net::Ipv4Addr) -> String {
        format!("{}://{ip}:{}", self.scheme.as_str(), self.peer_port)
    }

    /// This instance's client URL for a given private IP.
    pub fn client_url(&self, ip: std::net::Ipv4Addr) -> String {
        format!("{}://{ip}:{}", self.scheme.as_str(), self.client_port)
    }
}

/// The process environment, for [`Config::resolve`].
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}
