//! The one HTTP layer every client (IMDS, Spotinst, etcd) goes through: explicit timeouts, a body size cap,
//! bounded retries with capped exponential backoff and full jitter, and `X-RateLimit-Reset` handling.
//!
//! It must never wait without a timeout, never read a body beyond the cap into memory, never follow a
//! redirect or use a proxy from the environment (IMDS must be reached directly), and never log a header value
//! (the Spotinst token and the IMDS token travel in headers).

use std::fmt;
use std::time::{Duration, Instant};

use super::tls::TlsMaterial;
use crate::error::{Error, Result};
pub use crate::error::{TlsFailure, TlsSide};

/// Timeouts, limits and retry policy of an [`Http`] client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Time allowed to establish a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Time allowed for one whole attempt, connection and response body included.
    pub timeout: Duration,
    /// Largest response body read, in bytes; a larger one is [`Error::BodyTooLarge`].
    pub max_body: usize,
    /// How many times a retryable failure is tried again (so `retries + 1` attempts at most).
    pub retries: u32,
    /// Backoff before the first retry; doubled for each further retry, then jittered.
    pub backoff_base: Duration,
    /// Largest backoff before jitter.
    pub backoff_cap: Duration,
    /// Longest `X-RateLimit-Reset` waited for before trying again; a longer one is returned at once as
    /// [`Error::RateLimited`] (waiting less than the reset only earns another 429). Zero: a 429 is never slept on.
    pub max_rate_limit_wait: Duration,
}

impl HttpConfig {
    /// The policy for a run: the given request timeout, a connect timeout of at most 2 s (and of at most the
    /// request timeout), 1 MiB bodies, 3 retries from 100 ms up to 2 s, and rate-limit resets of up to 30 s
    /// waited for.
    pub fn with_timeout(timeout: Duration) -> HttpConfig {
        HttpConfig { timeout, connect_timeout: timeout.min(Duration::from_secs(2)), ..HttpConfig::default() }
    }
}

impl Default for HttpConfig {
    /// The same policy as [`HttpConfig::with_timeout`] with a 5 s request timeout.
    fn default() -> HttpConfig {
        HttpConfig {
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
            max_body: 1024 * 1024,
            retries: 3,
            backoff_base: Duration::from_millis(100),
            backoff_cap: Duration::from_secs(2),
            max_rate_limit_wait: Duration::from_secs(30),
        }
    }
}

/// An HTTP client with one connection pool; cheap to clone (clones share the pool).
#[derive(Debug, Clone)]
pub struct Http {
    agent: ureq::Agent,
    cfg: HttpConfig,
    /// Which port its TLS speaks to, named in TLS failures; none when it has no TLS material of its own.
    side: Option<TlsSide>,
    /// Whether it presents a certificate of its own.
    presents_cert: bool,
}

/// The HTTP methods the clients use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`
    Get,
    /// `PUT`
    Put,
    /// `POST`
    Post,
}

impl Method {
    /// The method's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Put => "PUT",
            Method::Post => "POST",
        }
    }
}

/// One request to send. Header values may hold secrets: they are never logged or printed.
pub struct Request<'a> {
    /// The method.
    pub method: Method,
    /// The full URL, query string included.
    pub url: String,
    /// Headers to send, as (name, value).
    pub headers: Vec<(&'a str, String)>,
    /// Body to send (ignored for `GET`).
    pub body: Option<String>,
    /// Whether 5xx answers, timeouts and connection errors may be retried (false for requests that must not
    /// be repeated, such as adding an etcd member).
    pub retry: bool,
}

impl fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| *n).collect();
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &names)
            .field("body_len", &self.body.as_ref().map(String::len))
            .field("retry", &self.retry)
            .finish()
    }
}

/// A complete answer: status, body (at most `max_body` bytes, invalid UTF-8 replaced) and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The body as text.
    pub body: String,
    /// Headers as received (names lower case).
    pub headers: Vec<(String, String)>,
}

impl Response {
    /// The first header called `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// True for 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Why one attempt produced no response.
enum Failure {
    /// The body was over the cap; never retried.
    TooLarge,
    /// No (complete) answer; retried when the request allows it. `closed`: the connection was closed without
    /// an answer, which is how etcd refuses some TLS set-ups (see [`transport`]).
    Transport { message: String, retryable: bool, closed: bool },
    /// The TLS handshake failed; never retried (it fails the same way again).
    Tls(TlsFailure),
}

impl Http {
    /// A client with its own connection pool and the given policy, trusting the public roots for https.
    pub fn new(cfg: HttpConfig) -> Http {
        Http::with_tls(cfg, None)
    }

