//! Client for the AWS instance metadata service, IMDSv2 only (see `docs/cloud-apis.md`): a session
//! token from `PUT /latest/api/token`, then token-bearing GETs under `/latest/meta-data/`.
//!
//! Every value is parsed at this edge (instance ID, IPv4 address, JSON notices); anything that does not parse
//! is [`Error::Malformed`], never a guess. It must never fall back to IMDSv1 (tokenless GETs), never log or
//! print the session token, and never retry a rejected token more than once.
//!
//! One client keeps its token for as long as it lives (terminate `--watch` polls through one client for the
//! instance's whole life): it is renewed once less than a tenth of its TTL is left, before IMDS would reject
//! it, and a token IMDS rejects anyway (a clock that stood still while the instance was stopped) is replaced
//! once, by one new `PUT`.

use std::fmt;
use std::net::Ipv4Addr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::http::{Http, Method, Request, encode_path_segment};
use crate::error::{Error, Result};
use crate::types::InstanceId;

const TOKEN_PATH: &str = "/latest/api/token";
const META: &str = "/latest/meta-data/";
const TTL_HEADER: &str = "X-aws-ec2-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "X-aws-ec2-metadata-token";
/// Token lifetime requested by default: six hours, the maximum.
const MAX_TTL: Duration = Duration::from_secs(21_600);

/// A spot interruption notice (`spot/instance-action`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InstanceAction {
    /// `terminate`, `stop` or `hibernate`.
    pub action: String,
    /// When it happens, e.g. `2017-09-18T08:22:00Z`.
    pub time: String,
}

#[derive(Deserialize)]
struct Rebalance {
    #[serde(rename = "noticeTime")]
    notice_time: String,
}

/// A session token and when to stop using it.
struct Token {
    value: String,
    /// A tenth of the TTL before it runs out, counted from before the `PUT` was sent.
    renew_at: Instant,
}

/// An IMDSv2 client with a cached session token.
pub struct Imds {
    http: Http,
    base: String,
    ttl: Duration,
    token: Mutex<Option<Token>>,
}

impl fmt::Debug for Imds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Imds").field("base", &self.base).finish_non_exhaustive()
    }
}

impl Imds {
    /// A client for the IMDS at `base_url` (e.g. `http://169.254.169.254`).
    pub fn new(http: Http, base_url: &str) -> Imds {
        Imds { http, base: base_url.trim_end_matches('/').to_owned(), ttl: MAX_TTL, token: Mutex::new(None) }
    }

    /// The same client asking for tokens that live `ttl` (whole seconds, 1 s to the default six hours; for
    /// tests of the renewal).
    pub fn with_token_ttl(mut self, ttl: Duration) -> Imds {
        self.ttl = Duration::from_secs(ttl.as_secs().clamp(1, MAX_TTL.as_secs()));
        self
    }

