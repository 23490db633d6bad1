//! Domain types, at the bottom of the crate: parsed at the edge and trusted inside (instance IDs, member IDs,
//! group instances, etcd members), plus the small vocabulary every layer shares (this instance, the state of
//! its data dir, the URL scheme, how etcd's settings are written, a secret, etcd's error answers classified).
//!
//! Nothing here performs I/O or imports another module of the crate; parsing functions reject malformed values
//! with a message rather than panicking.

use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// This instance, as IMDS describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Me {
    pub id: InstanceId,
    pub ip: Ipv4Addr,
}

/// What the local data dir holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "state", content = "owner")]
pub enum DataDirState {
    /// Missing, empty, or without an etcd `member/` folder.
    Empty,
    /// etcd data written by this instance (its marker names this instance).
    Mine,
    /// etcd data of unknown or other origin (marker missing or naming another instance).
    Foreign(Option<String>),
}

/// Which member and cluster a data dir's etcd data belongs to, as the metadata record at the head of its
/// write-ahead log says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WalIdentity {
    pub member_id: MemberId,
    pub cluster_id: u64,
}

impl std::fmt::Display for WalIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "member {} of cluster {:x}", self.member_id, self.cluster_id)
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

/// How discover writes etcd's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// `[Service]` plus `Environment="…"` lines.
    Dropin,
    /// `KEY="value"` lines for `EnvironmentFile=`.
    Env,
}

/// An etcd version as far as compatibility goes: major and minor (`3.5.30` and the cluster version `3.5.0` are
/// both 3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EtcdVersion {
    pub major: u32,
    pub minor: u32,
}

impl EtcdVersion {
    /// Parses `3.5`, `3.5.30`, `v3.5.30` or `3.5.0-rc.1`; anything else is an error.
    pub fn parse(s: &str) -> Result<EtcdVersion, String> {
        let t = s.trim().trim_start_matches('v');
        let mut parts = t.split(['.', '-']);
        let number = |p: Option<&str>| p.and_then(|n| n.parse::<u32>().ok());
        match (number(parts.next()), number(parts.next())) {
            (Some(major), Some(minor)) => Ok(EtcdVersion { major, minor }),
            _ => Err(format!("{s:?} is not an etcd version like 3.5.30")),
        }
    }
}

impl fmt::Display for EtcdVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// A value that must never appear in logs, errors or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A secret, remembered by [`scrub`] so that no text leaving the process shows it.
    pub fn new(value: impl Into<String>) -> Secret {
        let value = value.into();
        remember(&value);
        Secret(value)
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

/// The secrets of this process: every [`Secret`] made is remembered here, and every text that leaves the
/// process (the report, human or JSON, and every log line) passes [`scrub`], which replaces each of them with
/// `<redacted>`. This catches what no type can: a server echoing a request header or body into its error answer
/// (some proxies echo `Authorization`), which then travels inside an error message. Values shorter than 4 bytes
/// are not remembered: replacing them would mangle ordinary text and they guard nothing.
static SECRETS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// What replaces a secret.
pub const REDACTED: &str = "<redacted>";

/// Remembers `secret` so that [`scrub`] hides it.
fn remember(secret: &str) {
    if secret.len() < 4 {
        return;
    }
    if let Ok(mut s) = SECRETS.lock()
        && !s.iter().any(|known| known == secret)
    {
        s.push(secret.to_owned());
    }
}

/// `text` with every remembered secret replaced by `<redacted>`, as it is and as JSON escapes it.
pub fn scrub(text: &str) -> std::borrow::Cow<'_, str> {
    let Ok(secrets) = SECRETS.lock() else {
        return std::borrow::Cow::Borrowed(text);
    };
    let mut out = std::borrow::Cow::Borrowed(text);
    for secret in secrets.iter() {
        let escaped = serde_json::to_string(secret).unwrap_or_default();
        let escaped = escaped.trim_matches('"');
        for form in [secret.as_str(), escaped] {
            if !form.is_empty() && out.contains(form) {
                out = std::borrow::Cow::Owned(out.replace(form, REDACTED));
            }
        }
    }
    out
}

