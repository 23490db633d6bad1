//! Client for etcd v3's JSON gateway (see `docs/etcd.md`): membership (list, add, remove, promote), status,
//! health and leadership transfer on the client API, and the member list and cluster version on the peer API.
//! `endpoint` is always a client URL like `http://10.0.0.1:2379`, `peer_url` a peer URL.
//!
//! Answers are parsed at this edge: IDs are [`MemberId`]s (decimal strings on the wire), every field but the
//! always-present `header` has a default because etcd omits zero values, and error bodies become
//! [`Error::Etcd`] with a classified [`EtcdErrorKind`]. It must never send a request without a timeout, never
//! repeat a `member add` (a lost answer would add the member twice), and never retry a membership change that
//! etcd refused (4xx).

use serde::Deserialize;
use serde_json::{Value, json};

use super::etcd_auth::EtcdAuth;
use super::http::{Http, Method, Request, Response};
use crate::error::{Error, EtcdErrorKind, Result};
use crate::types::{Member, MemberId, ResponseHeader, deserialize_u64};

/// The answer to `member list`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MemberList {
    /// Response header (cluster and serving member IDs, raft term); always sent, so required.
    pub header: ResponseHeader,
    /// Every member, learners and unstarted members included.
    #[serde(default)]
    pub members: Vec<Member>,
}

/// The answer to `member add`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MemberAdded {
    /// Response header; always sent, so required.
    pub header: ResponseHeader,
    /// The member just added (no name, no client URLs yet).
    pub member: Member,
    /// Every member after the change, the new one included.
    #[serde(default)]
    pub members: Vec<Member>,
}

/// The answer to `maintenance status` from one member.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EtcdStatus {
    /// Response header; `member_id` is the answering member. Always sent, so required.
    pub header: ResponseHeader,
    /// Server version, e.g. `3.4.23`.
    #[serde(default)]
    pub version: String,
    /// Database size in bytes.
    #[serde(rename = "dbSize", default, deserialize_with = "deserialize_u64")]
    pub db_size: u64,
    /// The leader's member ID as this member knows it (0: no leader).
    #[serde(default = "no_member")]
    pub leader: MemberId,
    /// Raft log index.
    #[serde(rename = "raftIndex", default, deserialize_with = "deserialize_u64")]
    pub raft_index: u64,
    /// Raft term.
    #[serde(rename = "raftTerm", default, deserialize_with = "deserialize_u64")]
    pub raft_term: u64,
    /// Raft applied index.
    #[serde(rename = "raftAppliedIndex", default, deserialize_with = "deserialize_u64")]
    pub raft_applied_index: u64,
    /// Whether the answering member is a learner.
    #[serde(rename = "isLearner", default)]
    pub is_learner: bool,
    /// Alarms and other errors the member reports.
    #[serde(default)]
    pub errors: Vec<String>,
}

fn no_member() -> MemberId {
    MemberId(0)
}

/// The etcd v3 JSON gateway client.
#[derive(Debug, Clone)]
pub struct EtcdV3 {
    /// To etcd's client port.
    http: Http,
    /// To etcd's peer port (its own TLS material when peer TLS is on).
    peer: Http,
    /// etcd's auth, when it is on.
    auth: Option<EtcdAuth>,
}

// Every v3 answer but transfer-leadership's carries a header (its cluster_id is never zero), so a missing
// header means the answer is not from etcd: required everywhere it is always sent.

#[derive(Deserialize)]
struct Members {
    #[serde(rename = "header")]
    _header: ResponseHeader,
    #[serde(default)]
    members: Vec<Member>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct HealthBody {
    health: Value,
}

impl EtcdV3 {
    /// A client sending through `http` (whose timeouts bound every call).
    pub fn new(http: Http) -> EtcdV3 {
        EtcdV3 { peer: http.clone(), http, auth: None }
    }

    /// The same client reading etcd's peer API through `peer` (with the peer port's TLS material).
    pub fn with_peer(self, peer: Http) -> EtcdV3 {
        EtcdV3 { peer, ..self }
    }

    /// The same client authenticating as `auth` on every client-port call.
    pub fn with_auth(self, auth: Option<EtcdAuth>) -> EtcdV3 {
        EtcdV3 { auth, ..self }
    }

