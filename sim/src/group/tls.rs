//! The group's TLS mode ([`SimGroup::new_tls`]): mutual TLS on etcd's client and peer ports and etcd auth on,
//! as production runs it. A client CA and a different peer CA made at test time; per instance a client-side
//! leaf (client CA; IP SANs: its 127.0.x.y and 127.0.0.1) that its etcd serves on the client port and its
//! binaries present as `--cert`, and a peer leaf (peer CA; its 127.0.x.y and 127.0.0.1, where etcd's peer
//! connections come from on loopback) for etcd's peer port and the binaries' `--peer-cert`; the harness's own client certificates; user `root`'s password in a 0600 file.
//!
//! Auth is turned on once the cluster first forms (user `root` with role `root`, then `auth/enable`, through the
//! v3 gateway), after which every harness client sends a token. It must never write anything outside the
//! group's folder, never print the password, and never change what plain mode does.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;

use super::SimGroup;
use crate::util::lock;
use crate::{Ca, EtcdAccess, EtcdClient, LeafFiles, Validity};

/// The etcd user the harness and the binaries use once auth is on.
pub const ETCD_USER: &str = "root";
/// How often [`SimGroup::ensure_auth`] tries while the cluster has not formed.
const RETRY: Duration = Duration::from_secs(1);

/// The group's certificate authorities and files in TLS mode.
pub struct GroupTls {
    client_ca: Ca,
    peer_ca: Ca,
    client_ca_file: PathBuf,
    peer_ca_file: PathBuf,
    password_file: PathBuf,
    /// The harness's peer-port access (peer CA, a peer certificate of its own).
    peer_access: EtcdAccess,
    last_try: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for GroupTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupTls").field("client_ca_file", &self.client_ca_file).finish_non_exhaustive()
    }
}

/// One instance's certificate files in TLS mode (in `<instance>/tls/`).
#[derive(Debug, Clone)]
pub struct InstanceTls {
    /// Client-side leaf (client CA): etcd's client-port certificate and the binaries' `--cert`/`--key`.
    pub client: LeafFiles,
    /// Peer leaf (peer CA): etcd's peer-port certificate and the binaries' `--peer-cert`/`--peer-key`.
    pub peer: LeafFiles,
}

impl GroupTls {
    /// Makes the CAs, the harness's certificates and the password file in `dir` (created), and the harness's
    /// client access (auth still off).
    pub(super) fn create(dir: &Path) -> Result<(GroupTls, EtcdAccess), String> {
        fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let client_ca = Ca::new("etcd-spot sim client CA");
        let peer_ca = Ca::new("etcd-spot sim peer CA");
        let client_ca_file = client_ca.write(dir, "client-ca.crt");
        let peer_ca_file = peer_ca.write(dir, "peer-ca.crt");
        let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let password = format!("sim-{nanos:x}-{}", std::process::id());
        let password_file = dir.join("root.password");
        fs::write(&password_file, format!("{password}\n"))
            .and_then(|()| fs::set_permissions(&password_file, fs::Permissions::from_mode(0o600)))
            .map_err(|e| format!("writing {}: {e}", password_file.display()))?;
        let me = client_ca.leaf("", &[], Validity::Now);
        let access =
            EtcdAccess::tls(&client_ca.pem(), Some((&me.cert_pem, &me.key_pem)))?.with_user(ETCD_USER, &password);
        let peer_me = peer_ca.leaf("", &[], Validity::Now);
        let peer_access = EtcdAccess::tls(&peer_ca.pem(), Some((&peer_me.cert_pem, &peer_me.key_pem)))?;
        let last_try = Mutex::new(None);
        Ok((
            GroupTls { client_ca, peer_ca, client_ca_file, peer_ca_file, password_file, peer_access, last_try },
            access,
        ))
    }

    /// The CA of etcd's client port (and of the binaries' client certificates).
    pub fn client_ca(&self) -> &Ca {
        &self.client_ca
    }

    /// The CA of etcd's peer port (and of the beacon's certificates).
    pub fn peer_ca(&self) -> &Ca {
        &self.peer_ca
    }

