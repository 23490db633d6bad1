//! `cargo xtask dist` and `cargo xtask smoke`: the release build of the three
//! binaries as fully static `x86_64-unknown-linux-musl` executables in
//! `target/dist/` (next to the generated units and a `SHA256SUMS`), and a
//! smoke run of those executables in an empty root directory.
//!
//! Two routes lead to a static build. Where rustup has the musl target, the
//! ordinary `cargo build --target x86_64-unknown-linux-musl`. Otherwise the
//! route of `docs/build-and-test.md`: Debian's Rust 1.96 (`rustc-web`, `cargo-web`,
//! `rust-web-src`) building the standard library from source, with
//! `cargo-zigbuild` and zig (`pip install ziglang`) as the linker. That route
//! puts Debian's `/usr/bin` first on `PATH` only in the build's own child
//! process: this module must never change the environment of anything else,
//! and never install a tool unless told to (`--install-toolchain`), except the
//! `file` command that the check of the results needs. Each route builds in
//! its own target dir, so it does not fight the ordinary dev builds for the
//! cargo lock or invalidate their fingerprints.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::units::{self, BINARIES};
use crate::util::{cargo, have, is_root, root};

/// The target triple of the static binaries.
pub const TARGET: &str = "x86_64-unknown-linux-musl";

/// The oldest Debian Rust whose standard library source builds our code.
const MIN_DEBIAN_RUST: (u32, u32) = (1, 96);

/// Where the finished binaries, units and `SHA256SUMS` go.
pub fn dist_dir() -> PathBuf {
    root().join("target").join("dist")
}

/// `cargo xtask dist [--install-toolchain]`.
pub fn run(args: &[String]) -> Result<(), String> {
    let mut install = false;
    for arg in args {
        match arg.as_str() {
            "--install-toolchain" => install = true,
            other => {
                return Err(format!("unexpected argument {other:?}\nusage: cargo xtask dist [--install-toolchain]"));
            }
        }
    }
    build(install).map(|_| ())
}

/// Builds the static binaries into [`dist_dir`] and returns it; installs the
/// tools of the zig route first when `install` is set and they are missing.
pub fn build(install: bool) -> Result<PathBuf, String> {
    let started = Instant::now();
    let route = find_route(install)?;
    let release = compile(&route)?;
    let compiled = started.elapsed();

    let dist = dist_dir();
    if dist.exists() {
        std::fs::remove_dir_all(&dist).map_err(|e| format!("cannot empty {}: {e}", dist.display()))?;
    }
    std::fs::create_dir_all(&dist).map_err(|e| format!("cannot create {}: {e}", dist.display()))?;
    ensure_file_command()?;
    for name in BINARIES {
        let from = release.join(name);
        let to = dist.join(name);
        std::fs::copy(&from, &to).map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))?;
        let described = describe(&to)?;
        if !(described.contains("statically linked") || described.contains("static-pie linked")) {
            return Err(format!("{} is not a static executable: file says {described:?}", to.display()));
        }
        let size = std::fs::metadata(&to).map_err(|e| format!("cannot stat {}: {e}", to.display()))?.len();
        println!("{name}: {size} bytes ({:.2} MiB)\n  file: {described}", size as f64 / (1024.0 * 1024.0));
    }
    units::write(&dist, &units::generate(&units::UnitOptions::default())?)?;
    write_sums(&dist)?;
    println!(
        "dist: {} ready in {:.1} s (compile {:.1} s, {})",
        dist.display(),
        started.elapsed().as_secs_f64(),
        compiled.as_secs_f64(),
        route.name(),
    );
    Ok(dist)
}

/// How the static binaries get built on this machine.
#[derive(Debug)]
enum Route {
    /// rustup has the musl target: the ordinary cargo build.
    Rustup,
    /// The musl route of `docs/build-and-test.md`: Debian's Rust, build-std, cargo-zigbuild and zig.
    Zig(ZigTools),
}

impl Route {
    fn name(&self) -> &'static str {
        match self {
            Route::Rustup => "rustup's musl target",
            Route::Zig(_) => "Debian Rust + build-std + cargo-zigbuild",
        }
    }
}

/// The programs of the zig route, all checked to exist.
#[derive(Debug)]
struct ZigTools {
    cargo: PathBuf,
    rustc: PathBuf,
    zigbuild: PathBuf,
    zig: PathBuf,
}

/// A missing piece of the zig route, with how to install it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    DebianRust,
    Zig,
    Zigbuild,
}

impl Tool {
    fn step(self) -> &'static str {
        match self {
            Tool::DebianRust => "apt-get update && apt-get install -y rustc-web cargo-web rust-web-src",
            Tool::Zig => "pip install ziglang",
            Tool::Zigbuild => "cargo install cargo-zigbuild   (with rustup's cargo)",
        }
    }
}

