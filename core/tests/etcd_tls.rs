//! The etcd client over TLS and with etcd's auth, against real etcd processes started by this test with mutual
//! TLS on both ports (127.0.66.x): each TLS failure an operator can meet gives its own clear error naming the
//! setting to fix, and an auth token that expired is replaced without the caller noticing.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use etcd_spot_core::clients::etcd::EtcdV3;
use etcd_spot_core::clients::etcd_auth::EtcdAuth;
use etcd_spot_core::clients::http::{Http, HttpConfig, TlsSide};
use etcd_spot_core::clients::tls::TlsMaterial;
use etcd_spot_core::types::Secret;
use etcd_spot_core::{Error, EtcdErrorKind, TlsFailure};
use etcd_spot_sim::{Ca, EtcdProcess, LeafFiles, Validity};

fn policy() -> HttpConfig {
    HttpConfig {
        connect_timeout: Duration::from_secs(1),
        timeout: Duration::from_secs(3),
        retries: 0,
        ..HttpConfig::default()
    }
}

/// A folder for one test's files and etcd data, removed at the end.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("etcd-spot-etcd-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("make the test folder");
        Dir(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 66, last)
}

/// The CAs of a test: etcd's client port and its peer port have different ones.
struct Cas {
    client: Ca,
    peer: Ca,
    client_file: PathBuf,
    peer_file: PathBuf,
}

fn cas(d: &Path) -> Cas {
    let (client, peer) = (Ca::new("client ca"), Ca::new("peer ca"));
    let client_file = client.write(d, "client-ca.crt");
    let peer_file = peer.write(d, "peer-ca.crt");
    Cas { client, peer, client_file, peer_file }
}

