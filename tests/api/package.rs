//! The Debian package (`server/debian/build-deb`): its control data, files and modes, the
//! maintainer scripts, the unit (`systemd-analyze verify` and `security`, offline), lintian
//! when it is installed, the binary (stripped, its symbols in the -dbgsym package, `--version`
//! with the commit), and the
//! packaged binary run as the unit runs it against a real PostgreSQL: ExecStartPre migrates,
//! ExecStart serves with the settings file, answers the SDK, and stops on SIGTERM with exit 0.
//!
//! The package is built once per test run (`cargo build --release` when the binary is stale: a
//! few minutes on a fresh machine; CI builds it in a step of its own first).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use client_info_sdk::Client;
use client_info_tests::{FreshDatabase, ServerProcess};
use tonic_health::pb::health_check_response::ServingStatus;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repository root")
}

/// The package, built on first use.
fn package() -> &'static Path {
    static PACKAGE: OnceLock<PathBuf> = OnceLock::new();
    PACKAGE.get_or_init(|| {
        // The commit the build will record: read before it, since a commit made while the
        // tests run (development) would otherwise be taken for the package's.
        let _ = HEAD_WHEN_BUILT.set(git_head());
        let mut build = Command::new("bash");
        build.arg(repo().join("server/debian/build-deb"));
        // Without the variables cargo gives this test (CARGO_MANIFEST_DIR, CARGO_PKG_NAME ...):
        // some build scripts (ring's) watch them, and the release build would start over.
        for (key, _) in std::env::vars() {
            if [
                "CARGO_MANIFEST",
                "CARGO_PKG_",
                "CARGO_CRATE_",
                "CARGO_BIN_",
                "CARGO_PRIMARY",
            ]
            .iter()
            .any(|p| key.starts_with(p))
                || key == "CARGO_TARGET_TMPDIR"
            {
                build.env_remove(key);
            }
        }
        let out = build
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("run server/debian/build-deb");
        assert!(out.status.success(), "build-deb failed");
        let path = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .expect("build-deb prints the package's path")
            .to_owned();
        PathBuf::from(path)
    })
}

static HEAD_WHEN_BUILT: OnceLock<Option<String>> = OnceLock::new();

/// The checkout's commit, when git is there.
fn git_head() -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(repo())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The commit checked out when the package was built.
fn head_when_built() -> Option<String> {
    package();
    HEAD_WHEN_BUILT.get().cloned().flatten()
}

/// The package extracted into a temporary root (removed on drop).
struct Extracted(PathBuf);

impl Extracted {
    fn new() -> Extracted {
        Extracted::of(package())
    }

