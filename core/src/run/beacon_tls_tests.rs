//! Tests of the boot beacon under peer TLS, over real TLS on loopback: only a probe that presents a certificate
//! from the peer CA is answered, and a prober counts nothing it could not verify as a confirmation.

use std::net::{Ipv4Addr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use etcd_spot_sim::{Ca, Validity};

use super::*;
use crate::clients::http::{HttpConfig, TlsSide};
use crate::clients::tls::TlsMaterial;

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dir(name: &str) -> Dir {
    let d = std::env::temp_dir().join(format!("etcd-spot-beacon-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Dir(d)
}

/// The material of a leaf of `ca` for `ip` (none: no certificate, only the CA), trusting `trust`.
fn material(d: &Dir, stem: &str, trust: &Ca, leaf: Option<(&Ca, Ipv4Addr)>) -> TlsMaterial {
    let ca_file = trust.write(&d.0, &format!("{stem}-ca.crt"));
    let files = leaf.map(|(ca, ip)| ca.leaf(stem, &[ip.into()], Validity::Now).write(&d.0, stem));
    TlsMaterial::read(&ca_file, files.as_ref().map(|f| (f.cert.as_path(), f.key.as_path()))).unwrap()
}

fn prober(m: &TlsMaterial) -> Http {
    let cfg = HttpConfig {
        timeout: Duration::from_secs(3),
        connect_timeout: Duration::from_secs(1),
        retries: 0,
        ..HttpConfig::default()
    };
    Http::with_tls(cfg, Some((m, TlsSide::Peer)))
}

fn id(s: &str) -> InstanceId {
    InstanceId::parse(s).unwrap()
}

fn probe_as(http: &Http, scheme: Scheme, ip: Ipv4Addr, port: u16) -> Probe {
    probe(http, scheme, ip, port, &id("i-0a"), "sig-1", "L", &id("i-0b"))
}

/// A probe without a peer certificate, or with one from another CA, gets no answer (the handshake fails), the
/// beacon does not count it as a prober, and the prober's side never counts the failure as a confirmation. A
/// probe with a certificate from the peer CA is answered.
#[test]
fn a_tls_beacon_answers_only_probes_with_a_peer_certificate() {
    let d = dir("answers");
    let ip = Ipv4Addr::new(127, 0, 65, 1);
    let (peer_ca, other_ca) = (Ca::new("peer ca"), Ca::new("another ca"));
    let server = material(&d, "server", &peer_ca, Some((&peer_ca, ip)));
    let beacon = Beacon::start(ip, 0, &id("i-0a"), "sig-1", "L", Some(server.server_config().unwrap())).unwrap();
    let port = beacon.addr().port();

    let no_cert = prober(&material(&d, "nocert", &peer_ca, None));
    assert_eq!(probe_as(&no_cert, Scheme::Https, ip, port), Probe::Other);
    let foreign = prober(&material(&d, "foreign", &peer_ca, Some((&other_ca, Ipv4Addr::new(127, 0, 65, 2)))));
    assert_eq!(probe_as(&foreign, Scheme::Https, ip, port), Probe::Other);
    // Plain HTTP to the TLS beacon is no confirmation either.
    assert_ne!(
        probe_as(&Http::new(HttpConfig::default()), Scheme::Http, ip, port),
        Probe::Confirmed { decided: false }
    );
    assert!(beacon.probed_by().is_empty(), "refused probes never count: {:?}", beacon.probed_by());

    let peer = prober(&material(&d, "peer", &peer_ca, Some((&peer_ca, Ipv4Addr::new(127, 0, 65, 2)))));
    assert_eq!(probe_as(&peer, Scheme::Https, ip, port), Probe::Confirmed { decided: false });
    assert_eq!(beacon.probed_by(), BTreeSet::from(["i-0b".to_string()]));
}

/// The prober verifies the beacon: one whose certificate is from another CA, or does not name the probed
/// address, or that speaks plain HTTP, is never a confirmation.
#[test]
fn a_prober_counts_only_a_beacon_it_could_verify() {
    let d = dir("verify");
    let ip = Ipv4Addr::new(127, 0, 65, 3);
    let (peer_ca, other_ca) = (Ca::new("peer ca"), Ca::new("another ca"));
    let peer = prober(&material(&d, "peer", &peer_ca, Some((&peer_ca, Ipv4Addr::new(127, 0, 65, 4)))));
    for (name, ca, san) in [("foreign", &other_ca, ip), ("wrong-san", &peer_ca, Ipv4Addr::new(127, 0, 65, 9))] {
        let server = material(&d, name, &peer_ca, Some((ca, san)));
        let beacon = Beacon::start(ip, 0, &id("i-0a"), "sig-1", "L", Some(server.server_config().unwrap())).unwrap();
        assert_eq!(probe_as(&peer, Scheme::Https, ip, beacon.addr().port()), Probe::Other, "{name}");
    }
    // A plain beacon reads the TLS hello as a request that never ends and closes after its 1 s: a failed
    // handshake or a timeout, whichever of the two deadlines comes first; never a confirmation.
    let plain = Beacon::start(ip, 0, &id("i-0a"), "sig-1", "L", None).unwrap();
    let seen = probe_as(&peer, Scheme::Https, ip, plain.addr().port());
    assert!(matches!(seen, Probe::Other | Probe::Silent), "{seen:?}");
}

/// A client that connects and sends nothing, or sends garbage instead of a TLS handshake, does not stop the
/// beacon from answering the next probe.
#[test]
fn a_silent_or_broken_client_does_not_block_the_tls_beacon() {
    let d = dir("robust");
    let ip = Ipv4Addr::new(127, 0, 65, 5);
    let peer_ca = Ca::new("peer ca");
    let server = material(&d, "server", &peer_ca, Some((&peer_ca, ip)));
    let beacon = Beacon::start(ip, 0, &id("i-0a"), "sig-1", "L", Some(server.server_config().unwrap())).unwrap();
    let port = beacon.addr().port();
    let _silent = TcpStream::connect((ip, port)).unwrap();
    let mut garbage = TcpStream::connect((ip, port)).unwrap();
    garbage.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let peer = prober(&material(&d, "peer", &peer_ca, Some((&peer_ca, Ipv4Addr::new(127, 0, 65, 6)))));
    assert_eq!(probe_as(&peer, Scheme::Https, ip, port), Probe::Confirmed { decided: false });
}
