//! A simulated Elastigroup for end-to-end tests, the demo, chaos and bench: one fake Spotinst API, and per
//! instance a loopback address 127.0.<net>.<host>, its own fake IMDS on that address, its own folders, the REAL
//! etcd-spot binaries run as processes with that instance's environment (`runs.rs`), and a REAL etcd started
//! with exactly the environment discover wrote (`cluster.rs`).
//!
//! It talks to etcd only through the kit's [`EtcdClient`](crate::EtcdClient) and must never depend on
//! etcd-spot-core. It must never leave a process behind: every etcd and every spawned binary is killed when the
//! [`SimGroup`] is dropped, also while a test panics. It never binds or contacts anything outside 127.0.0.0/8.

mod cluster;
mod runs;
mod tls;

pub use tls::{ETCD_USER, GroupTls, InstanceTls};

use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::bins::{bin_dir, target_dir};
use crate::process::{Proc, signal, start_time};
use crate::util::lock;
use crate::{EtcdAccess, EtcdProcess, FakeImds, FakeSpotinst, TOKEN};

/// How long [`SimGroup::start_etcd`] and [`SimGroup::boot_all`] wait for `/health`: a member joining as `existing`
/// asks each peer for the member list with a 10 s timeout, and a peer that is itself still starting does not answer.
const HEALTHY_TIMEOUT: Duration = Duration::from_secs(45);
const AZ: &str = "us-east-1a";
/// The instance tag real Elastigroups set; the fake IMDS serves it.
const GROUP_TAG: &str = "spotinst:aws:ec2:group:id";

/// Groups created by this process, for unique working folders.
static GROUPS: AtomicU32 = AtomicU32::new(0);

/// One simulated instance of the group.
#[derive(Debug)]
pub struct SimInstance {
    /// Instance ID, `i-<net:02x><host:02x><seq:04x>`.
    pub id: String,
    /// Private address, 127.0.<net>.<host>.
    pub ip: Ipv4Addr,
    /// This instance's metadata service, bound to `ip`.
    pub imds: FakeImds,
    /// etcd's data dir (`ETCD_SPOT_DATA_DIR`); created empty with mode 0700 at launch.
    pub data_dir: PathBuf,
    /// Where discover writes etcd's settings (`ETCD_SPOT_OUTPUT`).
    pub output: PathBuf,
    /// etcd-spot's own state dir (`ETCD_SPOT_STATE_DIR`).
    pub state_dir: PathBuf,
    /// The etcd this harness started for the instance (`None` before the first start and after a stop or kill).
    pub etcd: Option<EtcdProcess>,
    /// etcd's stdout and stderr.
    pub log: PathBuf,
    /// The instance's own folder, holding all of the above, `etcd.pid` and `runs.log` (every binary run).
    pub dir: PathBuf,
    /// The etcd binary this instance runs (its image's), when not the group's default ([`crate::etcd_binary`]).
    pub etcd_bin: Option<PathBuf>,
    /// Its certificates, in TLS mode ([`SimGroup::new_tls`]); a test may overwrite the files.
    pub tls: Option<InstanceTls>,
}

impl SimInstance {
    /// Where [`SimGroup::start_etcd`] writes etcd's process ID for the stop command.
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("etcd.pid")
    }

    /// The URL the harness talks to this instance's etcd at: the first advertised client URL of the running
    /// etcd, else `http://<ip>:2379` (`https` in TLS mode).
    pub fn client_url(&self) -> String {
        match &self.etcd {
            Some(p) => p.client_url().to_string(),
            None => format!("{}://{}:2379", if self.tls.is_some() { "https" } else { "http" }, self.ip),
        }
    }

    /// The moved-aside copies of this instance's data dir (folders `etcd-spot-stale-…` inside it), sorted.
    pub fn stale_data_dirs(&self) -> Vec<PathBuf> {
        stale_dirs(&self.data_dir)
    }
}

/// A binary started with [`SimGroup::spawn_terminate`], owned by the group.
#[derive(Debug)]
struct Spawned {
    instance: String,
    proc: Proc,
}

/// A process handed to the caller ([`SimGroup::spawn_discover`]), to kill on drop if it still runs: its pid and
/// its start time (`/proc/<pid>/stat` field 22), so a reused pid is never killed.
#[derive(Debug)]
struct Loose {
    pid: u32,
    start_time: Option<String>,
}