    /// A client that, for https URLs, trusts only the CA of `tls` and presents its certificate when it has one;
    /// TLS failures name `side`. With `None` it is [`Http::new`].
    ///
    /// An agent without TLS material that speaks to etcd is marked with [`Http::speaking_to`], so that plain
    /// http that etcd closes unanswered is named as such.
    pub fn with_tls(cfg: HttpConfig, tls: Option<(&TlsMaterial, TlsSide)>) -> Http {
        let mut builder = ureq::Agent::config_builder();
        if let Some((material, _)) = tls {
            builder = builder.tls_config(material.ureq_config());
        }
        let agent = builder
            .timeout_connect(Some(cfg.connect_timeout))
            .timeout_global(Some(cfg.timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .user_agent(concat!("etcd-spot/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Http { agent, cfg, side: tls.map(|(_, side)| side), presents_cert: tls.is_some_and(|(m, _)| m.has_identity()) }
    }

    /// The same agent, speaking to etcd's `side` port: failures name that side's settings.
    pub fn speaking_to(self, side: TlsSide) -> Http {
        Http { side: Some(side), ..self }
    }

    /// Sends with retries: 5xx, timeouts and connection errors are retried `retries` times (only when
    /// `req.retry`) with capped exponential backoff and full jitter; 429 waits `X-RateLimit-Reset` seconds (1 s
    /// when the header is absent or bad) then retries, counting as an attempt (a 429 means the request was not
    /// processed, so this happens even when `req.retry` is false), unless the reset is longer than
    /// `max_rate_limit_wait`: then it is `Err(RateLimited)` at once, with the reset for the caller to honour.
    /// Returns `Ok(Response)` for any status once retries are spent (4xx immediately, 5xx after the last
    /// attempt); `Err(Transport)` when no answer came; `Err(RateLimited)` if still 429; `Err(BodyTooLarge)`
    /// when the body exceeds `max_body` (never read into memory beyond the cap; not retried).
    ///
    /// Every attempt is logged at debug (method, url, attempt, status or error, elapsed); header values never.
    pub fn send(&self, req: Request<'_>) -> Result<Response> {
        self.send_observed(req, &mut |_| {})
    }

    /// [`Http::send`], telling `observe` of every attempt: the answer's status, or `None` when no answer came.
    pub fn send_observed(&self, req: Request<'_>, observe: &mut dyn FnMut(Option<u16>)) -> Result<Response> {
        let attempts = self.cfg.retries.saturating_add(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt >= attempts;
            let started = Instant::now();
            let outcome = self.attempt(&req);
            let elapsed = started.elapsed();
            let method = req.method.as_str();
            match outcome {
                Ok(resp) => {
                    log::debug!("{method} {} attempt {attempt}: HTTP {} in {elapsed:?}", req.url, resp.status);
                    observe(Some(resp.status));
                    if resp.status == 429 {
                        let reset = resp.header("X-RateLimit-Reset").and_then(|v| v.trim().parse::<u64>().ok());
                        let reset_secs = reset.unwrap_or(1);
                        let wait = Duration::from_secs(reset_secs);
                        if last || wait > self.cfg.max_rate_limit_wait {
                            return Err(Error::RateLimited { url: req.url, reset_secs });
                        }
                        let wait = wait + jitter(self.cfg.backoff_base);
                        log::debug!("{method} {} rate limited; waiting {wait:?}", req.url);
                        std::thread::sleep(wait);
                        continue;
                    }
                    if resp.status >= 500 && req.retry && !last {
                        std::thread::sleep(self.backoff(attempt));
                        continue;
                    }
                    return Ok(resp);
                }
                Err(Failure::TooLarge) => {
                    log::debug!("{method} {} attempt {attempt}: body over {} bytes", req.url, self.cfg.max_body);
                    return Err(Error::BodyTooLarge { url: req.url, limit: self.cfg.max_body });
                }
                Err(Failure::Tls(failure)) => {
                    log::debug!("{method} {} attempt {attempt}: TLS: {failure:?} after {elapsed:?}", req.url);
                    observe(None);
                    let side = self.side.unwrap_or(TlsSide::Client);
                    return Err(Error::Tls { url: req.url, side, failure });
                }
                Err(Failure::Transport { message, retryable, closed }) => {
                    log::debug!("{method} {} attempt {attempt}: {message} after {elapsed:?}", req.url);
                    observe(None);
                    if retryable && req.retry && !last {
                        std::thread::sleep(self.backoff(attempt));
                        continue;
                    }
                    let https = req.url.starts_with("https://");
                    match (closed, https, self.side) {
                        (true, true, side) => {
                            let side = side.unwrap_or(TlsSide::Client);
                            let failure = TlsFailure::Closed { presented_cert: self.presents_cert, message };
                            return Err(Error::Tls { url: req.url, side, failure });
                        }
                        (true, false, Some(side)) => {
                            let failure = TlsFailure::PlainClosed { message };
                            return Err(Error::Tls { url: req.url, side, failure });
                        }
                        _ => {}
                    }
                    return Err(Error::Transport { url: req.url, message });
                }
            }
        }
    }

    /// Full-jitter backoff before retry number `attempt` (1-based).
    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.saturating_sub(1)).unwrap_or(u32::MAX);
        jitter(self.cfg.backoff_base.saturating_mul(factor).min(self.cfg.backoff_cap))
    }

    fn attempt(&self, req: &Request<'_>) -> std::result::Result<Response, Failure> {
        let result = match req.method {
            Method::Get => {
                let mut b = self.agent.get(&req.url);
                for (name, value) in &req.headers {
                    b = b.header(*name, value);
                }
                b.call()
            }
            Method::Put | Method::Post => {
                let mut b =
                    if req.method == Method::Put { self.agent.put(&req.url) } else { self.agent.post(&req.url) };
                for (name, value) in &req.headers {
                    b = b.header(*name, value);
                }
                match &req.body {
                    Some(body) => b.send(body.as_str()),
                    None => b.send_empty(),
                }
            }
        };
        let mut resp = result.map_err(transport)?;
        let status = resp.status().as_u16();
        let headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let declared = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse::<u64>().ok());
        let limit = u64::try_from(self.cfg.max_body).unwrap_or(u64::MAX);
        if declared.is_some_and(|n| n > limit) {
            return Err(Failure::TooLarge);
        }
        let body =
            resp.body_mut().with_config().limit(limit).lossy_utf8(true).read_to_string().map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => Failure::TooLarge,
                other => transport(other),
            })?;
        Ok(Response { status, body, headers })
    }
}

