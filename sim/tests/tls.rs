//! The harness's TLS mode on its own (net 127.0.67.x): a 3-member etcd with mutual TLS on both ports started
//! from hand-written settings forms, auth goes on, and the harness reads it over mTLS with a token; etcd
//! refuses a request without a client certificate, one with a certificate of another CA, plain HTTP, and,
//! once auth is on, a write without a token and any call from a client certificate with a common name; a token
//! etcd no longer knows is replaced by a fresh one.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use etcd_spot_sim::{Ca, EtcdAccess, EtcdClient, SimGroup, Validity, cluster_slot, etcd_version};
use serde_json::json;

const NET: u8 = 67;
const T: Duration = Duration::from_secs(5);

/// A plain env file for one member of a new cluster of `ids`, with https URLs on both ports (what discover
/// writes with TLS configured); etcd's certificates come from the harness beside it.
fn settings(g: &SimGroup, id: &str, ids: &[String]) -> String {
    let peer = |id: &str| format!("https://{}:2380", g.instance(id).ip);
    let initial: Vec<String> = ids.iter().map(|m| format!("{m}={}", peer(m))).collect();
    let i = g.instance(id);
    let env = [
        ("ETCD_NAME", id.to_string()),
        ("ETCD_DATA_DIR", i.data_dir.display().to_string()),
        ("ETCD_LISTEN_CLIENT_URLS", format!("https://{}:2379", i.ip)),
        ("ETCD_ADVERTISE_CLIENT_URLS", format!("https://{}:2379", i.ip)),
        ("ETCD_LISTEN_PEER_URLS", peer(id)),
        ("ETCD_INITIAL_ADVERTISE_PEER_URLS", peer(id)),
        ("ETCD_INITIAL_CLUSTER", initial.join(",")),
        ("ETCD_INITIAL_CLUSTER_STATE", "new".to_string()),
        ("ETCD_INITIAL_CLUSTER_TOKEN", format!("tok-{}", g.group_id)),
    ];
    env.iter().map(|(k, v)| format!("{k}=\"{v}\"\n")).collect()
}

