//! Client for the three read-only Spotinst (Spot by NetApp) routes etcd-spot uses (DESIGN §3.1): one
//! instance's lifecycle, a group's instances, and a group's capacity; plus the group ID resolution order.
//!
//! Answers are parsed from the `{"request":…,"response":{"status","items","errors"}}` envelope at this edge.
//! It must never read "unknown" as "active" (an empty `items` is an error), never change anything in the
//! account, and never log, print or put the token anywhere but the `Authorization` header.

use std::net::Ipv4Addr;

use serde::Deserialize;
use serde_json::Value;

use crate::config::{Config, Secret};
use crate::error::{Error, Result};
use crate::http::{Http, Method, Request, encode_path_segment};
use crate::imds::Imds;
use crate::types::{Capacity, GroupInstance, InstanceId, InstanceState, InstanceStatus, LifeCycle};

/// The instance tag that holds the Elastigroup ID.
pub const GROUP_TAG: &str = "spotinst:aws:ec2:group:id";

/// A Spotinst API client.
#[derive(Debug)]
pub struct Spotinst {
    http: Http,
    base: String,
    token: Secret,
    account: Option<String>,
}

#[derive(Deserialize)]
struct Envelope {
    response: EnvelopeResponse,
}

#[derive(Deserialize)]
struct EnvelopeResponse {
    #[serde(default)]
    items: Option<Vec<Value>>,
    #[serde(default)]
    errors: Option<Vec<EnvelopeError>>,
}

#[derive(Deserialize)]
struct EnvelopeError {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct InstanceItem {
    #[serde(rename = "instanceId", default)]
    instance_id: Option<String>,
    #[serde(rename = "lifeCycleState", default)]
    lifecycle: Option<String>,
    #[serde(rename = "groupId", default)]
    group_id: Option<Value>,
    #[serde(rename = "privateIp", default)]
    private_ip: Option<Value>,
}

#[derive(Deserialize)]
struct GroupInstanceItem {
    #[serde(rename = "instanceId", default)]
    instance_id: Option<String>,
    #[serde(rename = "privateIp", default)]
    private_ip: Option<Value>,
    #[serde(default)]
    status: Option<String>,
}

#[derive(Deserialize)]
struct GroupItem {
    capacity: CapacityItem,
}

#[derive(Deserialize)]
struct CapacityItem {
    target: u32,
    minimum: u32,
    maximum: u32,
}

impl Spotinst {
    /// A client using the configured base URL, token and account. No token configured is a configuration
    /// error naming `--spotinst-token-file` and `SPOTINST_TOKEN`.
    pub fn new(http: Http, cfg: &Config) -> Result<Spotinst> {
        let token = cfg.spotinst_token.clone().ok_or_else(|| Error::Config {
            flag: "--spotinst-token-file",
            env: "ETCD_SPOT_SPOTINST_TOKEN_FILE",
            message: "no spotinst token configured: set it, or put the token in SPOTINST_TOKEN".into(),
        })?;
        Ok(Spotinst {
            http,
            base: cfg.spotinst_url.trim_end_matches('/').to_owned(),
            token,
            account: cfg.spotinst_account.clone(),
        })
    }

    /// What Spotinst says about one instance. An empty `items` is [`Error::SpotinstEmpty`]: unknown, never
    /// "active".
    pub fn instance(&self, id: &InstanceId) -> Result<InstanceStatus> {
        let (url, items) = self.get(&format!("/aws/ec2/instance/{}", encode_path_segment(id.as_str())), None)?;
        let Some(first) = items.into_iter().next() else {
            return Err(Error::SpotinstEmpty { url });
        };
        let item: InstanceItem = item(&url, first)?;
        let got = instance_id(&url, item.instance_id)?;
        if &got != id {
            return Err(malformed(&url, format!("asked about {id}, got an answer about {got}")));
        }
        let lifecycle = match item.lifecycle.as_deref().map(str::trim) {
            Some(s) if !s.is_empty() => LifeCycle::parse(s),
            _ => return Err(malformed(&url, "the instance has no lifeCycleState")),
        };
        let group_id = item.group_id.as_ref().and_then(Value::as_str).map(str::trim).filter(|g| !g.is_empty());
        Ok(InstanceStatus {
            id: got,
            lifecycle,
            group_id: group_id.map(str::to_owned),
            private_ip: ip(&item.private_ip),
        })
    }

    /// The group's instances, in the order the API lists them. An empty `items` is an empty list (the planner
    /// refuses to act on it).
    pub fn group_instances(&self, group_id: &str) -> Result<Vec<GroupInstance>> {
        let (url, items) =
            self.get(&format!("/aws/ec2/group/{}/status", encode_path_segment(group_id)), Some(group_id))?;
        items
            .into_iter()
            .map(|v| {
                let it: GroupInstanceItem = item(&url, v)?;
                Ok(GroupInstance {
                    id: instance_id(&url, it.instance_id)?,
                    private_ip: ip(&it.private_ip),
                    state: InstanceState::from_status(it.status.as_deref().unwrap_or("")),
                })
            })
            .collect()
    }

