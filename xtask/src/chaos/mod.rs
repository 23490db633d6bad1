//! `cargo xtask chaos --seed S --steps N [--instances 3|5] [--allow-quorum-loss] [--tls] [--partitions] [--kills]`:
//! randomized spot churn over a
//! simulated Elastigroup on loopback (127.0.50.x) with REAL etcd and the REAL binaries run as systemd would run
//! them ([`Systemd`]: discover at every boot before etcd, etcd-spot-terminate `--watch`, prune on a timer), a
//! writer that records every acknowledged write, and the safety invariants of `docs/invariants.md` checked
//! throughout and at the end. With `--tls` etcd runs with mutual TLS on both ports and auth on (the group's TLS
//! mode), and the writer and the observer reach it through the group's access (client certificate, token).
//! With `--partitions` the network between instances is cut and healed ([`faults`], nftables through the kit's
//! [`Partitions`], in a table named after the run's net); with `--kills` the binaries are killed (SIGKILL) at points of
//! their steps (`ETCD_SPOT_FAILPOINT`) and must finish the step on their next run.
//!
//! The events come from the seed alone ([`plan`]): the same seed replays the same events, only their timing
//! differs. [`events`] applies them and drives the simulated systemd, [`observe`] watches the cluster and checks
//! the running invariants, [`writer`] writes and reads the writes back, [`report`] keeps the journal and renders
//! the table and the report file, and [`check`] holds the pure checks. Every figure in the final table comes
//! from observation. The run exits non-zero on any violation, naming the step and the replay command. It must
//! never leave a process behind (the [`SimGroup`] and the [`Systemd`] kill what they started when dropped),
//! never wait without a timeout, and never bind or contact anything outside 127.0.0.0/8.

mod check;
mod events;
mod faults;
mod kills;
mod observe;
mod partition;
mod plan;
mod report;
mod writer;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_spot_sim::{Partitions, SimGroup, Systemd, cluster_slot};

use observe::Observer;
use plan::PlanOptions;
use report::Journal;
use writer::Writer;

/// The chaos run's loopback network: instances are 127.0.50.<host>.
const NET: u8 = 50;
/// Timeout of one call to etcd from the observer and the writer.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// `--unstarted-grace` of prune: an added member that never started blocks the single learner place until then.
const UNSTARTED_GRACE: &str = "30";

/// The nftables table of the run's partitions (deleted at the start and at the end of every run).
const TABLE: &str = "etcd_spot_chaos_net50";

const USAGE: &str = "usage: cargo xtask chaos --seed S --steps N [--instances 3|5] [--allow-quorum-loss] [--tls] [--partitions] [--kills]

Randomized spot churn over a simulated Elastigroup on 127.0.50.x: real etcd (ETCD_BIN, else etcd on PATH), the real etcd-spot binaries
(discover at every boot, terminate --watch, prune every 5 s), fake Spotinst and instance-metadata APIs with
faults, and a writer recording every acknowledged write. Prints each step, then the table of the safety
invariants (docs/invariants.md); exits non-zero on any violation. The same seed replays the same events.

  --seed S              the seed of the events (default 1)
  --steps N             how many events (default 20)
  --instances 3|5       the group's starting size (default 3)
  --allow-quorum-loss   let two instances be lost at once even where that is a majority of the voters
  --tls                 mutual TLS on etcd's client and peer ports, auth on once the cluster forms (user root)
  --partitions          network partitions between instances too (nftables, as root): one instance cut off,
                        the leader cut off, one way (what it sends is dropped), a minority from the majority,
                        a joiner cut off mid-join
  --kills               kill -9 the binaries mid-step too: discover after member add and while writing etcd's
                        settings, terminate after its removal and while moving the data dir, prune after a
                        removal or a promotion

The seed, every step and the table are also written to target/chaos/ (JSON, and an SVG timeline beside it).
ETCD_SPOT_KEEP=1 keeps the group's folder (every binary run, etcd logs, data dirs).";

/// The options of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Opts {
    seed: u64,
    steps: usize,
    instances: usize,
    allow_quorum_loss: bool,
    tls: bool,
    partitions: bool,
    kills: bool,
}