/// What a ureq error means here. A connection closed without an answer stays a retryable transport failure,
/// marked `closed`: etcd closes a TLS hello on a plain port, plain http on a TLS port (client and peer ports
/// alike, no "HTTP request to an HTTPS server" answer), a peer certificate whose IP SAN does not name the address
/// we connect from, and under TLS 1.3 a refused client certificate is told by an alert that the reset of the
/// connection often overtakes. When retries end that way, [`Http::send_observed`] names it as a TLS failure (for
/// plain http only on an agent that speaks to etcd, marked with its side).
fn transport(e: ureq::Error) -> Failure {
    if let Some(failure) = tls_failure(&e) {
        return Failure::Tls(failure);
    }
    if let ureq::Error::Io(io) = &e
        && matches!(
            io.kind(),
            std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe
        )
    {
        return Failure::Transport { message: io.to_string(), retryable: true, closed: true };
    }
    let retryable = matches!(
        e,
        ureq::Error::Timeout(_)
            | ureq::Error::Io(_)
            | ureq::Error::ConnectionFailed
            | ureq::Error::HostNotFound
            | ureq::Error::Protocol(_)
    );
    let message = match &e {
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        other => other.to_string(),
    };
    Failure::Transport { message, retryable, closed: false }
}

/// The TLS failure inside a ureq error, if it is one: rustls's error, wrapped in an I/O error during the
/// handshake or the first read (a refused client certificate arrives as an alert after a TLS 1.3 handshake).
fn tls_failure(e: &ureq::Error) -> Option<TlsFailure> {
    let rustls_error = match e {
        ureq::Error::Rustls(r) => Some(r),
        ureq::Error::Io(io) => io.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        _ => None,
    };
    if let Some(r) = rustls_error {
        return Some(TlsFailure::from_rustls(r));
    }
    match e {
        ureq::Error::Tls(message) => Some(TlsFailure::Other(message.to_string())),
        _ => None,
    }
}

/// Random duration in `[0, d]` (full jitter), from `fastrand` (seeded per thread by the standard library's
/// random hasher keys).
pub fn jitter(d: Duration) -> Duration {
    let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(fastrand::u64(..=nanos))
}

/// Percent-encodes one URL path segment (everything but unreserved characters and `:` `@`).
pub(crate) fn encode_path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_range() {
        for ms in [0u64, 1, 10, 1000] {
            let d = Duration::from_millis(ms);
            for _ in 0..200 {
                assert!(jitter(d) <= d);
            }
        }
        let spread: std::collections::HashSet<Duration> = (0..50).map(|_| jitter(Duration::from_secs(1))).collect();
        assert!(spread.len() > 10, "jitter should vary: {spread:?}");
    }

    #[test]
    fn backoff_is_capped() {
        let http = Http::new(HttpConfig::default());
        for attempt in 1..40 {
            assert!(http.backoff(attempt) <= Duration::from_secs(2));
        }
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(encode_path_segment("spotinst:aws:ec2:group:id"), "spotinst:aws:ec2:group:id");
        assert_eq!(encode_path_segment("a b/c?d"), "a%20b%2Fc%3Fd");
    }

    #[test]
    fn request_debug_hides_header_values() {
        let req = Request {
            method: Method::Get,
            url: "http://127.0.0.1:1/x".into(),
            headers: vec![("Authorization", "Bearer hunter2".into())],
            body: None,
            retry: true,
        };
        let shown = format!("{req:?}");
        assert!(shown.contains("Authorization") && !shown.contains("hunter2"), "{shown}");
    }
}
