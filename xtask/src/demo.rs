//! `cargo xtask demo` (being written).

pub fn run(_args: &[String]) -> Result<(), String> {
    Err("not built yet: see the open issues".into())
}
