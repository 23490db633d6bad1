//! A minimal HTTP/1.1 server for the fakes, on std::net, one thread per connection.
//!
//! It is hand-written (instead of a server crate such as tiny_http) because a fake must be able to send a short body and then close the
//! connection (`Fault::Truncated`), which tiny_http cannot do on a kept-alive connection. It speaks just what
//! the clients under test send: request line, headers, `Content-Length` bodies, keep-alive. It must never
//! bind anything but the loopback address it is given, and must never outlive its owner: dropping the
//! [`Server`] stops accepting and shuts down every open connection.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::fault::Request;
use crate::util::lock;

/// Largest request line or header line accepted.
const MAX_LINE: u64 = 16 * 1024;
/// Most headers accepted in one request.
const MAX_HEADERS: usize = 100;
/// Largest request body accepted.
const MAX_BODY: usize = 1024 * 1024;

/// What a fake answers to one request.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    /// Send only this many body bytes (while declaring the full length), then close.
    pub(crate) send_only: Option<usize>,
}

impl Reply {
    /// A reply with a `Content-Type` and a body.
    pub(crate) fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type".to_string(), content_type.to_string())],
            body: body.into(),
            send_only: None,
        }
    }

    /// Adds a header.
    pub(crate) fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Adds the headers of a rate-limited answer: `X-RateLimit-Limit: limit`, `X-RateLimit-Remaining: 0` and
    /// `X-RateLimit-Reset: reset_secs`.
    pub(crate) fn rate_limited(self, limit: u32, reset_secs: u64) -> Reply {
        self.with_header("X-RateLimit-Limit", &limit.to_string())
            .with_header("X-RateLimit-Remaining", "0")
            .with_header("X-RateLimit-Reset", &reset_secs.to_string())
    }

    /// The value of header `name` (compared case-insensitively), if the reply has one.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// The function a fake answers requests with.
pub(crate) type Handler = dyn Fn(Request) -> Reply + Send + Sync;

/// A running server; dropping it stops it.
#[derive(Debug)]
pub(crate) struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<HashMap<u64, TcpStream>>>,
    accept: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds `ip:0` and serves `handler` on background threads.
    pub(crate) fn start(ip: IpAddr, handler: Arc<Handler>) -> io::Result<Server> {
        let listener = TcpListener::bind((ip, 0))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(HashMap::new()));
        let accept = {
            let stop = Arc::clone(&stop);
            let conns = Arc::clone(&conns);
            thread::Builder::new()
                .name(format!("sim-accept-{addr}"))
                .spawn(move || accept_loop(&listener, addr, &stop, &conns, &handler))?
        };
        Ok(Server { addr, stop, conns, accept: Some(accept) })
    }

    /// The bound address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop; it sees the flag and returns.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        for (_, conn) in lock(&self.conns).drain() {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(
    listener: &TcpListener,
    addr: SocketAddr,
    stop: &Arc<AtomicBool>,
    conns: &Arc<Mutex<HashMap<u64, TcpStream>>>,
    handler: &Arc<Handler>,
) {
    let mut next_id = 0u64;
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                log::warn!("sim: accept failed: {e}");
                thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        let id = next_id;
        next_id += 1;
        if let Ok(clone) = stream.try_clone() {
            lock(conns).insert(id, clone);
        }
        let conns2 = Arc::clone(conns);
        let handler = Arc::clone(handler);
        let stop = Arc::clone(stop);
        let spawned = thread::Builder::new().name("sim-conn".to_string()).spawn(move || {
            serve_connection(stream, addr, &handler, &stop);
            lock(&conns2).remove(&id);
        });
        if spawned.is_err() {
            lock(conns).remove(&id);
        }
    }
}

fn serve_connection(stream: TcpStream, addr: SocketAddr, handler: &Arc<Handler>, stop: &AtomicBool) {
    let _ = stream.set_nodelay(true);
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    loop {
        let (request, keep_alive) = match read_request(&mut reader, addr) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(message) => {
                let reply = Reply::new(400, "text/plain", message);
                let _ = write_reply(&mut writer, &reply, false, false);
                let _ = writer.shutdown(Shutdown::Write);
                return;
            }
        };
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let head = request.method == "HEAD";
        let (method, path) = (request.method.clone(), request.path.clone());
        let reply = handler(request);
        log::debug!(
            "sim {} {method} {path} -> {}",
            writer.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            reply.status
        );
        let keep = keep_alive && reply.send_only.is_none();
        if write_reply(&mut writer, &reply, keep, head).is_err() || !keep {
            let _ = writer.shutdown(Shutdown::Write);
            return;
        }
    }
}

/// Reads one request; `Ok(None)` on a clean end of stream. The bool says whether the client keeps the
/// connection alive.
fn read_request(reader: &mut BufReader<TcpStream>, to: SocketAddr) -> Result<Option<(Request, bool)>, String> {
    let mut line = String::new();
    loop {
        line.clear();
        let n = read_line(reader, &mut line)?;
        if n == 0 {
            return Ok(None);
        }
        if !line.trim().is_empty() {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("bad request line {:?}", line.trim_end()));
    };
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(format!("unsupported version {version}"));
    }
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if read_line(reader, &mut h)? == 0 {
            return Err("end of stream inside headers".to_string());
        }
        let h = h.trim_end_matches(['\r', '\n']);
        if h.is_empty() {
            break;
        }
        if headers.len() >= MAX_HEADERS {
            return Err("too many headers".to_string());
        }
        let Some((name, value)) = h.split_once(':') else {
            return Err(format!("bad header line {h:?}"));
        };
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let find = |name: &str| {
        headers.iter().find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    };
    if find("Transfer-Encoding").is_some() {
        return Err("chunked request bodies are not supported by the sim".to_string());
    }
    let length = match find("Content-Length") {
        None => 0,
        Some(v) => v.parse::<usize>().map_err(|_| format!("bad Content-Length {v:?}"))?,
    };
    if length > MAX_BODY {
        return Err(format!("body of {length} bytes is too large"));
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).map_err(|e| format!("reading body: {e}"))?;
    let connection = find("Connection").map(str::to_ascii_lowercase).unwrap_or_default();
    let keep_alive =
        if version == "HTTP/1.0" { connection.contains("keep-alive") } else { !connection.contains("close") };
    // Absolute-form targets (`http://host/path`) are reduced to their path.
    let target = match target.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let request = Request {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        at: Instant::now(),
        to,
        status: None,
        rate_limit_reset: None,
    };
    Ok(Some((request, keep_alive)))
}

fn read_line(reader: &mut BufReader<TcpStream>, line: &mut String) -> Result<usize, String> {
    let n = reader.by_ref().take(MAX_LINE).read_line(line).map_err(|e| format!("reading request: {e}"))?;
    if n > 0 && !line.ends_with('\n') && n as u64 == MAX_LINE {
        return Err("line too long".to_string());
    }
    Ok(n)
}

fn write_reply(writer: &mut TcpStream, reply: &Reply, keep_alive: bool, head: bool) -> io::Result<()> {
    let mut out = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status)).into_bytes();
    for (name, value) in &reply.headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(b"Server: etcd-spot-sim\r\n");
    out.extend_from_slice(format!("Content-Length: {}\r\n", reply.body.len()).as_bytes());
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head {
        let sent = reply.send_only.unwrap_or(reply.body.len()).min(reply.body.len());
        out.extend_from_slice(&reply.body[..sent]);
    }
    writer.write_all(&out)?;
    writer.flush()
}

/// The standard reason phrase for `status`.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}