impl Opts {
    /// The switches that are on, as `--name`.
    fn switches(&self) -> Vec<&'static str> {
        [
            (self.allow_quorum_loss, "--allow-quorum-loss"),
            (self.tls, "--tls"),
            (self.partitions, "--partitions"),
            (self.kills, "--kills"),
        ]
        .into_iter()
        .filter_map(|(on, flag)| on.then_some(flag))
        .collect()
    }

    fn replay(&self) -> String {
        let switches: String = self.switches().iter().map(|s| format!(" {s}")).collect();
        format!(
            "cargo xtask chaos --seed {} --steps {} --instances {}{switches}",
            self.seed, self.steps, self.instances
        )
    }
}

/// The simulated group, its systemd, and what the chaos did to it.
#[derive(Debug)]
struct World {
    g: SimGroup,
    systemd: Systemd,
    /// Every instance ever launched → its data dir (the folders stay after termination).
    data_dirs: BTreeMap<String, PathBuf>,
    /// Instances given a notice (IMDS or Spotinst TERMINATING).
    noticed: BTreeSet<String>,
    /// Instances whose etcd the chaos stopped (reboot) and that have not started it again.
    rebooting: BTreeSet<String>,
    /// While a fault window is open: when its faults are cleared.
    faults: Option<Instant>,
    /// A destructive change until this time still counts as caused by the last fault window.
    faults_tail: Option<Instant>,
    /// The run's nftables table (`--partitions`).
    net: Option<Partitions>,
    /// While a partition is on: the instances it cuts off from the rest (the minority side).
    cut_off: BTreeSet<String>,
    /// When the cuts of the partition that is on were in place.
    cut_at: Option<Instant>,
    /// A removal until this time still counts as made during the last partition.
    partition_tail: Option<Instant>,
}

impl World {
    /// Whether a fault window is open or just closed.
    fn fault_active(&self) -> bool {
        self.faults.is_some() || self.faults_tail.is_some_and(|t| Instant::now() < t)
    }

    /// Whether a partition is on or was just healed.
    fn partition_active(&self) -> bool {
        !self.cut_off.is_empty() || self.partition_tail.is_some_and(|t| Instant::now() < t)
    }
}

/// One chaos run: the world, what is observed of it, the writer, and the journal.
#[derive(Debug)]
struct Chaos {
    opts: Opts,
    world: World,
    obs: Observer,
    writer: Writer,
    journal: Journal,
    /// Seconds from the last event to convergence.
    convergence: Option<f64>,
    /// The kills mid-step not yet followed by a completed run (`--kills`).
    kills: kills::Kills,
}

impl Chaos {
    fn new(opts: Opts, started: Instant, net: Option<Partitions>) -> Chaos {
        let mut g = SimGroup::new_mode("chaos", NET, u32::try_from(opts.instances).unwrap_or(3), opts.tls);
        g.set_env("ETCD_SPOT_UNSTARTED_GRACE", UNSTARTED_GRACE);
        if net.is_some() {
            g.set_partitionable();
        }
        let urls = Arc::new(Mutex::new(Vec::new()));
        let access = g.access();
        let world = World {
            g,
            systemd: Systemd::new(events::timers()),
            data_dirs: BTreeMap::new(),
            noticed: BTreeSet::new(),
            rebooting: BTreeSet::new(),
            faults: None,
            faults_tail: None,
            net,
            cut_off: BTreeSet::new(),
            cut_at: None,
            partition_tail: None,
        };
        let journal = Journal::new(started);
        Chaos {
            opts,
            world,
            obs: Observer::new(Arc::clone(&urls)),
            writer: Writer::start(opts.seed, urls, access, journal.timeline.writes()),
            journal,
            convergence: None,
            kills: kills::Kills::default(),
        }
    }
}

