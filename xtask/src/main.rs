//! `cargo xtask …`: the project's automation, one module per task.
//!
//! Tasks call cargo through the `CARGO` environment variable and never touch
//! anything outside the workspace and its `target/` folder, except where a
//! task says it installs a tool (and then only when told to, or for the test
//! suite's own needs).

mod bench;
mod chaos;
mod demo;
mod dist;
mod rng;
mod test;
mod units;
mod util;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <task> [options]

tasks:
  test                      install what the tests need (etcd), then fmt, clippy and the whole test suite
  demo [--instances 3|5]    the simulated spot churn demo on real etcd
  dist [--install-toolchain] static musl binaries into target/dist/ with SHA256SUMS
  units                     regenerate systemd units and deployment snippets in deploy/
  smoke                     run the static binaries from target/dist/ in a minimal root against the fakes
  chaos --seed S --steps N [--instances 3|5] [--allow-quorum-loss]
  bench                     measure the performance figures of docs/performance.md";

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((task, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match task.as_str() {
        "test" => test::run(rest),
        "demo" => demo::run(rest),
        "dist" => dist::run(rest),
        "units" => units::run(rest),
        "smoke" => dist::smoke(rest),
        "chaos" => chaos::run(rest),
        "bench" => bench::run(rest),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => Err(format!("unknown task {other:?}\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask {task}: {message}");
            ExitCode::FAILURE
        }
    }
}
