//! Event ordering without a lock (see `server/src/db/outbox.rs`): concurrent writers with
//! random delays and rollbacks, a long transaction held open while the others commit (readers
//! wait for it; then it commits) and another rolled back, two server replicas, and watchers
//! that drop their stream and resume at random points on either replica. Every committed event
//! reaches its agent once, in one increasing order; nothing rolled back ever does.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use client_info_sdk::{Client, pb};
use client_info_server::db::outbox::{self, Outgoing};
use client_info_server::db::tx;
use client_info_server::domain::ids::{DomainId, UserId};
use client_info_server::domain::permission::Permission;
use client_info_tests::TestApp;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, SimpleAsyncConnection as _};
use prost::Message as _;
use rand::Rng as _;

const AGENTS: usize = 3;
const WRITERS: usize = 8;
const TRANSACTIONS: usize = 25;

/// An event whose payload names it (an InteractionClosed of interaction `marker`).
fn marker_event(marker: &str, agents: &[UserId]) -> Outgoing {
    Outgoing::to(
        agents.to_vec(),
        pb::AgentEvent {
            sequence: 0,
            occurred_at: None,
            event: Some(pb::agent_event::Event::InteractionClosed(
                pb::InteractionClosed {
                    interaction_id: marker.to_owned(),
                },
            )),
        }
        .encode_to_vec(),
    )
}

type Committed = Arc<Mutex<HashMap<UserId, BTreeSet<String>>>>;

/// How many events committed, all agents together.
static COMMITTED_EVENTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One writer: transactions of 1-3 events for random agents, random delays inside, one in
/// five rolled back. Records what committed.
async fn writer(
    url: String,
    domain: DomainId,
    agents: Vec<UserId>,
    id: usize,
    committed: Committed,
) {
    let mut conn = AsyncPgConnection::establish(&url).await.expect("connect");
    for t in 0..TRANSACTIONS {
        let (events, delay, rollback) = {
            let mut rng = rand::rng();
            let n = rng.random_range(1..=3);
            let events: Vec<(String, Vec<UserId>)> = (0..n)
                .map(|e| {
                    let who: Vec<UserId> = agents
                        .iter()
                        .copied()
                        .filter(|_| rng.random_bool(0.6))
                        .collect();
                    let who = if who.is_empty() { vec![agents[0]] } else { who };
                    (format!("w{id}-t{t}-e{e}"), who)
                })
                .collect();
            (
                events,
                Duration::from_millis(rng.random_range(0..20)),
                rng.random_bool(0.2),
            )
        };
        let outgoing: Vec<Outgoing> = events.iter().map(|(m, who)| marker_event(m, who)).collect();
        let result = conn
            .transaction(async |conn| {
                tx::publish(conn, domain, &outgoing).await?;
                tokio::time::sleep(delay).await;
                if rollback {
                    Err(client_info_server::error::Error::Internal(
                        "rolled back on purpose".into(),
                    ))
                } else {
                    Ok(())
                }
            })
            .await;
        if result.is_ok() {
            COMMITTED_EVENTS.fetch_add(events.len(), std::sync::atomic::Ordering::SeqCst);
            let mut c = committed.lock().expect("lock");
            for (marker, who) in events {
                for agent in who {
                    c.entry(agent).or_default().insert(marker.clone());
                }
            }
        }
    }
}

/// What one watcher received: markers in arrival order, with their numbers.
type Seen = Arc<Mutex<Vec<(i64, String)>>>;

