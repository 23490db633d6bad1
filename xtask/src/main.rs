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
mod etcd_versions;
mod rng;
mod svg;
mod test;
mod timeline;
mod units;
mod util;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <task> [options]

tasks:
  test [--etcd 3.4|3.5|all] install or fetch what the tests need (etcd 3.4, etcd 3.5), then fmt, clippy, the
                            whole test suite on etcd 3.4 and the suites that run etcd again on 3.5
  etcd-bin 3.4|3.5          print the path of that etcd (fetching 3.5 into target/etcd/ when missing)
  demo [--instances 3|5]    the simulated spot churn demo on real etcd
  dist [--install-toolchain] static musl binaries into target/dist/ with SHA256SUMS
  units                     regenerate systemd units and deployment snippets in deploy/
  smoke                     run the static binaries from target/dist/ alone in an empty root
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
        "etcd-bin" => test::etcd_bin_task(rest),
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
