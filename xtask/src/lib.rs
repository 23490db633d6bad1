//! The parts of `cargo xtask` that the integration tests in `xtask/tests/`
//! call directly: the unit generator and the dist/smoke tasks.
//!
//! The `xtask` binary compiles the same modules itself; this library only
//! exposes them, and must never hold logic of its own.

pub mod dist;
pub mod units;
pub mod util;
