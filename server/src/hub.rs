//! The event hub of one server: its own writes announce their domain directly, a single
//! LISTEN connection learns that a domain has new events from the other servers (each
//! server's hub sends the `NOTIFY` for its writes, after they commit), one fetcher reads the deliverable ones (below the horizon, see
//! [`crate::db::outbox`]) in sequence order, and each is fanned out in memory to the session
//! streams of the agents it concerns. Events that wait for an older transaction are looked at
//! again shortly (1 ms, doubling to 100 ms): that transaction's end may notify nothing. Streams of other servers on the
//! same database get the same events through their own hubs.
//!
//! The same connection listens on [`sessions::CHANNEL`] and empties the session cache on each
//! notification (the cache is used only while this connection is up), and checks that the
//! users of the open session streams still exist: a deleted user's stream ends at once.
//!
//! Faults: when the listener connection drops it is re-established with backoff, and every
//! watched domain is re-read from its last fetched sequence, so nothing is missed; a periodic
//! re-read covers notifications lost in between. A subscriber whose buffer is full is dropped
//! and told so (its stream ends with RESOURCE_EXHAUSTED and the client resumes), so memory stays
//! bounded whatever the clients do.
//!
//! Imports `db` (the outbox reads and the unit of work's [`Announce`](crate::db::tx::Announce)),
//! [`crate::sessions`] (the cache it empties), [`crate::metrics`] (a leaf), `domain` and
//! `error`; the application layer holds the hub, nothing below imports it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel_async::{AsyncConnection as _, AsyncPgConnection, SimpleAsyncConnection as _};
use futures_util::StreamExt as _;
use tokio::sync::mpsc;

use crate::db::outbox::{self, StoredEvent};
use crate::db::{self, DbPool};
use crate::domain::ids::{DomainId, UserId};
use crate::error::Error;
use crate::sessions::{self, SessionCache};

/// How often every watched domain is re-read even without a notification.
pub const SAFETY_POLL: Duration = Duration::from_secs(2);
/// Longest wait for one of the hub's statements (an event read, an announcement; each takes
/// milliseconds): past it the connection is taken for half-open (nothing answers, nothing
/// closes: PostgreSQL's own `statement_timeout` cannot reach us through it) and replaced.
const HUB_STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);
/// Events read per outbox query.
const FETCH_BATCH: i64 = 500;
/// Domain activity notes buffered per change feed (one that falls behind reads anyway).
const ACTIVITY_BUFFER: usize = 256;
/// First wait before looking again at a domain whose events wait for an older transaction.
const HELD_RETRY_MIN: Duration = Duration::from_millis(1);
/// Longest such wait (the safety poll covers the rest).
const HELD_RETRY_MAX: Duration = Duration::from_millis(100);

struct Subscriber {
    agent: UserId,
    tx: mpsc::Sender<Arc<StoredEvent>>,
    overflowed: Arc<AtomicBool>,
    revoked: Arc<AtomicBool>,
}

#[derive(Default)]
struct DomainSubs {
    last_fetched: i64,
    subscribers: HashMap<u64, Subscriber>,
}

struct Inner {
    pool: DbPool,
    /// The fetcher's connection (generic plans: see [`db::build_generic_plan_pool`]).
    reader: DbPool,
    buffer: usize,
    subs: Mutex<HashMap<DomainId, DomainSubs>>,
    next_id: AtomicU64,
    wake: mpsc::UnboundedSender<DomainId>,
    announce: mpsc::UnboundedSender<DomainId>,
    /// Names this hub in its announcements (random per start).
    origin: String,
    /// True while some watched domain has events waiting for an older transaction.
    holding: AtomicBool,
    listening: AtomicBool,
    metrics: crate::metrics::Metrics,
    /// Emptied on every `client_info_sessions` notification, and used only while listening.
    sessions: SessionCache,
    /// Asks for the subscribers' users to be checked (a user or domain changed).
    recheck: mpsc::UnboundedSender<()>,
    /// Tells the change feeds a domain may have new changes (`None`: any domain, after the
    /// listener reconnected).
    activity: tokio::sync::broadcast::Sender<Option<DomainId>>,
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
    revoked: Arc<AtomicBool>,
    domain: DomainId,
    id: u64,
    hub: EventHub,
    fetched_through: i64,
}

impl Subscription {
    /// The hub had fetched the domain's events through this sequence when the subscription
    /// began: later ones arrive on it, these do not (they are the subscriber's to read, and
    /// final: the hub read them below a horizon).
    pub fn fetched_through(&self) -> i64 {
        self.fetched_through
    }

