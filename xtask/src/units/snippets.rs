//! The deployment snippets that embed the units: the Butane config for Flatcar, the cloud-config for legacy
//! Container Linux (with the script that installs the binaries), and the README of `deploy/`.
//!
//! A snippet must embed the unit files and the environment file verbatim, and must never hold a real secret or
//! checksum: the operator replaces the placeholders.

use super::{BINARIES, ENV_FILE, ETCD_DROPIN, Generated, HEADER, STATE_DIR, TOKEN_FILE, UnitOptions};

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
        if u.name.ends_with(".timer") || u.contents.contains("\n[Install]\n") {
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
        if u.name.ends_with(".timer") || u.contents.contains("\n[Install]\n") {
            s += "      enable: true\n";
        }
        if u.name.ends_with(".timer") {
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
| `etcd-spot-discover.service` | oneshot before `{etcd}` (which requires it): bootstrap, join or rejoin; writes etcd's drop-in and reloads systemd |
| `{ETCD_DROPIN}` | static drop-in for `{etcd}` (install into `/etc/systemd/system/{etcd}.d/`): etcd starts after discover, and an etcd that ends on its own (removed while down, membership changed before its first start) goes back through discover |
| `etcd-spot-terminate.service`, `.timer` | every 5 s: on a spot termination notice, deregister this member and stop etcd |
| `etcd-spot-prune.service`, `.timer` | right after `{etcd}` starts, then every 60 s (±15 s): remove dead members, promote learners |
| `etcd-spot.env` | the example `{ENV_FILE}`: every setting, commented, with its default |
| `flatcar.bu` | Butane config (variant `flatcar`, 1.0.0) for Flatcar Container Linux |
| `cloud-config.yaml` | cloud-config for legacy CoreOS Container Linux |
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
  etcd-spot-terminate.timer etcd-spot-prune.timer
systemctl start etcd-spot-terminate.timer etcd-spot-prune.timer
```

The token is read from `{TOKEN_FILE}` (root only, named by
`ETCD_SPOT_SPOTINST_TOKEN_FILE`), never from a command line. The units are
sandboxed (`ProtectSystem=strict`; they may write only the systemd runtime
folder (discover), the data dir's parent `{parent}` (discover, which creates the
data dir on a first boot), the data dir `{data}` (terminate, which moves stale
contents aside inside it, so the data dir may be a mount point) and
`{STATE_DIR}`). Units use keys of
systemd 245 and later; the older systemd of legacy Container Linux ignores the
few it does not know, with a warning.
",
        data = o.data_dir,
        bin = o.bin_dir,
        parent = o.data_parent(),
    )
}
