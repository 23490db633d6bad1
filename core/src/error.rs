//! The one error type of the core library.
//!
//! Every variant carries the URL, flag or ID involved so a log line is enough
//! to act on. Messages are lowercase without a trailing period. Nothing here
//! may ever format a secret (the Spotinst token).

use std::fmt;
use std::path::PathBuf;

pub use crate::types::EtcdErrorKind;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in etcd-spot.
#[non_exhaustive]
#[derive(Debug)]
pub enum Error {
    /// A setting is missing or invalid; names the flag and its environment variable.
    Config { flag: &'static str, env: &'static str, message: String },
    /// The connection failed or timed out before a complete answer arrived.
    Transport { url: String, message: String },
    /// A TLS handshake failed, or TLS and plain HTTP met: what the operator must fix is in the message.
    Tls { url: String, side: TlsSide, failure: TlsFailure },
    /// The server answered with a status the caller did not expect.
    Status { url: String, status: u16, body: String },
    /// HTTP 429, with a reset longer than the client waits or persisting after waiting for it.
    RateLimited { url: String, reset_secs: u64 },
    /// A Spotinst call not sent: an earlier 429 asked for no call before `until` (a Unix second).
    SpotinstPaused { url: String, until: u64 },
    /// The server rejected our credentials (HTTP 401/403).
    Unauthorized { url: String, status: u16 },
    /// The body was larger than the cap; it was not read into memory.
    BodyTooLarge { url: String, limit: usize },
    /// The body could not be parsed or lacked a required field.
    Malformed { url: String, message: String },
    /// The Spotinst API said the group does not exist.
    GroupDoesntExist { group_id: String },
    /// The Spotinst API returned an error in its envelope.
    Spotinst { url: String, status: u16, code: String, message: String },
    /// The Spotinst API returned an empty `items`: the state is unknown.
    SpotinstEmpty { url: String },
    /// etcd returned an error.
    Etcd { url: String, status: u16, kind: EtcdErrorKind, message: String },
    /// No group ID was configured, tagged or reported by Spotinst.
    NoGroupId,
    /// No etcd endpoint answered.
    NoEtcdEndpoint { tried: Vec<String> },
    /// A file system operation failed.
    Io { path: PathBuf, source: std::io::Error },
    /// A command could not be run or exited unsuccessfully.
    Command { command: String, message: String },
    /// The planner refused to act on what it saw.
    Refused { reason: String },
}

impl Error {
    /// The etcd error kind, if this is an etcd error.
    pub fn etcd_kind(&self) -> Option<EtcdErrorKind> {
        match self {
            Error::Etcd { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// True for configuration and usage errors (exit code 2). No group ID is not one: Spotinst may not know a
    /// just-launched instance yet, so it is retried (exit 1) like any answer that may change.
    pub fn is_config(&self) -> bool {
        matches!(self, Error::Config { .. })
    }

    /// The kind a report carries (`error_kind`): what an operator looks at first. An error that carries only a
    /// URL is an IMDS or Spotinst error when the URL is under the configured base URL of that service, else an
    /// etcd one (the only other service etcd-spot calls).
    pub fn kind(&self, imds_url: &str, spotinst_url: &str) -> ErrorKind {
        let by_url = |url: &str| {
            if !imds_url.is_empty() && url.starts_with(imds_url) {
                ErrorKind::Imds
            } else if !spotinst_url.is_empty() && url.starts_with(spotinst_url) {
                ErrorKind::Spotinst
            } else {
                ErrorKind::Etcd
            }
        };
        match self {
            Error::Config { .. } => ErrorKind::Config,
            Error::Transport { url, .. }
            | Error::Tls { url, .. }
            | Error::Status { url, .. }
            | Error::RateLimited { url, .. }
            | Error::Unauthorized { url, .. }
            | Error::BodyTooLarge { url, .. }
            | Error::Malformed { url, .. } => by_url(url),
            Error::SpotinstPaused { .. }
            | Error::GroupDoesntExist { .. }
            | Error::Spotinst { .. }
            | Error::SpotinstEmpty { .. }
            | Error::NoGroupId => ErrorKind::Spotinst,
            Error::Etcd { .. } | Error::NoEtcdEndpoint { .. } => ErrorKind::Etcd,
            Error::Io { .. } => ErrorKind::Io,
            Error::Command { .. } => ErrorKind::Command,
            Error::Refused { .. } => ErrorKind::Refused,
        }
    }

    /// The documented exit code: 2 for bad configuration, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        if self.is_config() { 2 } else { 1 }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io { path: path.into(), source }
    }
}

/// Which of etcd's ports a TLS failure happened on: it decides which settings the message names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsSide {
    /// etcd's client port (`--cacert`, `--cert`, `--key`).
    Client,
    /// The peer port: etcd's peer API, or another instance's boot beacon (`--peer-cacert`, `--peer-cert`, …).
    Peer,
}

/// What went wrong in a TLS handshake, as far as the operator needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsFailure {
    /// The server's certificate does not chain to the CA we trust.
    UnknownIssuer,
    /// The server's certificate has expired.
    Expired,
    /// The server's certificate is not valid yet.
    NotValidYet,
    /// The server's certificate does not name the address we connected to (no matching IP SAN).
    WrongAddress,
    /// The server refused the certificate we presented (or that we presented none), with the TLS alert it sent.
    OursRefused { alert: String },
    /// The other side does not speak TLS (a plain-HTTP port).
    NotTls,
    /// The other side closed the TLS connection without an answer (after retries): what etcd does when it
    /// refuses our certificate under TLS 1.3 (the alert is often lost to the reset), on a plain-http port, and on
    /// its peer port for a certificate whose IP SAN does not name our address.
    Closed { presented_cert: bool, message: String },
    /// Plain http was closed without an answer (after retries): what etcd does on a port that wants TLS.
    PlainClosed { message: String },
    /// Anything else rustls reported.
    Other(String),
}

