//! The harness's one etcd client: etcd's v3 JSON gateway (`POST /v3/...`) and `GET /health`, on ureq.
//!
//! Every caller in the kit and in xtask (the group's member lists and writes, the supervisor's health checks,
//! the chaos observer and writer, the bench's polls) goes through [`EtcdClient`]. It must never depend on
//! etcd-spot-core (the harness observes the code under test, it does not share its client), never use a
//! proxy, and never reuse a connection: a call is one connection, so a killed etcd never leaves a stale
//! pooled connection behind to fail the next call.
//!
//! Against a TLS etcd it speaks https with what its [`EtcdAccess`] holds (the one CA it trusts, its client
//! certificate) and, once auth is on, sends a token in `Authorization` on every gateway call, fetching one with
//! `auth/authenticate` when it has none and again, once, when etcd calls it invalid (a restarted member forgets
//! the simple tokens it knew). `/health` and the peer API take no token.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT as BASE64;
use serde_json::{Value, json};

use crate::EtcdAccess;

/// Largest answer read.
const MAX_ANSWER: u64 = 8 * 1024 * 1024;
/// Keys per page when reading a prefix.
const PAGE: u64 = 2000;

/// One etcd member as the member list reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimMember {
    /// Member ID as etcd's decimal string.
    pub id: String,
    /// Member name (the instance ID under etcd-spot); empty for a member that was added but never started.
    pub name: String,
    /// Peer URLs.
    pub peer_urls: Vec<String>,
    /// Client URLs; empty for an unstarted member.
    pub client_urls: Vec<String>,
    /// Whether the member is a learner.
    pub is_learner: bool,
}

/// What `maintenance/status` says about the member that answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdStatus {
    /// The cluster ID in the answer's header.
    pub cluster_id: String,
    /// The ID of the member that answered.
    pub member_id: String,
    /// The ID of the leader it knows; `None` while it knows none.
    pub leader: Option<String>,
    /// The member's server version (`3.5.30`).
    pub version: String,
}

/// A client of one etcd member's client URL, each call bounded by one timeout.
#[derive(Debug, Clone)]
pub struct EtcdClient {
    url: String,
    agent: ureq::Agent,
    access: EtcdAccess,
}

impl EtcdClient {
    /// A client of `url` (`http://ip:port`); connecting and each whole call are bounded by `timeout`.
    pub fn new(url: &str, timeout: Duration) -> EtcdClient {
        EtcdClient::with_access(url, timeout, &EtcdAccess::plain())
    }

    /// A client of `url` that reaches it as `access` says (https with its CA and client certificate, a token
    /// once auth is on).
    pub fn with_access(url: &str, timeout: Duration, access: &EtcdAccess) -> EtcdClient {
        let mut config = ureq::Agent::config_builder();
        if let Some(tls) = access.tls_config() {
            config = config.tls_config(tls.clone());
        }
        let agent = config
            .timeout_connect(Some(timeout))
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            .proxy(None)
            .user_agent("etcd-spot-sim")
            .build()
            .new_agent();
        EtcdClient { url: url.trim_end_matches('/').to_string(), agent, access: access.clone() }
    }

    /// The client URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// One `POST {url}{path}` with a JSON body: the status and the body. Once auth is on it carries a token
    /// (fetched first when there is none; when etcd calls it invalid, a new one is fetched and the call made
    /// once more). When no token can be had (no quorum to authenticate with), the call goes without one and
    /// etcd's answer says what that means.
    pub fn post(&self, path: &str, body: &Value) -> Result<(u16, String), String> {
        if !self.access.auth_on() {
            return self.post_with(path, body, None);
        }
        let cached = self.access.token();
        let token = match cached.clone() {
            Some(t) => Some(t),
            None => self.authenticate().ok(),
        };
        let (status, answer) = self.post_with(path, body, token.as_deref())?;
        if cached.is_some() && invalid_token(status, &answer) {
            self.access.store_token(None);
            if let Ok(fresh) = self.authenticate() {
                return self.post_with(path, body, Some(&fresh));
            }
        }
        Ok((status, answer))
    }

    fn post_with(&self, path: &str, body: &Value, token: Option<&str>) -> Result<(u16, String), String> {
        let at = format!("{}{path}", self.url);
        let mut request = self.agent.post(&at).header("Content-Type", "application/json");
        if let Some(token) = token {
            request = request.header("Authorization", token);
        }
        let mut resp = request.send(body.to_string().as_str()).map_err(|e| format!("{at}: {e}"))?;
        read(&at, &mut resp)
    }

