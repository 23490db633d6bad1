//! The shells: each binary's run, as observe → plan → apply.
//!
//! A shell builds its clients from the settings ([`Clients`]), observes the world ([`gather`], [`datadir`], the
//! boot handshake in [`beacon`]), hands the view to the planner, and carries out the plan's actions through
//! [`apply`], re-reading the cluster after every membership change. It decides nothing itself: every decision,
//! refusals and timeouts included, comes out of the planner with its reasons. What a run remembers between runs
//! lives in one [`state::StateDir`].

mod apply;
mod backoff;
mod beacon;
pub(crate) mod datadir;
mod discover;
mod gather;
pub(crate) mod output;
mod prune;
mod repeats;
pub(crate) mod state;
mod terminate;
mod wal;

use std::time::Duration;

pub use discover::run as discover;
pub use prune::run as prune;
pub use terminate::run as terminate;

use crate::clients::etcd::EtcdV3;
use crate::clients::http::{Http, HttpConfig, TlsSide};
use crate::clients::imds::Imds;
use crate::clients::spotinst::Spotinst;
use crate::error::{Error, Result};
use crate::planner::PlannerConfig;
use crate::run::state::{SPOTINST_BLOCKED_UNTIL, StateDir};
use crate::settings::Config;
use crate::types::{Me, Scheme};

/// The clients a run uses, built once from the settings.
#[derive(Debug)]
pub(crate) struct Clients {
    pub(crate) imds: Imds,
    pub(crate) etcd: EtcdV3,
    /// Health probes use a short timeout so a dead member costs little.
    pub(crate) probe: EtcdV3,
    /// The same short, retry-free policy for other probes (the boot handshake).
    pub(crate) probe_http: Http,
    /// The boot handshake's scheme: https exactly when peer TLS is configured (the beacon serves TLS then),
    /// whatever `--scheme` says.
    pub(crate) beacon_scheme: Scheme,
}

impl Clients {
    /// The clients of a run: etcd's client port with the client TLS material, its peer port (and other
    /// instances' boot beacons) with the peer's, IMDS without either, and etcd's auth when it is on.
    pub(crate) fn new(cfg: &Config) -> Clients {
        let http_cfg = HttpConfig::with_timeout(cfg.timeout);
        let mut probe_cfg = HttpConfig::with_timeout(cfg.timeout);
        probe_cfg.timeout = probe_cfg.timeout.min(Duration::from_secs(2));
        probe_cfg.connect_timeout = probe_cfg.connect_timeout.min(Duration::from_secs(1));
        probe_cfg.retries = 0;
        let security = &cfg.security;
        let client_tls = security.client.as_ref().map(|t| (&t.material, TlsSide::Client));
        let peer_tls = security.peer.as_ref().map(|t| (&t.material, TlsSide::Peer));
        let etcd = |http_cfg: &HttpConfig| {
            EtcdV3::new(Http::with_tls(http_cfg.clone(), client_tls).speaking_to(TlsSide::Client))
                .with_peer(Http::with_tls(http_cfg.clone(), peer_tls).speaking_to(TlsSide::Peer))
                .with_auth(security.auth.clone())
        };
        Clients {
            imds: Imds::new(Http::new(http_cfg.clone()), &cfg.imds_url),
            etcd: etcd(&http_cfg),
            probe: etcd(&probe_cfg),
            probe_http: Http::with_tls(probe_cfg, peer_tls).speaking_to(TlsSide::Peer),
            beacon_scheme: if security.peer.is_some() { Scheme::Https } else { Scheme::Http },
        }
    }