impl TlsFailure {
    /// Classifies a rustls error.
    pub(crate) fn from_rustls(e: &rustls::Error) -> TlsFailure {
        use rustls::{AlertDescription as A, CertificateError as C, Error as R};
        match e {
            R::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => TlsFailure::UnknownIssuer,
            R::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => TlsFailure::Expired,
            R::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => TlsFailure::NotValidYet,
            R::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => TlsFailure::WrongAddress,
            R::AlertReceived(
                alert @ (A::BadCertificate
                | A::UnknownCA
                | A::CertificateExpired
                | A::CertificateRequired
                | A::CertificateUnknown
                | A::CertificateRevoked
                | A::UnsupportedCertificate
                | A::AccessDenied),
            ) => TlsFailure::OursRefused { alert: format!("{alert:?}") },
            R::InvalidMessage(_) | R::InappropriateMessage { .. } | R::InappropriateHandshakeMessage { .. } => {
                TlsFailure::NotTls
            }
            other => TlsFailure::Other(other.to_string()),
        }
    }
}

/// The message of [`Error::Tls`]: what failed and which setting to look at.
fn tls_message(f: &mut fmt::Formatter<'_>, url: &str, side: TlsSide, failure: &TlsFailure) -> fmt::Result {
    let (what, ca, cert, their_cert, their_ca) = match side {
        TlsSide::Client => (
            "etcd's client",
            "--cacert (ETCD_SPOT_CACERT)",
            "--cert/--key (ETCD_SPOT_CERT, ETCD_SPOT_KEY)",
            "ETCD_CERT_FILE",
            "ETCD_TRUSTED_CA_FILE",
        ),
        TlsSide::Peer => (
            "the peer",
            "--peer-cacert (ETCD_SPOT_PEER_CACERT)",
            "--peer-cert/--peer-key (ETCD_SPOT_PEER_CERT, ETCD_SPOT_PEER_KEY)",
            "ETCD_PEER_CERT_FILE",
            "ETCD_PEER_TRUSTED_CA_FILE",
        ),
    };
    let host = crate::types::url_host(url.split("://").nth(1).unwrap_or(url)).unwrap_or("the address");
    match failure {
        TlsFailure::UnknownIssuer => write!(
            f,
            "TLS to {url}: its certificate is not signed by the CA we trust: verify {ca} is the CA that signed \
             {what} certificate ({their_cert})"
        ),
        TlsFailure::Expired => write!(
            f,
            "TLS to {url}: its certificate has expired: renew {what} certificate ({their_cert}), or check this \
             machine's clock"
        ),
        TlsFailure::NotValidYet => write!(
            f,
            "TLS to {url}: its certificate is not valid yet: check this machine's clock and the certificate's \
             not-before date ({their_cert})"
        ),
        TlsFailure::WrongAddress => write!(
            f,
            "TLS to {url}: its certificate does not name {host}: reissue {what} certificate ({their_cert}) with \
             an IP subject alternative name for {host}"
        ),
        TlsFailure::OursRefused { alert } => write!(
            f,
            "TLS to {url}: it refused our certificate (TLS alert {alert}): verify {cert} is a certificate it \
             accepts (signed by the CA in its {their_ca}, not expired, with the clientAuth usage)"
        ),
        TlsFailure::NotTls => write!(
            f,
            "TLS to {url}: the other side does not speak TLS: it serves plain http; remove {ca} or point it at \
             etcd's TLS port"
        ),
        TlsFailure::Closed { presented_cert, message } => {
            write!(f, "TLS to {url}: the other side closed the connection without an answer ({message}); ")?;
            if *presented_cert {
                write!(
                    f,
                    "if it refused our certificate, {cert} must be signed by the CA in its {their_ca}, unexpired, \
                     with the clientAuth usage"
                )?;
                if side == TlsSide::Peer {
                    f.write_str(", and name this instance's address in an IP SAN (etcd checks it on the peer port)")?;
                }
            } else {
                write!(f, "if it requires a client certificate, give {cert}")?;
            }
            write!(f, "; if the port does not speak TLS (plain http), remove {ca}")
        }
        TlsFailure::PlainClosed { message } => write!(
            f,
            "{url} closed the connection without an answer to plain http ({message}): etcd does that on a port that \
             wants TLS; if so, set {ca} to the CA that signed {what} certificate"
        ),
        TlsFailure::Other(message) => write!(f, "TLS to {url} failed: {message} (check {ca} and {cert})"),
    }
}