/// An EC2 instance ID such as `i-0abc123`. Also the etcd member name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InstanceId(String);

impl InstanceId {
    /// Parses an instance ID: non-empty, at most 64 ASCII letters, digits or `-`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(format!("invalid instance id {s:?}"));
        }
        Ok(InstanceId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for InstanceId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        InstanceId::parse(&s)
    }
}

impl From<InstanceId> for String {
    fn from(id: InstanceId) -> String {
        id.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An etcd member ID. etcd's JSON gateway writes 64-bit integers as decimal
/// strings; this type reads both strings and numbers and always writes a
/// decimal string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemberId(pub u64);

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

impl Serialize for MemberId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for MemberId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_u64(d).map(MemberId)
    }
}

/// Reads a u64 written either as a JSON number or as a decimal string, the way
/// grpc-gateway writes 64-bit fields.
pub fn deserialize_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Num(u64),
        Str(String),
    }
    match Raw::deserialize(d)? {
        Raw::Num(n) => Ok(n),
        Raw::Str(s) => s.parse().map_err(|_| serde::de::Error::custom(format!("not a 64-bit decimal: {s:?}"))),
    }
}

/// What the Spotinst group status says about one instance, reduced to what the
/// planner needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceState {
    /// Running or about to run: counts as a live member of the group.
    Running,
    /// Being taken away (terminating, shutting down, stopped, …).
    Leaving,
}

impl InstanceState {
    /// Maps a Spotinst/EC2 status string. Unknown values count as running, so
    /// an unexpected word can never make the tool remove a member.
    pub fn from_status(status: &str) -> InstanceState {
        match status.to_ascii_lowercase().as_str() {
            "terminating" | "terminated" | "shutting-down" | "stopping" | "stopped" => InstanceState::Leaving,
            _ => InstanceState::Running,
        }
    }
}

/// One instance of the Elastigroup, as listed by the group status call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInstance {
    pub id: InstanceId,
    pub private_ip: Option<Ipv4Addr>,
    pub state: InstanceState,
}

/// The group's capacity settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Capacity {
    pub target: u32,
    pub minimum: u32,
    pub maximum: u32,
}

/// Spotinst's lifecycle state of one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LifeCycle {
    Active,
    Terminating,
    /// Any other value, kept verbatim.
    Other(String),
}

impl LifeCycle {
    /// Case-insensitive mapping of `lifeCycleState`.
    pub fn parse(s: &str) -> LifeCycle {
        if s.eq_ignore_ascii_case("ACTIVE") {
            LifeCycle::Active
        } else if s.eq_ignore_ascii_case("TERMINATING") {
            LifeCycle::Terminating
        } else {
            LifeCycle::Other(s.to_owned())
        }
    }
}

/// What the Spotinst instance endpoint says about one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceStatus {
    pub id: InstanceId,
    pub lifecycle: LifeCycle,
    pub group_id: Option<String>,
    pub private_ip: Option<Ipv4Addr>,
}

/// One etcd member as the member list reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    #[serde(rename = "ID")]
    pub id: MemberId,
    /// Empty for a member that was added but never started.
    #[serde(default)]
    pub name: String,
    #[serde(rename = "peerURLs", default)]
    pub peer_urls: Vec<String>,
    #[serde(rename = "clientURLs", default)]
    pub client_urls: Vec<String>,
    #[serde(rename = "isLearner", default)]
    pub is_learner: bool,
}

impl Member {
    /// A member that was added but has never started has no name.
    pub fn is_started(&self) -> bool {
        !self.name.is_empty()
    }

    /// The host part of the first peer URL (`http://10.0.0.1:2380` → `10.0.0.1`).
    pub fn peer_host(&self) -> Option<&str> {
        self.peer_urls.first().and_then(|u| url_host(u))
    }
}

/// The host of a URL like `scheme://host:port/...`, without port or path.
pub fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next()?;
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    };
    (!host.is_empty()).then_some(host)
}

