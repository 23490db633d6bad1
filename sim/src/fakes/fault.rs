//! Fault injection and request recording shared by the fakes.
//!
//! A fake keeps a queue of [`Fault`]s keyed by a path fragment and a log of every [`Request`] it received.
//! This module decides nothing about what a fault looks like on the wire (the fakes render them), and it
//! must never drop a request from the log, faulted or not: tests assert on what the fakes received.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::util::lock;

/// A way for a fake to misbehave on one request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Sleep this long, then answer normally.
    Delay(Duration),
    /// Answer this HTTP status (Spotinst: with an error envelope; IMDS: plain text).
    Status(u16),
    /// 429 with `X-RateLimit-Limit`, `X-RateLimit-Remaining: 0` and `X-RateLimit-Reset: reset_secs`. The fake
    /// Spotinst API then keeps answering 429 on that route until the reset has passed, as the real one does.
    RateLimit {
        /// Value of `X-RateLimit-Reset`: seconds until the route may be called again.
        reset_secs: u64,
    },
    /// 200 with a body that is not valid JSON (IMDS text paths: garbage bytes).
    Malformed,
    /// 200 with valid JSON of the wrong shape (`items` is a string, `count` is `"x"`, …).
    WrongTypes,
    /// 200 with a `Content-Length` larger than the bytes actually sent, then the connection is closed.
    Truncated,
    /// 200 with a valid-looking body of exactly this many bytes (the normal answer padded; meant for sizes
    /// larger than the normal answer, smaller ones get filler bytes).
    Oversized(usize),
    /// 401.
    Unauthorized,
    /// This status with a plain-text body that echoes the request: its headers (`Authorization` included) and
    /// its body, as some proxies and load balancers do in their error pages.
    EchoRequest(u16),
}

impl Request {
    /// The request as an echoing proxy shows it in an error page: the request line, the body, then every
    /// header, `Authorization` first (short enough that a client keeping the first 200 characters keeps them).
    pub fn echo(&self) -> String {
        let mut out = format!("proxy error: {} {} {}\n", self.method, self.path, self.body);
        let (auth, rest): (Vec<_>, Vec<_>) =
            self.headers.iter().partition(|(name, _)| name.eq_ignore_ascii_case("authorization"));
        for (name, value) in auth.into_iter().chain(rest) {
            out.push_str(&format!("{name}: {value}\n"));
        }
        out
    }
}

/// One HTTP request as a fake received it.
#[derive(Debug, Clone)]
pub struct Request {
    /// HTTP method, upper case as sent (`GET`, `PUT`).
    pub method: String,
    /// Path without the query string, e.g. `/aws/ec2/group/sig-1/status`.
    pub path: String,
    /// Query string without the leading `?` (empty when there was none).
    pub query: String,
    /// Headers in the order received, names as sent.
    pub headers: Vec<(String, String)>,
    /// Body, decoded lossily as UTF-8.
    pub body: String,
    /// When the fake finished reading the request.
    pub at: Instant,
    /// The address the request came to: which of the fake's listeners (see `Fake::listen_also`).
    pub to: SocketAddr,
    /// The status the fake answered (`None` while the answer is being made).
    pub status: Option<u16>,
    /// The `X-RateLimit-Reset` the fake answered, in seconds, when it did.
    pub rate_limit_reset: Option<u64>,
}

impl Request {
    /// Value of the first header called `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug)]
struct Queued {
    path_contains: String,
    fault: Fault,
    remaining: usize,
}

/// The request log; `generation` counts the times it was cleared, so an answer is never written to a request
/// recorded before a clear.
#[derive(Debug, Default)]
struct Log {
    requests: Vec<Request>,
    generation: u64,
}

/// Where [`Faults::record_and_take`] put a request, for [`Faults::answered`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot {
    generation: u64,
    index: usize,
}

/// Queue of injected faults plus the request log of one fake.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    queue: Mutex<Vec<Queued>>,
    log: Mutex<Log>,
}

impl Faults {
    /// Queues `fault` for the next `times` requests whose path contains `path_contains` (`usize::MAX`: forever).
    pub(crate) fn inject(&self, path_contains: &str, fault: Fault, times: usize) {
        if times == 0 {
            return;
        }
        lock(&self.queue).push(Queued { path_contains: path_contains.to_string(), fault, remaining: times });
    }

    /// Forgets every queued fault.
    pub(crate) fn clear(&self) {
        lock(&self.queue).clear();
    }

    /// Records `request` and consumes the first queued fault that matches its path, if any.
    pub(crate) fn record_and_take(&self, request: &Request) -> (Slot, Option<Fault>) {
        let slot = {
            let mut log = lock(&self.log);
            log.requests.push(request.clone());
            Slot { generation: log.generation, index: log.requests.len() - 1 }
        };
        (slot, self.take(request))
    }

    /// Notes the answer to the request recorded at `slot`: its status and `X-RateLimit-Reset`.
    pub(crate) fn answered(&self, slot: Slot, status: u16, rate_limit_reset: Option<u64>) {
        let mut log = lock(&self.log);
        if log.generation == slot.generation
            && let Some(r) = log.requests.get_mut(slot.index)
        {
            r.status = Some(status);
            r.rate_limit_reset = rate_limit_reset;
        }
    }

    fn take(&self, request: &Request) -> Option<Fault> {
        let mut queue = lock(&self.queue);
        let index = queue.iter().position(|q| request.path.contains(&q.path_contains))?;
        let fault = queue[index].fault.clone();
        if queue[index].remaining != usize::MAX {
            queue[index].remaining -= 1;
            if queue[index].remaining == 0 {
                queue.remove(index);
            }
        }
        Some(fault)
    }

    /// Every request received so far, oldest first.
    pub(crate) fn requests(&self) -> Vec<Request> {
        lock(&self.log).requests.clone()
    }

    /// Number of recorded requests whose path contains `path_contains`.
    pub(crate) fn count(&self, path_contains: &str) -> usize {
        lock(&self.log).requests.iter().filter(|r| r.path.contains(path_contains)).count()
    }

    /// Forgets the request log.
    pub(crate) fn clear_requests(&self) {
        let mut log = lock(&self.log);
        log.requests.clear();
        log.generation += 1;
    }
}
