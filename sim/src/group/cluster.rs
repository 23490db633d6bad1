//! The etcd side of a simulated group: starting each instance's real etcd with exactly what discover wrote,
//! stopping and killing it, the spot notice, and reading the cluster (member lists, the leader, keys) through
//! the kit's [`EtcdClient`].

use std::fs;
use std::process::ExitStatus;
use std::time::Duration;

use serde_json::json;

use super::{HEALTHY_TIMEOUT, SimGroup};
use crate::process::process_alive;
use crate::util::rfc3339_in;
use crate::{EtcdClient, EtcdProcess, SimMember, parse_env_file};

/// Client timeout of one call to etcd.
const ETCD_TIMEOUT: Duration = Duration::from_secs(5);

impl SimGroup {
    /// Starts etcd for `id` with exactly the environment discover wrote (`parse_env_file` of its output; only
    /// when that lacks `ETCD_DATA_DIR`, the instance's data dir is added, as the etcd unit would) and waits until
    /// healthy (within 45 s); writes `etcd.pid` in the instance folder for the stop command. A running etcd of
    /// the instance is stopped first. On a health timeout the process is kept and an error returned.
    pub fn start_etcd(&mut self, id: &str) -> Result<(), String> {
        self.start_etcd_nowait(id)?;
        self.wait_etcd_healthy(id, HEALTHY_TIMEOUT)
    }

    /// [`SimGroup::start_etcd`] without waiting for health (a bootstrap member is not healthy until a quorum
    /// of its peers runs). In TLS mode etcd also gets its certificates and client-cert-auth on both ports
    /// (`ETCD_CERT_FILE`, …, `ETCD_PEER_CLIENT_CERT_AUTH=true`) beside what discover wrote, unless that names
    /// them itself.
    pub fn start_etcd_nowait(&mut self, id: &str) -> Result<(), String> {
        let tls_env = self.etcd_tls_env(id);
        let gid = self.gid_of(id);
        let access = self.access.clone();
        let i = self.try_instance_mut(id)?;
        if let Some(mut old) = i.etcd.take() {
            old.stop();
        }
        let text = fs::read_to_string(&i.output).map_err(|e| format!("reading {}: {e}", i.output.display()))?;
        let mut env = parse_env_file(&text).map_err(|e| format!("parsing {}: {e}", i.output.display()))?;
        if !env.iter().any(|(k, _)| k == "ETCD_DATA_DIR") {
            env.push(("ETCD_DATA_DIR".to_string(), i.data_dir.display().to_string()));
        }
        for (k, v) in tls_env {
            if !env.iter().any(|(key, _)| *key == k) {
                env.push((k, v));
            }
        }
        let first = |key: &str| {
            env.iter()
                .find(|(k, _)| k == key)
                .and_then(|(_, v)| v.split(',').map(str::trim).find(|u| !u.is_empty()))
                .map(str::to_string)
        };
        let client_url =
            first("ETCD_ADVERTISE_CLIENT_URLS").unwrap_or_else(|| format!("{}://{}:2379", access.scheme(), i.ip));
        let mut p = EtcdProcess::start_as(i.etcd_bin.as_deref(), &env, &client_url, &i.log, gid)?;
        p.set_access(&access);
        let pid = p.pid().map(|p| p.to_string()).unwrap_or_default();
        i.etcd = Some(p);
        fs::write(i.pid_file(), format!("{pid}\n")).map_err(|e| format!("writing {}: {e}", i.pid_file().display()))
    }

    /// Waits up to `timeout` for the etcd of `id` to answer `/health` with true. In TLS mode a healthy etcd
    /// means the cluster has formed, so auth is turned on then if it is not yet ([`SimGroup::ensure_auth`]).
    pub fn wait_etcd_healthy(&self, id: &str, timeout: Duration) -> Result<(), String> {
        match self.try_instance(id).and_then(|i| i.etcd.as_ref()) {
            Some(p) => p.wait_healthy(timeout).map_err(|e| format!("{id}: {e}"))?,
            None => return Err(format!("{id}: no etcd started")),
        }
        if self.tls.is_some() && !self.auth_on() {
            self.ensure_auth_now()?;
        }
        Ok(())
    }

    /// Whether the etcd of `id` is a live process (exists and is not a zombie), without reaping it; usable
    /// inside [`SimGroup::wait_until`].
    pub fn etcd_alive(&self, id: &str) -> bool {
        self.try_instance(id).and_then(|i| i.etcd.as_ref()).and_then(EtcdProcess::pid).is_some_and(process_alive)
    }

    /// Whether the etcd of `id` still runs (reaps it and removes its pid file once it exited, e.g. after the
    /// stop command).
    pub fn etcd_running(&mut self, id: &str) -> bool {
        let Some(i) = self.instances.iter_mut().find(|i| i.id == id) else { return false };
        let running = i.etcd.as_mut().is_some_and(EtcdProcess::is_running);
        if !running {
            let _ = fs::remove_file(i.pid_file());
        }
        running
    }

    /// How the etcd of `id` ended, once it has (reaps it); `None` while it runs or when none was started or it
    /// was stopped or killed through the group (which forgets the process).
    pub fn etcd_exit(&mut self, id: &str) -> Option<ExitStatus> {
        let i = self.instances.iter_mut().find(|i| i.id == id)?;
        let p = i.etcd.as_mut()?;
        if p.is_running() {
            return None;
        }
        p.exit_status()
    }

