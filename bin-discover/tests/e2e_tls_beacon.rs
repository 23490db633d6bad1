//! The boot handshake under peer TLS (issue 16), net 127.0.69.21-33: a waiting discover's beacon answers only a
//! probe that presents a certificate of the peer CA (not one without a certificate, not one of another CA, not
//! plain HTTP), and a stray process that impersonates other instances' beacons, answering exactly what a real
//! beacon would but without a peer certificate of the group (plain HTTP, or TLS with another CA's certificate),
//! never leads a discover to bootstrap. The control: the same stray, answering over plain HTTP in a group without
//! TLS, is counted there, so the stray's answer is faithful and the test can fail.
//!
//! The stray server is written here on rustls (the TLS the binaries carry): a test needs a server that answers
//! the beacon's JSON under a certificate of its choosing.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use etcd_spot_sim::{Ca, EtcdAccess, EtcdClient, Leaf, SimGroup, Validity};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

const NET: u8 = 69;
const PATH: &str = "/etcd-spot/v1/boot";

/// A process on `ip:2380` that answers every request with `body` (plain HTTP, or TLS with `cert` and no
/// client-certificate check), counting the answers it sent; stops when dropped.
struct Stray {
    answered: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    /// The serving thread, which owns the listener: joined on drop, so the port is free once `drop` returns.
    thread: Option<thread::JoinHandle<()>>,
}

impl Stray {
    fn start(ip: Ipv4Addr, body: String, cert: Option<&Leaf>) -> Stray {
        let listener = TcpListener::bind((ip, 2380)).expect("bind the stray");
        listener.set_nonblocking(true).expect("nonblocking");
        let config = cert.map(|leaf| {
            let chain = vec![CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).expect("cert")];
            let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).expect("key");
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .expect("server config");
            Arc::new(config)
        });
        let answered = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (Arc::clone(&answered), Arc::clone(&stop));
        let thread = thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if serve(stream, config.clone(), &body) {
                            a.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    Err(_) => thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Stray { answered, stop, thread: Some(thread) }
    }

    fn answered(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }
}

