//! A fake Spotinst (Spot by NetApp) API: the three read routes etcd-spot uses, with the real envelope,
//! status codes and bearer-token rule, on real HTTP at 127.0.0.1.
//!
//! Tests drive its state (groups, instances, lifecycle) and inject faults; it records every request. Like the
//! real API, a rate limit holds: once a route answered 429 with `X-RateLimit-Reset: n`, every request to that
//! route answers 429 until those n seconds have passed, with the seconds left. With [`Fake::set_rate_limit`]
//! the organisation's budget is enforced too (`budget.rs`): every caller with the token shares it, from any
//! instance and any listener. It must never depend on the code under test, and never accept a token other than
//! [`TOKEN`].

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::budget::{Budget, RateLimit, Verdict};
use super::server::{Reply, reason};
use super::{Api, Fake, Fault, Request, listen_also, serve};
use crate::util::{lock, now_rfc3339, random_hex};

/// The only bearer token the fake accepts; any other (or none) gets 401 with an error envelope.
pub const TOKEN: &str = "sim-token";

const JSON: &str = "application/json; charset=utf-8";
const INSTANCE_TYPE: &str = "t3.medium";
const AVAILABILITY_ZONE: &str = "us-east-1a";

#[derive(Debug)]
struct Group {
    id: String,
    target: u32,
    /// Instance IDs in insertion order.
    instances: Vec<String>,
}

#[derive(Debug)]
struct Instance {
    id: String,
    group_id: String,
    ip: Ipv4Addr,
    lifecycle: String,
    status: String,
    created_at: String,
}

#[derive(Debug, Default)]
struct State {
    groups: Vec<Group>,
    instances: HashMap<String, Instance>,
    /// Until when each route (see [`route_name`]) is rate limited.
    limited: HashMap<&'static str, Instant>,
    /// The organisation's rate limit, when one is enforced, and the calls it counted.
    limit: Option<RateLimit>,
    budget: Budget,
}

impl State {
    fn group_mut(&mut self, group_id: &str) -> &mut Group {
        let index = match self.groups.iter().position(|g| g.id == group_id) {
            Some(i) => i,
            None => {
                self.groups.push(Group { id: group_id.to_string(), target: 0, instances: Vec::new() });
                self.groups.len() - 1
            }
        };
        &mut self.groups[index]
    }
}

/// The groups and instances of a Spotinst account as its API serves them (the API of a [`FakeSpotinst`]).
#[derive(Debug, Default)]
pub struct Spotinst {
    state: Mutex<State>,
}

/// A fake Spotinst API server; dropping it stops the server.
pub type FakeSpotinst = Fake<Spotinst>;

impl Fake<Spotinst> {
    /// Binds 127.0.0.1 on a free port and serves on background threads.
    ///
    /// # Panics
    /// If no loopback port can be bound (the test environment is broken).
    pub fn start() -> FakeSpotinst {
        serve(IpAddr::V4(Ipv4Addr::LOCALHOST), Spotinst::default(), "Spotinst API")
    }

    /// Creates (or resets the capacity of) a group with capacity `target`, minimum 0, maximum max(target, 10).
    pub fn create_group(&self, group_id: &str, target: u32) {
        lock(&self.api().state).group_mut(group_id).target = target;
    }

    /// Sets a group's capacity target (creating the group if needed); minimum 0, maximum max(target, 10).
    pub fn set_capacity(&self, group_id: &str, target: u32) {
        self.create_group(group_id, target);
    }

    /// Adds a running, `ACTIVE` instance to a group (creating the group with target 0 if needed). Adding an
    /// instance ID again moves it to this group with the new address.
    pub fn add_instance(&self, group_id: &str, instance_id: &str, ip: Ipv4Addr) {
        let mut state = lock(&self.api().state);
        remove(&mut state, instance_id);
        state.group_mut(group_id).instances.push(instance_id.to_string());
        state.instances.insert(
            instance_id.to_string(),
            Instance {
                id: instance_id.to_string(),
                group_id: group_id.to_string(),
                ip,
                lifecycle: "ACTIVE".to_string(),
                status: "running".to_string(),
                created_at: now_rfc3339(),
            },
        );
    }

    /// Removes an instance from its group; the instance endpoint then answers an empty `items`.
    pub fn remove_instance(&self, instance_id: &str) {
        remove(&mut lock(&self.api().state), instance_id);
    }

    /// Serves this API on `ip` too (a free port), sharing its state, log and rate limits; returns that base URL.
    /// Give each simulated caller its own URL and [`Request::to`] tells them apart in the log.
    ///
    /// # Panics
    /// If `ip` cannot be bound (the test environment is broken, or the address is not local).
    pub fn listen_also(&self, ip: Ipv4Addr) -> String {
        listen_also(self, ip)
    }

