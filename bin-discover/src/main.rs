//! `etcd-spot-discover`: parses flags, initialises logging and hands over to
//! `etcd_spot_core::discover`. No logic and no HTTP here (see ARCHITECTURE.md).

use std::process::ExitCode;

use etcd_spot_core::settings::{self, DiscoverArgs, process_env};
use etcd_spot_core::{discover, report};

fn main() -> ExitCode {
    let args: DiscoverArgs = match settings::from_command_line() {
        Ok(args) => args,
        Err(code) => return code,
    };
    let level = ["warn", "info", "debug", "trace"][usize::from(args.verbose.min(3))];
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).format_timestamp_millis().init();
    report::finish("etcd-spot-discover", args.resolve(&process_env), |c| c.common.json, discover)
}