    fn of(deb: &Path) -> Extracted {
        let dir = std::env::temp_dir().join(format!(
            "client-info-deb-{}-{}",
            std::process::id(),
            client_info_tests::unshared_port()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("DEBIAN")).expect("temp dir");
        run(
            "dpkg-deb",
            &["-x".as_ref(), deb.as_os_str(), dir.as_os_str()],
        );
        run(
            "dpkg-deb",
            &[
                "-e".as_ref(),
                deb.as_os_str(),
                dir.join("DEBIAN").as_os_str(),
            ],
        );
        Extracted(dir)
    }

    fn path(&self, inside: &str) -> PathBuf {
        self.0.join(inside.trim_start_matches('/'))
    }

    fn read(&self, inside: &str) -> String {
        std::fs::read_to_string(self.path(inside)).unwrap_or_else(|e| panic!("{inside}: {e}"))
    }
}

impl Drop for Extracted {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs a command to success and returns its stdout.
fn run(program: &str, args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn field(name: &str) -> String {
    run(
        "dpkg-deb",
        &["--field".as_ref(), package().as_os_str(), name.as_ref()],
    )
    .trim()
    .to_owned()
}

#[test]
fn the_package_holds_the_binary_the_unit_the_settings_and_the_docs() {
    assert_eq!(field("Package"), "client-info-server");
    assert_eq!(field("Version"), format!("{}-1", env!("CARGO_PKG_VERSION")));
    let depends = field("Depends");
    assert!(depends.contains("libc6 (>="), "{depends}");
    assert!(depends.contains("adduser"), "{depends}");

    // Path -> (mode, owner) from the archive's listing.
    let listing = run("dpkg-deb", &["-c".as_ref(), package().as_os_str()]);
    let files: BTreeMap<String, (String, String)> = listing
        .lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let path = cols.last()?.trim_start_matches('.').to_owned();
            Some((path, (cols[0].to_owned(), cols[1].to_owned())))
        })
        .collect();
    for (path, mode) in [
        ("/usr/bin/client-info-server", "-rwxr-xr-x"),
        ("/usr/lib/systemd/system/client-info.service", "-rw-r--r--"),
        ("/usr/lib/sysusers.d/client-info.conf", "-rw-r--r--"),
        ("/etc/client-info/client-info.env", "-rw-------"),
        ("/usr/share/man/man8/client-info-server.8.gz", "-rw-r--r--"),
        (
            "/usr/share/lintian/overrides/client-info-server",
            "-rw-r--r--",
        ),
        (
            "/usr/share/doc/client-info-server/README.Debian",
            "-rw-r--r--",
        ),
        (
            "/usr/share/doc/client-info-server/README.md.gz",
            "-rw-r--r--",
        ),
        ("/usr/share/doc/client-info-server/copyright", "-rw-r--r--"),
        (
            "/usr/share/doc/client-info-server/changelog.Debian.gz",
            "-rw-r--r--",
        ),
    ] {
        let Some((got, owner)) = files.get(path) else {
            panic!("{path} missing from the package:\n{listing}")
        };
        assert_eq!(got, mode, "{path}");
        assert_eq!(owner, "root/root", "{path}");
    }

    let x = Extracted::new();
    assert_eq!(
        x.read("DEBIAN/conffiles").trim(),
        "/etc/client-info/client-info.env"
    );
    for script in ["postinst", "prerm", "postrm"] {
        run(
            "sh",
            &[
                "-n".as_ref(),
                x.path(&format!("DEBIAN/{script}")).as_os_str(),
            ],
        );
    }

