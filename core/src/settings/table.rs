//! The one table of every setting: its flag, environment variable, default and help line, and which binaries
//! take it.
//!
//! Everything else is derived from or checked against this table: `resolve` reads its variables and defaults,
//! a test renders each binary's `--help` and checks every row appears there word for word, and
//! `cargo xtask units` writes `deploy/etcd-spot.env` from it. A default or a variable name is written here and
//! nowhere else; a row must never name a secret's value.

/// Which binaries take a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// All three binaries.
    All,
    /// `etcd-spot-discover` only.
    Discover,
    /// `etcd-spot-terminate` only.
    Terminate,
    /// `etcd-spot-prune` only.
    Prune,
    /// `etcd-spot-discover` and `etcd-spot-prune` (the ones that decide on unstarted members).
    DiscoverAndPrune,
    /// `etcd-spot-discover` and `etcd-spot-terminate` (the ones that move stale data aside).
    DiscoverAndTerminate,
}

impl Scope {
    /// Whether the binary called `binary` (`etcd-spot-discover`, …) takes settings of this scope.
    pub fn includes(self, binary: &str) -> bool {
        let short = binary.trim_start_matches("etcd-spot-");
        match self {
            Scope::All => true,
            Scope::Discover => short == "discover",
            Scope::Terminate => short == "terminate",
            Scope::Prune => short == "prune",
            Scope::DiscoverAndPrune => short == "discover" || short == "prune",
            Scope::DiscoverAndTerminate => short == "discover" || short == "terminate",
        }
    }
}

/// One setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// The long flag, `--imds-url`.
    pub flag: &'static str,
    /// The environment variable read when the flag is not given; empty for a flag without one. A switch's
    /// variable is a boolean (see `docs/cli.md`).
    pub env: &'static str,
    /// The value used when neither is given; empty for none.
    pub default: &'static str,
    /// The help line, without the variable and the default (which `--help` shows after it).
    pub help: &'static str,
    /// A switch takes no value.
    pub switch: bool,
    /// Which binaries take it.
    pub scope: Scope,
}

impl Spec {
    /// The help line as `--help` shows it: the help, then `[VARIABLE]` and `(default)` when there are any.
    pub fn help_line(&self) -> String {
        let mut line = self.help.to_owned();
        if !self.env.is_empty() {
            line.push_str(&format!(" [{}]", self.env));
        }
        if !self.default.is_empty() {
            line.push_str(&format!(" ({})", self.default));
        }
        line
    }
}

const fn value(flag: &'static str, env: &'static str, default: &'static str, help: &'static str, scope: Scope) -> Spec {
    Spec { flag, env, default, help, switch: false, scope }
}

const fn switch(flag: &'static str, env: &'static str, help: &'static str, scope: Scope) -> Spec {
    Spec { flag, env, default: "", help, switch: true, scope }
}