/// A simulated Elastigroup. Dropping it kills every process it started and removes its working folder.
#[derive(Debug)]
pub struct SimGroup {
    /// The fake Spotinst API holding the group.
    pub spotinst: FakeSpotinst,
    /// `sig-<name>`.
    pub group_id: String,
    /// Working folder: `<target>/sim/<name>-<pid>-<n>/`, one folder per instance inside.
    pub dir: PathBuf,
    net: u8,
    seq: u32,
    instances: Vec<SimInstance>,
    extra_env: Vec<(String, String)>,
    /// Per instance: a variable set (`Some`) or removed (`None`) after everything else.
    instance_env: Vec<(String, String, Option<String>)>,
    tls: Option<GroupTls>,
    access: EtcdAccess,
    bin_dir: Option<PathBuf>,
    /// Every process of an instance runs with the instance's own group ID ([`crate::netfault::gid`]).
    partitionable: bool,
    spawned: Vec<Spawned>,
    loose: Mutex<Vec<Loose>>,
}

impl SimGroup {
    /// A fake Spotinst group `sig-<name>` with `target` capacity; instance addresses are 127.0.<net>.<host>.
    /// Working dir: `<workspace>/target/sim/<name>-<pid>-<n>/` (removed on drop unless `ETCD_SPOT_KEEP=1`).
    /// Every process it started (etcd, spawned binaries) is killed on drop, even during a panic.
    ///
    /// # Panics
    /// If the working folder cannot be created (the test environment is broken).
    pub fn new(name: &str, net: u8, target: u32) -> SimGroup {
        let n = GROUPS.fetch_add(1, Ordering::Relaxed);
        let dir = target_dir().join("sim").join(format!("{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        if let Err(e) = fs::create_dir_all(&dir) {
            panic!("sim: cannot create {}: {e}", dir.display());
        }
        let spotinst = FakeSpotinst::start();
        let group_id = format!("sig-{name}");
        spotinst.create_group(&group_id, target);
        SimGroup {
            spotinst,
            group_id,
            dir,
            net,
            seq: 0,
            instances: Vec::new(),
            extra_env: Vec::new(),
            instance_env: Vec::new(),
            tls: None,
            access: EtcdAccess::plain(),
            bin_dir: None,
            partitionable: false,
            spawned: Vec::new(),
            loose: Mutex::new(Vec::new()),
        }
    }

    /// Sets the group's capacity target.
    pub fn set_target(&self, target: u32) {
        self.spotinst.set_capacity(&self.group_id, target);
    }

    /// Adds `key=value` to (or replaces it in) the environment of every later binary run, for every instance.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.extra_env.retain(|(k, _)| k != key);
        self.extra_env.push((key.to_string(), value.to_string()));
    }

    /// Sets `key=value` (with `Some`) or removes `key` (with `None`) in the environment of every later binary run
    /// of instance `id` only, after everything else [`SimGroup::env`] gives (a bad setting for one instance).
    pub fn set_instance_env(&mut self, id: &str, key: &str, value: Option<&str>) {
        self.instance_env.retain(|(i, k, _)| !(i == id && k == key));
        self.instance_env.push((id.to_string(), key.to_string(), value.map(str::to_string)));
    }

    /// Drops everything [`SimGroup::set_instance_env`] set or removed for instance `id`.
    pub fn clear_instance_env(&mut self, id: &str) {
        self.instance_env.retain(|(i, _, _)| i != id);
    }

    /// From now on every process started for an instance (etcd and the binaries) runs with that instance's own
    /// group ID ([`crate::netfault::gid`]), so a [`crate::Partitions`] can cut its traffic; the user stays root.
    pub fn set_partitionable(&mut self) {
        self.partitionable = true;
    }

    /// The group ID the processes of instance `id` run as, in a partitionable group.
    pub(crate) fn gid_of(&self, id: &str) -> Option<u32> {
        let ip = self.instances.iter().find(|i| i.id == id)?.ip;
        self.partitionable.then(|| crate::netfault::gid(self.net, ip.octets()[3]))
    }

    /// Runs the binaries from `dir` instead of [`bin_dir`] (e.g. stand-in scripts in a harness test).
    pub fn set_bin_dir(&mut self, dir: &Path) {
        self.bin_dir = Some(dir.to_path_buf());
    }

