//! A simulated Elastigroup for end-to-end tests, the demo, chaos and bench: one fake Spotinst API, and per
//! instance a loopback address 127.0.<net>.<host>, its own fake IMDS on that address, its own folders, the REAL
//! etcd-spot binaries run as processes with that instance's environment, and a REAL etcd started with exactly
//! the environment discover wrote.
//!
//! It talks to etcd only through its own minimal client (the v3 JSON gateway) and must never depend on
//! etcd-spot-core. It must never leave a process behind: every etcd and every spawned binary is killed when the
//! [`SimGroup`] is dropped, also while a test panics. It never binds or contacts anything outside 127.0.0.0/8.

use std::fs;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fault::lock;
use crate::http::post_json;
use crate::util::{b64_decode, b64_encode, rfc3339_in};
use crate::{EtcdProcess, FakeImds, FakeSpotinst, TOKEN, parse_env_file};

/// The three binaries, by file name.
const DISCOVER: &str = "etcd-spot-discover";
const TERMINATE: &str = "etcd-spot-terminate";
const PRUNE: &str = "etcd-spot-prune";
const BINARIES: [&str; 3] = [DISCOVER, TERMINATE, PRUNE];
/// A binary run still going after this long is killed (its [`Run`] then says so).
const RUN_LIMIT: Duration = Duration::from_secs(600);
/// How long [`SimGroup::start_etcd`] and [`SimGroup::boot_all`] wait for `/health`: a member joining as `existing`
/// asks each peer for the member list with a 10 s timeout, and a peer that is itself still starting does not answer.
const HEALTHY_TIMEOUT: Duration = Duration::from_secs(45);
/// Client timeout of one call to etcd.
const ETCD_TIMEOUT: Duration = Duration::from_secs(5);
const AZ: &str = "us-east-1a";
/// The instance tag real Elastigroups set; the fake IMDS serves it.
const GROUP_TAG: &str = "spotinst:aws:ec2:group:id";

/// Groups created by this process, for unique working folders.
static GROUPS: AtomicU32 = AtomicU32::new(0);
/// Processes spawned by [`SimGroup::spawn_terminate`] in this process, for unique output file names.
static SPAWNS: AtomicU32 = AtomicU32::new(0);

/// The workspace root (the parent of this crate's folder).
fn workspace_root() -> PathBuf {
    let sim = Path::new(env!("CARGO_MANIFEST_DIR"));
    sim.parent().unwrap_or(sim).to_path_buf()
}

/// `$CARGO_TARGET_DIR`, else `<workspace>/target`.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() { dir } else { workspace_root().join(dir) }
        }
        _ => workspace_root().join("target"),
    }
}

/// Where the three binaries are: `$ETCD_SPOT_BIN_DIR` (used as is), else `<workspace>/target/debug` (or under
/// `$CARGO_TARGET_DIR`). In the second case the binaries are built with `cargo build --bins` — run through `$CARGO`
/// or `cargo` — once per process, so tests never run stale binaries; if that build fails while all three
/// binaries exist, a warning is printed and the existing ones are used.
pub fn bin_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("ETCD_SPOT_BIN_DIR") {
        let dir = PathBuf::from(dir);
        return match BINARIES.iter().find(|b| !dir.join(b).is_file()) {
            None => Ok(dir),
            Some(missing) => Err(format!("ETCD_SPOT_BIN_DIR={} has no {missing}", dir.display())),
        };
    }
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT.get_or_init(build_bins).clone()
}

/// `cargo build --bins` for the three binaries; see [`bin_dir`].
fn build_bins() -> Result<PathBuf, String> {
    let dir = target_dir().join("debug");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.args(["build", "--bins"]);
    for bin in BINARIES {
        cmd.args(["-p", bin]);
    }
    let failure = match cmd.current_dir(workspace_root()).stdin(Stdio::null()).output() {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "cargo build --bins failed ({}):\n{}",
            out.status,
            tail(&String::from_utf8_lossy(&out.stderr), 40)
        )),
        Err(e) => Some(format!("running {} build: {e}", cargo.to_string_lossy())),
    };
    match (BINARIES.iter().find(|b| !dir.join(b).is_file()), failure) {
        (None, None) => Ok(dir),
        (None, Some(failure)) => {
            eprintln!("sim: using the existing binaries in {}: {failure}", dir.display());
            Ok(dir)
        }
        (Some(_), Some(failure)) => Err(failure),
        (Some(missing), None) => Err(format!("cargo build --bins did not produce {}", dir.join(missing).display())),
    }
}

