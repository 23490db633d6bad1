//! Client for the three read-only Spotinst (Spot by NetApp) routes etcd-spot uses (see `docs/cloud-apis.md`):
//! one instance's lifecycle, a group's instances, and a group's capacity.
//!
//! Answers are parsed from the `{"request":…,"response":{"status","items","errors"}}` envelope at this edge.
//! A rate limit is honoured: after a 429 no call is sent before its `X-RateLimit-Reset` has passed (the caller
//! may keep that pause across runs, see [`Spotinst::with_pause_memory`]). It must never read "unknown" as
//! "active" (an empty `items` is an error), never change anything in the account, and never log, print or put
//! the token anywhere but the `Authorization` header.

use std::fmt;
use std::net::Ipv4Addr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::Value;

use super::http::{Http, Method, Request, encode_path_segment};
use crate::error::{Error, Result};
use crate::types::{Capacity, GroupInstance, InstanceId, InstanceState, InstanceStatus, LifeCycle, Secret};

/// A Spotinst API client.
pub struct Spotinst {
    http: Http,
    base: String,
    token: Secret,
    account: Option<String>,
    /// No call before this Unix second: the API answered 429 with `X-RateLimit-Reset`, to this client or (see
    /// [`Spotinst::with_pause_memory`]) to an earlier run.
    paused_until: Mutex<Option<u64>>,
    /// Told of every new pause, to keep it across runs.
    remember: Option<Box<dyn Fn(u64) + Send + Sync>>,
    /// Asked before every call for a pause another process recorded meanwhile (the watcher runs for days while
    /// prune runs beside it).
    recall: Option<Box<dyn Fn() -> Option<u64> + Send + Sync>>,
}

impl fmt::Debug for Spotinst {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spotinst")
            .field("base", &self.base)
            .field("token", &self.token)
            .field("account", &self.account)
            .field("paused_until", &self.paused_until)
            .finish_non_exhaustive()
    }
}

/// The longest rate-limit pause honoured: a longer reset, or a remembered pause further away than this (a clock
/// stepped back), counts as this long; it costs one call an hour at worst.
pub const MAX_PAUSE: Duration = Duration::from_secs(3600);

/// Seconds since the Unix epoch, rounded up (a pause never ends early).
fn unix_now_ceil() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() + u64::from(d.subsec_nanos() > 0))
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
    /// A client for the API at `base_url`, sending `token` and, when given, `?accountId=<account>`.
    pub fn new(http: Http, base_url: &str, token: Secret, account: Option<&str>) -> Spotinst {
        Spotinst {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            token,
            account: account.map(str::to_owned),
            paused_until: Mutex::new(None),
            remember: None,
            recall: None,
        }
    }

    /// Honours a pause an earlier run recorded (`until`, a Unix second; at most [`MAX_PAUSE`] from now), and hands
    /// every new pause to `remember`.
    pub fn with_pause_memory(mut self, until: Option<u64>, remember: impl Fn(u64) + Send + Sync + 'static) -> Spotinst {
        let cap = unix_now_ceil() + MAX_PAUSE.as_secs();
        *self.paused_until.get_mut().unwrap_or_else(PoisonError::into_inner) = until.map(|u| u.min(cap));
        self.remember = Some(Box::new(remember));
        self
    }

    /// Also honours, before every call, a pause that `recall` says was recorded since (by another process
    /// sharing the memory); at most [`MAX_PAUSE`] from now.
    pub fn with_pause_recall(mut self, recall: impl Fn() -> Option<u64> + Send + Sync + 'static) -> Spotinst {
        self.recall = Some(Box::new(recall));
        self
    }

    /// The Unix second before which no call is sent, while a rate limit holds (this client's own, or one
    /// recalled).
    pub fn paused_until(&self) -> Option<u64> {
        let own = *self.paused_until.lock().unwrap_or_else(PoisonError::into_inner);
        let cap = unix_now_ceil() + MAX_PAUSE.as_secs();
        let recalled = self.recall.as_ref().and_then(|r| r()).map(|u| u.min(cap));
        let until = own.max(recalled)?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        (now < until).then_some(until)
    }

    /// Sends no call for `reset_secs` (at most [`MAX_PAUSE`]) and says so to the caller's memory.
    fn pause(&self, reset_secs: u64) {
        if reset_secs == 0 {
            return;
        }
        let until = unix_now_ceil() + reset_secs.min(MAX_PAUSE.as_secs());
        {
            let mut paused = self.paused_until.lock().unwrap_or_else(PoisonError::into_inner);
            *paused = Some(paused.map_or(until, |p| p.max(until)));
        }
        log::warn!(
            "the spotinst api rate limits this instance (X-RateLimit-Reset: {reset_secs} s): no call before {}",
            crate::error::rfc3339(until)
        );
        if let Some(remember) = &self.remember {
            remember(until);
        }
    }

    /// The URL of one route, for messages.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// What Spotinst says about one instance. An empty `items` is [`Error::SpotinstEmpty`]: unknown, never
    /// "active".
    pub fn instance(&self, id: &InstanceId) -> Result<InstanceStatus> {
        let (url, items) =
            self.get("instance", &format!("/aws/ec2/instance/{}", encode_path_segment(id.as_str())), None)?;
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
        let (url, items) = self.get(
            "group_status",
            &format!("/aws/ec2/group/{}/status", encode_path_segment(group_id)),
            Some(group_id),
        )?;
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
        let (url, items) =
            self.get("group", &format!("/aws/ec2/group/{}", encode_path_segment(group_id)), Some(group_id))?;
        let Some(first) = items.into_iter().next() else {
            return Err(Error::SpotinstEmpty { url });
        };
        let g: GroupItem = item(&url, first)?;
        Ok(Capacity { target: g.capacity.target, minimum: g.capacity.minimum, maximum: g.capacity.maximum })
    }

    /// GETs `path` and returns the URL (without the token) and the envelope's `items`. Every answer is counted
    /// under `route` for the metrics.
    fn get(&self, route: &'static str, path: &str, group_id: Option<&str>) -> Result<(String, Vec<Value>)> {
        let mut url = format!("{}{path}", self.base);
        if let Some(account) = &self.account {
            url.push_str("?accountId=");
            url.push_str(&encode_path_segment(account));
        }
        if let Some(until) = self.paused_until() {
            return Err(Error::SpotinstPaused { url, until });
        }
        let request = Request {
            method: Method::Get,
            url: url.clone(),
            headers: vec![("Authorization", format!("Bearer {}", self.token.expose()))],
            body: None,
            retry: true,
        };
        let sent =
            self.http.send_observed(request, &mut |status| crate::metrics::observe::spotinst_answer(route, status));
        let resp = match sent {
            Err(Error::RateLimited { url, reset_secs }) => {
                self.pause(reset_secs);
                return Err(Error::RateLimited { url, reset_secs });
            }
            other => other?,
        };
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
