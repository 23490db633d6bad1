//! The example environment file (`deploy/etcd-spot.env`), written from the settings table in core
//! (`etcd_spot_core::settings::SETTINGS`): every setting with an environment variable, its help line and its
//! default, commented out; only the token file is set. A setting added to the table appears here by itself.
//!
//! It must never hold a secret: the Spotinst token is read from a root-only file it names.

use etcd_spot_core::settings::{SETTINGS, Scope, Spec};

use super::{ENV_FILE, ETCD_DROPIN, ETCD_ENV_FILE, HEADER, STATE_DIR, TOKEN_FILE, UnitOptions};

/// The sections of the file, in order: which binaries' settings each holds and its heading. A section without
/// a setting to show is left out.
fn sections(o: &UnitOptions) -> Vec<(Scope, String)> {
    let all = [
        (Scope::All, "all three binaries".to_owned()),
        (Scope::Discover, format!("etcd-spot-discover (boot, before {})", o.etcd_unit)),
        (Scope::DiscoverAndPrune, "etcd-spot-discover and etcd-spot-prune".to_owned()),
        (Scope::DiscoverAndTerminate, "etcd-spot-discover and etcd-spot-terminate".to_owned()),
        (Scope::Terminate, "etcd-spot-terminate (the --watch service, or every 5 s from its timer)".to_owned()),
        (Scope::Prune, "etcd-spot-prune (after etcd starts, then every 60 s from its timer)".to_owned()),
    ];
    all.into_iter().filter(|(scope, _)| SETTINGS.iter().any(|s| s.scope == *scope && shown(s))).collect()
}

/// Whether a row gets a line: it has a variable, and it is not the token file (set at the top).
fn shown(s: &Spec) -> bool {
    !s.env.is_empty() && s.flag != "--spotinst-token-file"
}

/// The value shown for a row: the table's default, adjusted to these units' options, or an example.
fn value(s: &Spec, o: &UnitOptions) -> String {
    match s.flag {
        "--data-dir" => o.data_dir.clone(),
        "--state-dir" => STATE_DIR.to_owned(),
        "--output" => ETCD_ENV_FILE.to_owned(),
        "--output-format" => "env".to_owned(),
        "--etcd-stop-command" => format!("systemctl stop {}", o.etcd_unit),
        "--spotinst-account" => "act-12345678".to_owned(),
        "--group-id" => "sig-12345678".to_owned(),
        "--verbose" => "warn".to_owned(),
        _ => s.default.to_owned(),
    }
}

/// What a row's comment adds to its help line for an operator editing this file.
fn note(s: &Spec, o: &UnitOptions) -> Option<String> {
    match s.flag {
        "--data-dir" => Some(format!(
            "Discover and terminate move stale contents aside inside it (etcd-spot-stale-<time>/), so it may be a \
             mount point; discover may also create it inside its parent ({}). Their units may write only there \
             besides the state dir: after changing it, regenerate the units with `cargo xtask units --data-dir \
             PATH --out DIR`.",
            o.data_parent()
        )),
        "--state-dir" => Some("systemd creates it (StateDirectory=).".to_owned()),
        "--output" | "--output-format" => Some(format!(
            "The value shown is what discover's unit sets (the binary's own default is a systemd drop-in \
             under /run/systemd/system): {}'s drop-in {ETCD_DROPIN} reads {ETCD_ENV_FILE}, so change both \
             together.",
            o.etcd_unit
        )),
        "--verbose" => Some("RUST_LOG takes a log filter: error, warn, info, debug, trace.".to_owned()),
        "--spotinst-account" | "--group-id" => Some("The value shown is an example.".to_owned()),
        _ => None,
    }
}

/// `text` as `# ` comment lines of at most 78 columns.
fn comment(text: &str) -> String {
    let mut out = String::new();
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() + 1 + word.len() > 78 && line.len() > 1 {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
    out
}

/// The example `EnvironmentFile=`: every setting of the table with its default, commented out; only the token
/// file is set.
pub(super) fn env_file(o: &UnitOptions) -> String {
    let mut out = format!(
        "{HEADER}
#
# Settings of etcd-spot, read by every etcd-spot unit from {ENV_FILE}
# (systemd EnvironmentFile= syntax: KEY=value, no `export`, no quotes needed).
# Every setting is also a command-line flag; a flag wins over this file.
# Commented lines show the default.

# The Spotinst API token lives in a file readable by root only, never here and
# never on a command line (it would show in `ps`):
#   install -d -m 0700 /etc/etcd-spot
#   install -m 0600 /dev/stdin {TOKEN_FILE}    (paste the token, then Ctrl-D)
# --spotinst-token-file. SPOTINST_TOKEN (the token itself) also works, but
# prefer the file.
ETCD_SPOT_SPOTINST_TOKEN_FILE={TOKEN_FILE}
"
    );
    for (scope, heading) in sections(o) {
        out.push_str(&format!("\n# --- {heading} ---\n"));
        for s in SETTINGS.iter().filter(|s| s.scope == scope && shown(s)) {
            let flag = if s.flag == "--verbose" { "-v" } else { s.flag };
            let mut text = format!("{flag}: {}.", s.help);
            if let Some(n) = note(s, o) {
                text.push(' ');
                text.push_str(&n);
            }
            out.push('\n');
            out.push_str(&comment(&text));
            out.push_str(&format!("#{}={}\n", s.env, value(s, o)));
        }
    }
    out
}