/// Every setting of the three binaries, in the order `--help` and the env file show them.
pub const SETTINGS: &[Spec] = &[
    value(
        "--imds-url",
        "ETCD_SPOT_IMDS_URL",
        "http://169.254.169.254",
        "base URL of the AWS instance metadata service",
        Scope::All,
    ),
    value(
        "--spotinst-url",
        "ETCD_SPOT_SPOTINST_URL",
        "https://api.spotinst.io",
        "base URL of the Spotinst API",
        Scope::All,
    ),
    value(
        "--spotinst-token-file",
        "ETCD_SPOT_SPOTINST_TOKEN_FILE",
        "",
        "file holding the Spotinst API token (else the token itself in SPOTINST_TOKEN)",
        Scope::All,
    ),
    value("--spotinst-account", "SPOTINST_ACCOUNT", "", "the Spotinst account id, act-…", Scope::All),
    value(
        "--group-id",
        "SPOTINST_GROUP_ID",
        "",
        "the Elastigroup id, sig-… (else the instance tag spotinst:aws:ec2:group:id, else Spotinst's instance record)",
        Scope::All,
    ),
    value("--client-port", "ETCD_SPOT_CLIENT_PORT", "2379", "etcd client port", Scope::All),
    value("--peer-port", "ETCD_SPOT_PEER_PORT", "2380", "etcd peer port", Scope::All),
    value(
        "--scheme",
        "ETCD_SPOT_SCHEME",
        "http",
        "scheme of etcd URLs, http or https; --cacert (--peer-cacert) makes client (peer) URLs https; https without --cacert trusts the public web roots",
        Scope::All,
    ),
    value(
        "--cacert",
        "ETCD_SPOT_CACERT",
        "",
        "PEM CA bundle etcd's client-port certificate must chain to; given, client URLs are https and only this CA is trusted",
        Scope::All,
    ),
    value(
        "--cert",
        "ETCD_SPOT_CERT",
        "",
        "PEM client certificate presented to etcd's client port (with --key; needs --cacert)",
        Scope::All,
    ),
    value("--key", "ETCD_SPOT_KEY", "", "PEM private key of --cert (with --cert)", Scope::All),
    value(
        "--peer-cacert",
        "ETCD_SPOT_PEER_CACERT",
        "",
        "PEM CA bundle of the peer port (etcd's peer certificates, other instances' boot beacons); given, peer URLs are https",
        Scope::All,
    ),
    value(
        "--peer-cert",
        "ETCD_SPOT_PEER_CERT",
        "",
        "this instance's PEM peer certificate, presented on peer reads and boot probes and served by the boot beacon (with --peer-key; needs --peer-cacert)",
        Scope::All,
    ),
    value("--peer-key", "ETCD_SPOT_PEER_KEY", "", "PEM private key of --peer-cert (with --peer-cert)", Scope::All),
    value(
        "--etcd-user",
        "ETCD_SPOT_ETCD_USER",
        "",
        "etcd user when etcd's auth is on; membership calls need the root role; etcd's JSON gateway cannot authenticate by certificate CN",
        Scope::All,
    ),
    value(
        "--etcd-password-file",
        "ETCD_SPOT_ETCD_PASSWORD_FILE",
        "",
        "file holding the password of --etcd-user, on its first line (with --etcd-user)",
        Scope::All,
    ),
    value("--max-voters", "ETCD_SPOT_MAX_VOTERS", "5", "most voting members; more instances stay learners", Scope::All),
    value("--data-dir", "ETCD_SPOT_DATA_DIR", "/var/lib/etcd", "etcd data dir", Scope::All),
    value("--state-dir", "ETCD_SPOT_STATE_DIR", "/var/lib/etcd-spot", "etcd-spot's own state dir", Scope::All),
    value("--timeout", "ETCD_SPOT_TIMEOUT", "5", "overall timeout of one HTTP request in seconds", Scope::All),
    value(
        "--metrics-dir",
        "ETCD_SPOT_METRICS_DIR",
        "",
        "write Prometheus metrics to DIR/etcd-spot-<binary>.prom at the end of each run (node_exporter's textfile dir)",
        Scope::All,
    ),
    switch("--json", "ETCD_SPOT_JSON", "print one JSON report on stdout", Scope::All),
    switch("--verbose", "RUST_LOG", "more log output (repeat for more)", Scope::All),
    switch("--version", "", "print the version and exit", Scope::All),
    value(
        "--output",
        "ETCD_SPOT_OUTPUT",
        "/run/systemd/system/etcd-member.service.d/30-etcd-spot.conf",
        "where to write etcd's settings",
        Scope::Discover,
    ),
    value(
        "--output-format",
        "ETCD_SPOT_OUTPUT_FORMAT",
        "dropin",
        "dropin (systemd drop-in) or env (environment file)",
        Scope::Discover,
    ),
    value(
        "--bootstrap-timeout",
        "ETCD_SPOT_BOOTSTRAP_TIMEOUT",
        "600",
        "seconds to wait for the group to reach its target before giving up",
        Scope::Discover,
    ),
    switch(
        "--no-learner",
        "ETCD_SPOT_NO_LEARNER",
        "add this instance as a voter instead of a learner",
        Scope::Discover,
    ),
    value(
        "--etcd-version",
        "ETCD_SPOT_ETCD_VERSION",
        "",
        "version of the etcd this instance runs, e.g. 3.5.30 (else what the etcd on PATH reports; unknown: not checked)",
        Scope::Discover,
    ),
    value(
        "--unstarted-grace",
        "ETCD_SPOT_UNSTARTED_GRACE",
        "300",
        "seconds an added member may stay unstarted before it counts as dead",
        Scope::DiscoverAndPrune,
    ),
    value(
        "--keep-stale",
        "ETCD_SPOT_KEEP_STALE",
        "3",
        "most moved-aside copies of stale etcd data kept in the data dir, 1-100 (the newest always)",
        Scope::DiscoverAndTerminate,
    ),
    switch("--watch", "ETCD_SPOT_WATCH", "keep checking instead of checking once", Scope::Terminate),
    value(
        "--imds-interval",
        "ETCD_SPOT_IMDS_INTERVAL",
        "5",
        "seconds between IMDS checks in --watch",
        Scope::Terminate,
    ),
    value(
        "--spotinst-interval",
        "ETCD_SPOT_SPOTINST_INTERVAL",
        "60",
        "seconds between Spotinst checks (at most one per interval, also across one-shot runs)",
        Scope::Terminate,
    ),
    switch(
        "--rebalance",
        "ETCD_SPOT_REBALANCE",
        "also treat the EC2 rebalance recommendation as a termination",
        Scope::Terminate,
    ),
    value(
        "--etcd-stop-command",
        "ETCD_SPOT_ETCD_STOP_COMMAND",
        "systemctl stop etcd-member.service",
        "command that stops etcd",
        Scope::Terminate,
    ),
    switch("--dry-run", "ETCD_SPOT_DRY_RUN", "print the plan and change nothing", Scope::Prune),
];

/// The row of `flag`. Every flag `resolve` reads has a row; a missing one is a programming error that the
/// settings tests catch, so it panics rather than returning an error.
pub(crate) fn spec(flag: &str) -> &'static Spec {
    SETTINGS.iter().find(|s| s.flag == flag).unwrap_or_else(|| panic!("no settings row for {flag}"))
}
