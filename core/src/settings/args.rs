//! The three binaries' flags as argh parses them, before the environment is consulted.
//!
//! Each help line here is the `help_line()` of its row in [`super::table::SETTINGS`] (a test renders every
//! `--help` and checks it); the shared flags are declared once, in `with_common_flags!`. Nothing here
//! validates or reads the environment: that is `resolve`'s job.

/// The shared flags, exactly as given.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawCommon {
    pub(crate) imds_url: Option<String>,
    pub(crate) spotinst_url: Option<String>,
    pub(crate) spotinst_token_file: Option<String>,
    pub(crate) spotinst_account: Option<String>,
    pub(crate) group_id: Option<String>,
    pub(crate) client_port: Option<String>,
    pub(crate) peer_port: Option<String>,
    pub(crate) scheme: Option<String>,
    pub(crate) cacert: Option<String>,
    pub(crate) cert: Option<String>,
    pub(crate) key: Option<String>,
    pub(crate) peer_cacert: Option<String>,
    pub(crate) peer_cert: Option<String>,
    pub(crate) peer_key: Option<String>,
    pub(crate) etcd_user: Option<String>,
    pub(crate) etcd_password_file: Option<String>,
    pub(crate) max_voters: Option<String>,
    pub(crate) data_dir: Option<String>,
    pub(crate) state_dir: Option<String>,
    pub(crate) timeout: Option<String>,
    pub(crate) metrics_dir: Option<String>,
    pub(crate) json: bool,
}

