//! The systemd units and timers of the three binaries, with the sandboxing each one gets.
//!
//! Nothing here may stop `systemctl` from reaching PID 1 (terminate stops etcd with it, discover reloads the
//! unit files with it), and each service may write only where it must.

use super::{ENV_FILE, HEADER, STATE_DIR, UnitOptions};

/// Sandboxing shared by the three services. Nothing here may stop
/// `systemctl` from reaching PID 1 over its private socket (terminate stops
/// etcd with it, discover reloads the unit files with it): so no
/// `PrivateUsers=`, no `PrivateNetwork=`, and `AF_UNIX` stays allowed.
fn hardening(write_paths: &[&str], capabilities: &str, extra: &[&str]) -> String {
    let mut lines = vec![
        "NoNewPrivileges=yes".to_string(),
        "ProtectSystem=strict".into(),
        format!("ReadWritePaths={}", write_paths.join(" ")),
        "StateDirectory=etcd-spot".into(),
        "StateDirectoryMode=0700".into(),
        "ProtectHome=yes".into(),
        "PrivateTmp=yes".into(),
        "PrivateDevices=yes".into(),
        "ProtectKernelTunables=yes".into(),
        "ProtectKernelModules=yes".into(),
        "ProtectKernelLogs=yes".into(),
        "ProtectControlGroups=yes".into(),
        "ProtectClock=yes".into(),
        "ProtectHostname=yes".into(),
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX".into(),
        "RestrictNamespaces=yes".into(),
        "RestrictRealtime=yes".into(),
        "RestrictSUIDSGID=yes".into(),
        "LockPersonality=yes".into(),
        "MemoryDenyWriteExecute=yes".into(),
        "SystemCallArchitectures=native".into(),
        "SystemCallFilter=@system-service".into(),
        "SystemCallErrorNumber=EPERM".into(),
        format!("CapabilityBoundingSet={capabilities}"),
        "UMask=0077".into(),
        "PrivateMounts=yes".into(),
    ];
    lines.extend(extra.iter().map(|l| l.to_string()));
    lines.push(String::new());
    lines.join("\n")
}

/// Reading etcd's data dir (mode 0700, owned by the etcd user) as root needs
/// these; nothing else does.
const DATA_DIR_CAPS: &str = "CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH";

/// Prune never runs `systemctl` and touches no other process or file but
/// its state dir, so it gets the tightest sandbox.
const PRUNE_EXTRA: &[&str] = &["ProtectProc=invisible", "ProcSubset=pid", "SystemCallFilter=~@privileged @resources"];

pub(super) fn discover_service(o: &UnitOptions) -> String {
    let etcd = &o.etcd_unit;
    format!(
        "{HEADER}
# Runs once at boot, before etcd: bootstraps, joins or rejoins the cluster and
# writes etcd's settings as a drop-in for {etcd}, then reloads systemd so
# that etcd starts with them. {etcd} requires this unit (see [Install]): when
# discover refuses, etcd does not start with a wrong configuration.
# A failed run is retried (a fresh group bootstraps only while every instance's
# discover answers the others' boot probe), and etcd is started once it succeeds.
# When etcd ends on its own, its drop-in ({ETCD_DROPIN}) restarts this unit, so a
# member removed while it was down, or whose first start failed over membership,
# goes back through discover without a reboot.
# The data dir must be mounted first: an unmounted volume would look empty.

[Unit]
Description=etcd-spot: bootstrap, join or rejoin the etcd cluster before etcd starts
Wants=network-online.target
After=network-online.target
Before={etcd}
RequiresMountsFor={data}
StartLimitIntervalSec=0

[Service]
Type=oneshot
RemainAfterExit=yes
Restart=on-failure
RestartSec=10s
Environment=ETCD_SPOT_OUTPUT={dropin}
Environment=ETCD_SPOT_DATA_DIR={data}
EnvironmentFile=-{ENV_FILE}
ExecStart={bin}/etcd-spot-discover
ExecStartPost=/usr/bin/systemctl daemon-reload
ExecStartPost=/usr/bin/systemctl start --no-block {etcd}
# discover waits for the group itself (ETCD_SPOT_BOOTSTRAP_TIMEOUT, 600 s by default)
TimeoutStartSec=infinity
{hardening}
[Install]
RequiredBy={etcd}
",
        dropin = o.dropin_path(),
        data = o.data_dir,
        bin = o.bin_dir,
        hardening = hardening(&["/run/systemd/system", o.data_parent(), STATE_DIR], DATA_DIR_CAPS, &[]),
    )
}

/// The file name of the static drop-in for the etcd unit.
pub const ETCD_DROPIN: &str = "20-etcd-spot.conf";

