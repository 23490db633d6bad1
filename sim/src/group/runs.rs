//! The binaries run on a simulated instance: one-shot runs waited for, discovers handed to the caller, terminate
//! watchers owned by the group, and the first boot of many instances at once.
//!
//! Every run goes through the kit's one runner ([`Proc`]) and is recorded in the instance's `runs.log`. A run is
//! killed after [`RUN_LIMIT`]; a process the group owns is killed when the group drops it.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use super::{HEALTHY_TIMEOUT, Loose, SimGroup, Spawned};
use crate::bins::{DISCOVER, PRUNE, TERMINATE};
use crate::process::{Proc, Run, start_time};
use crate::util::{lock, tail};

/// A binary run still going after this long is killed (its [`Run`] then says so).
const RUN_LIMIT: Duration = Duration::from_secs(600);
/// How long [`SimGroup::kill_spawned`] waits after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

impl SimGroup {
    /// Starts `bin` for `id` with `args` as a [`Proc`] writing into the instance's folder, killed after `limit`.
    pub fn start_proc(&self, bin: &str, id: &str, args: &[&str], limit: Duration) -> Result<Proc, String> {
        self.start_proc_env(bin, id, args, limit, &[])
    }

    /// [`SimGroup::start_proc`] with `env` added to this one run's environment, after everything
    /// [`SimGroup::env`] gives (e.g. `ETCD_SPOT_FAILPOINT` for one run).
    pub fn start_proc_env(
        &self,
        bin: &str,
        id: &str,
        args: &[&str],
        limit: Duration,
        env: &[(&str, &str)],
    ) -> Result<Proc, String> {
        let mut cmd = self.command(bin, id, args)?;
        cmd.envs(env.iter().copied());
        Proc::spawn(cmd, &self.instance_dir(id), limit)
    }

    /// Runs `bin` for `id` to its end (killed after 10 minutes); the run is in the instance's `runs.log`.
    fn run(&self, bin: &str, id: &str, args: &[&str]) -> Run {
        let run = match self.start_proc(bin, id, args, RUN_LIMIT) {
            Ok(p) => p.wait(),
            Err(e) => Run::failed(e),
        };
        if crate::metrics::checked()
            && let Err(e) = crate::metrics::check_dir(&self.instance_dir(id).join("metrics"))
        {
            panic!("sim: the metrics {bin} wrote on {id} do not pass: {e}");
        }
        run
    }

    /// Runs etcd-spot-discover for `id` with `args` and waits for it.
    pub fn discover(&self, id: &str, args: &[&str]) -> Run {
        self.run(DISCOVER, id, args)
    }

    /// Runs etcd-spot-terminate for `id` with `args` and waits for it.
    pub fn terminate(&self, id: &str, args: &[&str]) -> Run {
        self.run(TERMINATE, id, args)
    }

    /// Runs etcd-spot-prune for `id` with `args` and waits for it.
    pub fn prune(&self, id: &str, args: &[&str]) -> Run {
        self.run(PRUNE, id, args)
    }

    /// Starts etcd-spot-discover for `id` with `args`, stdout and stderr piped (read them, e.g. with
    /// `wait_with_output`, or the pipes may fill). Killed on drop of the group if still running. For concurrent
    /// boots.
    ///
    /// # Panics
    /// If the binary cannot be found or started.
    pub fn spawn_discover(&self, id: &str, args: &[&str]) -> std::process::Child {
        let child = self
            .command(DISCOVER, id, args)
            .and_then(|mut cmd| {
                cmd.stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .map_err(|e| format!("starting {DISCOVER}: {e}"))
            })
            .unwrap_or_else(|e| panic!("sim: {e}"));
        self.loose(child.id());
        child
    }

