//! The application layer: one function per use case the API offers, between the gRPC handlers
//! and the store. A handler decodes its request into a typed command (`grpc::decode`), checks
//! the caller's permission, calls one function here with the [`Call`] and the command, and
//! encodes what it returns; nothing here knows tonic or a request message.
//!
//! Every write runs its change as one unit of work ([`crate::db::tx::write`]): the
//! transaction, the audit records and the session events the change produces, written
//! together at commit, then announced. The hottest writes (a first offer, an answer, an end)
//! are each one statement that writes its events itself, atomic on its own and so without a
//! transaction's two extra round trips ([`crate::db::interactions::insert_first_offer`],
//! [`crate::db::interactions::accept`], [`crate::db::interactions::close`]). Reads open the
//! caller's session the same way ([`AppState::session`], on the primary) and return domain
//! values or wire forms; those that tolerate a little staleness (search, cards, labels,
//! duplicates, audit trails, history) open it with [`AppState::read_session`], on a fresh
//! standby when standbys are configured. No handler opens a session, a transaction or
//! publishes an event itself.
//!
//! Imports, downwards only: [`crate::wire`] (the protobuf forms of panels and events),
//! [`crate::db`], [`crate::hub`] and [`crate::sessions`] (held in [`AppState`]),
//! [`crate::auth`] (signing), `domain` and `error`. [`loaders`] gathers what a panel or an
//! event shows; the other files are the use cases, by area.

pub mod binding;
pub mod changes;
pub mod client_info;
pub mod contacts;
pub mod erase;
pub mod interactions;
pub mod loaders;
pub mod merge;
pub mod search;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::auth::TokenKeys;
use crate::db::replicas::Replicas;
pub use crate::db::replicas::{Lsn, LsnError};
use crate::db::{self, DbPool, RequestConn};
use crate::domain::caller::{CallerSlot, Principal};
use crate::domain::session::Session;
use crate::error::Error;
use crate::hub::EventHub;
use crate::metrics::Metrics;
use crate::sessions::SessionCache;

/// Page size when a listing's request gives none.
pub const DEFAULT_PAGE_SIZE: usize = 20;
/// Most rows a listing's page holds.
pub const MAX_PAGE_SIZE: usize = 100;

/// What every use case shares.
#[derive(Clone)]
pub struct AppState {
    /// The connection pool.
    pub pool: DbPool,
    /// Token keys (read-only links and page tokens are signed with them too).
    pub keys: Arc<TokenKeys>,
    /// The event hub feeding session streams.
    pub hub: EventHub,
    /// Turns true when the server shuts down; session streams then end.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// Session-stream heartbeat interval.
    pub heartbeat: Duration,
    /// The server's instruments.
    pub metrics: Metrics,
    /// The pool's statement timeout (a request's deadline may lower it).
    pub statement_timeout: Duration,
    /// Callers' sessions, so a request does not read them every time.
    pub sessions: SessionCache,
    /// How long a merge can be undone.
    pub merge_retention: Duration,
    /// Create an identity provider's unknown users of known domains on first use.
    pub provision_users: bool,
    /// The standbys that serve reads (`None`: every read goes to the primary).
    pub replicas: Option<Replicas>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// Who calls, and until when: what the caller's verified token says, the client's deadline
/// (which bounds the request's database statements), and where the caller it resolves to is
/// recorded for the access log.
#[derive(Debug, Clone)]
pub struct Call {
    /// What the verified token says.
    pub principal: Arc<Principal>,
    /// The client's deadline (`None`: it set none).
    pub deadline: Option<Instant>,
    /// Where the resolved caller is written, and the use of the primary noted (`None`:
    /// nowhere).
    pub resolved: Option<Arc<CallerSlot>>,
    /// The caller's writes up to here must show in its reads (the SDK sends the highest
    /// position the server's responses carried).
    pub min_position: Option<Lsn>,
}

/// Which contacts a read may show the caller: any of its domain's (with `contacts.read`), or
/// only those of one of its own interactions (with `interactions.handle`, naming the
/// interaction by its routing id). The handler decides it from the caller's permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every contact of the caller's domain.
    Domain,
    /// The contacts of this interaction of the caller's.
    Interaction(String),
}

impl AppState {
    /// A pooled connection bounded by the call's deadline, and the session of the caller its
    /// token names (domain settings, user checked, an identity provider's user resolved or
    /// created on first use): from the session cache, or read and cached.
    /// The request is noted as one that used the primary (its response carries the
    /// primary's WAL position when standbys serve reads).
    pub async fn session(&self, call: &Call) -> Result<(RequestConn, Session), Error> {
        if let Some(slot) = &call.resolved {
            slot.used_primary();
        }
        let mut conn = RequestConn::get(&self.pool, self.statement_timeout, call.deadline).await?;
        let principal = &call.principal;
        let session = match self.sessions.get(principal) {
            Some(session) => session,
            None => {
                let ticket = self.sessions.ticket();
                let session =
                    db::domains::session(&mut conn, principal, self.provision_users).await?;
                self.sessions.put(ticket, &principal.identity, &session);
                session
            }
        };
        if let Some(slot) = &call.resolved {
            slot.set(session.caller);
        }
        Ok((conn, session))
    }

    /// Like [`AppState::session`], for a read that may be a little stale: a connection of a
    /// fresh standby that has replayed the caller's writes ([`Replicas::read_conn`]) when
    /// standbys are configured and the caller's session is cached; else the primary's. Only
    /// reads use it: a standby refuses writes.
    pub async fn read_session(&self, call: &Call) -> Result<(RequestConn, Session), Error> {
        let Some(replicas) = &self.replicas else {
            return self.session(call).await;
        };
        let Some(session) = self.sessions.get(&call.principal) else {
            // Reading the session may create the caller's user: on the primary.
            replicas.primary_read();
            return self.session(call).await;
        };
        match replicas.read_conn(call.min_position, call.deadline).await {
            Some(conn) => {
                if let Some(slot) = &call.resolved {
                    slot.set(session.caller);
                }
                Ok((conn, session))
            }
            None => self.session(call).await,
        }
    }
}