/// What the etcd unit's `ExecStopPost=` runs (through `sh -c`, `$$` for a literal `$`): when etcd ended on its
/// own, discover runs again after a 10 s pause (etcd's own `RestartSec=` on Flatcar), and etcd starts after it.
/// The exit statuses 130, 137 and 143 are a container wrapper's report of a signal death, so a stop.
pub(crate) const REDISCOVER: &str = concat!(
    "case \"$$EXIT_CODE:$$EXIT_STATUS\" in exited:130|exited:137|exited:143) ;; ",
    "exited:*|dumped:*) sleep 10; exec systemctl restart --no-block etcd-spot-discover.service ;; esac"
);

/// The static drop-in for the etcd unit: etcd starts only after discover succeeded, and an etcd that ends on its
/// own goes back through discover.
pub(super) fn etcd_dropin(o: &UnitOptions) -> String {
    let etcd = &o.etcd_unit;
    format!(
        "{HEADER}
# Drop-in for {etcd}: install as /etc/systemd/system/{etcd}.d/{ETCD_DROPIN}.
# etcd starts only after etcd-spot-discover succeeded. An etcd that ends on its
# own goes back through discover: etcd exits 0 (3.5 sometimes 1) when it finds
# its member was removed while it was down, and exits 1 when the membership
# changed between its member add and its first start (etcd 3.4 and 3.5). Discover
# looks again, moves stale data aside or joins afresh, writes the settings and
# starts etcd. A stop (etcd-spot-terminate, a shutdown, an operator) ends etcd
# by a signal and changes nothing: EXIT_CODE is then killed, or a container
# wrapper reports exit status 130, 137 or 143.

[Unit]
Requires=etcd-spot-discover.service
After=etcd-spot-discover.service

[Service]
ExecStopPost=+-/bin/sh -c '{REDISCOVER}'
"
    )
}

pub(super) fn terminate_service(o: &UnitOptions) -> String {
    let etcd = &o.etcd_unit;
    format!(
        "{HEADER}
# Started every 5 seconds by etcd-spot-terminate.timer: on a spot termination
# notice it hands over leadership, removes this member, stops {etcd}
# (with systemctl, so the sandbox below keeps AF_UNIX and the caller's root
# identity) and moves the data dir aside. Without a notice it does nothing.

[Unit]
Description=etcd-spot: deregister this etcd member on a spot termination notice
After=network-online.target
RequiresMountsFor={data}

[Service]
Type=oneshot
Environment=\"ETCD_SPOT_ETCD_STOP_COMMAND=systemctl stop {etcd}\"
Environment=ETCD_SPOT_DATA_DIR={data}
EnvironmentFile=-{ENV_FILE}
ExecStart={bin}/etcd-spot-terminate
# the notice gives two minutes; stopping etcd is part of the job
TimeoutStartSec=110s
{hardening}",
        data = o.data_dir,
        bin = o.bin_dir,
        hardening = hardening(&[&format!("-{}", o.data_dir), STATE_DIR], DATA_DIR_CAPS, &[]),
    )
}

pub(super) fn terminate_timer() -> String {
    format!(
        "{HEADER}

[Unit]
Description=etcd-spot: check for a spot termination notice every 5 seconds

[Timer]
OnActiveSec=5s
OnUnitActiveSec=5s
AccuracySec=1s
Unit=etcd-spot-terminate.service

[Install]
WantedBy=timers.target
"
    )
}

pub(super) fn prune_service(o: &UnitOptions) -> String {
    let etcd = &o.etcd_unit;
    format!(
        "{HEADER}
# Removes members whose instances are gone and promotes caught-up learners.
# Runs right after {etcd} has started ({etcd} wants it, see [Install]),
# then every 60 seconds from etcd-spot-prune.timer.

[Unit]
Description=etcd-spot: remove dead etcd members and promote caught-up learners
After={etcd} network-online.target

[Service]
Type=oneshot
Environment=ETCD_SPOT_DATA_DIR={data}
EnvironmentFile=-{ENV_FILE}
ExecStart={bin}/etcd-spot-prune
TimeoutStartSec=300s
{hardening}
[Install]
WantedBy={etcd}
",
        data = o.data_dir,
        bin = o.bin_dir,
        hardening = hardening(&[STATE_DIR], "", PRUNE_EXTRA),
    )
}

pub(super) fn prune_timer() -> String {
    format!(
        "{HEADER}

[Unit]
Description=etcd-spot: prune dead etcd members every 60 seconds

[Timer]
OnActiveSec=60s
OnUnitActiveSec=60s
RandomizedDelaySec=15s
AccuracySec=1s
Unit=etcd-spot-prune.service

[Install]
WantedBy=timers.target
"
    )
}
