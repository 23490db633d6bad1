//! The boot handshake that keeps a rebooting member from being mistaken for a fresh group.
//!
//! "No instance answers as an etcd member" cannot tell a fresh group from one whose only surviving member is
//! rebooting (its etcd down, its instance still listed) while the others were replaced. So while discover waits
//! with an empty data dir it answers a probe on its peer address (the port etcd will take once it starts):
//! `GET /etcd-spot/v1/boot` → `{"instance":"i-…","group":"sig-…","data_dir":"empty"}`. An instance bootstraps
//! only when every other running instance of the group answered that way (planner, `empty_peers`). A member that
//! has run holds data, so its discover never answers; silence means wait, and at the timeout, refuse.
//!
//! A discover that decided to bootstrap keeps answering (with `"decided":true`; its data dir is still empty, and
//! etcd cannot start before discover exits) until every other instance of the listing has probed it since, or
//! answers that it decided too, or no longer answers, for at most [`LINGER`]: a founder that decides first must
//! not leave the others without its confirmation. Probes name their sender (`?from=i-…`) for that count only;
//! it never counts as a confirmation.
//!
//! Without peer TLS the answer is plain HTTP whatever `--scheme` says. With peer TLS (`--peer-cacert`) it is
//! served over TLS with this instance's peer certificate, and answers only a probe that presents a certificate
//! chaining to the peer CA (rustls's `WebPkiClientVerifier`): anything else fails the handshake and gets no
//! answer. The probe verifies the beacon against the peer CA (its IP SAN must name the probed address) and
//! presents its own peer certificate; a handshake that fails is never a confirmation. It reveals the instance
//! ID and group ID, which the group listing already shows to any peer. One connection is served at a time, and
//! each gets at most [`READ_TIMEOUT`] in all, TLS handshake included, so a slow or broken client cannot hold
//! the serving thread.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::clients::http::{Http, Method, Request};
use crate::error::Error;
use crate::types::{InstanceId, Scheme};

/// The probe's path.
pub(crate) const PATH: &str = "/etcd-spot/v1/boot";
/// How often the serving thread checks whether it should stop.
const POLL: Duration = Duration::from_millis(50);
/// Time a probing peer gets in all: TLS handshake, request and answer.
const READ_TIMEOUT: Duration = Duration::from_secs(1);
/// Most connections answered at once.
const MAX_CONNECTIONS: usize = 16;
/// The longest a discover that decided to bootstrap keeps answering probes.
pub(crate) const LINGER: Duration = Duration::from_secs(15);

/// What a waiting discover answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BootAnswer {
    pub(crate) instance: String,
    pub(crate) group: String,
    /// Always `"empty"` today: only a discover with an empty data dir answers.
    pub(crate) data_dir: String,
    /// The group listing it last saw ([`crate::planner::listing_digest`]): a confirmation counts only between
    /// discovers that saw the same one, so they compute the same initial cluster.
    pub(crate) listing: String,
    /// Whether it decided to bootstrap (and so needs no confirmation any more); absent means no.
    #[serde(default)]
    pub(crate) decided: bool,
}

/// What one probe of another instance's discover found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Probe {
    /// It answered for that instance, group and listing that its data dir is empty (and whether it decided).
    Confirmed { decided: bool },
    /// Nothing answers there: no discover runs, and no etcd either.
    Silent,
    /// Something else answered (another instance, group or listing, etcd itself, anything malformed).
    Other,
}

