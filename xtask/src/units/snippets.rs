//! The deployment snippets that embed the units: the Butane config for Flatcar, the cloud-config for legacy
//! Container Linux (with the script that installs the binaries), and the README of `deploy/`.
//!
//! A snippet must embed the unit files and the environment file verbatim, and must never hold a real secret or
//! checksum: the operator replaces the placeholders.

use super::services::TERMINATE_WATCH;
use super::{
    BINARIES, ENV_FILE, ETCD_DROPIN, ETCD_ENV_FILE, Generated, HEADER, RUNTIME_DIR, STATE_DIR, TOKEN_FILE, UnitOptions,
};

/// The timer variant of termination watching: shipped in the snippets as an option, never enabled by them.
const ONCE_TIMER: &str = "etcd-spot-terminate-once.timer";

/// Whether a snippet enables the unit: every unit with an `[Install]` section but the timer variant, which the
/// watcher replaces.
fn enabled(u: &Generated) -> bool {
    u.contents.contains("\n[Install]\n") && u.name != ONCE_TIMER
}

/// Whether the cloud-config also starts the unit itself (`command: start`): the enabled timers and the watcher.
/// coreos-cloudinit runs after boot has begun; discover and prune come with etcd.
fn started(u: &Generated) -> bool {
    enabled(u) && (u.name.ends_with(".timer") || u.name == TERMINATE_WATCH)
}

/// Indents every non-empty line of `text` by `n` spaces (for YAML block scalars).
pub(super) fn indent(text: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    text.lines().map(|l| if l.is_empty() { String::new() } else { format!("{pad}{l}") }).collect::<Vec<_>>().join("\n")
        + "\n"
}

/// The placeholder an operator replaces with the SHA-256 of one binary.
fn sha_placeholder(binary: &str) -> String {
    format!("@SHA256_{}@", binary.to_uppercase().replace('-', "_"))
}

const PLACEHOLDERS: &str = "# Before use, replace every placeholder:
#   @ETCD_SPOT_BASE_URL@         the URL where you serve the files of `cargo xtask dist`
#                                (target/dist/), without a trailing slash
#   @SHA256_ETCD_SPOT_DISCOVER@, @SHA256_ETCD_SPOT_TERMINATE@, @SHA256_ETCD_SPOT_PRUNE@
#                                the sums from target/dist/SHA256SUMS
#   @SPOTINST_TOKEN@             your Spotinst API token. User data can be read by anything
#                                on the instance that reaches the metadata service: if that
#                                matters, drop this file here and provision
#                                /etc/etcd-spot/spotinst-token (mode 0600, root) another way.
# Also set SPOTINST_ACCOUNT (and SPOTINST_GROUP_ID unless the instance tags are
# visible in the metadata service) in etcd-spot.env below.";

pub(super) fn butane(o: &UnitOptions, units: &[Generated], dropin: &str, env: &str) -> String {
    let mut s = format!(
        "{HEADER}
# Butane config for Flatcar Container Linux: installs the etcd-spot binaries
# into {bin} (checked by SHA-256), its settings, token file and units, and
# enables them together with {etcd}.
{PLACEHOLDERS}
# Then: butane --strict flatcar.bu > config.ign
variant: flatcar
version: 1.0.0
storage:
  directories:
    - path: /etc/etcd-spot
      mode: 0700
  files:
",
        bin = o.bin_dir,
        etcd = o.etcd_unit,
    );
    for b in BINARIES {
        s += &format!(
            "    - path: {bin}/{b}
      mode: 0755
      contents:
        source: \"@ETCD_SPOT_BASE_URL@/{b}\"
        verification:
          hash: \"sha256-{sha}\"
",
            bin = o.bin_dir,
            sha = sha_placeholder(b),
        );
    }
    s += &format!(
        "    - path: {TOKEN_FILE}
      mode: 0600
      contents:
        inline: \"@SPOTINST_TOKEN@\"
    - path: {ENV_FILE}
      mode: 0644
      contents:
        inline: |
{env}systemd:
  units:
    - name: {etcd}
      enabled: true
      dropins:
        - name: {ETCD_DROPIN}
          contents: |
{dropin}",
        env = indent(env, 10),
        etcd = o.etcd_unit,
        dropin = indent(dropin, 12),
    );
    for u in units {
        s += &format!("    - name: {}\n", u.name);
        if enabled(u) {
            s += "      enabled: true\n";
        }
        s += &format!("      contents: |\n{}", indent(&u.contents, 8));
    }
    s
}