    /// Starts etcd-spot-terminate for `id` with `args` (e.g. `--watch`) and returns its pid. The group owns the
    /// process: [`SimGroup::kill_spawned`] or [`SimGroup::wait_spawned`] collect it (its run is recorded in the
    /// instance's `runs.log`), [`SimGroup::terminate_instance`] and drop kill it.
    ///
    /// # Panics
    /// If the binary cannot be found or started.
    pub fn spawn_terminate(&mut self, id: &str, args: &[&str]) -> u32 {
        let proc = self.start_proc(TERMINATE, id, args, Duration::MAX).unwrap_or_else(|e| panic!("sim: {e}"));
        let pid = proc.pid();
        self.spawned.push(Spawned { instance: id.to_string(), proc });
        pid
    }

    /// Stops a process started with [`SimGroup::spawn_terminate`] (SIGTERM, SIGKILL after 5 s) and returns its
    /// run; `None` if the group owns no such process.
    pub fn kill_spawned(&mut self, pid: u32) -> Option<Run> {
        let index = self.spawned.iter().position(|s| s.proc.pid() == pid)?;
        Some(self.spawned.remove(index).proc.stop(STOP_GRACE))
    }

    /// Waits up to `timeout` for a process started with [`SimGroup::spawn_terminate`] to exit by itself and
    /// returns its run; `None` if it is still running (the group keeps it) or the group owns no such process.
    pub fn wait_spawned(&mut self, pid: u32, timeout: Duration) -> Option<Run> {
        let index = self.spawned.iter().position(|s| s.proc.pid() == pid)?;
        let run = self.spawned[index].proc.wait_for(timeout)?;
        self.spawned.remove(index);
        Some(run)
    }

    /// Kills the processes the group owns for instance `id`.
    pub(super) fn kill_spawned_of(&mut self, id: &str) {
        // Dropping a spawned process kills it.
        self.spawned.retain(|s| s.instance != id);
    }

    /// Boots `ids` the way systemd would: discover (concurrently for all, no extra arguments), and etcd for each
    /// as soon as its discover exited 0; then waits for every started etcd to be healthy (45 s each). Returns
    /// the discover runs in the order of `ids`. Errors name each instance whose discover failed (with its report
    /// and the tail of its log) or whose etcd did not come up.
    pub fn boot_all(&mut self, ids: &[String]) -> Result<Vec<Run>, String> {
        self.boot_all_with(ids, &[])
    }

    /// [`SimGroup::boot_all`] with `args` for every discover (e.g. `--json`).
    pub fn boot_all_with(&mut self, ids: &[String], args: &[&str]) -> Result<Vec<Run>, String> {
        let (tx, rx) = mpsc::channel();
        for (index, id) in ids.iter().enumerate() {
            match self.start_proc(DISCOVER, id, args, RUN_LIMIT) {
                Ok(p) => {
                    self.loose(p.pid());
                    let tx = tx.clone();
                    thread::spawn(move || {
                        let _ = tx.send((index, p.wait()));
                    });
                }
                Err(e) => {
                    let _ = tx.send((index, Run::failed(e)));
                }
            }
        }
        drop(tx);
        let mut runs: Vec<Option<Run>> = vec![None; ids.len()];
        let mut errors = Vec::new();
        let mut started = Vec::new();
        for (index, run) in rx {
            let id = &ids[index];
            if run.code == 0 {
                match self.start_etcd_nowait(id) {
                    Ok(()) => started.push(id.clone()),
                    Err(e) => errors.push(format!("etcd on {id}: {e}")),
                }
            } else {
                let report = run.report.as_ref().map_or_else(String::new, |r| r.lines().join("\n") + "\n");
                errors.push(format!("discover on {id} exited {}:\n{report}{}", run.code, tail(&run.stderr, 15)));
            }
            runs[index] = Some(run);
        }
        for id in started {
            if let Err(e) = self.wait_etcd_healthy(&id, HEALTHY_TIMEOUT) {
                errors.push(e);
            }
        }
        if errors.is_empty() {
            Ok(runs.into_iter().map(|r| r.unwrap_or_else(|| Run::failed("no run".into()))).collect())
        } else {
            Err(errors.join("\n"))
        }
    }

    /// Remembers a process handed away (or waited for on another thread), to kill on drop if it still runs.
    fn loose(&self, pid: u32) {
        lock(&self.loose).push(Loose { pid, start_time: start_time(pid) });
    }
}
