//! The smoke run of the static binaries (`cargo xtask smoke`) as a test.
//!
//! It runs only when `ETCD_SPOT_SMOKE=1`: without it the test prints that it
//! was skipped and passes, so that a plain `cargo test --workspace` does not
//! start a two-minute release build of the standard library. That is
//! acceptable only because `.ci/run` runs `cargo xtask dist` and then
//! `cargo xtask smoke` explicitly. When enabled and `target/dist/` is
//! missing, the smoke task builds it (or fails with the exact install steps);
//! it never passes without having run the binaries.

#[test]
fn static_binaries_run_alone_in_an_empty_root() {
    if std::env::var("ETCD_SPOT_SMOKE").as_deref() != Ok("1") {
        eprintln!(
            "SKIPPED static_binaries_run_alone_in_an_empty_root: set ETCD_SPOT_SMOKE=1 to run it \
             (or run `cargo xtask smoke`, as .ci/run does)"
        );
        return;
    }
    if let Err(e) = xtask::dist::smoke(&[]) {
        panic!("{e}");
    }
}