/// The kinds of error a report names (`docs/cli.md`): few, stable, and enough to route an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorKind {
    /// Bad settings (exit code 2).
    Config,
    /// The instance metadata service failed or answered nonsense.
    Imds,
    /// The Spotinst API failed, refused our token, rate limited us or answered nonsense.
    Spotinst,
    /// etcd failed, or no member answered.
    Etcd,
    /// A file could not be read or written.
    Io,
    /// The command that stops etcd failed.
    Command,
    /// The planner refused to act on what it saw.
    Refused,
}

impl ErrorKind {
    /// The word a report carries.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Config => "config",
            ErrorKind::Imds => "imds",
            ErrorKind::Spotinst => "spotinst",
            ErrorKind::Etcd => "etcd",
            ErrorKind::Io => "io",
            ErrorKind::Command => "command",
            ErrorKind::Refused => "refused",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config { flag, env: "", message } => write!(f, "invalid {flag}: {message}"),
            Error::Config { flag, env, message } => write!(f, "invalid {flag} (environment {env}): {message}"),
            Error::Transport { url, message } => write!(f, "request to {url} failed: {message}"),
            Error::Tls { url, side, failure } => tls_message(f, url, *side, failure),
            Error::Status { url, status, body } => write!(f, "{url} answered HTTP {status}: {}", truncate(body)),
            Error::RateLimited { url, reset_secs } => {
                write!(f, "{url} is rate limiting us (HTTP 429, reset in {reset_secs} s)")
            }
            Error::SpotinstPaused { url, until } => write!(
                f,
                "not calling {url} before {}: the spotinst api rate limited this instance (HTTP 429 with \
                 X-RateLimit-Reset)",
                rfc3339(*until)
            ),
            Error::Unauthorized { url, status } => write!(f, "{url} rejected our credentials (HTTP {status})"),
            Error::BodyTooLarge { url, limit } => write!(f, "answer from {url} is larger than {limit} bytes"),
            Error::Malformed { url, message } => write!(f, "malformed answer from {url}: {message}"),
            Error::GroupDoesntExist { group_id } => write!(f, "spotinst group {group_id} does not exist"),
            Error::Spotinst { url, status, code, message } => {
                write!(f, "spotinst api {url} answered HTTP {status}: {code}: {message}")
            }
            Error::SpotinstEmpty { url } => write!(f, "spotinst api {url} returned no items: state unknown"),
            Error::Etcd { url, status, message, kind } => {
                write!(f, "etcd {url} answered HTTP {status}: {message}")?;
                match kind {
                    EtcdErrorKind::AuthFailed => f.write_str(
                        ": check --etcd-user (ETCD_SPOT_ETCD_USER) and the password in --etcd-password-file",
                    ),
                    EtcdErrorKind::NoUser => f.write_str(
                        ": etcd's auth is on; set --etcd-user and --etcd-password-file (ETCD_SPOT_ETCD_USER, \
                         ETCD_SPOT_ETCD_PASSWORD_FILE)",
                    ),
                    EtcdErrorKind::PermissionDenied => f.write_str(
                        ": the membership calls need a user with etcd's root role (--etcd-user, ETCD_SPOT_ETCD_USER)",
                    ),
                    _ => Ok(()),
                }
            }
            Error::NoGroupId => write!(
                f,
                "no group id: set --group-id (SPOTINST_GROUP_ID), tag the instance with spotinst:aws:ec2:group:id, \
                 or let the spotinst instance endpoint report it"
            ),
            Error::NoEtcdEndpoint { tried } => write!(f, "no etcd endpoint answered (tried {})", tried.join(", ")),
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Command { command, message } => write!(f, "command {command:?} failed: {message}"),
            Error::Refused { reason } => write!(f, "refused: {reason}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A Unix second as RFC 3339 in UTC (`2024-05-01T12:02:00Z`), for messages.
pub(crate) fn rfc3339(unix: u64) -> String {
    let t = i64::try_from(unix).ok().and_then(|s| jiff::Timestamp::from_second(s).ok());
    t.map_or_else(|| format!("unix time {unix}"), |t| t.to_string())
}

fn truncate(body: &str) -> &str {
    let end = body.char_indices().nth(200).map_or(body.len(), |(i, _)| i);
    &body[..end]
}

#[cfg(test)]
mod tests {
    use super::{Error, ErrorKind};

    #[test]
    fn each_error_has_its_kind() {
        let (imds, spot) = ("http://169.254.169.254", "https://api.spotinst.io");
        let check = |e: Error, want: ErrorKind| assert_eq!(e.kind(imds, spot), want, "{e}");
        let transport = |url: &str| Error::Transport { url: url.into(), message: "refused".into() };
        check(Error::Config { flag: "--timeout", env: "ETCD_SPOT_TIMEOUT", message: "x".into() }, ErrorKind::Config);
        check(Error::NoGroupId, ErrorKind::Spotinst);
        check(transport("http://169.254.169.254/latest/api/token"), ErrorKind::Imds);
        check(transport("https://api.spotinst.io/aws/ec2/group/sig-1"), ErrorKind::Spotinst);
        check(transport("http://10.0.0.1:2379/v3/cluster/member/list"), ErrorKind::Etcd);
        check(Error::Unauthorized { url: format!("{spot}/x"), status: 401 }, ErrorKind::Spotinst);
        check(Error::RateLimited { url: format!("{spot}/x"), reset_secs: 9 }, ErrorKind::Spotinst);
        check(Error::GroupDoesntExist { group_id: "sig-1".into() }, ErrorKind::Spotinst);
        check(Error::NoEtcdEndpoint { tried: vec![] }, ErrorKind::Etcd);
        check(Error::io("/var/lib/etcd", std::io::Error::other("disk")), ErrorKind::Io);
        check(Error::Command { command: "true".into(), message: "x".into() }, ErrorKind::Command);
        check(Error::Refused { reason: "x".into() }, ErrorKind::Refused);
    }

    /// No group ID is retried (exit 1), not a configuration error: Spotinst's instance route may not know a
    /// just-launched instance yet, and discover's unit does not restart after exit 2.
    #[test]
    fn no_group_id_is_retried() {
        assert_eq!(Error::NoGroupId.exit_code(), 1);
        assert_eq!(Error::Refused { reason: "x".into() }.exit_code(), 1);
    }
}
