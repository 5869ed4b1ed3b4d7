//! The contact change feed, for the systems beside the agent (CRM, warehouse, routing):
//! WatchContactChanges, a stream that reads the store itself whenever the hub hears its domain
//! written (and every [`SAFETY_POLL`], in case a notification was lost), and ListContacts, the
//! full resync a consumer starts from, or falls back to when its position was pruned.
//!
//! A feed holds no connection while it waits and at most one batch in memory: it reads up to
//! [`READ_BATCH`] changes, hands them out one at a time (a client that reads slowly holds the
//! stream through gRPC's flow control, so nothing piles up on the server), then reads on.
//! Changes are numbered like the session events and read by the same horizon (see
//! [`crate::db::outbox`]), so each is delivered once, in commit order, and a resume point is
//! exact on every server.

use std::collections::VecDeque;
use std::time::Duration;

use client_info_proto::pb;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use super::{AppState, Call};
use crate::auth::fingerprint;
use crate::db::{self, DbPool, changes, contacts};
use crate::domain::contact::ContactCard;
use crate::domain::ids::{DomainId, UserId};
use crate::error::{Error, Fault, Reason};
use crate::hub::SAFETY_POLL;
use crate::metrics::{Metrics, StreamCut};
use crate::wire::changes::{FeedView, render};

/// Changes read per statement.
pub const READ_BATCH: i64 = 500;
/// How soon a feed looks again when changes wait for an older transaction to end.
const HELD_RETRY: Duration = Duration::from_millis(5);

/// WatchContactChanges: where to start, and what the watcher wants to see.
#[derive(Debug, Clone)]
pub struct Watch {
    /// Resume after this position (0: from now).
    pub resume_after: i64,
    /// Fields and filters.
    pub view: FeedView,
}

/// What a feed sends.
#[derive(Debug, Clone)]
pub enum FeedItem {
    /// First: the feed continues after this position.
    Started(i64),
    /// A change.
    Change(Box<pb::ContactChange>),
    /// Idle for a heartbeat interval; the feed stands here.
    Heartbeat(i64),
}

/// A live change feed; see the module documentation.
pub struct Feed {
    pool: DbPool,
    domain: DomainId,
    cursor: i64,
    view: FeedView,
    activity: tokio::sync::broadcast::Receiver<Option<DomainId>>,
    pending: VecDeque<pb::ContactChange>,
    started: bool,
    dirty: bool,
    retry_at: Option<Instant>,
    poll: tokio::time::Interval,
    heartbeat: Duration,
    last_sent: Instant,
    expires: Instant,
    shutdown: tokio::sync::watch::Receiver<bool>,
    metrics: Metrics,
    ended: bool,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("domain", &self.domain)
            .field("cursor", &self.cursor)
            .finish_non_exhaustive()
    }
}

