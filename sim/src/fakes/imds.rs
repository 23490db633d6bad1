//! A fake AWS instance metadata service (IMDSv2 only) for one simulated instance, on real HTTP at a loopback
//! address of the test's choosing.
//!
//! It enforces the IMDSv2 token rule (PUT for a token with a TTL header, then every metadata GET carries a
//! valid, unexpired token), serves the paths etcd-spot reads as text/plain, and records every request. It must
//! never answer a metadata GET without a valid token, and never depend on the code under test.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::server::Reply;
use super::{Api, Fake, Fault, Request, serve};
use crate::util::{lock, random_hex};

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

/// The metadata of one instance as IMDS serves it (the API of a [`FakeImds`]).
#[derive(Debug)]
pub struct Imds {
    state: Mutex<State>,
}

/// A fake IMDS for one instance; dropping it stops the server.
pub type FakeImds = Fake<Imds>;

impl Fake<Imds> {
    /// Binds `bind_ip` (a loopback address) on a free port and serves this instance's metadata.
    ///
    /// # Panics
    /// If `bind_ip` cannot be bound (the test environment is broken, or the address is not local).
    pub fn start(bind_ip: Ipv4Addr, instance_id: &str, local_ipv4: Ipv4Addr, az: &str) -> FakeImds {
        let state = State {
            instance_id: instance_id.to_string(),
            local_ipv4,
            az: az.to_string(),
            instance_action: None,
            rebalance: None,
            tags: BTreeMap::new(),
            tags_enabled: true,
            tokens: HashMap::new(),
        };
        serve(IpAddr::V4(bind_ip), Imds { state: Mutex::new(state) }, "IMDS")
    }

    /// Sets the spot interruption notice: `None` → `spot/instance-action` is 404; `Some(body)` → 200 with it.
    pub fn set_instance_action(&self, json: Option<&str>) {
        lock(&self.api().state).instance_action = json.map(str::to_string);
    }

    /// Sets the rebalance recommendation: `None` → `events/recommendations/rebalance` is 404; `Some` → 200.
    pub fn set_rebalance(&self, json: Option<&str>) {
        lock(&self.api().state).rebalance = json.map(str::to_string);
    }

    /// Sets (`Some`) or removes (`None`) an instance tag served under `tags/instance/<key>`.
    pub fn set_tag(&self, key: &str, value: Option<&str>) {
        let mut state = lock(&self.api().state);
        match value {
            Some(v) => state.tags.insert(key.to_string(), v.to_string()),
            None => state.tags.remove(key),
        };
    }

    /// Turns instance metadata tags on or off; off → every `tags/instance/*` path is 404. Default: on.
    pub fn set_tags_enabled(&self, enabled: bool) {
        lock(&self.api().state).tags_enabled = enabled;
    }

    /// Invalidates every token issued so far: the next GET with one of them gets 401.
    pub fn expire_tokens(&self) {
        lock(&self.api().state).tokens.clear();
    }
}

impl Api for Imds {
    fn normal(&self, req: &Request) -> Reply {
        normal(&self.state, req)
    }

    fn faulted(&self, fault: &Fault, req: &Request) -> Reply {
        match fault {
            Fault::Status(code) => Reply::new(*code, TEXT, format!("injected status {code}\n")),
            Fault::RateLimit { reset_secs } => {
                Reply::new(429, TEXT, "Too Many Requests\n").rate_limited(60, *reset_secs)
            }
            Fault::Unauthorized => html_error(401, "Unauthorized"),
            Fault::EchoRequest(code) => Reply::new(*code, TEXT, req.echo()),
            Fault::Malformed => Reply::new(200, TEXT, &b"\xff\xfe\x00<html>{\"action\":\x01garbage"[..]),
            Fault::WrongTypes => Reply::new(200, TEXT, r#"{"action":42,"time":false,"noticeTime":[]}"#),
            Fault::Delay(_) | Fault::Truncated | Fault::Oversized(_) => self.normal(req),
        }
    }
}

fn normal(state: &Mutex<State>, req: &Request) -> Reply {
    let mut state = lock(state);
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
