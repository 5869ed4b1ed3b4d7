//! The Python SDK package (`client-sdk/python`): built as a wheel, tested with pytest against
//! the real server.
//!
//! The wheel is built the way a user builds it (`python -m build`: an sdist first, then the
//! wheel from the unpacked sdist, so the sdist is proven to carry the protos), installed with
//! pip into a folder of its own, and pytest runs `client-sdk/python/tests` with only that
//! folder on `PYTHONPATH`: the tests import the installed package, never `src/` (they check it).
//! The suite starts the server binary itself (`CLIENT_INFO_SERVER_BIN`), on a fresh database.
//!
//! Kept fast and offline: `.ci/install-tools` puts grpcio-tools, mypy-protobuf, setuptools,
//! build, pytest and mypy into `.ci/tools/venv` once; here the build runs `--no-isolation` in
//! that venv (no throw-away environment downloading its build requirements each run) and the
//! wheel is installed `--no-deps --force-reinstall --target` (its dependencies, grpcio and
//! protobuf, are the venv's own). A run takes a few seconds.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The tools venv's Python, with the SDK's build and test tools installed.
fn python(repo: &Path) -> PathBuf {
    let python = repo.join(".ci/tools/venv/bin/python");
    let ready = |p: &Path| {
        Command::new(p)
            .args([
                "-c",
                "import grpc_tools, grpc_status, build, mypy_protobuf, pytest, mypy, cryptography",
            ])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ready(&python) {
        let status = Command::new("bash")
            .arg(repo.join(".ci/install-tools"))
            .status()
            .expect("run .ci/install-tools");
        assert!(
            status.success() && ready(&python),
            "the Python SDK's tools are not installed (.ci/install-tools)"
        );
    }
    python
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn the_python_sdk_wheel_passes_its_tests_against_the_real_server() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repository path");
    let python = python(&repo);
    let work = std::env::temp_dir().join(format!("client-info-sdk-python-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let dist = work.join("dist");
    let site = work.join("site");

    let built = Command::new(&python)
        .args(["-m", "build", "--no-isolation", "--outdir"])
        .arg(&dist)
        .arg(repo.join("client-sdk/python"))
        .output()
        .expect("run python -m build");
    assert!(
        built.status.success(),
        "building the wheel failed:\n{}",
        text(&built)
    );
    let wheel = std::fs::read_dir(&dist)
        .expect("read dist")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .expect("a wheel in dist");
    assert!(
        wheel.file_name().is_some_and(|n| n
            .to_string_lossy()
            .starts_with("client_info-0.1.0-py3-none-any")),
        "unexpected wheel {wheel:?}"
    );

    let installed = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--force-reinstall",
            "--target",
        ])
        .arg(&site)
        .arg(&wheel)
        .output()
        .expect("run pip install");
    assert!(
        installed.status.success(),
        "installing the wheel failed:\n{}",
        text(&installed)
    );

    let tested = Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs"])
        .arg(repo.join("client-sdk/python/tests"))
        .current_dir(&work)
        .env("PYTHONPATH", &site)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("CLIENT_INFO_SDK_SITE", &site)
        .env(
            "CLIENT_INFO_SERVER_BIN",
            env!("CARGO_BIN_EXE_client-info-server-under-test"),
        )
        .output()
        .expect("run pytest");
    let report = text(&tested);
    let _ = std::fs::remove_dir_all(&work);
    assert!(tested.status.success(), "pytest failed:\n{report}");
    assert!(
        report.contains(" passed") && !report.contains("skipped"),
        "pytest ran nothing, or skipped tests:\n{report}"
    );
}
