//! Reads from streaming standbys (`--database-replica-url`), each kept only while it is fresh,
//! and read-your-writes across them.
//!
//! # What goes where
//!
//! The reads that tolerate a little staleness (search, cards, labels, duplicates, audit trail,
//! history: the application layer's `read_session`) take a connection of a standby when one
//! is *eligible*: answering, still in recovery (a standby that was promoted, or an old primary,
//! is skipped: the primary pool reaches the writable node anyway), and no staler than
//! `max_lag`. Standbys take turns. Everything else, and every read when no standby is
//! eligible, goes to the primary.
//!
//! # How stale a standby is
//!
//! Every [`PROBE_INTERVAL`] a monitor task reads the primary's WAL position
//! (`pg_current_wal_lsn()`) and keeps the samples of the last [`SAMPLES_KEPT`]; then it reads
//! each standby's replay position (`pg_last_wal_replay_lsn()`). A standby that has replayed up
//! to the sample taken at time *t* shows everything committed before *t*: its staleness is
//! the time since the latest sample at or below its replay position (0 when it has replayed
//! all the primary wrote; at least the samples' span when it is behind all of them). This
//! counts what matters to a reader, the age of the oldest write it may miss, rather than
//! `now() - pg_last_xact_replay_timestamp()`, which grows on an idle primary where the standby
//! misses nothing.
//!
//! # Read-your-writes
//!
//! A response of the primary carries its WAL position after the request's commit
//! (`x-client-info-lsn`, set by the per-RPC layer, read by [`Replicas::position_after`]: one
//! statement shared by the requests that end while it runs). A client sends the highest it
//! has seen back (`x-client-info-min-lsn`; the SDK does); a standby serves that client only once it has
//! replayed that far: when the monitor's last probe does not show it, the read's connection
//! polls the standby's replay position every [`POLL`] for up to `wait`, and the read goes to
//! the primary when it has not arrived (`behind` in the fallback metric).
//!
//! Hand-written rather than a crate's: no Rust crate routes reads by WAL position, and the
//! routing is a few statements over the pools (`pgcat` and `pgpool-II` do it as proxies in
//! front of PostgreSQL, by a fixed lag bound only).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::sql_types::{Bool, Text};
use diesel::{QueryableByName, sql_query};
use diesel_async::RunQueryDsl as _;
use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};

use super::{DbPool, PoolSettings, RequestConn, build_pool};
use crate::error::Error;
use crate::metrics::{Metrics, ReplicaFallback};

/// How often the primary's position and the standbys' replay are read.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(200);
/// Primary positions kept (50 × 200 ms: 10 s); a standby behind all of them is at least that
/// stale.
pub const SAMPLES_KEPT: usize = 50;
/// How often a read waiting for its caller's write re-reads the standby's replay position.
pub const POLL: Duration = Duration::from_millis(2);
/// Longest a probe may take before its node counts as down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// A position in PostgreSQL's write-ahead log (`pg_lsn`, written `16/B374D848`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

/// Why a text is not a WAL position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("is not a WAL position (two hexadecimal numbers of up to 8 digits, like 16/B374D848)")]
pub struct LsnError;

impl std::str::FromStr for Lsn {
    type Err = LsnError;

    fn from_str(s: &str) -> Result<Self, LsnError> {
        let (hi, lo) = s.trim().split_once('/').ok_or(LsnError)?;
        let part = |p: &str| {
            if p.is_empty() || p.len() > 8 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(LsnError);
            }
            u64::from_str_radix(p, 16).map_err(|_| LsnError)
        };
        Ok(Lsn(part(hi)? << 32 | part(lo)?))
    }
}

impl std::fmt::Display for Lsn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// How standbys are used.
#[derive(Debug, Clone)]
pub struct ReplicaSettings {
    /// One URL per standby.
    pub urls: Vec<String>,
    /// A standby staler than this is skipped.
    pub max_lag: Duration,
    /// How long a read waits for a standby to replay its caller's writes before it goes to
    /// the primary.
    pub wait: Duration,
}

