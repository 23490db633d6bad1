//! etcd's settings as discover writes them: a systemd drop-in or a plain
//! environment file, written atomically.
//!
//! Values are quoted so systemd parses them back exactly; a value that
//! cannot be represented (a newline or a control character) is an error,
//! never a silently altered file.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};
use crate::failpoint::{self, Failpoint};
use crate::types::OutputFormat;

/// Renders `KEY=value` pairs in the given format.
pub(crate) fn render(vars: &[(String, String)], format: OutputFormat) -> Result<String> {
    let mut out = String::from("# Written by etcd-spot-discover; rewritten at every boot.\n");
    if format == OutputFormat::Dropin {
        out.push_str("[Service]\n");
    }
    for (key, value) in vars {
        if !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') || value.chars().any(char::is_control) {
            return Err(Error::Refused { reason: format!("cannot write {key}: the value holds control characters") });
        }
        match format {
            // systemd unquotes `"…"` with C escapes and expands `%` specifiers, so `\`, `"` and `%` are escaped.
            OutputFormat::Dropin => {
                let escaped = value.replace('\\', "\\\\").replace('"', "\\\"").replace('%', "%%");
                out.push_str(&format!("Environment=\"{key}={escaped}\"\n"));
            }
            OutputFormat::Env => {
                let escaped = value.replace('\\', "\\\\").replace('"', "\\\"").replace('$', "\\$").replace('`', "\\`");
                out.push_str(&format!("{key}=\"{escaped}\"\n"));
            }
        }
    }
    Ok(out)
}

/// Writes a file atomically: a temporary file in the same directory, fsync, rename, then fsync of the directory.
/// Creates the directory if needed. Temporary files of the same target that a killed run left behind are removed
/// first ([`remove_leftovers`]).
pub(crate) fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    write(path, contents, None)
}

/// Writes etcd's settings (discover's `--output`): [`write_atomic`], with the `mid-output-write` failpoint between
/// the synced temporary file and its rename.
pub(crate) fn write_settings(path: &Path, contents: &[u8]) -> Result<()> {
    write(path, contents, Some(Failpoint::MidOutputWrite))
}

fn write(path: &Path, contents: &[u8], point: Option<Failpoint>) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    remove_leftovers(dir, &name);
    let tmp = dir.join(format!(".{name}{TMP}{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        if let Some(point) = point {
            failpoint::hit(point);
        }
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// What follows `.<name>` in the temporary files of [`write_atomic`] and the probes of [`check_writable`], before
/// the writer's process ID.
const TMP: &str = ".tmp-";
const PROBE: &str = ".probe-";

/// Removes the temporary files and probes of target `name` in `dir` whose writer is gone: `.<name>.tmp-<pid>` and
/// `.<name>.probe-<pid>` with a process ID that is not this process's and names no running process (a run killed
/// between writing and renaming leaves its file behind). Another process writing the same file at this moment
/// (a state file prune and the watcher share) is running, so its file stays. Best effort: a file that cannot be
/// removed is said at debug and left. The liveness check sees this PID namespace only: a writer in another one
/// sharing the folder (say a container writing the same metrics textfile) would look gone, lose its temporary file
/// and fail its rename, reporting an I/O error that its next run repairs. No unit shipped here shares a folder so.
pub(crate) fn remove_leftovers(dir: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let prefix = format!(".{name}");
    for entry in entries.filter_map(std::result::Result::ok) {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file.strip_prefix(&prefix) else { continue };
        let Some(pid) = rest.strip_prefix(TMP).or_else(|| rest.strip_prefix(PROBE)) else { continue };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if pid == std::process::id() || running(pid) {
            continue;
        }
        match std::fs::remove_file(entry.path()) {
            Ok(()) => log::info!("removed {}, left behind by an earlier run that was killed", entry.path().display()),
            Err(e) => log::debug!("cannot remove {} ({e}); leaving it", entry.path().display()),
        }
    }
}

/// Whether process `pid` runs (or cannot be told apart from one that does: a process of another user).
fn running(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) else { return false };
    !matches!(rustix::process::test_kill_process(pid), Err(rustix::io::Errno::SRCH))
}

