//! The agent desktop's reads: the Client info panel of one interaction, and the opening of a
//! session stream (its snapshot, or the replay of what the agent missed, and the hub
//! subscription that carries the rest).

use client_info_proto::pb;

use super::{AppState, Call, loaders};
use crate::db::{interactions, outbox};
use crate::domain::ids::DomainId;
use crate::error::{Error, Fault, Reason};
use crate::hub::Subscription;
use crate::wire::events;
use crate::wire::panel::Viewer;

/// Candidates per panel in a session snapshot.
const SNAPSHOT_CANDIDATES: usize = 20;
/// Events read per replay query.
const REPLAY_BATCH: i64 = 500;

/// GetClientInfo: a page of the panel of one of the caller's interactions.
#[derive(Debug, Clone)]
pub struct GetPanel {
    /// The interaction's routing id.
    pub interaction: String,
    /// The first candidate of the page.
    pub offset: usize,
    /// Candidates per page.
    pub size: usize,
}

/// WatchAgentSession: where the stream starts.
#[derive(Debug, Clone, Copy)]
pub struct Watch {
    /// 0: a snapshot of the agent's open interactions first; else the last event the client
    /// received (the stream replays what came after).
    pub resume_after: i64,
}

/// A session stream, opened: what it sends first, the subscription that brings the rest, and
/// how its events are shown to the caller.
pub struct Opened {
    /// The snapshot, or the replayed events.
    pub first: Vec<pb::AgentEvent>,
    /// The hub subscription, taken before anything was read.
    pub subscription: Subscription,
    /// The last sequence the first events reach (later ones come through the subscription).
    pub position: i64,
    /// The caller sees full cards.
    pub full: bool,
    /// The caller's domain.
    pub domain: DomainId,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("first", &self.first.len())
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

/// The panel page and the next offset when more candidates follow. Another agent's
/// interaction is as invisible as another domain's.
pub async fn panel(
    state: &AppState,
    call: &Call,
    cmd: GetPanel,
) -> Result<(pb::ClientInfoPanel, Option<usize>), Error> {
    let (mut conn, session) = state.session(call).await?;
    let interaction = interactions::find(&conn, session.domain.id, &cmd.interaction, false)
        .await?
        .filter(|i| i.agent == session.caller.user_id)
        .ok_or_else(|| Error::interaction_not_found(&cmd.interaction))?;
    if cmd.offset > 0 && cmd.offset >= interaction.identification.candidates.len() {
        return Err(Error::invalid(
            "candidate_page_token",
            "is past the last candidate",
        ));
    }
    let viewer = Viewer::of(&session, &state.keys);
    let agent = Some(&session);
    loaders::panel(&mut conn, viewer, &interaction, cmd.offset, cmd.size, agent).await
}

/// Opens the caller's session stream: subscribes first (so nothing committed meanwhile falls
/// between), then reads the snapshot or the replay. The pooled connection is given back
/// before the stream starts.
pub async fn watch(state: &AppState, call: &Call, cmd: Watch) -> Result<Opened, Error> {
    let (mut conn, session) = state.session(call).await?;
    let domain = session.domain.id;
    let agent = session.caller.user_id;
    let resume_after = cmd.resume_after;
    let subscription = state.hub.subscribe(&mut conn, domain, agent).await?;
    let outbox::Position {
        last,
        stored,
        pruned,
    } = outbox::position(&mut conn, domain).await?;
    if resume_after > stored {
        return Err(Error::invalid(
            "resume_after",
            format!(
                "is ahead of the domain's last event ({stored}); resume from a sequence you received"
            ),
        ));
    }
    if resume_after > 0 && resume_after < pruned {
        return Err(Error::OutOfRange(
            Fault::new(
                Reason::ResumePointPruned,
                format!(
                    "events up to {pruned} were pruned; reconnect with resume_after 0 for a new snapshot"
                ),
            )
            .with("oldest_sequence", pruned),
        ));
    }
    let viewer = Viewer::of(&session, &state.keys);
    let mut first: Vec<pb::AgentEvent> = Vec::new();
    let mut position = resume_after;
    if resume_after == 0 {
        let open = interactions::open_for_agent(&mut conn, domain, agent).await?;
        let mut panels = Vec::with_capacity(open.len());
        for i in &open {
            let (panel, _) =
                loaders::panel(&mut conn, viewer, i, 0, SNAPSHOT_CANDIDATES, Some(&session))
                    .await?;
            panels.push(panel);
        }
        first.push(events::snapshot(last, chrono::Utc::now(), panels));
        position = last;
    } else {
        loop {
            // What the hub fetched before this subscription is final and will not come
            // through it: read it here even if this statement's horizon is lower.
            let read = outbox::AgentRead {
                agent,
                final_through: subscription.fetched_through(),
            };
            let batch =
                outbox::since(&mut conn, domain, position, Some(read), REPLAY_BATCH).await?;
            let n = batch.events.len();
            for e in &batch.events {
                first.push(events::render(e, &viewer)?);
                position = e.sequence;
            }
            if batch.held || i64::try_from(n).unwrap_or(0) < REPLAY_BATCH {
                break;
            }
        }
        // Not past `last`: a horizon lower in the replay's statement than in the position's
        // would skip this agent's events between the two (the hub sends only what comes after
        // its own fetch, and the stream drops what is at or below `position`).
    }
    Ok(Opened {
        first,
        subscription,
        position,
        full: viewer.full,
        domain,
    })
}
