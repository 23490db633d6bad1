//! Test kit for etcd-spot: fakes of the Spotinst API and AWS IMDS that speak real HTTP on loopback addresses,
//! with fault injection and request recording ([`Fake`]); a supervisor for real `etcd` processes
//! ([`EtcdProcess`]) and the kit's one client for them ([`EtcdClient`]); a reader for the environment files
//! etcd-spot writes; a cross-process limit on concurrent etcd clusters; the one runner for the binaries under
//! test ([`Proc`]), whose every [`Run`] carries its parsed `--json` [`Report`], and a one-shot runner whose
//! outputs may be closed or full ([`run_with`]); a simulated Elastigroup
//! ([`SimGroup`]) that runs the real binaries and real etcd against the fakes, also with mutual TLS on both etcd
//! ports and etcd auth on ([`SimGroup::new_tls`], reached through an [`EtcdAccess`]); a simulated systemd
//! ([`Systemd`]) that boots its instances and runs their watchers and timers, and can arm the binaries'
//! failpoints for a unit ([`Systemd::arm`]); test certificates made at test time ([`Ca`]); and network partitions
//! between instances with nftables ([`Partitions`]).
//!
//! The kit must never depend on etcd-spot-core: the fakes model the real services, not the code under test.
//! It must never bind or contact anything outside 127.0.0.0/8.

mod access;
mod bins;
mod cli;
mod client;
mod envfile;
mod etcd;
mod fakes;
mod group;
mod metrics;
mod netfault;
mod process;
mod report;
mod slot;
mod systemd;
mod tls;
mod util;

pub use access::EtcdAccess;
pub use bins::bin_dir;
pub use cli::{Case, Sink, exit_codes_despite_output, run_captured, run_with, scratch_dir};
pub use client::{EtcdClient, EtcdStatus, SimMember};
pub use envfile::parse_env_file;
pub use etcd::{EtcdProcess, binary_version, etcd_binary, etcd_binary_of, etcd_version, failed_precondition_status};
pub use fakes::{
    Caller, EarlyCall, Fake, FakeImds, FakeSpotinst, Fault, Imds, Pacing, RateLimit, Request, Spotinst, TOKEN, pacing,
};
pub use group::{ETCD_USER, GroupTls, InstanceTls, SimGroup, SimInstance, stale_dirs};
pub use metrics::{check_dir as check_metrics_dir, checked as metrics_checked};
pub use netfault::{Cut, Partitions, both_ways, gid as partition_gid, table_exists};
pub use process::{Proc, Run, exit_code, with_deadline};
pub use report::{Report, ReportAction};
pub use slot::{Slot, cluster_slot};
pub use systemd::{FAILPOINT_ENV, Systemd, Timers, Unit, UnitEvent, ended_on_its_own, killed_at};
pub use tls::{Ca, Leaf, LeafFiles, Validity};