    /// A new instance (ID `i-<net as 2 hex><host as 2 hex><seq as 4 hex>`, IP 127.0.<net>.<host>), its own
    /// FakeImds bound to that IP (serving the group tag too), its folders, added to the group. Returns its ID.
    ///
    /// # Panics
    /// If an instance of the group still holds that address, or its folders or IMDS cannot be set up.
    pub fn launch(&mut self, host: u8) -> String {
        let ip = Ipv4Addr::new(127, 0, self.net, host);
        if let Some(other) = self.instances.iter().find(|i| i.ip == ip) {
            panic!("sim: {ip} is still used by {}", other.id);
        }
        self.seq += 1;
        let id = format!("i-{:02x}{:02x}{:04x}", self.net, host, self.seq);
        let dir = self.dir.join(&id);
        let data_dir = dir.join("etcd-data");
        let state_dir = dir.join("state");
        for d in [&data_dir, &state_dir, &dir.join("metrics")] {
            if let Err(e) = fs::create_dir_all(d) {
                panic!("sim: cannot create {}: {e}", d.display());
            }
        }
        let _ = fs::set_permissions(&data_dir, fs::Permissions::from_mode(0o700));
        let tls =
            self.tls.as_ref().map(|t| t.instance(&dir.join("tls"), &id, ip).unwrap_or_else(|e| panic!("sim: {e}")));
        let imds = FakeImds::start(ip, &id, ip, AZ);
        imds.set_tag(GROUP_TAG, Some(&self.group_id));
        self.spotinst.add_instance(&self.group_id, &id, ip);
        self.instances.push(SimInstance {
            id: id.clone(),
            ip,
            imds,
            data_dir,
            output: dir.join("30-etcd-spot.conf"),
            state_dir,
            etcd: None,
            log: dir.join("etcd.log"),
            dir,
            etcd_bin: None,
            tls,
        });
        id
    }

    /// Makes instance `id` run the etcd binary `bin` (an image with another etcd version): its etcd starts from
    /// it and its binaries are told its version (`ETCD_SPOT_ETCD_VERSION`).
    ///
    /// # Panics
    /// If there is no such instance in the group.
    pub fn set_etcd_bin(&mut self, id: &str, bin: &Path) {
        self.instance_mut(id).etcd_bin = Some(bin.to_path_buf());
    }

    /// The instance `id`, if it is still in the group.
    pub fn try_instance(&self, id: &str) -> Option<&SimInstance> {
        self.instances.iter().find(|i| i.id == id)
    }

    /// The instance `id`.
    ///
    /// # Panics
    /// If there is no such instance in the group (never launched, or terminated).
    pub fn instance(&self, id: &str) -> &SimInstance {
        self.try_instance(id).unwrap_or_else(|| panic!("sim: no instance {id} in {}", self.group_id))
    }

    /// The instance `id`, mutably.
    ///
    /// # Panics
    /// If there is no such instance in the group (never launched, or terminated).
    pub fn instance_mut(&mut self, id: &str) -> &mut SimInstance {
        let group = &self.group_id;
        match self.instances.iter_mut().find(|i| i.id == id) {
            Some(i) => i,
            None => panic!("sim: no instance {id} in {group}"),
        }
    }

    /// The folder of instance `id`; it stays (with logs and data dirs) after the instance is terminated.
    pub fn instance_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// IDs of the instances still in the group, in launch order.
    pub fn ids(&self) -> Vec<String> {
        self.instances.iter().map(|i| i.id.clone()).collect()
    }

