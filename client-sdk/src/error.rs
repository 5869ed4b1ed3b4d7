//! `SdkError`: the status codes a caller acts on, as variants, and how an error's chain of
//! sources reads as one message.
//!
//! A leaf: imports nothing of the crate.

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

/// What the server said about an error besides its code: the message, and from
/// `google.rpc.ErrorInfo` the machine-readable reason (`CONTACT_VERSION_MISMATCH`, ...) and its
/// metadata (`current_version`, ...), and from `google.rpc.RetryInfo` how long to wait.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorDetail {
    /// The server's message, for people.
    pub message: String,
    /// The stable reason, for programs (see the README's list); `None` from servers that send
    /// no `ErrorInfo`.
    pub reason: Option<String>,
    /// Facts that come with the reason, for example `current_version`.
    pub metadata: std::collections::HashMap<String, String>,
    /// How long to wait before retrying, when the server says.
    pub retry_after: Option<std::time::Duration>,
    /// From `google.rpc.PreconditionFailure`: each precondition that failed (for example
    /// each communication an undo of a merge cannot give back).
    pub preconditions: Vec<PreconditionViolation>,
}

/// One failed precondition, from the server's `google.rpc.PreconditionFailure` details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreconditionViolation {
    /// What kind of failure (a reason such as `IDENTITY_HELD_BY_OTHER_CONTACT`).
    pub kind: String,
    /// What it is about, for example `contact/12/phones/34`.
    pub subject: String,
    /// For people.
    pub description: String,
}

