//! etcd-spot core: everything the three binaries do lives here.
//!
//! The layers, bottom to top, each importing only from those below it:
//! - [`types`]: domain types parsed at the edge, and the error type beside them;
//! - [`planner`]: the pure decisions, from an observed view to a plan with reasons (no I/O, no clock);
//! - [`clients`]: IMDS, Spotinst and etcd over one HTTP layer, knowing nothing of the application's settings;
//! - [`settings`]: flags and environment merged into validated configurations, from one table;
//! - `run`: the shells of the three binaries (observe → plan → apply) and [`report`], what a run prints;
//! - beside them [`logging`] (the one log set-up) and [`console`] (writes to stdout and stderr that never panic).
//! - [`metrics`]: the Prometheus textfile a run writes with `--metrics-dir`, from what it observed.
//!
//! Binaries only parse flags, set up logging, call one `run` function and map the result to an exit code.
#![forbid(unsafe_code)]

pub mod clients;
pub mod console;
mod error;
mod failpoint;
pub mod logging;
pub mod metrics;
pub mod planner;
pub mod report;
mod run;
pub mod settings;
pub mod types;

pub use error::{Error, ErrorKind, EtcdErrorKind, Result, TlsFailure, TlsSide};
pub use run::{discover, prune, terminate};
