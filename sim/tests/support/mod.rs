//! A raw HTTP/1.1 client for the sim's own tests: one request per connection, everything the server sent is
//! kept (so a test can see a body shorter than its Content-Length).
#![allow(dead_code, reason = "each test crate that includes this module uses a different part of it")]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// What came back, byte for byte.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// How long until the server closed the connection.
    pub closed_after: Duration,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn content_length(&self) -> usize {
        self.header("Content-Length").expect("Content-Length").parse().expect("number")
    }
}

/// A keep-alive ureq client like the one the code under test uses: every status is an answer, not an error.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(20)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// Sends one request to `base` (`http://ip:port`) with `Connection: close` and reads until the server closes.
pub fn send(base: &str, method: &str, target: &str, headers: &[(&str, &str)]) -> Resp {
    send_raw(base, method, target, headers, false)
}

/// Like [`send`] but keeps the connection alive, so the server decides when to close; reads until close.
pub fn send_keep_alive(base: &str, method: &str, target: &str, headers: &[(&str, &str)]) -> Resp {
    send_raw(base, method, target, headers, true)
}

fn send_raw(base: &str, method: &str, target: &str, headers: &[(&str, &str)], keep_alive: bool) -> Resp {
    let authority = base.strip_prefix("http://").expect("http base");
    let mut stream = TcpStream::connect(authority).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {authority}\r\n");
    if !keep_alive {
        req.push_str("Connection: close\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).expect("write");
    let started = Instant::now();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read until the server closes");
    let closed_after = started.elapsed();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("end of headers");
    let head = String::from_utf8(raw[..split].to_vec()).expect("utf-8 head");
    let mut lines = head.split("\r\n");
    let status = lines.next().expect("status line").split(' ').nth(1).expect("code").parse().expect("number");
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(':').expect("header");
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect();
    Resp { status, headers, body: raw[split + 4..].to_vec(), closed_after }
}