fn find_route(install: bool) -> Result<Route, String> {
    if rustup_has_musl() {
        return Ok(Route::Rustup);
    }
    match zig_tools() {
        Ok(tools) => Ok(Route::Zig(tools)),
        Err(missing) if install => {
            install_tools(&missing)?;
            zig_tools().map(Route::Zig).map_err(|still| format!("after installing, still {}", steps(&still)))
        }
        Err(missing) => Err(steps(&missing)),
    }
}

/// The exact steps that make `cargo xtask dist` work, for an error message.
fn steps(missing: &[(Tool, String)]) -> String {
    let mut s = format!(
        "no route to static {TARGET} binaries on this machine. Either:\n  \
         - on an ordinary machine: rustup target add {TARGET}\n  \
         - or the route of docs/build-and-test.md (`cargo xtask dist --install-toolchain` does these, as root):\n"
    );
    for tool in [Tool::DebianRust, Tool::Zig, Tool::Zigbuild] {
        let state = match missing.iter().find(|(t, _)| *t == tool) {
            Some((_, why)) => format!("missing: {why}"),
            None => "present".into(),
        };
        s += &format!("      {}\n        [{state}]\n", tool.step());
    }
    s
}

fn rustup_has_musl() -> bool {
    Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).lines().any(|l| l.trim() == TARGET))
}

/// Finds every tool of the zig route, or lists what is missing and why.
fn zig_tools() -> Result<ZigTools, Vec<(Tool, String)>> {
    let mut missing = Vec::new();
    let debian = debian_rust().map_err(|why| missing.push((Tool::DebianRust, why))).ok();
    let zig = find_zig().map_err(|why| missing.push((Tool::Zig, why))).ok();
    let zigbuild = find_zigbuild().map_err(|why| missing.push((Tool::Zigbuild, why))).ok();
    match (debian, zig, zigbuild) {
        (Some((cargo, rustc)), Some(zig), Some(zigbuild)) => Ok(ZigTools { cargo, rustc, zigbuild, zig }),
        _ => Err(missing),
    }
}

/// Debian's `/usr/bin/cargo` and `/usr/bin/rustc`, new enough, with the
/// standard library's source.
fn debian_rust() -> Result<(PathBuf, PathBuf), String> {
    let cargo = PathBuf::from("/usr/bin/cargo");
    let rustc = PathBuf::from("/usr/bin/rustc");
    if !cargo.is_file() || !rustc.is_file() {
        return Err("no /usr/bin/cargo and /usr/bin/rustc".into());
    }
    let version = output_of(Command::new(&rustc).arg("--version"))?;
    let number = version.split_whitespace().nth(1).unwrap_or("");
    let mut parts = number.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if found < MIN_DEBIAN_RUST {
        return Err(format!(
            "/usr/bin/rustc is {:?}, older than {}.{}",
            version.trim(),
            MIN_DEBIAN_RUST.0,
            MIN_DEBIAN_RUST.1
        ));
    }
    let sysroot = output_of(Command::new(&rustc).args(["--print", "sysroot"]))?;
    let std_src = Path::new(sysroot.trim()).join("lib/rustlib/src/rust/library/std/src/lib.rs");
    if !std_src.is_file() {
        return Err(format!("no standard library source at {} (rust-web-src)", std_src.display()));
    }
    Ok((cargo, rustc))
}

/// zig from the `ziglang` Python package, else a `zig` on PATH.
fn find_zig() -> Result<PathBuf, String> {
    let script = "import os, ziglang; print(os.path.dirname(ziglang.__file__))";
    if let Ok(dir) = output_of(Command::new("python3").args(["-c", script])) {
        let zig = Path::new(dir.trim()).join("zig");
        if zig.is_file() {
            return Ok(zig);
        }
    }
    which("zig").ok_or_else(|| "no ziglang Python package and no zig on PATH".into())
}