impl std::fmt::Display for ErrorDetail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl ErrorDetail {
    fn of(status: &Status) -> Self {
        let details = status.get_error_details();
        let (reason, metadata) = match details.error_info() {
            Some(info) => (Some(info.reason.clone()), info.metadata.clone()),
            None => (None, Default::default()),
        };
        Self {
            message: status.message().to_owned(),
            reason,
            metadata,
            retry_after: details.retry_info().and_then(|r| r.retry_delay),
            preconditions: details
                .precondition_failure()
                .map(|p| {
                    p.violations
                        .iter()
                        .map(|v| PreconditionViolation {
                            kind: v.r#type.clone(),
                            subject: v.subject.clone(),
                            description: v.description.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
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
    #[error("invalid argument: {detail}")]
    InvalidArgument {
        /// The server's message and reason.
        detail: Box<ErrorDetail>,
        /// The invalid fields.
        violations: Vec<FieldViolation>,
    },
    /// No such object in the caller's domain.
    #[error("not found: {0}")]
    NotFound(Box<ErrorDetail>),
    /// It already exists (or a request id was reused with another body).
    #[error("already exists: {0}")]
    AlreadyExists(Box<ErrorDetail>),
    /// The object is not in a state that allows this.
    #[error("failed precondition: {0}")]
    FailedPrecondition(Box<ErrorDetail>),
    /// A conflict: a stale `expected_version` (reason `CONTACT_VERSION_MISMATCH`, metadata
    /// `current_version`: reload, then retry with the new version) or a concurrent change
    /// (`CONCURRENT_CHANGE`: the same request may succeed).
    #[error("aborted: {0}")]
    Aborted(Box<ErrorDetail>),
    /// The token lacks a permission.
    #[error("permission denied: {0}")]
    PermissionDenied(Box<ErrorDetail>),
    /// No valid token.
    #[error("unauthenticated: {0}")]
    Unauthenticated(Box<ErrorDetail>),
    /// Out of range (for example a resume point older than retention).
    #[error("out of range: {0}")]
    OutOfRange(Box<ErrorDetail>),
    /// The server or its database is unavailable now; retry with backoff.
    #[error("unavailable: {0}")]
    Unavailable(Box<ErrorDetail>),
    /// The server is overloaded or the client too slow; retry after a while.
    #[error("resource exhausted: {0}")]
    ResourceExhausted(Box<ErrorDetail>),
    /// The call took longer than its deadline.
    #[error("deadline exceeded: {0}")]
    DeadlineExceeded(Box<ErrorDetail>),
    /// The server does not implement this RPC (yet).
    #[error("unimplemented: {0}")]
    Unimplemented(Box<ErrorDetail>),
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
            SdkError::ResourceExhausted(_) => Code::ResourceExhausted,
            SdkError::DeadlineExceeded(_) => Code::DeadlineExceeded,
            SdkError::Unimplemented(_) => Code::Unimplemented,
            SdkError::Other(s) => s.code(),
        }
    }

    /// What the server said, for errors that came from it.
    pub fn detail(&self) -> Option<&ErrorDetail> {
        match self {
            SdkError::Config(_) | SdkError::Connect { .. } | SdkError::Other(_) => None,
            SdkError::InvalidArgument { detail, .. }
            | SdkError::NotFound(detail)
            | SdkError::AlreadyExists(detail)
            | SdkError::FailedPrecondition(detail)
            | SdkError::Aborted(detail)
            | SdkError::PermissionDenied(detail)
            | SdkError::Unauthenticated(detail)
            | SdkError::OutOfRange(detail)
            | SdkError::Unavailable(detail)
            | SdkError::ResourceExhausted(detail)
            | SdkError::DeadlineExceeded(detail)
            | SdkError::Unimplemented(detail) => Some(detail),
        }
    }

    /// The machine-readable reason (`google.rpc.ErrorInfo.reason`), when the server sent one.
    pub fn reason(&self) -> Option<&str> {
        self.detail().and_then(|d| d.reason.as_deref())
    }

    /// A metadata value of the reason, for example `current_version`.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.detail()
            .and_then(|d| d.metadata.get(key))
            .map(String::as_str)
    }

    /// The failed preconditions the server listed (FAILED_PRECONDITION, ABORTED).
    pub fn preconditions(&self) -> &[PreconditionViolation] {
        self.detail().map_or(&[], |d| d.preconditions.as_slice())
    }

    /// The invalid fields, when the error is INVALID_ARGUMENT.
    pub fn violations(&self) -> &[FieldViolation] {
        match self {
            SdkError::InvalidArgument { violations, .. } => violations,
            _ => &[],
        }
    }

    /// True when repeating the same request later may succeed: the server or the connection
    /// was unavailable, the server asked to retry after a while, or a concurrent change won.
    /// False for a stale `expected_version` (reason `CONTACT_VERSION_MISMATCH`): repeating it
    /// can never succeed; reload the contact and retry with its current version.
    pub fn is_retryable(&self) -> bool {
        match self {
            SdkError::Unavailable(_) | SdkError::Connect { .. } => true,
            SdkError::ResourceExhausted(d) => d.retry_after.is_some(),
            SdkError::Aborted(d) => d.reason.as_deref() != Some("CONTACT_VERSION_MISMATCH"),
            _ => false,
        }
    }
}

impl SdkError {
    /// A connection error for `url`, with a hint when the scheme does not fit the server.
    pub(crate) fn connect(url: &str, e: &tonic::transport::Error) -> Self {
        let mut detail = chain(e);
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
        let detail = Box::new(ErrorDetail::of(&status));
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
                SdkError::InvalidArgument { detail, violations }
            }
            Code::NotFound => SdkError::NotFound(detail),
            Code::AlreadyExists => SdkError::AlreadyExists(detail),
            Code::FailedPrecondition => SdkError::FailedPrecondition(detail),
            Code::Aborted => SdkError::Aborted(detail),
            Code::PermissionDenied => SdkError::PermissionDenied(detail),
            Code::Unauthenticated => SdkError::Unauthenticated(detail),
            Code::OutOfRange => SdkError::OutOfRange(detail),
            Code::Unavailable => SdkError::Unavailable(detail),
            Code::ResourceExhausted => SdkError::ResourceExhausted(detail),
            Code::DeadlineExceeded => SdkError::DeadlineExceeded(detail),
            Code::Unimplemented => SdkError::Unimplemented(detail),
            _ => SdkError::Other(status),
        }
    }
}

/// The messages of an error and its sources, joined.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}
