//! The event hub of one server: a single LISTEN connection learns that events were written
//! (`w:<domain>`: it runs the sequencer, see [`crate::db::outbox`], and fans out what that
//! numbered) or numbered by another server (`s:<domain>`: it reads them from the outbox in
//! sequence order); each event goes, in memory, to the session streams of the agents it
//! concerns. Streams of other servers on the same database get the same events through their
//! own hubs.
//!
//! Faults: when the listener connection drops it is re-established with backoff, and every
//! watched domain is re-read from its last fetched sequence, so nothing is missed; a periodic
//! re-read covers notifications lost in between. A subscriber whose buffer is full is dropped
//! and told so (its stream ends with RESOURCE_EXHAUSTED and the client resumes), so memory stays
//! bounded whatever the clients do.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use futures_util::StreamExt as _;
use tokio::sync::mpsc;

use crate::db::outbox::{self, StoredEvent};
use crate::db::{self, DbPool};
use crate::domain::ids::{DomainId, UserId};
use crate::error::Error;

/// How often every watched domain is re-read even without a notification.
const SAFETY_POLL: Duration = Duration::from_secs(2);
/// Events read per outbox query.
const FETCH_BATCH: i64 = 500;
/// Events numbered per sequencer run.
const SEQUENCE_BATCH: i64 = 5000;

/// This server's connection for numbering events, and whether it holds the sequencer role.
struct Sequencer {
    url: String,
    conn: Option<AsyncPgConnection>,
    /// True while this session holds the role (the lock lives as long as the session).
    held: bool,
    /// When the role was last asked for, so a server without it asks at most once per
    /// [`SAFETY_POLL`], not at every write.
    asked: Option<std::time::Instant>,
}

impl Sequencer {
    fn new(url: String) -> Self {
        Self {
            url,
            conn: None,
            held: false,
            asked: None,
        }
    }

    /// The connection holding the role, taking the role when no server has it; `None` while
    /// another server's session holds it.
    async fn connection(&mut self) -> Result<Option<&mut AsyncPgConnection>, Error> {
        if !self.held {
            if self.asked.is_some_and(|t| t.elapsed() < SAFETY_POLL) {
                return Ok(None);
            }
            self.asked = Some(std::time::Instant::now());
            if self.conn.is_none() {
                self.conn = Some(AsyncPgConnection::establish(&self.url).await?);
            }
            if let Some(conn) = self.conn.as_mut() {
                match outbox::try_become_sequencer(conn).await {
                    Ok(true) => {
                        tracing::info!("this server numbers the events (sequencer role taken)");
                        self.held = true;
                    }
                    Ok(false) => return Ok(None),
                    Err(e) => {
                        self.conn = None;
                        return Err(e);
                    }
                }
            }
        }
        Ok(self.conn.as_mut())
    }

    /// Gives the role up with the connection (after an error on it).
    fn reset(&mut self) {
        self.conn = None;
        self.held = false;
        self.asked = None;
    }
}

/// Why the fetcher wakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Wake {
    /// Events were written somewhere: number them.
    Sequence,
    /// A domain has new numbered events: read them.
    Fetch(DomainId),
}

struct Subscriber {
    agent: UserId,
    tx: mpsc::Sender<Arc<StoredEvent>>,
    overflowed: Arc<AtomicBool>,
}

#[derive(Default)]
struct DomainSubs {
    last_fetched: i64,
    subscribers: HashMap<u64, Subscriber>,
}

struct Inner {
    pool: DbPool,
    buffer: usize,
    subs: Mutex<HashMap<DomainId, DomainSubs>>,
    next_id: AtomicU64,
    wake: mpsc::UnboundedSender<Wake>,
    listening: AtomicBool,
    metrics: crate::metrics::Metrics,
}

/// The hub; cheap to clone.
#[derive(Clone)]
pub struct EventHub {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EventHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHub")
            .field("subscribers", &self.subscriber_count())
            .finish()
    }
}

/// A live subscription; dropping it unsubscribes.
pub struct Subscription {
    /// Events for the subscribed agent, in sequence order.
    pub rx: mpsc::Receiver<Arc<StoredEvent>>,
    overflowed: Arc<AtomicBool>,
    domain: DomainId,
    id: u64,
    hub: EventHub,
}