    /// The client CA's certificate file.
    pub fn client_ca_file(&self) -> &Path {
        &self.client_ca_file
    }

    /// The peer CA's certificate file.
    pub fn peer_ca_file(&self) -> &Path {
        &self.peer_ca_file
    }

    /// The file holding user `root`'s password (mode 0600).
    pub fn password_file(&self) -> &Path {
        &self.password_file
    }

    /// The harness's peer-port access: the peer CA and a peer certificate of its own.
    pub fn peer_access(&self) -> &EtcdAccess {
        &self.peer_access
    }

    /// Writes the instance's leaves (IP SANs: `ip` and 127.0.0.1 on both) into `dir` (created).
    pub(super) fn instance(&self, dir: &Path, id: &str, ip: std::net::Ipv4Addr) -> Result<InstanceTls, String> {
        fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let local = std::net::Ipv4Addr::LOCALHOST.into();
        // No common name on the client side: etcd's gateway refuses a client certificate with one under
        // client-cert-auth (and the leaf is also what etcd-spot presents there).
        let client = self.client_ca.leaf("", &[ip.into(), local], Validity::Now).write(dir, "client");
        // 127.0.0.1 too: on loopback etcd's peer connections leave from 127.0.0.1, and etcd checks a peer's
        // client certificate's IP SANs against the address a connection comes from.
        let peer = self.peer_ca.leaf(id, &[ip.into(), local], Validity::Now).write(dir, "peer");
        Ok(InstanceTls { client, peer })
    }
}

impl SimGroup {
    /// [`SimGroup::new`] in TLS mode: mutual TLS on etcd's client and peer ports (client-cert-auth on both),
    /// each instance's certificates on disk, every binary run given them (`ETCD_SPOT_CACERT`, `…_CERT`, `…_KEY`,
    /// `ETCD_SPOT_PEER_CACERT`, `…_PEER_CERT`, `…_PEER_KEY`) and user `root` (`ETCD_SPOT_ETCD_USER`,
    /// `ETCD_SPOT_ETCD_PASSWORD_FILE`), and auth turned on once the cluster first forms
    /// ([`SimGroup::ensure_auth`]).
    ///
    /// # Panics
    /// If the working folder or the certificates cannot be written.
    pub fn new_tls(name: &str, net: u8, target: u32) -> SimGroup {
        let mut g = SimGroup::new(name, net, target);
        let (tls, access) = GroupTls::create(&g.dir.join("tls")).unwrap_or_else(|e| panic!("sim: {e}"));
        g.tls = Some(tls);
        g.access = access;
        g
    }

    /// [`SimGroup::new_tls`] when `tls`, else [`SimGroup::new`].
    pub fn new_mode(name: &str, net: u8, target: u32, tls: bool) -> SimGroup {
        if tls { SimGroup::new_tls(name, net, target) } else { SimGroup::new(name, net, target) }
    }

    /// The group's CAs and files, in TLS mode.
    pub fn tls(&self) -> Option<&GroupTls> {
        self.tls.as_ref()
    }

    /// How the harness reaches etcd's client port (plain, or https with its client certificate and, once auth
    /// is on, a token), shared by every client the group hands out.
    pub fn access(&self) -> EtcdAccess {
        self.access.clone()
    }

    /// Whether auth is on in the group's etcd (TLS mode, after the cluster first formed).
    pub fn auth_on(&self) -> bool {
        self.access.auth_on()
    }

    /// In TLS mode, turns etcd auth on once: the first time an etcd of the group answers a linearizable member
    /// list (the cluster has formed), adds user `root` with the password file's password, grants it role `root`
    /// and enables auth; from then on every harness client sends a token. Ok(true) once auth is on; Ok(false)
    /// in plain mode, or while no cluster answers (tried at most once a second); an error when a formed
    /// cluster refused.
    pub fn ensure_auth(&self) -> Result<bool, String> {
        let Some(tls) = &self.tls else { return Ok(false) };
        if self.access.auth_on() {
            return Ok(true);
        }
        {
            let mut last = lock(&tls.last_try);
            if last.is_some_and(|t| t.elapsed() < RETRY) {
                return Ok(false);
            }
            *last = Some(Instant::now());
        }
        self.try_enable_auth()
    }