/// The serving side; answering stops (and the port is released) when it is dropped.
#[derive(Debug)]
pub(crate) struct Beacon {
    addr: SocketAddr,
    answer: Arc<Mutex<BootAnswer>>,
    /// The instances whose probes named them, since the beacon started or was last marked decided.
    probed_by: Arc<Mutex<BTreeSet<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Beacon {
    /// Answers probes on `ip:port` for `instance` of `group`, whose data dir is empty; over TLS with `tls`.
    pub(crate) fn start(
        ip: Ipv4Addr,
        port: u16,
        instance: &InstanceId,
        group: &str,
        listing: &str,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> std::io::Result<Beacon> {
        let listener = TcpListener::bind((ip, port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let answer = Arc::new(Mutex::new(BootAnswer {
            instance: instance.to_string(),
            group: group.to_owned(),
            data_dir: "empty".into(),
            listing: listing.to_owned(),
            decided: false,
        }));
        let probed_by = Arc::new(Mutex::new(BTreeSet::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, shared, seen) = (Arc::clone(&stop), Arc::clone(&answer), Arc::clone(&probed_by));
        let thread =
            thread::Builder::new().name("beacon".into()).spawn(move || serve(&listener, &shared, &seen, &flag, tls))?;
        log::debug!("answering boot probes on {addr}");
        Ok(Beacon { addr, answer, probed_by, stop, thread: Some(thread) })
    }

    /// Answers "decided" from now on, and forgets who probed so far.
    pub(crate) fn set_decided(&self) {
        if let Ok(mut a) = self.answer.lock() {
            a.decided = true;
        }
        if let Ok(mut p) = self.probed_by.lock() {
            p.clear();
        }
    }

    /// The instances that probed since the beacon started or was marked decided.
    pub(crate) fn probed_by(&self) -> BTreeSet<String> {
        self.probed_by.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// Answers with this group listing from now on.
    pub(crate) fn set_listing(&self, listing: &str) {
        if let Ok(mut a) = self.answer.lock() {
            listing.clone_into(&mut a.listing);
        }
    }

    /// The address it answers on.
    #[cfg(test)]
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Beacon {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        log::debug!("stopped answering boot probes on {}", self.addr);
    }
}

/// Accepts until told to stop, answering each connection on its own short-lived thread (at most
/// [`MAX_CONNECTIONS`] at once; more are closed unanswered), so a client that stalls costs only its own
/// [`READ_TIMEOUT`] and never delays another probe.
fn serve(
    listener: &TcpListener,
    answer_now: &Mutex<BootAnswer>,
    probed_by: &Arc<Mutex<BTreeSet<String>>>,
    stop: &AtomicBool,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let active = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, peer)) => {
                if active.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
                    log::debug!("boot probe from {peer}: {MAX_CONNECTIONS} connections already open; closed");
                    continue;
                }
                let body = match answer_now.lock().map(|a| serde_json::to_string(&*a)) {
                    Ok(Ok(body)) => body,
                    // Never answer something that could read as a confirmation when the answer cannot be built.
                    _ => continue,
                };
                active.fetch_add(1, Ordering::Relaxed);
                let (tls, probed_by, done) = (tls.clone(), Arc::clone(probed_by), Arc::clone(&active));
                let spawned = thread::Builder::new().name("beacon-conn".into()).spawn(move || {
                    if let Err(e) = answer(stream, &body, tls.as_ref(), &probed_by) {
                        log::debug!("boot probe from {peer}: {e}");
                    }
                    done.fetch_sub(1, Ordering::Relaxed);
                });
                if let Err(e) = spawned {
                    active.fetch_sub(1, Ordering::Relaxed);
                    log::debug!("boot probe from {peer}: cannot start a thread ({e})");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => thread::sleep(POLL),
            Err(e) => {
                log::debug!("boot probe accept: {e}");
                thread::sleep(POLL);
            }
        }
    }
}

/// A connection that fails every read and write after its deadline: the whole exchange, TLS included, fits in
/// [`READ_TIMEOUT`].
struct Deadline {
    stream: TcpStream,
    deadline: Instant,
}

impl Deadline {
    fn left(&self) -> std::io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() { Err(std::io::ErrorKind::TimedOut.into()) } else { Ok(left) }
    }
}

impl Read for Deadline {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.stream.set_read_timeout(Some(self.left()?))?;
        self.stream.read(buf)
    }
}

impl Write for Deadline {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.stream.set_write_timeout(Some(self.left()?))?;
        self.stream.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.stream.flush()
    }
}