    /// Enforces (`Some`) or lifts (`None`) the organisation's rate limit: at most `calls` served calls per route
    /// and method within any `window`, shared by every caller with the token; a call over it answers 429 with
    /// `X-RateLimit-Limit`, `X-RateLimit-Remaining: 0` and `X-RateLimit-Reset` (whole seconds until there is
    /// room again). Served calls carry `X-RateLimit-Limit` and `X-RateLimit-Remaining`.
    pub fn set_rate_limit(&self, limit: Option<RateLimit>) {
        let mut state = lock(&self.api().state);
        state.limit = limit;
        state.budget = Budget::default();
    }

    /// Sets an instance's `lifeCycleState` (e.g. `TERMINATING`); unknown instances are ignored.
    pub fn set_lifecycle(&self, instance_id: &str, state: &str) {
        if let Some(i) = lock(&self.api().state).instances.get_mut(instance_id) {
            i.lifecycle = state.to_string();
        }
    }

    /// Sets the `status` an instance has in the group status route; unknown instances are ignored.
    pub fn set_instance_status(&self, instance_id: &str, status: &str) {
        if let Some(i) = lock(&self.api().state).instances.get_mut(instance_id) {
            i.status = status.to_string();
        }
    }
}

impl Spotinst {
    /// The 429 a route answers while its rate limit holds, with the whole seconds left (rounded up).
    fn still_limited(&self, req: &Request) -> Option<Reply> {
        let until = *lock(&self.state).limited.get(route_name(&req.path)?)?;
        let left = until.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())?;
        Some(too_many(req, 60, left.as_secs() + u64::from(left.subsec_nanos() > 0)))
    }

    /// The normal answer under the organisation's budget: a 429 over it, the rate limit headers within it. A
    /// request without the token is never counted (it gets its 401).
    fn budgeted(&self, req: &Request) -> Reply {
        let org = req.header("Authorization").filter(|a| *a == format!("Bearer {TOKEN}"));
        let verdict = match (org, route_name(&req.path)) {
            (Some(org), Some(route)) => {
                let mut state = lock(&self.state);
                state.limit.map(|limit| (limit, state.budget.take(limit, org, route, &req.method, Instant::now())))
            }
            _ => None,
        };
        match verdict {
            None => normal(&self.state, req),
            Some((limit, Verdict::Over { reset_secs })) => too_many(req, limit.calls, reset_secs),
            Some((limit, Verdict::Served { remaining })) => normal(&self.state, req)
                .with_header("X-RateLimit-Limit", &limit.calls.to_string())
                .with_header("X-RateLimit-Remaining", &remaining.to_string()),
        }
    }
}

impl Api for Spotinst {
    fn normal(&self, req: &Request) -> Reply {
        self.still_limited(req).unwrap_or_else(|| self.budgeted(req))
    }

    fn faulted(&self, fault: &Fault, req: &Request) -> Reply {
        if let Some(reply) = self.still_limited(req) {
            return reply;
        }
        match fault {
            Fault::Status(code) => {
                let message = reason(*code);
                let error_code = message.to_ascii_uppercase().replace(' ', "_");
                error(req, *code, &error_code, &format!("injected {code} {message}"))
            }
            Fault::RateLimit { reset_secs } => {
                if let Some(route) = route_name(&req.path) {
                    let until = Instant::now() + Duration::from_secs(*reset_secs);
                    lock(&self.state).limited.insert(route, until);
                }
                too_many(req, 60, *reset_secs)
            }
            Fault::Unauthorized => error(req, 401, "UNAUTHORIZED", "Unauthorized"),
            Fault::EchoRequest(code) => Reply::new(*code, "text/plain", req.echo()),
            Fault::Malformed => Reply::new(
                200,
                JSON,
                format!(
                    r#"{{"request":{{"id":"{}"}},"response":{{"status":{{"code":200,"message":"OK"}},"items":[{{"instanceId":"#,
                    random_hex(1)
                ),
            ),
            Fault::WrongTypes => {
                let body = json!({
                    "request": request_part(req),
                    "response": {
                        "status": {"code": "200", "message": 7},
                        "kind": 5,
                        "items": "x",
                        "count": "x",
                    },
                });
                Reply::new(200, JSON, body.to_string())
            }
            Fault::Delay(_) | Fault::Truncated | Fault::Oversized(_) => self.normal(req),
        }
    }
}

