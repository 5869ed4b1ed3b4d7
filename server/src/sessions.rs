//! The session cache: each caller's domain settings and user name, kept in memory so that a
//! request does not read them from the database (one statement per RPC before it).
//!
//! The server is stateless and runs as several replicas on one database, so every replica
//! keeps its own cache and learns of changes from the database itself: a trigger on `domains`
//! and `users` announces every update, delete or truncate, whoever makes it (a server, the
//! admin commands, plain SQL), with `NOTIFY client_info_sessions` at commit, and the event
//! hub's LISTEN connection ([`crate::hub`]) empties the cache when it hears it. So:
//!
//! - a deleted user or domain, or changed domain settings, stop being served from the cache as
//!   soon as each replica receives the notification (a fraction of a millisecond on one
//!   machine; the time a NOTIFY takes to travel otherwise);
//! - the cache is used only while that LISTEN connection is up: when it drops, the cache is
//!   emptied and bypassed (every request reads the database, as without a cache) until the
//!   connection is back, and emptied again then, since notifications were missed meanwhile;
//! - a connection that hangs without failing delivers nothing and may go unnoticed, so no
//!   entry is used longer than [`SESSION_TTL`] after it was read: that is the longest a
//!   deleted user or domain can still be let in.
//!
//! A read that raced an invalidation is not cached: [`SessionCache::ticket`] is taken before
//! the read, and [`SessionCache::put`] drops the result when the cache was emptied since.
//!
//! Imports only `domain` (the [`Session`] it keeps); the application layer reads it and the hub
//! empties it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::domain::caller::{Caller, Identity, Principal};
use crate::domain::ids::{DomainId, UserId};
use crate::domain::session::{DomainSettings, Session};

/// The channel the database announces changes to domains and users on.
pub const CHANNEL: &str = "client_info_sessions";

/// The longest an entry is used after it was read (the bound for a LISTEN connection that
/// hangs without failing).
pub const SESSION_TTL: Duration = Duration::from_secs(5);

/// Entries kept at most; past this the cache is emptied (it refills from the callers active).
const MAX_ENTRIES: usize = 100_000;

struct Entry {
    domain: Arc<DomainSettings>,
    user: UserId,
    user_name: Arc<str>,
    loaded: Instant,
}

#[derive(Default)]
struct State {
    /// True while the LISTEN connection is up: only then is anything cached.
    live: bool,
    /// By the identity the token names (ids, or an identity provider's domain and subject).
    entries: HashMap<Identity, Entry>,
}

/// The cache; cheap to clone (the clones share it).
#[derive(Clone)]
pub struct SessionCache {
    state: Arc<Mutex<State>>,
    /// Counts the times the cache was emptied (a read started before the last one is stale).
    generation: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Default for SessionCache {
    fn default() -> Self {
        Self {
            state: Arc::default(),
            generation: Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }
}

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCache")
            .field("entries", &self.len())
            .field("live", &self.is_live())
            .finish()
    }
}

/// Taken before reading a session from the database; the read may be cached only when the
/// cache was live then and has not been emptied since.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(Option<u64>);