    // Every setting the server reads from its environment is in the settings file, commented
    // out (the file sets nothing until the operator does).
    let binary = x.path("/usr/bin/client-info-server");
    let help = run(binary.to_str().expect("utf-8 path"), &["--help".as_ref()]);
    let settings = x.read("/etc/client-info/client-info.env");
    let names: Vec<&str> = help
        .split("[env: ")
        .skip(1)
        .filter_map(|rest| rest.split(['=', ']']).next())
        .collect();
    assert!(names.len() >= 40, "{names:?}");
    for name in names {
        assert!(
            settings
                .lines()
                .any(|l| l.starts_with(&format!("#{name}="))),
            "{name} is not in client-info.env"
        );
    }
    let set: Vec<&str> = settings
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    assert!(set.is_empty(), "the shipped settings set {set:?}");
}

#[test]
fn the_binary_is_stripped_its_symbols_are_split_off_and_it_names_its_commit() {
    let x = Extracted::new();
    let binary = x.path("/usr/bin/client-info-server");
    let sections = run("objdump", &["-h".as_ref(), binary.as_os_str()]);
    for gone in [".debug_info", ".debug_line", ".symtab"] {
        assert!(
            !sections.contains(gone),
            "{gone} left in the binary:\n{sections}"
        );
    }
    assert!(sections.contains(".gnu_debuglink"), "{sections}");
    let size = std::fs::metadata(&binary).expect("binary").len();
    eprintln!("packaged binary: {:.1} MB", size as f64 / 1e6);

    // The symbols, in the -dbgsym package beside it, under the binary's build id (where gdb
    // and Rust's backtraces look).
    let build_id = run("readelf", &["-n".as_ref(), binary.as_os_str()])
        .lines()
        .find_map(|l| l.trim().strip_prefix("Build ID: ").map(str::to_owned))
        .expect("a build id");
    let ddeb = package().with_file_name(format!(
        "client-info-server-dbgsym_{}-1_{}.ddeb",
        env!("CARGO_PKG_VERSION"),
        field("Architecture")
    ));
    let control = run("dpkg-deb", &["-f".as_ref(), ddeb.as_os_str()]);
    assert!(
        control.contains(&format!(
            "Depends: client-info-server (= {}-1)",
            env!("CARGO_PKG_VERSION")
        )) && control.contains(&format!("Build-Ids: {build_id}")),
        "{control}"
    );
    let dbg = Extracted::of(&ddeb);
    let debug_file = dbg.path(&format!(
        "/usr/lib/debug/.build-id/{}/{}.debug",
        &build_id[..2],
        &build_id[2..]
    ));
    let symbols = run("objdump", &["-t".as_ref(), debug_file.as_os_str()]);
    assert!(
        symbols.contains("client_info_server"),
        "no symbols split off"
    );

    assert!(
        x.path("/usr/share/man/man8/client-info-server.8.gz")
            .exists()
    );

    let version = run(
        binary.to_str().expect("utf-8 path"),
        &["--version".as_ref()],
    );
    let prefix = format!("client-info-server {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(version.starts_with(&prefix), "{version}");
    if let Some(head) = head_when_built() {
        assert!(
            version.starts_with(&format!("{prefix}{head}")),
            "{version} is not HEAD when the package was built ({head})"
        );
    }
}

#[test]
fn the_unit_passes_systemd_analyze_and_lintian_passes_the_package() {
    let x = Extracted::new();
    let unit = x.path("/usr/lib/systemd/system/client-info.service");
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        // Verified against this machine's units (its targets), with the command lines pointing
        // at the extracted binary: verify checks that they are executable.
        let copy = x.path("verify/client-info.service");
        std::fs::create_dir_all(copy.parent().expect("dir")).expect("mkdir");
        std::fs::write(
            &copy,
            std::fs::read_to_string(&unit).expect("unit").replace(
                "/usr/bin/client-info-server",
                &x.path("/usr/bin/client-info-server").display().to_string(),
            ),
        )
        .expect("write the unit");
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&copy)
            .output()
            .expect("systemd-analyze verify");
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success() && said.trim().is_empty(),
            "verify: {said}"
        );

        // The exposure score of the hardening, 0 (locked down) to 10 (none).
        let root = format!("--root={}", x.0.display());
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager", &root])
            .arg(&unit)
            .output()
            .expect("systemd-analyze security");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let score: f64 = text
            .lines()
            .find_map(|l| {
                l.split("Overall exposure level for client-info.service: ")
                    .nth(1)
            })
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
        eprintln!("systemd-analyze security: exposure {score}");
        assert!(score <= 2.0, "exposure {score}:\n{text}");
    } else {
        eprintln!("systemd-analyze is not installed: the unit was not verified");
    }

    if Command::new("lintian")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        let out = Command::new("lintian")
            .args(["--fail-on", "error,warning"])
            .arg(package())
            .output()
            .expect("lintian");
        assert!(
            out.status.success(),
            "lintian:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        eprintln!("lintian is not installed (Debian package lintian): the package was not linted");
    }
}

/// The unit's `[Service]` settings: each key's values in order.
fn unit_settings(unit: &str) -> BTreeMap<String, Vec<String>> {
    let mut settings: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut in_service = false;
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            in_service = line == "[Service]";
        } else if in_service
            && !line.starts_with('#')
            && let Some((key, value)) = line.split_once('=')
        {
            settings
                .entry(key.to_owned())
                .or_default()
                .push(value.to_owned());
        }
    }
    settings
}