    /// POSTs `body` to `endpoint` + `path` and parses a 2xx answer as `T`. With auth on, sends the endpoint's
    /// token, and authenticates again once when etcd answers that the token is invalid or expired (the call was
    /// refused before etcd did anything, so sending it again is safe even for `member add`).
    fn call<T: for<'de> Deserialize<'de>>(&self, endpoint: &str, path: &str, body: Value, retry: bool) -> Result<T> {
        let endpoint = endpoint.trim_end_matches('/');
        let url = format!("{endpoint}{path}");
        let mut fresh_token = false;
        let resp = loop {
            let mut headers = vec![("Content-Type", "application/json".to_owned())];
            if let Some(auth) = &self.auth {
                headers.push(("Authorization", auth.token(&self.http, endpoint)?.expose().to_owned()));
            }
            let req = Request { method: Method::Post, url: url.clone(), headers, body: Some(body.to_string()), retry };
            let resp = self.http.send(req)?;
            if resp.is_success() {
                break resp;
            }
            let error = etcd_error(url.clone(), resp);
            match &self.auth {
                Some(auth) if error.etcd_kind() == Some(EtcdErrorKind::InvalidAuthToken) && !fresh_token => {
                    log::debug!("{url}: the auth token is invalid or expired; authenticating again");
                    auth.forget(endpoint);
                    fresh_token = true;
                }
                _ => return Err(error),
            }
        };
        serde_json::from_str(&resp.body).map_err(|e| Error::Malformed { url, message: e.to_string() })
    }
}

/// One member as the peer API lists it (`GET <peer URL>/members`): numeric IDs, lower-case `id`.
#[derive(Deserialize)]
struct PeerMember {
    id: MemberId,
    #[serde(default)]
    name: String,
    #[serde(rename = "peerURLs", default)]
    peer_urls: Vec<String>,
    #[serde(rename = "clientURLs", default)]
    client_urls: Vec<String>,
    #[serde(rename = "isLearner", default)]
    is_learner: bool,
}

impl EtcdV3 {
    /// `GET <peer_url>/members` on etcd's peer API, which a member serves even before its cluster has formed
    /// (its client API answers nothing until then). The cluster ID comes from the `X-Etcd-Cluster-Id` header
    /// (hex); the header's other IDs are zero. An answer without that header, or with an empty list, is not
    /// etcd speaking: [`Error::Malformed`].
    pub fn peer_members(&self, peer_url: &str) -> Result<MemberList> {
        let (url, resp) = self.peer_get(peer_url, "/members")?;
        let malformed = |message: String| Error::Malformed { url: url.clone(), message };
        let cluster_id = resp
            .header("X-Etcd-Cluster-Id")
            .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
            .filter(|&id| id != 0)
            .ok_or_else(|| malformed("no X-Etcd-Cluster-Id header".into()))?;
        let list: Vec<PeerMember> = serde_json::from_str(&resp.body).map_err(|e| malformed(e.to_string()))?;
        if list.is_empty() {
            return Err(malformed("the member list is empty".into()));
        }
        let members = list
            .into_iter()
            .map(|m| Member {
                id: m.id,
                name: m.name,
                peer_urls: m.peer_urls,
                client_urls: m.client_urls,
                is_learner: m.is_learner,
            })
            .collect();
        Ok(MemberList { header: ResponseHeader { cluster_id, ..ResponseHeader::default() }, members })
    }
}

impl EtcdV3 {
    /// One GET through `http`, never retried (these are probes), whatever its status; returns the URL asked and
    /// the answer.
    fn get_once(http: &Http, base: &str, path: &str) -> Result<(String, Response)> {
        let url = format!("{}{path}", base.trim_end_matches('/'));
        let req = Request { method: Method::Get, url: url.clone(), headers: vec![], body: None, retry: false };
        Ok((url, http.send(req)?))
    }