    /// The group's capacity (target, minimum, maximum).
    pub fn group_capacity(&self, group_id: &str) -> Result<Capacity> {
        let (url, items) = self.get(&format!("/aws/ec2/group/{}", encode_path_segment(group_id)), Some(group_id))?;
        let Some(first) = items.into_iter().next() else {
            return Err(Error::SpotinstEmpty { url });
        };
        let g: GroupItem = item(&url, first)?;
        Ok(Capacity { target: g.capacity.target, minimum: g.capacity.minimum, maximum: g.capacity.maximum })
    }

    /// GETs `path` and returns the URL (without the token) and the envelope's `items`.
    fn get(&self, path: &str, group_id: Option<&str>) -> Result<(String, Vec<Value>)> {
        let mut url = format!("{}{path}", self.base);
        if let Some(account) = &self.account {
            url.push_str("?accountId=");
            url.push_str(&encode_path_segment(account));
        }
        let resp = self.http.send(Request {
            method: Method::Get,
            url: url.clone(),
            headers: vec![("Authorization", format!("Bearer {}", self.token.expose()))],
            body: None,
            retry: true,
        })?;
        if resp.status == 401 || resp.status == 403 {
            return Err(Error::Unauthorized { url, status: resp.status });
        }
        let parsed: std::result::Result<Envelope, _> = serde_json::from_str(&resp.body);
        if !resp.is_success() {
            let first_error = parsed.ok().and_then(|e| e.response.errors).and_then(|e| e.into_iter().next());
            return Err(match first_error {
                Some(EnvelopeError { code: Some(code), .. }) if code == "GROUP_DOESNT_EXIST" && group_id.is_some() => {
                    Error::GroupDoesntExist { group_id: group_id.unwrap_or_default().to_owned() }
                }
                Some(e) => Error::Spotinst {
                    url,
                    status: resp.status,
                    code: e.code.unwrap_or_default(),
                    message: e.message.unwrap_or_default(),
                },
                None => Error::Status { url, status: resp.status, body: resp.body },
            });
        }
        let envelope = parsed.map_err(|e| malformed(&url, format!("not a spotinst envelope: {e}")))?;
        match envelope.response.items {
            Some(items) => Ok((url, items)),
            None => {
                let e = envelope.response.errors.and_then(|e| e.into_iter().next());
                match e {
                    Some(e) => Err(Error::Spotinst {
                        url,
                        status: resp.status,
                        code: e.code.unwrap_or_default(),
                        message: e.message.unwrap_or_default(),
                    }),
                    None => Err(malformed(&url, "the envelope has no items")),
                }
            }
        }
    }
}

fn malformed(url: &str, message: impl Into<String>) -> Error {
    Error::Malformed { url: url.to_owned(), message: message.into() }
}

fn item<T: for<'de> Deserialize<'de>>(url: &str, v: Value) -> Result<T> {
    serde_json::from_value(v).map_err(|e| malformed(url, format!("unexpected item: {e}")))
}

fn instance_id(url: &str, id: Option<String>) -> Result<InstanceId> {
    match id {
        Some(s) if !s.trim().is_empty() => InstanceId::parse(&s).map_err(|m| malformed(url, m)),
        _ => Err(malformed(url, "an item has no instanceId")),
    }
}

/// A missing, non-string or unparsable address is `None`.
fn ip(v: &Option<Value>) -> Option<Ipv4Addr> {
    v.as_ref().and_then(Value::as_str).and_then(|s| s.trim().parse().ok())
}

/// True for what a Spotinst group ID may look like (`sig-…`).
fn valid_group_id(g: &str) -> bool {
    !g.is_empty() && g.len() <= 64 && g.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Group id resolution, DESIGN §3.1 order: configured → IMDS tag `spotinst:aws:ec2:group:id` → `groupId` from
/// the instance endpoint → Err(NoGroupId). An IMDS tag lookup that errors (not 404) is an error, not a
/// fallthrough; so is an instance endpoint that errors (except an empty answer, which means no group ID).
pub fn resolve_group_id(configured: Option<&str>, imds: &Imds, spotinst: &Spotinst, me: &InstanceId) -> Result<String> {
    if let Some(g) = configured.map(str::trim).filter(|g| !g.is_empty()) {
        return Ok(g.to_owned());
    }
    if let Some(g) = imds.tag(GROUP_TAG)?.filter(|g| !g.is_empty()) {
        if !valid_group_id(&g) {
            return Err(Error::Malformed {
                url: format!("IMDS tag {GROUP_TAG}"),
                message: format!("{:?} is not a group id", g.chars().take(64).collect::<String>()),
            });
        }
        log::debug!("group id {g} from the instance tag {GROUP_TAG}");
        return Ok(g);
    }
    match spotinst.instance(me) {
        Ok(InstanceStatus { group_id: Some(g), .. }) if valid_group_id(&g) => {
            log::debug!("group id {g} from the spotinst instance endpoint");
            Ok(g)
        }
        Ok(InstanceStatus { group_id: Some(g), .. }) => Err(Error::Malformed {
            url: format!("{}/aws/ec2/instance/{me}", spotinst.base),
            message: format!("{:?} is not a group id", g.chars().take(64).collect::<String>()),
        }),
        Ok(_) => Err(Error::NoGroupId),
        Err(Error::SpotinstEmpty { url }) => {
            log::debug!("{url} does not know this instance; no group id");
            Err(Error::NoGroupId)
        }
        Err(e) => Err(e),
    }
}
