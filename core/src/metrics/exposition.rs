//! Prometheus' text exposition format, written by hand, and the textfile it goes into.
//!
//! Written by hand because no crate in `Cargo.lock` writes the format, and what etcd-spot needs is small: gauges
//! and counters with `# HELP` and `# TYPE` lines, label values escaped, one family's samples together. The file is
//! written the way node_exporter's textfile collector expects: a temporary file in the same directory (named so
//! the collector, which reads only `*.prom`, never sees it), mode 0644, then a rename. Nothing here decides what a
//! value is; it must never write a sample without its family's `# TYPE` line.

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A metric's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Gauge,
    Counter,
}

/// One metric family: its name, help, type and samples (label pairs and value).
#[derive(Debug, Clone)]
pub(crate) struct Family {
    pub(crate) name: &'static str,
    pub(crate) help: &'static str,
    pub(crate) kind: Kind,
    pub(crate) samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

impl Family {
    pub(crate) fn new(name: &'static str, kind: Kind, help: &'static str) -> Family {
        Family { name, help, kind, samples: Vec::new() }
    }

    /// Adds one sample with `labels`.
    pub(crate) fn sample(mut self, labels: &[(&'static str, &str)], value: f64) -> Family {
        self.samples.push((labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(), value));
        self
    }
}

/// Renders families in order; a family without samples is left out entirely (no lone `# TYPE`).
pub(crate) fn render(families: &[Family], common: &[(&'static str, &str)]) -> String {
    let mut out = String::new();
    for f in families.iter().filter(|f| !f.samples.is_empty()) {
        let kind = match f.kind {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        };
        let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(f.help));
        let _ = writeln!(out, "# TYPE {} {kind}", f.name);
        for (labels, value) in &f.samples {
            let all: Vec<String> = common
                .iter()
                .map(|(k, v)| (*k, *v))
                .chain(labels.iter().map(|(k, v)| (*k, v.as_str())))
                .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                .collect();
            let labels = if all.is_empty() { String::new() } else { format!("{{{}}}", all.join(",")) };
            let _ = writeln!(out, "{}{labels} {}", f.name, number(*value));
        }
    }
    out
}

/// A sample value as the format writes it: integers without a fraction, `NaN` and infinities by name.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// The textfile of `binary` (`etcd-spot-prune`) in `dir`.
pub(crate) fn path(dir: &Path, binary: &str) -> PathBuf {
    dir.join(format!("{binary}.prom"))
}

/// Writes `text` to `path` atomically with mode 0644: a hidden temporary file beside it (not `*.prom`), fsync,
/// rename. The directory must exist: creating it is the operator's (it must be node_exporter's textfile dir). The
/// temporary files of runs killed before their rename are removed first, as `write_atomic` does.
pub(crate) fn write(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    crate::run::output::remove_leftovers(dir, &name);
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o644).open(&tmp)?;
        // The umask may have taken bits away; node_exporter runs as another user and must read the file.
        file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_render_with_help_type_and_escaped_labels() {
        let families = [
            Family::new("etcd_spot_x_total", Kind::Counter, "A count.").sample(&[("route", "a\"b\\c")], 3.0),
            Family::new("etcd_spot_empty", Kind::Gauge, "Never shown."),
            Family::new("etcd_spot_y_seconds", Kind::Gauge, "A time.").sample(&[], 1.5),
        ];
        let text = render(&families, &[("binary", "prune")]);
        assert_eq!(
            text,
            "# HELP etcd_spot_x_total A count.\n# TYPE etcd_spot_x_total counter\n\
             etcd_spot_x_total{binary=\"prune\",route=\"a\\\"b\\\\c\"} 3\n\
             # HELP etcd_spot_y_seconds A time.\n# TYPE etcd_spot_y_seconds gauge\n\
             etcd_spot_y_seconds{binary=\"prune\"} 1.5\n"
        );
    }

    #[test]
    fn the_textfile_is_replaced_whole_and_readable_by_others() {
        let dir = std::env::temp_dir().join(format!("etcd-spot-exposition-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = path(&dir, "etcd-spot-prune");
        write(&p, "a 1\n").unwrap();
        // A run killed between writing its temporary file and the rename left it behind; the next write removes it.
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        let dead = gone.id();
        gone.wait().unwrap();
        std::fs::write(dir.join(format!(".etcd-spot-prune.prom.tmp-{dead}")), "half").unwrap();
        write(&p, "b 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "b 2\n");
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o644);
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("etcd-spot-prune.prom")], "no temporary file is left");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
