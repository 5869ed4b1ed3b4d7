//! `SdkError`: the status codes a caller acts on, as variants.

use tonic::{Code, Status};
use tonic_types::StatusExt as _;

/// One invalid field of a request, from the server's `google.rpc.BadRequest` details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field path, for example `communications[0].phone.number`.
    pub field: String,
    /// What is wrong.
    pub description: String,
}

/// What can go wrong calling client-info.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// The URL or token given to the builder is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Could not connect (refused, unreachable, timed out, or the TLS handshake failed).
    #[error("cannot connect to {url}: {detail}")]
    Connect {
        /// The URL.
        url: String,
        /// What went wrong, with a hint when the URL's scheme does not match the server.
        detail: String,
    },
    /// The request is malformed; `violations` name the fields.
    #[error("invalid argument: {message}")]
    InvalidArgument {
        /// The server's message.
        message: String,
        /// The invalid fields.
        violations: Vec<FieldViolation>,
    },
    /// No such object in the caller's domain.
    #[error("not found: {0}")]
    NotFound(String),
    /// It already exists (or a request id was reused with another body).
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The object is not in a state that allows this.
    #[error("failed precondition: {0}")]
    FailedPrecondition(String),
    /// The version the caller sent is stale, or a concurrent change won: reload and retry.
    #[error("aborted: {0}")]
    Aborted(String),
    /// The token lacks a permission.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// No valid token.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// Out of range (for example a resume point older than retention).
    #[error("out of range: {0}")]
    OutOfRange(String),
    /// The server or its database is unavailable now; retry with backoff.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The call took longer than its deadline.
    #[error("deadline exceeded: {0}")]
    DeadlineExceeded(String),
    /// The server does not implement this RPC (yet).
    #[error("unimplemented: {0}")]
    Unimplemented(String),
    /// Any other status.
    #[error("{}: {}", .0.code(), .0.message())]
    Other(Status),
}

impl SdkError {
    /// The gRPC code this error stands for.
    pub fn code(&self) -> Code {
        match self {
            SdkError::Config(_) => Code::InvalidArgument,
            SdkError::Connect { .. } | SdkError::Unavailable(_) => Code::Unavailable,
            SdkError::InvalidArgument { .. } => Code::InvalidArgument,
            SdkError::NotFound(_) => Code::NotFound,
            SdkError::AlreadyExists(_) => Code::AlreadyExists,
            SdkError::FailedPrecondition(_) => Code::FailedPrecondition,
            SdkError::Aborted(_) => Code::Aborted,
            SdkError::PermissionDenied(_) => Code::PermissionDenied,
            SdkError::Unauthenticated(_) => Code::Unauthenticated,
            SdkError::OutOfRange(_) => Code::OutOfRange,
            SdkError::DeadlineExceeded(_) => Code::DeadlineExceeded,
            SdkError::Unimplemented(_) => Code::Unimplemented,
            SdkError::Other(s) => s.code(),
        }
    }

    /// The invalid fields, when the error is INVALID_ARGUMENT.
    pub fn violations(&self) -> &[FieldViolation] {
        match self {
            SdkError::InvalidArgument { violations, .. } => violations,
            _ => &[],
        }
    }

    /// True when retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            SdkError::Unavailable(_) | SdkError::Connect { .. } | SdkError::Aborted(_)
        )
    }
}

impl SdkError {
    /// A connection error for `url`, with a hint when the scheme does not fit the server.
    pub(crate) fn connect(url: &str, e: &tonic::transport::Error) -> Self {
        let mut detail = crate::client::chain(e);
        let lower = detail.to_ascii_lowercase();
        if url.starts_with("https://")
            && (lower.contains("invalidcontenttype")
                || lower.contains("corrupt message")
                || lower.contains("wrong version number"))
        {
            detail.push_str(
                " (the TLS handshake failed: the server does not seem to serve TLS; \
                 use an http:// URL for a plaintext server)",
            );
        } else if url.starts_with("http://")
            && (lower.contains("connection reset")
                || lower.contains("broken pipe")
                || lower.contains("protocol error")
                || lower.contains("connection closed"))
        {
            detail.push_str(
                " (the server closed the connection: if it serves TLS, use an https:// URL)",
            );
        }
        SdkError::Connect {
            url: url.to_owned(),
            detail,
        }
    }
}

impl From<Status> for SdkError {
    fn from(status: Status) -> Self {
        let message = status.message().to_owned();
        match status.code() {
            Code::InvalidArgument => {
                let violations = status
                    .get_details_bad_request()
                    .map(|br| {
                        br.field_violations
                            .into_iter()
                            .map(|v| FieldViolation {
                                field: v.field,
                                description: v.description,
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                SdkError::InvalidArgument {
                    message,
                    violations,
                }
            }
            Code::NotFound => SdkError::NotFound(message),
            Code::AlreadyExists => SdkError::AlreadyExists(message),
            Code::FailedPrecondition => SdkError::FailedPrecondition(message),
            Code::Aborted => SdkError::Aborted(message),
            Code::PermissionDenied => SdkError::PermissionDenied(message),
            Code::Unauthenticated => SdkError::Unauthenticated(message),
            Code::OutOfRange => SdkError::OutOfRange(message),
            Code::Unavailable => SdkError::Unavailable(message),
            Code::DeadlineExceeded => SdkError::DeadlineExceeded(message),
            Code::Unimplemented => SdkError::Unimplemented(message),
            _ => SdkError::Other(status),
        }
    }
}
