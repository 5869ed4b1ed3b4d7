//! The TypeScript SDK package (`client-sdk/typescript`): built, tested with Node's test runner
//! against the real server over gRPC and gRPC-Web.
//!
//! The test installs the package's npm packages when they are missing (`npm ci`), builds it
//! (`npm run build`: code generated from `proto/`, then `tsc`), checks that `npm pack` would ship
//! the built entry points and their types, and runs `node --test` on `test/*.test.mjs`, which
//! start this package's server binary (`CLIENT_INFO_SERVER_BIN`) on databases of their own.
//! Without Node.js it says so on stderr and passes; `.ci/install-tools` installs the npm
//! packages.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// What `npm pack` must ship: the two entry points, their types, and the generated code.
const PACKED: &[&str] = &[
    "package.json",
    "README.md",
    "dist/index.js",
    "dist/index.d.ts",
    "dist/node.js",
    "dist/node.d.ts",
    "dist/gen/clientinfo/v1/client_info_service_pb.js",
    "dist/gen/clientinfo/v1/client_info_service_pb.d.ts",
    "dist/gen/google/rpc/error_details_pb.js",
];

fn package() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../client-sdk/typescript")
}

/// Runs `program args` in the package's folder; panics with its output when it fails.
fn run(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .current_dir(package())
        .env(
            "CLIENT_INFO_SERVER_BIN",
            env!("CARGO_BIN_EXE_client-info-server-under-test"),
        )
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {} failed ({}):\n{}\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn available(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn the_typescript_sdk_builds_packs_and_passes_its_tests_over_grpc_and_grpc_web() {
    if !available("node") || !available("npm") {
        eprintln!(
            "SKIPPED the_typescript_sdk_builds_packs_and_passes_its_tests_over_grpc_and_grpc_web: \
             Node.js (node, npm) not found"
        );
        return;
    }
    let dir = package();
    if !dir.join("node_modules/.bin/tsc").exists() || !dir.join("node_modules/.bin/buf").exists() {
        run("npm", &["ci", "--no-audit", "--no-fund", "--silent"]);
    }
    run("npm", &["run", "--silent", "build"]);

    let pack = run("npm", &["pack", "--dry-run", "--json", "--ignore-scripts"]);
    let listing: serde_json::Value =
        serde_json::from_slice(&pack.stdout).expect("npm pack --json prints JSON");
    let files: Vec<&str> = listing[0]["files"]
        .as_array()
        .expect("npm pack lists the files")
        .iter()
        .filter_map(|f| f["path"].as_str())
        .collect();
    for wanted in PACKED {
        assert!(
            files.contains(wanted),
            "npm pack leaves out {wanted}: {files:?}"
        );
    }
    assert!(
        files.iter().all(|f| !f.starts_with("src/")
            && !f.starts_with("test/")
            && !f.starts_with("node_modules/")),
        "npm pack ships sources, tests or dependencies: {files:?}"
    );

    let mut tests: Vec<String> = std::fs::read_dir(dir.join("test"))
        .expect("read client-sdk/typescript/test")
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| name.ends_with(".test.mjs"))
        .map(|name| format!("test/{name}"))
        .collect();
    tests.sort();
    assert!(!tests.is_empty(), "no test/*.test.mjs in {}", dir.display());
    let mut args = vec!["--test", "--test-reporter=spec"];
    args.extend(tests.iter().map(String::as_str));
    let out = run("node", &args);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("ℹ fail 0") || report.contains("# fail 0"),
        "node --test reported failures:\n{report}"
    );
}
