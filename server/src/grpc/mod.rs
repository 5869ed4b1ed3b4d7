//! gRPC services: one file per service, each a struct holding the shared state and thin
//! handlers that validate, convert to a domain command, authorize, call the store, and convert
//! back.

pub mod client_info;
pub mod contact_binding;
pub mod contact_search;
pub mod contacts;
pub mod convert;
pub mod decode;
pub mod events;
pub mod interactions;
pub mod panel;

use std::sync::Arc;

use crate::auth::{Caller, TokenKeys};
use crate::db::domains::Session;
use crate::db::{self, DbPool, RequestConn};
use crate::error::Error;
use crate::hub::EventHub;
use crate::sessions::SessionCache;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The connection pool.
    pub pool: DbPool,
    /// Token keys (read-only links are signed with them too).
    pub keys: Arc<TokenKeys>,
    /// The event hub feeding session streams.
    pub hub: EventHub,
    /// Turns true when the server shuts down; session streams then end.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// Session-stream heartbeat interval.
    pub heartbeat: std::time::Duration,
    /// The server's instruments.
    pub metrics: crate::metrics::Metrics,
    /// The pool's statement timeout (a request's deadline may lower it).
    pub statement_timeout: std::time::Duration,
    /// Callers' sessions, so a request does not read them every time.
    pub sessions: SessionCache,
    /// How long a merge can be undone.
    pub merge_retention: std::time::Duration,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

impl AppState {
    /// A pooled connection bounded by the request's deadline, and the caller's session (domain
    /// settings, user checked): from the session cache, or read and cached.
    pub async fn session(&self, caller: Caller) -> Result<(RequestConn, Session), Error> {
        let mut conn = RequestConn::get(&self.pool, self.statement_timeout).await?;
        if let Some(session) = self.sessions.get(caller) {
            return Ok((conn, session));
        }
        let ticket = self.sessions.ticket();
        let session = db::domains::session(&mut conn, caller).await?;
        self.sessions.put(ticket, &session);
        Ok((conn, session))
    }
}
