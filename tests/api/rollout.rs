//! Rollouts: `client-info-server migrate` as a deploy step (alone, and by two replicas at
//! once), servers started with `--no-migrate`, and a schema newer than the build refused.

use client_info_tests::{FreshDatabase, server_command, unshared_port};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, SimpleAsyncConnection as _};

const SERVER: &str = env!("CARGO_BIN_EXE_client-info-server-under-test");

/// Runs the binary with `args` on `url` to completion: (success, stdout, stderr).
fn run(url: &str, args: &[&str]) -> (bool, String, String) {
    let out = server_command(SERVER)
        .args(args)
        .env("DATABASE_URL", url)
        .env("CLIENT_INFO_JWT_SECRET", "rollout-test")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run the server binary");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts a server with `args` and returns what it printed when it stopped on its own (within
/// 60 s), or `None` when it was still serving then (and was stopped).
fn start_expecting_refusal(url: &str, args: &[&str]) -> Option<String> {
    let port = unshared_port();
    let mut child = server_command(SERVER)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(args)
        .env("DATABASE_URL", url)
        .env("CLIENT_INFO_JWT_SECRET", "rollout-test")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the server");
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(60) {
        if let Ok(Some(_)) = child.try_wait() {
            let out = child.wait_with_output().expect("output");
            return Some(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            && std::time::Instant::now() > started + std::time::Duration::from_secs(5)
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[tokio::test]
async fn migrate_is_a_deploy_step_that_two_replicas_may_run_at_once() {
    let db = FreshDatabase::new("rollout_migrate");
    let url = db.url();
    // Before: a server told not to migrate refuses the empty schema, saying what to run.
    let refusal = tokio::task::spawn_blocking({
        let url = url.clone();
        move || start_expecting_refusal(&url, &["--no-migrate"])
    })
    .await
    .expect("join")
    .expect("refused");
    assert!(
        refusal.contains("pending") && refusal.contains("client-info-server migrate"),
        "{refusal}"
    );
    // Two deploy steps at once: both succeed, the migrations run once.
    let (a, b) = tokio::join!(
        tokio::task::spawn_blocking({
            let url = url.clone();
            move || run(&url, &["migrate"])
        }),
        tokio::task::spawn_blocking({
            let url = url.clone();
            move || run(&url, &["migrate"])
        }),
    );
    let (a, b) = (a.expect("join"), b.expect("join"));
    assert!(a.0 && b.0, "{a:?} {b:?}");
    assert!(a.1.contains("the schema is current (0 pending)"), "{a:?}");
    assert!(b.1.contains("the schema is current (0 pending)"), "{b:?}");
    let applied: Vec<usize> = [&a.1, &b.1]
        .iter()
        .filter_map(|out| {
            out.split(" migration(s) applied")
                .next()
                .and_then(|s| s.rsplit(' ').next())
                .and_then(|n| n.parse().ok())
        })
        .collect();
    assert_eq!(applied.len(), 2, "{a:?} {b:?}");
    assert!(
        applied.iter().filter(|n| **n > 0).count() == 1 && applied.contains(&0),
        "one step applied them, the other found nothing to do: {applied:?}"
    );
    // Again: nothing to do. And now a server with --no-migrate starts.
    let again = run(&url, &["migrate"]);
    assert!(
        again.0 && again.1.contains("0 migration(s) applied"),
        "{again:?}"
    );
    let started = tokio::task::spawn_blocking({
        let url = url.clone();
        move || start_expecting_refusal(&url, &["--no-migrate"])
    })
    .await
    .expect("join");
    assert!(started.is_none(), "it serves: {started:?}");
}

#[tokio::test]
async fn a_schema_newer_than_the_build_is_refused() {
    let db = FreshDatabase::new("rollout_newer");
    let url = db.url();
    let migrated = run(&url, &["migrate"]);
    assert!(migrated.0, "{migrated:?}");
    let mut conn = AsyncPgConnection::establish(&url).await.expect("connect");
    conn.batch_execute(
        "INSERT INTO __diesel_schema_migrations (version) VALUES ('20991231000000')",
    )
    .await
    .expect("a migration of a later release");
    let refused = run(&url, &["migrate"]);
    assert!(!refused.0, "{refused:?}");
    assert!(
        refused.2.contains("newer than this build") && refused.2.contains("20991231000000"),
        "{refused:?}"
    );
    for args in [&[][..], &["--no-migrate"][..]] {
        let refusal = tokio::task::spawn_blocking({
            let url = url.clone();
            move || start_expecting_refusal(&url, args)
        })
        .await
        .expect("join")
        .expect("refused");
        assert!(
            refusal.contains("newer than this build"),
            "{args:?}: {refusal}"
        );
    }
}