/// Whether [`write_atomic`] could write `path`: its directory exists or can be created, and a temporary file can
/// be created in it and removed. Asked before discover's first action, so that a path that cannot be written
/// refuses the run before a membership change (an added member whose etcd never starts); the refusal says what to
/// fix. Writes nothing else (a directory it had to create stays, as `write_atomic` would create it anyway).
pub(crate) fn check_writable(path: &Path) -> Result<()> {
    let refuse = |what: String| Error::Refused {
        reason: format!(
            "cannot write etcd's settings to {} (--output, ETCD_SPOT_OUTPUT): {what}; checked before any change, \
             nothing was changed: fix the path or its directory's permissions and run again",
            path.display()
        ),
    };
    if path.is_dir() {
        return Err(refuse("it is a directory".into()));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|e| refuse(format!("cannot create its directory {}: {e}", dir.display())))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let probe = dir.join(format!(".{name}{PROBE}{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| refuse(format!("cannot create a file in {}: {e}", dir.display())))?;
    std::fs::remove_file(&probe).map_err(|e| refuse(format!("cannot remove {}: {e}", probe.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_that_cannot_be_written_is_refused_before_writing() {
        let dir = std::env::temp_dir().join(format!("etcd-spot-check-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("regular");
        std::fs::write(&file, "x").unwrap();
        // Under a regular file, a directory, a read-only directory: refused, naming the flag.
        for bad in [file.join("etcd.env"), dir.clone()] {
            let e = check_writable(&bad).unwrap_err().to_string();
            assert!(e.contains("--output") && e.contains("nothing was changed"), "{e}");
        }
        // A missing directory is created; the probe leaves nothing behind.
        let fine = dir.join("sub/etcd.env");
        check_writable(&fine).unwrap();
        assert_eq!(std::fs::read_dir(dir.join("sub")).unwrap().count(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dropin_and_env_quoting() {
        let vars =
            vec![("ETCD_NAME".to_string(), "i-1".to_string()), ("ETCD_X".to_string(), r#"a "b" \c 100%"#.to_string())];
        assert_eq!(
            render(&vars, OutputFormat::Dropin).unwrap(),
            "# Written by etcd-spot-discover; rewritten at every boot.\n[Service]\nEnvironment=\"ETCD_NAME=i-1\"\n\
             Environment=\"ETCD_X=a \\\"b\\\" \\\\c 100%%\"\n"
        );
        assert_eq!(
            render(&vars, OutputFormat::Env).unwrap(),
            "# Written by etcd-spot-discover; rewritten at every boot.\nETCD_NAME=\"i-1\"\nETCD_X=\"a \\\"b\\\" \\\\c 100%\"\n"
        );
        assert!(render(&[("ETCD_X".into(), "a\nb".into())], OutputFormat::Env).is_err());
    }

    #[test]
    fn write_atomic_creates_the_directory_and_replaces() {
        let dir = std::env::temp_dir().join(format!("etcd-spot-out-{}", std::process::id()));
        let path = dir.join("a/b/out.conf");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two");
        assert_eq!(std::fs::read_dir(path.parent().unwrap()).unwrap().count(), 1, "no temporary file left");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A run killed between writing its temporary file and renaming it (the `mid-output-write` failpoint) left
    /// `.<name>.tmp-<pid>` behind, and nothing removed it: every killed run added one. The next write removes the
    /// leftovers of its own target whose writer is gone, and nothing else.
    #[test]
    fn leftover_temporary_files_of_killed_runs_are_removed() {
        let dir = std::env::temp_dir().join(format!("etcd-spot-leftovers-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        let dead = gone.id();
        gone.wait().unwrap();
        let mut live = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let names = |dir: &Path| {
            let mut n: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            n.sort();
            n
        };
        let left = [
            format!(".out.conf.tmp-{dead}"),
            format!(".out.conf.probe-{dead}"),
            format!(".out.conf.tmp-{}", live.id()),
            format!(".other.conf.tmp-{dead}"),
            ".out.conf.tmp-x".to_owned(),
            format!(".out.conf.old.tmp-{dead}"),
        ];
        for name in &left {
            std::fs::write(dir.join(name), "half").unwrap();
        }
        write_atomic(&dir.join("out.conf"), b"new").unwrap();
        let mut kept = vec![
            format!(".out.conf.tmp-{}", live.id()),
            format!(".other.conf.tmp-{dead}"),
            ".out.conf.tmp-x".to_owned(),
            format!(".out.conf.old.tmp-{dead}"),
            "out.conf".to_owned(),
        ];
        kept.sort();
        assert_eq!(names(&dir), kept, "only the dead writer's files of this target go");
        live.kill().unwrap();
        live.wait().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
