//! `etcd-spot-prune`: parses flags, initialises logging and hands over to
//! `etcd_spot_core::prune`. No logic and no HTTP here (see ARCHITECTURE.md).

use std::process::ExitCode;

use etcd_spot_core::settings::{Flags as _, PruneArgs, process_env};
use etcd_spot_core::{logging, prune, report};

fn main() -> ExitCode {
    let args: PruneArgs = match report::command_line() {
        Ok(args) => args,
        Err(code) => return code,
    };
    logging::init(PruneArgs::BINARY, args.verbose);
    let json = args.wants_json(&process_env);
    report::finish(PruneArgs::BINARY, json, args.resolve(&process_env), |c| &c.common, prune)
}
