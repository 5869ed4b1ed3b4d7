//! The newcomer's path, exactly: a `--demo` server, the `export` lines it prints, its own
//! walkthrough, then every `$G` (grpcurl) block of the README, as written; and the admin and
//! TLS walkthroughs (with the test build of the binary, this test's database and free ports).

use std::path::{Path, PathBuf};
use std::time::Duration;

use client_info_tests::{ServerProcess, TestApp};

const SERVER: &str = env!("CARGO_BIN_EXE_client-info-server-under-test");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// grpcurl from `.ci/tools`, installed by `.ci/install-tools` when missing.
fn grpcurl() -> PathBuf {
    let path = repo().join(".ci/tools/venv/bin/grpcurl");
    if !path.exists() {
        let status = std::process::Command::new("bash")
            .arg(repo().join(".ci/install-tools"))
            .status()
            .expect("run .ci/install-tools");
        assert!(status.success(), ".ci/install-tools failed");
    }
    path
}

/// Runs `script` with bash after `prelude`; returns (exit code, stdout + stderr).
fn bash(prelude: &str, script: &str) -> (i32, String) {
    // A block that waits for a server that never comes must not hang the suite.
    let out = std::process::Command::new("timeout")
        .args(["300", "bash", "-c"])
        .arg(format!("{prelude}\nset -e -o pipefail -x\n{script}"))
        .current_dir(repo())
        .output()
        .expect("run bash");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The ```sh blocks of the README.
fn sh_blocks() -> Vec<String> {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    readme
        .split("```sh\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .map(str::to_owned)
        .collect()
}

/// The blocks that call grpcurl on the demo (`$G -plaintext`).
fn readme_blocks() -> Vec<String> {
    sh_blocks()
        .into_iter()
        .filter(|block| block.contains("$G -plaintext"))
        .collect()
}

/// A free local port that no outgoing connection takes before the server binds it.
fn free_port() -> u16 {
    client_info_tests::unshared_port()
}

#[tokio::test]
async fn the_admin_and_tls_walkthroughs_run_as_written() {
    let g = grpcurl();
    let app = TestApp::start().await;
    let blocks = sh_blocks();
    let block = |needle: &str| {
        blocks
            .iter()
            .find(|b| b.contains(needle))
            .unwrap_or_else(|| panic!("no README block with {needle:?}"))
            .clone()
    };
    // The blocks call the binary through cargo; here it is the test build of the same command
    // line, on this test's database and free ports.
    let cargo_run = "S=\"cargo run -q -p client-info-server --\"";
    let db_url = client_info_tests::database_url(&app.db_name);
    let prelude = format!("G={}\nexport DATABASE_URL={db_url}", g.display());

    let admin = block("admin create-domain").replace(cargo_run, &format!("S={SERVER}"));
    let (code, out) = bash(&prelude, &admin);
    assert_eq!(code, 0, "{admin}\n{out}");
    assert!(out.lines().any(|l| l.starts_with("eyJ")), "a token: {out}");

    let dir = std::env::temp_dir().join(format!("client-info-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let certs = block("openssl req -x509");
    let (code, out) = bash(&format!("cd {}", dir.display()), &certs);
    assert_eq!(code, 0, "{certs}\n{out}");
    let (port, metrics) = (free_port(), free_port());
    let tls = block("--tls-client-ca $DIR/ca.crt")
        .replace(cargo_run, &format!("S={SERVER}"))
        .replace("postgres://127.0.0.1/client_info_prod", &db_url)
        .replace(
            "$S --tls-cert",
            &format!("$S --listen 127.0.0.1:{port} --tls-cert"),
        )
        .replace("localhost:50051", &format!("localhost:{port}"))
        .replace("127.0.0.1:9464", &format!("127.0.0.1:{metrics}"));
    let (code, out) = tokio::task::spawn_blocking(move || {
        bash(&format!("{prelude}\nDIR={}", dir.display()), &tls)
    })
    .await
    .expect("join");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"displayName\": \"Ann Lee\""), "{out}");
    assert!(out.contains("refused: no client certificate"), "{out}");
    assert!(
        out.contains("grpc_server_handled_total{grpc_service=\"clientinfo.v1.ContactBindingService\",grpc_method=\"CreateContact\",grpc_code=\"OK\"} 1"),
        "{out}"
    );
}

