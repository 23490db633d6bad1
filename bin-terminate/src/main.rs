//! `etcd-spot-terminate`: parses flags, initialises logging and hands over to
//! `etcd_spot_core::terminate`. No logic and no HTTP here (see ARCHITECTURE.md).

use std::process::ExitCode;

use etcd_spot_core::settings::{Flags as _, TerminateArgs, process_env};
use etcd_spot_core::{logging, report, terminate};

fn main() -> ExitCode {
    let args: TerminateArgs = match report::command_line() {
        Ok(args) => args,
        Err(code) => return code,
    };
    logging::init(TerminateArgs::BINARY, args.verbose);
    let json = args.wants_json(&process_env);
    report::finish(TerminateArgs::BINARY, json, args.resolve(&process_env), |c| &c.common, terminate)
}
