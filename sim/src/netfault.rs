//! Network partitions between simulated instances on loopback, with nftables: [`Partitions`] owns one nftables
//! table named after its run, and cuts or heals the traffic between chosen instances of one 127.0.`net`.x net.
//!
//! **Why not `ip saddr A ip daddr B drop`.** On loopback the kernel gives every connection whose socket was not
//! bound to an address the source 127.0.0.1 (the `src` of the local route for 127.0.0.0/8), and etcd binds
//! neither its peer dials nor its client calls. A rule on the source address would never match what instance A
//! sends (`sim/tests/partition.rs` shows it). So the sender is told apart by its process instead: every process of
//! a simulated instance runs with a group ID of its own ([`gid`], set by [`crate::SimGroup::set_partitionable`];
//! the user stays root, so nothing else changes), the table's `tag` chain copies that group into the connection's
//! conntrack mark when the connection opens (a map from group ID to host number), and the `cut` chain drops by
//! (mark, address): what a connection's opener sends by the mark and the destination address, what its answerer
//! sends back by the source address and the mark. Both chains sit on the output hook, which every loopback packet
//! passes once as it is sent.
//!
//! Rules only ever name the run's own addresses and group IDs. The table is deleted when a [`Partitions`] is made
//! (a crashed earlier run may have left it) and when it is dropped; [`Partitions::heal`] flushes the cuts. The
//! harness itself (gid 0) is never cut: it stands for the cloud's view and the operator's.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

/// The first group ID of the nets' range: instance `host` of net `net` runs as `GID_BASE + net * 256 + host`.
const GID_BASE: u32 = 4_000_000;

/// The group ID every process of instance 127.0.`net`.`host` runs as in a partitionable group.
pub fn gid(net: u8, host: u8) -> u32 {
    GID_BASE + u32::from(net) * 256 + u32::from(host)
}

/// One direction of a cut: `from` can no longer send anything to `to` (host numbers on the net).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cut {
    pub from: u8,
    pub to: u8,
}

/// The cuts that isolate `inside` from `outside` in both directions.
pub fn both_ways(inside: &[u8], outside: &[u8]) -> Vec<Cut> {
    let mut cuts = Vec::new();
    for &a in inside {
        for &b in outside.iter().filter(|b| !inside.contains(b)) {
            cuts.push(Cut { from: a, to: b });
            cuts.push(Cut { from: b, to: a });
        }
    }
    cuts
}

/// The nftables table of one run: created empty (every connection tagged with its opener's host), then cut and
/// healed; deleted on drop.
#[derive(Debug)]
pub struct Partitions {
    table: String,
    net: u8,
    cuts: BTreeSet<Cut>,
}

impl Partitions {
    /// Deletes a table `name` left by an earlier run, then creates it with the tagging chain for 127.0.`net`.x and
    /// an empty `cut` chain. Needs root and `nft`.
    pub fn new(name: &str, net: u8) -> Result<Partitions, String> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("nftables table name {name:?}: letters, digits and _ only"));
        }
        let p = Partitions { table: name.to_string(), net, cuts: BTreeSet::new() };
        p.delete_table();
        let elements: Vec<String> = (1..=254u8).map(|h| format!("{} : {h}", gid(net, h))).collect();
        let script = format!(
            "table inet {name} {{\n\
             \tmap opener {{ type gid : mark; elements = {{ {} }} }}\n\
             \tchain tag {{\n\t\ttype filter hook output priority -150; policy accept;\n\
             \t\tct state new ct mark set meta skgid map @opener\n\t}}\n\
             \tchain cut {{\n\t\ttype filter hook output priority 0; policy accept;\n\t}}\n}}\n",
            elements.join(", ")
        );
        nft_script(&script).map_err(|e| format!("creating the nftables table {name} (needs root and nft): {e}"))?;
        Ok(p)
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    fn addr(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(127, 0, self.net, host)
    }

    /// Adds `cuts` (on top of those in place).
    pub fn cut(&mut self, cuts: &[Cut]) -> Result<(), String> {
        let mut script = String::new();
        for c in cuts.iter().filter(|c| c.from != c.to && !self.cuts.contains(c)) {
            let (from, to) = (self.addr(c.from), self.addr(c.to));
            script.push_str(&format!(
                "add rule inet {t} cut ct direction original ct mark {} ip daddr {to} drop\n\
                 add rule inet {t} cut ct direction reply ct mark {} ip saddr {from} drop\n",
                c.from,
                c.to,
                t = self.table
            ));
        }
        if script.is_empty() {
            return Ok(());
        }
        nft_script(&script).map_err(|e| format!("adding cuts to nftables table {}: {e}", self.table))?;
        self.cuts.extend(cuts.iter().filter(|c| c.from != c.to));
        Ok(())
    }

    /// The cuts in place.
    pub fn cuts(&self) -> &BTreeSet<Cut> {
        &self.cuts
    }

    /// Removes every cut: the instances reach each other again.
    pub fn heal(&mut self) -> Result<(), String> {
        nft_script(&format!("flush chain inet {} cut\n", self.table))
            .map_err(|e| format!("flushing the cuts of nftables table {}: {e}", self.table))?;
        self.cuts.clear();
        Ok(())
    }

    /// The table as `nft list table` prints it.
    pub fn listing(&self) -> Result<String, String> {
        let out = Command::new("nft")
            .args(["list", "table", "inet", &self.table])
            .output()
            .map_err(|e| format!("running nft: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }

    fn delete_table(&self) {
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &self.table])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Partitions {
    fn drop(&mut self) {
        self.delete_table();
    }
}

/// Whether a table of this name exists now.
pub fn table_exists(name: &str) -> bool {
    Command::new("nft")
        .args(["list", "table", "inet", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `nft -f -` on `script`.
fn nft_script(script: &str) -> Result<(), String> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running nft: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).map_err(|e| format!("writing to nft: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("waiting for nft: {e}"))?;
    if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).trim().to_string()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_ids_are_per_net_and_host() {
        assert_eq!(gid(50, 1), 4_012_801);
        assert_ne!(gid(50, 1), gid(51, 1));
        assert_ne!(gid(50, 1), gid(50, 2));
    }

    #[test]
    fn both_ways_cuts_every_pair_across_and_none_inside() {
        let cuts = both_ways(&[1, 2], &[1, 2, 3, 4]);
        let want = [(1, 3), (3, 1), (1, 4), (4, 1), (2, 3), (3, 2), (2, 4), (4, 2)];
        assert_eq!(cuts, want.map(|(from, to)| Cut { from, to }));
        assert!(both_ways(&[1], &[1]).is_empty());
    }

    #[test]
    fn bad_table_names_are_refused_before_nft_runs() {
        assert!(Partitions::new("x; flush ruleset", 9).unwrap_err().contains("letters, digits and _"));
        assert!(Partitions::new("", 9).is_err());
    }
}
