//! `clientinfo.v1.ClientInfoService`: the agent desktop's panel and session stream.

use std::pin::Pin;

use client_info_proto::pb;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use pb::agent_event::Event;

use super::{AppState, convert, events, panel};
use crate::auth::Caller;
use crate::db::{interactions, outbox};
use crate::domain::permission::Permission;
use crate::error::{Error, Fault, Reason, Violations};
use crate::metrics::StreamCut;

/// The service.
#[derive(Debug, Clone)]
pub struct ClientInfoApi {
    state: AppState,
}

impl ClientInfoApi {
    /// A service over `state`.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

fn authorize<T>(request: &Request<T>) -> Result<Caller, Status> {
    let caller = Caller::of(request)?;
    caller.require(Permission::InteractionsHandle)?;
    Ok(caller)
}

/// Response metadata of `WatchAgentSession`: the server's heartbeat interval in milliseconds.
/// A client that hears nothing (no event, no heartbeat) for two intervals and a margin can
/// treat the connection as dead, reconnect and resume; the SDK does.
pub const HEARTBEAT_HEADER: &str = "x-heartbeat-interval-ms";

/// Candidates per panel in a session snapshot.
const SNAPSHOT_CANDIDATES: usize = 20;
/// Events read per replay query.
const REPLAY_BATCH: i64 = 500;

/// Reads a candidate page token (`c<offset>`; empty for the first page).
fn offset_token(v: &mut Violations, token: &str) -> usize {
    if token.is_empty() {
        return 0;
    }
    match token
        .strip_prefix('c')
        .and_then(|n| n.parse::<usize>().ok())
    {
        Some(n) if n > 0 => n,
        _ => {
            v.add(
                "candidate_page_token",
                "is not a token returned by GetClientInfo",
            );
            0
        }
    }
}

/// A live session stream: the first events (snapshot or replay), then the hub's, heartbeats
/// while idle, and an error that tells the client where to resume when it must end.
struct Live {
    first: std::vec::IntoIter<pb::AgentEvent>,
    subscription: crate::hub::Subscription,
    delivered: i64,
    keys: std::sync::Arc<crate::auth::TokenKeys>,
    full: bool,
    domain: crate::domain::ids::DomainId,
    heartbeat: std::time::Duration,
    shutdown: tokio::sync::watch::Receiver<bool>,
    metrics: crate::metrics::Metrics,
    ended: bool,
}

impl Live {
    /// The next item; `None` once the stream has ended.
    async fn next(&mut self) -> Option<Result<pb::AgentEvent, Status>> {
        if let Some(event) = self.first.next() {
            return Some(Ok(event));
        }
        if self.ended {
            return None;
        }
        loop {
            tokio::select! {
                stored = self.subscription.rx.recv() => match stored {
                    Some(stored) => {
                        if stored.sequence <= self.delivered {
                            continue;
                        }
                        self.delivered = stored.sequence;
                        let lag = (chrono::Utc::now() - stored.occurred_at)
                            .to_std()
                            .unwrap_or_default();
                        self.metrics.event_delivered(lag);
                        let viewer = panel::Viewer {
                            full: self.full,
                            keys: &self.keys,
                            domain: self.domain,
                        };
                        return Some(events::render(&stored, &viewer).map_err(Status::from));
                    }
                    None => {
                        self.ended = true;
                        return Some(Err(if self.subscription.overflowed() {
                            self.metrics.stream_cut(StreamCut::SlowConsumer);
                            crate::error::status(
                                tonic::Code::ResourceExhausted,
                                &Fault::new(
                                    Reason::SlowConsumer,
                                    format!(
                                        "the client fell behind; resume with resume_after {}",
                                        self.delivered
                                    ),
                                )
                                .with("resume_after", self.delivered),
                            )
                        } else {
                            self.metrics.stream_cut(StreamCut::HubStopped);
                            crate::error::status(
                                tonic::Code::Unavailable,
                                &Fault::new(
                                    Reason::EventHubStopped,
                                    "the event hub stopped; resume later",
                                )
                                .with("resume_after", self.delivered),
                            )
                        }));
                    }
                },
                () = tokio::time::sleep(self.heartbeat) => {
                    return Some(Ok(pb::AgentEvent {
                        sequence: 0,
                        occurred_at: Some(convert::timestamp(chrono::Utc::now())),
                        event: Some(Event::Heartbeat(pb::Heartbeat {})),
                    }));
                }
                _ = self.shutdown.changed() => {
                    self.ended = true;
                    self.metrics.stream_cut(StreamCut::Shutdown);
                    return Some(Err(crate::error::status(
                        tonic::Code::Unavailable,
                        &Fault::new(
                            Reason::ShuttingDown,
                            format!(
                                "the server is shutting down; resume with resume_after {}",
                                self.delivered
                            ),
                        )
                        .with("resume_after", self.delivered),
                    )));
                }
            }
        }
    }
}

/// The session stream type.
pub type SessionStream =
    Pin<Box<dyn Stream<Item = Result<pb::WatchAgentSessionResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::client_info_service_server::ClientInfoService for ClientInfoApi {
    #[tracing::instrument(skip_all, fields(interaction_id = %request.get_ref().interaction_id))]
    async fn get_client_info(
        &self,
        request: Request<pb::GetClientInfoRequest>,
    ) -> Result<Response<pb::GetClientInfoResponse>, Status> {
        let caller = Caller::of(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let id = convert::client_id(&mut v, "interaction_id", &req.interaction_id);
        let size = convert::page_size(&mut v, "candidate_page_size", req.candidate_page_size);
        let offset = offset_token(&mut v, &req.candidate_page_token);
        v.into_result()?;
        let id = id.unwrap_or_default();
        caller.require(Permission::InteractionsHandle)?;

        let (mut conn, session) = self.state.session(caller).await?;
        // Another agent's interaction is as invisible as another domain's.
        let interaction = interactions::find(&conn, session.domain.id, &id, false)
            .await?
            .filter(|i| i.agent == caller.user_id)
            .ok_or_else(|| Error::interaction_not_found(&id))?;
        if offset > 0 && offset >= interaction.identification.candidates.len() {
            return Err(
                Error::invalid("candidate_page_token", "is past the last candidate").into(),
            );
        }
        let size = usize::try_from(size).unwrap_or(20);
        let (panel, next) = panel::build_for_agent(
            &mut conn,
            panel::Viewer::of(&session, &self.state.keys),
            &interaction,
            offset,
            size,
            &session,
        )
        .await?;
        Ok(Response::new(pb::GetClientInfoResponse {
            panel: Some(panel),
            next_candidate_page_token: next.map(|n| format!("c{n}")).unwrap_or_default(),
        }))
    }

    type WatchAgentSessionStream = SessionStream;

    #[tracing::instrument(skip_all, fields(resume_after = request.get_ref().resume_after))]
    async fn watch_agent_session(
        &self,
        request: Request<pb::WatchAgentSessionRequest>,
    ) -> Result<Response<Self::WatchAgentSessionStream>, Status> {
        let caller = Caller::of(&request)?;
        let resume_after = request.get_ref().resume_after;
        if resume_after < 0 {
            return Err(Error::invalid("resume_after", "must not be negative").into());
        }
        authorize(&request)?;

        let (mut conn, session) = self.state.session(caller).await?;
        let domain = session.domain.id;
        // Subscribe before reading, so nothing committed meanwhile falls between the two.
        let subscription = self
            .state
            .hub
            .subscribe(&mut conn, domain, caller.user_id)
            .await?;
        let outbox::Position {
            last,
            stored,
            pruned,
        } = outbox::position(&mut conn, domain).await?;
        if resume_after > stored {
            return Err(Error::invalid(
                "resume_after",
                format!("is ahead of the domain's last event ({stored}); resume from a sequence you received"),
            )
            .into());
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
            )
            .into());
        }
        let viewer = panel::Viewer::of(&session, &self.state.keys);
        let mut first: Vec<pb::AgentEvent> = Vec::new();
        let mut position = resume_after;
        if resume_after == 0 {
            let open = interactions::open_for_agent(&mut conn, domain, caller.user_id).await?;
            let mut panels = Vec::with_capacity(open.len());
            for i in &open {
                panels.push(
                    panel::build_for_agent(&mut conn, viewer, i, 0, SNAPSHOT_CANDIDATES, &session)
                        .await?
                        .0,
                );
            }
            first.push(pb::AgentEvent {
                sequence: last,
                occurred_at: Some(convert::timestamp(chrono::Utc::now())),
                event: Some(Event::Snapshot(pb::SessionSnapshot { panels })),
            });
            position = last;
        } else {
            loop {
                // What the hub fetched before this subscription is final and will not come
                // through it: read it here even if this statement's horizon is lower.
                let read = outbox::AgentRead {
                    agent: caller.user_id,
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
            // Not past `last`: a horizon lower in the replay's statement than in the
            // position's would skip this agent's events between the two (the hub sends only
            // what comes after its own fetch, and the stream drops what is at or below
            // `position`).
        }
        // The stream must not hold a pooled connection for its life.
        drop(conn);

        // No task and no channel per stream: the response stream reads the hub subscription
        // itself, so an idle stream costs its subscription and this state only.
        let live = Live {
            first: first.into_iter(),
            subscription,
            delivered: position,
            keys: self.state.keys.clone(),
            full: viewer.full,
            domain,
            heartbeat: self.state.heartbeat,
            shutdown: self.state.shutdown.clone(),
            metrics: self.state.metrics.clone(),
            ended: false,
        };
        let mut response = Response::new(Box::pin(futures_util::stream::unfold(
            live,
            |mut live| async move {
                let item = live.next().await?;
                Some((
                    item.map(|e| pb::WatchAgentSessionResponse { event: Some(e) }),
                    live,
                ))
            },
        )) as SessionStream);
        let interval = u64::try_from(self.state.heartbeat.as_millis()).unwrap_or(u64::MAX);
        response
            .metadata_mut()
            .insert(HEARTBEAT_HEADER, interval.into());
        Ok(response)
    }
}
