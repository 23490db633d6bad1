//! `etcd-spot-discover`: parses flags, initialises logging and hands over to
//! `etcd_spot_core::discover`. No logic and no HTTP here (see ARCHITECTURE.md).

use std::process::ExitCode;

use etcd_spot_core::settings::{DiscoverArgs, Flags as _, process_env};
use etcd_spot_core::{discover, logging, report};

fn main() -> ExitCode {
    let args: DiscoverArgs = match report::command_line() {
        Ok(args) => args,
        Err(code) => return code,
    };
    logging::init(DiscoverArgs::BINARY, args.verbose);
    let json = args.wants_json(&process_env);
    report::finish(DiscoverArgs::BINARY, json, args.resolve(&process_env), |c| &c.common, discover)
}