/// Runs the chaos task with `args`.
pub fn run(args: &[String]) -> Result<(), String> {
    let Some(opts) = parse_args(args)? else {
        println!("{USAGE}");
        return Ok(());
    };
    crate::test::ensure_etcd()?;
    let plan = plan::plan(&PlanOptions {
        seed: opts.seed,
        steps: opts.steps,
        instances: opts.instances,
        allow_quorum_loss: opts.allow_quorum_loss,
        net: NET,
        partitions: opts.partitions,
        kills: opts.kills,
    });
    let started = Instant::now();
    println!(
        "etcd-spot chaos: seed {}, {} steps, {} instances on 127.0.{NET}.x{}{}{}{} — real etcd {}, the real binaries",
        opts.seed,
        opts.steps,
        opts.instances,
        if opts.allow_quorum_loss { ", quorum loss allowed" } else { "" },
        if opts.tls { ", mutual TLS on both ports and auth on" } else { "" },
        if opts.partitions { ", network partitions" } else { "" },
        if opts.kills { ", kill -9 of the binaries mid-step" } else { "" },
        etcd_spot_sim::etcd_version()?
    );
    if opts.partitions {
        crate::test::ensure_nftables()?;
    }
    println!("[{:>7.2}s] building the binaries (cargo build --bins) …", started.elapsed().as_secs_f64());
    etcd_spot_sim::bin_dir()?;
    let _net = lock_net()?;
    let asked = Instant::now();
    let _slot = cluster_slot();
    if asked.elapsed() > Duration::from_secs(1) {
        println!(
            "[{:>7.2}s] waited {:.1} s for a free etcd slot (other etcd clusters were running); the clock restarts",
            started.elapsed().as_secs_f64(),
            asked.elapsed().as_secs_f64()
        );
    }
    // The table goes first and last: a run that crashed left its own table, which this one replaces.
    let net = if opts.partitions { Some(Partitions::new(TABLE, NET)?) } else { None };
    // The run's clock starts with the slot: waiting for other tests is not part of the run's wall time.
    let mut chaos = Chaos::new(opts, Instant::now(), net);
    chaos.journal.events = plan.steps.iter().map(|s| s.event.to_string()).collect();
    let outcome = chaos.run(&plan.initial, &plan.steps);
    chaos.finish(outcome)
}

/// Holds 127.0.50.x for this run: two chaos runs at once would fight over the same addresses and ports.
fn lock_net() -> Result<fs::File, String> {
    let path = std::env::temp_dir().join(format!("etcd-spot-chaos-net-{NET}.lock"));
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("opening {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => {
            Err(format!("another chaos run holds 127.0.{NET}.x (lock {}); run one at a time", path.display()))
        }
        Err(fs::TryLockError::Error(e)) => Err(format!("locking {}: {e}", path.display())),
    }
}

/// `Some(options)`, or `None` for `--help`.
fn parse_args(args: &[String]) -> Result<Option<Opts>, String> {
    let mut o = Opts {
        seed: 1,
        steps: 20,
        instances: 3,
        allow_quorum_loss: false,
        tls: false,
        partitions: false,
        kills: false,
    };
    let mut rest = args.iter();
    let num = |flag: &str, v: Option<&String>| -> Result<u64, String> {
        let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
        v.parse::<u64>().map_err(|_| format!("{flag} {v}: not a whole number"))
    };
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--seed" => o.seed = num("--seed", rest.next())?,
            "--steps" => o.steps = usize::try_from(num("--steps", rest.next())?).map_err(|e| e.to_string())?,
            "--instances" => {
                o.instances = match num("--instances", rest.next())? {
                    3 => 3,
                    5 => 5,
                    other => return Err(format!("--instances {other}: the chaos run starts with 3 or 5 instances")),
                }
            }
            "--allow-quorum-loss" => o.allow_quorum_loss = true,
            "--tls" => o.tls = true,
            "--partitions" => o.partitions = true,
            "--kills" => o.kills = true,
            other => return Err(format!("unknown argument {other:?}\n\n{USAGE}")),
        }
    }
    Ok(Some(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments() {
        let o = parse_args(&args(&[
            "--seed",
            "7",
            "--steps",
            "3",
            "--instances",
            "5",
            "--allow-quorum-loss",
            "--tls",
            "--partitions",
            "--kills",
        ]));
        let want =
            Opts { seed: 7, steps: 3, instances: 5, allow_quorum_loss: true, tls: true, partitions: true, kills: true };
        assert_eq!(o, Ok(Some(want)));
        assert_eq!(
            want.replay(),
            "cargo xtask chaos --seed 7 --steps 3 --instances 5 --allow-quorum-loss --tls --partitions --kills"
        );
        assert_eq!(parse_args(&args(&["--help"])), Ok(None));
        assert!(parse_args(&args(&["--instances", "4"])).unwrap_err().contains("3 or 5"));
        assert!(parse_args(&args(&["--seed"])).unwrap_err().contains("needs a value"));
        assert!(parse_args(&args(&["--seed", "x"])).unwrap_err().contains("not a whole number"));
        assert!(parse_args(&args(&["--bogus"])).is_err());
        let o = parse_args(&[]).unwrap().unwrap();
        assert_eq!(o.replay(), "cargo xtask chaos --seed 1 --steps 20 --instances 3");
    }
}
