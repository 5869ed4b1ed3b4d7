//! The server's one error type and its single conversion to `tonic::Status`.
//!
//! Every handler returns `Result<_, Error>`; the mapping to gRPC codes lives only here, as an
//! exhaustive `match`. Database errors are classified by kind (unique violation, foreign key,
//! lost connection, ...) so that no expected failure surfaces as INTERNAL.

use diesel::result::DatabaseErrorKind;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// One field of a request that failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field path, for example `communications[1].phone.number`.
    pub field: String,
    /// What is wrong with it.
    pub description: String,
}

/// Collects field violations while a request is validated.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a violation.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation {
            field: field.into(),
            description: description.into(),
        });
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when nothing was recorded, else the INVALID_ARGUMENT error carrying them all.
    pub fn into_result(self) -> Result<(), Error> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidArgument(self.0))
        }
    }

    /// Runs `check` and records its error under `field`, returning the value when valid.
    pub fn check<T, E: std::fmt::Display>(
        &mut self,
        field: impl Into<String>,
        result: Result<T, E>,
    ) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.add(field, e.to_string());
                None
            }
        }
    }
}

/// Everything that can go wrong while serving a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed; the violations name the fields.
    #[error("invalid argument: {}", describe(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// The object does not exist in the caller's domain.
    #[error("{0} not found")]
    NotFound(String),
    /// The object exists but is not in a state that allows the operation.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The caller's version is stale (optimistic concurrency), or a conflict to retry.
    #[error("{0}")]
    Aborted(String),
    /// The object already exists.
    #[error("{0}")]
    AlreadyExists(String),
    /// The token lacks a permission.
    #[error("{0}")]
    PermissionDenied(String),
    /// No valid token.
    #[error("{0}")]
    Unauthenticated(String),
    /// A value outside the range the server can serve (for example an expired resume point).
    #[error("{0}")]
    OutOfRange(String),
    /// The server cannot serve now (database down, pool exhausted); retry later.
    #[error("{0}")]
    Unavailable(String),
    /// A database error, classified when converted.
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),
    /// A bug or an unexpected state; logged, answered with a generic message.
    #[error("internal error: {0}")]
    Internal(String),
}

fn describe(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// An INVALID_ARGUMENT error for one field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldViolation {
            field: field.into(),
            description: description.into(),
        }])
    }

    /// A NOT_FOUND error for the named object.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound(what.into())
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for Error {
    fn from(e: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        Self::Unavailable(format!("database unavailable: {e}"))
    }
}

impl From<diesel::ConnectionError> for Error {
    fn from(e: diesel::ConnectionError) -> Self {
        Self::Unavailable(format!("database unavailable: {e}"))
    }
}

/// How a database error is answered.
fn database_status(e: &diesel::result::Error) -> Status {
    use diesel::result::Error as D;
    match e {
        D::NotFound => Status::not_found("not found"),
        D::DatabaseError(kind, info) => {
            let constraint = info.constraint_name().unwrap_or("");
            match kind {
                DatabaseErrorKind::UniqueViolation => {
                    Status::already_exists(format!("already exists ({constraint})"))
                }
                DatabaseErrorKind::ForeignKeyViolation => Status::failed_precondition(format!(
                    "a referenced object does not exist or is still referenced ({constraint})"
                )),
                DatabaseErrorKind::CheckViolation | DatabaseErrorKind::NotNullViolation => {
                    Status::failed_precondition(format!(
                        "a stored rule was violated ({constraint})"
                    ))
                }
                DatabaseErrorKind::SerializationFailure => {
                    Status::aborted("concurrent change; retry the request")
                }
                DatabaseErrorKind::ClosedConnection => {
                    Status::unavailable("database connection lost; retry the request")
                }
                _ => {
                    let message = info.message();
                    if message.contains("statement timeout") {
                        Status::deadline_exceeded("the database query took too long")
                    } else if message.contains("deadlock detected") {
                        Status::aborted("concurrent change; retry the request")
                    } else if message.contains("terminating connection")
                        || message.contains("connection")
                    {
                        Status::unavailable("database connection lost; retry the request")
                    } else {
                        tracing::error!(error = %message, "unexpected database error");
                        Status::internal("internal error")
                    }
                }
            }
        }
        D::BrokenTransactionManager => {
            Status::unavailable("database connection lost; retry the request")
        }
        other => {
            tracing::error!(error = %other, "unexpected database error");
            Status::internal("internal error")
        }
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidArgument(violations) => {
                let mut details = ErrorDetails::new();
                for v in &violations {
                    details.add_bad_request_violation(v.field.clone(), v.description.clone());
                }
                Status::with_error_details(
                    Code::InvalidArgument,
                    format!("invalid argument: {}", describe(&violations)),
                    details,
                )
            }
            Error::NotFound(what) => Status::not_found(format!("{what} not found")),
            Error::FailedPrecondition(m) => Status::failed_precondition(m),
            Error::Aborted(m) => Status::aborted(m),
            Error::AlreadyExists(m) => Status::already_exists(m),
            Error::PermissionDenied(m) => Status::permission_denied(m),
            Error::Unauthenticated(m) => Status::unauthenticated(m),
            Error::OutOfRange(m) => Status::out_of_range(m),
            Error::Unavailable(m) => Status::unavailable(m),
            Error::Database(e) => database_status(&e),
            Error::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                Status::internal("internal error")
            }
        }
    }
}
