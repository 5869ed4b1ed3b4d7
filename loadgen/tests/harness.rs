//! The harness against a real server (the integration tests' `TestApp`: the server in-process
//! on its own database): an open-loop run, a sweep with its JSON and chart, a closed-loop run
//! with JSON, a two-domain run whose bulk edits are checked in the database through the SDK,
//! and a soak of a few seconds. Only counts are asserted, never timings: the machine is shared.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Parser as _;
use client_info_loadgen::report::{Mode, Report};
use client_info_loadgen::seed::{State, StateFile, User};
use client_info_loadgen::{Cli, data};
use client_info_sdk::pb;
use client_info_server::domain::permission::Permission;
use client_info_tests::TestApp;

/// A domain of `contacts` contacts (the harness's own records) with routing, CRM and three
/// agents, as `seed` makes it (here without the admin command, which needs the server binary).
async fn seed(app: &TestApp, name: &str, contacts: u64) -> State {
    let domain = app.domain(name, "GB").await;
    let user = |label: &'static str, permissions: &'static [Permission]| async move {
        let id = app.user(domain, label).await;
        User {
            id: id.0,
            token: app.token(domain, id, permissions),
        }
    };
    let routing = user("routing", &[Permission::InteractionsRoute]).await;
    let crm = user(
        "crm",
        &[
            Permission::ContactsRead,
            Permission::ContactsWrite,
            Permission::ContactsChanges,
        ],
    )
    .await;
    let mut agents = Vec::new();
    for _ in 0..3 {
        agents.push(
            user(
                "agent",
                &[Permission::InteractionsHandle, Permission::ContactsRead],
            )
            .await,
        );
    }
    let imported = app
        .client(Some(&crm.token))
        .await
        .import_contacts(tokio_stream::iter((0..contacts).map(data::record)))
        .await
        .expect("import");
    assert_eq!(imported.imported, contacts as i64, "{:?}", imported.errors);
    State {
        domain: domain.0,
        database_url: client_info_tests::database_url(&app.db_name),
        contacts,
        routing,
        crm,
        agents,
    }
}

/// The card of contact `i` of the domain of `state`, found by its CRM id.
async fn card(app: &TestApp, state: &State, i: u64) -> pb::Contact {
    let crm = app.client(Some(&state.crm.token)).await;
    let hits = crm
        .search_contacts(pb::SearchContactsRequest {
            attributes: vec![pb::AttributeCondition {
                key: "crm_id".into(),
                value: data::crm_id(i),
            }],
            ..Default::default()
        })
        .await
        .expect("search");
    match hits.hits.first().and_then(|h| h.contact.clone()?.view) {
        Some(pb::contact_view::View::Contact(c)) => c,
        other => panic!("no card for contact {i}: {other:?}"),
    }
}

async fn loadgen(app: &TestApp, state: &Path, line: &str) {
    let argv = [
        "client-info-loadgen",
        "--url",
        &app.url,
        "--state",
        state.to_str().expect("utf-8 path"),
    ]
    .into_iter()
    .map(str::to_owned)
    .chain(line.split_whitespace().map(str::to_owned));
    let cli = Cli::try_parse_from(argv).expect("command line");
    client_info_loadgen::execute(cli)
        .await
        .unwrap_or_else(|e| panic!("{line}: {e}"));
}

