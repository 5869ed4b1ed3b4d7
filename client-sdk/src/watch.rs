//! The server streams the SDK keeps open, reconnecting and resuming by position: the agent
//! session stream and the contact change feed.
//!
//! A service module: imports `auth`, `client`, `error` and `retry`, no other service module.

use std::time::Duration;

use client_info_proto::pb;
use tokio_stream::Stream;
use tonic::Code;

use crate::auth::NoDeadline;
use crate::client::Client;
use crate::error::SdkError;
use crate::retry::jittered;

/// How a session watch reconnects.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Resume after this sequence (0: start with a snapshot).
    pub resume_after: i64,
    /// First reconnect delay; doubles up to `max_backoff`. Each wait is drawn at random
    /// between zero and the current delay ("full jitter"), so that desktops cut off together
    /// (a server restart) do not all come back at the same instant.
    pub initial_backoff: Duration,
    /// Longest reconnect delay.
    pub max_backoff: Duration,
    /// Also yield heartbeats (sequence 0).
    pub heartbeats: bool,
    /// The heartbeat interval assumed until the server states its own (it sends it in the
    /// `x-heartbeat-interval-ms` response header, which then wins).
    pub heartbeat_interval: Duration,
    /// The stream is presumed dead when nothing (no event, no heartbeat) arrives for two
    /// heartbeat intervals plus this margin: it is dropped and resumed on a new connection,
    /// since the old one may be frozen without knowing it (NAT timeout, roaming, a proxy).
    pub silence_margin: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            resume_after: 0,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            heartbeats: false,
            heartbeat_interval: Duration::from_secs(15),
            silence_margin: Duration::from_secs(5),
        }
    }
}

impl WatchOptions {
    /// How long a silent stream is trusted, for a server heartbeat `interval`.
    pub fn silence_deadline(&self, interval: Duration) -> Duration {
        interval * 2 + self.silence_margin
    }
}

/// Response metadata naming the server's heartbeat interval in milliseconds.
pub const HEARTBEAT_HEADER: &str = "x-heartbeat-interval-ms";

/// Codes after which reconnecting cannot help: the stream ends with the error.
fn is_terminal(code: Code) -> bool {
    matches!(
        code,
        Code::Unauthenticated
            | Code::PermissionDenied
            | Code::InvalidArgument
            | Code::Unimplemented
    )
}

/// True when the status says the token expired (reason `TOKEN_EXPIRED`).
fn token_expired(status: &tonic::Status) -> bool {
    SdkError::from(status.clone()).reason() == Some("TOKEN_EXPIRED")
}

impl Client {
    /// The raw session stream, one connection, no reconnection, no deadline.
    pub async fn watch_session_once(
        &self,
        resume_after: i64,
    ) -> Result<tonic::Streaming<pb::WatchAgentSessionResponse>, SdkError> {
        Ok(self.open_session(resume_after).await?.into_inner())
    }

    async fn open_session(
        &self,
        resume_after: i64,
    ) -> Result<tonic::Response<tonic::Streaming<pb::WatchAgentSessionResponse>>, SdkError> {
        let mut request = tonic::Request::new(pb::WatchAgentSessionRequest { resume_after });
        request.extensions_mut().insert(NoDeadline);
        Ok(self.client_info().watch_agent_session(request).await?)
    }