/// The response header etcd attaches to every answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ResponseHeader {
    #[serde(default, deserialize_with = "deserialize_u64")]
    pub cluster_id: u64,
    #[serde(default, deserialize_with = "deserialize_u64")]
    pub member_id: u64,
    #[serde(default, deserialize_with = "deserialize_u64")]
    pub raft_term: u64,
    #[serde(default, deserialize_with = "deserialize_u64")]
    pub revision: u64,
}

/// What etcd's server said, classified from its error message.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtcdErrorKind {
    /// `re-configuration failed due to not enough started members`
    NotEnoughStarted,
    /// `unhealthy cluster`: the serving member is not connected to every voter.
    UnhealthyCluster,
    /// `Peer URLs already exists`
    PeerUrlExists,
    /// `member not found`
    MemberNotFound,
    /// `too many learner members in cluster`
    TooManyLearners,
    /// `can only promote a learner member which is in sync with leader`
    /// (also 3.4's `learner member not in sync`)
    LearnerNotReady,
    /// `can only promote a learner member` (the member is a voter)
    NotALearner,
    /// `rpc not supported for learner`
    NotSupportedForLearner,
    /// `not leader`
    NotLeader,
    /// `leader changed`: an election happened while the request was in flight.
    LeaderChanged,
    /// `no leader`: an election is under way.
    NoLeader,
    /// `request timed out` (also "… possibly due to previous leader failure" or "… connection lost").
    TimedOut,
    /// `given member URLs are invalid`
    InvalidUrls,
    /// `invalid auth token`: the token is unknown to this member or expired (401, code 16).
    InvalidAuthToken,
    /// `authentication failed, invalid user ID or password`
    AuthFailed,
    /// `user name is empty`: etcd's auth is on and no token was sent.
    NoUser,
    /// `permission denied`: the user lacks the role the call needs.
    PermissionDenied,
    /// Any other message.
    Other,
}