    /// `auth/authenticate` as the access's user: the token, remembered for every client sharing the access.
    pub fn authenticate(&self) -> Result<String, String> {
        let (user, password) = self.access.credentials().ok_or("no etcd user to authenticate as")?;
        let (status, answer) =
            self.post_with("/v3/auth/authenticate", &json!({"name": user, "password": password}), None)?;
        let token = match serde_json::from_str::<Value>(&answer) {
            Ok(v) if status == 200 => text(&v["token"]),
            _ => String::new(),
        };
        if token.is_empty() {
            return Err(format!("{}/v3/auth/authenticate as {user} answered {status}: {}", self.url, answer.trim()));
        }
        self.access.store_token(Some(token.clone()));
        Ok(token)
    }

    /// One JSON gateway call; an answer other than 200, or one that is not JSON, is an error carrying the body.
    pub fn call(&self, path: &str, body: &Value) -> Result<Value, String> {
        let (status, answer) = self.post(path, body)?;
        if status != 200 {
            return Err(format!("{}{path} answered {status}: {}", self.url, answer.trim()));
        }
        serde_json::from_str(&answer).map_err(|e| format!("{}{path} answered bad JSON ({e}): {answer:?}", self.url))
    }

    /// `GET <peer_url>/version` on a member's peer API: its server version and the cluster version
    /// (`etcdcluster`, `not_decided` until the cluster has one).
    pub fn peer_versions(peer_url: &str) -> Result<(String, String), String> {
        EtcdClient::peer_versions_with(peer_url, &EtcdAccess::plain())
    }

    /// [`EtcdClient::peer_versions`] reaching the peer port as `peer` says (its peer CA and peer certificate).
    pub fn peer_versions_with(peer_url: &str, peer: &EtcdAccess) -> Result<(String, String), String> {
        let client = EtcdClient::with_access(peer_url, Duration::from_secs(3), peer);
        let at = format!("{}/version", client.url);
        let mut resp = client.agent.get(&at).call().map_err(|e| format!("{at}: {e}"))?;
        let (status, body) = read(&at, &mut resp)?;
        let v: Value = serde_json::from_str(&body).map_err(|e| format!("{at} answered {status}, not JSON ({e})"))?;
        Ok((text(&v["etcdserver"]), text(&v["etcdcluster"])))
    }

    /// One `GET {url}{path}` (no token): the status and the body.
    pub fn get_text(&self, path: &str) -> Result<(u16, String), String> {
        let at = format!("{}{path}", self.url);
        let mut resp = self.agent.get(&at).call().map_err(|e| format!("{at}: {e}"))?;
        read(&at, &mut resp)
    }

    /// `GET /health`: Ok when it answers 200 with `{"health":"true"}`.
    pub fn health(&self) -> Result<(), String> {
        let at = format!("{}/health", self.url);
        let mut resp = self.agent.get(&at).call().map_err(|e| format!("{at}: {e}"))?;
        let (status, body) = read(&at, &mut resp)?;
        let healthy = serde_json::from_str::<Value>(&body).ok().is_some_and(|v| v["health"] == "true");
        if status == 200 && healthy { Ok(()) } else { Err(format!("/health answered {status}: {:?}", body.trim())) }
    }

    /// Writes `key` = `value` (`kv/put`). An answer of 200 is an acknowledged write: `Some(cluster ID)` from its
    /// header, or `None` when the body could not be read as JSON.
    pub fn put(&self, key: &str, value: &str) -> Result<Option<String>, String> {
        let body = json!({"key": encode(key), "value": encode(value)});
        let (status, answer) = self.post("/v3/kv/put", &body)?;
        if status != 200 {
            return Err(format!("{}/v3/kv/put answered {status}: {}", self.url, answer.trim()));
        }
        Ok(serde_json::from_str::<Value>(&answer).ok().map(|v| text(&v["header"]["cluster_id"])))
    }

    /// Reads `key` (`kv/range`, linearizable); `None` when it does not exist.
    pub fn get(&self, key: &str) -> Result<Option<String>, String> {
        let v = self.call("/v3/kv/range", &json!({"key": encode(key)}))?;
        let Some(kv) = v["kvs"].as_array().and_then(|a| a.first()) else { return Ok(None) };
        decode(&kv["value"]).map(Some).map_err(|e| format!("value of {key}: {e}"))
    }

    /// Every key under `prefix` with its value, read linearizably in pages.
    pub fn prefix(&self, prefix: &str) -> Result<BTreeMap<String, String>, String> {
        let end = encode(&prefix_end(prefix));
        let mut out = BTreeMap::new();
        let mut from = prefix.to_string();
        loop {
            let body = json!({"key": encode(&from), "range_end": end, "limit": PAGE});
            let v = self.call("/v3/kv/range", &body)?;
            let mut last = None;
            for kv in v["kvs"].as_array().map(Vec::as_slice).unwrap_or_default() {
                let key = decode(&kv["key"])?;
                out.insert(key.clone(), decode(&kv["value"])?);
                last = Some(key);
            }
            match last {
                Some(k) if v["more"].as_bool() == Some(true) => from = format!("{k}\0"),
                _ => return Ok(out),
            }
        }
    }

