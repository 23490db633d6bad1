//! The systemd units and timers of the three binaries, with the sandboxing each one gets.
//!
//! Nothing here may stop `systemctl` from reaching PID 1 (terminate stops etcd with it, discover starts etcd with
//! it), each service may write only where it must, and no unit may need a systemd newer than legacy Container
//! Linux's where the cloud-config carries it (see [`Retry`]).

use super::{ENV_FILE, ETCD_ENV_FILE, HEADER, RUNTIME_DIR, STATE_DIR, UnitOptions};

/// Sandboxing shared by the services. Nothing here may stop
/// `systemctl` from reaching PID 1 over its private socket (terminate stops
/// etcd with it, discover starts etcd with it): so no
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

/// How discover's unit retries a failed run. systemd refuses `Restart=` on a `Type=oneshot` unit before
/// version 245 (the unit does not load at all), and legacy Container Linux runs an older one; the loop keeps the
/// oneshot's ordering (etcd waits for the run that succeeds) and the same pause and exit-2 rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// `Restart=on-failure`, `RestartSec=10s`, `RestartPreventExitStatus=2` (systemd 245 and later).
    Restart,
    /// A shell loop around discover in `ExecStart=`, for systemd before 245.
    Loop,
}

pub(super) fn discover_service(o: &UnitOptions, retry: Retry) -> String {
    let etcd = &o.etcd_unit;
    let bin = &o.bin_dir;
    let (restart, exec) = match retry {
        Retry::Restart => (
            "Restart=on-failure\n\
             RestartSec=10s\n\
             # exit status 2 is a configuration error: running again cannot fix it\n\
             RestartPreventExitStatus=2\n"
                .to_owned(),
            format!("ExecStart={bin}/etcd-spot-discover"),
        ),
        Retry::Loop => (
            "# systemd before 245 refuses Restart= on a oneshot unit (it would not load, and etcd\n\
             # never start): the loop below retries instead, 10 s apart, but not a configuration\n\
             # error (exit status 2); etcd waits for the run that succeeds.\n"
                .to_owned(),
            format!(
                "ExecStart=/bin/sh -c 'while :; do {bin}/etcd-spot-discover && exit 0; [ $$? -eq 2 ] && exit 2; \
                 sleep 10; done'"
            ),
        ),
    };
    format!(
        "{HEADER}
# Runs once at boot, before etcd: bootstraps, joins or rejoins the cluster and
# writes etcd's settings as an environment file ({ETCD_ENV_FILE}), which
# {etcd} reads through its static drop-in ({ETCD_DROPIN}): no daemon-reload,
# and no write access to /run/systemd. {etcd} requires this unit (see [Install]):
# when discover refuses, etcd does not start with a wrong configuration.
# A failed run is retried (a fresh group bootstraps only while every instance's
# discover answers the others' boot probe), and etcd is started once it succeeds.
# When etcd ends on its own, its drop-in restarts this unit, so a member removed
# while it was down, or whose first start failed over membership, goes back
# through discover without a reboot.
# The data dir must be mounted first: an unmounted volume would look empty.
# {runtime} is kept when this unit stops (RuntimeDirectoryPreserve=yes): the file
# is etcd's configuration for as long as etcd may start from it; /run is emptied
# at every boot, before discover writes it again.

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
{restart}Environment=ETCD_SPOT_OUTPUT={ETCD_ENV_FILE}
Environment=ETCD_SPOT_OUTPUT_FORMAT=env
Environment=ETCD_SPOT_DATA_DIR={data}
EnvironmentFile=-{ENV_FILE}
{exec}
ExecStartPost=/usr/bin/systemctl start --no-block {etcd}
# discover waits for the group itself (ETCD_SPOT_BOOTSTRAP_TIMEOUT, 600 s by default)
TimeoutStartSec=infinity
RuntimeDirectory=etcd-spot
RuntimeDirectoryMode=0700
RuntimeDirectoryPreserve=yes
{hardening}
[Install]
RequiredBy={etcd}
",
        runtime = RUNTIME_DIR,
        data = o.data_dir,
        hardening = hardening(&[o.data_parent(), STATE_DIR], DATA_DIR_CAPS, &[]),
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
# etcd's settings are the environment file discover writes ({ETCD_ENV_FILE}):
# systemd reads it at every start of etcd, so no daemon-reload is needed, and a
# missing file (discover never succeeded) fails the start rather than starting
# etcd without them.

[Unit]
Requires=etcd-spot-discover.service
After=etcd-spot-discover.service

[Service]
EnvironmentFile={ETCD_ENV_FILE}
ExecStopPost=+-/bin/sh -c '{REDISCOVER}'
"
    )
}

