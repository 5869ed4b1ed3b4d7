//! Build script: records the git commit a release binary is built from, for `--version`, the
//! start-up log and the `client_info_build_info` metric (`src/version.rs`).
//!
//! Written by hand rather than with vergen-gitcl: it is one `git rev-parse` and one
//! `git status`, where the crate would bring derive_builder, darling and time into every build.
//!
//! - `CLIENT_INFO_GIT_COMMIT` set (a build from a source tarball, or a packager's own
//!   pipeline): that value is used as is.
//! - Release profile (`cargo build --release`, the Debian package): `git rev-parse HEAD` of the
//!   checkout, with `-modified` when tracked files differ from it; `unknown` outside a checkout
//!   or without git. Rerun when HEAD, the branch it points at, or the sources change.
//! - Debug profile: not recorded (`--version` says so), so that a commit does not rebuild the
//!   server and everything above it during development.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=CLIENT_INFO_GIT_COMMIT");
    let given = std::env::var("CLIENT_INFO_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty());
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    let (commit, text) = match given {
        Some(commit) => (commit.trim().to_owned(), None),
        None if release => (from_git().unwrap_or_else(|| "unknown".to_owned()), None),
        None => (
            "unknown".to_owned(),
            Some("commit not recorded in debug builds".to_owned()),
        ),
    };
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let text = text.unwrap_or_else(|| format!("commit {commit}"));
    println!("cargo::rustc-env=CLIENT_INFO_COMMIT={commit}");
    println!("cargo::rustc-env=CLIENT_INFO_VERSION_TEXT={version} ({text})");
}

/// The checkout's commit, `-modified` when tracked files differ; `None` outside a checkout.
fn from_git() -> Option<String> {
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git").args(args).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let git_dir = PathBuf::from(git(&["rev-parse", "--absolute-git-dir"])?);
    let common_dir = git(&["rev-parse", "--path-format=absolute", "--git-common-dir"])
        .map(PathBuf::from)
        .unwrap_or_else(|| git_dir.clone());
    // Not the index: `git status` (ours included) rewrites it, which would rebuild the server
    // at every build; edits are seen through the source folders below instead.
    let mut watched = vec![git_dir.join("HEAD"), common_dir.join("packed-refs")];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(common_dir.join(branch));
    }
    // Only files that exist: cargo reruns the script on every build for a missing one (a
    // branch whose ref is only in packed-refs, a repository never packed).
    for file in watched.iter().filter(|f| f.exists()) {
        println!("cargo::rerun-if-changed={}", file.display());
    }
    // Edits to the sources change the binary: look at the tree again when they do.
    for dir in ["src", "../migrations", "../proto", "../web/dist"] {
        println!("cargo::rerun-if-changed={dir}");
    }
    let commit = git(&["rev-parse", "HEAD"])?;
    let modified = git(&[
        "--no-optional-locks",
        "status",
        "--porcelain",
        "--untracked-files=no",
    ])
    .is_some_and(|s| !s.is_empty());
    Some(if modified {
        format!("{commit}-modified")
    } else {
        commit
    })
}