#[test]
fn a_tls_cluster_forms_turns_auth_on_and_refuses_what_it_must() {
    let _slot = cluster_slot();
    let mut g = SimGroup::new_tls("tls-harness", NET, 3);
    let ids: Vec<String> = (1..=3).map(|h| g.launch(h)).collect();
    for id in &ids {
        fs::write(&g.instance(id).output, settings(&g, id, &ids)).expect("write settings");
    }
    for id in &ids {
        g.start_etcd_nowait(id).expect("start etcd");
    }
    for id in &ids {
        g.wait_etcd_healthy(id, Duration::from_secs(60)).expect("healthy over mTLS");
    }
    assert!(g.auth_on(), "a healthy cluster in TLS mode has auth on");

    // The harness reads the member list over mTLS with a token.
    let (cluster, members) = g.members_via(&ids[1]).expect("member list over mTLS after auth is on");
    assert!(!cluster.is_empty());
    let mut names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ids.iter().map(String::as_str).collect::<Vec<_>>());
    for m in &members {
        assert!(m.peer_urls.iter().all(|u| u.starts_with("https://")), "{m:?}");
        assert!(m.client_urls.iter().all(|u| u.starts_with("https://")), "{m:?}");
    }
    g.put(&ids[0], "tls/k", "v").expect("a write with a token");
    assert_eq!(g.get(&ids[2], "tls/k").expect("a read with a token").as_deref(), Some("v"));

    // What every binary run gets, and the files exist (the key and the password only for the owner).
    let env = g.env(&ids[0]);
    let var = |k: &str| env.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap_or_default();
    for k in [
        "ETCD_SPOT_CACERT",
        "ETCD_SPOT_CERT",
        "ETCD_SPOT_KEY",
        "ETCD_SPOT_PEER_CACERT",
        "ETCD_SPOT_PEER_CERT",
        "ETCD_SPOT_PEER_KEY",
        "ETCD_SPOT_ETCD_PASSWORD_FILE",
    ] {
        assert!(fs::metadata(var(k)).is_ok(), "{k}={:?} names no file", var(k));
    }
    assert_eq!(var("ETCD_SPOT_ETCD_USER"), "root");
    for k in ["ETCD_SPOT_KEY", "ETCD_SPOT_PEER_KEY", "ETCD_SPOT_ETCD_PASSWORD_FILE"] {
        let mode = fs::metadata(var(k)).expect("exists").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{k}");
    }
    assert_ne!(
        fs::read(var("ETCD_SPOT_CACERT")).expect("client CA"),
        fs::read(var("ETCD_SPOT_PEER_CACERT")).expect("peer CA"),
        "the client and peer CAs differ"
    );

    let url = g.instance(&ids[0]).client_url();
    assert!(url.starts_with("https://"), "{url}");
    let tls = g.tls().expect("TLS mode");

    // No client certificate: etcd ends the handshake.
    let no_cert = EtcdAccess::tls(&tls.client_ca().pem(), None).expect("CA");
    let e = EtcdClient::with_access(&url, T, &no_cert).members().expect_err("no client certificate");
    eprintln!("without a client certificate: {e}");
    // A client certificate of another CA: refused too.
    let other = Ca::new("another CA");
    let stray = other.leaf("stray", &[], Validity::Now);
    let stray_access =
        EtcdAccess::tls(&tls.client_ca().pem(), Some((&stray.cert_pem, &stray.key_pem))).expect("valid PEM");
    let e = EtcdClient::with_access(&url, T, &stray_access).members().expect_err("a certificate of another CA");
    eprintln!("with another CA's certificate: {e}");
    // Plain HTTP against the TLS port: no etcd answer.
    let plain = url.replacen("https://", "http://", 1);
    let e = EtcdClient::new(&plain, T).members().expect_err("plain HTTP against a TLS port");
    eprintln!("plain HTTP against the TLS port: {e}");

    // A valid certificate without a token, once auth is on: etcd refuses the write and the read.
    let no_token = EtcdClient::with_access(&url, T, &g.access().without_user());
    let (status, answer) = no_token.post("/v3/kv/put", &json!({"key": "dGxzL2s=", "value": "eA=="})).expect("answer");
    assert_ne!(status, 200, "a write without a token must be refused: {answer}");
    eprintln!("a write without a token: {status} {answer}");
    let (status, answer) = no_token.post("/v3/kv/range", &json!({"key": "dGxzL2s="})).expect("answer");
    assert_ne!(status, 200, "a read without a token must be refused: {answer}");
    assert_eq!(g.get(&ids[0], "tls/k").expect("read").as_deref(), Some("v"), "the refused write changed nothing");
    // The member list: 3.4.23 answers it without a token, 3.5.30 refuses ("user name is empty").
    let (status, answer) = no_token.post("/v3/cluster/member/list", &json!({})).expect("answer");
    let version = etcd_version().expect("etcd version");
    eprintln!("etcd {version}: member list without a token: {status} {}", answer.trim());
    assert_eq!(status == 200, version.starts_with("3.4."), "{version}: {status} {answer}");
    eprintln!("/health without a token: {:?}", no_token.health());

    // A client certificate with a common name, even with a valid token: etcd's gateway refuses every /v3 call
    // once client-cert-auth and auth are both on (3.4.23 and 3.5.30), so the harness's and the instances' client
    // certificates have none.
    let password = fs::read_to_string(tls.password_file()).expect("password");
    let named = tls.client_ca().leaf("etcd-spot", &[], Validity::Now);
    let named = EtcdAccess::tls(&tls.client_ca().pem(), Some((&named.cert_pem, &named.key_pem)))
        .expect("PEM")
        .with_user("root", password.trim());
    named.set_auth_on();
    let c = EtcdClient::with_access(&url, T, &named);
    let e = c.authenticate().expect_err("a certificate with a common name");
    assert!(e.contains("400") && e.contains("CommonName"), "{e}");

    // A token etcd does not know (expired, or held by a member that restarted) is replaced once.
    let access = g.access();
    access.store_token(Some("not-a-token.1".to_string()));
    g.put(&ids[0], "tls/k2", "w").expect("a fresh token replaces an unknown one");
    assert_ne!(access.token().as_deref(), Some("not-a-token.1"));
}
