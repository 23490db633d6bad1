//! The example environment file (`deploy/etcd-spot.env`): every setting of the command-line contract
//! (`docs/cli.md`) with its default, commented out; only the token file is set.
//!
//! It must never hold a secret: the Spotinst token is read from a root-only file it names.

use super::{ENV_FILE, HEADER, STATE_DIR, TOKEN_FILE, UnitOptions};

/// The example `EnvironmentFile=`: every setting of `docs/cli.md`, with its
/// default, commented out; only the token file is set.
pub(super) fn env_file(o: &UnitOptions) -> String {
    let etcd = &o.etcd_unit;
    let data = &o.data_dir;
    let parent = o.data_parent();
    let dropin = o.dropin_path();
    format!(
        "{HEADER}
#
# Settings of etcd-spot, read by all three units from {ENV_FILE}
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

# --- all three binaries ---

# --imds-url: base URL of the AWS instance metadata service (IMDSv2).
#ETCD_SPOT_IMDS_URL=http://169.254.169.254

# --spotinst-url: base URL of the Spotinst API.
#ETCD_SPOT_SPOTINST_URL=https://api.spotinst.io

# --spotinst-account: the Spotinst account id (act-…). Default: none.
#SPOTINST_ACCOUNT=act-12345678

# --group-id: the Elastigroup id (sig-…). Default: the instance tag
# spotinst:aws:ec2:group:id (IMDS), else the Spotinst instance record.
#SPOTINST_GROUP_ID=sig-12345678

# --client-port / --peer-port: etcd's ports.
#ETCD_SPOT_CLIENT_PORT=2379
#ETCD_SPOT_PEER_PORT=2380

# --scheme: scheme of etcd's URLs, http or https.
#ETCD_SPOT_SCHEME=http

# --max-voters: most voting members; further instances stay learners (hot standbys).
#ETCD_SPOT_MAX_VOTERS=5

# --data-dir: etcd's data dir. Discover and terminate move a stale one aside
# inside its parent ({parent}), the only place their units let them write
# besides the state dir: after changing it, regenerate the units with
# `cargo xtask units --data-dir PATH --out DIR`.
#ETCD_SPOT_DATA_DIR={data}

# --state-dir: etcd-spot's own state (systemd creates it: StateDirectory=).
#ETCD_SPOT_STATE_DIR={STATE_DIR}

# --timeout: overall timeout of one HTTP request, in seconds.
#ETCD_SPOT_TIMEOUT=5

# -v: log verbosity (error, warn, info, debug, trace). Logs go to the journal.
#RUST_LOG=warn

# --- etcd-spot-discover (boot, before {etcd}) ---

# --output: where discover writes etcd's settings.
#ETCD_SPOT_OUTPUT={dropin}

# --output-format: dropin (a systemd drop-in) or env (an EnvironmentFile).
#ETCD_SPOT_OUTPUT_FORMAT=dropin

# --bootstrap-timeout: seconds to wait for the group to reach its target
# capacity before refusing to bootstrap.
#ETCD_SPOT_BOOTSTRAP_TIMEOUT=600

# --- etcd-spot-terminate (every 5 s from its timer) ---

# --imds-interval / --spotinst-interval: seconds between checks in --watch mode.
#ETCD_SPOT_IMDS_INTERVAL=5
#ETCD_SPOT_SPOTINST_INTERVAL=60

# --etcd-stop-command: how terminate stops etcd after deregistering.
#ETCD_SPOT_ETCD_STOP_COMMAND=systemctl stop {etcd}

# --- etcd-spot-prune (after etcd starts, then every 60 s from its timer) ---

# --unstarted-grace: seconds an added member may stay unstarted before removal.
#ETCD_SPOT_UNSTARTED_GRACE=300
"
    )
}