    /// The member list (linearizable), with the answering cluster ID.
    pub fn members(&self) -> Result<(String, Vec<SimMember>), String> {
        self.member_list(true)
    }

    /// The answering member's own member list (serializable, `{}`), which it serves without quorum too (3.5
    /// serves the linearizable one only with quorum).
    pub fn members_local(&self) -> Result<(String, Vec<SimMember>), String> {
        self.member_list(false)
    }

    fn member_list(&self, linearizable: bool) -> Result<(String, Vec<SimMember>), String> {
        let body = if linearizable { json!({"linearizable": true}) } else { json!({}) };
        let v = self.call("/v3/cluster/member/list", &body)?;
        let urls = |m: &Value| match m {
            Value::Array(a) => a.iter().map(text).collect(),
            _ => Vec::new(),
        };
        let members = v["members"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|m| SimMember {
                id: text(&m["ID"]),
                name: text(&m["name"]),
                peer_urls: urls(&m["peerURLs"]),
                client_urls: urls(&m["clientURLs"]),
                is_learner: m["isLearner"].as_bool().unwrap_or(false),
            })
            .collect();
        Ok((text(&v["header"]["cluster_id"]), members))
    }

    /// `maintenance/status` of the member.
    pub fn status(&self) -> Result<EtcdStatus, String> {
        let v = self.call("/v3/maintenance/status", &json!({}))?;
        let leader = text(&v["leader"]);
        Ok(EtcdStatus {
            cluster_id: text(&v["header"]["cluster_id"]),
            member_id: text(&v["header"]["member_id"]),
            leader: (!leader.is_empty() && leader != "0").then_some(leader),
            version: text(&v["version"]),
        })
    }
}

/// Whether etcd refused a call for its token (expired, or unknown to a member that restarted).
fn invalid_token(status: u16, answer: &str) -> bool {
    status == 401 || answer.contains("invalid auth token")
}

/// The status and the body (lossy UTF-8, at most [`MAX_ANSWER`] bytes) of an answer.
fn read(at: &str, resp: &mut ureq::http::Response<ureq::Body>) -> Result<(u16, String), String> {
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER)
        .lossy_utf8(true)
        .read_to_string()
        .map_err(|e| format!("reading from {at}: {e}"))?;
    Ok((status, body))
}

/// Standard base64 with padding, what etcd's JSON gateway uses for keys and values.
fn encode(text: &str) -> String {
    BASE64.encode(text.as_bytes())
}

/// A base64 JSON string decoded to text (lossy UTF-8); absent is empty.
fn decode(v: &Value) -> Result<String, String> {
    let bytes = BASE64.decode(v.as_str().unwrap_or("")).map_err(|e| format!("bad base64 from etcd: {e}"))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The end of the key range holding every key that starts with `prefix`: its last byte plus one.
fn prefix_end(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    while let Some(last) = bytes.pop() {
        if last < 0x7f {
            bytes.push(last + 1);
            return String::from_utf8_lossy(&bytes).into_owned();
        }
    }
    "\0".to_string()
}

/// A JSON string or number as text (etcd sends 64-bit numbers as decimal strings); empty when absent.
pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_matches_known_values() {
        for (plain, coded) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg==")] {
            assert_eq!(encode(plain), coded);
            assert_eq!(decode(&json!(coded)).expect("decodes"), plain);
        }
        assert_eq!(decode(&json!("Zm9vYg")).expect("padding is optional"), "foob");
        assert!(decode(&json!("Zm9v!")).is_err());
        assert!(decode(&json!("Z")).is_err());
        assert_eq!(decode(&Value::Null).expect("absent"), "");
    }

    #[test]
    fn prefix_ends_are_the_next_key_after_every_key_with_the_prefix() {
        assert_eq!(prefix_end("chaos/"), "chaos0");
        assert_eq!(prefix_end("a"), "b");
        assert_eq!(prefix_end(""), "\0");
    }

    #[test]
    fn numbers_and_strings_read_as_text() {
        assert_eq!(text(&json!("12")), "12");
        assert_eq!(text(&json!(12)), "12");
        assert_eq!(text(&Value::Null), "");
    }

    #[test]
    fn an_address_nobody_listens_on_is_an_error_naming_it() {
        let c = EtcdClient::new("http://127.0.0.1:9/", Duration::from_secs(1));
        assert_eq!(c.url(), "http://127.0.0.1:9");
        let e = c.health().expect_err("nothing listens on port 9");
        assert!(e.contains("127.0.0.1:9/health"), "{e}");
        let e = c.call("/v3/kv/range", &json!({})).expect_err("nothing listens on port 9");
        assert!(e.contains("127.0.0.1:9/v3/kv/range"), "{e}");
    }
}