    /// One GET on etcd's peer API; a non-2xx answer is [`Error::Status`].
    fn peer_get(&self, peer_url: &str, path: &str) -> Result<(String, Response)> {
        let (url, resp) = EtcdV3::get_once(&self.peer, peer_url, path)?;
        if !resp.is_success() {
            return Err(Error::Status { url, status: resp.status, body: resp.body });
        }
        Ok((url, resp))
    }
}

#[derive(Deserialize)]
struct VersionBody {
    #[serde(default)]
    etcdcluster: String,
}

impl EtcdV3 {
    /// The cluster version a member reports on `GET <peer_url>/version` (`etcdcluster`), `None` while it is
    /// `not_decided`: for a few seconds after a cluster forms, until its leader sets it. etcd 3.4 refuses to start
    /// a member with `existing` until then ("incompatible with current running cluster").
    pub fn cluster_version(&self, peer_url: &str) -> Result<Option<String>> {
        let (url, resp) = self.peer_get(peer_url, "/version")?;
        let body: VersionBody = serde_json::from_str(&resp.body)
            .map_err(|e| Error::Malformed { url: url.clone(), message: e.to_string() })?;
        match body.etcdcluster.as_str() {
            "" => Err(Error::Malformed { url, message: "no etcdcluster field".into() }),
            "not_decided" => Ok(None),
            v => Ok(Some(v.to_owned())),
        }
    }
}

/// Turns a non-2xx answer into [`Error::Etcd`] (when it carries etcd's error body) or [`Error::Status`].
pub(crate) fn etcd_error(url: String, resp: Response) -> Error {
    let message = serde_json::from_str::<ErrorBody>(&resp.body)
        .ok()
        .and_then(|b| b.message.filter(|m| !m.is_empty()).or(b.error))
        .filter(|m| !m.is_empty());
    match message {
        Some(message) => Error::Etcd { url, status: resp.status, kind: EtcdErrorKind::classify(&message), message },
        None => Error::Status { url, status: resp.status, body: resp.body },
    }
}

impl EtcdV3 {
    /// `POST /v3/cluster/member/list` with `{"linearizable":true}`. A learner answers 503
    /// [`EtcdErrorKind::NotSupportedForLearner`]; an empty list is [`Error::Malformed`].
    pub fn member_list(&self, endpoint: &str) -> Result<MemberList> {
        self.list(endpoint, true)
    }

    /// `POST /v3/cluster/member/list` with `{}`: the answering member's own view, which it serves without
    /// quorum. etcd 3.4 always answers this way (it ignores `linearizable`); 3.5 serves the linearizable list
    /// only with quorum (without it, 503 "request timed out" after about 7 s).
    pub fn member_list_local(&self, endpoint: &str) -> Result<MemberList> {
        self.list(endpoint, false)
    }

    fn list(&self, endpoint: &str, linearizable: bool) -> Result<MemberList> {
        let body = if linearizable { json!({"linearizable": true}) } else { json!({}) };
        let list: MemberList = self.call(endpoint, "/v3/cluster/member/list", body, true)?;
        if list.members.is_empty() {
            // The answering member is always in the list: an empty one is not etcd speaking.
            return Err(Error::Malformed {
                url: format!("{}/v3/cluster/member/list", endpoint.trim_end_matches('/')),
                message: "the member list is empty".into(),
            });
        }
        Ok(list)
    }

    /// `POST /v3/cluster/member/add`; sent once, never retried.
    pub fn member_add(&self, endpoint: &str, peer_urls: &[String], learner: bool) -> Result<MemberAdded> {
        self.call(endpoint, "/v3/cluster/member/add", json!({"peerURLs": peer_urls, "isLearner": learner}), false)
    }

    /// `POST /v3/cluster/member/remove`; returns the members left.
    pub fn member_remove(&self, endpoint: &str, id: MemberId) -> Result<Vec<Member>> {
        let m: Members = self.call(endpoint, "/v3/cluster/member/remove", json!({"ID": id}), true)?;
        Ok(m.members)
    }

    /// `POST /v3/cluster/member/promote`; returns the members after the change.
    pub fn member_promote(&self, endpoint: &str, id: MemberId) -> Result<Vec<Member>> {
        let m: Members = self.call(endpoint, "/v3/cluster/member/promote", json!({"ID": id}), true)?;
        Ok(m.members)
    }

    /// `POST /v3/maintenance/status` with `{}`.
    pub fn status(&self, endpoint: &str) -> Result<EtcdStatus> {
        self.call(endpoint, "/v3/maintenance/status", json!({}), true)
    }

    /// `GET /health`: 200 `{"health":"true"}` → true; 503 or `"false"` → false.
    pub fn health(&self, endpoint: &str) -> Result<bool> {
        // A 503 is an answer ("unhealthy"), not a failure to retry.
        let (url, resp) = EtcdV3::get_once(&self.http, endpoint, "/health")?;
        if resp.status != 200 && resp.status != 503 {
            return Err(Error::Status { url, status: resp.status, body: resp.body });
        }
        let body: HealthBody = match serde_json::from_str(&resp.body) {
            Ok(b) => b,
            Err(_) if resp.status == 503 => return Ok(false),
            Err(e) => return Err(Error::Malformed { url, message: e.to_string() }),
        };
        let healthy = match &body.health {
            Value::String(s) => s == "true",
            Value::Bool(b) => *b,
            other => return Err(Error::Malformed { url, message: format!("health is {other}") }),
        };
        Ok(healthy && resp.status == 200)
    }

