//! The command line of the three binaries before anything is resolved: `--help` (or `-h`) and `--version`, which
//! end the run with 0, and usage errors (an unknown flag, a missing value, an argument that is not UTF-8), which
//! end it with 2 and, when the report is wanted as JSON, hand the parser's message to the caller for that report.
//! Nothing here reads a setting's value or prints anything but through [`crate::console`].

use super::{Env, Flags, setting};
use crate::console;
/// Why the command line ended the run before resolving: the exit code, and for a usage error whose report is
/// wanted as JSON (`--json` among the words before a `--`, or `ETCD_SPOT_JSON` on) the parser's message, so that
/// the caller prints that report on stdout ([`crate::report::command_line`]).
#[derive(Debug)]
pub struct Early {
    pub code: std::process::ExitCode,
    pub json_usage_error: Option<String>,
}

impl Early {
    fn done(code: std::process::ExitCode) -> Early {
        Early { code, json_usage_error: None }
    }
}

/// The binary's flags from its command line. `--help` prints the usage on stdout and `--version` the binary's
/// name and version, and each ends the run with 0; a usage error (an unknown flag, a missing value, an argument
/// that is not UTF-8) prints what was wrong and ends it with 2, the documented code for bad usage (argh's own
/// `from_env` would end it with 1, the code for "retry later"). Nothing printed here panics on a closed or full
/// output ([`crate::console`]).
pub fn from_command_line<T: Flags>(env: Env<'_>) -> std::result::Result<T, Early> {
    let mut words = std::env::args_os();
    let command = words.next().and_then(|a| {
        let path = std::path::PathBuf::from(a);
        path.file_name().and_then(|n| n.to_str()).map(str::to_owned)
    });
    let command = command.unwrap_or_else(|| "etcd-spot".to_owned());
    let words: Vec<std::ffi::OsString> = words.collect();
    let json = words.iter().take_while(|w| *w != "--").any(|w| w == "--json")
        || setting("--json", None, env).switch(false).unwrap_or(false);
    let args: Option<Vec<String>> = words.into_iter().map(|w| w.into_string().ok()).collect();
    let Some(args) = args else {
        let message = "an argument is not valid UTF-8";
        console::err(&format!("{command}: {message}\nRun {command} --help for more information.\n"));
        return Err(Early {
            code: std::process::ExitCode::from(2),
            json_usage_error: json.then(|| message.to_owned()),
        });
    };
    let flags: T = parse_args(&command, &args)
        .map_err(|(code, message)| Early { code, json_usage_error: message.filter(|_| json) })?;
    if flags.version() {
        console::out(&version_line::<T>());
        return Err(Early::done(std::process::ExitCode::SUCCESS));
    }
    Ok(flags)
}

/// What `--version` prints: `etcd-spot-prune 0.1.0` and a newline.
pub fn version_line<T: Flags>() -> String {
    format!("{} {}\n", T::BINARY, env!("CARGO_PKG_VERSION"))
}

/// [`from_command_line`] on given words: the flags, else the exit code and, for a usage error, its message.
pub(super) fn parse_args<T: argh::FromArgs>(
    command: &str,
    args: &[String],
) -> std::result::Result<T, (std::process::ExitCode, Option<String>)> {
    let args = split_verbose(args);
    match T::from_args(&[command], &args) {
        Ok(parsed) => Ok(parsed),
        Err(argh::EarlyExit { output, status: Ok(()) }) => {
            console::out(&format!("{output}\n"));
            Err((std::process::ExitCode::SUCCESS, None))
        }
        Err(argh::EarlyExit { output, status: Err(()) }) => {
            console::err(&format!("{output}\nRun {command} --help for more information.\n"));
            Err((std::process::ExitCode::from(2), Some(output.trim().to_owned())))
        }
    }
}

/// The words with `-vv` and `-vvv` spelled out as `-v -v` and `-v -v -v` (argh takes one short flag per word) and
/// `-h` as `--help` (argh knows only `--help`), up to a `--`, after which every word is a value.
fn split_verbose(args: &[String]) -> Vec<&str> {
    let mut words = Vec::with_capacity(args.len());
    let mut values_only = false;
    for word in args {
        values_only |= word == "--";
        match word.strip_prefix('-') {
            Some(vs) if !values_only && vs.len() > 1 && vs.bytes().all(|b| b == b'v') => {
                words.extend(std::iter::repeat_n("-v", vs.len()));
            }
            Some("h") if !values_only => words.push("--help"),
            _ => words.push(word.as_str()),
        }
    }
    words
}
