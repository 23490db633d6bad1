//! The fakes of the two cloud APIs etcd-spot reads, the Spotinst API and AWS IMDS, on real HTTP at loopback
//! addresses.
//!
//! Both are a [`Fake`]: one server shell that owns the HTTP server, the fault queue and the request log, around
//! an API ([`Imds`], [`Spotinst`]) that renders the normal answers and the faults whose look is its own. The
//! faults that look the same everywhere (a delay, a truncated body, an oversized body) are applied here, once.
//! A fake must never depend on the code under test, never drop a request from its log, and never bind anything
//! outside 127.0.0.0/8.

mod budget;
mod fault;
mod imds;
mod pacing;
mod server;
mod spotinst;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};

pub use budget::RateLimit;
use fault::Faults;
pub use fault::{Fault, Request};
pub use imds::{FakeImds, Imds};
pub use pacing::{Caller, EarlyCall, Pacing, pacing};
use server::{Reply, Server};
pub use spotinst::{FakeSpotinst, Spotinst, TOKEN};

use crate::util::{lock, pad_to};

/// What a fake serves: its normal answers and its own rendering of faults.
pub(crate) trait Api: Send + Sync + 'static {
    /// The answer when no fault is injected.
    fn normal(&self, req: &Request) -> Reply;

    /// The answer to a fault whose look is this API's own: [`Fault::Status`], [`Fault::RateLimit`],
    /// [`Fault::Unauthorized`], [`Fault::Malformed`], [`Fault::WrongTypes`].
    fn faulted(&self, fault: &Fault, req: &Request) -> Reply;
}

#[derive(Debug)]
struct Shared<A> {
    api: A,
    faults: Faults,
}

/// A fake API server: `A` answers, this shell serves, injects faults and records requests. Dropping it stops
/// the server.
#[derive(Debug)]
pub struct Fake<A> {
    shared: Arc<Shared<A>>,
    server: Server,
    /// More listeners serving the same API ([`Fake::listen_also`]).
    more: Mutex<Vec<Server>>,
}

/// Binds `ip:0` and serves `api` as a [`Fake`]; `what` names the fake in the panic message.
///
/// # Panics
/// If `ip` cannot be bound (the test environment is broken, or the address is not local).
fn serve<A: Api>(ip: IpAddr, api: A, what: &str) -> Fake<A> {
    let shared = Arc::new(Shared { api, faults: Faults::default() });
    let server = listen(&shared, ip).unwrap_or_else(|e| panic!("sim: cannot start the fake {what} on {ip}: {e}"));
    Fake { shared, server, more: Mutex::new(Vec::new()) }
}

/// A server on `ip:0` answering with `shared`.
fn listen<A: Api>(shared: &Arc<Shared<A>>, ip: IpAddr) -> std::io::Result<Server> {
    let handler = Arc::clone(shared);
    Server::start(ip, Arc::new(move |req| answer(&handler, req)))
}

/// Serves `fake`'s API (the same state, faults, log and rate limits) on `ip` too, on a free port; returns that
/// listener's base URL. Each request's [`Request::to`] says which listener it came to.
///
/// # Panics
/// If `ip` cannot be bound (the test environment is broken, or the address is not local).
fn listen_also<A: Api>(fake: &Fake<A>, ip: Ipv4Addr) -> String {
    let server = listen(&fake.shared, IpAddr::V4(ip))
        .unwrap_or_else(|e| panic!("sim: cannot listen on {ip} for a fake already at {}: {e}", fake.url()));
    let url = format!("http://{}", server.addr());
    lock(&fake.more).push(server);
    url
}

impl<A> Fake<A> {
    /// Base URL, `http://<address>:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// Queues `fault` for the next `times` requests whose path contains `path_contains`
    /// (`usize::MAX`: until [`Fake::clear_faults`]). The first matching fault is consumed per request.
    pub fn inject(&self, path_contains: &str, fault: Fault, times: usize) {
        self.shared.faults.inject(path_contains, fault, times);
    }

    /// Forgets every queued fault.
    pub fn clear_faults(&self) {
        self.shared.faults.clear();
    }

    /// Every request received (faulted ones included), oldest first.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.faults.requests()
    }

    /// Number of requests received whose path contains `path_contains`.
    pub fn request_count(&self, path_contains: &str) -> usize {
        self.shared.faults.count(path_contains)
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        self.shared.faults.clear_requests();
    }

    /// The API this fake serves.
    fn api(&self) -> &A {
        &self.shared.api
    }
}

/// Records `req`, takes the first queued fault matching it, answers, and notes the answer in the log.
fn answer<A: Api>(shared: &Shared<A>, req: Request) -> Reply {
    let (slot, fault) = shared.faults.record_and_take(&req);
    let reply = answer_with(&shared.api, fault, &req);
    let reset = reply.header("X-RateLimit-Reset").and_then(|v| v.parse().ok());
    shared.faults.answered(slot, reply.status, reset);
    reply
}

/// The answer to `req` with `fault` (or none) injected.
fn answer_with<A: Api>(api: &A, fault: Option<Fault>, req: &Request) -> Reply {
    match fault {
        None => api.normal(req),
        Some(Fault::Delay(d)) => {
            std::thread::sleep(d);
            api.normal(req)
        }
        Some(Fault::Truncated) => {
            let mut reply = api.normal(req);
            reply.status = 200;
            // Only an IMDS text answer can be this short; half of it would be nothing.
            if reply.body.len() < 2 {
                reply.body = b"i-0123456789abcdef0".to_vec();
            }
            reply.send_only = Some(reply.body.len() / 2);
            reply
        }
        Some(Fault::Oversized(n)) => {
            let mut reply = api.normal(req);
            reply.status = 200;
            reply.body = pad_to(&reply.body, n);
            reply
        }
        Some(fault) => api.faulted(&fault, req),
    }
}
