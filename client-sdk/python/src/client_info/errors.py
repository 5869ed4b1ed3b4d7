"""`ClientError`: one exception for every failed call, carrying the gRPC code, the server's
message, and the details a program acts on (`google.rpc.ErrorInfo`'s reason and metadata,
`google.rpc.BadRequest`'s field violations, `google.rpc.PreconditionFailure`,
`google.rpc.RetryInfo`'s delay). Mirrors the Rust SDK's `SdkError` (client-sdk/src/error.rs).

A leaf: imports nothing of the package.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import grpc
from google.rpc import error_details_pb2  # type: ignore[import-untyped, unused-ignore]
from grpc_status import rpc_status

#: The `google.rpc.ErrorInfo.domain` of the server's errors.
ERROR_DOMAIN = "client-info"


class Reason(str, enum.Enum):
    """The stable reasons of the server's errors (the README's table "Every reason").

    Branch on these, never on the message. A reason this release does not know yet comes as
    `Reason.UNRECOGNIZED`, its text kept in `ClientError.reason_text`.
    """

    INVALID_FIELDS = "INVALID_FIELDS"
    MALFORMED_MESSAGE = "MALFORMED_MESSAGE"
    CONTACT_NOT_FOUND = "CONTACT_NOT_FOUND"
    INTERACTION_NOT_FOUND = "INTERACTION_NOT_FOUND"
    COMMUNICATION_NOT_FOUND = "COMMUNICATION_NOT_FOUND"
    DOMAIN_NOT_FOUND = "DOMAIN_NOT_FOUND"
    USER_NOT_FOUND = "USER_NOT_FOUND"
    NOT_FOUND = "NOT_FOUND"
    CONTACT_ERASED = "CONTACT_ERASED"
    CONTACT_MERGED = "CONTACT_MERGED"
    LINK_NOT_FOUND = "LINK_NOT_FOUND"
    MERGE_NOT_FOUND = "MERGE_NOT_FOUND"
    INTERACTION_NOT_ACCEPTED = "INTERACTION_NOT_ACCEPTED"
    INTERACTION_CLOSED = "INTERACTION_CLOSED"
    INTERACTION_NOT_OFFERED = "INTERACTION_NOT_OFFERED"
    INTERACTION_OFFERED_TO_OTHER_AGENT = "INTERACTION_OFFERED_TO_OTHER_AGENT"
    INTERACTION_ID_REUSED = "INTERACTION_ID_REUSED"
    CALLER_NUMBER_HIDDEN = "CALLER_NUMBER_HIDDEN"
    REQUEST_CONTACT_DELETED = "REQUEST_CONTACT_DELETED"
    REFERENCE_VIOLATED = "REFERENCE_VIOLATED"
    STORED_RULE_VIOLATED = "STORED_RULE_VIOLATED"
    MERGE_ALREADY_UNDONE = "MERGE_ALREADY_UNDONE"
    MERGE_ERASED = "MERGE_ERASED"
    MERGE_EXPIRED = "MERGE_EXPIRED"
    MERGE_SURVIVOR_GONE = "MERGE_SURVIVOR_GONE"
    UNMERGE_CONFLICT = "UNMERGE_CONFLICT"
    MERGE_LIMIT_EXCEEDED = "MERGE_LIMIT_EXCEEDED"
    CONTACT_VERSION_MISMATCH = "CONTACT_VERSION_MISMATCH"
    CONCURRENT_CHANGE = "CONCURRENT_CHANGE"
    IDENTITY_HELD_BY_OTHER_CONTACT = "IDENTITY_HELD_BY_OTHER_CONTACT"
    REQUEST_ID_REUSED = "REQUEST_ID_REUSED"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    PERMISSION_MISSING = "PERMISSION_MISSING"
    CONTACT_NOT_IN_INTERACTION = "CONTACT_NOT_IN_INTERACTION"
    LINK_INVALID = "LINK_INVALID"
    LINK_EXPIRED = "LINK_EXPIRED"
    LINK_REVOKED = "LINK_REVOKED"
    TOKEN_MISSING = "TOKEN_MISSING"
    TOKEN_MALFORMED = "TOKEN_MALFORMED"
    TOKEN_EXPIRED = "TOKEN_EXPIRED"
    TOKEN_INVALID = "TOKEN_INVALID"
    TOKEN_USER_UNKNOWN = "TOKEN_USER_UNKNOWN"
    TOKEN_DOMAIN_UNKNOWN = "TOKEN_DOMAIN_UNKNOWN"
    RESUME_POINT_PRUNED = "RESUME_POINT_PRUNED"
    DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"
    SHUTTING_DOWN = "SHUTTING_DOWN"
    EVENT_HUB_STOPPED = "EVENT_HUB_STOPPED"
    SLOW_CONSUMER = "SLOW_CONSUMER"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    INTERNAL = "INTERNAL"
    #: The server sent a reason this release does not know (see `ClientError.reason_text`).
    UNRECOGNIZED = "UNRECOGNIZED"

    @classmethod
    def parse(cls, text: str) -> Reason:
        """The member named `text`, or `UNRECOGNIZED` (never raises)."""
        try:
            return cls(text)
        except ValueError:
            return cls.UNRECOGNIZED


@dataclass(frozen=True)
class FieldViolation:
    """One invalid field of a request, from `google.rpc.BadRequest`."""

    #: The field path, for example `communications[0].phone.number`.
    field: str
    #: What is wrong.
    description: str


@dataclass(frozen=True)
class PreconditionViolation:
    """One failed precondition, from `google.rpc.PreconditionFailure`."""

    #: What kind of failure (a reason such as `IDENTITY_HELD_BY_OTHER_CONTACT`).
    kind: str
    #: What it is about, for example `contact/12/phones/34`.
    subject: str
    #: For people.
    description: str


@dataclass(frozen=True)
class _Details:
    reason_text: Optional[str] = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    violations: Sequence[FieldViolation] = ()
    preconditions: Sequence[PreconditionViolation] = ()
    retry_after: Optional[float] = None


class ClientError(Exception):
    """A call failed: the gRPC `code`, the server's `message`, and what its details say."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason_text: Optional[str] = None,
        metadata: Optional[Mapping[str, str]] = None,
        violations: Sequence[FieldViolation] = (),
        preconditions: Sequence[PreconditionViolation] = (),
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(f"{code.name}: {message}")
        #: The gRPC status code.
        self.code: grpc.StatusCode = code
        #: The server's message, for people (never branch on it).
        self.message: str = message
        #: `google.rpc.ErrorInfo.reason` as sent, `None` when the server sent no ErrorInfo
        #: (a connection failure, a proxy).
        self.reason_text: Optional[str] = reason_text
        #: The reason as a `Reason` (`Reason.UNRECOGNIZED` for one this release does not know),
        #: `None` without ErrorInfo.
        self.reason: Optional[Reason] = None if reason_text is None else Reason.parse(reason_text)
        #: `google.rpc.ErrorInfo.metadata`: facts that come with the reason (`current_version`,
        #: `merged_into`, `permission`, ...).
        self.metadata: Mapping[str, str] = dict(metadata or {})
        #: Every invalid field (`google.rpc.BadRequest`), on INVALID_ARGUMENT.
        self.violations: Sequence[FieldViolation] = tuple(violations)
        #: Every failed precondition (`google.rpc.PreconditionFailure`).
        self.preconditions: Sequence[PreconditionViolation] = tuple(preconditions)
        #: Seconds to wait before retrying, when the server says (`google.rpc.RetryInfo`).
        self.retry_after: Optional[float] = retry_after

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> ClientError:
        """The error a failed call raised, with its details decoded."""
        code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
        message = (error.details() if isinstance(error, grpc.Call) else None) or ""
        details = _details(error) if isinstance(error, grpc.Call) else _Details()
        return cls(
            code,
            message,
            reason_text=details.reason_text,
            metadata=details.metadata,
            violations=details.violations,
            preconditions=details.preconditions,
            retry_after=details.retry_after,
        )

    @property
    def is_retryable(self) -> bool:
        """True when repeating the same request later may succeed: UNAVAILABLE (the server, the
        database or the connection), RESOURCE_EXHAUSTED with a retry delay, ABORTED from a
        concurrent change. False for a stale `expected_version` (`CONTACT_VERSION_MISMATCH`):
        reload the contact, then retry with its current version."""
        if self.code == grpc.StatusCode.UNAVAILABLE:
            return True
        if self.code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            return self.retry_after is not None
        if self.code == grpc.StatusCode.ABORTED:
            return self.reason_text != Reason.CONTACT_VERSION_MISMATCH.value
        return False

    def __repr__(self) -> str:
        return (
            f"ClientError(code={self.code.name}, reason={self.reason_text!r}, "
            f"message={self.message!r})"
        )


def _details(call: grpc.Call) -> _Details:
    """Decodes the `grpc-status-details-bin` trailer; empty when there is none or it is not
    readable (an error's details never make the error itself fail)."""
    try:
        status = rpc_status.from_call(call)
    except ValueError:
        return _Details()
    if status is None:
        return _Details()
    reason_text: Optional[str] = None
    metadata: dict[str, str] = {}
    violations: list[FieldViolation] = []
    preconditions: list[PreconditionViolation] = []
    retry_after: Optional[float] = None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason_text = info.reason
            metadata = dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations += [FieldViolation(v.field, v.description) for v in bad.field_violations]
        elif detail.Is(error_details_pb2.PreconditionFailure.DESCRIPTOR):
            failure = error_details_pb2.PreconditionFailure()
            detail.Unpack(failure)
            preconditions += [
                PreconditionViolation(v.type, v.subject, v.description) for v in failure.violations
            ]
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info_retry = error_details_pb2.RetryInfo()
            detail.Unpack(info_retry)
            delay = info_retry.retry_delay
            retry_after = delay.seconds + delay.nanos / 1e9
    return _Details(reason_text, metadata, violations, preconditions, retry_after)