/// Default `--database-replica-max-lag`.
pub const DEFAULT_MAX_LAG: Duration = Duration::from_secs(2);
/// Default `--database-replica-wait`.
pub const DEFAULT_WAIT: Duration = Duration::from_millis(100);

/// The standbys, their freshness, and the primary's recent positions. Cheap to clone.
#[derive(Clone)]
pub struct Replicas(Arc<Inner>);

impl std::fmt::Debug for Replicas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicas")
            .field("standbys", &self.names())
            .finish_non_exhaustive()
    }
}

type Flight = Shared<BoxFuture<'static, Option<Lsn>>>;

struct Inner {
    primary: DbPool,
    standbys: Vec<Standby>,
    settings: ReplicaSettings,
    statement_timeout: Duration,
    next: AtomicUsize,
    samples: Mutex<VecDeque<(Instant, Lsn)>>,
    flight: Mutex<Option<(Instant, Flight)>>,
    metrics: Metrics,
}

struct Standby {
    name: String,
    pool: DbPool,
    state: Mutex<Freshness>,
}

/// What the last probe of a standby found.
#[derive(Debug, Clone, Copy)]
struct Freshness {
    /// Answered, in recovery.
    up: bool,
    /// Replayed up to here.
    replayed: Lsn,
    /// Age of the oldest write it may miss, as of the probe.
    staleness: Duration,
    /// When the probe ended (`None`: never).
    probed: Option<Instant>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(QueryableByName)]
struct Position {
    #[diesel(sql_type = Text)]
    lsn: String,
}

#[derive(QueryableByName)]
struct Replay {
    #[diesel(sql_type = Bool)]
    recovery: bool,
    #[diesel(sql_type = Text)]
    lsn: String,
}

/// `host:port` of a PostgreSQL URL (no credentials), to name a standby in metrics and logs.
pub fn node_name(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    rest[..end].to_owned()
}

/// The staleness of a standby that replayed up to `replayed`, given the primary's positions
/// (oldest first) and the time of the probe.
fn staleness(samples: &VecDeque<(Instant, Lsn)>, replayed: Lsn, now: Instant) -> Duration {
    match samples.iter().rev().find(|(_, lsn)| *lsn <= replayed) {
        Some((at, _)) if Some(at) == samples.back().map(|(t, _)| t) => Duration::ZERO,
        Some((at, _)) => now.saturating_duration_since(*at),
        // Behind every sample kept: at least as stale as the oldest (none yet: fresh start,
        // the primary unread; counted as fresh until the first sample).
        None => samples
            .front()
            .map_or(Duration::ZERO, |(at, _)| now.saturating_duration_since(*at)),
    }
}

