//! Ending a run: the report printed where it belongs, at the priority it deserves, and the documented exit code.
//!
//! With `--json` the report goes to stdout, every time, configuration errors included. Otherwise the human
//! report goes to stderr (the journal) at a priority that says what happened: error for a failure, warning for a
//! refusal, info for a run that did or saw something, and debug, shown only with `-vv`, for a run with nothing
//! new (decision `none`, no action, no error, and the same reasons and summary as the previous run of this
//! binary: `crate::run::nothing_new`). Every write goes through [`crate::console`]: a closed or full stdout or
//! stderr never turns the run's exit code into a crash. This module never decides anything about the cluster.

use log::Level;

use super::{Decision, Outcome, Report};
use crate::console;
use crate::error::ErrorKind;
use crate::logging;
use crate::settings::Config;

/// The summary of a run that stopped at its configuration.
const CONFIG_SUMMARY: &str = "no cluster observed: the configuration is invalid";

/// The binary's flags from its command line ([`crate::settings::from_command_line`]), else the exit code that ends
/// the run; a usage error whose report is wanted as JSON prints that report on stdout, as a configuration error
/// does (decision `refuse`, kind `config`).
pub fn command_line<T: crate::settings::Flags>() -> Result<T, std::process::ExitCode> {
    crate::settings::from_command_line::<T>(&crate::settings::process_env).map_err(|early| {
        if let Some(message) = early.json_usage_error {
            let mut report = Report::new(T::BINARY);
            report.decision = Decision::Refuse;
            report.summary = CONFIG_SUMMARY.to_owned();
            report.error = Some(format!("usage: {message}"));
            report.error_kind = Some(ErrorKind::Config);
            report.duration_secs = report.elapsed();
            console::out(&format!("{}\n", report.json()));
        }
        early.code
    })
}

/// Ends a run: prints the report (human lines on stderr, or JSON on stdout when `json` or the resolved settings
/// ask for it) and the error with its chain of causes, and returns the documented exit code: 0 done, 1 refused
/// or failed safely, 2 bad configuration. `json` is what the flags and the environment asked for before they
/// were resolved, so a configuration error has its JSON report too.
pub fn finish<C>(
    binary: &'static str,
    json: bool,
    config: crate::Result<C>,
    common: impl Fn(&C) -> &Config,
    run: impl FnOnce(&C) -> Outcome,
) -> std::process::ExitCode {
    let cfg = match config {
        Ok(c) => c,
        Err(e) => {
            let mut report = Report::new(binary);
            report.decision = Decision::Refuse;
            report.summary = CONFIG_SUMMARY.to_owned();
            report.error = Some(e.to_string());
            report.error_kind = Some(e.kind("", ""));
            report.duration_secs = report.elapsed();
            if json {
                console::out(&format!("{}\n", report.json()));
            }
            logging::emit(Level::Error, &format!("{binary}: {e}\n"));
            return std::process::ExitCode::from(e.exit_code());
        }
    };
    let settings = common(&cfg);
    let (mut report, code) = match run(&cfg) {
        Ok(r) => (r, 0),
        Err(boxed) => {
            let (mut r, e) = *boxed;
            let mut chain = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                chain.push_str(&format!(": {s}"));
                source = s.source();
            }
            log::debug!("{binary} failed: {chain}");
            r.error_kind = Some(e.kind(&settings.imds_url, &settings.spotinst_url));
            (r, e.exit_code())
        }
    };
    report.duration_secs = report.elapsed();
    let quiet = crate::run::nothing_new(settings, &report);
    if settings.json {
        console::out(&format!("{}\n", report.json()));
        return std::process::ExitCode::from(code);
    }
    let level = match report.error_kind {
        Some(ErrorKind::Refused) => Level::Warn,
        Some(_) => Level::Error,
        None if quiet => Level::Debug,
        None => Level::Info,
    };
    if level != Level::Debug || log::log_enabled!(target: "etcd_spot_core::report", Level::Debug) {
        logging::emit(level, &report.human());
    }
    std::process::ExitCode::from(code)
}
