//! A fake AWS instance metadata service (IMDSv2 only) for one simulated instance, on real HTTP at a loopback
//! address of the test's choosing.
//!
//! It enforces the IMDSv2 token rule (PUT for a token with a TTL header, then every metadata GET carries a
//! valid, unexpired token), serves the paths etcd-spot reads as text/plain, and records every request. It must
//! never answer a metadata GET without a valid token, and never depend on the code under test.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::fault::{Fault, Faults, Request, lock};
use crate::http::{Reply, Server};
use crate::util::{pad_to, random_hex};

const TOKEN_PATH: &str = "/latest/api/token";
const META: &str = "/latest/meta-data/";
const TTL_HEADER: &str = "X-aws-ec2-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "X-aws-ec2-metadata-token";
const TEXT: &str = "text/plain";
const MAX_TTL: u64 = 21_600;

#[derive(Debug)]
struct State {
    instance_id: String,
    local_ipv4: Ipv4Addr,
    az: String,
    instance_action: Option<String>,
    rebalance: Option<String>,
    tags: BTreeMap<String, String>,
    tags_enabled: bool,
    /// Issued tokens and when each expires.
    tokens: HashMap<String, Instant>,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    faults: Faults,
}

/// A fake IMDS for one instance; dropping it stops the server.
#[derive(Debug)]
pub struct FakeImds {
    inner: Arc<Inner>,
    server: Server,
}

impl FakeImds {
    /// Binds `bind_ip` (a loopback address) on a free port and serves this instance's metadata.
    ///
    /// # Panics
    /// If `bind_ip` cannot be bound (the test environment is broken, or the address is not local).
    pub fn start(bind_ip: Ipv4Addr, instance_id: &str, local_ipv4: Ipv4Addr, az: &str) -> FakeImds {
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                instance_id: instance_id.to_string(),
                local_ipv4,
                az: az.to_string(),
                instance_action: None,
                rebalance: None,
                tags: BTreeMap::new(),
                tags_enabled: true,
                tokens: HashMap::new(),
            }),
            faults: Faults::default(),
        });
        let handler_inner = Arc::clone(&inner);
        let server = Server::start(IpAddr::V4(bind_ip), Arc::new(move |req| handle(&handler_inner, req)))
            .unwrap_or_else(|e| panic!("sim: cannot start the fake IMDS on {bind_ip}: {e}"));
        FakeImds { inner, server }
    }

    /// Base URL, `http://<bind_ip>:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// Sets the spot interruption notice: `None` → `spot/instance-action` is 404; `Some(body)` → 200 with it.
    pub fn set_instance_action(&self, json: Option<&str>) {
        lock(&self.inner.state).instance_action = json.map(str::to_string);
    }

    /// Sets the rebalance recommendation: `None` → `events/recommendations/rebalance` is 404; `Some` → 200.
    pub fn set_rebalance(&self, json: Option<&str>) {
        lock(&self.inner.state).rebalance = json.map(str::to_string);
    }

    /// Sets (`Some`) or removes (`None`) an instance tag served under `tags/instance/<key>`.
    pub fn set_tag(&self, key: &str, value: Option<&str>) {
        let mut state = lock(&self.inner.state);
        match value {
            Some(v) => state.tags.insert(key.to_string(), v.to_string()),
            None => state.tags.remove(key),
        };
    }

    /// Turns instance metadata tags on or off; off → every `tags/instance/*` path is 404. Default: on.
    pub fn set_tags_enabled(&self, enabled: bool) {
        lock(&self.inner.state).tags_enabled = enabled;
    }

    /// Invalidates every token issued so far: the next GET with one of them gets 401.
    pub fn expire_tokens(&self) {
        lock(&self.inner.state).tokens.clear();
    }

    /// Queues `fault` for the next `times` requests whose path contains `path_contains`
    /// (`usize::MAX`: until [`FakeImds::clear_faults`]). The first matching fault is consumed per request.
    pub fn inject(&self, path_contains: &str, fault: Fault, times: usize) {
        self.inner.faults.inject(path_contains, fault, times);
    }

    /// Forgets every queued fault.
    pub fn clear_faults(&self) {
        self.inner.faults.clear();
    }

    /// Every request received (faulted ones included), oldest first.
    pub fn requests(&self) -> Vec<Request> {
        self.inner.faults.requests()
    }

    /// Number of requests received whose path contains `path_contains`.
    pub fn request_count(&self, path_contains: &str) -> usize {
        self.inner.faults.count(path_contains)
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        self.inner.faults.clear_requests();
    }
}

