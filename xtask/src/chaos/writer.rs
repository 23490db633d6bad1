//! The chaos run's writer: a thread that puts `chaos/<n>` through the running etcds in turn and records every
//! acknowledged write, and the read-back at the end that finds every acknowledged write that was lost.
//!
//! A write counts as acknowledged only when etcd answered it with 200; the read-back is linearizable, through a
//! started voter. The writer never waits without a timeout: each put is one call bounded by the call timeout.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use etcd_spot_sim::{EtcdAccess, EtcdClient};

use super::{CALL_TIMEOUT, Chaos};
use crate::timeline::Writes;

/// Pause between two writes.
const WRITE_PAUSE: Duration = Duration::from_millis(25);
/// The writer's keys: `chaos/<sequence>`.
const PREFIX: &str = "chaos/";
/// How long the read-back keeps trying to find a started voter that answers.
const READ_BACK_WAIT: Duration = Duration::from_secs(30);

/// What the writer did.
#[derive(Debug, Default)]
pub(super) struct WriterLog {
    /// Every acknowledged write (HTTP 200): key, value.
    pub acked: Vec<(String, String)>,
    pub failed: u64,
    /// Cluster IDs in the headers of acknowledged writes, with the first URL that answered each.
    pub cluster_ids: BTreeMap<String, String>,
}

/// The writer thread.
#[derive(Debug)]
pub(super) struct Writer {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    handle: Option<JoinHandle<WriterLog>>,
}

impl Writer {
    /// Starts writing through whichever client URLs `urls` holds at the time of each write, reaching etcd as
    /// `access` says (the group's: a client certificate and a token in TLS mode); counts each write in `tally`.
    pub fn start(seed: u64, urls: Arc<Mutex<Vec<String>>>, access: EtcdAccess, tally: Writes) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let (s, a) = (Arc::clone(&stop), Arc::clone(&acked));
        let handle = thread::Builder::new()
            .name("chaos-writer".into())
            .spawn(move || write_loop(seed, &urls, &access, &s, &a, &tally));
        Writer { stop, acked, handle: handle.ok() }
    }

    /// Writes acknowledged so far.
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    /// Stops the thread and returns what it did.
    pub fn stop(&mut self) -> WriterLog {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.take().and_then(|h| h.join().ok()).unwrap_or_default()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Puts `chaos/<n>` through the client URLs in turn until told to stop.
fn write_loop(
    seed: u64,
    urls: &Mutex<Vec<String>>,
    access: &EtcdAccess,
    stop: &AtomicBool,
    acked: &AtomicU64,
    tally: &Writes,
) -> WriterLog {
    let mut log = WriterLog::default();
    let mut n: u64 = 0;
    while !stop.load(Ordering::SeqCst) {
        let current = urls.lock().unwrap_or_else(PoisonError::into_inner).clone();
        if current.is_empty() {
            thread::sleep(Duration::from_millis(100));
            continue;
        }
        n += 1;
        let url = &current[(n as usize) % current.len()];
        let key = format!("{PREFIX}{n:08}");
        let value = format!("seed {seed} write {n} via {url}");
        let put = EtcdClient::with_access(url, CALL_TIMEOUT, access).put(&key, &value);
        tally.record(put.is_ok());
        match put {
            Ok(cluster_id) => {
                if let Some(id) = cluster_id {
                    log.cluster_ids.entry(id).or_insert_with(|| url.clone());
                }
                log.acked.push((key, value));
                acked.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => log.failed += 1,
        }
        thread::sleep(WRITE_PAUSE);
    }
    log
}

/// The acknowledged writes (key → value) missing from `have` or changed in it, as `key = "value", read …`.
fn lost(want: &BTreeMap<&str, &str>, have: &BTreeMap<String, String>) -> Vec<String> {
    want.iter()
        .filter(|(k, v)| have.get(**k).map(String::as_str) != Some(**v))
        .map(|(k, v)| format!("{k} = {v:?}, read {:?}", have.get(*k)))
        .collect()
}

impl Chaos {
    /// Reads every acknowledged write back (linearizable range, paged) through a started voter; the keys lost or
    /// changed.
    pub(super) fn read_back(&mut self, writes: &WriterLog) -> Result<Vec<String>, String> {
        let want: BTreeMap<&str, &str> = writes.acked.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut last_err = String::from("no running etcd");
        let deadline = Instant::now() + READ_BACK_WAIT;
        while Instant::now() < deadline {
            let g = &self.world.g;
            let urls: Vec<String> = self
                .obs
                .members
                .iter()
                .flatten()
                .filter(|m| !m.is_learner && !m.name.is_empty())
                .filter_map(|m| g.try_instance(&m.name).filter(|_| g.etcd_alive(&m.name)))
                .map(|i| i.client_url())
                .collect();
            for url in urls {
                match EtcdClient::with_access(&url, CALL_TIMEOUT, &g.access()).prefix(PREFIX) {
                    Ok(have) => {
                        let lost = lost(&want, &have);
                        self.journal.say(format!(
                            "read back {} keys through {url}: {} of {} acknowledged writes present",
                            have.len(),
                            want.len() - lost.len(),
                            want.len()
                        ));
                        return Ok(lost);
                    }
                    Err(e) => last_err = e,
                }
            }
            self.pump_for(Duration::from_secs(1));
        }
        Err(last_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_writes_are_the_missing_and_the_changed() {
        let want = BTreeMap::from([("chaos/1", "a"), ("chaos/2", "b"), ("chaos/3", "c")]);
        let have: BTreeMap<String, String> =
            [("chaos/1", "a"), ("chaos/2", "x"), ("chaos/9", "z")].map(|(k, v)| (k.to_string(), v.to_string())).into();
        assert_eq!(lost(&want, &have), [r#"chaos/2 = "b", read Some("x")"#, r#"chaos/3 = "c", read None"#]);
        assert!(lost(&BTreeMap::new(), &have).is_empty());
    }
}