/// Answers one connection within [`READ_TIMEOUT`], over TLS when `tls` is given (a client without a
/// certificate from the peer CA fails the handshake: nothing is answered); the instance a probe named as its
/// sender (`?from=`) is added to `probed_by` before the answer goes out.
fn answer(
    stream: TcpStream,
    body: &str,
    tls: Option<&Arc<rustls::ServerConfig>>,
    probed_by: &Mutex<BTreeSet<String>>,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    let io = Deadline { stream, deadline: Instant::now() + READ_TIMEOUT };
    let Some(config) = tls else {
        return exchange(io, body, probed_by);
    };
    let conn = rustls::ServerConnection::new(Arc::clone(config)).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, io);
    exchange(&mut tls, body, probed_by)?;
    tls.conn.send_close_notify();
    let _ = tls.flush();
    Ok(())
}

/// Reads one request head (at most 4 KiB) and answers it.
fn exchange(mut stream: impl Read + Write, body: &str, probed_by: &Mutex<BTreeSet<String>>) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 4096 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let mut words = line.split_whitespace();
    let (method, target) = (words.next(), words.next().unwrap_or(""));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let (status, body, from) = match (method, path) {
        (Some("GET"), PATH) => {
            let from = query.split('&').find_map(|kv| kv.strip_prefix("from=")).filter(|f| is_instance_id(f));
            ("200 OK", body, from.map(str::to_owned))
        }
        _ => ("404 Not Found", "{}", None),
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if let Some(from) = from
        && let Ok(mut p) = probed_by.lock()
    {
        p.insert(from);
    }
    stream.write_all(reply.as_bytes())?;
    stream.flush()
}

/// Whether a probe's `from` looks like an instance ID (it is only ever compared with the listing's).
fn is_instance_id(s: &str) -> bool {
    InstanceId::parse(s).is_ok()
}

/// Probes the discover of `instance` (of `group`) at `ip:port` as `from`, with `scheme` (https under peer TLS:
/// `http` then carries the peer CA and certificate): whether it answers that its data dir is empty, from the
/// same group `listing`; whether nothing answers; or whether something else does (another instance, group or
/// listing, anything malformed, a TLS handshake that failed either way: never a confirmation).
#[expect(clippy::too_many_arguments, reason = "one probe names who, where, how and as whom; a struct adds nothing")]
pub(crate) fn probe(
    http: &Http,
    scheme: Scheme,
    ip: Ipv4Addr,
    port: u16,
    instance: &InstanceId,
    group: &str,
    listing: &str,
    from: &InstanceId,
) -> Probe {
    let url = format!("{}://{ip}:{port}{PATH}?from={from}", scheme.as_str());
    let req = Request { method: Method::Get, url: url.clone(), headers: Vec::new(), body: None, retry: false };
    let answer = match http.send(req) {
        Ok(r) if r.status == 200 => r.body,
        Ok(r) => {
            log::debug!("{url}: HTTP {}", r.status);
            return Probe::Other;
        }
        Err(e) => {
            log::debug!("{url}: {e}");
            return if matches!(e, Error::Transport { .. }) { Probe::Silent } else { Probe::Other };
        }
    };
    match serde_json::from_str::<BootAnswer>(&answer) {
        Ok(a)
            if a.instance == instance.as_str() && a.group == group && a.data_dir == "empty" && a.listing == listing =>
        {
            Probe::Confirmed { decided: a.decided }
        }
        Ok(_) => {
            log::debug!("{url} answered for another instance or state: {answer}");
            Probe::Other
        }
        Err(e) => {
            log::debug!("{url} answered malformed JSON ({e})");
            Probe::Other
        }
    }
}