/// The lines the two terminate services share: what they may write and how they stop etcd.
fn terminate_common(o: &UnitOptions) -> String {
    format!(
        "Environment=\"ETCD_SPOT_ETCD_STOP_COMMAND=systemctl stop {etcd}\"
Environment=ETCD_SPOT_DATA_DIR={data}
EnvironmentFile=-{ENV_FILE}",
        etcd = o.etcd_unit,
        data = o.data_dir,
    )
}

/// The hardening of both terminate services: the data dir only (it may be a mount point: stale contents move
/// aside inside it) and the state dir.
fn terminate_hardening(o: &UnitOptions) -> String {
    hardening(&[&format!("-{}", o.data_dir), STATE_DIR], DATA_DIR_CAPS, &[])
}

/// The name of the terminate watcher's unit; the timer variant's service and timer are `…-once.service` and
/// `…-once.timer`.
pub(crate) const TERMINATE_WATCH: &str = "etcd-spot-terminate.service";

/// The long-running watcher (the default): `etcd-spot-terminate --watch` for the instance's whole life.
pub(super) fn terminate_watch_service(o: &UnitOptions) -> String {
    let etcd = &o.etcd_unit;
    format!(
        "{HEADER}
# Watches for a spot termination notice for the instance's whole life: IMDS
# every 5 s (ETCD_SPOT_IMDS_INTERVAL) with one session token kept across polls,
# Spotinst at most every 60 s (ETCD_SPOT_SPOTINST_INTERVAL). On a notice it hands
# over leadership, removes this member, stops {etcd} (with systemctl,
# so the sandbox below keeps AF_UNIX and the caller's root identity) and moves the
# data dir aside. The alternative is etcd-spot-terminate-once.timer (a one-shot
# check every 5 s): enable one of the two; starting either stops the other.
# It exits 0 once this member is deregistered: its work on this instance is done
# (a later boot starts it again), so only a failure or a crash restarts it.

[Unit]
Description=etcd-spot: watch for a spot termination notice and deregister this etcd member
Wants=network-online.target
After=network-online.target
RequiresMountsFor={data}
StartLimitIntervalSec=0

[Service]
# simple, not exec: exec needs systemd 240, and legacy Container Linux runs this unit too
Type=simple
Restart=on-failure
RestartSec=5s
# exit status 2 is a configuration error: running again cannot fix it
RestartPreventExitStatus=2
{common}
ExecStart={bin}/etcd-spot-terminate --watch
{hardening}
[Install]
WantedBy=multi-user.target
",
        data = o.data_dir,
        bin = o.bin_dir,
        common = terminate_common(o),
        hardening = terminate_hardening(o),
    )
}

/// The one-shot check the timer variant starts every 5 s.
pub(super) fn terminate_once_service(o: &UnitOptions) -> String {
    let etcd = &o.etcd_unit;
    format!(
        "{HEADER}
# Started every 5 seconds by etcd-spot-terminate-once.timer (the alternative to
# the watcher etcd-spot-terminate.service): on a spot termination notice it hands
# over leadership, removes this member, stops {etcd} (with systemctl,
# so the sandbox below keeps AF_UNIX and the caller's root identity) and moves the
# data dir aside. Without a notice it does nothing.

[Unit]
Description=etcd-spot: deregister this etcd member on a spot termination notice (one check)
After=network-online.target
RequiresMountsFor={data}

[Service]
Type=oneshot
{common}
ExecStart={bin}/etcd-spot-terminate
# the notice gives two minutes; stopping etcd is part of the job
TimeoutStartSec=110s
{hardening}",
        data = o.data_dir,
        bin = o.bin_dir,
        common = terminate_common(o),
        hardening = terminate_hardening(o),
    )
}

pub(super) fn terminate_once_timer() -> String {
    format!(
        "{HEADER}
# The timer variant of termination watching. Enable either this timer or the
# watcher {TERMINATE_WATCH}, not both: starting one stops the other.

[Unit]
Description=etcd-spot: check for a spot termination notice every 5 seconds
Conflicts={TERMINATE_WATCH}

[Timer]
OnActiveSec=5s
OnUnitActiveSec=5s
AccuracySec=1s
Unit=etcd-spot-terminate-once.service

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