/// `cargo-zigbuild` on PATH or in cargo's bin folder.
fn find_zigbuild() -> Result<PathBuf, String> {
    if let Some(path) = which("cargo-zigbuild") {
        return Ok(path);
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    cargo_home
        .map(|home| home.join("bin").join("cargo-zigbuild"))
        .filter(|p| p.is_file())
        .ok_or_else(|| "no cargo-zigbuild on PATH or in cargo's bin folder".into())
}

fn install_tools(missing: &[(Tool, String)]) -> Result<(), String> {
    for (tool, _) in missing {
        eprintln!("xtask dist: installing: {}", tool.step());
        match tool {
            Tool::DebianRust => {
                if !is_root() || !have("apt-get") {
                    return Err(format!("installing Debian's Rust needs root and apt-get: {}", steps(missing)));
                }
                crate::util::apt_install(&["rustc-web", "cargo-web", "rust-web-src"])?;
            }
            Tool::Zig => crate::util::run(Command::new("python3").args(["-m", "pip", "install", "ziglang"]))?,
            Tool::Zigbuild => crate::util::run(cargo().args(["install", "cargo-zigbuild"]))?,
        }
    }
    Ok(())
}

/// Builds the three packages; returns the folder holding the executables.
fn compile(route: &Route) -> Result<PathBuf, String> {
    let packages = BINARIES.iter().flat_map(|b| ["-p", b]);
    let target_dir = match route {
        Route::Rustup => root().join("target").join("musl"),
        Route::Zig(_) => root().join("target").join("musl-zig"),
    };
    let mut cmd = match route {
        Route::Rustup => {
            let mut cmd = cargo();
            cmd.args(["build", "--release", "--target", TARGET]);
            cmd
        }
        Route::Zig(tools) => {
            let zig_dir = tools.zig.parent().unwrap_or(Path::new("/"));
            let mut path = std::ffi::OsString::from(zig_dir);
            path.push(":/usr/bin:");
            path.push(std::env::var_os("PATH").unwrap_or_default());
            let mut cmd = Command::new(&tools.zigbuild);
            cmd.args(["zigbuild", "--release", "-Zbuild-std=std,panic_abort", "--target", TARGET])
                .env("PATH", path)
                .env("CARGO", &tools.cargo)
                .env("RUSTC", &tools.rustc)
                .env("CARGO_ZIGBUILD_ZIG_PATH", &tools.zig)
                .env("RUSTC_BOOTSTRAP", "1")
                .env("RUSTFLAGS", "-Clink-self-contained=no");
            for var in [
                "RUSTUP_TOOLCHAIN",
                "RUSTDOC",
                "RUSTC_WRAPPER",
                "RUSTC_WORKSPACE_WRAPPER",
                "CARGO_ENCODED_RUSTFLAGS",
                "CARGO_BUILD_TARGET",
                "CARGO_TARGET_DIR",
            ] {
                cmd.env_remove(var);
            }
            cmd
        }
    };
    cmd.arg("--target-dir").arg(&target_dir).args(packages);
    eprintln!("xtask dist: building with {} into {}", route.name(), target_dir.display());
    crate::util::run(&mut cmd)?;
    Ok(target_dir.join(TARGET).join("release"))
}

/// Makes sure the `file` command exists: installs it with apt-get when root.
fn ensure_file_command() -> Result<(), String> {
    if have("file") {
        return Ok(());
    }
    if is_root() && have("apt-get") {
        eprintln!("xtask dist: installing the `file` command");
        let install = || crate::util::run(Command::new("apt-get").args(["install", "-y", "file"]));
        if install().is_err() {
            crate::util::run(Command::new("apt-get").arg("update"))?;
            install()?;
        }
        if have("file") {
            return Ok(());
        }
    }
    Err("checking the binaries needs the `file` command: run `apt-get install -y file` as root".into())
}

/// What `file` says about one executable.
fn describe(path: &Path) -> Result<String, String> {
    output_of(Command::new("file").arg("-b").arg(path)).map(|s| s.trim().to_string())
}

/// Writes `SHA256SUMS` for every file in `dist` (in `sha256sum` format).
fn write_sums(dist: &Path) -> Result<(), String> {
    let entries = std::fs::read_dir(dist).map_err(|e| format!("cannot list {}: {e}", dist.display()))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "SHA256SUMS")
        .collect();
    names.sort();
    let sums = output_of(Command::new("sha256sum").arg("--").args(&names).current_dir(dist))?;
    std::fs::write(dist.join("SHA256SUMS"), sums).map_err(|e| format!("cannot write SHA256SUMS: {e}"))
}

/// Runs a command and returns its stdout, failing on a non-zero exit.
fn output_of(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The full path of a program on PATH.
fn which(program: &str) -> Option<PathBuf> {
    let out = Command::new("sh").args(["-c", &format!("command -v {program}")]).output().ok()?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    (out.status.success() && path.is_absolute()).then_some(path)
}

/// One smoke check: a binary, its arguments, the exit code it must give and
/// what its stdout must contain.
#[derive(Debug)]
struct Check {
    binary: &'static str,
    args: &'static [&'static str],
    code: i32,
    stdout_has: &'static [&'static str],
}