#[cfg(test)]
#[path = "beacon_tls_tests.rs"]
mod tls_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::http::HttpConfig;

    fn quick() -> Http {
        Http::new(HttpConfig {
            timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            retries: 0,
            ..HttpConfig::default()
        })
    }

    fn id(s: &str) -> InstanceId {
        InstanceId::parse(s).unwrap()
    }

    /// Whether a probe (sent as i-0f) confirms an empty data dir.
    fn confirms_empty(http: &Http, ip: Ipv4Addr, port: u16, instance: &InstanceId, group: &str, listing: &str) -> bool {
        matches!(probe(http, Scheme::Http, ip, port, instance, group, listing, &id("i-0f")), Probe::Confirmed { .. })
    }

    #[test]
    fn probes_name_their_sender_and_a_decided_beacon_says_so() {
        let ip = Ipv4Addr::new(127, 0, 58, 3);
        let beacon = Beacon::start(ip, 0, &id("i-0a"), "sig-1", "L", None).unwrap();
        let port = beacon.addr().port();
        let http = quick();
        assert_eq!(
            probe(&http, Scheme::Http, ip, port, &id("i-0a"), "sig-1", "L", &id("i-0b")),
            Probe::Confirmed { decided: false }
        );
        assert_eq!(beacon.probed_by(), BTreeSet::from(["i-0b".to_string()]));
        beacon.set_decided();
        assert!(beacon.probed_by().is_empty(), "deciding forgets the earlier probes");
        assert_eq!(
            probe(&http, Scheme::Http, ip, port, &id("i-0a"), "sig-1", "L", &id("i-0c")),
            Probe::Confirmed { decided: true }
        );
        assert_eq!(beacon.probed_by(), BTreeSet::from(["i-0c".to_string()]));
        // Another instance's answer is something else, not silence.
        assert_eq!(probe(&http, Scheme::Http, ip, port, &id("i-0b"), "sig-1", "L", &id("i-0c")), Probe::Other);
        drop(beacon);
        assert_eq!(probe(&http, Scheme::Http, ip, port, &id("i-0a"), "sig-1", "L", &id("i-0c")), Probe::Silent);
    }

    #[test]
    fn a_beacon_confirms_only_its_own_instance_and_group_until_dropped() {
        let ip = Ipv4Addr::new(127, 0, 58, 1);
        let beacon = Beacon::start(ip, 0, &id("i-0a"), "sig-1", "L1", None).unwrap();
        let port = beacon.addr().port();
        let http = quick();
        assert!(confirms_empty(&http, ip, port, &id("i-0a"), "sig-1", "L1"));
        // Reused address: the instance listed there now is another one.
        assert!(!confirms_empty(&http, ip, port, &id("i-0b"), "sig-1", "L1"));
        assert!(!confirms_empty(&http, ip, port, &id("i-0a"), "sig-2", "L1"));
        // A discover that saw another listing would compute another initial cluster.
        assert!(!confirms_empty(&http, ip, port, &id("i-0a"), "sig-1", "L2"));
        beacon.set_listing("L2");
        assert!(confirms_empty(&http, ip, port, &id("i-0a"), "sig-1", "L2"));
        // Other paths are not the probe.
        let other = http
            .send(Request {
                method: Method::Get,
                url: format!("http://{ip}:{port}/members"),
                headers: Vec::new(),
                body: None,
                retry: false,
            })
            .unwrap();
        assert_eq!(other.status, 404);
        drop(beacon);
        // Gone: silence is not a confirmation, and the port is free again for etcd.
        assert!(!confirms_empty(&http, ip, port, &id("i-0a"), "sig-1", "L2"));
        TcpListener::bind((ip, port)).unwrap();
    }

    #[test]
    fn malformed_or_wrong_answers_do_not_confirm() {
        let ip = Ipv4Addr::new(127, 0, 58, 2);
        for (status, body) in [
            ("200 OK", "{nope"),
            ("200 OK", r#"{"instance":"i-0a","group":"sig-1","data_dir":"full","listing":"L"}"#),
            ("200 OK", r#"{"instance":"i-0a","group":"sig-1","listing":"L"}"#),
            ("500 Internal Server Error", r#"{"instance":"i-0a","group":"sig-1","data_dir":"empty","listing":"L"}"#),
            ("500 Internal Server Error", ""),
        ] {
            let reply =
                format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            let listener = TcpListener::bind((ip, 0)).unwrap();
            let port = listener.local_addr().unwrap().port();
            let server = thread::spawn(move || {
                let (mut s, _) = listener.accept().unwrap();
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf);
                s.write_all(reply.as_bytes()).unwrap();
            });
            assert!(!confirms_empty(&quick(), ip, port, &id("i-0a"), "sig-1", "L"), "{status} {body}");
            server.join().unwrap();
        }
    }
}