macro_rules! with_common_flags {
    ($(#[$($meta:tt)*])* pub struct $name:ident { $($(#[$($fmeta:tt)*])* pub $field:ident : $ty:ident $(< $gen:ident >)?,)* }) => {
        $(#[$($meta)*])*
        #[derive(argh::FromArgs, Debug)]
        pub struct $name {
            /// base URL of the AWS instance metadata service [ETCD_SPOT_IMDS_URL] (http://169.254.169.254)
            #[argh(option)]
            pub imds_url: Option<String>,
            /// base URL of the Spotinst API [ETCD_SPOT_SPOTINST_URL] (https://api.spotinst.io)
            #[argh(option)]
            pub spotinst_url: Option<String>,
            /// file holding the Spotinst API token (else the token itself in SPOTINST_TOKEN) [ETCD_SPOT_SPOTINST_TOKEN_FILE]
            #[argh(option)]
            pub spotinst_token_file: Option<String>,
            /// the Spotinst account id, act-… [SPOTINST_ACCOUNT]
            #[argh(option)]
            pub spotinst_account: Option<String>,
            /// the Elastigroup id, sig-… (else the instance tag spotinst:aws:ec2:group:id, else Spotinst's instance record) [SPOTINST_GROUP_ID]
            #[argh(option)]
            pub group_id: Option<String>,
            /// etcd client port [ETCD_SPOT_CLIENT_PORT] (2379)
            #[argh(option)]
            pub client_port: Option<String>,
            /// etcd peer port [ETCD_SPOT_PEER_PORT] (2380)
            #[argh(option)]
            pub peer_port: Option<String>,
            /// scheme of etcd URLs, http or https; --cacert (--peer-cacert) makes client (peer) URLs https; https without --cacert trusts the public web roots [ETCD_SPOT_SCHEME] (http)
            #[argh(option)]
            pub scheme: Option<String>,
            /// PEM CA bundle etcd's client-port certificate must chain to; given, client URLs are https and only this CA is trusted [ETCD_SPOT_CACERT]
            #[argh(option)]
            pub cacert: Option<String>,
            /// PEM client certificate presented to etcd's client port (with --key; needs --cacert) [ETCD_SPOT_CERT]
            #[argh(option)]
            pub cert: Option<String>,
            /// PEM private key of --cert (with --cert) [ETCD_SPOT_KEY]
            #[argh(option)]
            pub key: Option<String>,
            /// PEM CA bundle of the peer port (etcd's peer certificates, other instances' boot beacons); given, peer URLs are https [ETCD_SPOT_PEER_CACERT]
            #[argh(option)]
            pub peer_cacert: Option<String>,
            /// this instance's PEM peer certificate, presented on peer reads and boot probes and served by the boot beacon (with --peer-key; needs --peer-cacert) [ETCD_SPOT_PEER_CERT]
            #[argh(option)]
            pub peer_cert: Option<String>,
            /// PEM private key of --peer-cert (with --peer-cert) [ETCD_SPOT_PEER_KEY]
            #[argh(option)]
            pub peer_key: Option<String>,
            /// etcd user when etcd's auth is on; membership calls need the root role; etcd's JSON gateway cannot authenticate by certificate CN [ETCD_SPOT_ETCD_USER]
            #[argh(option)]
            pub etcd_user: Option<String>,
            /// file holding the password of --etcd-user, on its first line (with --etcd-user) [ETCD_SPOT_ETCD_PASSWORD_FILE]
            #[argh(option)]
            pub etcd_password_file: Option<String>,
            /// most voting members; more instances stay learners [ETCD_SPOT_MAX_VOTERS] (5)
            #[argh(option)]
            pub max_voters: Option<String>,
            /// etcd data dir [ETCD_SPOT_DATA_DIR] (/var/lib/etcd)
            #[argh(option)]
            pub data_dir: Option<String>,
            /// etcd-spot's own state dir [ETCD_SPOT_STATE_DIR] (/var/lib/etcd-spot)
            #[argh(option)]
            pub state_dir: Option<String>,
            /// overall timeout of one HTTP request in seconds [ETCD_SPOT_TIMEOUT] (5)
            #[argh(option)]
            pub timeout: Option<String>,
            /// write Prometheus metrics to DIR/etcd-spot-<binary>.prom at the end of each run (node_exporter's textfile dir) [ETCD_SPOT_METRICS_DIR]
            #[argh(option)]
            pub metrics_dir: Option<String>,
            /// print one JSON report on stdout [ETCD_SPOT_JSON]
            #[argh(switch)]
            pub json: bool,
            /// more log output (repeat for more) [RUST_LOG]
            #[argh(switch, short = 'v')]
            pub verbose: u8,
            /// print the version and exit
            #[argh(switch)]
            pub version: bool,
            $($(#[$($fmeta)*])* pub $field: $ty $(< $gen >)?,)*
        }

        impl $name {
            /// The shared flags of this binary.
            pub(crate) fn common(&self) -> RawCommon {
                RawCommon {
                    imds_url: self.imds_url.clone(),
                    spotinst_url: self.spotinst_url.clone(),
                    spotinst_token_file: self.spotinst_token_file.clone(),
                    spotinst_account: self.spotinst_account.clone(),
                    group_id: self.group_id.clone(),
                    client_port: self.client_port.clone(),
                    peer_port: self.peer_port.clone(),
                    scheme: self.scheme.clone(),
                    cacert: self.cacert.clone(),
                    cert: self.cert.clone(),
                    key: self.key.clone(),
                    peer_cacert: self.peer_cacert.clone(),
                    peer_cert: self.peer_cert.clone(),
                    peer_key: self.peer_key.clone(),
                    etcd_user: self.etcd_user.clone(),
                    etcd_password_file: self.etcd_password_file.clone(),
                    max_voters: self.max_voters.clone(),
                    data_dir: self.data_dir.clone(),
                    state_dir: self.state_dir.clone(),
                    timeout: self.timeout.clone(),
                    metrics_dir: self.metrics_dir.clone(),
                    json: self.json,
                }
            }
        }
    };
}

with_common_flags! {
    /// Runs once at boot, before etcd: bootstraps, joins or rejoins the
    /// cluster and writes etcd's configuration.
    pub struct DiscoverArgs {
        /// where to write etcd's settings [ETCD_SPOT_OUTPUT] (/run/systemd/system/etcd-member.service.d/30-etcd-spot.conf)
        #[argh(option)]
        pub output: Option<String>,
        /// dropin (systemd drop-in) or env (environment file) [ETCD_SPOT_OUTPUT_FORMAT] (dropin)
        #[argh(option)]
        pub output_format: Option<String>,
        /// seconds to wait for the group to reach its target before giving up [ETCD_SPOT_BOOTSTRAP_TIMEOUT] (600)
        #[argh(option)]
        pub bootstrap_timeout: Option<String>,
        /// add this instance as a voter instead of a learner [ETCD_SPOT_NO_LEARNER]
        #[argh(switch)]
        pub no_learner: bool,
        /// version of the etcd this instance runs, e.g. 3.5.30 (else what the etcd on PATH reports; unknown: not checked) [ETCD_SPOT_ETCD_VERSION]
        #[argh(option)]
        pub etcd_version: Option<String>,
        /// seconds an added member may stay unstarted before it counts as dead [ETCD_SPOT_UNSTARTED_GRACE] (300)
        #[argh(option)]
        pub unstarted_grace: Option<String>,
        /// most moved-aside copies of stale etcd data kept in the data dir, 1-100 (the newest always) [ETCD_SPOT_KEEP_STALE] (3)
        #[argh(option)]
        pub keep_stale: Option<String>,
    }
}

with_common_flags! {
    /// Checks for a spot termination notice and deregisters this member.
    pub struct TerminateArgs {
        /// keep checking instead of checking once [ETCD_SPOT_WATCH]
        #[argh(switch)]
        pub watch: bool,
        /// seconds between IMDS checks in --watch [ETCD_SPOT_IMDS_INTERVAL] (5)
        #[argh(option)]
        pub imds_interval: Option<String>,
        /// seconds between Spotinst checks (at most one per interval, also across one-shot runs) [ETCD_SPOT_SPOTINST_INTERVAL] (60)
        #[argh(option)]
        pub spotinst_interval: Option<String>,
        /// also treat the EC2 rebalance recommendation as a termination [ETCD_SPOT_REBALANCE]
        #[argh(switch)]
        pub rebalance: bool,
        /// command that stops etcd [ETCD_SPOT_ETCD_STOP_COMMAND] (systemctl stop etcd-member.service)
        #[argh(option)]
        pub etcd_stop_command: Option<String>,
        /// most moved-aside copies of stale etcd data kept in the data dir, 1-100 (the newest always) [ETCD_SPOT_KEEP_STALE] (3)
        #[argh(option)]
        pub keep_stale: Option<String>,
    }
}

with_common_flags! {
    /// Removes members whose instances are gone and promotes caught-up learners.
    pub struct PruneArgs {
        /// print the plan and change nothing [ETCD_SPOT_DRY_RUN]
        #[argh(switch)]
        pub dry_run: bool,
        /// seconds an added member may stay unstarted before it counts as dead [ETCD_SPOT_UNSTARTED_GRACE] (300)
        #[argh(option)]
        pub unstarted_grace: Option<String>,
    }
}