impl Drop for Stray {
    /// Stops the thread and waits for it: a stray on the same address right after must find the port free (the
    /// TLS half of the stray test bound it while the control's listener still lived, and failed AddrInUse).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one request and answers `body`; whether the answer was written.
fn serve(stream: TcpStream, tls: Option<Arc<rustls::ServerConfig>>, body: &str) -> bool {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    match tls {
        None => exchange(stream, &answer),
        Some(config) => match rustls::ServerConnection::new(config) {
            Ok(conn) => exchange(rustls::StreamOwned::new(conn, stream), &answer),
            Err(_) => false,
        },
    }
}

fn exchange(mut stream: impl Read + Write, answer: &str) -> bool {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    stream.write_all(answer.as_bytes()).and_then(|()| stream.flush()).is_ok()
}

/// What a real beacon of `id` answers: its data dir is empty, for the group's listing (each instance's ID, IP and
/// state, sorted, then the target).
fn genuine_answer(g: &SimGroup, id: &str, target: u32) -> String {
    let mut items: Vec<String> = g.ids().iter().map(|i| format!("{i}@{}:Running", g.instance(i).ip)).collect();
    items.sort();
    let listing = format!("{}/{target}", items.join(","));
    serde_json::json!({"instance": id, "group": g.group_id, "data_dir": "empty", "listing": listing}).to_string()
}

#[test]
fn a_beacon_answers_only_probes_with_a_peer_certificate() {
    let _slot = etcd_spot_sim::cluster_slot();
    let mut g = SimGroup::new_tls("tls-beacon", NET, 3);
    let ids: Vec<String> = (21..=23).map(|h| g.launch(h)).collect();
    // Only the first instance boots: its discover waits for the others' confirmations, its beacon up.
    let mut waiting = g.spawn_discover(&ids[0], &["--bootstrap-timeout", "60"]);
    let url = format!("https://{}:2380", g.instance(&ids[0]).ip);
    let path = format!("{PATH}?from={}", ids[1]);
    let tls = g.tls().expect("TLS mode");
    let peer_pem = tls.peer_ca().pem();
    let with_peer_cert = EtcdClient::with_access(&url, Duration::from_secs(3), tls.peer_access());
    g.wait_until("the beacon to answer a probe with a peer certificate", Duration::from_secs(30), |_| {
        with_peer_cert.get_text(&path).is_ok_and(|(s, _)| s == 200)
    })
    .expect("the beacon answers a probe with a peer certificate");
    let (_, body) = with_peer_cert.get_text(&path).expect("answer");
    assert!(body.contains(&ids[0]) && body.contains("\"empty\""), "{body}");

    let no_cert = EtcdAccess::tls(&peer_pem, None).expect("CA");
    let e =
        EtcdClient::with_access(&url, Duration::from_secs(3), &no_cert).get_text(&path).expect_err("no certificate");
    eprintln!("a probe without a certificate: {e}");
    let stray = Ca::new("stray CA").leaf("", &[Ipv4Addr::new(127, 0, NET, 99).into()], Validity::Now);
    let other = EtcdAccess::tls(&peer_pem, Some((&stray.cert_pem, &stray.key_pem))).expect("PEM");
    let e = EtcdClient::with_access(&url, Duration::from_secs(3), &other).get_text(&path).expect_err("another CA");
    eprintln!("a probe with another CA's certificate: {e}");
    let plain = url.replacen("https://", "http://", 1);
    let e = EtcdClient::new(&plain, Duration::from_secs(3)).get_text(&path);
    assert!(!e.as_ref().is_ok_and(|(s, b)| *s == 200 && b.contains("empty")), "plain HTTP must not be answered: {e:?}");
    let _ = waiting.kill();
    let _ = waiting.wait();
}

#[test]
fn a_stray_without_a_peer_certificate_never_counts_as_a_confirmation() {
    let _slot = etcd_spot_sim::cluster_slot();
    // The control, without TLS: strays on the other two addresses, answering as their beacons would over plain
    // HTTP, are counted and the first instance bootstraps.
    let mut plain = SimGroup::new("tls-beacon-control", NET, 3);
    let ids: Vec<String> = (31..=33).map(|h| plain.launch(h)).collect();
    let strays: Vec<Stray> =
        ids[1..].iter().map(|id| Stray::start(plain.instance(id).ip, genuine_answer(&plain, id, 3), None)).collect();
    let run = plain.discover(&ids[0], &["--json", "--bootstrap-timeout", "30"]);
    assert_eq!((run.code, run.decision()), (0, "bootstrap"), "control: {}\n{}", run.stdout, run.stderr);
    assert!(strays.iter().all(|s| s.answered() > 0), "control: the strays were asked");
    drop(strays);
    drop(plain);

    // With peer TLS: one stray over plain HTTP, one over TLS with another CA's certificate (with the right IP
    // SAN). The discover must not bootstrap; at its timeout it refuses and writes nothing.
    let mut g = SimGroup::new_tls("tls-beacon-stray", NET, 3);
    let ids: Vec<String> = (31..=33).map(|h| g.launch(h)).collect();
    let other_ca = Ca::new("stray CA");
    let ip2 = g.instance(&ids[2]).ip;
    let leaf = other_ca.leaf("", &[ip2.into(), Ipv4Addr::LOCALHOST.into()], Validity::Now);
    let strays = [
        Stray::start(g.instance(&ids[1]).ip, genuine_answer(&g, &ids[1], 3), None),
        Stray::start(ip2, genuine_answer(&g, &ids[2], 3), Some(&leaf)),
    ];
    let run = g.discover(&ids[0], &["--json", "--bootstrap-timeout", "20"]);
    eprintln!("discover with strays: exit {} {}", run.code, run.decision());
    assert_ne!(run.decision(), "bootstrap", "{}\n{}", run.stdout, run.stderr);
    assert_ne!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(!g.instance(&ids[0]).output.exists(), "nothing written for etcd");
    assert!(
        std::fs::read_dir(&g.instance(&ids[0]).data_dir).map(|d| d.count()).unwrap_or(0) == 0,
        "the data dir stays empty"
    );
    eprintln!("the strays answered {} and {} time(s)", strays[0].answered(), strays[1].answered());
    assert_eq!(strays[1].answered(), 0, "a probe never completes a handshake with another CA's certificate");
}
