//! Secrets never leave the process in a report: a server's error page that echoes the request (as some proxies
//! do with `Authorization`) carries the Spotinst token, the etcd password or the etcd auth token into the error
//! message, and the report, JSON and human, shows `<redacted>` in its place.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::time::Duration;

use etcd_spot_core::clients::etcd::EtcdV3;
use etcd_spot_core::clients::etcd_auth::EtcdAuth;
use etcd_spot_core::clients::http::{Http, HttpConfig};
use etcd_spot_core::clients::spotinst::Spotinst;
use etcd_spot_core::report::Report;
use etcd_spot_core::types::Secret;
use etcd_spot_sim::{FakeSpotinst, Fault, TOKEN};

fn fast() -> HttpConfig {
    HttpConfig {
        connect_timeout: Duration::from_secs(1),
        timeout: Duration::from_secs(2),
        retries: 0,
        ..HttpConfig::default()
    }
}

/// The error reaches the report's text through `Report::conclude`, as every run's does; neither rendering may
/// show `secret`, and the error text did hold it (the echo is real, the scrubbing is what hides it).
fn check_report_hides(error: etcd_spot_core::Error, secret: &str) {
    assert!(error.to_string().contains(secret), "the echo reaches the error message: {error}");
    let outcome = Report::conclude("etcd-spot-prune", |_| Err(error));
    let (report, _) = *outcome.expect_err("the run failed");
    for text in [report.json(), report.human()] {
        assert!(!text.contains(secret) && text.contains("<redacted>"), "{text}");
    }
}

/// Regression: a Spotinst error page echoing `Authorization: Bearer <token>` put the token into the `--json`
/// report.
#[test]
fn a_spotinst_error_page_echoing_the_token_leaves_it_out_of_the_report() {
    let fake = FakeSpotinst::start();
    fake.create_group("sig-1", 3);
    fake.inject("/aws/ec2/group/sig-1", Fault::EchoRequest(502), usize::MAX);
    let spot = Spotinst::new(Http::new(fast()), &fake.url(), Secret::new(TOKEN), None);
    check_report_hides(spot.group_capacity("sig-1").unwrap_err(), TOKEN);
}

/// The etcd password travels in the authenticate call's body: a proxy echoing the body shows it.
#[test]
fn an_error_page_echoing_the_etcd_password_leaves_it_out_of_the_report() {
    let fake = FakeSpotinst::start();
    fake.inject("/v3/auth/authenticate", Fault::EchoRequest(502), usize::MAX);
    let password = "etcd-pw-7c1e9";
    let etcd = EtcdV3::new(Http::new(fast())).with_auth(Some(EtcdAuth::new("root", Secret::new(password))));
    check_report_hides(etcd.member_list(&fake.url()).unwrap_err(), password);
}

/// The etcd auth token travels in `Authorization`: a proxy in front of etcd that gives out a token, then
/// echoes the request in a 502, shows it.
#[test]
fn an_error_page_echoing_the_etcd_auth_token_leaves_it_out_of_the_report() {
    let token = "etcd-token-5d2a8.41";
    let listener = TcpListener::bind((Ipv4Addr::new(127, 0, 64, 20), 0)).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        for answer in 0..2 {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = vec![0u8; 8192];
            let n = s.read(&mut buf).unwrap();
            let request = String::from_utf8_lossy(&buf[..n]).into_owned();
            let auth = request.lines().find(|l| l.to_ascii_lowercase().starts_with("authorization")).unwrap_or("");
            let (status, body) = if answer == 0 {
                ("200 OK", format!(r#"{{"header":{{"cluster_id":"1"}},"token":"{token}"}}"#))
            } else {
                ("502 Bad Gateway", format!("proxy error: {auth}\n{request}"))
            };
            let reply =
                format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            s.write_all(reply.as_bytes()).unwrap();
        }
    });
    let etcd = EtcdV3::new(Http::new(fast())).with_auth(Some(EtcdAuth::new("root", Secret::new("pw-of-root"))));
    let error = etcd.member_list(&url).unwrap_err();
    server.join().unwrap();
    check_report_hides(error, token);
}
