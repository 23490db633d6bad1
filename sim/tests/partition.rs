//! Network partitions with nftables (`Partitions`), on real sockets and real etcd (nets 127.0.131.x and
//! 127.0.132.x). Needs root and `nft` (`cargo xtask test` installs nftables): without them the tests fail and say
//! so, rather than pass having cut nothing.
//!
//! The first test keeps what the kernel does on loopback in view: a connection from an unbound socket gets the
//! source 127.0.0.1, so a rule on the sender's address (`ip saddr A ip daddr B drop`) cuts nothing, and the kit
//! tells senders apart by the group ID their processes run as.

use std::io::{BufRead as _, BufReader};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use etcd_spot_sim::{Cut, Partitions, SimGroup, both_ways, cluster_slot, partition_gid, table_exists};

const NET: u8 = 131;
const ETCD_NET: u8 = 132;
const PORT: u16 = 7931;

/// A TCP server on 127.0.131.`host`:PORT that answers every connection with `hi`, run as instance `host`'s group.
fn server(host: u8) -> Child {
    let script = "import socket,sys\n\
                  s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
                  s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(); print('ready', flush=True)\n\
                  while True:\n    c,_=s.accept(); c.sendall(b'hi'); c.close()\n";
    let mut child = Command::new("python3")
        .args(["-c", script, &format!("127.0.{NET}.{host}"), &PORT.to_string()])
        .gid(partition_gid(NET, host))
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs the test server");
    let mut line = String::new();
    let out = child.stdout.take().expect("stdout");
    BufReader::new(out).read_line(&mut line).expect("the server says it is ready");
    assert_eq!(line.trim(), "ready");
    child
}

/// Whether a process running as `gid` connects to 127.0.131.`host`:PORT and reads `hi` within 1.5 s.
fn reaches(gid: u32, host: u8) -> bool {
    let script = "import socket,sys\n\
                  s=socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1.5)\n\
                  print(s.getsockname()[0], s.recv(2).decode())\n";
    let out = Command::new("python3")
        .args(["-c", script, &format!("127.0.{NET}.{host}"), &PORT.to_string()])
        .gid(gid)
        .output()
        .expect("python3 runs the test client");
    let text = String::from_utf8_lossy(&out.stdout);
    out.status.success() && text.trim().ends_with("hi")
}

/// The source address the kernel gives a connection from an unbound socket to 127.0.131.`host`.
fn source_address(host: u8) -> String {
    let script = "import socket,sys\n\
                  s=socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1.5)\n\
                  print(s.getsockname()[0])\n";
    let out = Command::new("python3")
        .args(["-c", script, &format!("127.0.{NET}.{host}"), &PORT.to_string()])
        .output()
        .expect("python3 runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn nft(args: &[&str]) {
    let out = Command::new("nft").args(args).output().expect("nft runs");
    assert!(out.status.success(), "nft {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

struct Killed(Vec<Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn a_cut_follows_the_senders_group_not_its_source_address_which_is_always_127_0_0_1() {
    let table = "etcd_spot_test_partition_131";
    let mut p = Partitions::new(table, NET).expect("nftables works here (root, nft installed)");
    let _servers = Killed(vec![server(2), server(1)]);
    let (one, two, three) = (partition_gid(NET, 1), partition_gid(NET, 2), partition_gid(NET, 3));
    assert!(reaches(one, 2) && reaches(three, 2) && reaches(0, 2), "nothing is cut yet");

    // The brief's rule, on the sender's address: the kernel sent from 127.0.0.1, so it cuts nothing.
    assert_eq!(source_address(2), "127.0.0.1");
    nft(&["add", "rule", "inet", table, "cut", "ip", "saddr", "127.0.131.1", "ip", "daddr", "127.0.131.2", "drop"]);
    assert!(reaches(one, 2), "a rule on the source address does not match what instance 1 sends");
    p.heal().expect("heal");

    // One way, 1 → 2: instance 1 cannot open a connection to 2, nor answer one 2 opens; others are untouched.
    p.cut(&[Cut { from: 1, to: 2 }]).expect("cut");
    assert!(!reaches(one, 2), "1 → 2 is cut");
    assert!(!reaches(two, 1), "2 hears nothing back from 1");
    assert!(reaches(three, 2) && reaches(three, 1), "3 is not part of the cut");
    assert!(reaches(0, 1) && reaches(0, 2), "the harness (the cloud's view) is never cut");
    assert!(reaches(one, 1), "an instance always reaches itself");

    p.heal().expect("heal");
    assert!(reaches(one, 2) && reaches(two, 1), "healed");

    p.cut(&both_ways(&[1], &[1, 2, 3])).expect("isolate 1");
    assert!(!reaches(one, 2) && !reaches(two, 1) && reaches(three, 2));
    drop(p);
    assert!(!table_exists(table), "dropping the partitions deletes the table");
    assert!(reaches(one, 2), "and nothing is cut any more");
}

#[test]
fn a_table_left_by_a_crashed_run_is_replaced() {
    let table = "etcd_spot_test_partition_stale";
    let mut first = Partitions::new(table, NET).expect("nftables works here");
    first.cut(&[Cut { from: 7, to: 8 }]).expect("cut");
    std::mem::forget(first); // a run that died without cleaning up
    assert!(table_exists(table));
    let second = Partitions::new(table, NET).expect("the next run starts clean");
    assert!(second.cuts().is_empty());
    let listing = second.listing().expect("listing");
    assert!(!listing.contains("drop"), "the old cuts are gone:\n{listing}");
    drop(second);
    assert!(!table_exists(table));
}

/// Puts through `id` until one is acknowledged or `limit` passes; whether one was.
fn put_within(g: &SimGroup, id: &str, key: &str, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if g.put(id, key, "v").is_ok() {
            return true;
        }
        thread::sleep(Duration::from_millis(200));
    }
    false
}

#[test]
fn an_isolated_etcd_member_cannot_commit_and_catches_up_once_healed() {
    let _slot = cluster_slot();
    let mut p = Partitions::new("etcd_spot_test_partition_132", ETCD_NET).expect("nftables works here");
    let mut g = SimGroup::new("partition", ETCD_NET, 3);
    g.set_partitionable();
    let ids: Vec<String> = (1..=3).map(|h| g.launch(h)).collect();
    g.boot_all(&ids).expect("the cluster forms");
    assert!(put_within(&g, &ids[0], "before", Duration::from_secs(10)));

    p.cut(&both_ways(&[3], &[1, 2, 3])).expect("isolate instance 3");
    assert!(put_within(&g, &ids[0], "during", Duration::from_secs(15)), "the majority side still commits");
    assert!(
        g.etcd(&ids[2]).expect("client").put("isolated", "x").is_err(),
        "the isolated member cannot commit a write"
    );
    assert!(g.etcd_alive(&ids[2]), "it is cut off, not dead");

    p.heal().expect("heal");
    assert!(put_within(&g, &ids[2], "after", Duration::from_secs(20)), "healed, the member commits again");
    assert_eq!(g.get(&ids[2], "during").expect("read"), Some("v".to_string()), "and has what it missed");
}
