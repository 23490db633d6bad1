//! A supervisor for a real `etcd` process in tests: start it with exactly the environment a test gives, check
//! its health (through the kit's [`EtcdClient`]), stop it gracefully or kill it, restart it.
//!
//! It must never leave an etcd behind: dropping an [`EtcdProcess`] (also while a test panics) kills the process
//! with SIGKILL and reaps it. It never passes configuration on the command line or through a config file;
//! etcd gets its settings from the environment only, as under systemd.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::process::process_alive;
use crate::util::tail;
use crate::{EtcdAccess, EtcdClient};

/// How long one health check may take.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);
/// Timing defaults that keep elections quick and stable on a loaded two-core machine.
const DEFAULTS: [(&str, &str); 2] = [("ETCD_HEARTBEAT_INTERVAL", "100"), ("ETCD_ELECTION_TIMEOUT", "1000")];

/// The `etcd` binary: `$ETCD_BIN` when set, else the first `etcd` on `PATH`.
pub fn etcd_binary() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("ETCD_BIN") {
        let bin = PathBuf::from(bin);
        return if bin.is_file() { Ok(bin) } else { Err(format!("ETCD_BIN={} is not a file", bin.display())) };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("etcd"))
        .find(|p| p.is_file())
        .ok_or_else(|| "etcd not found on PATH (set ETCD_BIN, or: apt-get install etcd-server)".to_string())
}

/// The version of the `etcd` binary the tests run ([`etcd_binary`]), as `etcd --version` prints it (`3.5.30`);
/// asked once per process.
pub fn etcd_version() -> Result<String, String> {
    static VERSION: std::sync::OnceLock<Result<String, String>> = std::sync::OnceLock::new();
    VERSION.get_or_init(ask_version).clone()
}

fn ask_version() -> Result<String, String> {
    binary_version(&etcd_binary()?)
}

/// The version `bin --version` reports (`3.5.30`).
pub fn binary_version(bin: &Path) -> Result<String, String> {
    let out = Command::new(bin).arg("--version").output().map_err(|e| format!("{}: {e}", bin.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("etcd Version:"))
        .map(|v| v.trim().to_owned())
        .ok_or_else(|| format!("{} --version printed no version: {text}", bin.display()))
}

/// An `etcd` of `minor` version ("3.4", "3.5"): [`etcd_binary`] when it is that version, else Debian's
/// `/usr/bin/etcd` (3.4), else the one `cargo xtask test` fetches into `<workspace>/target/etcd/<minor>/`.
pub fn etcd_binary_of(minor: &str) -> Result<PathBuf, String> {
    let prefix = format!("{minor}.");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new("."));
    let candidates = [
        etcd_binary().ok(),
        Some(PathBuf::from("/usr/bin/etcd")),
        Some(root.join(format!("target/etcd/{minor}/usr/bin/etcd"))),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|bin| bin.is_file() && binary_version(bin).is_ok_and(|v| v.starts_with(&prefix)))
        .ok_or_else(|| {
            format!("no etcd {minor} found: run `cargo xtask etcd-bin {minor}` (the test command fetches it)")
        })
}

/// The HTTP status etcd's JSON gateway gives a gRPC FailedPrecondition (too many learners, Peer URLs already
/// exists, can only promote a learner, not leader): 412 up to etcd 3.4, 400 from 3.5 on (seen on 3.4.23 and
/// 3.5.30).
pub fn failed_precondition_status(version: &str) -> u16 {
    if version.starts_with("3.4.") { 412 } else { 400 }
}

/// A running (or stopped) etcd started by a test. Dropping it kills and reaps the process.
#[derive(Debug)]
pub struct EtcdProcess {
    bin: Option<PathBuf>,
    env: Vec<(String, String)>,
    client_url: String,
    access: EtcdAccess,
    log: PathBuf,
    /// The group ID it runs as (a partitionable group's instance), else the harness's.
    gid: Option<u32>,
    child: Option<Child>,
    /// How the last process ended, once it was reaped.
    exit: Option<ExitStatus>,
}

impl EtcdProcess {
    /// Starts `etcd` with exactly `env` (plus `PATH`/`HOME`, plus `ETCD_HEARTBEAT_INTERVAL=100` and
    /// `ETCD_ELECTION_TIMEOUT=1000` unless given), stdout and stderr appended to `log`. `client_url` is where
    /// health is checked.
    pub fn start(env: &[(String, String)], client_url: &str, log: &Path) -> Result<EtcdProcess, String> {
        EtcdProcess::start_bin(None, env, client_url, log)
    }