    /// The environment every binary gets for instance `id` (beside `PATH`): `ETCD_SPOT_IMDS_URL`,
    /// `ETCD_SPOT_SPOTINST_URL`, `SPOTINST_TOKEN=sim-token`, `SPOTINST_GROUP_ID`, `ETCD_SPOT_DATA_DIR`,
    /// `ETCD_SPOT_STATE_DIR`, `ETCD_SPOT_OUTPUT`, `ETCD_SPOT_OUTPUT_FORMAT=dropin`, `ETCD_SPOT_TIMEOUT=2`,
    /// `ETCD_SPOT_ETCD_STOP_COMMAND` (SIGTERM to the pid in the instance's `etcd.pid`; idempotent like
    /// `systemctl stop`), `ETCD_SPOT_ETCD_VERSION` (the version of the etcd the group runs, when it can be
    /// read), `RUST_LOG=info`, in TLS mode the instance's certificates and the etcd user
    /// ([`SimGroup::new_tls`]), then whatever [`SimGroup::set_env`] added, then what
    /// [`SimGroup::set_instance_env`] set or removed for this instance.
    ///
    /// # Panics
    /// If there is no such instance in the group.
    pub fn env(&self, id: &str) -> Vec<(String, String)> {
        let i = self.instance(id);
        let path = |p: &Path| p.display().to_string();
        let stop = format!("kill -TERM $(cat '{}') 2>/dev/null; true", i.pid_file().display());
        let mut env: Vec<(String, String)> = [
            ("ETCD_SPOT_IMDS_URL", i.imds.url()),
            ("ETCD_SPOT_SPOTINST_URL", self.spotinst.url()),
            ("SPOTINST_TOKEN", TOKEN.to_string()),
            ("SPOTINST_GROUP_ID", self.group_id.clone()),
            ("ETCD_SPOT_DATA_DIR", path(&i.data_dir)),
            ("ETCD_SPOT_STATE_DIR", path(&i.state_dir)),
            ("ETCD_SPOT_OUTPUT", path(&i.output)),
            ("ETCD_SPOT_OUTPUT_FORMAT", "dropin".to_string()),
            ("ETCD_SPOT_TIMEOUT", "2".to_string()),
            ("ETCD_SPOT_ETCD_STOP_COMMAND", stop),
            ("RUST_LOG", "info".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let version = match &i.etcd_bin {
            Some(bin) => crate::binary_version(bin),
            None => crate::etcd_version(),
        };
        if let Ok(version) = version {
            env.push(("ETCD_SPOT_ETCD_VERSION".into(), version));
        }
        if crate::metrics::checked() {
            env.push(("ETCD_SPOT_METRICS_DIR".into(), path(&i.dir.join("metrics"))));
        }
        env.extend(self.binary_tls_env(id));
        for (k, v) in &self.extra_env {
            env.retain(|(key, _)| key != k);
            env.push((k.clone(), v.clone()));
        }
        for (_, k, v) in self.instance_env.iter().filter(|(i, _, _)| i == id) {
            env.retain(|(key, _)| key != k);
            if let Some(v) = v {
                env.push((k.clone(), v.clone()));
            }
        }
        env
    }

    /// The command for binary `bin` on instance `id`, as its unit would run it: `env_clear()`, `PATH`,
    /// [`SimGroup::env`], `args`, the instance's folder as working directory, stdin from /dev/null. The binary
    /// comes from [`SimGroup::set_bin_dir`]'s folder, else [`bin_dir`].
    pub fn command(&self, bin: &str, id: &str, args: &[&str]) -> Result<Command, String> {
        let dir = match &self.bin_dir {
            Some(d) => d.clone(),
            None => bin_dir()?,
        };
        Ok(self.command_in(&dir, bin, id, args))
    }

    /// [`SimGroup::command`] for the binary `bin` in `dir`.
    pub fn command_in(&self, dir: &Path, bin: &str, id: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(dir.join(bin));
        cmd.env_clear();
        if let Some(p) = std::env::var_os("PATH") {
            cmd.env("PATH", p);
        }
        cmd.envs(self.env(id)).args(args).current_dir(self.instance_dir(id)).stdin(Stdio::null());
        if let Some(gid) = self.gid_of(id) {
            cmd.gid(gid);
        }
        cmd
    }

    /// Polls `f` (every 100 ms) until it is true, or fails after `timeout` with a message naming `what`.
    pub fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&SimGroup) -> bool,
    ) -> Result<(), String> {
        let started = Instant::now();
        loop {
            if f(self) {
                return Ok(());
            }
            if started.elapsed() >= timeout {
                return Err(format!("timed out after {timeout:?} waiting for {what}"));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn try_instance_mut(&mut self, id: &str) -> Result<&mut SimInstance, String> {
        let group = &self.group_id;
        self.instances.iter_mut().find(|i| i.id == id).ok_or_else(|| format!("no instance {id} in {group}"))
    }
}

impl Drop for SimGroup {
    fn drop(&mut self) {
        // Dropping a spawned process kills it.
        self.spawned.clear();
        for l in lock(&self.loose).drain(..) {
            if l.start_time.is_some() && start_time(l.pid) == l.start_time {
                signal(l.pid, "KILL");
            }
        }
        for i in &mut self.instances {
            if let Some(mut p) = i.etcd.take() {
                p.kill();
            }
        }
        self.instances.clear();
        let keep = std::env::var("ETCD_SPOT_KEEP").is_ok_and(|v| v == "1");
        if keep {
            eprintln!("sim: kept {}", self.dir.display());
        } else {
            if thread::panicking() {
                eprintln!("sim: removing {} (set ETCD_SPOT_KEEP=1 to keep it)", self.dir.display());
            }
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// The moved-aside copies of `data_dir`: the folders named `etcd-spot-stale-…` inside it, sorted.
pub fn stale_dirs(data_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(data_dir) else { return Vec::new() };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("etcd-spot-stale-"))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}
