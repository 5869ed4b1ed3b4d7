//! `clientinfo.v1.ClientInfoService`: the agent desktop's panel and session stream.

use std::pin::Pin;
use std::sync::Arc;

use client_info_proto::pb;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::{call, decode};
use crate::app::{self, AppState};
use crate::auth::TokenKeys;
use crate::domain::ids::DomainId;
use crate::domain::permission::Permission;
use crate::error::{Fault, Reason};
use crate::hub::Subscription;
use crate::metrics::{Metrics, StreamCut};
use crate::wire::events;
use crate::wire::panel::Viewer;

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

/// Response metadata of `WatchAgentSession`: the server's heartbeat interval in milliseconds.
/// A client that hears nothing (no event, no heartbeat) for two intervals and a margin can
/// treat the connection as dead, reconnect and resume; the SDK does.
pub const HEARTBEAT_HEADER: &str = "x-heartbeat-interval-ms";

/// A live session stream: the first events (snapshot or replay), then the hub's, heartbeats
/// while idle, and an error that tells the client where to resume when it must end: the
/// server stops, the client reads too slowly, or the stream's token expires (the stream is
/// bound to the token that opened it) or its user is deleted.
struct Live {
    first: std::vec::IntoIter<pb::AgentEvent>,
    subscription: Subscription,
    delivered: i64,
    /// When the token that opened the stream expires.
    expires: tokio::time::Instant,
    keys: Arc<TokenKeys>,
    full: bool,
    domain: DomainId,
    heartbeat: std::time::Duration,
    shutdown: tokio::sync::watch::Receiver<bool>,
    metrics: Metrics,
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
                        let viewer = Viewer {
                            full: self.full,
                            keys: &self.keys,
                            domain: self.domain,
                        };
                        return Some(events::render(&stored, &viewer).map_err(Status::from));
                    }
                    None => {
                        self.ended = true;
                        return Some(Err(if self.subscription.revoked() {
                            crate::error::status(
                                tonic::Code::Unauthenticated,
                                &Fault::new(
                                    Reason::TokenUserUnknown,
                                    "the stream's user was deleted",
                                )
                                .with("resume_after", self.delivered),
                            )
                        } else if self.subscription.overflowed() {
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
                    return Some(Ok(events::heartbeat(chrono::Utc::now())));
                }
                () = tokio::time::sleep_until(self.expires) => {
                    self.ended = true;
                    self.metrics.stream_cut(StreamCut::TokenExpired);
                    return Some(Err(crate::error::status(
                        tonic::Code::Unauthenticated,
                        &Fault::new(
                            Reason::TokenExpired,
                            format!(
                                "the stream's token has expired; resume with a fresh token and \
                                 resume_after {}",
                                self.delivered
                            ),
                        )
                        .with("resume_after", self.delivered),
                    )));
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

/// The instant a token expiring at `exp` (Unix seconds) has expired: the first second past
/// it, as the token checks count (expired once `exp` is in the past).
pub fn expiry(exp: i64) -> tokio::time::Instant {
    let now = chrono::Utc::now().timestamp_millis();
    let left_ms = exp
        .saturating_add(1)
        .saturating_mul(1000)
        .saturating_sub(now);
    let left = std::time::Duration::from_millis(u64::try_from(left_ms).unwrap_or(0));
    // Far enough for a token without a real expiry, near enough not to overflow.
    tokio::time::Instant::now() + left.min(std::time::Duration::from_secs(100 * 365 * 86_400))
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
        let call = call(&request)?;
        let get = decode::client_info::get_client_info(request.get_ref())?;
        call.principal.require(Permission::InteractionsHandle)?;
        let (panel, next) = app::client_info::panel(&self.state, &call, get).await?;
        Ok(Response::new(pb::GetClientInfoResponse {
            panel: Some(panel),
            next_candidate_page_token: decode::client_info::next_offset_token(next),
        }))
    }

    type WatchAgentSessionStream = SessionStream;

    #[tracing::instrument(skip_all, fields(resume_after = request.get_ref().resume_after))]
    async fn watch_agent_session(
        &self,
        request: Request<pb::WatchAgentSessionRequest>,
    ) -> Result<Response<Self::WatchAgentSessionStream>, Status> {
        let call = call(&request)?;
        let watch = decode::client_info::watch_agent_session(request.get_ref())?;
        call.principal.require(Permission::InteractionsHandle)?;
        let opened = app::client_info::watch(&self.state, &call, watch).await?;

        // No task and no channel per stream: the response stream reads the hub subscription
        // itself, so an idle stream costs its subscription and this state only.
        let expires = expiry(call.principal.expires_at);
        let live = Live {
            first: opened.first.into_iter(),
            subscription: opened.subscription,
            delivered: opened.position,
            expires,
            keys: self.state.keys.clone(),
            full: opened.full,
            domain: opened.domain,
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