    /// [`EtcdProcess::start`] with the binary `bin` (else [`etcd_binary`]).
    pub fn start_bin(
        bin: Option<&Path>,
        env: &[(String, String)],
        client_url: &str,
        log: &Path,
    ) -> Result<EtcdProcess, String> {
        EtcdProcess::start_as(bin, env, client_url, log, None)
    }

    /// [`EtcdProcess::start_bin`], the process running with group ID `gid` when given (its user stays root).
    pub fn start_as(
        bin: Option<&Path>,
        env: &[(String, String)],
        client_url: &str,
        log: &Path,
        gid: Option<u32>,
    ) -> Result<EtcdProcess, String> {
        let mut p = EtcdProcess {
            gid,
            bin: bin.map(Path::to_path_buf),
            env: env.to_vec(),
            client_url: client_url.trim_end_matches('/').to_string(),
            access: EtcdAccess::plain(),
            log: log.to_path_buf(),
            child: None,
            exit: None,
        };
        p.spawn()?;
        Ok(p)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let bin = match &self.bin {
            Some(b) => b.clone(),
            None => etcd_binary()?,
        };
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("opening etcd log {}: {e}", self.log.display()))?;
        let log_err = log.try_clone().map_err(|e| format!("cloning etcd log handle: {e}"))?;
        let mut cmd = Command::new(&bin);
        cmd.env_clear();
        for key in ["PATH", "HOME"] {
            if let Some(v) = std::env::var_os(key) {
                cmd.env(key, v);
            }
        }
        for (k, v) in DEFAULTS {
            if !self.env.iter().any(|(key, _)| key == k) {
                cmd.env(k, v);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(Stdio::null()).stdout(log).stderr(log_err);
        if let Some(gid) = self.gid {
            cmd.gid(gid);
        }
        let child = cmd.spawn().map_err(|e| format!("starting {}: {e}", bin.display()))?;
        if let Ok(mut f) = OpenOptions::new().append(true).open(&self.log) {
            let _ = writeln!(f, "=== etcd-spot-sim: started {} as pid {}", bin.display(), child.id());
        }
        self.child = Some(child);
        self.exit = None;
        Ok(())
    }

    /// Checks health as `access` says (https with a CA and a client certificate) from now on.
    pub fn set_access(&mut self, access: &EtcdAccess) {
        self.access = access.clone();
    }

    /// The client URL health is checked at.
    pub fn client_url(&self) -> &str {
        &self.client_url
    }

    /// The process ID while a process is started and not yet reaped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running (reaps it if it has exited). A dying multi-threaded process shows as
    /// a zombie a moment before it can be reaped; that moment (up to 2 s) is waited out, so the answer agrees
    /// with [`process_alive`].
    pub fn is_running(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(2);
        while let Some(pid) = self.pid() {
            if process_alive(pid) || Instant::now() >= deadline {
                break;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                self.exit = Some(status);
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(Ok(Some(status))) => {
                self.child = None;
                self.exit = Some(status);
                false
            }
            Some(Err(_)) | None => false,
        }
    }

    /// Polls `GET {client_url}/health` until it answers 200 with `{"health":"true"}`, or fails with the last
    /// error (and the tail of the log) after `timeout`. Fails at once if the process has exited.
    pub fn wait_healthy(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let client = EtcdClient::with_access(&self.client_url, HEALTH_TIMEOUT, &self.access);
        loop {
            let last = match self.pid() {
                Some(pid) if process_alive(pid) => match client.health() {
                    Ok(()) => return Ok(()),
                    Err(e) => e,
                },
                _ => {
                    return Err(format!(
                        "etcd for {} is not running; log tail:\n{}",
                        self.client_url,
                        log_tail(&self.log)
                    ));
                }
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "etcd at {} not healthy after {timeout:?}: {last}; log tail:\n{}",
                    self.client_url,
                    log_tail(&self.log)
                ));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends SIGTERM (through the `kill` command), waits up to 10 s for the process to exit, then SIGKILLs it.
    pub fn stop(&mut self) {
        let Some(pid) = self.pid() else { return };
        if self.is_running() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.is_running() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(50));
            }
        }
        self.kill();
    }

    /// How the process ended (`None` while it runs, or before it was reaped by [`EtcdProcess::is_running`]).
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.exit
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            self.exit = child.wait().ok();
        }
    }

    /// Starts etcd again with the same environment, stopping the running process first if there is one.
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        self.spawn()
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last 30 lines of `log`, for error messages.
fn log_tail(log: &Path) -> String {
    tail(&std::fs::read_to_string(log).unwrap_or_default(), 30)
}