/// Runs `line` with `--json json` and reads the report back.
async fn report(app: &TestApp, state: &Path, line: &str, json: &Path) -> Report {
    loadgen(app, state, &format!("{line} --json {}", json.display())).await;
    Report::read(json).expect("report")
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("loadgen-harness-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_sweep_and_two_domain_runs_against_a_real_server() {
    let app = TestApp::start().await;
    let dir = scratch();
    let state = dir.join("state.json");
    let file = StateFile {
        default: seed(&app, "lg-main", 60).await,
        domains: BTreeMap::from([("bulk".to_owned(), seed(&app, "lg-bulk", 40).await)]),
    };
    file.save(&state).expect("state file");

    // Open loop at one rate over two connections: every request due is accounted for; the
    // healthy server fails none. With --pgbench, the same SQL (the interaction, then the card
    // of the contact its `\gset` found) replayed straight to PostgreSQL at the same rate.
    let r = report(
        &app,
        &state,
        "run client-info --rate 40 --duration 1s --p99-limit 1s --no-vacuum --connections 2 --pgbench",
        &dir.join("one.json"),
    )
    .await;
    assert_eq!(r.settings.connections, Some(2));
    let [sql] = r.floor.as_slice() else {
        panic!("one floor phase: {:?}", r.floor)
    };
    assert_eq!(
        (sql.label.as_str(), sql.mode, sql.scheduled),
        ("sql 40/s", Mode::Open, 40)
    );
    assert_eq!((sql.ok, sql.unsent), (40, 0), "{:?}", sql.errors);
    assert_eq!(sql.latency_ms.count, 40);
    assert_eq!((r.scenario.as_str(), r.contacts), ("client-info", 60));
    let [p] = r.results.as_slice() else {
        panic!("one phase: {:?}", r.results)
    };
    assert_eq!(
        (p.mode, p.target_rate, p.scheduled),
        (Mode::Open, Some(40), 40)
    );
    assert_eq!(p.ok + p.error_count() + p.unsent, 40);
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    assert_eq!(p.latency_ms.count, p.ok);
    assert!(p.service_ms.is_some() && p.schedule_lag_ms.is_some());
    assert_eq!(r.settings.max_in_flight, Some(1000));
    assert!(r.crossing.is_some());

    // A sweep: one phase per rate in increasing order, its JSON and its chart.
    let chart = dir.join("sweep.svg");
    let line = format!(
        "run search-destination --sweep 40,20 --duration 1s --max-in-flight 8 --no-vacuum --pgbench --chart {}",
        chart.display()
    );
    let r = report(&app, &state, &line, &dir.join("sweep.json")).await;
    // Every request of the floor is sent or counted unsent (a stall can leave some unsent
    // within the second), none fails.
    let floor: Vec<_> = r
        .floor
        .iter()
        .map(|p| (p.label.as_str(), p.ok + p.unsent, p.errors.len()))
        .collect();
    assert_eq!(floor, [("sql 20/s", 20, 0), ("sql 40/s", 40, 0)]);
    assert_eq!(r.settings.connections, Some(1));
    let rates: Vec<_> = r
        .results
        .iter()
        .map(|p| (p.target_rate, p.scheduled))
        .collect();
    assert_eq!(rates, [(Some(20), 20), (Some(40), 40)]);
    assert_eq!(r.settings.sweep, [20, 40]);
    assert_eq!(r.settings.max_in_flight, Some(8));
    let svg = std::fs::read_to_string(&chart).expect("chart written");
    assert!(svg.starts_with("<svg") && svg.contains("p99.9"));

    // Closed loop, as before, now also as JSON, with its pgbench floor in two rounds (RPC run,
    // pgbench, RPC run, pgbench): the replayed SQL (the search and its cards in one statement)
    // runs on the real schema, and the ratio kept is the median round's.
    let r = report(
        &app,
        &state,
        "run search-attribute --concurrency 2 --duration 1s --no-vacuum --pgbench --rounds 2",
        &dir.join("closed.json"),
    )
    .await;
    assert_eq!(r.settings.rounds, Some(2));
    let floor = r.pgbench.expect("a pgbench floor");
    assert!(floor.tps > 0.0 && floor.ratio > 0.0, "{floor:?}");
    assert_eq!(floor.rounds.len(), 2);
    assert!(floor.rounds.iter().any(|f| f.ratio == floor.ratio));
    // pgbench's own latency, from a tenth of its transactions: at least one in a second.
    let own = floor.latency_ms.expect("pgbench's latency");
    assert!(own.count > 0 && own.p50 > 0.0, "{own:?}");
    let labels: Vec<_> = r.results.iter().map(|p| p.label.as_str()).collect();
    assert_eq!(labels, ["rpc 1/2", "rpc 2/2"]);
    for p in &r.results {
        assert_eq!(
            (p.mode, p.concurrency, p.target_rate),
            (Mode::Closed, Some(2), None)
        );
        assert!(p.ok > 0 && p.errors.is_empty(), "{p:?}");
        assert_eq!(p.scheduled, p.ok);
    }

    // Two domains: offers in the default domain alone, then beside a bulk sync of "bulk".
    let r = report(
        &app,
        &state,
        "run offer --rate 20 --duration 1s --bulk-domain bulk --bulk-clients 2 --no-vacuum",
        &dir.join("two.json"),
    )
    .await;
    let labels: Vec<_> = r
        .results
        .iter()
        .map(|p| (p.label.as_str(), p.domain.as_str()))
        .collect();
    assert_eq!(
        labels,
        [
            ("baseline", "default"),
            ("loaded", "default"),
            ("bulk", "bulk")
        ]
    );
    for p in &r.results[..2] {
        assert_eq!((p.scheduled, p.ok + p.error_count() + p.unsent), (20, 20));
        assert!(p.errors.is_empty(), "{:?}", p.errors);
    }
    let bulk = &r.results[2];
    assert_eq!((bulk.mode, bulk.concurrency), (Mode::Closed, Some(2)));
    assert!(bulk.ok >= 2 && bulk.errors.is_empty(), "{bulk:?}");
    let i = r.interference.expect("comparison");
    assert!(i.baseline_lock_waits.samples > 0 && i.loaded_lock_waits.samples > 0);
    assert_eq!(r.settings.bulk_domain.as_deref(), Some("bulk"));

    // The bulk edits reached the bulk domain's first contacts (each client starts with its
    // own), and the default domain's contacts were left alone.
    for i in [0, 1] {
        let c = card(&app, &file.domains["bulk"], i).await;
        assert!(c.description.starts_with("Synced from the CRM"), "{c:?}");
        assert!(c.version >= 2);
        let keys: Vec<_> = c.attributes.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(keys, ["crm_id", "synced", "tier"]);
    }
    let untouched = card(&app, &file.default, 0).await;
    assert_eq!(untouched.version, 1);

    // Watch: streams of the three agents, offers for them; with commit timestamps recorded by
    // the database, latency is from each event's commit, the write-based figure kept beside it.
    let r = report(
        &app,
        &state,
        "run watch --streams 3 --rate 20 --concurrency 1 --duration 1s --no-vacuum",
        &dir.join("watch.json"),
    )
    .await;
    let [p] = r.results.as_slice() else {
        panic!("one phase: {:?}", r.results)
    };
    assert!(p.ok > 0 && p.errors.is_empty(), "{p:?}");
    let tracked = std::process::Command::new("psql")
        .args(["-Atqc", "SHOW track_commit_timestamp"])
        .arg(&file.default.database_url)
        .output()
        .expect("psql");
    if String::from_utf8_lossy(&tracked.stdout).trim() == "on" {
        assert_eq!(p.label, "commit-to-delivery");
        let write = p.from_write_ms.expect("the write-based figure too");
        assert_eq!(write.count, p.latency_ms.count);
        assert!(p.latency_ms.p50 <= write.p50, "{p:?}");
    } else {
        assert_eq!(p.label, "write-to-delivery");
        assert!(p.from_write_ms.is_none());
    }

    // Changes: a bulk import for a second, a fast and a slow consumer of the change feed
    // (this process's memory, where the server runs, sampled): each gets every imported
    // contact's change once, in order; the slow one was behind when the import ended.
    let line = format!(
        "run changes --concurrency 1 --consumers 1 --slow-consumers 1 --slow-rate 20 --duration 1s --server-pid {}",
        std::process::id()
    );
    let r = report(&app, &state, &line, &dir.join("changes.json")).await;
    let feed = r.feed.expect("the feed's figures");
    assert!(feed.imported >= 2000, "{feed:?}");
    assert!(feed.in_order, "{feed:?}");
    assert!(feed.slow_behind_max > 0, "{feed:?}");
    assert!(feed.memory_mib.is_some_and(|m| m.max >= m.before));
    let labels: Vec<_> = r.results.iter().map(|p| (p.label.as_str(), p.ok)).collect();
    assert_eq!(
        labels,
        [
            ("import", feed.imported),
            ("write-to-delivery", feed.imported)
        ]
    );
    assert!(
        r.results.iter().all(|p| p.errors.is_empty()),
        "{:?}",
        r.results
    );

    let _ = std::fs::remove_dir_all(&dir);
}

/// A soak of a few seconds with tiny numbers: the closed-loop run that sets the rate, one
/// interval a second with every series sampled (this process is the server), the summary and
/// the chart. The limits are lifted: a slope per hour from three seconds says nothing, and
/// the machine is shared; the verdict's logic is unit-tested in `soak.rs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_soak_against_a_real_server() {
    use client_info_loadgen::soak::SoakReport;

    let app = TestApp::start().await;
    let dir = scratch().join("soak");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let state = dir.join("state.json");
    StateFile {
        default: seed(&app, "lg-soak", 60).await,
        domains: BTreeMap::new(),
    }
    .save(&state)
    .expect("state file");
    let (json, chart) = (dir.join("soak.json"), dir.join("soak.svg"));
    loadgen(
        &app,
        &state,
        &format!(
            "soak --duration 4s --interval 1s --find-max 1s --concurrency 2 --streams 6 \
             --server-pid {} --rss-limit 1e9 --fd-limit 1e9 --p99-growth-limit 1e9 --no-vacuum \
             --json {} --chart {}",
            std::process::id(),
            json.display(),
            chart.display()
        ),
    )
    .await;
    let r = SoakReport::read(&json).expect("summary");
    assert!(r.passed, "{:?}", r.failures);
    assert_eq!((r.streams, r.streams_open), (6, 6));
    assert_eq!(r.rate_source.closed_concurrency, Some(2));
    let closed = r
        .rate_source
        .closed_throughput
        .expect("closed-loop maximum");
    assert_eq!(r.rate, ((closed / 2.0).round() as u64).max(1));
    assert_eq!(r.minutes.len(), 4);
    assert_eq!(r.warmup_intervals, 1);
    for m in &r.minutes {
        assert_eq!(m.error_count(), 0, "{m:?}");
        assert_eq!(m.ok, m.scheduled, "{m:?}");
        assert!(m.rss_mib.is_some() && m.fds.is_some(), "{m:?}");
        assert!(m.db_connections.is_some_and(|c| c >= 1), "{m:?}");
    }
    // The offers, accepts and closes of the watched agents arrived on their streams.
    assert!(r.minutes.iter().any(|m| m.delivery_ms.count > 0), "{r:?}");
    assert!(r.slopes.rss_mib_per_hour.is_some() && r.slopes.fds_per_hour.is_some());
    let svg = std::fs::read_to_string(&chart).expect("chart written");
    assert!(svg.starts_with("<svg") && svg.contains("server RSS"));
    let _ = std::fs::remove_dir_all(&dir);
}