impl EtcdErrorKind {
    /// Classifies an etcd error message.
    pub fn classify(message: &str) -> EtcdErrorKind {
        let m = message.to_ascii_lowercase();
        let table: &[(&str, EtcdErrorKind)] = &[
            ("not enough started members", EtcdErrorKind::NotEnoughStarted),
            ("unhealthy cluster", EtcdErrorKind::UnhealthyCluster),
            ("peer urls already exists", EtcdErrorKind::PeerUrlExists),
            ("member not found", EtcdErrorKind::MemberNotFound),
            ("too many learner members", EtcdErrorKind::TooManyLearners),
            ("in sync with leader", EtcdErrorKind::LearnerNotReady),
            ("learner member not in sync", EtcdErrorKind::LearnerNotReady),
            ("can only promote a learner member", EtcdErrorKind::NotALearner),
            ("not supported for learner", EtcdErrorKind::NotSupportedForLearner),
            ("not leader", EtcdErrorKind::NotLeader),
            ("leader changed", EtcdErrorKind::LeaderChanged),
            ("no leader", EtcdErrorKind::NoLeader),
            ("request timed out", EtcdErrorKind::TimedOut),
            ("member urls are invalid", EtcdErrorKind::InvalidUrls),
            ("invalid auth token", EtcdErrorKind::InvalidAuthToken),
            ("authentication failed", EtcdErrorKind::AuthFailed),
            ("user name is empty", EtcdErrorKind::NoUser),
            ("permission denied", EtcdErrorKind::PermissionDenied),
        ];
        table.iter().find(|(needle, _)| m.contains(needle)).map_or(EtcdErrorKind::Other, |(_, k)| *k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_hidden_raw_and_json_escaped() {
        let _s = Secret::new("pa\"ss-9f3k");
        let _short = Secret::new("ab");
        let text = r#"{"error":"bad header Authorization: pa\"ss-9f3k"} and pa"ss-9f3k; ab stays"#;
        let clean = scrub(text);
        assert!(!clean.contains("9f3k"), "{clean}");
        assert!(clean.contains("ab stays"), "{clean}");
    }

    #[test]
    fn member_id_round_trips_decimal_strings() {
        let id: MemberId = serde_json::from_str("\"4067869623316048294\"").unwrap();
        assert_eq!(id, MemberId(4067869623316048294));
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"4067869623316048294\"");
        let id: MemberId = serde_json::from_str("18446744073709551615").unwrap();
        assert_eq!(id, MemberId(u64::MAX));
        assert!(serde_json::from_str::<MemberId>("\"-1\"").is_err());
        assert!(serde_json::from_str::<MemberId>("\"abc\"").is_err());
    }

    #[test]
    fn unstarted_member_parses_with_defaults() {
        let m: Member =
            serde_json::from_str(r#"{"ID":"12","peerURLs":["http://127.0.88.4:2380"],"isLearner":true}"#).unwrap();
        assert!(!m.is_started());
        assert_eq!(m.peer_host(), Some("127.0.88.4"));
    }

    #[test]
    fn url_host_cases() {
        for (url, host) in [
            ("http://10.0.0.1:2380", Some("10.0.0.1")),
            ("https://10.0.0.1", Some("10.0.0.1")),
            ("http://10.0.0.1:2380/", Some("10.0.0.1")),
            ("http://", None),
        ] {
            assert_eq!(url_host(url), host, "{url}");
        }
    }

    #[test]
    fn instance_ids_are_validated() {
        assert!(InstanceId::parse("i-0abc").is_ok());
        assert!(InstanceId::parse("").is_err());
        assert!(InstanceId::parse("i-0 abc").is_err());
        assert!(InstanceId::parse("i/../x").is_err());
    }

    #[test]
    fn etcd_versions_parse_to_major_and_minor() {
        for (text, want) in [("3.5.30", Some((3, 5))), ("3.4.0", Some((3, 4))), ("v3.6.0-rc.1", Some((3, 6)))] {
            let got = EtcdVersion::parse(text).ok().map(|v| (v.major, v.minor));
            assert_eq!(got, want, "{text}");
        }
        for bad in ["", "3", "not_decided", "x.y"] {
            assert!(EtcdVersion::parse(bad).is_err(), "{bad}");
        }
        assert!(EtcdVersion::parse("3.4.23").unwrap() < EtcdVersion::parse("3.5.0").unwrap());
    }

    #[test]
    fn lifecycle_is_case_insensitive() {
        assert_eq!(LifeCycle::parse("terminating"), LifeCycle::Terminating);
        assert_eq!(LifeCycle::parse("ACTIVE"), LifeCycle::Active);
        assert_eq!(LifeCycle::parse("odd"), LifeCycle::Other("odd".into()));
    }

    #[test]
    fn classifies_etcd_messages() {
        for (msg, kind) in [
            ("etcdserver: re-configuration failed due to not enough started members", EtcdErrorKind::NotEnoughStarted),
            ("etcdserver: unhealthy cluster", EtcdErrorKind::UnhealthyCluster),
            ("etcdserver: Peer URLs already exists", EtcdErrorKind::PeerUrlExists),
            ("etcdserver: member not found", EtcdErrorKind::MemberNotFound),
            ("etcdserver: too many learner members in cluster", EtcdErrorKind::TooManyLearners),
            (
                "etcdserver: can only promote a learner member which is in sync with leader",
                EtcdErrorKind::LearnerNotReady,
            ),
            ("etcdserver: can only promote a learner member", EtcdErrorKind::NotALearner),
            ("etcdserver: rpc not supported for learner", EtcdErrorKind::NotSupportedForLearner),
            ("etcdserver: not leader", EtcdErrorKind::NotLeader),
            ("etcdserver: leader changed", EtcdErrorKind::LeaderChanged),
            ("etcdserver: no leader", EtcdErrorKind::NoLeader),
            ("etcdserver: request timed out", EtcdErrorKind::TimedOut),
            ("etcdserver: request timed out, possibly due to previous leader failure", EtcdErrorKind::TimedOut),
            ("etcdserver: given member URLs are invalid", EtcdErrorKind::InvalidUrls),
            ("something else", EtcdErrorKind::Other),
        ] {
            assert_eq!(EtcdErrorKind::classify(msg), kind, "{msg}");
        }
    }
}