impl Subscription {
    /// True when the hub dropped this subscription because its buffer was full.
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::SeqCst)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.unsubscribe(self.domain, self.id);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl EventHub {
    /// Starts the listener, fetcher and pruner tasks; they stop when `shutdown` turns true.
    pub fn start(
        database_url: String,
        pool: DbPool,
        buffer: usize,
        retention: Duration,
        shutdown: tokio::sync::watch::Receiver<bool>,
        metrics: crate::metrics::Metrics,
    ) -> EventHub {
        let (wake, woken) = mpsc::unbounded_channel();
        let hub = EventHub {
            inner: Arc::new(Inner {
                pool,
                buffer: buffer.max(1),
                subs: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                wake,
                listening: AtomicBool::new(false),
                metrics,
            }),
        };
        tokio::spawn(hub.clone().listen(database_url.clone(), shutdown.clone()));
        tokio::spawn(
            hub.clone()
                .fetch_loop(database_url, woken, shutdown.clone()),
        );
        tokio::spawn(hub.clone().prune_loop(retention, shutdown));
        hub
    }

    /// Number of live subscriptions (for tests and metrics).
    pub fn subscriber_count(&self) -> usize {
        lock(&self.inner.subs)
            .values()
            .map(|d| d.subscribers.len())
            .sum()
    }

    /// True while the LISTEN connection is up.
    pub fn is_listening(&self) -> bool {
        self.inner.listening.load(Ordering::SeqCst)
    }

    /// Subscribes `agent` of `domain`: every event committed after this call that concerns the
    /// agent arrives on the subscription (events committed before are the caller's to read).
    /// `conn` reads the domain's position when it is the first watched here (a second pooled
    /// connection per caller could starve the pool when many streams open at once).
    pub async fn subscribe(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
        domain: DomainId,
        agent: UserId,
    ) -> Result<Subscription, Error> {
        let watched = lock(&self.inner.subs).contains_key(&domain);
        let start = if watched {
            None
        } else {
            Some(outbox::position(conn, domain).await?.0)
        };
        let (tx, rx) = mpsc::channel(self.inner.buffer);
        let overflowed = Arc::new(AtomicBool::new(false));
        let id = self.inner.next_id.fetch_add(1, Ordering::SeqCst);
        {
            let mut subs = lock(&self.inner.subs);
            let entry = subs.entry(domain).or_insert_with(|| DomainSubs {
                last_fetched: start.unwrap_or(0),
                subscribers: HashMap::new(),
            });
            entry.subscribers.insert(
                id,
                Subscriber {
                    agent,
                    tx,
                    overflowed: overflowed.clone(),
                },
            );
        }
        // Pick up anything committed while we were reading the position.
        let _ = self.inner.wake.send(Wake::Fetch(domain));
        Ok(Subscription {
            rx,
            overflowed,
            domain,
            id,
            hub: self.clone(),
        })
    }

    fn unsubscribe(&self, domain: DomainId, id: u64) {
        let mut subs = lock(&self.inner.subs);
        if let Some(d) = subs.get_mut(&domain) {
            d.subscribers.remove(&id);
            if d.subscribers.is_empty() {
                subs.remove(&domain);
            }
        }
    }

    fn watched_domains(&self) -> Vec<DomainId> {
        lock(&self.inner.subs).keys().copied().collect()
    }

    async fn listen(self, url: String, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(50);
        let mut connected_before = false;
        loop {
            if *shutdown.borrow() {
                return;
            }
            match AsyncPgConnection::establish(&url).await {
                Ok(mut conn) => {
                    let listened = diesel_async::RunQueryDsl::execute(
                        diesel::sql_query(format!("LISTEN {}", outbox::CHANNEL)),
                        &mut conn,
                    )
                    .await;
                    if let Err(e) = listened {
                        tracing::warn!(error = %e, "cannot LISTEN; retrying");
                    } else {
                        backoff = Duration::from_millis(50);
                        self.inner.listening.store(true, Ordering::SeqCst);
                        if connected_before {
                            self.inner.metrics.listen_reconnected();
                        }
                        connected_before = true;
                        tracing::info!("event listener connected");
                        // Catch up on whatever was committed while we were not listening.
                        let _ = self.inner.wake.send(Wake::Sequence);
                        for d in self.watched_domains() {
                            let _ = self.inner.wake.send(Wake::Fetch(d));
                        }
                        let mut notes = std::pin::pin!(conn.notifications_stream());
                        loop {
                            tokio::select! {
                                note = notes.next() => match note {
                                    Some(Ok(n)) => {
                                        let wake = match n.payload.split_once(':') {
                                            Some(("w", _)) => Some(Wake::Sequence),
                                            Some(("s", d)) => d.parse().ok().map(|d| Wake::Fetch(DomainId(d))),
                                            _ => None,
                                        };
                                        if let Some(w) = wake {
                                            let _ = self.inner.wake.send(w);
                                        }
                                    }
                                    Some(Err(e)) => {
                                        tracing::warn!(error = %e, "event listener error");
                                        break;
                                    }
                                    None => break,
                                },
                                _ = shutdown.changed() => return,
                            }
                        }
                        self.inner.listening.store(false, Ordering::SeqCst);
                        tracing::warn!("event listener connection lost; reconnecting");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "event listener cannot connect; retrying"),
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {},
                _ = shutdown.changed() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    async fn fetch_loop(
        self,
        url: String,
        mut woken: mpsc::UnboundedReceiver<Wake>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut sequencer = Sequencer::new(url);
        let mut poll = tokio::time::interval(SAFETY_POLL);
        loop {
            let mut due: Vec<Wake> = tokio::select! {
                w = woken.recv() => match w { Some(w) => vec![w], None => return },
                _ = poll.tick() => std::iter::once(Wake::Sequence)
                    .chain(self.watched_domains().into_iter().map(Wake::Fetch))
                    .collect(),
                _ = shutdown.changed() => return,
            };
            while let Ok(w) = woken.try_recv() {
                due.push(w);
            }
            due.sort_unstable();
            due.dedup();
            let mut fetch: Vec<DomainId> = due
                .iter()
                .filter_map(|w| match w {
                    Wake::Fetch(d) => Some(*d),
                    Wake::Sequence => None,
                })
                .collect();
            if due.contains(&Wake::Sequence) {
                match self.sequence(&mut sequencer).await {
                    Ok(gaps) => fetch.extend(gaps),
                    Err(e) => tracing::warn!(error = %e, "cannot number events; will retry"),
                }
            }
            fetch.sort_unstable();
            fetch.dedup();
            for d in fetch {
                if let Err(e) = self.fetch(d).await {
                    tracing::warn!(domain = %d, error = %e, "cannot read events; will retry");
                }
            }
        }
    }

    /// Runs the sequencer until it has nothing left, fanning out what it numbered; returns the
    /// watched domains where it numbered past events this hub has not read (another server
    /// numbered some in between), to read from the outbox.
    async fn sequence(&self, sequencer: &mut Sequencer) -> Result<Vec<DomainId>, Error> {
        let mut gaps = Vec::new();
        loop {
            let Some(conn) = sequencer.connection().await? else {
                return Ok(gaps);
            };
            let numbered = match outbox::sequence(conn, SEQUENCE_BATCH).await {
                Ok(n) => n,
                Err(e) => {
                    // Give the role up with the connection; whoever is woken next takes it.
                    sequencer.reset();
                    return Err(e);
                }
            };
            let n = numbered.len();
            let mut by_domain: Vec<(DomainId, Vec<StoredEvent>)> = Vec::new();
            for e in numbered {
                let d = DomainId(e.domain_id);
                match by_domain.last_mut() {
                    Some((last, events)) if *last == d => events.push(e),
                    _ => by_domain.push((d, vec![e])),
                }
            }
            for (d, events) in by_domain {
                if !self.deliver(d, events, true) {
                    gaps.push(d);
                }
            }
            if i64::try_from(n).unwrap_or(0) < SEQUENCE_BATCH {
                return Ok(gaps);
            }
        }
    }

    /// Fans `batch` (in sequence order) out to the domain's subscribers. With `contiguous`,
    /// delivers only when the batch starts right after what this hub has read, and returns
    /// false otherwise (the caller reads the outbox instead). Returns true when done.
    fn deliver(&self, domain: DomainId, batch: Vec<StoredEvent>, contiguous: bool) -> bool {
        let mut subs = lock(&self.inner.subs);
        let Some(d) = subs.get_mut(&domain) else {
            return true;
        };
        if contiguous
            && batch
                .first()
                .is_some_and(|first| first.sequence > d.last_fetched + 1)
        {
            return false;
        }
        for event in batch {
            if event.sequence <= d.last_fetched {
                continue;
            }
            d.last_fetched = event.sequence;
            let event = Arc::new(event);
            d.subscribers.retain(|_, s| {
                if !event.concerns(s.agent) {
                    return true;
                }
                match s.tx.try_send(event.clone()) {
                    Ok(()) => true,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        s.overflowed.store(true, Ordering::SeqCst);
                        false
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => false,
                }
            });
        }
        true
    }

    /// Reads the domain's new events and fans them out.
    async fn fetch(&self, domain: DomainId) -> Result<(), Error> {
        loop {
            let Some(after) = lock(&self.inner.subs).get(&domain).map(|d| d.last_fetched) else {
                return Ok(());
            };
            let mut conn = db::conn(&self.inner.pool).await?;
            let batch = outbox::since(&mut conn, domain, after, None, FETCH_BATCH).await?;
            drop(conn);
            let n = batch.len();
            self.deliver(domain, batch, false);
            if i64::try_from(n).unwrap_or(0) < FETCH_BATCH {
                return Ok(());
            }
        }
    }

    async fn prune_loop(
        self,
        retention: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let every = (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(60));
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {},
                _ = shutdown.changed() => return,
            }
            let cutoff = chrono::Utc::now()
                - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::days(1));
            let result = async {
                let mut conn = db::conn(&self.inner.pool).await?;
                outbox::prune(&mut conn, cutoff).await
            }
            .await;
            match result {
                Ok(0) => {}
                Ok(n) => tracing::info!(pruned = n, "pruned old events"),
                Err(e) => tracing::warn!(error = %e, "cannot prune events"),
            }
        }
    }
}
