//! `cargo xtask test`: installs what the tests need, then runs fmt, clippy and
//! every test. This is the README's test command and what `.ci/run` calls.

use crate::util::{apt_install, cargo, have, is_root};

pub fn run(args: &[String]) -> Result<(), String> {
    ensure_etcd()?;
    crate::util::run(cargo().args(["fmt", "--all", "--check"]))?;
    crate::util::run(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    let mut test = cargo();
    test.args(["test", "--workspace"]).args(args);
    crate::util::run(&mut test)
}

/// Makes sure the `etcd` 3.4 server is on PATH: installs Debian's etcd-server
/// when we are root with apt-get, otherwise says exactly what to install.
pub fn ensure_etcd() -> Result<(), String> {
    if have("etcd") {
        return Ok(());
    }
    if is_root() && have("apt-get") {
        eprintln!("xtask: etcd not found; installing Debian's etcd-server and etcd-client");
        apt_install(&["--no-install-recommends", "etcd-server", "etcd-client"])?;
        if have("etcd") {
            return Ok(());
        }
    }
    Err("the tests need etcd 3.4: run `sudo apt-get update && sudo apt-get install etcd-server etcd-client` \
         (Debian/Ubuntu), or put an etcd 3.4+ binary on PATH"
        .into())
}