    /// [`SimGroup::ensure_auth`] right now, for a group whose etcd just answered healthy (so the cluster has
    /// formed): tries for up to 10 s, then fails.
    pub(super) fn ensure_auth_now(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.try_enable_auth()? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err("turning auth on: no etcd of the group answered a linearizable member list".into());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn try_enable_auth(&self) -> Result<bool, String> {
        if self.tls.is_none() {
            return Ok(false);
        }
        if self.access.auth_on() {
            return Ok(true);
        }
        let formed = self.instances.iter().filter(|i| i.etcd.is_some()).find_map(|i| {
            let c = self.etcd(&i.id).ok()?;
            c.members().ok().map(|_| c)
        });
        let Some(c) = formed else { return Ok(false) };
        enable_auth(&c, &self.access)?;
        self.access.set_auth_on();
        c.authenticate().map(|_| true)
    }

    /// The etcd environment of TLS mode for instance `id` (empty in plain mode): its certificates on both ports,
    /// the CAs, and client-cert-auth on both.
    pub(super) fn etcd_tls_env(&self, id: &str) -> Vec<(String, String)> {
        let (Some(tls), Some(files)) = (&self.tls, self.try_instance(id).and_then(|i| i.tls.as_ref())) else {
            return Vec::new();
        };
        let path = |p: &Path| p.display().to_string();
        [
            ("ETCD_CERT_FILE", path(&files.client.cert)),
            ("ETCD_KEY_FILE", path(&files.client.key)),
            ("ETCD_TRUSTED_CA_FILE", path(&tls.client_ca_file)),
            ("ETCD_CLIENT_CERT_AUTH", "true".to_string()),
            ("ETCD_PEER_CERT_FILE", path(&files.peer.cert)),
            ("ETCD_PEER_KEY_FILE", path(&files.peer.key)),
            ("ETCD_PEER_TRUSTED_CA_FILE", path(&tls.peer_ca_file)),
            ("ETCD_PEER_CLIENT_CERT_AUTH", "true".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The binaries' environment of TLS mode for instance `id` (empty in plain mode).
    pub(super) fn binary_tls_env(&self, id: &str) -> Vec<(String, String)> {
        let (Some(tls), Some(files)) = (&self.tls, self.try_instance(id).and_then(|i| i.tls.as_ref())) else {
            return Vec::new();
        };
        let path = |p: &Path| p.display().to_string();
        [
            ("ETCD_SPOT_CACERT", path(&tls.client_ca_file)),
            ("ETCD_SPOT_CERT", path(&files.client.cert)),
            ("ETCD_SPOT_KEY", path(&files.client.key)),
            ("ETCD_SPOT_PEER_CACERT", path(&tls.peer_ca_file)),
            ("ETCD_SPOT_PEER_CERT", path(&files.peer.cert)),
            ("ETCD_SPOT_PEER_KEY", path(&files.peer.key)),
            ("ETCD_SPOT_ETCD_USER", ETCD_USER.to_string()),
            ("ETCD_SPOT_ETCD_PASSWORD_FILE", path(&tls.password_file)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// Role and user `root`, the grant, `auth/enable`, through `c` (auth still off). What already exists (a retry
/// after a half-done attempt) is fine.
fn enable_auth(c: &EtcdClient, access: &EtcdAccess) -> Result<(), String> {
    let (user, password) = access.credentials().ok_or("TLS mode without an etcd user")?;
    let steps = [
        ("/v3/auth/role/add", json!({"name": "root"}), "already exists"),
        ("/v3/auth/user/add", json!({"name": user, "password": password}), "already exists"),
        ("/v3/auth/user/grant", json!({"user": user, "role": "root"}), "\u{0}"),
        ("/v3/auth/enable", json!({}), "\u{0}"),
    ];
    for (path, body, tolerated) in steps {
        let (status, answer) = c.post(path, &body)?;
        if status != 200 && !answer.contains(tolerated) {
            return Err(format!("turning auth on: {}{path} answered {status}: {}", c.url(), answer.trim()));
        }
    }
    Ok(())
}