/// One finished run of a binary.
#[derive(Debug, Clone)]
pub struct Run {
    /// Exit code; `128 + signal` when a signal ended the process (shell convention), `-1` when it could not be
    /// started or waited for.
    pub code: i32,
    /// Everything it wrote on stdout.
    pub stdout: String,
    /// Everything it wrote on stderr (its log).
    pub stderr: String,
    /// Wall time from just before the spawn to the exit.
    pub elapsed: Duration,
}

impl Run {
    fn failed(message: String) -> Run {
        Run { code: -1, stdout: String::new(), stderr: message, elapsed: Duration::ZERO }
    }
}

/// One etcd member as the member list reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimMember {
    /// Member ID as etcd's decimal string.
    pub id: String,
    /// Member name (the instance ID under etcd-spot); empty for a member that was added but never started.
    pub name: String,
    /// Peer URLs.
    pub peer_urls: Vec<String>,
    /// Client URLs; empty for an unstarted member.
    pub client_urls: Vec<String>,
    /// Whether the member is a learner.
    pub is_learner: bool,
}

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
}

impl SimInstance {
    /// Where [`SimGroup::start_etcd`] writes etcd's process ID for the stop command.
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("etcd.pid")
    }

    /// The URL the harness talks to this instance's etcd at: the first advertised client URL of the running
    /// etcd, else `http://<ip>:2379`.
    pub fn client_url(&self) -> String {
        match &self.etcd {
            Some(p) => p.client_url().to_string(),
            None => format!("http://{}:2379", self.ip),
        }
    }
}