/// The route a path belongs to, for rate limits (the real API limits per organization and route).
fn route_name(path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["aws", "ec2", "instance", _] => Some("instance"),
        ["aws", "ec2", "group", _, "status"] => Some("group status"),
        ["aws", "ec2", "group", _] => Some("group"),
        _ => None,
    }
}

/// A 429 with the rate limit headers (`limit` calls per window), `reset_secs` until calls are allowed again.
fn too_many(req: &Request, limit: u32, reset_secs: u64) -> Reply {
    error(req, 429, "TOO_MANY_REQUESTS", "Rate limit exceeded").rate_limited(limit, reset_secs)
}

fn remove(state: &mut State, instance_id: &str) {
    if let Some(old) = state.instances.remove(instance_id)
        && let Some(g) = state.groups.iter_mut().find(|g| g.id == old.group_id)
    {
        g.instances.retain(|i| i != instance_id);
    }
}

fn request_part(req: &Request) -> Value {
    let url = if req.query.is_empty() { req.path.clone() } else { format!("{}?{}", req.path, req.query) };
    json!({
        "id": random_hex(2),
        "url": url,
        "method": req.method,
        "timestamp": now_rfc3339(),
    })
}

fn error(req: &Request, status: u16, code: &str, message: &str) -> Reply {
    let body = json!({
        "request": request_part(req),
        "response": {
            "status": {"code": status, "message": reason(status)},
            "errors": [{"code": code, "message": message}],
        },
    });
    Reply::new(status, JSON, body.to_string())
}

fn ok(req: &Request, kind: &str, items: Vec<Value>) -> Reply {
    let count = items.len();
    let body = json!({
        "request": request_part(req),
        "response": {
            "status": {"code": 200, "message": "OK"},
            "kind": kind,
            "items": items,
            "count": count,
        },
    });
    Reply::new(200, JSON, body.to_string())
}

fn normal(state: &Mutex<State>, req: &Request) -> Reply {
    if req.header("Authorization") != Some(&format!("Bearer {TOKEN}")) {
        return error(req, 401, "UNAUTHORIZED", "Unauthorized");
    }
    let segments: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    let route = match segments.as_slice() {
        ["aws", "ec2", "instance", id] => Route::Instance(id),
        ["aws", "ec2", "group", id, "status"] => Route::GroupStatus(id),
        ["aws", "ec2", "group", id] => Route::Group(id),
        _ => return error(req, 404, "NOT_FOUND", &format!("no route for {}", req.path)),
    };
    if req.method != "GET" {
        return error(req, 405, "METHOD_NOT_ALLOWED", &format!("{} is not allowed here", req.method));
    }
    let state = lock(state);
    match route {
        Route::Instance(id) => {
            let items = match state.instances.get(id) {
                Some(i) => vec![json!({
                    "instanceId": i.id,
                    "lifeCycleState": i.lifecycle,
                    "groupId": i.group_id,
                    "privateIp": i.ip.to_string(),
                    "instanceType": INSTANCE_TYPE,
                    "availabilityZone": AVAILABILITY_ZONE,
                })],
                None => Vec::new(),
            };
            ok(req, "spotinst:aws:ec2:instance", items)
        }
        Route::GroupStatus(id) => {
            let Some(group) = state.groups.iter().find(|g| g.id == id) else {
                return no_group(req, id);
            };
            let items = group
                .instances
                .iter()
                .filter_map(|i| state.instances.get(i))
                .map(|i| {
                    json!({
                        "instanceId": i.id,
                        "privateIp": i.ip.to_string(),
                        "status": i.status,
                        "availabilityZone": AVAILABILITY_ZONE,
                        "createdAt": i.created_at,
                        "instanceType": INSTANCE_TYPE,
                        "groupId": i.group_id,
                        "lifeCycle": "SPOT",
                    })
                })
                .collect();
            ok(req, "spotinst:aws:ec2:group:instance", items)
        }
        Route::Group(id) => {
            let Some(group) = state.groups.iter().find(|g| g.id == id) else {
                return no_group(req, id);
            };
            let item = json!({
                "id": group.id,
                "name": format!("sim-{}", group.id),
                "capacity": {
                    "target": group.target,
                    "minimum": 0,
                    "maximum": group.target.max(10),
                    "unit": "instance",
                },
            });
            ok(req, "spotinst:aws:ec2:group", vec![item])
        }
    }
}

enum Route<'a> {
    Instance(&'a str),
    GroupStatus(&'a str),
    Group(&'a str),
}

fn no_group(req: &Request, id: &str) -> Reply {
    error(req, 400, "GROUP_DOESNT_EXIST", &format!("Group {id} does not exist"))
}