impl SessionCache {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The session of the caller `principal` names, when cached and fresh (with the
    /// principal's permissions).
    pub fn get(&self, principal: &Principal) -> Option<Session> {
        self.get_at(principal, Instant::now())
    }

    fn get_at(&self, principal: &Principal, now: Instant) -> Option<Session> {
        let state = self.lock();
        let entry = state.entries.get(&principal.identity)?;
        (now.saturating_duration_since(entry.loaded) < SESSION_TTL).then(|| Session {
            caller: Caller {
                user_id: entry.user,
                domain_id: entry.domain.id,
                permissions: principal.permissions,
            },
            domain: entry.domain.clone(),
            user_name: entry.user_name.clone(),
        })
    }

    /// To take before reading a session from the database, for [`SessionCache::put`].
    pub fn ticket(&self) -> Ticket {
        let state = self.lock();
        Ticket(state.live.then(|| *self.generation.borrow()))
    }

    /// Caches the session of `identity` read from the database after `ticket` was taken,
    /// unless the cache was emptied or not live since.
    pub fn put(&self, ticket: Ticket, identity: &Identity, session: &Session) {
        self.put_at(ticket, identity, session, Instant::now());
    }

    fn put_at(&self, ticket: Ticket, identity: &Identity, session: &Session, loaded: Instant) {
        let mut state = self.lock();
        if !state.live || ticket.0 != Some(*self.generation.borrow()) {
            return;
        }
        if state.entries.len() >= MAX_ENTRIES {
            state.entries.clear();
        }
        state.entries.insert(
            identity.clone(),
            Entry {
                domain: session.domain.clone(),
                user: session.caller.user_id,
                user_name: session.user_name.clone(),
                loaded,
            },
        );
    }

    /// Empties the cache: a domain or user changed.
    pub fn invalidate(&self) {
        let mut state = self.lock();
        self.clear(&mut state);
    }

    /// Turns the cache on (the LISTEN connection is up, and listening) or off (it is lost);
    /// either way it starts empty.
    pub fn set_live(&self, live: bool) {
        let mut state = self.lock();
        state.live = live;
        self.clear(&mut state);
    }

    fn clear(&self, state: &mut State) {
        state.entries.clear();
        self.generation.send_modify(|g| *g += 1);
    }

    /// True while the cache is used.
    pub fn is_live(&self) -> bool {
        self.lock().live
    }

    /// The number of cached sessions (fresh or not).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when the session of `user` of `domain` is cached and fresh.
    pub fn holds(&self, domain: DomainId, user: UserId) -> bool {
        self.lock()
            .entries
            .get(&Identity::Local { domain, user })
            .is_some_and(|e| e.loaded.elapsed() < SESSION_TTL)
    }

    /// Changes each time the cache is emptied (for tests that wait for an invalidation).
    pub fn invalidations(&self) -> tokio::sync::watch::Receiver<u64> {
        self.generation.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::permission::PermissionSet;

    fn principal(user: i64) -> Principal {
        Principal::local(session(user).caller, i64::MAX)
    }

    fn session(user: i64) -> Session {
        Session {
            caller: Caller {
                user_id: UserId(user),
                domain_id: DomainId(1),
                permissions: PermissionSet::default(),
            },
            domain: Arc::new(DomainSettings {
                id: DomainId(1),
                name: "acme".into(),
                default_region: "GB".parse().expect("region"),
                autolink: false,
                autolink_shared_numbers: true,
                fallback_digits: 9,
            }),
            user_name: "Ann".into(),
        }
    }

    #[test]
    fn caches_only_while_live_and_not_across_an_invalidation() {
        let cache = SessionCache::default();
        let (s, p) = (session(7), principal(7));
        let id = &p.identity;
        cache.put(cache.ticket(), id, &s);
        assert!(cache.get(&p).is_none(), "not live yet");

        cache.set_live(true);
        cache.put(cache.ticket(), id, &s);
        let hit = cache.get(&p).expect("cached");
        assert_eq!(&*hit.user_name, "Ann");
        assert_eq!(hit.caller, s.caller);

        // A read that started before an invalidation is not cached.
        let ticket = cache.ticket();
        cache.invalidate();
        assert!(cache.get(&p).is_none(), "emptied");
        cache.put(ticket, id, &s);
        assert!(cache.get(&p).is_none(), "stale read dropped");

        // Nor one that started before the listener was lost and found again.
        let ticket = cache.ticket();
        cache.set_live(false);
        cache.set_live(true);
        cache.put(ticket, id, &s);
        assert!(cache.is_empty());

        // Lost: emptied, and nothing is cached until it is back.
        cache.put(cache.ticket(), id, &s);
        cache.set_live(false);
        assert!(cache.is_empty());
        cache.put(cache.ticket(), id, &s);
        assert!(cache.get(&p).is_none());
    }

    #[test]
    fn entries_expire() {
        let cache = SessionCache::default();
        cache.set_live(true);
        let (s, p) = (session(8), principal(8));
        let now = Instant::now();
        cache.put_at(cache.ticket(), &p.identity, &s, now);
        assert!(cache.get_at(&p, now + SESSION_TTL / 2).is_some());
        assert!(cache.get_at(&p, now + SESSION_TTL).is_none());
    }

    #[test]
    fn invalidations_are_observable() {
        let cache = SessionCache::default();
        let mut rx = cache.invalidations();
        rx.borrow_and_update();
        cache.invalidate();
        assert!(rx.has_changed().expect("open"));
    }
}