    /// True when the hub dropped this subscription because its buffer was full.
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::SeqCst)
    }

    /// True when the hub dropped this subscription because its user was deleted.
    pub fn revoked(&self) -> bool {
        self.revoked.load(Ordering::SeqCst)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.unsubscribe(self.domain, self.id);
    }
}

impl crate::db::tx::Announce for EventHub {
    /// Wakes this server's reader for `domain` at once, and queues the `NOTIFY` that tells the
    /// other servers.
    fn announce(&self, domain: DomainId) {
        let _ = self.inner.wake.send(domain);
        let _ = self.inner.activity.send(Some(domain));
        let _ = self.inner.announce.send(domain);
    }
}

/// The notifier's connection: `synchronous_commit` off, as its transactions write nothing but
/// notifications (see [`EventHub`]'s `notify_loop`).
async fn notifier_connection(url: &str) -> Option<AsyncPgConnection> {
    use diesel_async::SimpleAsyncConnection as _;
    let mut conn = AsyncPgConnection::establish(url)
        .await
        .map_err(|e| tracing::warn!(error = %e, "the notifier cannot connect"))
        .ok()?;
    conn.batch_execute("SET synchronous_commit = off")
        .await
        .map_err(|e| tracing::warn!(error = %e, "the notifier cannot set up its connection"))
        .ok()?;
    Some(conn)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl EventHub {
    /// Starts the listener, fetcher and pruner tasks; they stop when `shutdown` turns true.
    /// The fetcher reads through `reader`, a pool of its own.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        database_url: String,
        pool: DbPool,
        reader: DbPool,
        buffer: usize,
        retention: Retention,
        shutdown: tokio::sync::watch::Receiver<bool>,
        metrics: crate::metrics::Metrics,
        sessions: SessionCache,
    ) -> EventHub {
        let (wake, woken) = mpsc::unbounded_channel();
        let (announce, announced) = mpsc::unbounded_channel();
        let (recheck, rechecks) = mpsc::unbounded_channel();
        let hub = EventHub {
            inner: Arc::new(Inner {
                pool,
                reader,
                buffer: buffer.max(1),
                subs: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                wake,
                announce,
                origin: format!("{:016x}", rand::random::<u64>()),
                holding: AtomicBool::new(false),
                listening: AtomicBool::new(false),
                metrics,
                sessions,
                recheck,
                activity: tokio::sync::broadcast::channel(ACTIVITY_BUFFER).0,
            }),
        };
        tokio::spawn(hub.clone().listen(database_url.clone(), shutdown.clone()));
        tokio::spawn(hub.clone().fetch_loop(woken, shutdown.clone()));
        tokio::spawn(
            hub.clone()
                .notify_loop(database_url, announced, shutdown.clone()),
        );
        tokio::spawn(hub.clone().recheck_loop(rechecks, shutdown.clone()));
        tokio::spawn(hub.clone().prune_loop(retention, shutdown));
        hub
    }

    /// Hears which domains may have new contact changes: every write of this server and
    /// every announcement of another's (`None`: any domain, after the listener reconnected,
    /// or when the receiver fell behind). The change feeds read on it, and every
    /// [`SAFETY_POLL`] in case a notification was lost.
    pub fn activity(&self) -> tokio::sync::broadcast::Receiver<Option<DomainId>> {
        self.inner.activity.subscribe()
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
            Some(outbox::position(conn, domain).await?.last)
        };
        let (tx, rx) = mpsc::channel(self.inner.buffer);
        let overflowed = Arc::new(AtomicBool::new(false));
        let revoked = Arc::new(AtomicBool::new(false));
        let id = self.inner.next_id.fetch_add(1, Ordering::SeqCst);
        let fetched_through = {
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
                    revoked: revoked.clone(),
                },
            );
            entry.last_fetched
        };
        // Pick up anything committed while we were reading the position.
        let _ = self.inner.wake.send(domain);
        Ok(Subscription {
            rx,
            overflowed,
            revoked,
            domain,
            id,
            hub: self.clone(),
            fetched_through,
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
                    let listened = conn
                        .batch_execute(&format!(
                            "LISTEN {}; LISTEN {}",
                            outbox::CHANNEL,
                            sessions::CHANNEL
                        ))
                        .await;
                    if let Err(e) = listened {
                        tracing::warn!(error = %e, "cannot LISTEN; retrying");
                    } else {
                        backoff = Duration::from_millis(50);
                        self.inner.listening.store(true, Ordering::SeqCst);
                        // Changes made while not listening were not heard: start empty.
                        self.inner.sessions.set_live(true);
                        if connected_before {
                            self.inner.metrics.listen_reconnected();
                        }
                        connected_before = true;
                        tracing::info!("event listener connected");
                        // Catch up on whatever was committed while we were not listening.
                        for d in self.watched_domains() {
                            let _ = self.inner.wake.send(d);
                        }
                        let _ = self.inner.activity.send(None);
                        let mut notes = std::pin::pin!(conn.notifications_stream());
                        loop {
                            tokio::select! {
                                note = notes.next() => match note {
                                    Some(Ok(n)) if n.channel == sessions::CHANNEL => {
                                        self.inner.sessions.invalidate();
                                        let _ = self.inner.recheck.send(());
                                    }
                                    Some(Ok(n)) => {
                                        // Our own announcements were acted on when made.
                                        match outbox::parse_announcement(&n.payload) {
                                            Some((_, origin)) if origin == self.inner.origin => {}
                                            Some((d, _)) => {
                                                let _ = self.inner.wake.send(d);
                                                let _ = self.inner.activity.send(Some(d));
                                            }
                                            None => {}
                                        }
                                    }
                                    Some(Err(e)) => {
                                        tracing::warn!(error = %e, "event listener error");
                                        break;
                                    }
                                    None => break,
                                },
                                _ = shutdown.changed() => {
                                    self.inner.sessions.set_live(false);
                                    return;
                                }
                            }
                        }
                        self.inner.listening.store(false, Ordering::SeqCst);
                        self.inner.sessions.set_live(false);
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
        mut woken: mpsc::UnboundedReceiver<DomainId>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut poll =
            tokio::time::interval_at(tokio::time::Instant::now() + SAFETY_POLL, SAFETY_POLL);
        // Domains whose next events wait for an older transaction to end, and how long to wait
        // before looking again (no notification says when that transaction ends).
        let mut held: Vec<DomainId> = Vec::new();
        let mut retry = HELD_RETRY_MIN;
        loop {
            let recheck = async {
                if held.is_empty() {
                    std::future::pending::<()>().await;
                } else {
                    tokio::time::sleep(retry).await;
                }
            };
            let mut due: Vec<DomainId> = tokio::select! {
                d = woken.recv() => match d {
                    // New activity: a held domain is looked at again now, and soon after.
                    Some(d) => {
                        retry = HELD_RETRY_MIN;
                        vec![d]
                    }
                    None => return,
                },
                _ = poll.tick() => self.watched_domains(),
                () = recheck => {
                    retry = (retry * 2).min(HELD_RETRY_MAX);
                    std::mem::take(&mut held)
                }
                _ = shutdown.changed() => return,
            };
            while let Ok(d) = woken.try_recv() {
                due.push(d);
            }
            due.append(&mut held);
            due.sort_unstable();
            due.dedup();
            let mut still_held = Vec::new();
            for d in due {
                match self.fetch(d).await {
                    Ok(true) => still_held.push(d),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(domain = %d, error = %e, "cannot read events; will retry");
                    }
                }
            }
            if still_held.is_empty() {
                retry = HELD_RETRY_MIN;
            }
            self.inner
                .holding
                .store(!still_held.is_empty(), Ordering::SeqCst);
            held = still_held;
        }
    }

    /// Reads the domain's new deliverable events and fans them out; true when more wait for an
    /// older transaction to end.
    async fn fetch(&self, domain: DomainId) -> Result<bool, Error> {
        loop {
            let Some(after) = lock(&self.inner.subs).get(&domain).map(|d| d.last_fetched) else {
                return Ok(false);
            };
            let mut conn = db::conn(&self.inner.reader).await?;
            // Bounded: on a half-open connection the read would wait for ever, and with it
            // every stream of this server. Given up, the connection goes back to the pool with
            // the read in flight and is dropped there; the next read takes a new one.
            let batch = tokio::time::timeout(
                HUB_STATEMENT_TIMEOUT,
                outbox::since(&mut conn, domain, after, None, FETCH_BATCH),
            )
            .await
            .map_err(|_| Error::database_unavailable("the event read did not answer in time"))??;
            drop(conn);
            let n = batch.events.len();
            let held = batch.held;
            let mut subs = lock(&self.inner.subs);
            let Some(d) = subs.get_mut(&domain) else {
                return Ok(false);
            };
            for event in batch.events {
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
            if held || i64::try_from(n).unwrap_or(0) < FETCH_BATCH {
                return Ok(held);
            }
        }
    }

    /// Sends the `NOTIFY` of committed writes for the other servers, coalescing what arrives
    /// together into one statement, on a connection of its own with `synchronous_commit` off.
    /// A notifying transaction is given a transaction id and commits under a lock that is one
    /// for the whole cluster: flushing its commit record would hold that lock for a disk
    /// write, and its transaction id would hold this server's own readers back meanwhile (it
    /// announces nothing itself, so they are woken again once it is done). Runs off the
    /// request path: a write's answer never waits for it. A failure is logged; the other
    /// servers' periodic re-read catches up, and a notification lost in a crash only delays.
    async fn notify_loop(
        self,
        url: String,
        mut announced: mpsc::UnboundedReceiver<DomainId>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut conn: Option<AsyncPgConnection> = None;
        loop {
            let first = tokio::select! {
                d = announced.recv() => match d { Some(d) => d, None => return },
                _ = shutdown.changed() => return,
            };
            let mut domains = vec![first];
            while let Ok(d) = announced.try_recv() {
                domains.push(d);
            }
            domains.sort_unstable();
            domains.dedup();
            if conn.is_none() {
                conn = notifier_connection(&url).await;
            }
            let Some(c) = conn.as_mut() else {
                tracing::warn!(
                    "cannot announce committed events to the other servers: no connection"
                );
                continue;
            };
            // Bounded, as the reads are: a half-open connection would stop announcing for good.
            let notified = tokio::time::timeout(
                HUB_STATEMENT_TIMEOUT,
                outbox::notify(c, &domains, &self.inner.origin),
            )
            .await;
            match notified {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot announce committed events to the other servers");
                    conn = None;
                }
                Err(_) => {
                    tracing::warn!(
                        "announcing committed events did not answer in time; reconnecting"
                    );
                    conn = None;
                }
            }
            if self.inner.holding.load(Ordering::SeqCst) {
                let _ = self.inner.wake.send(first);
            }
        }
    }

    /// Ends the subscriptions of users deleted since they subscribed: after every change to
    /// domains or users (a notification), one statement checks the subscribers' users, and a
    /// subscription whose user is gone is dropped as revoked (its stream ends with
    /// UNAUTHENTICATED).
    async fn recheck_loop(
        self,
        mut rechecks: mpsc::UnboundedReceiver<()>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                r = rechecks.recv() => if r.is_none() { return },
                _ = shutdown.changed() => return,
            }
            while rechecks.try_recv().is_ok() {}
            let mut agents: Vec<i64> = lock(&self.inner.subs)
                .values()
                .flat_map(|d| d.subscribers.values().map(|s| s.agent.0))
                .collect();
            if agents.is_empty() {
                continue;
            }
            agents.sort_unstable();
            agents.dedup();
            let existing = async {
                let mut conn = db::conn(&self.inner.pool).await?;
                db::users::existing(&mut conn, &agents).await
            }
            .await;
            let existing = match existing {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot check the session streams' users");
                    continue;
                }
            };
            let mut subs = lock(&self.inner.subs);
            for d in subs.values_mut() {
                d.subscribers.retain(|_, s| {
                    let kept = existing.contains(&s.agent.0);
                    if !kept {
                        s.revoked.store(true, Ordering::SeqCst);
                    }
                    kept
                });
            }
            subs.retain(|_, d| !d.subscribers.is_empty());
        }
    }

    async fn prune_loop(
        self,
        retention: Retention,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let every = (retention.events.min(retention.changes) / 10)
            .clamp(Duration::from_secs(1), Duration::from_secs(60));
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        let ago = |d: Duration| {
            chrono::Utc::now() - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::days(1))
        };
        loop {
            tokio::select! {
                _ = tick.tick() => {},
                _ = shutdown.changed() => return,
            }
            let result = async {
                let mut conn = db::conn(&self.inner.pool).await?;
                let events = outbox::prune(&mut conn, ago(retention.events)).await?;
                let changes = db::changes::prune(&mut conn, ago(retention.changes)).await?;
                Ok::<_, crate::error::Error>((events, changes))
            }
            .await;
            match result {
                Ok((0, 0)) => {}
                Ok((events, changes)) => {
                    tracing::info!(events, changes, "pruned old events and contact changes");
                }
                Err(e) => tracing::warn!(error = %e, "cannot prune events"),
            }
        }
    }
}

/// How long the hub keeps what it prunes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Session events (`--event-retention`).
    pub events: Duration,
    /// Contact changes (`--change-retention`).
    pub changes: Duration,
}