/// The script the cloud-config runs to install the binaries: downloads them
/// with curl, checks them with `sha256sum --check`, and renames them into the
/// bin dir; does nothing when the bin dir already holds exactly these files.
fn install_script(o: &UnitOptions) -> String {
    let sums: Vec<String> = BINARIES.iter().map(|b| format!("{}  {b}", sha_placeholder(b))).collect();
    format!(
        "#!/bin/sh
# Installs the etcd-spot binaries into {bin}, verified by SHA-256.
set -eu
base_url=\"@ETCD_SPOT_BASE_URL@\"
bin_dir=\"{bin}\"
sums=\"{sums}\"
mkdir -p \"$bin_dir\"
if (cd \"$bin_dir\" && printf '%s\\n' \"$sums\" | sha256sum --check --status) 2>/dev/null; then
  exit 0
fi
tmp=$(mktemp -d \"$bin_dir/.etcd-spot.XXXXXX\")
trap 'rm -rf \"$tmp\"' EXIT
for name in {names}; do
  curl --fail --silent --show-error --location --retry 5 --output \"$tmp/$name\" \"$base_url/$name\"
done
(cd \"$tmp\" && printf '%s\\n' \"$sums\" | sha256sum --check --strict)
for name in {names}; do
  chmod 0755 \"$tmp/$name\"
  mv -f \"$tmp/$name\" \"$bin_dir/$name\"
done
",
        bin = o.bin_dir,
        sums = sums.join("\n"),
        names = BINARIES.join(" "),
    )
}

pub(super) fn cloud_config(o: &UnitOptions, units: &[Generated], dropin: &str, env: &str) -> String {
    let etcd = &o.etcd_unit;
    let mut s = format!(
        "#cloud-config
{HEADER}
# cloud-config for legacy CoreOS Container Linux: installs the etcd-spot
# binaries into {bin} (checked by SHA-256) before any of its units runs, its
# settings, token file and units, enables them and starts {etcd}.
# Its systemd is older than 245 and refuses Restart= on a oneshot unit, so the
# discover unit here retries in a shell loop instead; every other unit is the
# file of the same name in deploy/.
{PLACEHOLDERS}
write_files:
  - path: {TOKEN_FILE}
    permissions: \"0600\"
    owner: root
    content: \"@SPOTINST_TOKEN@\"
  - path: {ENV_FILE}
    permissions: \"0644\"
    owner: root
    content: |
{env}  - path: /opt/etcd-spot/install
    permissions: \"0700\"
    owner: root
    content: |
{script}coreos:
  units:
    - name: etcd-spot-install.service
      content: |
        [Unit]
        Description=etcd-spot: download and verify the etcd-spot binaries
        Wants=network-online.target
        After=network-online.target

        [Service]
        Type=oneshot
        RemainAfterExit=yes
        ExecStart=/opt/etcd-spot/install
",
        bin = o.bin_dir,
        env = indent(env, 6),
        script = indent(&install_script(o), 6),
    );
    for u in units {
        s += &format!("    - name: {}\n", u.name);
        if enabled(u) {
            s += "      enable: true\n";
        }
        if started(u) {
            s += "      command: start\n";
        }
        s += &format!("      content: |\n{}", indent(&u.contents, 8));
        if u.name.ends_with(".service") {
            s += "      drop-ins:
        - name: 10-install.conf
          content: |
            [Unit]
            Requires=etcd-spot-install.service
            After=etcd-spot-install.service
";
        }
    }
    s += &format!(
        "    - name: {etcd}\n      command: start\n      drop-ins:\n        - name: {ETCD_DROPIN}\n          content: |\n{}",
        indent(dropin, 12)
    );
    s
}

pub(super) fn readme(o: &UnitOptions) -> String {
    let etcd = &o.etcd_unit;
    format!(
        "<!-- Generated by `cargo xtask units` (xtask/src/units/): edit the generator, not this file. -->
# deploy/

What `cargo xtask units` generates for the defaults (etcd unit `{etcd}`,
data dir `{data}`, binaries in `{bin}`); `cargo xtask units --etcd-unit NAME
--data-dir PATH --bin-dir PATH --out DIR` writes a variant elsewhere.
`cargo xtask dist` copies these files next to the static binaries in
`target/dist/`, with their `SHA256SUMS`.

| file | what it is |
|---|---|
| `etcd-spot-discover.service` | oneshot before `{etcd}` (which requires it): bootstrap, join or rejoin; writes etcd's settings to `{ETCD_ENV_FILE}`; a failed run is retried every 10 s, a configuration error (exit 2) is not |
| `{ETCD_DROPIN}` | static drop-in for `{etcd}` (install into `/etc/systemd/system/{etcd}.d/`): etcd reads its settings from `{ETCD_ENV_FILE}`, starts after discover, and an etcd that ends on its own (removed while down, membership changed before its first start) goes back through discover |
| `{TERMINATE_WATCH}` | the default: `etcd-spot-terminate --watch` until it has deregistered this member (`Restart=on-failure`): IMDS every 5 s with one session token, Spotinst at most every 60 s; on a spot termination notice, deregister this member and stop etcd |
| `etcd-spot-terminate-once.service`, `{ONCE_TIMER}` | the alternative: the same check as a one-shot run every 5 s; enable either the timer or the watcher (starting one stops the other) |
| `etcd-spot-prune.service`, `.timer` | right after `{etcd}` starts, then every 60 s (±15 s): remove dead members, promote learners |
| `etcd-spot.env` | the example `{ENV_FILE}`: every setting, commented, with its default |
| `flatcar.bu` | Butane config (variant `flatcar`, 1.0.0) for Flatcar Container Linux (the watcher enabled, the timer variant installed but not enabled) |
| `cloud-config.yaml` | cloud-config for legacy CoreOS Container Linux (the same, with discover's retry as a shell loop: see below) |
| `etcd-spot.rules.yml` | Prometheus alert rules for the metrics the binaries write with `--metrics-dir` (see `docs/metrics.md`) |

Install by hand:

```sh
install -m 0755 etcd-spot-discover etcd-spot-terminate etcd-spot-prune {bin}/
install -d -m 0700 /etc/etcd-spot
install -m 0644 etcd-spot.env {ENV_FILE}
install -m 0600 /dev/stdin {TOKEN_FILE}   # paste the Spotinst token, then Ctrl-D
cp etcd-spot-*.service etcd-spot-*.timer /etc/systemd/system/
install -D -m 0644 {ETCD_DROPIN} /etc/systemd/system/{etcd}.d/{ETCD_DROPIN}
systemctl daemon-reload
systemctl enable etcd-spot-discover.service etcd-spot-prune.service \\
  {TERMINATE_WATCH} etcd-spot-prune.timer
systemctl start {TERMINATE_WATCH} etcd-spot-prune.timer
```

To use the timer variant instead of the watcher:
`systemctl disable --now {TERMINATE_WATCH} && systemctl enable --now {ONCE_TIMER}`.
The watcher costs one resident process (a few MB) and keeps one IMDS session
token; the timer starts a process every 5 s, asks IMDS for a new token each time
and writes a journal entry per run. `cargo xtask bench --only watch-cost`
measures both (`docs/performance.md`).

**How etcd gets its settings.** Discover writes them as an environment file,
`{ETCD_ENV_FILE}` (`ETCD_SPOT_OUTPUT` and `ETCD_SPOT_OUTPUT_FORMAT=env` in its
unit; the binary's own default, a drop-in under `/run/systemd/system`, is kept
for those who run it from their own units), and the static drop-in
`{ETCD_DROPIN}` reads it with `EnvironmentFile=`, as afterburn hands its
metadata to other units. systemd reads the file at every start of etcd, so no
`daemon-reload` runs at boot and discover needs no write access to
`/run/systemd`. `{RUNTIME_DIR}` is discover's `RuntimeDirectory=` (mode 0700:
systemd reads the file as root before starting etcd as its own user) with
`RuntimeDirectoryPreserve=yes`: the file is etcd's configuration, so it stays
when discover's unit stops or restarts, until the next boot empties `/run`. A
missing file fails etcd's start instead of starting it without its settings.

**Legacy Container Linux.** Its systemd is older than 245, which refuses
`Restart=` on a `Type=oneshot` unit: the unit does not load, and etcd, which
requires it, never starts. So the cloud-config's discover unit has no `Restart=`
and runs discover in a shell loop instead:

```sh
while :; do {bin}/etcd-spot-discover && exit 0; [ $? -eq 2 ] && exit 2; sleep 10; done
```

The unit is still a oneshot, so etcd starts only after the run that succeeded;
failed runs are retried 10 s apart, and a configuration error (exit 2) ends the
unit as failed. A timer or an `OnFailure=` unit would retry too, but etcd's
start job would already have failed with the first run, and there would be two
units to keep in step.

The token is read from `{TOKEN_FILE}` (root only, named by
`ETCD_SPOT_SPOTINST_TOKEN_FILE`), never from a command line. The units are
sandboxed (`ProtectSystem=strict`; they may write only the data dir's parent
`{parent}` (discover, which creates the data dir on a first boot), `{RUNTIME_DIR}`
(discover), the data dir `{data}` (terminate, which moves stale contents aside
inside it, so the data dir may be a mount point) and `{STATE_DIR}`). Units use
keys of systemd 245 and later; the older systemd of legacy Container Linux
ignores the few it does not know, with a warning.
",
        data = o.data_dir,
        bin = o.bin_dir,
        parent = o.data_parent(),
    )
}