    /// The calling agent's session: a snapshot, then every event exactly once and in order.
    /// When the connection drops, the server restarts, the stream is cut as too slow, or
    /// nothing arrives within the silence deadline (a connection that died without a word), it
    /// reconnects with jittered backoff and resumes after the last sequence it yielded; when
    /// that is older than the server keeps, it starts over with a new snapshot. A stream is
    /// bound to the token that opened it and ends when it expires: with a token provider
    /// ([`crate::ClientBuilder::token_provider`]) it resumes at once with the provider's
    /// next token, nothing lost. It ends only on an error that reconnecting cannot fix (bad or
    /// expired token without a provider, missing permission), yielded last, or when the stream
    /// is dropped.
    pub fn watch_session(
        &self,
        options: WatchOptions,
    ) -> impl Stream<Item = Result<pb::AgentEvent, SdkError>> + Send + 'static {
        let heartbeats = options.heartbeats;
        drive(
            self.clone(),
            options,
            Resume::FromScratch,
            |client, after| Box::pin(async move { client.open_session(after).await }),
            move |msg: pb::WatchAgentSessionResponse, last: &mut i64| {
                let event = msg.event?;
                match &event.event {
                    Some(pb::agent_event::Event::Heartbeat(_)) => {
                        if !heartbeats {
                            return None;
                        }
                    }
                    Some(pb::agent_event::Event::Snapshot(_)) => *last = event.sequence,
                    _ => {
                        if event.sequence <= *last {
                            return None;
                        }
                        *last = event.sequence;
                    }
                }
                Some(event)
            },
        )
    }

    async fn open_changes(
        &self,
        request: pb::WatchContactChangesRequest,
    ) -> Result<tonic::Response<tonic::Streaming<pb::WatchContactChangesResponse>>, SdkError> {
        let mut request = tonic::Request::new(request);
        request.extensions_mut().insert(NoDeadline);
        Ok(self.contacts().watch_contact_changes(request).await?)
    }

    /// The domain's contact changes (`contacts.changes`), each exactly once and in commit
    /// order, from `options.resume_after` (0: from now), reconnecting and resuming like
    /// [`Client::watch_session`]. Yields [`ChangeItem::Started`] once, then the changes (and
    /// heartbeats when `options.heartbeats`: a position to keep even when the filters let
    /// nothing through). A position older than the server keeps ends the stream with
    /// OUT_OF_RANGE: resync with [`Client::list_contacts`], then watch after the position
    /// it gives.
    pub fn watch_contact_changes(
        &self,
        filter: ChangeFilter,
        options: WatchOptions,
    ) -> impl Stream<Item = Result<ChangeItem, SdkError>> + Send + 'static {
        use pb::watch_contact_changes_response::Item;
        let heartbeats = options.heartbeats;
        let mut started = false;
        drive(
            self.clone(),
            options,
            Resume::Never,
            move |client, after| {
                let request = pb::WatchContactChangesRequest {
                    resume_after: after,
                    fields: (!filter.fields.is_empty()).then(|| prost_types::FieldMask {
                        paths: filter.fields.clone(),
                    }),
                    labels: filter.labels.clone(),
                    owner_id: filter.owner_id,
                };
                Box::pin(async move { client.open_changes(request).await })
            },
            move |msg: pb::WatchContactChangesResponse, last: &mut i64| match msg.item? {
                Item::StartedAfter(position) => {
                    *last = position;
                    (!std::mem::replace(&mut started, true))
                        .then_some(ChangeItem::Started(position))
                }
                Item::Change(change) => {
                    if change.position <= *last {
                        return None;
                    }
                    *last = change.position;
                    Some(ChangeItem::Change(Box::new(change)))
                }
                Item::Heartbeat(h) => {
                    *last = (*last).max(h.position);
                    heartbeats.then_some(ChangeItem::Heartbeat(h.position))
                }
            },
        )
    }

    /// One page of the domain's contacts in the order of their last change
    /// (`contacts.changes`): a change-feed consumer's full resync. Read every page (pass each
    /// `next_page_token`), then watch after the response's `resume_after`.
    pub async fn list_contacts(
        &self,
        filter: &ChangeFilter,
        page_size: i32,
        page_token: impl Into<String>,
    ) -> Result<pb::ListContactsResponse, SdkError> {
        let request = pb::ListContactsRequest {
            page_size,
            page_token: page_token.into(),
            labels: filter.labels.clone(),
            owner_id: filter.owner_id,
        };
        Ok(self
            .run(crate::retry::Idempotent::Yes, || {
                let mut stub = self.contacts();
                let request = request.clone();
                async move { stub.list_contacts(request).await }
            })
            .await?
            .into_inner())
    }
}

/// Which changes a change watch asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeFilter {
    /// Card fields to send (names of `Contact`'s fields); empty: the whole card.
    pub fields: Vec<String>,
    /// Only contacts carrying every one of these labels.
    pub labels: Vec<String>,
    /// Only contacts of this owner (0: any).
    pub owner_id: i64,
}

/// What [`Client::watch_contact_changes`] yields.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeItem {
    /// First: the feed continues after this position.
    Started(i64),
    /// A change.
    Change(Box<pb::ContactChange>),
    /// The feed stands at this position (only with `heartbeats`).
    Heartbeat(i64),
}