/// Starts a one-member etcd at `at` with mutual TLS on both ports, serving `server` on its client port.
fn etcd_tls(d: &Path, at: Ipv4Addr, cas: &Cas, server: &LeafFiles) -> EtcdProcess {
    let peer = cas.peer.leaf("peer", &[IpAddr::V4(at)], Validity::Now).write(d, &format!("peer-{at}"));
    let (client, peer_url) = (format!("https://{at}:2379"), format!("https://{at}:2380"));
    let s = |p: &Path| p.display().to_string();
    let env: Vec<(String, String)> = [
        ("ETCD_NAME", "a".to_owned()),
        ("ETCD_DATA_DIR", s(&d.join(format!("data-{at}")))),
        ("ETCD_LISTEN_CLIENT_URLS", client.clone()),
        ("ETCD_ADVERTISE_CLIENT_URLS", client.clone()),
        ("ETCD_LISTEN_PEER_URLS", peer_url.clone()),
        ("ETCD_INITIAL_ADVERTISE_PEER_URLS", peer_url.clone()),
        ("ETCD_INITIAL_CLUSTER", format!("a={peer_url}")),
        ("ETCD_CERT_FILE", s(&server.cert)),
        ("ETCD_KEY_FILE", s(&server.key)),
        ("ETCD_TRUSTED_CA_FILE", s(&cas.client_file)),
        ("ETCD_CLIENT_CERT_AUTH", "true".to_owned()),
        ("ETCD_PEER_CERT_FILE", s(&peer.cert)),
        ("ETCD_PEER_KEY_FILE", s(&peer.key)),
        ("ETCD_PEER_TRUSTED_CA_FILE", s(&cas.peer_file)),
        ("ETCD_PEER_CLIENT_CERT_AUTH", "true".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    EtcdProcess::start(&env, &client, &d.join(format!("etcd-{at}.log"))).expect("start etcd")
}

/// Material trusting `ca_file` and presenting `leaf`, if any.
fn material(ca_file: &Path, leaf: Option<&LeafFiles>) -> TlsMaterial {
    TlsMaterial::read(ca_file, leaf.map(|l| (l.cert.as_path(), l.key.as_path()))).expect("read the material")
}

fn client(m: &TlsMaterial) -> EtcdV3 {
    EtcdV3::new(Http::with_tls(policy(), Some((m, TlsSide::Client))))
}

/// Waits until `etcd` answers its health check through `c` (or panics with the last error after 20 s).
fn wait_healthy(c: &EtcdV3, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let last = match c.health(url) {
            Ok(true) => return,
            other => format!("{other:?}"),
        };
        assert!(Instant::now() < deadline, "etcd at {url} not healthy: {last}");
        thread::sleep(Duration::from_millis(100));
    }
}

fn tls_failure(e: &Error) -> &TlsFailure {
    match e {
        Error::Tls { failure, .. } => failure,
        other => panic!("wanted a TLS error, got {other:?}: {other}"),
    }
}

/// Each TLS failure against a real etcd with client-cert-auth on both ports, and the message naming what to fix.
#[test]
fn every_tls_failure_against_real_etcd_names_what_to_fix() {
    let d = Dir::new("failures");
    let cas = cas(&d.0);
    let sans = |at: Ipv4Addr| [IpAddr::V4(at), IpAddr::V4(Ipv4Addr::LOCALHOST)];
    let good = cas.client.leaf("etcd", &sans(ip(1)), Validity::Now).write(&d.0, "etcd-good");
    let expired = cas.client.leaf("etcd", &sans(ip(2)), Validity::Expired).write(&d.0, "etcd-expired");
    let wrong_san = cas.client.leaf("etcd", &sans(ip(9)), Validity::Now).write(&d.0, "etcd-wrong-san");
    let _etcds = [
        etcd_tls(&d.0, ip(1), &cas, &good),
        etcd_tls(&d.0, ip(2), &cas, &expired),
        etcd_tls(&d.0, ip(3), &cas, &wrong_san),
    ];
    let me = cas.client.leaf("etcd-spot", &[IpAddr::V4(ip(10))], Validity::Now).write(&d.0, "me");
    let ok = client(&material(&cas.client_file, Some(&me)));
    let url = |n: u8| format!("https://{}:2379", ip(n));
    wait_healthy(&ok, &url(1));

    // The good case: the member list over mutual TLS, and the peer API with the peer CA and certificate.
    let list = ok.member_list(&url(1)).unwrap();
    assert_eq!(list.members[0].client_urls, vec![url(1)]);
    // etcd's peer port checks that a client certificate with IP SANs names the address the connection comes
    // from: here 127.0.0.1, which loopback connections to 127.0.66.1 come from.
    let peer_me = cas.peer.leaf("etcd-spot", &[IpAddr::V4(ip(10))], Validity::Now).write(&d.0, "peer-me-elsewhere");
    let elsewhere = EtcdV3::new(Http::new(policy()))
        .with_peer(Http::with_tls(policy(), Some((&material(&cas.peer_file, Some(&peer_me)), TlsSide::Peer))));
    let e = elsewhere.peer_members(&format!("https://{}:2380", ip(1))).unwrap_err();
    assert!(matches!(tls_failure(&e), TlsFailure::Closed { .. }), "{e}");
    assert!(e.to_string().contains("name this instance's address in an IP SAN"), "{e}");
    let peer_me = cas.peer.leaf("etcd-spot", &sans(ip(10)), Validity::Now).write(&d.0, "peer-me");
    let peer_material = material(&cas.peer_file, Some(&peer_me));
    let with_peer =
        EtcdV3::new(Http::with_tls(policy(), Some((&material(&cas.client_file, Some(&me)), TlsSide::Client))))
            .with_peer(Http::with_tls(policy(), Some((&peer_material, TlsSide::Peer))));
    let peer_url = format!("https://{}:2380", ip(1));
    assert_eq!(with_peer.peer_members(&peer_url).unwrap().members.len(), 1);
    assert!(with_peer.cluster_version(&peer_url).is_ok());
    // The client CA on the peer port: etcd's peer certificate is not signed by it.
    let e = ok.peer_members(&peer_url).unwrap_err();
    assert_eq!(tls_failure(&e), &TlsFailure::UnknownIssuer, "{e}");

    let check = |c: &EtcdV3, n: u8, want: TlsFailure, words: &[&str]| {
        let e = c.member_list(&url(n)).unwrap_err();
        assert_eq!(tls_failure(&e), &want, "{e}");
        let text = e.to_string();
        for w in words {
            assert!(text.contains(w), "{text:?} should say {w:?}");
        }
    };
    // Wrong CA: etcd's certificate is not signed by the CA we were given.
    let other = Ca::new("another ca");
    let other_file = other.write(&d.0, "other-ca.crt");
    check(
        &client(&material(&other_file, Some(&me))),
        1,
        TlsFailure::UnknownIssuer,
        &["verify --cacert (ETCD_SPOT_CACERT) is the CA that signed etcd's client certificate"],
    );
    check(&ok, 2, TlsFailure::Expired, &["expired", "ETCD_CERT_FILE"]);
    check(&ok, 3, TlsFailure::WrongAddress, &["does not name 127.0.66.3", "IP subject alternative name"]);
    // Our certificate refused: expired, from another CA, or none at all.
    let old_me = cas.client.leaf("etcd-spot", &[], Validity::Expired).write(&d.0, "me-expired");
    let foreign_me = other.leaf("etcd-spot", &[], Validity::Now).write(&d.0, "me-foreign");
    for (name, c) in [
        ("expired", client(&material(&cas.client_file, Some(&old_me)))),
        ("foreign", client(&material(&cas.client_file, Some(&foreign_me)))),
        ("none", client(&material(&cas.client_file, None))),
    ] {
        // Under TLS 1.3 etcd refuses after the handshake: its alert, or the reset that overtakes it.
        let e = c.member_list(&url(1)).unwrap_err();
        let refused = match tls_failure(&e) {
            TlsFailure::OursRefused { .. } => "refused our certificate",
            TlsFailure::Closed { presented_cert: true, .. } => "if it refused our certificate, --cert/--key",
            TlsFailure::Closed { presented_cert: false, .. } if name == "none" => {
                "requires a client certificate, give --cert"
            }
            other => panic!("{name}: {other:?}: {e}"),
        };
        assert!(e.to_string().contains(refused), "{name}: {e}");
    }
    // Plain HTTP to the TLS ports: etcd closes the connection without an answer on both (no "HTTP request to
    // an HTTPS server" 400), named as such by an agent that speaks to etcd.
    let plain = EtcdV3::new(Http::new(policy()).speaking_to(TlsSide::Client))
        .with_peer(Http::new(policy()).speaking_to(TlsSide::Peer));
    for (e, flag) in [
        (plain.member_list(&format!("http://{}:2379", ip(1))).unwrap_err(), "set --cacert (ETCD_SPOT_CACERT)"),
        (
            plain.peer_members(&format!("http://{}:2380", ip(1))).unwrap_err(),
            "set --peer-cacert (ETCD_SPOT_PEER_CACERT)",
        ),
    ] {
        assert!(matches!(tls_failure(&e), TlsFailure::PlainClosed { .. }), "{e}");
        assert!(e.to_string().contains("on a port that wants TLS") && e.to_string().contains(flag), "{e}");
    }
    // An agent that does not speak to etcd (IMDS) keeps it a transport failure.
    let e = EtcdV3::new(Http::new(policy())).member_list(&format!("http://{}:2379", ip(1))).unwrap_err();
    assert!(matches!(e, Error::Transport { .. }), "{e}");
}

/// Starts a one-member plain etcd at `at` with auth tokens that live `ttl` seconds.
fn etcd_plain(d: &Path, at: Ipv4Addr, ttl: u32) -> EtcdProcess {
    let (client, peer) = (format!("http://{at}:2379"), format!("http://{at}:2380"));
    let env: Vec<(String, String)> = [
        ("ETCD_NAME", "a".to_owned()),
        ("ETCD_DATA_DIR", d.join(format!("data-{at}")).display().to_string()),
        ("ETCD_LISTEN_CLIENT_URLS", client.clone()),
        ("ETCD_ADVERTISE_CLIENT_URLS", client.clone()),
        ("ETCD_LISTEN_PEER_URLS", peer.clone()),
        ("ETCD_INITIAL_ADVERTISE_PEER_URLS", peer.clone()),
        ("ETCD_INITIAL_CLUSTER", format!("a={peer}")),
        ("ETCD_AUTH_TOKEN_TTL", ttl.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    EtcdProcess::start(&env, &client, &d.join(format!("etcd-{at}.log"))).expect("start etcd")
}

/// Sends one raw gateway call (the test's own set-up, as an operator's etcdctl would).
fn raw(url: &str, path: &str, body: &str) -> String {
    let http = Http::new(policy());
    let req = etcd_spot_core::clients::http::Request {
        method: etcd_spot_core::clients::http::Method::Post,
        url: format!("{url}{path}"),
        headers: vec![],
        body: Some(body.to_owned()),
        retry: false,
    };
    let resp = http.send(req).expect("etcd answers");
    assert!(resp.is_success(), "{path}: {} {}", resp.status, resp.body);
    resp.body
}

/// With etcd's auth on: the root user's calls work, and keep working after the token expired (one
/// re-authentication); a user without the root role, a wrong password and no user at all each give an error
/// that says what to set. TLS spoken to this plain port is named as such.
#[test]
fn etcd_auth_tokens_are_renewed_and_refusals_say_what_to_set() {
    let d = Dir::new("auth");
    let at = ip(5);
    let _etcd = etcd_plain(&d.0, at, 2);
    let url = format!("http://{at}:2379");
    let plain = EtcdV3::new(Http::new(policy()));
    wait_healthy(&plain, &url);
    raw(&url, "/v3/auth/user/add", r#"{"name":"root","password":"root-pw-1"}"#);
    raw(&url, "/v3/auth/user/grant", r#"{"user":"root","role":"root"}"#);
    raw(&url, "/v3/auth/user/add", r#"{"name":"bob","password":"bob-pw-1"}"#);
    raw(&url, "/v3/auth/enable", "{}");

    let root = plain.clone().with_auth(Some(EtcdAuth::new("root", Secret::new("root-pw-1"))));
    let id = root.member_list(&url).unwrap().members[0].id;
    assert!(root.status(&url).is_ok());
    // etcd's simple tokens live ETCD_AUTH_TOKEN_TTL seconds: past it, the held token is refused (401, invalid
    // auth token) and the client authenticates again once. A promote of a voter is refused for what it is, not
    // for the token.
    let token_body = raw(&url, "/v3/auth/authenticate", r#"{"name":"root","password":"root-pw-1"}"#);
    let token: serde_json::Value = serde_json::from_str(&token_body).unwrap();
    thread::sleep(Duration::from_secs(4));
    // The premise: a token of that age is refused now.
    let http = Http::new(policy());
    let stale = http
        .send(etcd_spot_core::clients::http::Request {
            method: etcd_spot_core::clients::http::Method::Post,
            url: format!("{url}/v3/cluster/member/promote"),
            headers: vec![("Authorization", token["token"].as_str().unwrap().to_owned())],
            body: Some(format!(r#"{{"ID":"{}"}}"#, id.0)),
            retry: false,
        })
        .unwrap();
    assert_eq!(stale.status, 401, "{}", stale.body);
    assert!(stale.body.contains("invalid auth token"), "{}", stale.body);
    let e = root.member_promote(&url, id).unwrap_err();
    assert_eq!(e.etcd_kind(), Some(EtcdErrorKind::NotALearner), "{e}");

    let bob = plain.clone().with_auth(Some(EtcdAuth::new("bob", Secret::new("bob-pw-1"))));
    let e = bob.member_add(&url, &[format!("http://{}:2380", ip(6))], true).unwrap_err();
    assert_eq!(e.etcd_kind(), Some(EtcdErrorKind::PermissionDenied), "{e}");
    assert!(e.to_string().contains("need a user with etcd's root role"), "{e}");
    let wrong = plain.clone().with_auth(Some(EtcdAuth::new("root", Secret::new("not-the-password"))));
    let e = wrong.member_list(&url).unwrap_err();
    assert_eq!(e.etcd_kind(), Some(EtcdErrorKind::AuthFailed), "{e}");
    assert!(e.to_string().contains("--etcd-password-file") && !e.to_string().contains("not-the-password"), "{e}");
    let e = plain.member_add(&url, &[format!("http://{}:2380", ip(6))], true).unwrap_err();
    assert_eq!(e.etcd_kind(), Some(EtcdErrorKind::NoUser), "{e}");
    assert!(e.to_string().contains("set --etcd-user"), "{e}");

    // TLS to this plain port.
    let cas = cas(&d.0);
    // etcd's client port closes the connection on a TLS hello (it multiplexes gRPC and HTTP there): a
    // transport failure that says what it may mean.
    let e = client(&material(&cas.client_file, None)).member_list(&format!("https://{at}:2379")).unwrap_err();
    assert!(matches!(tls_failure(&e), TlsFailure::Closed { presented_cert: false, .. }), "{e}");
    assert!(e.to_string().contains("if the port does not speak TLS (plain http), remove --cacert"), "{e}");
}