    /// Stops the etcd of `id` gracefully (SIGTERM, SIGKILL after 10 s); a no-op when none runs.
    pub fn stop_etcd(&mut self, id: &str) {
        if let Some(i) = self.instances.iter_mut().find(|i| i.id == id) {
            if let Some(mut p) = i.etcd.take() {
                p.stop();
            }
            let _ = fs::remove_file(i.pid_file());
        }
    }

    /// Kills the etcd of `id` (SIGKILL); a no-op when none runs.
    pub fn kill_etcd(&mut self, id: &str) {
        if let Some(i) = self.instances.iter_mut().find(|i| i.id == id) {
            if let Some(mut p) = i.etcd.take() {
                p.kill();
            }
            let _ = fs::remove_file(i.pid_file());
        }
    }

    /// The instance disappears: its etcd killed (-9), its spawned binaries killed, removed from the fake group,
    /// its IMDS stopped. Its folder stays. A no-op for an unknown instance.
    pub fn terminate_instance(&mut self, id: &str) {
        self.kill_etcd(id);
        self.kill_spawned_of(id);
        self.spotinst.remove_instance(id);
        // Dropping the instance stops its IMDS.
        self.instances.retain(|i| i.id != id);
    }

    /// Spot notice: IMDS `spot/instance-action` → `{"action":"terminate","time":"<now+2min RFC 3339>"}`.
    ///
    /// # Panics
    /// If there is no such instance in the group.
    pub fn notice(&self, id: &str) {
        let body = json!({"action": "terminate", "time": rfc3339_in(120)}).to_string();
        self.instance(id).imds.set_instance_action(Some(&body));
    }

    /// Removes the member `member_id` (etcd's decimal string) through the etcd of `via`, as an operator's
    /// `etcdctl member remove` would.
    pub fn remove_member(&self, via: &str, member_id: &str) -> Result<(), String> {
        self.etcd(via)?.call("/v3/cluster/member/remove", &json!({ "ID": member_id })).map(|_| ())
    }

    /// The cluster ID every instance of `ids` sees, once each sees `voters` voters; an error says which instance
    /// saw what, or which cluster IDs differ.
    pub fn one_cluster(&self, ids: &[String], voters: usize) -> Result<String, String> {
        let mut seen = Vec::new();
        for id in ids {
            let (cid, members) = self.members_via(id).map_err(|e| format!("members via {id}: {e}"))?;
            let v = members.iter().filter(|m| !m.is_learner).count();
            if v != voters {
                return Err(format!("{id} sees {v} voters, not {voters}: {members:?}"));
            }
            seen.push(cid);
        }
        seen.dedup();
        match seen.len() {
            1 => Ok(seen.remove(0)),
            _ => Err(format!("one cluster ID everywhere, but saw {seen:?}")),
        }
    }

    /// Member list via the first instance (in launch order) with a started etcd that answers
    /// (`POST /v3/cluster/member/list`), with the answering cluster ID.
    pub fn members(&self) -> Result<(String, Vec<SimMember>), String> {
        let mut errors = Vec::new();
        for i in self.instances.iter().filter(|i| i.etcd.is_some()) {
            match self.members_via(&i.id) {
                Ok(answer) => return Ok(answer),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            errors.push("no instance has a started etcd".to_string());
        }
        Err(format!("no member list: {}", errors.join("; ")))
    }

    /// Member list via the etcd of `id`, with its cluster ID.
    pub fn members_via(&self, id: &str) -> Result<(String, Vec<SimMember>), String> {
        self.etcd(id)?.members().map_err(|e| format!("{id}: {e}"))
    }

    /// The etcd of `id`'s own member list (serializable: also without quorum), with its cluster ID.
    pub fn local_members_via(&self, id: &str) -> Result<(String, Vec<SimMember>), String> {
        self.etcd(id)?.members_local().map_err(|e| format!("{id}: {e}"))
    }

    /// The instance ID of the leader, via `maintenance/status` of the started etcds (`None` when no answer
    /// names a leader).
    pub fn leader(&self) -> Option<String> {
        let mut own = Vec::new();
        let mut leader = None;
        for i in self.instances.iter().filter(|i| i.etcd.is_some()) {
            if let Ok(status) = self.etcd(&i.id).and_then(|c| c.status()) {
                own.push((status.member_id, i.id.clone()));
                leader = leader.or(status.leader);
            }
        }
        let leader = leader?;
        if let Some((_, id)) = own.iter().find(|(m, _)| *m == leader) {
            return Some(id.clone());
        }
        let (_, members) = self.members().ok()?;
        members.into_iter().find(|m| m.id == leader && !m.name.is_empty()).map(|m| m.name)
    }

    /// Writes `key` = `value` through the etcd of `id` (`kv/put`).
    pub fn put(&self, id: &str, key: &str, value: &str) -> Result<(), String> {
        self.etcd(id)?.put(key, value).map(|_| ()).map_err(|e| format!("{id}: {e}"))
    }

    /// Reads `key` through the etcd of `id` (`kv/range`, linearizable); `None` when it does not exist.
    pub fn get(&self, id: &str, key: &str) -> Result<Option<String>, String> {
        self.etcd(id)?.get(key).map_err(|e| format!("{id}: {e}"))
    }

    /// A client of the etcd of `id` (at [`SimInstance::client_url`](crate::SimInstance::client_url)).
    pub fn etcd(&self, id: &str) -> Result<EtcdClient, String> {
        let i = self.try_instance(id).ok_or_else(|| format!("no instance {id} in {}", self.group_id))?;
        Ok(EtcdClient::with_access(&i.client_url(), ETCD_TIMEOUT, &self.access))
    }
}
