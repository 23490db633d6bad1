//! The one log set-up of the three binaries: which levels pass (`-v` and `RUST_LOG`), and how a line looks on a
//! terminal and under journald.
//!
//! Under journald (`JOURNAL_STREAM` set, as systemd sets it for a unit whose stderr is the journal) every line
//! starts with its syslog priority as sd-daemon(3) defines it (`<3>` error, `<4>` warning, `<6>` info, `<7>`
//! debug and trace) and carries no timestamp (the journal stamps each line), so `journalctl -p warning` shows
//! what went wrong; elsewhere a line is env_logger's usual one with a millisecond timestamp. The run's report
//! goes out through [`emit`] with the same prefixes. Every write goes through `env_logger`'s stderr writer or
//! [`crate::console`], neither of which panics on a closed or full stderr. Nothing here decides anything.

use log::{Level, LevelFilter};

/// etcd-spot's own log targets: the core library (the binaries' crates log nothing themselves).
const OWN: &str = "etcd_spot_core";

/// Whether stderr goes to the journal: `JOURNAL_STREAM` is set and not empty.
pub fn journald() -> bool {
    std::env::var_os("JOURNAL_STREAM").is_some_and(|v| !v.is_empty())
}

/// The syslog priority of a level (sd-daemon(3)).
pub fn priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// The filter of a run: `warn` by default; `RUST_LOG` on top (any module); then, with `-v`, etcd-spot's own
/// modules (`etcd_spot_core` and the binary's crate) at info, debug or trace, replacing whatever `RUST_LOG`
/// said about them, so the flag wins there and `RUST_LOG` still rules every other module. An unparsable
/// `RUST_LOG` is left out and said once, as env_logger would.
pub fn filter(binary: &str, verbose: u8, rust_log: Option<&str>) -> (String, Option<String>) {
    let crate_name = binary.replace('-', "_");
    let mut directives = vec!["warn".to_owned()];
    let mut substring = None;
    let mut complaint = None;
    if let Some(given) = rust_log.map(str::trim).filter(|v| !v.is_empty()) {
        if env_filter::Builder::new().try_parse(given).is_ok() {
            let (mods, sub) = given.split_once('/').map_or((given, None), |(m, s)| (m, Some(s)));
            substring = sub.map(str::to_owned);
            let ours = |d: &str| {
                let name = d.split('=').next().unwrap_or("").trim();
                name.starts_with(OWN) || name.starts_with(&crate_name)
            };
            directives.extend(mods.split(',').filter(|d| verbose == 0 || !ours(d)).map(str::to_owned));
        } else {
            complaint = Some(format!("ignoring RUST_LOG={given:?}: it is not a log filter"));
        }
    }
    if verbose > 0 {
        let level = [LevelFilter::Info, LevelFilter::Debug, LevelFilter::Trace][usize::from(verbose.min(3) - 1)];
        let level = level.as_str().to_ascii_lowercase();
        directives.push(format!("{OWN}={level}"));
        directives.push(format!("{crate_name}={level}"));
    }
    let mut spec = directives.join(",");
    if let Some(sub) = substring {
        spec.push('/');
        spec.push_str(&sub);
    }
    (spec, complaint)
}

/// Sets up the log of `binary` (`etcd-spot-prune`, …) for `-v` given `verbose` times and `RUST_LOG`.
pub fn init(binary: &str, verbose: u8) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let (spec, complaint) = filter(binary, verbose, rust_log.as_deref());
    let mut builder = env_logger::Builder::new();
    builder.parse_filters(&spec);
    if journald() {
        builder.format(|buf, record| {
            use std::io::Write as _;
            let text = crate::types::scrub(&record.args().to_string()).into_owned();
            writeln!(buf, "<{}>[{:<5} {}] {}", priority(record.level()), record.level(), record.target(), text)
        });
    } else {
        builder.format(|buf, record| {
            use std::io::Write as _;
            let text = crate::types::scrub(&record.args().to_string()).into_owned();
            let style = buf.default_level_style(record.level());
            writeln!(
                buf,
                "[{} {style}{:<5}{style:#} {}] {}",
                buf.timestamp_millis(),
                record.level(),
                record.target(),
                text
            )
        });
    }
    // A second initialisation (a test calling twice) keeps the first logger; nothing to report.
    let _ = builder.try_init();
    if let Some(complaint) = complaint {
        log::warn!("{complaint}");
    }
}

/// Writes `text` to stderr at `level`: under journald each line with its priority prefix, else as it is.
pub fn emit(level: Level, text: &str) {
    let text = crate::types::scrub(text);
    let text = text.as_ref();
    if !journald() {
        crate::console::err(text);
        return;
    }
    let prefix = format!("<{}>", priority(level));
    let mut out = String::with_capacity(text.len() + 8);
    for line in text.lines() {
        out.push_str(&prefix);
        out.push_str(line);
        out.push('\n');
    }
    crate::console::err(&out);
}

#[cfg(test)]
mod tests {
    use super::filter;

    /// `-v` and `RUST_LOG` combine: the flag wins for etcd-spot's modules, `RUST_LOG` rules the others.
    #[test]
    fn verbose_and_rust_log_combine_with_the_flag_winning_for_our_modules() {
        let check = |verbose: u8, rust_log: Option<&str>, want: &str| {
            assert_eq!(filter("etcd-spot-prune", verbose, rust_log).0, want, "-v×{verbose} RUST_LOG={rust_log:?}");
        };
        check(0, None, "warn");
        check(1, None, "warn,etcd_spot_core=info,etcd_spot_prune=info");
        check(2, None, "warn,etcd_spot_core=debug,etcd_spot_prune=debug");
        check(5, None, "warn,etcd_spot_core=trace,etcd_spot_prune=trace");
        check(0, Some("etcd_spot_core=debug"), "warn,etcd_spot_core=debug");
        check(0, Some("debug"), "warn,debug");
        check(
            1,
            Some("ureq=debug,etcd_spot_core::run=trace"),
            "warn,ureq=debug,etcd_spot_core=info,etcd_spot_prune=info",
        );
        check(1, Some("trace/member"), "warn,trace,etcd_spot_core=info,etcd_spot_prune=info/member");
        check(0, Some("  "), "warn");
        let (spec, complaint) = filter("etcd-spot-prune", 0, Some("etcd_spot_core=loud"));
        assert_eq!(spec, "warn");
        assert!(complaint.is_some_and(|c| c.contains("RUST_LOG")));
    }
}