    /// The session token, fetched with `PUT /latest/api/token` (TTL six hours) on first use, then cached until
    /// less than a tenth of its TTL is left.
    pub fn token(&self) -> Result<String> {
        if let Some(t) = self.cached() {
            return Ok(t);
        }
        let url = format!("{}{TOKEN_PATH}", self.base);
        let renew_at = Instant::now() + self.ttl - self.ttl / 10;
        let resp = self.http.send(Request {
            method: Method::Put,
            url: url.clone(),
            headers: vec![(TTL_HEADER, self.ttl.as_secs().to_string())],
            body: None,
            retry: true,
        })?;
        match resp.status {
            200 => {}
            401 | 403 => return Err(Error::Unauthorized { url, status: resp.status }),
            status => return Err(Error::Status { url, status, body: resp.body }),
        }
        let token = resp.body.trim();
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::Malformed { url, message: "the token is empty or not printable ASCII".into() });
        }
        let value = token.to_owned();
        *self.token.lock().unwrap_or_else(PoisonError::into_inner) = Some(Token { value: value.clone(), renew_at });
        Ok(value)
    }

    /// The cached token while it is not due for renewal.
    fn cached(&self) -> Option<String> {
        let token = self.token.lock().unwrap_or_else(PoisonError::into_inner);
        token.as_ref().filter(|t| Instant::now() < t.renew_at).map(|t| t.value.clone())
    }

    fn forget_token(&self) {
        *self.token.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// GETs a metadata path: `Ok(None)` on 404, else the URL and the body. A 401 drops the token and tries
    /// once more with a new one.
    fn get(&self, path: &str) -> Result<Option<(String, String)>> {
        let url = format!("{}{META}{path}", self.base);
        for round in 0..2 {
            let token = self.token()?;
            let resp = self.http.send(Request {
                method: Method::Get,
                url: url.clone(),
                headers: vec![(TOKEN_HEADER, token)],
                body: None,
                retry: true,
            })?;
            match resp.status {
                200 => return Ok(Some((url, resp.body))),
                404 => return Ok(None),
                401 => {
                    self.forget_token();
                    if round == 0 {
                        log::debug!("{url}: token rejected; fetching a new one");
                    }
                }
                status => return Err(Error::Status { url, status, body: resp.body }),
            }
        }
        Err(Error::Unauthorized { url, status: 401 })
    }

    /// GETs a path that must exist: 404 is an error.
    fn required(&self, path: &str) -> Result<(String, String)> {
        self.get(path)?.ok_or_else(|| Error::Status {
            url: format!("{}{META}{path}", self.base),
            status: 404,
            body: String::new(),
        })
    }

    /// This instance's ID (`instance-id`).
    pub fn instance_id(&self) -> Result<InstanceId> {
        let (url, body) = self.required("instance-id")?;
        InstanceId::parse(body.trim()).map_err(|message| Error::Malformed { url, message })
    }

    /// This instance's private IPv4 address (`local-ipv4`).
    pub fn local_ipv4(&self) -> Result<Ipv4Addr> {
        let (url, body) = self.required("local-ipv4")?;
        let text = body.trim();
        text.parse().map_err(|_| Error::Malformed { url, message: format!("{:?} is not an IPv4 address", short(text)) })
    }

    /// This instance's availability zone (`placement/availability-zone`), e.g. `us-east-1a`.
    pub fn availability_zone(&self) -> Result<String> {
        let (url, body) = self.required("placement/availability-zone")?;
        let text = body.trim();
        if text.is_empty() || text.len() > 64 || !text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(Error::Malformed { url, message: format!("{:?} is not an availability zone", short(text)) });
        }
        Ok(text.to_owned())
    }

    /// The spot interruption notice, if any (`spot/instance-action`; 404 means none).
    pub fn instance_action(&self) -> Result<Option<InstanceAction>> {
        let Some((url, body)) = self.get("spot/instance-action")? else {
            return Ok(None);
        };
        let action: InstanceAction = serde_json::from_str(body.trim())
            .map_err(|e| Error::Malformed { url: url.clone(), message: format!("instance action: {e}") })?;
        if action.action.trim().is_empty() {
            return Err(Error::Malformed { url, message: "instance action has an empty action".into() });
        }
        Ok(Some(action))
    }

    /// The rebalance recommendation's notice time, if any (`events/recommendations/rebalance`; 404 means none).
    pub fn rebalance(&self) -> Result<Option<String>> {
        let Some((url, body)) = self.get("events/recommendations/rebalance")? else {
            return Ok(None);
        };
        let r: Rebalance = serde_json::from_str(body.trim())
            .map_err(|e| Error::Malformed { url, message: format!("rebalance recommendation: {e}") })?;
        Ok(Some(r.notice_time))
    }

    /// An instance tag (`tags/instance/<key>`); `None` when the tag is missing or tags are not exposed.
    pub fn tag(&self, key: &str) -> Result<Option<String>> {
        Ok(self.get(&format!("tags/instance/{}", encode_path_segment(key)))?.map(|(_, v)| v.trim().to_owned()))
    }
}

/// At most 64 characters of an untrusted value, for error messages.
fn short(s: &str) -> &str {
    let end = s.char_indices().nth(64).map_or(s.len(), |(i, _)| i);
    &s[..end]
}