/// Watches `token`'s session, dropping the stream after a random number of messages and
/// resuming after the last number seen, on a random replica, until `done`.
async fn watcher(
    urls: Vec<String>,
    token: String,
    seen: Seen,
    done: tokio::sync::watch::Receiver<bool>,
) {
    let mut last = 0i64;
    while !*done.borrow() {
        let (url, take) = {
            let mut rng = rand::rng();
            (
                urls[rng.random_range(0..urls.len())].clone(),
                rng.random_range(1..12),
            )
        };
        // A refused open (the database busy, a replica stopping at the end) is retried, as a
        // desktop would; what matters is what arrives.
        let Ok(client) = Client::builder(url).token(&token).connect().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let mut stream = match client.watch_session_once(last).await {
            Ok(stream) => stream,
            Err(e) if e.is_retryable() => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(e) => panic!("open: {e:?}"),
        };
        for _ in 0..take {
            match tokio::time::timeout(Duration::from_millis(1500), stream.message()).await {
                Ok(Ok(Some(msg))) => {
                    let Some(event) = msg.event else { continue };
                    match event.event {
                        Some(pb::agent_event::Event::Snapshot(_)) => last = event.sequence,
                        Some(pb::agent_event::Event::InteractionClosed(c)) => {
                            assert!(event.sequence > last, "{} after {last}", event.sequence);
                            last = event.sequence;
                            seen.lock()
                                .expect("lock")
                                .push((event.sequence, c.interaction_id));
                        }
                        _ => {}
                    }
                }
                Ok(Ok(None)) | Ok(Err(_)) | Err(_) => break,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_rollbacks_long_transactions_and_resumes_lose_nothing() {
    let a = TestApp::start().await;
    let b = TestApp::start_on(&a.db_name).await;
    let d = a.domain("acme", "GB").await;
    let mut agents = Vec::new();
    let mut tokens = Vec::new();
    for i in 0..AGENTS {
        let actor = a
            .actor(d, &format!("Agent {i}"), &[Permission::InteractionsHandle])
            .await;
        agents.push(actor.user);
        tokens.push(actor.token);
    }
    let db_url = client_info_tests::database_url(&a.db_name);
    let committed: Committed = Arc::default();

    // Watchers first, on both replicas.
    let (done_tx, done) = tokio::sync::watch::channel(false);
    let urls = vec![a.url.clone(), b.url.clone()];
    let mut seen: Vec<Seen> = Vec::new();
    let mut watchers = Vec::new();
    for token in &tokens {
        let s: Seen = Arc::default();
        seen.push(s.clone());
        watchers.push(tokio::spawn(watcher(
            urls.clone(),
            token.clone(),
            s,
            done.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A long transaction holds an event open while everything else commits; another rolls back.
    let mut long = AsyncPgConnection::establish(&db_url)
        .await
        .expect("connect");
    long.batch_execute("BEGIN").await.expect("begin");
    tx::publish(&mut long, d, &[marker_event("long-commit", &[agents[0]])])
        .await
        .expect("publish");
    let mut doomed = AsyncPgConnection::establish(&db_url)
        .await
        .expect("connect");
    doomed.batch_execute("BEGIN").await.expect("begin");
    tx::publish(&mut doomed, d, &[marker_event("long-rollback", &agents)])
        .await
        .expect("publish");

    let writers: Vec<_> = (0..WRITERS)
        .map(|id| {
            tokio::spawn(writer(
                db_url.clone(),
                d,
                agents.clone(),
                id,
                committed.clone(),
            ))
        })
        .collect();
    for w in writers {
        w.await.expect("writer");
    }

    // Readers wait for the long transactions: what committed after they began is held back.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (i, s) in seen.iter().enumerate() {
        let held = s.lock().expect("lock").len();
        assert_eq!(
            held, 0,
            "agent {i} got {held} events past an open older transaction"
        );
    }
    // One ends by rolling back: the other still holds everything back.
    doomed.batch_execute("ROLLBACK").await.expect("rollback");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(seen.iter().all(|s| s.lock().expect("lock").is_empty()));
    long.batch_execute("COMMIT").await.expect("commit");
    committed
        .lock()
        .expect("lock")
        .entry(agents[0])
        .or_default()
        .insert("long-commit".into());

    // Every committed event reaches its agent once; nothing rolled back does.
    for (i, agent) in agents.iter().enumerate() {
        let expected = committed
            .lock()
            .expect("lock")
            .get(agent)
            .cloned()
            .unwrap_or_default();
        let start = std::time::Instant::now();
        loop {
            let got: BTreeSet<String> = seen[i]
                .lock()
                .expect("lock")
                .iter()
                .map(|(_, m)| m.clone())
                .collect();
            if got == expected {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "agent {i}: missing {:?}, unexpected {:?}",
                expected.difference(&got).take(5).collect::<Vec<_>>(),
                got.difference(&expected).take(5).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let _ = done_tx.send(true);
    for w in watchers {
        w.await.expect("watcher");
    }
    for (i, s) in seen.iter().enumerate() {
        let s = s.lock().expect("lock");
        let markers: BTreeSet<&String> = s.iter().map(|(_, m)| m).collect();
        assert_eq!(markers.len(), s.len(), "agent {i} got an event twice");
        assert!(
            s.windows(2).all(|w| w[0].0 < w[1].0),
            "agent {i}: out of order"
        );
        assert!(!markers.contains(&"long-rollback".to_owned()));
    }

    // Every committed event has its own number; nothing else was written.
    #[derive(diesel::QueryableByName)]
    struct Numbers {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        distinct: i64,
    }
    let mut check = AsyncPgConnection::establish(&db_url)
        .await
        .expect("connect");
    let numbers: Numbers = diesel_async::RunQueryDsl::get_result(
        diesel::sql_query(format!(
            "SELECT count(*) AS n, count(DISTINCT sequence) AS distinct \
             FROM events WHERE domain_id = {}",
            d.0
        )),
        &mut check,
    )
    .await
    .expect("numbers");
    assert_eq!(numbers.n, numbers.distinct);
    assert_eq!(
        usize::try_from(numbers.n).unwrap_or(0),
        COMMITTED_EVENTS.load(std::sync::atomic::Ordering::SeqCst) + 1,
        "the committed events and the long transaction's"
    );
}

#[tokio::test]
async fn a_long_transaction_in_another_database_does_not_hold_delivery_back() {
    let app = TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let agent = app
        .actor(d, "Agent", &[Permission::InteractionsHandle])
        .await;
    let client = Client::builder(app.url.clone())
        .token(&agent.token)
        .connect()
        .await
        .expect("connect");
    let mut stream = client.watch_session_once(0).await.expect("open");

    // Another database of the cluster keeps a write transaction (one with an id) open.
    let mut elsewhere = AsyncPgConnection::establish(&client_info_tests::admin_url())
        .await
        .expect("connect");
    elsewhere
        .batch_execute("BEGIN; SELECT pg_current_xact_id()")
        .await
        .expect("begin elsewhere");

    let mut conn = AsyncPgConnection::establish(&client_info_tests::database_url(&app.db_name))
        .await
        .expect("connect");
    conn.transaction(async |conn| {
        tx::publish(conn, d, &[marker_event("after-elsewhere", &[agent.user])]).await
    })
    .await
    .expect("publish");

    // Delivered while the other database's transaction is still open (a liveness bound, not
    // a timing measurement).
    let got = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(msg)) = stream.message().await {
            if let Some(pb::agent_event::Event::InteractionClosed(c)) =
                msg.event.and_then(|e| e.event)
            {
                return Some(c.interaction_id);
            }
        }
        None
    })
    .await
    .expect("the event arrives while the other database's transaction is open");
    assert_eq!(got.as_deref(), Some("after-elsewhere"));
    elsewhere.batch_execute("ROLLBACK").await.expect("rollback");
}

#[tokio::test]
async fn a_stream_catching_up_reads_what_the_hub_already_delivered_even_below_a_lower_horizon() {
    // A later statement's horizon can be lower than an earlier one's (a transaction of another
    // database left out once, then seen in the snapshot but no longer in pg_stat_activity).
    // Here a transaction of this database holds the horizon, standing in for it: an event
    // after it waits, unless the reader knows it final (the hub delivered it already).
    let app = TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let agent = app
        .actor(d, "Agent", &[Permission::InteractionsHandle])
        .await;
    let url = client_info_tests::database_url(&app.db_name);
    let mut long = AsyncPgConnection::establish(&url).await.expect("connect");
    long.batch_execute("BEGIN; SELECT pg_current_xact_id()")
        .await
        .expect("begin");
    let mut conn = AsyncPgConnection::establish(&url).await.expect("connect");
    conn.transaction(async |conn| {
        tx::publish(conn, d, &[marker_event("final", &[agent.user])]).await
    })
    .await
    .expect("publish");
    let read = |final_through| {
        Some(outbox::AgentRead {
            agent: agent.user,
            final_through,
        })
    };

    let held = outbox::since(&mut conn, d, 0, read(0), 10)
        .await
        .expect("since");
    assert!(held.events.is_empty() && held.held);
    let stored = outbox::position(&mut conn, d).await.expect("position");
    assert_eq!(stored.last, 0, "nothing deliverable yet");
    assert!(stored.stored > 0, "but stored: a client may resume from it");

    let known = outbox::since(&mut conn, d, 0, read(stored.stored), 10)
        .await
        .expect("since");
    let sequences: Vec<i64> = known.events.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, [stored.stored]);
    assert!(!known.held);

    // A client that received it resumes from it, though it is above this moment's horizon.
    let client = Client::builder(app.url.clone())
        .token(&agent.token)
        .connect()
        .await
        .expect("connect");
    client
        .watch_session_once(stored.stored)
        .await
        .expect("resuming from a stored event is not 'ahead'");
    long.batch_execute("ROLLBACK").await.expect("rollback");
}