/// A binary started with [`SimGroup::spawn_terminate`]; output goes to files.
#[derive(Debug)]
struct Spawned {
    instance: String,
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
    started: Instant,
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
    bin_dir: Option<PathBuf>,
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
            bin_dir: None,
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
        for d in [&data_dir, &state_dir] {
            if let Err(e) = fs::create_dir_all(d) {
                panic!("sim: cannot create {}: {e}", d.display());
            }
        }
        let _ = fs::set_permissions(&data_dir, fs::Permissions::from_mode(0o700));
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
        });
        id
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
    /// `systemctl stop`), `RUST_LOG=info`, then whatever [`SimGroup::set_env`] added.
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
        for (k, v) in &self.extra_env {
            env.retain(|(key, _)| key != k);
            env.push((k.clone(), v.clone()));
        }
        env
    }

    /// The command for binary `bin` on instance `id`: `env_clear()`, `PATH`, [`SimGroup::env`], `args`,
    /// stdin from /dev/null.
    fn command(&self, bin: &str, id: &str, args: &[&str]) -> Result<Command, String> {
        let dir = match &self.bin_dir {
            Some(d) => d.clone(),
            None => bin_dir()?,
        };
        let mut cmd = Command::new(dir.join(bin));
        cmd.env_clear();
        if let Some(p) = std::env::var_os("PATH") {
            cmd.env("PATH", p);
        }
        cmd.envs(self.env(id)).args(args).current_dir(self.instance_dir(id)).stdin(Stdio::null());
        Ok(cmd)
    }

    /// Runs `bin` for `id` to its end (killed after 10 minutes), appending the run to the instance's
    /// `runs.log`.
    fn run(&self, bin: &str, id: &str, args: &[&str]) -> Run {
        let started = Instant::now();
        let run = match self.command(bin, id, args) {
            Err(e) => Run::failed(e),
            Ok(mut cmd) => match cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn() {
                Err(e) => Run::failed(format!("starting {bin}: {e}")),
                Ok(child) => finish(child, started),
            },
        };
        self.record_run(bin, id, args, &run);
        run
    }

    fn record_run(&self, bin: &str, id: &str, args: &[&str], run: &Run) {
        let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(self.instance_dir(id).join("runs.log"))
        else {
            return;
        };
        let _ = write!(
            f,
            "=== {bin} {args:?}: exit {} after {:?}\n--- stdout\n{}\n--- stderr\n{}\n",
            run.code, run.elapsed, run.stdout, run.stderr
        );
    }

    /// Runs etcd-spot-discover for `id` with `args` and waits for it.
    pub fn discover(&self, id: &str, args: &[&str]) -> Run {
        self.run(DISCOVER, id, args)
    }

    /// Starts etcd-spot-discover for `id` with `args`, stdout and stderr piped (read them, e.g. with
    /// `wait_with_output`, or the pipes may fill). Killed on drop of the group if still running. For concurrent
    /// boots.
    ///
    /// # Panics
    /// If the binary cannot be found or started.
    pub fn spawn_discover(&self, id: &str, args: &[&str]) -> Child {
        let child = self
            .command(DISCOVER, id, args)
            .and_then(|mut cmd| {
                cmd.stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .map_err(|e| format!("starting {DISCOVER}: {e}"))
            })
            .unwrap_or_else(|e| panic!("sim: {e}"));
        let pid = child.id();
        lock(&self.loose).push(Loose { pid, start_time: start_time(pid) });
        child
    }

    /// Runs etcd-spot-terminate for `id` with `args` and waits for it.
    pub fn terminate(&self, id: &str, args: &[&str]) -> Run {
        self.run(TERMINATE, id, args)
    }

    /// Starts etcd-spot-terminate for `id` with `args` (e.g. `--watch`) and returns its pid. The group owns the
    /// process: its stdout and stderr go to files in the instance folder, [`SimGroup::kill_spawned`] or
    /// [`SimGroup::wait_spawned`] collect it, [`SimGroup::terminate_instance`] and drop kill it.
    ///
    /// # Panics
    /// If the binary cannot be found or started.
    pub fn spawn_terminate(&mut self, id: &str, args: &[&str]) -> u32 {
        let started = Instant::now();
        let n = SPAWNS.fetch_add(1, Ordering::Relaxed);
        let stdout = self.instance_dir(id).join(format!("{TERMINATE}-{n}.out"));
        let stderr = stdout.with_extension("err");
        let spawn = || -> Result<Child, String> {
            let out = fs::File::create(&stdout).map_err(|e| format!("creating {}: {e}", stdout.display()))?;
            let err = fs::File::create(&stderr).map_err(|e| format!("creating {}: {e}", stderr.display()))?;
            let mut cmd = self.command(TERMINATE, id, args)?;
            cmd.stdout(out).stderr(err).spawn().map_err(|e| format!("starting {TERMINATE}: {e}"))
        };
        let child = spawn().unwrap_or_else(|e| panic!("sim: {e}"));
        let pid = child.id();
        self.spawned.push(Spawned { instance: id.to_string(), child, stdout, stderr, started });
        pid
    }

    /// Stops a process started with [`SimGroup::spawn_terminate`] (SIGTERM, SIGKILL after 5 s) and returns its
    /// run; `None` if the group owns no such process.
    pub fn kill_spawned(&mut self, pid: u32) -> Option<Run> {
        let index = self.spawned.iter().position(|s| s.child.id() == pid)?;
        let mut s = self.spawned.remove(index);
        if matches!(s.child.try_wait(), Ok(None)) {
            signal(pid, "TERM");
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(s.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
            let _ = s.child.kill();
        }
        let status = s.child.wait();
        Some(collect(&s, status))
    }

    /// Waits up to `timeout` for a process started with [`SimGroup::spawn_terminate`] to exit by itself and
    /// returns its run; `None` if it is still running (the group keeps it) or the group owns no such process.
    pub fn wait_spawned(&mut self, pid: u32, timeout: Duration) -> Option<Run> {
        let index = self.spawned.iter().position(|s| s.child.id() == pid)?;
        let deadline = Instant::now() + timeout;
        loop {
            match self.spawned[index].child.try_wait() {
                Ok(Some(status)) => {
                    let s = self.spawned.remove(index);
                    return Some(collect(&s, Ok(status)));
                }
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                Ok(None) => return None,
                Err(e) => {
                    let s = self.spawned.remove(index);
                    return Some(collect(&s, Err(e)));
                }
            }
        }
    }

    /// Runs etcd-spot-prune for `id` with `args` and waits for it.
    pub fn prune(&self, id: &str, args: &[&str]) -> Run {
        self.run(PRUNE, id, args)
    }

    /// Starts etcd for `id` with exactly the environment discover wrote (`parse_env_file` of its output; only
    /// when that lacks `ETCD_DATA_DIR`, the instance's data dir is added, as the etcd unit would) and waits until
    /// healthy (timeout 20 s); writes `etcd.pid` in the instance folder for the stop command. A running etcd of
    /// the instance is stopped first. On a health timeout the process is kept and an error returned.
    pub fn start_etcd(&mut self, id: &str) -> Result<(), String> {
        self.start_etcd_nowait(id)?;
        self.wait_etcd_healthy(id, HEALTHY_TIMEOUT)
    }

    /// [`SimGroup::start_etcd`] without waiting for health (a bootstrap member is not healthy until a quorum
    /// of its peers runs).
    pub fn start_etcd_nowait(&mut self, id: &str) -> Result<(), String> {
        let i = self.try_instance_mut(id)?;
        if let Some(mut old) = i.etcd.take() {
            old.stop();
        }
        let text = fs::read_to_string(&i.output).map_err(|e| format!("reading {}: {e}", i.output.display()))?;
        let mut env = parse_env_file(&text).map_err(|e| format!("parsing {}: {e}", i.output.display()))?;
        if !env.iter().any(|(k, _)| k == "ETCD_DATA_DIR") {
            env.push(("ETCD_DATA_DIR".to_string(), i.data_dir.display().to_string()));
        }
        let first = |key: &str| {
            env.iter()
                .find(|(k, _)| k == key)
                .and_then(|(_, v)| v.split(',').map(str::trim).find(|u| !u.is_empty()))
                .map(str::to_string)
        };
        let client_url = first("ETCD_ADVERTISE_CLIENT_URLS").unwrap_or_else(|| format!("http://{}:2379", i.ip));
        let p = EtcdProcess::start(&env, &client_url, &i.log)?;
        let pid = p.pid().map(|p| p.to_string()).unwrap_or_default();
        i.etcd = Some(p);
        fs::write(i.pid_file(), format!("{pid}\n")).map_err(|e| format!("writing {}: {e}", i.pid_file().display()))
    }

    /// Waits up to `timeout` for the etcd of `id` to answer `/health` with true.
    pub fn wait_etcd_healthy(&self, id: &str, timeout: Duration) -> Result<(), String> {
        match self.try_instance(id).and_then(|i| i.etcd.as_ref()) {
            Some(p) => p.wait_healthy(timeout).map_err(|e| format!("{id}: {e}")),
            None => Err(format!("{id}: no etcd started")),
        }
    }

    /// Whether the etcd of `id` is a live process (exists and is not a zombie), without reaping it; usable
    /// inside [`SimGroup::wait_until`].
    pub fn etcd_alive(&self, id: &str) -> bool {
        self.try_instance(id)
            .and_then(|i| i.etcd.as_ref())
            .and_then(EtcdProcess::pid)
            .is_some_and(|p| start_time(p).is_some())
    }

    /// Whether the etcd of `id` still runs (reaps it and removes its pid file once it exited, e.g. after the
    /// stop command).
    pub fn etcd_running(&mut self, id: &str) -> bool {
        let Some(i) = self.instances.iter_mut().find(|i| i.id == id) else { return false };
        let running = i.etcd.as_mut().is_some_and(EtcdProcess::is_running);
        if !running {
            let _ = fs::remove_file(i.pid_file());
        }
        running
    }

    /// Stops the etcd of `id` gracefully (SIGTERM, SIGKILL after 10 s); a no-op when none runs.
    pub fn stop_etcd(&mut self, id: &str) {
        if let Some(i) = self.instances.iter_mut().find(|i| i.id == id) {
            if let Some(mut p) = i.etcd.take() {
                p.stop();
            }
            let _ = fs::remove_file(i.pid_file());
        }
    }

    /// Kills the etcd of `id` (SIGKILL); a no-op when none runs.
    pub fn kill_etcd(&mut self, id: &str) {
        if let Some(i) = self.instances.iter_mut().find(|i| i.id == id) {
            if let Some(mut p) = i.etcd.take() {
                p.kill();
            }
            let _ = fs::remove_file(i.pid_file());
        }
    }

    /// The instance disappears: its etcd killed (-9), its spawned binaries killed, removed from the fake group,
    /// its IMDS stopped. Its folder stays. A no-op for an unknown instance.
    pub fn terminate_instance(&mut self, id: &str) {
        self.kill_etcd(id);
        let mine: Vec<u32> = self.spawned.iter().filter(|s| s.instance == id).map(|s| s.child.id()).collect();
        for pid in mine {
            if let Some(index) = self.spawned.iter().position(|s| s.child.id() == pid) {
                let mut s = self.spawned.remove(index);
                let _ = s.child.kill();
                let _ = s.child.wait();
            }
        }
        self.spotinst.remove_instance(id);
        // Dropping the instance stops its IMDS.
        self.instances.retain(|i| i.id != id);
    }

    /// Spot notice: IMDS `spot/instance-action` → `{"action":"terminate","time":"<now+2min RFC 3339>"}`.
    ///
    /// # Panics
    /// If there is no such instance in the group.
    pub fn notice(&self, id: &str) {
        let body = json!({"action": "terminate", "time": rfc3339_in(120)}).to_string();
        self.instance(id).imds.set_instance_action(Some(&body));
    }

    /// Member list via the first instance (in launch order) with a started etcd that answers
    /// (`POST /v3/cluster/member/list`), with the answering cluster ID.
    pub fn members(&self) -> Result<(String, Vec<SimMember>), String> {
        let mut errors = Vec::new();
        for i in self.instances.iter().filter(|i| i.etcd.is_some()) {
            match self.members_via(&i.id) {
                Ok(answer) => return Ok(answer),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            errors.push("no instance has a started etcd".to_string());
        }
        Err(format!("no member list: {}", errors.join("; ")))
    }

    /// Member list via the etcd of `id`, with its cluster ID.
    pub fn members_via(&self, id: &str) -> Result<(String, Vec<SimMember>), String> {
        let v = self.etcd_call(id, "/v3/cluster/member/list", &json!({"linearizable": true}))?;
        let cluster_id = text(&v["header"]["cluster_id"]);
        let list = match &v["members"] {
            Value::Array(a) => a.as_slice(),
            _ => &[],
        };
        let urls = |m: &Value| match m {
            Value::Array(a) => a.iter().map(text).collect(),
            _ => Vec::new(),
        };
        let members = list
            .iter()
            .map(|m| SimMember {
                id: text(&m["ID"]),
                name: text(&m["name"]),
                peer_urls: urls(&m["peerURLs"]),
                client_urls: urls(&m["clientURLs"]),
                is_learner: m["isLearner"].as_bool().unwrap_or(false),
            })
            .collect();
        Ok((cluster_id, members))
    }

    /// The instance ID of the leader, via `maintenance/status` of the started etcds (`None` when no answer
    /// names a leader).
    pub fn leader(&self) -> Option<String> {
        let mut own = Vec::new();
        let mut leader = None;
        for i in self.instances.iter().filter(|i| i.etcd.is_some()) {
            if let Ok(v) = self.etcd_call(&i.id, "/v3/maintenance/status", &json!({})) {
                own.push((text(&v["header"]["member_id"]), i.id.clone()));
                let l = text(&v["leader"]);
                if leader.is_none() && !l.is_empty() && l != "0" {
                    leader = Some(l);
                }
            }
        }
        let leader = leader?;
        if let Some((_, id)) = own.iter().find(|(m, _)| *m == leader) {
            return Some(id.clone());
        }
        let (_, members) = self.members().ok()?;
        members.into_iter().find(|m| m.id == leader && !m.name.is_empty()).map(|m| m.name)
    }

    /// Writes `key` = `value` through the etcd of `id` (`kv/put`).
    pub fn put(&self, id: &str, key: &str, value: &str) -> Result<(), String> {
        let body = json!({"key": b64_encode(key.as_bytes()), "value": b64_encode(value.as_bytes())});
        self.etcd_call(id, "/v3/kv/put", &body).map(|_| ())
    }

    /// Reads `key` through the etcd of `id` (`kv/range`, linearizable); `None` when it does not exist.
    pub fn get(&self, id: &str, key: &str) -> Result<Option<String>, String> {
        let v = self.etcd_call(id, "/v3/kv/range", &json!({"key": b64_encode(key.as_bytes())}))?;
        let Some(kv) = v["kvs"].as_array().and_then(|a| a.first()) else { return Ok(None) };
        let value = b64_decode(kv["value"].as_str().unwrap_or("")).map_err(|e| format!("{id}: value of {key}: {e}"))?;
        Ok(Some(String::from_utf8_lossy(&value).into_owned()))
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

    /// Boots `ids` the way systemd would: discover (concurrently for all, no extra arguments), and etcd for each
    /// as soon as its discover exited 0; then waits for every started etcd to be healthy (45 s each). Errors
    /// name each instance whose discover failed (with the tail of its log) or whose etcd did not come up.
    pub fn boot_all(&mut self, ids: &[String]) -> Result<(), String> {
        let (tx, rx) = mpsc::channel();
        for id in ids {
            let started = Instant::now();
            let child = match self.command(DISCOVER, id, &[]).and_then(|mut cmd| {
                cmd.stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .map_err(|e| format!("starting {DISCOVER}: {e}"))
            }) {
                Ok(child) => child,
                Err(e) => {
                    let _ = tx.send((id.clone(), Run::failed(e)));
                    continue;
                }
            };
            let pid = child.id();
            lock(&self.loose).push(Loose { pid, start_time: start_time(pid) });
            let (tx, id) = (tx.clone(), id.clone());
            thread::spawn(move || {
                let run = finish(child, started);
                let _ = tx.send((id, run));
            });
        }
        drop(tx);
        let mut errors = Vec::new();
        let mut started = Vec::new();
        for (id, run) in rx {
            self.record_run(DISCOVER, &id, &[], &run);
            if run.code != 0 {
                errors.push(format!("discover on {id} exited {}:\n{}", run.code, tail(&run.stderr, 15)));
                continue;
            }
            match self.start_etcd_nowait(&id) {
                Ok(()) => started.push(id),
                Err(e) => errors.push(format!("etcd on {id}: {e}")),
            }
        }
        for id in started {
            if let Err(e) = self.wait_etcd_healthy(&id, HEALTHY_TIMEOUT) {
                errors.push(e);
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(errors.join("\n")) }
    }

    fn try_instance_mut(&mut self, id: &str) -> Result<&mut SimInstance, String> {
        let group = &self.group_id;
        self.instances.iter_mut().find(|i| i.id == id).ok_or_else(|| format!("no instance {id} in {group}"))
    }

    /// One JSON gateway call to the etcd of `id`; an answer other than 200 is an error carrying the body.
    fn etcd_call(&self, id: &str, path: &str, body: &Value) -> Result<Value, String> {
        let url = self.try_instance(id).ok_or_else(|| format!("no instance {id} in {}", self.group_id))?.client_url();
        let (status, answer) =
            post_json(&url, path, &body.to_string(), ETCD_TIMEOUT).map_err(|e| format!("{id}: {e}"))?;
        if status != 200 {
            return Err(format!("{id}: {path} answered {status}: {}", answer.trim()));
        }
        serde_json::from_str(&answer).map_err(|e| format!("{id}: {path} answered bad JSON ({e}): {answer:?}"))
    }
}

impl Drop for SimGroup {
    fn drop(&mut self) {
        for mut s in self.spawned.drain(..) {
            let _ = s.child.kill();
            let _ = s.child.wait();
        }
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

/// Waits for `child` (its pipes read to the end), killing it once [`RUN_LIMIT`] has passed since `started`.
fn finish(child: Child, started: Instant) -> Run {
    let pid = child.id();
    let (done, watchdog) = mpsc::channel::<()>();
    let guard = thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = watchdog.recv_timeout(RUN_LIMIT.saturating_sub(started.elapsed()))
        {
            signal(pid, "KILL");
        }
    });
    let out = child.wait_with_output();
    let elapsed = started.elapsed();
    let _ = done.send(());
    let _ = guard.join();
    match out {
        Ok(out) => Run {
            code: exit_code(out.status),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed,
        },
        Err(e) => Run { code: -1, stdout: String::new(), stderr: format!("waiting for pid {pid}: {e}"), elapsed },
    }
}

/// The run of a spawned process that has been waited for.
fn collect(s: &Spawned, status: std::io::Result<ExitStatus>) -> Run {
    let elapsed = s.started.elapsed();
    let code = match status {
        Ok(status) => exit_code(status),
        Err(_) => -1,
    };
    Run {
        code,
        stdout: fs::read_to_string(&s.stdout).unwrap_or_default(),
        stderr: fs::read_to_string(&s.stderr).unwrap_or_default(),
        elapsed,
    }
}

fn exit_code(status: ExitStatus) -> i32 {
    status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(-1)
}

/// Sends `SIG<name>` to `pid` through the `kill` command.
fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The start time of a live (not zombie) process, field 22 of `/proc/<pid>/stat`.
fn start_time(pid: u32) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the parenthesised command name (which may contain ')') start with the state, field 3.
    let (_, rest) = stat.rsplit_once(") ")?;
    if rest.starts_with('Z') {
        return None;
    }
    rest.split_whitespace().nth(22 - 3).map(str::to_string)
}

/// A JSON string or number as text (etcd sends 64-bit numbers as decimal strings); empty when absent.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// The last `n` lines of `s`.
fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