    /// The Spotinst client, waiting for a rate-limit reset of up to `rate_limit_wait` within a call (a longer
    /// one ends the call at once). It sends nothing while a rate limit holds, and keeps every such pause in the
    /// state dir (`spotinst-blocked-until`), so no later run of any binary calls before the reset either; before
    /// every call it reads that file again, so a running watcher honours a pause a prune run met meanwhile. No
    /// token configured is a configuration error naming `--spotinst-token-file` and `SPOTINST_TOKEN`.
    pub(crate) fn spotinst(&self, cfg: &Config, rate_limit_wait: Duration) -> Result<Spotinst> {
        let token = cfg.spotinst_token.clone().ok_or_else(|| Error::Config {
            flag: "--spotinst-token-file",
            env: "ETCD_SPOT_SPOTINST_TOKEN_FILE",
            message: "no spotinst token configured: set it, or put the token in SPOTINST_TOKEN".into(),
        })?;
        let http =
            Http::new(HttpConfig { max_rate_limit_wait: rate_limit_wait, ..HttpConfig::with_timeout(cfg.timeout) });
        let state = StateDir::new(&cfg.state_dir);
        let until = state.time(SPOTINST_BLOCKED_UNTIL);
        let recall = {
            let state = StateDir::new(&cfg.state_dir);
            move || state.time(SPOTINST_BLOCKED_UNTIL)
        };
        let remember = move |until: u64| {
            if let Err(e) = state.set_time(SPOTINST_BLOCKED_UNTIL, until) {
                log::warn!("cannot remember the spotinst rate limit ({e}); a later run may call before it ends");
            }
        };
        Ok(Spotinst::new(http, &cfg.spotinst_url, token, cfg.spotinst_account.as_deref())
            .with_pause_memory(until, remember)
            .with_pause_recall(recall))
    }

    /// This instance's ID and private IP.
    pub(crate) fn me(&self) -> Result<Me> {
        Ok(Me { id: self.imds.instance_id()?, ip: self.imds.local_ipv4()? })
    }
}

/// Whether `report` has nothing new to say (see `StateDir::nothing_new`), in the state dir of `cfg`.
pub(crate) fn nothing_new(cfg: &Config, report: &crate::report::Report) -> bool {
    StateDir::new(&cfg.state_dir).nothing_new(report)
}

/// The planner's settings from the shared configuration.
pub(crate) fn planner_config(cfg: &Config, learner: bool, unstarted_grace: Duration) -> PlannerConfig {
    let pcfg = PlannerConfig {
        client_scheme: cfg.client_scheme(),
        peer_scheme: cfg.peer_scheme(),
        client_port: cfg.client_port,
        peer_port: cfg.peer_port,
        max_voters: cfg.max_voters as usize,
        learner,
        unstarted_grace,
        bootstrap_timeout: Duration::ZERO,
    };
    crate::metrics::observe::planner_config(&pcfg);
    pcfg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::TerminateArgs;

    /// Terminate resolves without a token (it goes on with IMDS notices alone); asking for the Spotinst client
    /// then is a configuration error. Discover and prune refuse it at resolve time (the settings tests).
    #[test]
    fn missing_token_is_a_configuration_error() {
        let args: TerminateArgs = argh::FromArgs::from_args(&["etcd-spot-terminate"], &[]).expect("argh parses");
        let cfg = args.resolve(&|_| None).expect("valid settings");
        let err = Clients::new(&cfg.common).spotinst(&cfg.common, Duration::ZERO).unwrap_err();
        match &err {
            Error::Config { flag, env, message } => {
                assert_eq!((*flag, *env), ("--spotinst-token-file", "ETCD_SPOT_SPOTINST_TOKEN_FILE"));
                assert!(message.contains("SPOTINST_TOKEN"), "{message}");
            }
            other => panic!("wanted a config error, got {other:?}"),
        }
        assert_eq!(err.exit_code(), 2);
    }

    /// `--scheme https` without peer TLS must leave the boot handshake plain, as the beacon is: probing it over
    /// https would never confirm anything and no fresh group would bootstrap. Under peer TLS both speak https.
    #[test]
    fn the_boot_handshake_is_https_only_under_peer_tls() {
        let args: TerminateArgs =
            argh::FromArgs::from_args(&["etcd-spot-terminate"], &["--scheme", "https"]).expect("argh parses");
        let cfg = args.resolve(&|_| None).expect("valid settings");
        assert_eq!(Clients::new(&cfg.common).beacon_scheme, Scheme::Http);
        assert_eq!(cfg.common.peer_scheme(), Scheme::Https, "etcd's peer URLs still follow --scheme");

        let dir = std::env::temp_dir().join(format!("etcd-spot-beacon-scheme-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = etcd_spot_sim::Ca::new("peer ca").write(&dir, "peer-ca.crt");
        let ca = ca.display().to_string();
        let args: TerminateArgs =
            argh::FromArgs::from_args(&["etcd-spot-terminate"], &["--peer-cacert", &ca]).expect("argh parses");
        let cfg = args.resolve(&|_| None).expect("valid settings");
        assert_eq!(Clients::new(&cfg.common).beacon_scheme, Scheme::Https);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
