//! The server's one error type and its single conversion to `tonic::Status`.
//!
//! Every handler returns `Result<_, Error>`; the mapping to gRPC codes lives only here, as an
//! exhaustive `match`. Database errors are classified by kind (unique violation, foreign key,
//! lost connection, ...) so that no expected failure surfaces as INTERNAL.
//!
//! A leaf: it imports nothing of the server, and every module may use it.

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

    /// One violation.
    pub fn one(field: impl Into<String>, description: impl Into<String>) -> Self {
        let mut v = Self::new();
        v.add(field, description);
        v
    }

    /// Adds every violation of `other`.
    pub fn absorb(&mut self, other: Violations) {
        self.0.extend(other.0);
    }

    /// Records the violations of a checked part and gives its value, for code that reads a
    /// request with one collector.
    pub fn keep<T>(&mut self, checked: Checked<T>) -> Option<T> {
        match checked {
            Ok(v) => Some(v),
            Err(e) => {
                self.absorb(e);
                None
            }
        }
    }

    /// `Ok(value)` when nothing was recorded, else every violation recorded.
    pub fn or<T>(self, value: T) -> Checked<T> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
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

impl IntoIterator for Violations {
    type Item = FieldViolation;
    type IntoIter = std::vec::IntoIter<FieldViolation>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// A part of a request read into its type, or every violation found in it. The `Err` side
/// is never empty: violations come from [`Violations::one`], [`Violations::or`] and
/// [`AllValid::all_valid`], which make one only when something was recorded.
pub type Checked<T> = Result<T, Violations>;

impl From<Violations> for Error {
    fn from(v: Violations) -> Self {
        Error::InvalidArgument(v.0)
    }
}

impl From<Violations> for Status {
    fn from(v: Violations) -> Self {
        Error::from(v).into()
    }
}

/// Parts of a request checked independently: all their values, or every violation of every
/// part (so a client learns all that is wrong at once). Implemented for tuples of
/// [`Checked`] values.
pub trait AllValid {
    /// The parts' values.
    type Values;
    /// All the values, or all the violations.
    fn all_valid(self) -> Checked<Self::Values>;
}

macro_rules! all_valid_tuples {
    ($(($($t:ident $v:ident),+))+) => {$(
        impl<$($t),+> AllValid for ($(Checked<$t>,)+) {
            type Values = ($($t,)+);
            fn all_valid(self) -> Checked<Self::Values> {
                let ($($v,)+) = self;
                match ($($v,)+) {
                    ($(Ok($v),)+) => Ok(($($v,)+)),
                    ($($v,)+) => {
                        let mut all = Violations::new();
                        $(if let Err(e) = $v { all.absorb(e); })+
                        Err(all)
                    }
                }
            }
        }
    )+};
}

all_valid_tuples! {
    (A a)
    (A a, B b)
    (A a, B b, C c)
    (A a, B b, C c, D d)
    (A a, B b, C c, D d, E e)
    (A a, B b, C c, D d, E e, F f)
    (A a, B b, C c, D d, E e, F f, G g)
    (A a, B b, C c, D d, E e, F f, G g, H h)
    (A a, B b, C c, D d, E e, F f, G g, H h, I i)
    (A a, B b, C c, D d, E e, F f, G g, H h, I i, J j)
}

/// The `domain` of every `google.rpc.ErrorInfo` this server sends.
pub const ERROR_DOMAIN: &str = client_info_proto::codec::ERROR_DOMAIN;

/// How long a client should wait before retrying an UNAVAILABLE or RESOURCE_EXHAUSTED answer
/// (`google.rpc.RetryInfo`).
pub const RETRY_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

macro_rules! reasons {
    ($($(#[$doc:meta])* $name:ident = $text:literal,)*) => {
        /// The machine-readable reason of an error (`google.rpc.ErrorInfo.reason`): stable
        /// across releases, UPPER_SNAKE, listed in the README. A program branches on it, never
        /// on the message.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Reason {
            $($(#[$doc])* $name,)*
        }

        impl Reason {
            /// Every reason.
            pub const ALL: &[Reason] = &[$(Reason::$name,)*];

            /// The reason as sent.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$name => $text,)*
                }
            }
        }
    };
}

reasons! {
    /// INVALID_ARGUMENT: fields are named in `google.rpc.BadRequest`.
    InvalidFields = "INVALID_FIELDS",
    /// INVALID_ARGUMENT: the request's bytes are not its protobuf message; the field prost was
    /// reading is named in `google.rpc.BadRequest` (`(message)` when it cannot tell), metadata
    /// `message_type`. Sent by the codec (`client_info_proto::codec`), before any handler.
    MalformedMessage = "MALFORMED_MESSAGE",
    /// NOT_FOUND: no such contact in the caller's domain.
    ContactNotFound = "CONTACT_NOT_FOUND",
    /// NOT_FOUND: no such interaction (or not the caller's).
    InteractionNotFound = "INTERACTION_NOT_FOUND",
    /// NOT_FOUND: no such communication link on the contact.
    CommunicationNotFound = "COMMUNICATION_NOT_FOUND",
    /// NOT_FOUND: no such domain.
    DomainNotFound = "DOMAIN_NOT_FOUND",
    /// NOT_FOUND: no such user in the domain.
    UserNotFound = "USER_NOT_FOUND",
    /// NOT_FOUND: a referenced object does not exist.
    NotFound = "NOT_FOUND",
    /// NOT_FOUND: the contact was merged into another; metadata `merged_into` (the contact
    /// that holds it now) and `merge_id`.
    ContactMerged = "CONTACT_MERGED",
    /// NOT_FOUND: no such merge in the caller's domain.
    MergeNotFound = "MERGE_NOT_FOUND",
    /// NOT_FOUND: no such recorded read-only link of the contact in the caller's domain.
    LinkNotFound = "LINK_NOT_FOUND",
    /// NOT_FOUND: the contact was erased (EraseContact); metadata `erased_at`.
    ContactErased = "CONTACT_ERASED",
    /// FAILED_PRECONDITION: the interaction is offered, not accepted yet.
    InteractionNotAccepted = "INTERACTION_NOT_ACCEPTED",
    /// FAILED_PRECONDITION: the interaction is closed.
    InteractionClosed = "INTERACTION_CLOSED",
    /// FAILED_PRECONDITION: only an offered interaction can be accepted.
    InteractionNotOffered = "INTERACTION_NOT_OFFERED",
    /// FAILED_PRECONDITION: the interaction is offered to another agent.
    InteractionOfferedToOtherAgent = "INTERACTION_OFFERED_TO_OTHER_AGENT",
    /// FAILED_PRECONDITION: the interaction id was offered with another client, kind or
    /// direction.
    InteractionIdReused = "INTERACTION_ID_REUSED",
    /// FAILED_PRECONDITION: the caller's number is hidden, there is nothing to link.
    CallerNumberHidden = "CALLER_NUMBER_HIDDEN",
    /// FAILED_PRECONDITION: the contact a request id created was deleted since.
    RequestContactDeleted = "REQUEST_CONTACT_DELETED",
    /// FAILED_PRECONDITION: a referenced object is missing or still referenced.
    ReferenceViolated = "REFERENCE_VIOLATED",
    /// FAILED_PRECONDITION: a stored rule was violated.
    StoredRuleViolated = "STORED_RULE_VIOLATED",
    /// FAILED_PRECONDITION: the merge was undone already; metadata `undone_at`.
    MergeAlreadyUndone = "MERGE_ALREADY_UNDONE",
    /// FAILED_PRECONDITION: the merge is older than the undo window; metadata `expired_at`.
    MergeExpired = "MERGE_EXPIRED",
    /// FAILED_PRECONDITION: the merge's archive held a contact that was erased since; metadata
    /// `erased_at`.
    MergeErased = "MERGE_ERASED",
    /// FAILED_PRECONDITION: the merge's survivor was deleted, or merged into another contact
    /// (metadata `merged_into`: undo that merge first).
    MergeSurvivorGone = "MERGE_SURVIVOR_GONE",
    /// FAILED_PRECONDITION: restored communications now belong elsewhere or were removed, one
    /// `PreconditionFailure` violation each; set `force` to restore without them.
    UnmergeConflict = "UNMERGE_CONFLICT",
    /// FAILED_PRECONDITION: the merged contact would have more labels or attributes than a
    /// contact may.
    MergeLimitExceeded = "MERGE_LIMIT_EXCEEDED",
    /// ABORTED: `expected_version` is stale; metadata `current_version`. Reload, then retry.
    ContactVersionMismatch = "CONTACT_VERSION_MISMATCH",
    /// ABORTED: a concurrent change won; the same request may succeed when retried.
    ConcurrentChange = "CONCURRENT_CHANGE",
    /// ALREADY_EXISTS: the messaging identity belongs to another contact; metadata
    /// `holder_contact_id`. Set `relink` to move it.
    IdentityHeldByOtherContact = "IDENTITY_HELD_BY_OTHER_CONTACT",
    /// ALREADY_EXISTS: the request id was used with another request body.
    RequestIdReused = "REQUEST_ID_REUSED",
    /// ALREADY_EXISTS: the object exists.
    AlreadyExists = "ALREADY_EXISTS",
    /// PERMISSION_DENIED: the token lacks a permission; metadata `permission`.
    PermissionMissing = "PERMISSION_MISSING",
    /// PERMISSION_DENIED: the contact is not related to the caller's interaction.
    ContactNotInInteraction = "CONTACT_NOT_IN_INTERACTION",
    /// PERMISSION_DENIED: the read-only link is not valid.
    LinkInvalid = "LINK_INVALID",
    /// PERMISSION_DENIED: the read-only link has expired.
    LinkExpired = "LINK_EXPIRED",
    /// PERMISSION_DENIED: the read-only link was revoked (RevokeReadOnlyLinks).
    LinkRevoked = "LINK_REVOKED",
    /// UNAUTHENTICATED: no bearer token.
    TokenMissing = "TOKEN_MISSING",
    /// UNAUTHENTICATED: the authorization header is not `Bearer <token>`.
    TokenMalformed = "TOKEN_MALFORMED",
    /// UNAUTHENTICATED: the token has expired.
    TokenExpired = "TOKEN_EXPIRED",
    /// UNAUTHENTICATED: the token's signature or claims are not valid.
    TokenInvalid = "TOKEN_INVALID",
    /// UNAUTHENTICATED: the token names a user that does not exist in its domain.
    TokenUserUnknown = "TOKEN_USER_UNKNOWN",
    /// UNAUTHENTICATED: an identity provider's token names a domain this server does not have.
    TokenDomainUnknown = "TOKEN_DOMAIN_UNKNOWN",
    /// OUT_OF_RANGE: the resume point is older than the events kept; start with a snapshot.
    ResumePointPruned = "RESUME_POINT_PRUNED",
    /// UNAVAILABLE: the database cannot be reached now (retry with backoff).
    DatabaseUnavailable = "DATABASE_UNAVAILABLE",
    /// UNAVAILABLE: the server is shutting down (resume on another replica).
    ShuttingDown = "SHUTTING_DOWN",
    /// UNAVAILABLE: the server's event hub stopped.
    EventHubStopped = "EVENT_HUB_STOPPED",
    /// RESOURCE_EXHAUSTED: the stream's client read too slowly; resume after the last sequence.
    SlowConsumer = "SLOW_CONSUMER",
    /// DEADLINE_EXCEEDED: the client's deadline, or the statement timeout, passed.
    DeadlineExceeded = "DEADLINE_EXCEEDED",
    /// INTERNAL: a bug; the details are in the server's log.
    Internal = "INTERNAL",
}

/// An error other than bad fields: its reason, its message, the object it is about (the
/// `subject` of a `google.rpc.PreconditionFailure`), and `ErrorInfo` metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// Why.
    pub reason: Reason,
    /// For people.
    pub message: String,
    /// What it is about, for example `interaction/call-1` or `contact/42`.
    pub subject: Option<String>,
    /// Machine-readable facts, for example `current_version`.
    pub metadata: Vec<(&'static str, String)>,
    /// More than one precondition that failed, each with its type, subject and description
    /// (sent as `google.rpc.PreconditionFailure` violations instead of the one `subject`).
    pub violations: Vec<PreconditionViolation>,
}

/// One failed precondition among several (see [`Fault::violations`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreconditionViolation {
    /// What kind of failure, UPPER_SNAKE.
    pub kind: String,
    /// What it is about, for example `contact/12/phones/34`.
    pub subject: String,
    /// For people.
    pub description: String,
}

impl Fault {
    /// A fault with a reason and a message.
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            subject: None,
            metadata: Vec::new(),
            violations: Vec::new(),
        }
    }

    /// The same, about `subject`.
    pub fn about(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// The same, with a metadata entry.
    pub fn with(mut self, key: &'static str, value: impl ToString) -> Self {
        self.metadata.push((key, value.to_string()));
        self
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Everything that can go wrong while serving a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed; the violations name the fields.
    #[error("invalid argument: {}", describe(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// The object does not exist in the caller's domain.
    #[error("{0}")]
    NotFound(Fault),
    /// The object exists but is not in a state that allows the operation.
    #[error("{0}")]
    FailedPrecondition(Fault),
    /// The caller's version is stale (optimistic concurrency), or a conflict to retry.
    #[error("{0}")]
    Aborted(Fault),
    /// The object already exists.
    #[error("{0}")]
    AlreadyExists(Fault),
    /// The token lacks a permission.
    #[error("{0}")]
    PermissionDenied(Fault),
    /// No valid token.
    #[error("{0}")]
    Unauthenticated(Fault),
    /// A value outside the range the server can serve (for example an expired resume point).
    #[error("{0}")]
    OutOfRange(Fault),
    /// The server cannot serve now (database down, pool exhausted); retry later.
    #[error("{0}")]
    Unavailable(Fault),
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

    /// NOT_FOUND: no contact `id` in the caller's domain.
    pub fn contact_not_found(id: impl std::fmt::Display) -> Self {
        Self::NotFound(
            Fault::new(Reason::ContactNotFound, format!("contact {id} not found"))
                .about(format!("contact/{id}")),
        )
    }

    /// NOT_FOUND: contact `id` was merged into `survivor` (the contact that holds it now) by
    /// merge `merge`.
    pub fn contact_merged(id: impl std::fmt::Display, survivor: i64, merge: i64) -> Self {
        Self::NotFound(
            Fault::new(
                Reason::ContactMerged,
                format!("contact {id} was merged into contact {survivor}"),
            )
            .about(format!("contact/{id}"))
            .with("merged_into", survivor)
            .with("merge_id", merge),
        )
    }

    /// The contact a CONTACT_NOT_FOUND error is about, if it is one (so that the caller can
    /// tell whether the contact was merged).
    pub fn missing_contact(&self) -> Option<i64> {
        match self {
            Error::NotFound(f) if f.reason == Reason::ContactNotFound => f
                .subject
                .as_deref()
                .and_then(|s| s.strip_prefix("contact/"))
                .and_then(|id| id.parse().ok()),
            _ => None,
        }
    }

    /// NOT_FOUND: no interaction `id` (routing's id) visible to the caller.
    pub fn interaction_not_found(id: &str) -> Self {
        Self::NotFound(
            Fault::new(
                Reason::InteractionNotFound,
                format!("interaction {id:?} not found"),
            )
            .about(format!("interaction/{id}")),
        )
    }

    /// NOT_FOUND: no domain `id`.
    pub fn domain_not_found(id: impl std::fmt::Display) -> Self {
        Self::NotFound(
            Fault::new(Reason::DomainNotFound, format!("domain {id} not found"))
                .about(format!("domain/{id}")),
        )
    }

    /// A FAILED_PRECONDITION about `subject`.
    pub fn precondition(
        reason: Reason,
        subject: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::FailedPrecondition(Fault::new(reason, message).about(subject))
    }

    /// ABORTED: a concurrent change won; retrying the same request may succeed.
    pub fn concurrent(message: impl Into<String>) -> Self {
        Self::Aborted(Fault::new(Reason::ConcurrentChange, message))
    }

    /// UNAVAILABLE: the database cannot be reached.
    pub fn database_unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable(Fault::new(Reason::DatabaseUnavailable, message))
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for Error {
    fn from(e: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        Self::database_unavailable(format!("database unavailable: {e}"))
    }
}

impl From<diesel::ConnectionError> for Error {
    fn from(e: diesel::ConnectionError) -> Self {
        Self::database_unavailable(format!("database unavailable: {e}"))
    }
}

/// A status with `ErrorInfo` (reason, domain, metadata) and, where they apply,
/// `PreconditionFailure` (FAILED_PRECONDITION, ABORTED with a subject) and `RetryInfo`
/// (UNAVAILABLE, RESOURCE_EXHAUSTED). Every error the server answers goes through here.
pub fn status(code: Code, fault: &Fault) -> Status {
    let mut details = ErrorDetails::new();
    let metadata: std::collections::HashMap<String, String> = fault
        .metadata
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    details.set_error_info(fault.reason.as_str(), ERROR_DOMAIN, metadata);
    if matches!(code, Code::FailedPrecondition | Code::Aborted) && !fault.violations.is_empty() {
        for v in &fault.violations {
            details.add_precondition_failure_violation(
                v.kind.clone(),
                v.subject.clone(),
                v.description.clone(),
            );
        }
    } else if matches!(code, Code::FailedPrecondition | Code::Aborted)
        && let Some(subject) = &fault.subject
    {
        details.add_precondition_failure_violation(
            fault.reason.as_str(),
            subject.clone(),
            fault.message.clone(),
        );
    }
    if matches!(code, Code::Unavailable | Code::ResourceExhausted) {
        details.set_retry_info(Some(RETRY_DELAY));
    }
    Status::with_error_details(code, fault.message.clone(), details)
}

/// How a database error is answered. diesel-async gives the SQLSTATE classes it knows as kinds
/// (unique, foreign key, check, not null, restrict, exclusion, serialization failure, read-only
/// transaction) and reports connection failures as `UnableToSendCommand`; for the codes it
/// folds into `Unknown` (57014 query_canceled, 40P01 deadlock_detected, 57P01 admin_shutdown,
/// 57P02/57P03, 53300 too_many_connections) it keeps only PostgreSQL's message, which starts
/// the same way in every release: those are matched by their exact opening words.
fn database_status(e: &diesel::result::Error) -> Status {
    use diesel::result::Error as D;
    let fault =
        |code: Code, reason: Reason, message: String| status(code, &Fault::new(reason, message));
    let lost = || {
        fault(
            Code::Unavailable,
            Reason::DatabaseUnavailable,
            "database connection lost; retry the request".into(),
        )
    };
    match e {
        D::NotFound => fault(Code::NotFound, Reason::NotFound, "not found".into()),
        D::DatabaseError(kind, info) => {
            let constraint = info.constraint_name().unwrap_or("");
            match kind {
                DatabaseErrorKind::UniqueViolation => fault(
                    Code::AlreadyExists,
                    Reason::AlreadyExists,
                    format!("already exists ({constraint})"),
                ),
                DatabaseErrorKind::ForeignKeyViolation | DatabaseErrorKind::RestrictViolation => {
                    fault(
                        Code::FailedPrecondition,
                        Reason::ReferenceViolated,
                        format!(
                            "a referenced object does not exist or is still referenced ({constraint})"
                        ),
                    )
                }
                DatabaseErrorKind::CheckViolation
                | DatabaseErrorKind::NotNullViolation
                | DatabaseErrorKind::ExclusionViolation => fault(
                    Code::FailedPrecondition,
                    Reason::StoredRuleViolated,
                    format!("a stored rule was violated ({constraint})"),
                ),
                DatabaseErrorKind::SerializationFailure => fault(
                    Code::Aborted,
                    Reason::ConcurrentChange,
                    "concurrent change; retry the request".into(),
                ),
                DatabaseErrorKind::ClosedConnection
                | DatabaseErrorKind::UnableToSendCommand
                | DatabaseErrorKind::ReadOnlyTransaction => lost(),
                _ => {
                    let message = info.message();
                    let starts = |p: &str| message.starts_with(p);
                    if starts("canceling statement due to statement timeout")
                        || starts("canceling statement due to user request")
                    {
                        fault(
                            Code::DeadlineExceeded,
                            Reason::DeadlineExceeded,
                            "the database query took too long".into(),
                        )
                    } else if starts("deadlock detected") {
                        fault(
                            Code::Aborted,
                            Reason::ConcurrentChange,
                            "concurrent change; retry the request".into(),
                        )
                    } else if starts("terminating connection due to")
                        || starts("the database system is")
                        || starts("sorry, too many clients")
                        || starts("remaining connection slots are reserved")
                    {
                        lost()
                    } else {
                        tracing::error!(error = %message, "unexpected database error");
                        fault(Code::Internal, Reason::Internal, "internal error".into())
                    }
                }
            }
        }
        D::BrokenTransactionManager => lost(),
        other => {
            tracing::error!(error = %other, "unexpected database error");
            fault(Code::Internal, Reason::Internal, "internal error".into())
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
                details.set_error_info(
                    Reason::InvalidFields.as_str(),
                    ERROR_DOMAIN,
                    std::collections::HashMap::new(),
                );
                Status::with_error_details(Code::InvalidArgument, describe(&violations), details)
            }
            Error::NotFound(f) => status(Code::NotFound, &f),
            Error::FailedPrecondition(f) => status(Code::FailedPrecondition, &f),
            Error::Aborted(f) => status(Code::Aborted, &f),
            Error::AlreadyExists(f) => status(Code::AlreadyExists, &f),
            Error::PermissionDenied(f) => status(Code::PermissionDenied, &f),
            Error::Unauthenticated(f) => status(Code::Unauthenticated, &f),
            Error::OutOfRange(f) => status(Code::OutOfRange, &f),
            Error::Unavailable(f) => status(Code::Unavailable, &f),
            Error::Database(e) => database_status(&e),
            Error::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                status(
                    Code::Internal,
                    &Fault::new(Reason::Internal, "internal error"),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(kind: DatabaseErrorKind, message: &str) -> Status {
        database_status(&diesel::result::Error::DatabaseError(
            kind,
            Box::new(message.to_owned()),
        ))
    }

    fn reason(s: &Status) -> String {
        s.get_details_error_info()
            .map(|i| i.reason)
            .unwrap_or_default()
    }

    #[test]
    fn database_errors_are_classified_by_kind_and_known_codes() {
        use DatabaseErrorKind as K;
        for (kind, message, code, why) in [
            (
                K::UniqueViolation,
                "duplicate key",
                Code::AlreadyExists,
                "ALREADY_EXISTS",
            ),
            (
                K::ForeignKeyViolation,
                "fk",
                Code::FailedPrecondition,
                "REFERENCE_VIOLATED",
            ),
            (
                K::CheckViolation,
                "check",
                Code::FailedPrecondition,
                "STORED_RULE_VIOLATED",
            ),
            (
                K::SerializationFailure,
                "could not serialize",
                Code::Aborted,
                "CONCURRENT_CHANGE",
            ),
            (
                K::UnableToSendCommand,
                "broken pipe",
                Code::Unavailable,
                "DATABASE_UNAVAILABLE",
            ),
            (
                K::ClosedConnection,
                "closed",
                Code::Unavailable,
                "DATABASE_UNAVAILABLE",
            ),
            (
                K::Unknown,
                "canceling statement due to statement timeout",
                Code::DeadlineExceeded,
                "DEADLINE_EXCEEDED",
            ),
            (
                K::Unknown,
                "deadlock detected",
                Code::Aborted,
                "CONCURRENT_CHANGE",
            ),
            (
                K::Unknown,
                "terminating connection due to administrator command",
                Code::Unavailable,
                "DATABASE_UNAVAILABLE",
            ),
            // A word in a message is not a class: this is a bug, not an outage.
            (
                K::Unknown,
                "column \"connection\" does not exist",
                Code::Internal,
                "INTERNAL",
            ),
        ] {
            let s = db(kind, message);
            assert_eq!((s.code(), reason(&s).as_str()), (code, why), "{message}");
        }
        let s = db(K::UnableToSendCommand, "x");
        assert!(
            s.get_details_retry_info().is_some(),
            "RetryInfo on UNAVAILABLE"
        );
    }

    #[test]
    fn the_codec_refuses_malformed_requests_with_a_listed_reason() {
        assert_eq!(
            Reason::MalformedMessage.as_str(),
            client_info_proto::codec::MALFORMED_MESSAGE
        );
    }

    #[test]
    fn reasons_are_upper_snake_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for r in Reason::ALL {
            let s = r.as_str();
            assert!(s.chars().all(|c| c.is_ascii_uppercase() || c == '_'), "{s}");
            assert!(seen.insert(s), "{s} twice");
        }
    }
}