/// `KEY=VALUE` lines of an environment file (systemd's EnvironmentFile= syntax, unquoted).
fn environment_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[tokio::test]
async fn the_packaged_binary_migrates_serves_and_stops_as_the_unit_runs_it() {
    let x = tokio::task::spawn_blocking(Extracted::new)
        .await
        .expect("extract");
    let unit = unit_settings(&x.read("/usr/lib/systemd/system/client-info.service"));
    let db = FreshDatabase::new("package");

    // The operator's settings: the shipped file with the two required lines filled in (and a
    // free port and JSON logs, for the test).
    let settings_path = unit["EnvironmentFile"][0].clone();
    let mut settings = x.read(&settings_path);
    settings.push_str(&format!(
        "DATABASE_URL={}\nCLIENT_INFO_JWT_SECRET=package-test-secret\n\
         CLIENT_INFO_LISTEN=127.0.0.1:0\nCLIENT_INFO_LOG_JSON=true\n",
        db.url()
    ));
    let mut environment: Vec<(String, String)> = unit
        .get("Environment")
        .into_iter()
        .flatten()
        .filter_map(|e| e.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    environment.extend(environment_file(&settings));
    assert!(
        environment.contains(&("CLIENT_INFO_NO_MIGRATE".into(), "true".into())),
        "the unit migrates in ExecStartPre, so the server must not: {environment:?}"
    );
    let command = |line: &str| -> Command {
        let mut words = line.split_whitespace();
        let program = words.next().expect("a program");
        assert_eq!(program, "/usr/bin/client-info-server", "{line}");
        let mut cmd = Command::new(x.path(program));
        cmd.args(words)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .envs(environment.iter().map(|(k, v)| (k, v)));
        cmd
    };

    let out = command(&unit["ExecStartPre"][0])
        .output()
        .expect("ExecStartPre");
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && said.contains("database created"),
        "ExecStartPre: {said}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let server = ServerProcess::spawn(command(&unit["ExecStart"][0]));
    let starting = server
        .log()
        .into_iter()
        .find(|l| l["fields"]["message"] == "starting")
        .expect("a starting line");
    assert_ne!(starting["fields"]["commit"], "unknown", "{starting}");

    let admin = |args: &[&str]| -> String {
        let out = command("/usr/bin/client-info-server")
            .args(args)
            .output()
            .expect("admin");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let domain = admin(&["admin", "create-domain", "acme", "--region", "GB"]);
    let user = admin(&["admin", "create-user", "--domain", &domain, "Alice"]);
    let token = admin(&[
        "admin",
        "mint-token",
        "--domain",
        &domain,
        "--user",
        &user,
        "--permissions",
        "contacts.read,contacts.write",
    ]);

    let channel = tonic::transport::Endpoint::from_shared(server.url())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let health = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("health")
        .into_inner();
    assert_eq!(health.status(), ServingStatus::Serving);
    let client = Client::builder(server.url())
        .token(token)
        .connect()
        .await
        .expect("connect the SDK");
    let created = client
        .new_contact("Ann Lee")
        .phone("+44 7400 123456")
        .await
        .expect("create a contact");
    let found = client
        .search()
        .destination("+44 7400 123456")
        .page()
        .await
        .expect("search");
    let id = match found.hits[0].contact.as_ref().and_then(|v| v.view.as_ref()) {
        Some(client_info_sdk::pb::contact_view::View::Contact(c)) => c.id,
        other => panic!("{other:?}"),
    };
    assert_eq!(id, created.contact.id);
    drop(client);

    // systemctl stop: SIGTERM, then exit 0 well within TimeoutStopSec.
    let stop_timeout = humantime_secs(&unit["TimeoutStopSec"][0]);
    let started = Instant::now();
    let log = server.log();
    let status = server.terminate().await;
    let took = started.elapsed();
    assert!(status.success(), "{status:?}; log: {log:?}");
    assert!(took < stop_timeout, "stopped in {took:?}");
    eprintln!("the packaged server stopped in {took:?} (TimeoutStopSec {stop_timeout:?})");
}

/// `30s`, `2min` as systemd writes them (seconds and minutes are all the unit uses).
fn humantime_secs(value: &str) -> Duration {
    let (number, unit) = value.split_at(
        value
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(value.len()),
    );
    let number: u64 = number.parse().expect("a number");
    match unit {
        "" | "s" => Duration::from_secs(number),
        "min" => Duration::from_secs(number * 60),
        other => panic!("unit {other} in {value}"),
    }
}
