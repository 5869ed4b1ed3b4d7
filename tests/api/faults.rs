//! Faults between the server and PostgreSQL, injected by a [`FaultProxy`] on the server's
//! database connections (all of them: the pool, the event hub's reader, its `LISTEN` and its
//! notifier), each while CRM writers create contacts with request ids, routing writers offer
//! calls and agents watch their sessions, all through the SDK:
//! - added latency (each way) and a bandwidth limit;
//! - connections reset (RST) in the middle of a statement or of its result, and all at once;
//! - half-open connections (frozen: nothing crosses, nothing closes);
//! - refused reconnects (new connections reset at once while the old ones live), then every
//!   live connection reset under that refusal.
//!
//! For each, [`run`] proves that every acknowledged write is in the database exactly once (and
//! no write is there twice), that no call outlives its deadline, that every failure is
//! UNAVAILABLE or DEADLINE_EXCEEDED with its reason (never INTERNAL), that every offer
//! committed for an agent reaches that agent's session stream exactly once and in order (each
//! agent's desktop also reconnects while the fault lasts, resuming after its last event), and
//! that the server recovers by itself when the fault ends; it prints the time from the end of
//! the fault to the first acknowledged write.

use std::collections::{BTreeMap, BTreeSet};
use std::future::IntoFuture as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use client_info_sdk::watch::WatchOptions;
use client_info_sdk::{Client, RetryPolicy, SdkError, pb};
use client_info_server::domain::permission::Permission;
use client_info_tests::{Direction, FaultProxy, TestApp, database_url};
use futures_util::StreamExt as _;
use tonic::Code;

/// The writers' per-call deadline (the SDK's timeout), and what a call may take beyond it: the
/// SDK's own timer fires at the deadline; the margin is for a loaded 2-core machine.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
const MARGIN: Duration = Duration::from_secs(2);
/// Agents watching their sessions; routing writers; CRM writers.
const AGENTS: usize = 3;
const ROUTERS: usize = 2;
const CRMS: usize = 2;
/// How long the fault lasts.
const FAULT: Duration = Duration::from_secs(4);
/// The bound on recovery asserted (generous: the measured times are printed).
const RECOVERY: Duration = Duration::from_secs(30);

/// What went wrong in a writer or a watcher, reported at the end.
type Problems = Arc<Mutex<Vec<String>>>;

/// An acknowledged write: its key (request id or interaction id), and when the answer came.
type Acked = Arc<Mutex<Vec<(String, Instant)>>>;

/// What the writers saw fail, by code and reason.
type Failures = Arc<Mutex<BTreeMap<String, usize>>>;

/// The world of one test: its database, the server behind the proxy, the actors.
struct Rig {
    /// Owns the database (its own server is stopped).
    _base: TestApp,
    app: TestApp,
    proxy: FaultProxy,
    agents: Vec<i64>,
    agent_tokens: Vec<String>,
    routing_token: String,
    crm_token: String,
}

async fn rig() -> Rig {
    let mut base = TestApp::start().await;
    base.stop_server().await;
    let proxy = FaultProxy::postgres().await;
    let db = base.db_name.clone();
    let app = TestApp::start_on_cluster(&db, &proxy.url(&db), &database_url(&db), |c| {
        // A request waits this long for a connection before UNAVAILABLE (less than the
        // call's deadline, so that an outage answers with its reason).
        c.pool.wait_timeout = Duration::from_secs(1);
    })
    .await;
    let d = app.domain("faults", "GB").await;
    let mut agents = Vec::new();
    let mut agent_tokens = Vec::new();
    for i in 0..AGENTS {
        let user = app.user(d, &format!("Agent {i}")).await;
        agents.push(user.0);
        agent_tokens.push(app.token(d, user, &[Permission::InteractionsHandle]));
    }
    let routing = app.user(d, "Routing").await;
    let crm = app.user(d, "CRM").await;
    Rig {
        routing_token: app.token(d, routing, &[Permission::InteractionsRoute]),
        crm_token: app.token(
            d,
            crm,
            &[Permission::ContactsRead, Permission::ContactsWrite],
        ),
        agents,
        agent_tokens,
        app,
        proxy,
        _base: base,
    }
}