#[tokio::test]
async fn the_demo_walkthrough_and_every_readme_example_run_as_written() {
    let g = grpcurl();
    let app = TestApp::start().await;
    let server = ServerProcess::start(SERVER, &app.db_name, &["--demo"], &[]);
    let start = std::time::Instant::now();
    let printed = loop {
        let printed = server.stdout();
        if printed.iter().any(|l| l.starts_with("More in the README")) {
            break printed;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the demo printed no walkthrough: {printed:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let addr = server.addr.to_string();
    let exports: Vec<&String> = printed
        .iter()
        .filter(|l| l.starts_with("export "))
        .collect();
    assert!(exports.len() >= 6, "{printed:?}");
    assert!(
        printed
            .iter()
            .any(|l| l.starts_with("G=.ci/tools/venv/bin/grpcurl")),
        "the demo prints the grpcurl that works: {printed:?}"
    );
    let prelude = format!(
        "{}\nG={}",
        exports
            .iter()
            .map(|l| l.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        g.display()
    );

    // The demo's own walkthrough.
    for line in printed.iter().filter(|l| l.starts_with("$G ")) {
        let (code, out) = bash(&prelude, line);
        if line.contains("PERMISSION_DENIED") {
            assert_ne!(code, 0, "{line}\n{out}");
            assert!(out.contains("PermissionDenied"), "{line}\n{out}");
        } else {
            assert_eq!(code, 0, "{line}\n{out}");
        }
    }

    // The README's blocks, in order, in one shell (later blocks use what earlier ones set).
    let blocks = readme_blocks();
    assert!(blocks.len() >= 5, "{} blocks", blocks.len());
    let (streams, calls): (Vec<String>, Vec<String>) = blocks
        .into_iter()
        .map(|b| b.replace("127.0.0.1:50051", &addr))
        .partition(|b| b.contains("WatchAgentSession"));
    let (code, out) = bash(&prelude, &calls.join("\n"));
    assert_eq!(code, 0, "a README example failed:\n{out}");
    for block in streams {
        // Streams until interrupted: give it 15 s (grpcurl from PyPI starts slowly on a loaded
        // machine), and it must have sent the snapshot.
        let (code, out) = bash(&format!("{prelude}\nG=\"timeout 15 $G\""), &block);
        assert_eq!(code, 124, "{block}\n{out}");
        assert!(out.contains("\"snapshot\""), "{block}\n{out}");
    }

    // A second demo run on the same database works as well (fresh interaction id).
    drop(server);
    let again = ServerProcess::start(SERVER, &app.db_name, &["--demo"], &[]);
    let start = std::time::Instant::now();
    let printed = loop {
        let printed = again.stdout();
        if printed.iter().any(|l| l.starts_with("More in the README")) {
            break printed;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{printed:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let prelude = format!(
        "{}\nG={}",
        printed
            .iter()
            .filter(|l| l.starts_with("export "))
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n"),
        g.display()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    for line in printed
        .iter()
        .filter(|l| l.starts_with("$G ") && !l.contains("PERMISSION_DENIED"))
    {
        let (code, out) = bash(&prelude, line);
        assert_eq!(code, 0, "second run: {line}\n{out}");
    }
}

#[tokio::test]
async fn the_identity_provider_walkthrough_runs_as_written() {
    grpcurl();
    let ready = std::process::Command::new(repo().join(".ci/tools/venv/bin/python"))
        .args(["-c", "import jwt, cryptography"])
        .status()
        .is_ok_and(|s| s.success());
    if !ready {
        let status = std::process::Command::new("bash")
            .arg(repo().join(".ci/install-tools"))
            .status()
            .expect("run .ci/install-tools");
        assert!(status.success(), ".ci/install-tools failed");
    }
    let app = TestApp::start().await;
    let db_url = client_info_tests::database_url(&app.db_name);
    let port = free_port();
    let block = sh_blocks()
        .into_iter()
        .find(|b| b.contains("--jwt-jwks-url \"file://"))
        .expect("the README's identity provider walkthrough")
        .replace(
            "S=\"cargo run -q -p client-info-server --\"",
            &format!("S={SERVER}"),
        )
        .replace("postgres://127.0.0.1/client_info_idp", &db_url)
        .replace("127.0.0.1:50061", &format!("127.0.0.1:{port}"));
    let (code, out) = tokio::task::spawn_blocking(move || bash("", &block))
        .await
        .expect("join");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"displayName\": \"Ann Lee\""), "{out}");
    assert!(
        out.contains("\"name\": \"ann\""),
        "created by the token's user: {out}"
    );
}