const SMOKE: [Check; 5] = [
    Check { binary: "etcd-spot-prune", args: &["--help"], code: 0, stdout_has: &["Usage:", "--dry-run"] },
    Check { binary: "etcd-spot-discover", args: &["--imds-url", "nonsense"], code: 2, stdout_has: &[] },
    // A usage error is bad usage too (exit 2), not "retry later" (1).
    Check { binary: "etcd-spot-terminate", args: &["--no-such-flag"], code: 2, stdout_has: &[] },
    Check { binary: "etcd-spot-terminate", args: &["--version"], code: 0, stdout_has: &["etcd-spot-terminate "] },
    // No token: a configuration error, with its JSON report.
    Check { binary: "etcd-spot-prune", args: &["--json"], code: 2, stdout_has: &[r#""error_kind":"config""#] },
];

/// How long one smoke run may take before it counts as hung.
const SMOKE_TIMEOUT: Duration = Duration::from_secs(60);

/// `cargo xtask smoke`: runs each static binary from `target/dist/` alone in
/// an empty root (chroot; inside a user namespace when not root), with an
/// empty environment, so that any need for the build machine's shared
/// libraries or files shows. Builds `target/dist/` first when it is missing.
pub fn smoke(args: &[String]) -> Result<(), String> {
    if let Some(arg) = args.first() {
        return Err(format!("unexpected argument {arg:?}\nusage: cargo xtask smoke"));
    }
    let dist = dist_dir();
    let missing: Vec<&str> = BINARIES.into_iter().filter(|b| !dist.join(b).is_file()).collect();
    if !missing.is_empty() {
        eprintln!("xtask smoke: {} lacks {}: building it first (cargo xtask dist)", dist.display(), missing.join(", "));
        build(false)?;
    }
    let mut failures = Vec::new();
    for check in &SMOKE {
        match run_in_empty_root(&dist, check) {
            Ok(()) => println!("smoke ok: {} {} (exit {})", check.binary, check.args.join(" "), check.code),
            Err(why) => failures.push(why),
        }
    }
    if failures.is_empty() { Ok(()) } else { Err(format!("smoke failed:\n{}", failures.join("\n"))) }
}

fn run_in_empty_root(dist: &Path, check: &Check) -> Result<(), String> {
    let work = std::env::temp_dir().join(format!("etcd-spot-smoke-{}-{}", std::process::id(), check.binary));
    let result = run_in(&work, dist, check);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn run_in(work: &Path, dist: &Path, check: &Check) -> Result<(), String> {
    let new_root = work.join("root");
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(&new_root).map_err(|e| format!("cannot create {}: {e}", new_root.display()))?;
    let binary = dist.join(check.binary);
    std::fs::copy(&binary, new_root.join(check.binary))
        .map_err(|e| format!("cannot copy {} into {}: {e}", binary.display(), new_root.display()))?;
    let chroot = which("chroot").ok_or("the smoke test needs `chroot` (coreutils)")?;
    let mut cmd = if is_root() {
        Command::new(chroot)
    } else {
        let unshare = which("unshare").ok_or("not root and no `unshare` (util-linux) for a user namespace")?;
        let mut cmd = Command::new(unshare);
        cmd.args(["--user", "--map-root-user"]).arg(chroot);
        cmd
    };
    let stdout_path = work.join("stdout");
    let stderr_path = work.join("stderr");
    let file = |p: &Path| std::fs::File::create(p).map_err(|e| format!("cannot create {}: {e}", p.display()));
    cmd.arg(&new_root)
        .arg(format!("/{}", check.binary))
        .args(check.args)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(file(&stdout_path)?)
        .stderr(file(&stderr_path)?);
    let shown = format!("{} {}", check.binary, check.args.join(" "));
    let mut child = cmd.spawn().map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    let deadline = Instant::now() + SMOKE_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("waiting for {shown}: {e}"))? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{shown}: still running after {} s", SMOKE_TIMEOUT.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let report = || format!("{shown}: {status}\n--- stdout\n{stdout}--- stderr\n{stderr}---");
    if status.code() != Some(check.code) {
        return Err(format!("expected exit {}, got {}", check.code, report()));
    }
    if let Some(needle) = check.stdout_has.iter().find(|n| !stdout.contains(**n)) {
        return Err(format!("stdout lacks {needle:?}: {}", report()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tools_give_the_exact_steps() {
        let msg = steps(&[(Tool::Zig, "no zig".into()), (Tool::Zigbuild, "no cargo-zigbuild".into())]);
        for needle in [
            "rustup target add x86_64-unknown-linux-musl",
            "cargo xtask dist --install-toolchain",
            "apt-get install -y rustc-web cargo-web rust-web-src\n        [present]",
            "pip install ziglang\n        [missing: no zig]",
            "cargo install cargo-zigbuild",
            "[missing: no cargo-zigbuild]",
        ] {
            assert!(msg.contains(needle), "{needle:?} not in:\n{msg}");
        }
    }
}