impl Replicas {
    /// Pools for the standbys (opened lazily) and the monitor task, which runs until
    /// `shutdown` turns true. `primary` is the server's pool.
    pub fn start(
        primary: DbPool,
        settings: ReplicaSettings,
        pool: &PoolSettings,
        metrics: Metrics,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<Replicas, Error> {
        let standbys = settings
            .urls
            .iter()
            .map(|url| {
                Ok(Standby {
                    name: node_name(url),
                    pool: build_pool(url, pool)?,
                    state: Mutex::new(Freshness {
                        up: false,
                        replayed: Lsn::default(),
                        staleness: Duration::MAX,
                        probed: None,
                    }),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let replicas = Replicas(Arc::new(Inner {
            primary,
            standbys,
            settings,
            statement_timeout: pool.statement_timeout,
            next: AtomicUsize::new(0),
            samples: Mutex::new(VecDeque::with_capacity(SAMPLES_KEPT + 1)),
            flight: Mutex::new(None),
            metrics,
        }));
        tokio::spawn(replicas.clone().monitor(shutdown));
        Ok(replicas)
    }

    /// The standbys' names (`host:port`).
    pub fn names(&self) -> Vec<String> {
        self.0.standbys.iter().map(|s| s.name.clone()).collect()
    }

    /// True once every standby was probed (up or not), so reads are routed by what is known.
    pub fn probed(&self) -> bool {
        self.0
            .standbys
            .iter()
            .all(|s| lock(&s.state).probed.is_some())
    }

    async fn monitor(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(PROBE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
            if let Some(lsn) = primary_position(&self.0.primary).await {
                let mut samples = lock(&self.0.samples);
                samples.push_back((Instant::now(), lsn));
                while samples.len() > SAMPLES_KEPT {
                    samples.pop_front();
                }
            }
            futures_util::future::join_all(self.0.standbys.iter().map(|s| self.probe(s))).await;
        }
    }

    async fn probe(&self, standby: &Standby) {
        let read = async {
            let mut conn = super::conn(&standby.pool).await?;
            sql_query(
                "SELECT pg_is_in_recovery() AS recovery, \
                        coalesce(pg_last_wal_replay_lsn()::text, '') AS lsn",
            )
            .get_result::<Replay>(&mut conn)
            .await
            .map_err(Error::from)
        };
        let found = match tokio::time::timeout(PROBE_TIMEOUT, read).await {
            Ok(Ok(r)) if r.recovery => r.lsn.parse::<Lsn>().ok(),
            Ok(Ok(_)) => {
                tracing::debug!(standby = %standby.name, "not in recovery: skipped");
                None
            }
            Ok(Err(e)) => {
                tracing::debug!(standby = %standby.name, error = %e, "standby probe failed");
                None
            }
            Err(_) => None,
        };
        let now = Instant::now();
        let fresh = match found {
            Some(replayed) => Freshness {
                up: true,
                replayed,
                staleness: staleness(&lock(&self.0.samples), replayed, now),
                probed: Some(now),
            },
            None => Freshness {
                up: false,
                replayed: Lsn::default(),
                staleness: Duration::MAX,
                probed: Some(now),
            },
        };
        let was_up = std::mem::replace(&mut *lock(&standby.state), fresh).up;
        if was_up != fresh.up {
            if fresh.up {
                tracing::info!(standby = %standby.name, "standby serves reads");
            } else {
                tracing::warn!(standby = %standby.name, "standby down or not in recovery: reads go elsewhere");
            }
        }
        self.0
            .metrics
            .replica_probed(&standby.name, fresh.up, fresh.staleness);
    }

    /// A connection of a fresh standby for a read whose caller must see its writes up to
    /// `min` (waiting up to the configured bound for the standby to replay them), bounded by
    /// the caller's `deadline`; `None` sends the read to the primary (the fallback counted by
    /// reason). Counts the read under the pool that serves it.
    pub async fn read_conn(
        &self,
        min: Option<Lsn>,
        deadline: Option<Instant>,
    ) -> Option<RequestConn> {
        let inner = &self.0;
        let n = inner.standbys.len();
        let start = inner.next.fetch_add(1, Ordering::Relaxed);
        let mut lagging = false;
        for k in 0..n {
            let standby = &inner.standbys[(start + k) % n];
            let fresh = *lock(&standby.state);
            let current = fresh
                .probed
                .is_some_and(|at| at.elapsed() <= PROBE_INTERVAL * 3 + PROBE_TIMEOUT);
            if !fresh.up || !current {
                continue;
            }
            if fresh.staleness > inner.settings.max_lag {
                lagging = true;
                continue;
            }
            let Ok(mut conn) =
                RequestConn::get(&standby.pool, inner.statement_timeout, deadline).await
            else {
                lock(&standby.state).up = false;
                continue;
            };
            if let Some(min) = min
                && fresh.replayed < min
                && !self.wait_for(standby, &mut conn, min).await
            {
                inner.metrics.replica_fallback(ReplicaFallback::Behind);
                self.primary_read();
                return None;
            }
            inner.metrics.db_read(&standby.name);
            return Some(conn);
        }
        inner.metrics.replica_fallback(if lagging {
            ReplicaFallback::Lagging
        } else {
            ReplicaFallback::Down
        });
        self.primary_read();
        None
    }

    /// Counts a read the primary serves without asking the standbys (the caller's session
    /// was not cached: reading it may create its user).
    pub fn primary_read(&self) {
        self.0.metrics.db_read("primary");
    }

    /// Polls the standby's replay position on `conn` until it reaches `min` (true) or the
    /// wait bound passes (false).
    async fn wait_for(&self, standby: &Standby, conn: &mut RequestConn, min: Lsn) -> bool {
        let until = Instant::now() + self.0.settings.wait;
        loop {
            let replayed = sql_query("SELECT coalesce(pg_last_wal_replay_lsn()::text, '') AS lsn")
                .get_result::<Position>(&mut **conn)
                .await
                .ok()
                .and_then(|p| p.lsn.parse::<Lsn>().ok());
            let Some(replayed) = replayed else {
                return false;
            };
            {
                let mut state = lock(&standby.state);
                state.replayed = state.replayed.max(replayed);
            }
            if replayed >= min {
                return true;
            }
            let now = Instant::now();
            if now >= until {
                return false;
            }
            tokio::time::sleep(POLL.min(until - now)).await;
        }
    }

    /// The primary's WAL position read after `done` (`None`: it could not be read): at or
    /// past the commit of every transaction that ended before `done`. Requests ending while a
    /// read is under way and begun after them share it.
    pub async fn position_after(&self, done: Instant) -> Option<Lsn> {
        let flight = {
            let mut current = lock(&self.0.flight);
            match &*current {
                Some((started, flight)) if *started >= done => flight.clone(),
                _ => {
                    let pool = self.0.primary.clone();
                    let flight = async move { primary_position(&pool).await }
                        .boxed()
                        .shared();
                    *current = Some((Instant::now(), flight.clone()));
                    flight
                }
            }
        };
        flight.await
    }
}

/// The primary's current WAL position (`None`: unreachable, or not a primary).
async fn primary_position(pool: &DbPool) -> Option<Lsn> {
    let read = async {
        let mut conn = super::conn(pool).await.ok()?;
        sql_query("SELECT pg_current_wal_lsn()::text AS lsn")
            .get_result::<Position>(&mut conn)
            .await
            .ok()?
            .lsn
            .parse()
            .ok()
    };
    tokio::time::timeout(PROBE_TIMEOUT, read)
        .await
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_read_and_print_as_postgresql_writes_them() {
        let lsn: Lsn = "16/B374D848".parse().expect("valid");
        assert_eq!(lsn.0, 0x16_B374_D848);
        assert_eq!(lsn.to_string(), "16/B374D848");
        assert_eq!("0/0".parse::<Lsn>(), Ok(Lsn(0)));
        for bad in ["", "16", "/1", "1/", "x/1", "1/123456789", "1/2/3", "-1/2"] {
            assert_eq!(bad.parse::<Lsn>(), Err(LsnError), "{bad:?}");
        }
    }

    #[test]
    fn nodes_are_named_without_credentials() {
        assert_eq!(
            node_name("postgres://u:secret@db-2.example:5433/client_info?sslmode=require"),
            "db-2.example:5433"
        );
        assert_eq!(node_name("postgres://localhost/x"), "localhost");
    }

    #[test]
    fn staleness_is_the_age_of_the_oldest_write_a_standby_may_miss() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let samples: VecDeque<_> = [(at(0), Lsn(100)), (at(200), Lsn(150)), (at(400), Lsn(150))]
            .into_iter()
            .collect();
        // Replayed all: fresh, however long ago the last write was.
        assert_eq!(staleness(&samples, Lsn(150), at(5000)), Duration::ZERO);
        // Has what the primary had at 0 ms, not at 200 ms.
        assert_eq!(
            staleness(&samples, Lsn(120), at(450)),
            Duration::from_millis(450)
        );
        // Behind every sample: at least the span kept.
        assert_eq!(
            staleness(&samples, Lsn(50), at(450)),
            Duration::from_millis(450)
        );
        assert_eq!(staleness(&VecDeque::new(), Lsn(1), at(1)), Duration::ZERO);
    }
}
