//! etcd's settings as discover writes them: a systemd drop-in or a plain
//! environment file, written atomically.
//!
//! Values are quoted so systemd parses them back exactly; a value that
//! cannot be represented (a newline or a control character) is an error,
//! never a silently altered file.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};
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

/// Writes a file atomically: a temporary file in the same directory, fsync,
/// rename, then fsync of the directory. Creates the directory if needed.
pub(crate) fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
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
    let probe = dir.join(format!(".{name}.probe-{}", std::process::id()));
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
}