/// Opens the caller's domain's change feed after `cmd.resume_after` (INVALID_ARGUMENT when no
/// feed handed that position out, OUT_OF_RANGE when it was pruned), ending at `expires` (the
/// token's expiry).
pub async fn watch(
    state: &AppState,
    call: &Call,
    cmd: Watch,
    expires: Instant,
) -> Result<Feed, Error> {
    let (mut conn, session) = state.session(call).await?;
    let domain = session.domain.id;
    // Listening first, so that nothing written after the position is read goes unheard.
    let activity = state.hub.activity();
    let position = changes::position(&mut conn, domain).await?;
    let cursor = match cmd.resume_after {
        0 => position.last,
        after if after > position.stored => {
            return Err(Error::invalid(
                "resume_after",
                format!(
                    "is after the domain's last change ({}); resume after a position you received",
                    position.stored
                ),
            ));
        }
        after if after < position.pruned => {
            return Err(Error::OutOfRange(
                Fault::new(
                    Reason::ResumePointPruned,
                    format!(
                        "changes up to {} were pruned; resync with ListContacts, then watch \
                         after the position it gives",
                        position.pruned
                    ),
                )
                .with("oldest_position", position.pruned),
            ));
        }
        after => after,
    };
    let mut poll = tokio::time::interval(SAFETY_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    Ok(Feed {
        pool: state.pool.clone(),
        domain,
        cursor,
        view: cmd.view,
        activity,
        pending: VecDeque::new(),
        started: false,
        dirty: true,
        retry_at: None,
        poll,
        heartbeat: state.heartbeat,
        last_sent: Instant::now(),
        expires,
        shutdown: state.shutdown.clone(),
        metrics: state.metrics.clone(),
        ended: false,
    })
}

impl Feed {
    /// The next item; `None` once the feed has ended (after an error that says where to
    /// resume).
    pub async fn next(&mut self) -> Option<Result<FeedItem, Error>> {
        if !self.started {
            self.started = true;
            self.last_sent = Instant::now();
            return Some(Ok(FeedItem::Started(self.cursor)));
        }
        loop {
            if let Some(change) = self.pending.pop_front() {
                self.last_sent = Instant::now();
                return Some(Ok(FeedItem::Change(Box::new(change))));
            }
            if self.ended {
                return None;
            }
            if self.dirty {
                self.dirty = false;
                if let Err(e) = self.read().await {
                    self.ended = true;
                    return Some(Err(e));
                }
                continue;
            }
            let retry = async {
                match self.retry_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                note = self.activity.recv() => match note {
                    Ok(Some(d)) if d != self.domain => {}
                    Ok(_) | Err(RecvError::Lagged(_)) => self.dirty = true,
                    Err(RecvError::Closed) => {
                        self.ended = true;
                        self.metrics.stream_cut(StreamCut::HubStopped);
                        return Some(Err(self.cut(
                            Error::Unavailable,
                            Reason::EventHubStopped,
                            "the event hub stopped",
                        )));
                    }
                },
                () = retry => {
                    self.retry_at = None;
                    self.dirty = true;
                }
                _ = self.poll.tick() => self.dirty = true,
                () = tokio::time::sleep_until(self.last_sent + self.heartbeat) => {
                    self.last_sent = Instant::now();
                    return Some(Ok(FeedItem::Heartbeat(self.cursor)));
                }
                () = tokio::time::sleep_until(self.expires) => {
                    self.ended = true;
                    self.metrics.stream_cut(StreamCut::TokenExpired);
                    return Some(Err(self.cut(
                        Error::Unauthenticated,
                        Reason::TokenExpired,
                        "the feed's token has expired; resume with a fresh token",
                    )));
                }
                _ = self.shutdown.changed() => {
                    self.ended = true;
                    self.metrics.stream_cut(StreamCut::Shutdown);
                    return Some(Err(self.cut(
                        Error::Unavailable,
                        Reason::ShuttingDown,
                        "the server is shutting down; resume on another",
                    )));
                }
            }
        }
    }

    /// Reads the next batch into `pending`; a full batch asks for another read at once, changes
    /// held by an older transaction for one soon.
    async fn read(&mut self) -> Result<(), Error> {
        let batch = {
            let mut conn = db::conn(&self.pool).await?;
            changes::since(&mut conn, self.domain, self.cursor, READ_BATCH).await?
        };
        let n = batch.changes.len();
        for stored in &batch.changes {
            self.cursor = stored.sequence;
            if let Some(change) = render(stored, &self.view)? {
                let lag = (chrono::Utc::now() - stored.occurred_at)
                    .to_std()
                    .unwrap_or_default();
                self.metrics.change_delivered(lag);
                self.pending.push_back(change);
            }
        }
        if batch.held {
            self.retry_at = Some(Instant::now() + HELD_RETRY);
        } else if i64::try_from(n).unwrap_or(0) == READ_BATCH {
            self.dirty = true;
        }
        Ok(())
    }

    /// The error that ends the feed, saying where to resume.
    fn cut(&self, kind: fn(Fault) -> Error, reason: Reason, message: &str) -> Error {
        kind(
            Fault::new(
                reason,
                format!("{message}; resume after position {}", self.cursor),
            )
            .with("resume_after", self.cursor),
        )
    }
}

/// ListContacts: a page of the domain's contacts in the order of their last change.
#[derive(Debug, Clone)]
pub struct List {
    /// Contacts per page.
    pub limit: usize,
    /// The previous page's token ("" for the first page).
    pub page_token: String,
    /// Only contacts carrying every one of these labels.
    pub labels: Vec<String>,
    /// Only contacts of this owner.
    pub owner: Option<UserId>,
}

/// A page of ListContacts.
#[derive(Debug, Clone)]
pub struct ListPage {
    /// The cards, with their last change's position.
    pub contacts: Vec<(ContactCard, i64)>,
    /// The next page's token ("" on the last page).
    pub next_page_token: String,
    /// Where the feed continues once every page is read.
    pub resume_after: i64,
}

/// Where a listing stands: after this change position and contact, and where the feed resumes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct ListCursor {
    p: i64,
    i: i64,
    r: i64,
}

/// A page of the listing. The first page fixes the feed position the consumer resumes after
/// (the last change deliverable then): every change up to it is reflected in the pages, read
/// afterwards, and every later one comes through the feed. A contact changed while the pages
/// are read moves to a later page, so it may be listed twice, the last time as it is now.
pub async fn list(state: &AppState, call: &Call, cmd: List) -> Result<ListPage, Error> {
    let (mut conn, session) = state.session(call).await?;
    let domain = session.domain.id;
    let mut query = domain.0.to_le_bytes().to_vec();
    query.extend_from_slice(b"list-contacts");
    query.extend_from_slice(&cmd.owner.map_or(0, |u| u.0).to_le_bytes());
    for l in &cmd.labels {
        query.extend_from_slice(l.as_bytes());
        query.push(0x1f);
    }
    let fp = fingerprint(&query);
    let cursor = if cmd.page_token.is_empty() {
        let position = changes::position(&mut conn, domain).await?;
        ListCursor {
            p: -1,
            i: 0,
            r: position.last,
        }
    } else {
        let c = state
            .keys
            .verify_cursor(&cmd.page_token, fp)
            .map_err(|e| Error::invalid("page_token", e.to_string()))?;
        serde_json::from_str::<ListCursor>(&c)
            .map_err(|_| Error::invalid("page_token", "is not a page token of ListContacts"))?
    };
    let limit = i64::try_from(cmd.limit).unwrap_or(i64::MAX - 1);
    let mut rows = changes::list(
        &mut conn,
        domain,
        (cursor.p, cursor.i),
        &cmd.labels,
        cmd.owner,
        limit + 1,
    )
    .await?;
    let has_more = rows.len() > cmd.limit;
    rows.truncate(cmd.limit);
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut cards = contacts::load_cards(&conn, domain, &ids).await?;
    let contacts = rows
        .iter()
        .filter_map(|r| {
            let at = cards.iter().position(|c| c.id.0 == r.id)?;
            Some((cards.swap_remove(at), r.change_position))
        })
        .collect();
    let next_page_token = match rows.last() {
        Some(last) if has_more => {
            let next = ListCursor {
                p: last.change_position,
                i: last.id,
                r: cursor.r,
            };
            let c = serde_json::to_string(&next)
                .map_err(|e| Error::Internal(format!("cursor: {e}")))?;
            state.keys.sign_cursor(fp, &c)?
        }
        _ => String::new(),
    };
    Ok(ListPage {
        contacts,
        next_page_token,
        resume_after: cursor.r,
    })
}