    /// `POST /v3/maintenance/transfer-leadership` with `{"targetID":"…"}`; must be sent to the leader (else
    /// [`EtcdErrorKind::NotLeader`]). etcd 3.4 answers `{}` (no header).
    pub fn transfer_leadership(&self, endpoint: &str, target: MemberId) -> Result<()> {
        let _: serde_json::Map<String, Value> =
            self.call(endpoint, "/v3/maintenance/transfer-leadership", json!({"targetID": target}), true)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_parses_string_numbers_and_omitted_fields() {
        let s: EtcdStatus = serde_json::from_str(
            r#"{"header":{"cluster_id":"1","member_id":"2","revision":"3","raft_term":"4"},
                "version":"3.4.23","dbSize":"20480","leader":"2","raftIndex":"9","raftTerm":"4","raftAppliedIndex":"9"}"#,
        )
        .unwrap();
        assert_eq!((s.header.member_id, s.db_size, s.leader, s.raft_applied_index), (2, 20480, MemberId(2), 9));
        assert!(!s.is_learner && s.errors.is_empty());
        let bare: EtcdStatus = serde_json::from_str(r#"{"header":{"cluster_id":"1"}}"#).unwrap();
        assert_eq!((bare.leader, bare.db_size, bare.version.as_str()), (MemberId(0), 0, ""));
        assert!(serde_json::from_str::<EtcdStatus>("{}").is_err(), "an answer without a header is not etcd's");
    }

    #[test]
    fn error_bodies_are_classified() {
        let resp = |status, body: &str| Response { status, body: body.into(), headers: vec![] };
        let e = etcd_error(
            "u".into(),
            resp(412, r#"{"error":"etcdserver: not leader","message":"etcdserver: not leader","code":9}"#),
        );
        assert_eq!(e.etcd_kind(), Some(EtcdErrorKind::NotLeader));
        let e = etcd_error("u".into(), resp(404, r#"{"code":5,"message":"etcdserver: member not found"}"#));
        assert_eq!(e.etcd_kind(), Some(EtcdErrorKind::MemberNotFound));
        let e = etcd_error("u".into(), resp(502, "<html>bad gateway</html>"));
        assert!(matches!(e, Error::Status { status: 502, .. }), "{e:?}");
    }

    /// Answers recorded from etcd 3.4.23 and 3.5.30 (docs/research/etcd-3.4-vs-3.5.md), and the shape etcd 3.6
    /// documents for its gateway (`{"code":…,"message":…}`, no `error`; not packaged here, so not run): the same
    /// failure is classified the same whatever the version, its status and its body shape.
    #[test]
    fn recorded_error_answers_of_every_version_classify_alike() {
        use EtcdErrorKind as K;
        let check = |status, body: &str, kind| {
            let e = etcd_error("u".into(), Response { status, body: body.into(), headers: vec![] });
            assert_eq!(e.etcd_kind(), Some(kind), "{status} {body}");
        };
        let cases = [
            (K::NotALearner, "etcdserver: can only promote a learner member"),
            (K::PeerUrlExists, "etcdserver: Peer URLs already exists"),
            (K::TooManyLearners, "etcdserver: too many learner members in cluster"),
            (K::LearnerNotReady, "etcdserver: can only promote a learner member which is in sync with leader"),
            (K::NotLeader, "etcdserver: not leader"),
        ];
        for (kind, message) in cases {
            // FailedPrecondition: 412 on 3.4, 400 on 3.5 and 3.6.
            check(412, &format!(r#"{{"error":"{message}","message":"{message}","code":9}}"#), kind);
            check(400, &format!(r#"{{"code":9, "message":"{message}"}}"#), kind);
            check(400, &format!(r#"{{"code":9,"message":"{message}"}}"#), kind);
        }
        check(404, r#"{"code":5, "message":"etcdserver: member not found"}"#, K::MemberNotFound);
        check(503, r#"{"code":14, "message":"etcdserver: unhealthy cluster"}"#, K::UnhealthyCluster);
        check(503, r#"{"code":14, "message":"etcdserver: rpc not supported for learner"}"#, K::NotSupportedForLearner);
        let started = "etcdserver: re-configuration failed due to not enough started members";
        check(500, &format!(r#"{{"code":2, "message":"{started}"}}"#), K::NotEnoughStarted);
        check(400, r#"{"code":3, "message":"etcdserver: given member URLs are invalid"}"#, K::InvalidUrls);
        // 3.5 answers an unknown gateway path with a JSON body where 3.4 sent plain text: neither is a member
        // that was not found.
        check(404, r#"{"code":5, "message":"Not Found"}"#, K::Other);
        let e = etcd_error("u".into(), Response { status: 404, body: "Not Found\n".into(), headers: vec![] });
        assert!(matches!(e, Error::Status { status: 404, .. }), "{e:?}");
    }
}