/// A writer's client: the test's deadline on every call, no retries of its own (the writer
/// repeats a failed write itself, so that each attempt is timed against the deadline).
async fn writer_client(app: &TestApp, token: &str) -> Client {
    Client::builder(app.url.clone())
        .token(token)
        .timeout(CALL_TIMEOUT)
        .retry(RetryPolicy::none())
        .connect()
        .await
        .expect("connect")
}

/// Runs `attempt` until it succeeds, timing each attempt against the deadline and recording
/// each failure; a failure other than UNAVAILABLE or DEADLINE_EXCEEDED with its reason is a
/// problem (and ends the repetition).
async fn until_acked<T, F, Fut>(
    key: &str,
    problems: &Problems,
    failures: &Failures,
    mut attempt: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, SdkError>>,
{
    let started = Instant::now();
    loop {
        let t = Instant::now();
        let result = attempt().await;
        let took = t.elapsed();
        if took > CALL_TIMEOUT + MARGIN {
            problems
                .lock()
                .expect("lock")
                .push(format!("{key}: an attempt took {took:?}"));
        }
        let e = match result {
            Ok(v) => return Some(v),
            Err(e) => e,
        };
        let label = format!("{:?}/{}", e.code(), e.reason().unwrap_or("-"));
        *failures.lock().expect("lock").entry(label).or_default() += 1;
        let expected = match e.code() {
            Code::Unavailable => e.reason() == Some("DATABASE_UNAVAILABLE"),
            // The server's answer carries the reason; when the client's own timer fired
            // first there is none (the SDK maps it to DEADLINE_EXCEEDED all the same).
            Code::DeadlineExceeded => matches!(e.reason(), Some("DEADLINE_EXCEEDED") | None),
            _ => false,
        };
        if !expected {
            problems.lock().expect("lock").push(format!("{key}: {e:?}"));
            return None;
        }
        if started.elapsed() > Duration::from_secs(90) {
            problems
                .lock()
                .expect("lock")
                .push(format!("{key}: never acknowledged"));
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An event a watcher received: its sequence and the interaction it offers ("" for others).
type Received = Arc<Mutex<Vec<(i64, String)>>>;

/// Watches the agent's session into `into`. When `resume` turns true (during the fault) it
/// drops its stream and opens a new one after the last sequence it received, as a desktop
/// that restarted would: the replay goes through the faulty database connections.
fn watch(
    client: Client,
    into: Received,
    problems: Problems,
    mut resume: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let options = |resume_after| WatchOptions {
        resume_after,
        // The test server's heartbeat: a stream (or its opening) silent for 6 s is dropped
        // and opened again.
        heartbeat_interval: Duration::from_millis(500),
        ..WatchOptions::default()
    };
    tokio::spawn(async move {
        let mut stream = Box::pin(client.watch_session(options(0)));
        let mut last = 0;
        let mut resumed = false;
        loop {
            let event = tokio::select! {
                e = stream.next() => match e {
                    Some(e) => e,
                    None => {
                        problems.lock().expect("lock").push("watch: the stream ended".into());
                        return;
                    }
                },
                _ = resume.wait_for(|r| *r), if !resumed => {
                    resumed = true;
                    stream = Box::pin(client.watch_session(options(last)));
                    continue;
                }
            };
            let event = match event {
                Ok(e) => e,
                Err(e) => {
                    if e.code() == Code::Internal {
                        problems.lock().expect("lock").push(format!("watch: {e:?}"));
                    }
                    continue;
                }
            };
            if event.sequence > 0 {
                last = event.sequence;
            }
            let offered = match &event.event {
                Some(pb::agent_event::Event::InteractionOffered(o)) => o
                    .panel
                    .as_ref()
                    .map(|p| p.interaction_id.clone())
                    .unwrap_or_default(),
                Some(
                    pb::agent_event::Event::Snapshot(_) | pb::agent_event::Event::Heartbeat(_),
                ) => {
                    continue;
                }
                _ => String::new(),
            };
            into.lock().expect("lock").push((event.sequence, offered));
        }
    })
}

/// Something done to the proxy.
type Action = Box<dyn Fn(&FaultProxy) + Send + Sync>;
/// Something done to the proxy again and again (with the count of times so far).
type Repeated = Box<dyn Fn(&FaultProxy, u64) + Send + Sync>;

/// A fault: what to do when it starts, and when it ends.
struct Fault {
    name: &'static str,
    /// How long it lasts ([`FAULT`], or zero for one that ends as it starts).
    lasts: Duration,
    start: Action,
    /// Repeated every 200 ms while the fault lasts (resets that keep coming).
    during: Repeated,
    end: Action,
}

/// The measured outcome of one run.
struct Outcome {
    /// From the end of the fault until every kind of writer had a write acknowledged.
    recovery: Duration,
    /// Failed attempts (all UNAVAILABLE or DEADLINE_EXCEEDED).
    failed: usize,
    /// Connections the proxy reset, and refused.
    resets: u64,
    refused: u64,
}

/// Runs writers and watchers through `fault` and checks everything the module promises.
async fn run(fault: Fault) -> Outcome {
    let rig = rig().await;
    let stop = Arc::new(AtomicBool::new(false));
    let problems = Problems::default();
    let failures = Failures::default();

    let received: Vec<Received> = (0..AGENTS).map(|_| Received::default()).collect();
    let (resume, resumes) = tokio::sync::watch::channel(false);
    let mut watchers = Vec::new();
    for (token, r) in rig.agent_tokens.iter().zip(&received) {
        let client = rig.app.client(Some(token)).await;
        watchers.push(watch(client, r.clone(), problems.clone(), resumes.clone()));
    }

    let offers = Acked::default();
    let contacts = Acked::default();
    let mut writers = Vec::new();
    for r in 0..ROUTERS {
        let client = writer_client(&rig.app, &rig.routing_token).await;
        let (stop, log, problems, failures) = (
            stop.clone(),
            offers.clone(),
            problems.clone(),
            failures.clone(),
        );
        let agents = rig.agents.clone();
        writers.push(tokio::spawn(async move {
            let mut i = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let id = format!("call-{r}-{i}");
                let agent = agents[(i + r) % agents.len()];
                let number = format!("+44 7400 {}{:05}", r + 1, i);
                let acked = until_acked(&id, &problems, &failures, || {
                    client.offer_call(&id, &number, agent).into_future()
                })
                .await;
                if acked.is_some() {
                    log.lock().expect("lock").push((id, Instant::now()));
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            i
        }));
    }
    for w in 0..CRMS {
        let client = writer_client(&rig.app, &rig.crm_token).await;
        let (stop, log, problems, failures) = (
            stop.clone(),
            contacts.clone(),
            problems.clone(),
            failures.clone(),
        );
        writers.push(tokio::spawn(async move {
            let mut j = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let request = format!("crm-{w}-{j}");
                let acked = until_acked(&request, &problems, &failures, || {
                    client
                        .new_contact(format!("Fault Contact {w} {j}"))
                        .request_id(&request)
                        .into_future()
                })
                .await;
                if acked.is_some() {
                    log.lock().expect("lock").push((request, Instant::now()));
                }
                j += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            j
        }));
    }

    // Writes flow and reach the streams, then the fault, then its end. (A stream resumed
    // before its first event would start over with a snapshot, which shows the offers as
    // open interactions rather than as events.)
    let acked = || offers.lock().expect("lock").len() + contacts.lock().expect("lock").len();
    let streaming = || received.iter().all(|r| !r.lock().expect("lock").is_empty());
    let warm = Instant::now();
    while acked() < 40 || !streaming() {
        assert!(
            warm.elapsed() < Duration::from_secs(30),
            "writes flow before the fault"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = acked();
    // Connections are reused: at most the pool's and the hub's three, and one more for each
    // call that failed (a deadline on a loaded machine drops its connection), whatever the
    // number of requests (a pool that dropped every connection after use would have opened
    // one per request).
    let opened = rig.proxy.opened();
    let failed_before: usize = failures.lock().expect("lock").values().sum();
    assert!(
        opened <= (client_info_server::config::DEFAULT_POOL_SIZE + 3 + failed_before) as u64,
        "{}: {opened} connections opened for {before} writes",
        fault.name
    );
    let started = Instant::now();
    (fault.start)(&rig.proxy);
    let mut tick = 0;
    while started.elapsed() < fault.lasts {
        (fault.during)(&rig.proxy, tick);
        tick += 1;
        if started.elapsed() >= fault.lasts / 2 {
            // The agents' desktops reconnect while the fault lasts (halfway).
            resume.send_replace(true);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // (At once for a fault that ends as it starts.)
    resume.send_replace(true);
    let during = acked() - before;
    (fault.end)(&rig.proxy);
    let ended = Instant::now();

    // Writes go on by themselves: each writer gets some through after the end.
    let after = |log: &Acked| {
        log.lock()
            .expect("lock")
            .iter()
            .filter(|a| a.1 > ended)
            .count()
    };
    loop {
        if after(&offers) >= 10 && after(&contacts) >= 10 {
            break;
        }
        assert!(
            ended.elapsed() < Duration::from_secs(60),
            "{}: writes resume after the fault ({} offers, {} contacts since); problems: {:?}",
            fault.name,
            after(&offers),
            after(&contacts),
            problems.lock().expect("lock")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let mut attempted = Vec::new();
    for w in writers {
        attempted.push(w.await.expect("writer"));
    }
    let first = |log: &Acked| {
        log.lock()
            .expect("lock")
            .iter()
            .map(|a| a.1)
            .filter(|at| *at > ended)
            .min()
            .map(|at| at - ended)
            .expect("writes after the fault")
    };
    // Recovered once every kind of writer got a write through again.
    let (first_offer, first_contact) = (first(&offers), first(&contacts));
    let recovery = first_offer.max(first_contact);

    let problems_now = problems.lock().expect("lock").clone();
    assert!(problems_now.is_empty(), "{}: {problems_now:#?}", fault.name);

    // In the database: every acknowledged write once, no write twice. Each writer repeated
    // a key until it was acknowledged, so every key it tried is acknowledged.
    let mut conn = rig.app.db().await;
    let contact_rows = counts(
        &mut conn,
        "SELECT display_name AS key, count(*) AS n FROM contacts \
         WHERE display_name LIKE 'Fault Contact %' GROUP BY display_name",
    )
    .await;
    let offer_rows = counts(
        &mut conn,
        "SELECT external_id AS key, count(*) AS n FROM interactions GROUP BY external_id",
    )
    .await;
    let twice: Vec<_> = contact_rows
        .iter()
        .chain(&offer_rows)
        .filter(|(_, n)| **n > 1)
        .collect();
    assert!(twice.is_empty(), "{}: written twice: {twice:?}", fault.name);
    let offers = offers.lock().expect("lock").clone();
    let contacts = contacts.lock().expect("lock").clone();
    for (request, _) in &contacts {
        let name = request
            .strip_prefix("crm-")
            .map(|k| format!("Fault Contact {}", k.replace('-', " ")))
            .expect("a request id");
        assert_eq!(
            contact_rows.get(&name),
            Some(&1),
            "{}: acknowledged {request} is there once",
            fault.name
        );
    }
    for (id, _) in &offers {
        assert_eq!(
            offer_rows.get(id),
            Some(&1),
            "{}: acknowledged {id} is there once",
            fault.name
        );
    }
    assert_eq!(
        offer_rows.len(),
        offers.len(),
        "{}: every offer in the database was acknowledged",
        fault.name
    );
    assert_eq!(
        contact_rows.len(),
        contacts.len(),
        "{}: every contact in the database was acknowledged",
        fault.name
    );

    // Every offer committed for an agent reaches the agent's stream once, in order.
    let mut expected: Vec<BTreeSet<String>> = vec![BTreeSet::new(); AGENTS];
    let assigned = counts(
        &mut conn,
        "SELECT external_id AS key, agent_id AS n FROM interactions",
    )
    .await;
    for (external_id, agent_id) in assigned {
        let i = rig
            .agents
            .iter()
            .position(|x| *x == agent_id)
            .expect("an agent");
        expected[i].insert(external_id);
    }
    let waited = Instant::now();
    for (i, r) in received.iter().enumerate() {
        loop {
            let got: BTreeSet<String> = r
                .lock()
                .expect("lock")
                .iter()
                .filter(|e| !e.1.is_empty())
                .map(|e| e.1.clone())
                .collect();
            if expected[i].is_subset(&got) {
                break;
            }
            if waited.elapsed() >= Duration::from_secs(60) {
                // What the agent missed, by sequence, and what it got around it.
                let stored = counts(
                    &mut conn,
                    &format!(
                        "SELECT sequence::text AS key, xid::text::bigint AS n FROM events \
                         WHERE {} = ANY(agent_ids)",
                        rig.agents[i]
                    ),
                )
                .await;
                let got: BTreeSet<i64> = r.lock().expect("lock").iter().map(|e| e.0).collect();
                let missing: Vec<_> = stored
                    .keys()
                    .filter_map(|k| k.parse::<i64>().ok())
                    .filter(|k| !got.contains(k))
                    .collect();
                eprintln!(
                    "agent {i}: missing sequences {missing:?}; received {:?}",
                    r.lock().expect("lock")
                );
            }
            assert!(
                waited.elapsed() < Duration::from_secs(60),
                "{}: agent {i} misses {:?} (of {}; got {}); problems {:?}",
                fault.name,
                expected[i].difference(&got).take(5).collect::<Vec<_>>(),
                expected[i].len(),
                got.len(),
                problems.lock().expect("lock")
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // A little longer, for a duplicate that would come late.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for w in watchers {
        w.abort();
    }
    for (i, r) in received.iter().enumerate() {
        let r = r.lock().expect("lock");
        let mut per_offer: BTreeMap<&str, usize> = BTreeMap::new();
        for e in r.iter().filter(|e| !e.1.is_empty()) {
            *per_offer.entry(&e.1).or_default() += 1;
        }
        let dup: Vec<_> = per_offer.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            dup.is_empty(),
            "{}: agent {i} got offers twice: {dup:?}",
            fault.name
        );
        assert_eq!(
            per_offer.len(),
            expected[i].len(),
            "{}: agent {i} got only committed offers",
            fault.name
        );
        assert!(
            r.windows(2).all(|w| w[0].0 < w[1].0),
            "{}: agent {i}: events in increasing order",
            fault.name
        );
    }
    let problems_now = problems.lock().expect("lock").clone();
    assert!(problems_now.is_empty(), "{}: {problems_now:#?}", fault.name);
    assert!(
        recovery < RECOVERY,
        "{}: recovered in {recovery:?}",
        fault.name
    );
    println!(
        "fault {}: {} offers and {} contacts acknowledged ({before} before the fault, {during} \
         during it, {} attempted keys), failures {:?}, proxy resets {}, refused {}; \
         first offer {:.2} s, first contact {:.2} s after the end of the fault",
        fault.name,
        offers.len(),
        contacts.len(),
        attempted.iter().sum::<usize>(),
        failures.lock().expect("lock"),
        rig.proxy.resets(),
        rig.proxy.refused(),
        first_offer.as_secs_f64(),
        first_contact.as_secs_f64(),
    );
    let failed = failures.lock().expect("lock").values().sum();
    Outcome {
        recovery,
        failed,
        resets: rig.proxy.resets(),
        refused: rig.proxy.refused(),
    }
}

/// Runs `sql`, which selects `key` (text) and `n` (bigint), into a map.
async fn counts(conn: &mut diesel_async::AsyncPgConnection, sql: &str) -> BTreeMap<String, i64> {
    use diesel_async::RunQueryDsl as _;
    #[derive(diesel::QueryableByName)]
    struct Counted {
        #[diesel(sql_type = diesel::sql_types::Text)]
        key: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let rows: Vec<Counted> = diesel::sql_query(sql)
        .load(conn)
        .await
        .expect("read the database");
    rows.into_iter().map(|c| (c.key, c.n)).collect()
}

fn nothing() -> Repeated {
    Box::new(|_, _| {})
}

fn heal() -> Action {
    Box::new(FaultProxy::heal)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_latency_slows_writes_but_loses_and_doubles_nothing() {
    let outcome = run(Fault {
        name: "latency 100 ms each way",
        lasts: FAULT,
        start: Box::new(|p| {
            p.set_latency(Direction::Up, Duration::from_millis(100));
            p.set_latency(Direction::Down, Duration::from_millis(100));
        }),
        during: nothing(),
        end: heal(),
    })
    .await;
    assert!(outcome.recovery < RECOVERY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_a_bandwidth_limit_loses_and_doubles_nothing() {
    let outcome = run(Fault {
        name: "bandwidth 2 KB/s per connection",
        lasts: FAULT,
        start: Box::new(|p| p.set_bandwidth(2 * 1024)),
        during: nothing(),
        end: heal(),
    })
    .await;
    assert!(outcome.recovery < RECOVERY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_connections_reset_mid_statement_lose_and_double_nothing() {
    let outcome = run(Fault {
        name: "resets mid-statement",
        lasts: FAULT,
        start: Box::new(|_| {}),
        // Every 200 ms: a statement cut after a few of its bytes, a result cut in its
        // middle, or every connection at once.
        during: Box::new(|p, tick| match tick % 3 {
            0 => p.reset_after(Direction::Up, 1 + (tick * 37) % 120),
            1 => p.reset_after(Direction::Down, 1 + (tick * 53) % 400),
            _ => p.reset_all(),
        }),
        end: heal(),
    })
    .await;
    // The fault bit: connections were reset and writes failed (and were repeated).
    assert!(outcome.resets >= 10 && outcome.failed > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_half_open_connections_are_left_behind() {
    // Every connection open now freezes for good (and its PostgreSQL session stays, with any
    // transaction it had open); new connections work, so the fault "ends" as it starts: the
    // server must leave the frozen ones behind by itself. Recovery counts from the freeze.
    let outcome = run(Fault {
        name: "half-open connections",
        lasts: Duration::ZERO,
        start: Box::new(FaultProxy::freeze),
        during: nothing(),
        end: heal(),
    })
    .await;
    // The frozen connections cost their requests a deadline each.
    assert!(outcome.failed > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_refused_reconnects_then_resets_lose_and_double_nothing() {
    // New connections are refused while the old ones live; halfway, every live one is
    // reset too, so the server has none and cannot make one until the end.
    let outcome = run(Fault {
        name: "refused reconnects",
        lasts: FAULT,
        start: Box::new(|p| p.refuse(true)),
        during: Box::new(|p, tick| {
            if tick == 10 {
                p.reset_all();
            }
        }),
        end: heal(),
    })
    .await;
    assert!(outcome.refused > 0 && outcome.resets > 0 && outcome.failed > 0);
}
