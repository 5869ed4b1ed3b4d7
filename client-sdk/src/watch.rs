//! The agent session stream, with automatic reconnection and resume.

use std::time::Duration;

use client_info_proto::pb;
use tokio_stream::Stream;
use tonic::Code;

use crate::client::Client;
use crate::error::SdkError;

/// How a session watch reconnects.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Resume after this sequence (0: start with a snapshot).
    pub resume_after: i64,
    /// First reconnect delay; doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    /// Longest reconnect delay.
    pub max_backoff: Duration,
    /// Also yield heartbeats (sequence 0).
    pub heartbeats: bool,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            resume_after: 0,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            heartbeats: false,
        }
    }
}

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

impl Client {
    /// The raw session stream, one connection, no reconnection.
    pub async fn watch_session_once(
        &self,
        resume_after: i64,
    ) -> Result<tonic::Streaming<pb::WatchAgentSessionResponse>, SdkError> {
        Ok(self
            .client_info()
            .watch_agent_session(pb::WatchAgentSessionRequest { resume_after })
            .await?
            .into_inner())
    }

    /// The calling agent's session: a snapshot, then every event exactly once and in order.
    /// When the connection drops, the server restarts or the stream is cut as too slow, it
    /// reconnects with backoff and resumes after the last sequence it yielded; when that is
    /// older than the server keeps, it starts over with a new snapshot. It ends only on an
    /// error that reconnecting cannot fix (bad token, missing permission), yielded last, or when
    /// the stream is dropped.
    pub fn watch_session(
        &self,
        options: WatchOptions,
    ) -> impl Stream<Item = Result<pb::AgentEvent, SdkError>> + Send + 'static {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let client = self.clone();
        tokio::spawn(async move {
            let mut last = options.resume_after;
            let mut backoff = options.initial_backoff;
            loop {
                let failure: tonic::Status = match client.watch_session_once(last).await {
                    Err(SdkError::Connect(e)) => tonic::Status::unavailable(e.to_string()),
                    Err(e) => {
                        let code = e.code();
                        if is_terminal(code) {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                        tonic::Status::new(code, e.to_string())
                    }
                    Ok(mut stream) => loop {
                        // Stop as soon as the caller drops the stream, not at the next event.
                        let message = tokio::select! {
                            m = stream.message() => m,
                            () = tx.closed() => return,
                        };
                        match message {
                            Ok(Some(msg)) => {
                                let Some(event) = msg.event else { continue };
                                backoff = options.initial_backoff;
                                match &event.event {
                                    Some(pb::agent_event::Event::Heartbeat(_)) => {
                                        if !options.heartbeats {
                                            continue;
                                        }
                                    }
                                    Some(pb::agent_event::Event::Snapshot(_)) => {
                                        last = event.sequence;
                                    }
                                    _ => {
                                        if event.sequence <= last {
                                            continue;
                                        }
                                        last = event.sequence;
                                    }
                                }
                                if tx.send(Ok(event)).await.is_err() {
                                    return;
                                }
                            }
                            Ok(None) => break tonic::Status::unavailable("stream ended"),
                            Err(status) => break status,
                        }
                    },
                };
                match failure.code() {
                    Code::OutOfRange => {
                        last = 0;
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
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(options.max_backoff);
            }
        });
        tokio_stream::wrappers::ReceiverStream::new(rx)
    }
}
