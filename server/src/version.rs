//! What this binary is: its version and the git commit it was built from, as recorded by the
//! package's build script (`server/build.rs`). Shown by `--version`, logged at start-up and
//! exported as the `client_info_build_info` metric's labels.

/// The package version (the workspace's).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The full commit id the binary was built from (`-modified` when the checkout had
/// uncommitted changes to tracked files), or `unknown` (debug builds, builds outside a
/// checkout without `CLIENT_INFO_GIT_COMMIT`).
pub const COMMIT: &str = env!("CLIENT_INFO_COMMIT");

/// `--version`'s text after the program name: `0.1.0 (commit 0840651…)`.
pub const TEXT: &str = env!("CLIENT_INFO_VERSION_TEXT");