/// What a resumed stream does when its position is older than the server keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resume {
    /// Start over from 0 (a new snapshot).
    FromScratch,
    /// End with the OUT_OF_RANGE error: the caller resyncs.
    Never,
}

type Opening<M> = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = Result<tonic::Response<tonic::Streaming<M>>, SdkError>>
            + Send,
    >,
>;

/// Keeps a server stream open: opens it after the last position `accept` kept, yields what
/// `accept` makes of each message, and on a failure reconnects (a fresh connection when the
/// old one went silent) with jittered backoff, until an error reconnecting cannot fix.
fn drive<M, I>(
    client: Client,
    options: WatchOptions,
    out_of_range: Resume,
    open: impl Fn(Client, i64) -> Opening<M> + Send + 'static,
    mut accept: impl FnMut(M, &mut i64) -> Option<I> + Send + 'static,
) -> impl Stream<Item = Result<I, SdkError>> + Send + 'static
where
    M: Default + Send + 'static,
    I: Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let mut client = client;
    tokio::spawn(async move {
        let mut last = options.resume_after;
        let mut backoff = options.initial_backoff;
        let mut fresh_connection = false;
        loop {
            if fresh_connection {
                // A connection of its own: the shared one may be the frozen one.
                match client.reconnected().await {
                    Ok(c) => {
                        client = c;
                        fresh_connection = false;
                    }
                    Err(_) => {
                        if tx.is_closed() {
                            return;
                        }
                        tokio::time::sleep(jittered(backoff)).await;
                        backoff = (backoff * 2).min(options.max_backoff);
                        continue;
                    }
                }
            }
            let opening = options.silence_deadline(options.heartbeat_interval);
            let opened = tokio::select! {
                r = tokio::time::timeout(opening, open(client.clone(), last)) => r,
                () = tx.closed() => return,
            };
            let failure: tonic::Status = match opened {
                Err(_) => {
                    fresh_connection = true;
                    tonic::Status::unavailable("no answer opening the stream")
                }
                Ok(Err(e)) => {
                    let code = e.code();
                    if is_terminal(code)
                        || (code == Code::OutOfRange && out_of_range == Resume::Never)
                    {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                    tonic::Status::new(code, e.to_string())
                }
                Ok(Ok(response)) => {
                    let interval = response
                        .metadata()
                        .get(HEARTBEAT_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok())
                        .filter(|ms| *ms > 0)
                        .map_or(options.heartbeat_interval, Duration::from_millis);
                    let silence = options.silence_deadline(interval);
                    let mut stream = response.into_inner();
                    loop {
                        // Stop as soon as the caller drops the stream, not at the next message.
                        let message = tokio::select! {
                            m = tokio::time::timeout(silence, stream.message()) => m,
                            () = tx.closed() => return,
                        };
                        let message = match message {
                            Ok(m) => m,
                            Err(_) => {
                                fresh_connection = true;
                                break tonic::Status::unavailable(format!(
                                    "nothing received for {silence:?}: the connection is presumed dead"
                                ));
                            }
                        };
                        match message {
                            Ok(Some(msg)) => {
                                backoff = options.initial_backoff;
                                if let Some(item) = accept(msg, &mut last)
                                    && tx.send(Ok(item)).await.is_err()
                                {
                                    return;
                                }
                            }
                            Ok(None) => break tonic::Status::unavailable("stream ended"),
                            Err(status) => break status,
                        }
                    }
                }
            };
            match failure.code() {
                Code::OutOfRange if out_of_range == Resume::FromScratch => {
                    last = 0;
                    continue;
                }
                Code::OutOfRange => {
                    let _ = tx.send(Err(SdkError::from(failure))).await;
                    return;
                }
                // The stream's token expired: the provider gives the next call a fresh one,
                // and the stream resumes where it was, at once.
                Code::Unauthenticated if client.refreshes_tokens() && token_expired(&failure) => {
                    continue;
                }
                code if is_terminal(code) => {
                    let _ = tx.send(Err(SdkError::from(failure))).await;
                    return;
                }
                _ => {}
            }
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(jittered(backoff)).await;
            backoff = (backoff * 2).min(options.max_backoff);
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