fn handle(inner: &Inner, req: Request) -> Reply {
    match inner.faults.record_and_take(&req) {
        None => normal(inner, &req),
        Some(Fault::Delay(d)) => {
            std::thread::sleep(d);
            normal(inner, &req)
        }
        Some(Fault::Status(code)) => Reply::new(code, TEXT, format!("injected status {code}\n")),
        Some(Fault::RateLimit { reset_secs }) => Reply::new(429, TEXT, "Too Many Requests\n")
            .with_header("X-RateLimit-Limit", "60")
            .with_header("X-RateLimit-Remaining", "0")
            .with_header("X-RateLimit-Reset", &reset_secs.to_string()),
        Some(Fault::Unauthorized) => html_error(401, "Unauthorized"),
        Some(Fault::Malformed) => Reply::new(200, TEXT, &b"\xff\xfe\x00<html>{\"action\":\x01garbage"[..]),
        Some(Fault::WrongTypes) => Reply::new(200, TEXT, r#"{"action":42,"time":false,"noticeTime":[]}"#),
        Some(Fault::Truncated) => {
            let mut reply = normal(inner, &req);
            reply.status = 200;
            if reply.body.len() < 2 {
                reply.body = b"i-0123456789abcdef0".to_vec();
            }
            reply.send_only = Some(reply.body.len() / 2);
            reply
        }
        Some(Fault::Oversized(n)) => {
            let mut reply = normal(inner, &req);
            reply.status = 200;
            reply.body = pad_to(&reply.body, n);
            reply
        }
    }
}

fn normal(inner: &Inner, req: &Request) -> Reply {
    let mut state = lock(&inner.state);
    if req.path == TOKEN_PATH {
        if req.method != "PUT" {
            return html_error(405, "Method Not Allowed");
        }
        let ttl = req.header(TTL_HEADER).and_then(|v| v.trim().parse::<u64>().ok());
        let Some(ttl) = ttl.filter(|t| (1..=MAX_TTL).contains(t)) else {
            return html_error(400, "Bad Request");
        };
        let token = format!("AQAEA{}==", random_hex(3));
        let now = Instant::now();
        state.tokens.retain(|_, expires| *expires > now);
        state.tokens.insert(token.clone(), now + Duration::from_secs(ttl));
        return Reply::new(200, TEXT, token).with_header(TTL_HEADER, &ttl.to_string());
    }
    let Some(rest) = req.path.strip_prefix(META) else {
        return html_error(404, "Not Found");
    };
    if req.method != "GET" && req.method != "HEAD" {
        return html_error(405, "Method Not Allowed");
    }
    let valid =
        req.header(TOKEN_HEADER).and_then(|t| state.tokens.get(t)).is_some_and(|expires| *expires > Instant::now());
    if !valid {
        return html_error(401, "Unauthorized");
    }
    let value = match rest {
        "instance-id" => Some(state.instance_id.clone()),
        "local-ipv4" => Some(state.local_ipv4.to_string()),
        "placement/availability-zone" => Some(state.az.clone()),
        "spot/instance-action" => state.instance_action.clone(),
        "events/recommendations/rebalance" => state.rebalance.clone(),
        "tags/instance" | "tags/instance/" if state.tags_enabled => {
            Some(state.tags.keys().cloned().collect::<Vec<_>>().join("\n"))
        }
        _ => match rest.strip_prefix("tags/instance/") {
            Some(key) if state.tags_enabled => state.tags.get(key).cloned(),
            _ => None,
        },
    };
    match value {
        Some(v) => Reply::new(200, TEXT, v),
        None => html_error(404, "Not Found"),
    }
}

/// An HTML error page shaped like the one real IMDS answers with.
fn html_error(status: u16, title: &str) -> Reply {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n<html>\n <head>\n  <title>{status} - {title}</title>\n \
         </head>\n <body>\n  <h1>{status} - {title}</h1>\n </body>\n</html>\n"
    );
    Reply::new(status, "text/html", body)
}
