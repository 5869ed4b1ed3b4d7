//! High availability, against a PostgreSQL cluster of the test's own ([`PgCluster`]: a
//! primary and a streaming standby made with `initdb` and `pg_basebackup -R`, on free ports,
//! removed at the end): a failover with writes and session streams in flight, and reads from
//! standbys (a lagging one, a stopped one).

use std::collections::{BTreeMap, BTreeSet};
use std::future::IntoFuture as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use client_info_sdk::watch::WatchOptions;
use client_info_sdk::{Client, SdkError, pb};
use client_info_server::domain::permission::Permission;
use client_info_tests::{PgCluster, TestApp, metric, scrape};
use futures_util::StreamExt as _;

const AGENTS: usize = 3;

/// Runs `attempt` until it succeeds, waiting a little after each retryable failure, as a
/// routing system or a CRM does; panics on any other failure (INTERNAL, say). The SDK retries
/// a few times itself; an outage longer than its budget comes back here.
async fn until_ok<T, F, Fut>(what: &str, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, SdkError>>,
{
    let started = Instant::now();
    loop {
        match attempt().await {
            Ok(v) => return v,
            Err(e) if e.is_retryable() && started.elapsed() < Duration::from_secs(60) => {
                // What the server answers while there is no primary: UNAVAILABLE, with its
                // reason and when to retry.
                assert_eq!(e.code(), tonic::Code::Unavailable, "{what}: {e:?}");
                assert_eq!(e.reason(), Some("DATABASE_UNAVAILABLE"), "{what}: {e:?}");
                assert!(
                    e.detail().is_some_and(|d| d.retry_after.is_some()),
                    "{what}: RetryInfo in {e:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{what}: {e:?}"),
        }
    }
}

/// An acknowledged write: what, and when its answer came.
#[derive(Debug, Clone)]
struct Acked {
    key: String,
    value: i64,
    at: Instant,
}

type Log = Arc<Mutex<Vec<Acked>>>;

/// An event a watcher received: its number, the interaction it offers (empty for other
/// kinds), and when.
type Received = Arc<Mutex<Vec<(i64, String, Instant)>>>;

fn watch(client: &Client, into: Received) -> tokio::task::JoinHandle<()> {
    let mut stream = Box::pin(client.watch_session(WatchOptions::default()));
    tokio::spawn(async move {
        while let Some(event) = stream.next().await {
            let Ok(event) = event else { continue };
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
            into.lock()
                .expect("lock")
                .push((event.sequence, offered, Instant::now()));
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failover_loses_no_acknowledged_write_and_streams_deliver_each_event_once() {
    let mut cluster = PgCluster::primary();
    cluster.add_standby(true);
    let db = format!("client_info_ha_{}", std::process::id());
    let url = cluster.failover_url(&db);
    let app = TestApp::start_on_cluster(&db, &url, &url, |c| {
        c.pool.wait_timeout = Duration::from_secs(1);
    })
    .await;
    let d = app.domain("ha", "GB").await;
    let mut agents = Vec::new();
    for i in 0..AGENTS {
        agents.push(
            app.actor(d, &format!("Agent {i}"), &[Permission::InteractionsHandle])
                .await,
        );
    }
    let routing = app
        .actor(d, "Routing", &[Permission::InteractionsRoute])
        .await;
    let crm = app
        .actor(
            d,
            "CRM",
            &[Permission::ContactsRead, Permission::ContactsWrite],
        )
        .await;

    let received: Vec<Received> = (0..AGENTS).map(|_| Received::default()).collect();
    let watchers: Vec<_> = agents
        .iter()
        .zip(&received)
        .map(|(a, r)| watch(&a.client, r.clone()))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Routing offers calls to the agents in turn (two writers); a CRM creates contacts with request ids.
    // Each retries the same offer (its interaction id) or the same request id until it is
    // acknowledged, through the failover.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let offers: Log = Log::default();
    let contacts: Log = Log::default();
    // Two routing writers at once, so that event transactions overlap at the crash.
    let offering: Vec<_> = (0..2)
        .map(|r| {
            let (client, stop, log) = (routing.client.clone(), stop.clone(), offers.clone());
            let agents: Vec<i64> = agents.iter().map(|a| a.user.0).collect();
            tokio::spawn(async move {
                let mut i = 0usize;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let id = format!("call-{r}-{i}");
                    let agent = agents[(i + r) % agents.len()];
                    let number = format!("+44 7400 {}{:05}", r + 1, i);
                    until_ok(&id, || client.offer_call(&id, &number, agent).into_future()).await;
                    log.lock().expect("lock").push(Acked {
                        key: id,
                        value: agent,
                        at: Instant::now(),
                    });
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(15)).await;
                }
            })
        })
        .collect();
    let creating = {
        let (client, stop, log) = (crm.client.clone(), stop.clone(), contacts.clone());
        tokio::spawn(async move {
            let mut j = 0usize;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let request = format!("crm-{j}");
                let created = until_ok(&request, || {
                    client
                        .new_contact(format!("HA Contact {j}"))
                        .request_id(&request)
                        .into_future()
                })
                .await;
                log.lock().expect("lock").push(Acked {
                    key: request,
                    value: created.contact.id,
                    at: Instant::now(),
                });
                j += 1;
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        })
    };

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = offers.lock().expect("lock").len() + contacts.lock().expect("lock").len();
    assert!(before > 10, "writes flow before the crash ({before})");
    let killed = Instant::now();
    cluster.kill_primary();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let promoting = Instant::now();
    cluster.promote();
    // Writes go on on the new primary for a while.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let after = |log: &Log| {
            log.lock()
                .expect("lock")
                .iter()
                .filter(|a| a.at > promoting)
                .count()
        };
        if after(&offers) >= 20 && after(&contacts) >= 20 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "writes resume after the promotion"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for o in offering {
        o.await.expect("routing");
    }
    creating.await.expect("crm");
    let offers = offers.lock().expect("lock").clone();
    let contacts = contacts.lock().expect("lock").clone();

    // Every acknowledged contact is on the new primary, once: its request id answers with it.
    for c in &contacts {
        let again = crm
            .client
            .new_contact(c.key.replace("crm-", "HA Contact "))
            .request_id(&c.key)
            .await
            .expect("repeat a request id");
        assert_eq!(again.contact.id, c.value, "{} made one contact", c.key);
        assert!(!again.created, "{} was there already", c.key);
    }
    let ids: BTreeSet<i64> = contacts.iter().map(|c| c.value).collect();
    assert_eq!(ids.len(), contacts.len(), "one contact per request id");

    // Every acknowledged offer reaches its agent exactly once, in increasing order, including
    // those in flight at the crash (repeated until acknowledged).
    let mut expected: Vec<BTreeSet<String>> = vec![BTreeSet::new(); AGENTS];
    for o in &offers {
        let agent = agents
            .iter()
            .position(|a| a.user.0 == o.value)
            .expect("an agent");
        expected[agent].insert(o.key.clone());
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
            assert!(
                waited.elapsed() < Duration::from_secs(30),
                "agent {i} misses {:?}",
                expected[i].difference(&got).take(5).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for w in watchers {
        w.abort();
    }
    let mut first_event = None::<Instant>;
    for (i, r) in received.iter().enumerate() {
        let r = r.lock().expect("lock");
        let mut per_offer: BTreeMap<&str, usize> = BTreeMap::new();
        for e in r.iter().filter(|e| !e.1.is_empty()) {
            *per_offer.entry(&e.1).or_default() += 1;
        }
        let twice: Vec<_> = per_offer.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "agent {i} got offers twice: {twice:?}");
        assert_eq!(
            per_offer.len(),
            expected[i].len(),
            "agent {i}: only acknowledged offers"
        );
        assert!(
            r.windows(2).all(|w| w[0].0 < w[1].0),
            "agent {i}: events in increasing order"
        );
        if let Some(e) = r.iter().find(|e| e.2 > promoting) {
            first_event = Some(first_event.map_or(e.2, |f| f.min(e.2)));
        }
    }

    // The promoted standby hands out transaction ids past every event's, and writes go on.
    let check = cluster.sql_in(
        cluster.standby_port,
        &db,
        "SELECT (SELECT max(xid) FROM events) < pg_current_xact_id(), pg_is_in_recovery()",
    );
    assert_eq!(
        check.trim(),
        "t|f",
        "transaction ids continue on the new primary"
    );
    crm.client
        .new_contact("After the failover")
        .await
        .expect("a new write");
    assert!(
        app.hub_listening(),
        "the event listener is on the new primary"
    );

    let first_write = offers
        .iter()
        .chain(&contacts)
        .map(|a| a.at)
        .filter(|at| *at > promoting)
        .min()
        .expect("writes after the promotion");
    println!(
        "failover: acknowledged {} offers and {} contacts ({} before the crash); \
         kill to first write {:.2} s, kill to first event on a resumed stream {:.2} s \
         (promoted {:.2} s after the kill)",
        offers.len(),
        contacts.len(),
        before,
        (first_write - killed).as_secs_f64(),
        first_event.map_or(f64::NAN, |e| (e - killed).as_secs_f64()),
        (promoting - killed).as_secs_f64(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standbys_serve_reads_and_a_caller_reads_its_own_writes_from_a_lagging_one() {
    let mut cluster = PgCluster::primary();
    let db = format!("client_info_replica_{}", std::process::id());
    // The server creates and migrates the database before the standby is copied.
    let primary = cluster.primary_url(&db);
    let mut app = TestApp::start_on_cluster(&db, &primary, &primary, |_| {}).await;
    app.stop_server().await;
    cluster.add_standby(false);
    let standby = cluster.standby_url(&db);
    let app = TestApp::start_on_cluster(&db, &primary, &primary, |c| {
        c.replicas.urls = vec![standby.clone()];
        c.replicas.max_lag = Duration::from_secs(2);
        c.replicas.wait = Duration::from_millis(100);
        c.metrics_listen = Some("127.0.0.1:0".parse().expect("address"));
    })
    .await;
    let d = app.domain("replica", "GB").await;
    let crm = app
        .actor(
            d,
            "CRM",
            &[Permission::ContactsRead, Permission::ContactsWrite],
        )
        .await;
    let replicas = app.state().replicas.expect("standbys configured");
    let started = Instant::now();
    while !replicas.probed() {
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let node = replicas.names()[0].clone();
    let reads = |scraped: &str, pool: &str| {
        metric(
            scraped,
            &format!("client_info_db_reads_total{{pool=\"{pool}\"}}"),
        )
    };

    // A position that is none is refused, naming the header.
    let mut request = tonic::Request::new(pb::GetContactRequest { contact_id: 1 });
    request
        .metadata_mut()
        .insert("x-client-info-min-lsn", "yesterday".parse().expect("ascii"));
    let refused = crm
        .client
        .contact_search()
        .get_contact(request)
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    let refused = SdkError::from(refused);
    assert_eq!(
        refused.violations().first().map(|v| v.field.as_str()),
        Some("x-client-info-min-lsn"),
        "{refused:?}"
    );

    // A fresh standby serves the reads; the writer reads its own write at once.
    let ann = crm
        .client
        .new_contact("Ann Replica")
        .phone("07400 111222")
        .await
        .expect("create")
        .contact;
    let card = crm
        .client
        .get_contact(ann.id)
        .await
        .expect("read own write");
    assert_eq!(card.display_name, "Ann Replica");
    for _ in 0..20 {
        crm.client.get_contact(ann.id).await.expect("read");
    }
    let s = scrape(app.metrics_addr()).await;
    assert!(
        reads(&s, &node) >= 20.0,
        "the standby served the reads:\n{s}"
    );
    assert_eq!(
        metric(
            &s,
            &format!("client_info_db_replica_up{{replica=\"{node}\"}}")
        ),
        1.0
    );

    // Replay paused: the standby lags. The caller still reads its own new write (the
    // standby does not have it: the primary serves it once the wait passes).
    cluster.pause_replay(true);
    let ben = crm
        .client
        .new_contact("Ben Replica")
        .await
        .expect("create")
        .contact;
    let card = crm
        .client
        .get_contact(ben.id)
        .await
        .expect("read own write");
    assert_eq!(card.display_name, "Ben Replica");
    let hits = crm
        .client
        .search()
        .name("Ben Replica")
        .page()
        .await
        .expect("search");
    assert!(
        hits.hits.iter().any(|h| matches!(
            h.contact.as_ref().and_then(|v| v.view.as_ref()),
            Some(pb::contact_view::View::Contact(c)) if c.id == ben.id
        )),
        "the search sees the caller's write"
    );
    let s = scrape(app.metrics_addr()).await;
    assert!(
        metric(
            &s,
            "client_info_db_replica_fallbacks_total{reason=\"behind\"}"
        ) >= 2.0,
        "{s}"
    );
    // Another caller, who wrote nothing, may read the standby's older state meanwhile.
    let other = app.actor(d, "Reader", &[Permission::ContactsRead]).await;
    other.client.get_contact(ann.id).await.expect("read");
    // Past the lag bound the standby is skipped altogether.
    let started = Instant::now();
    loop {
        let s = scrape(app.metrics_addr()).await;
        if metric(
            &s,
            &format!("client_info_db_replica_lag_seconds{{replica=\"{node}\"}}"),
        ) > 2.0
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "lag grows: {s}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    other
        .client
        .get_contact(ben.id)
        .await
        .expect("the primary serves it");
    let s = scrape(app.metrics_addr()).await;
    assert!(
        metric(
            &s,
            "client_info_db_replica_fallbacks_total{reason=\"lagging\"}"
        ) >= 1.0
    );

    // Replay resumed: the standby serves again.
    cluster.pause_replay(false);
    let started = Instant::now();
    loop {
        let before = reads(&scrape(app.metrics_addr()).await, &node);
        other.client.get_contact(ben.id).await.expect("read");
        if reads(&scrape(app.metrics_addr()).await, &node) > before {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the standby serves again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Stopped: skipped; reads go on from the primary.
    cluster.stop_standby();
    let started = Instant::now();
    loop {
        let s = scrape(app.metrics_addr()).await;
        if metric(
            &s,
            &format!("client_info_db_replica_up{{replica=\"{node}\"}}"),
        ) == 0.0
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the stop is seen"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..5 {
        let card = other.client.get_contact(ben.id).await.expect("read");
        assert_eq!(card.display_name, "Ben Replica");
    }
    let s = scrape(app.metrics_addr()).await;
    assert!(
        metric(
            &s,
            "client_info_db_replica_fallbacks_total{reason=\"down\"}"
        ) >= 5.0
    );
    println!(
        "reads: {} from the standby, {} from the primary",
        reads(&s, &node),
        reads(&s, "primary")
    );
}
