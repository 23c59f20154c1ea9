//! Where the harness finds the project and the programs it starts.

use std::path::{Path, PathBuf};

use crate::error::{HarnessError, Result};

/// The workspace root (the directory holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The programs and files the stack is made of. Each can be overridden by an environment
/// variable; the defaults are the workspace's default cargo target directory and `.venv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binaries {
    /// The approval service and CLI (`GITGATE_BIN`, default `target/debug/gitgate`).
    pub gitgate: PathBuf,
    /// The upstream Git server (`GITGATE_UPSTREAM_BIN`, default `target/debug/gitgate-upstream`).
    pub upstream: PathBuf,
    /// The filter module (`GITGATE_FILTER_WASM`, default
    /// `target/wasm32-wasip1/release/gitgate_filter.wasm`).
    pub wasm: PathBuf,
    /// Envoy (`GITGATE_ENVOY`, default `.venv/bin/envoy`).
    pub envoy: PathBuf,
}

impl Binaries {
    /// Finds the programs from the environment overrides or the defaults; does not check them.
    pub fn locate() -> Self {
        let root = workspace_root();
        let pick = |var: &str, default: PathBuf| {
            std::env::var_os(var)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or(default)
        };
        Binaries {
            gitgate: pick("GITGATE_BIN", root.join("target/debug/gitgate")),
            upstream: pick(
                "GITGATE_UPSTREAM_BIN",
                root.join("target/debug/gitgate-upstream"),
            ),
            wasm: pick(
                "GITGATE_FILTER_WASM",
                root.join("target/wasm32-wasip1/release/gitgate_filter.wasm"),
            ),
            envoy: pick("GITGATE_ENVOY", root.join(".venv/bin/envoy")),
        }
    }

    /// Fails with a hint on how to build the first program that is missing.
    pub fn check(&self) -> Result<()> {
        let build = "run `cargo xtask test`, or `cargo build -p gitgate -p gitgate-integration`";
        let checks: [(&'static str, &PathBuf, &'static str); 4] = [
            ("the gitgate binary", &self.gitgate, build),
            ("the gitgate-upstream binary", &self.upstream, build),
            ("the filter module", &self.wasm, "run `cargo xtask wasm`"),
            (
                "envoy",
                &self.envoy,
                "run `cargo xtask demo` once (it installs .venv), or set GITGATE_ENVOY",
            ),
        ];
        for (what, path, hint) in checks {
            if !path.is_file() {
                return Err(HarnessError::Missing {
                    what,
                    path: path.clone(),
                    hint,
                });
            }
        }
        Ok(())
    }
}
