//! Finding the `conclave` node binary from tests outside the server crate.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// The node binary built by the same `cargo test --workspace` run: `conclave` in the
/// target directory beside the test binary's `deps/` directory. `CONCLAVE_BIN`
/// overrides. Tests in `crates/server` should use `CARGO_BIN_EXE_conclave` instead.
pub fn node_binary() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("CONCLAVE_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let missing = |what: &str| Error::Setup(format!("cannot locate the conclave binary: {what}"));
    let exe = std::env::current_exe().map_err(|e| missing(&e.to_string()))?;
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .ok_or_else(|| missing("the test binary has no target directory"))?;
    let bin = dir.join("conclave");
    if !bin.exists() {
        return Err(missing(&format!(
            "{} is missing: build it with `cargo build --release -p conclave-server`",
            bin.display()
        )));
    }
    Ok(bin)
}
