//! etcd-spot core: everything the three binaries do lives here.
//!
//! The crate is a functional core with an imperative shell: [`planner`] holds
//! the pure decisions (no I/O, ever), the client modules ([`imds`],
//! [`spotinst`], [`etcd`]) talk to the outside world through one [`http`]
//! layer, and the shell modules ([`discover`], [`terminate`], [`prune`]) gather
//! a view ([`gather`]), ask the planner and apply the plan. Binaries only parse
//! flags and map results to exit codes.
#![forbid(unsafe_code)]

pub mod beacon;
pub mod cli;
pub mod config;
pub mod datadir;
pub mod discover;
pub mod error;
pub mod etcd;
pub mod gather;
pub mod http;
pub mod imds;
pub mod output;
pub mod planner;
pub mod prune;
pub mod report;
pub mod spotinst;
pub mod terminate;
pub mod types;

pub use error::{Error, Result};
