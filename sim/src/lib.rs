//! Test kit for etcd-spot: fakes of the Spotinst API and AWS IMDS that speak real HTTP on loopback addresses,
//! with fault injection and request recording, plus a supervisor for real `etcd` processes, a reader for the
//! environment files etcd-spot writes, a cross-process limit on concurrent etcd clusters, and a simulated
//! Elastigroup ([`SimGroup`]) that runs the real binaries and real etcd against the fakes.
//!
//! The kit must never depend on etcd-spot-core: the fakes model the real services, not the code under test.
//! It must never bind or contact anything outside 127.0.0.0/8.

mod envfile;
mod etcd;
mod fault;
mod group;
mod http;
mod imds;
mod slot;
mod spotinst;
mod util;

pub use envfile::parse_env_file;
pub use etcd::{EtcdProcess, etcd_binary};
pub use fault::{Fault, Request};
pub use group::{Run, SimGroup, SimInstance, SimMember, bin_dir};
pub use http::post_json;
pub use imds::FakeImds;
pub use slot::{Slot, cluster_slot};
pub use spotinst::{FakeSpotinst, TOKEN};
pub use util::{b64_decode, b64_encode};
