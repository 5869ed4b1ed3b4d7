// `ClientInfoError`: one error class for every failed call, carrying the status code, the
// server's message, and the details a program acts on (google.rpc ErrorInfo, BadRequest,
// PreconditionFailure, RetryInfo), and every reason the server documents, as a type.
//
// A leaf: imports only the generated google.rpc messages.

import { Code, ConnectError } from "@connectrpc/connect";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  PreconditionFailureSchema,
  RetryInfoSchema,
} from "./gen/google/rpc/error_details_pb.js";

/**
 * Every `google.rpc.ErrorInfo.reason` the server sends, as listed in its README ("Every
 * reason"). Branch on the reason, never on the message.
 */
export const KNOWN_REASONS = [
  "INVALID_FIELDS",
  "MALFORMED_MESSAGE",
  "CONTACT_NOT_FOUND",
  "INTERACTION_NOT_FOUND",
  "COMMUNICATION_NOT_FOUND",
  "DOMAIN_NOT_FOUND",
  "USER_NOT_FOUND",
  "NOT_FOUND",
  "CONTACT_ERASED",
  "CONTACT_MERGED",
  "LINK_NOT_FOUND",
  "MERGE_NOT_FOUND",
  "INTERACTION_NOT_ACCEPTED",
  "INTERACTION_CLOSED",
  "INTERACTION_NOT_OFFERED",
  "INTERACTION_OFFERED_TO_OTHER_AGENT",
  "INTERACTION_ID_REUSED",
  "CALLER_NUMBER_HIDDEN",
  "REQUEST_CONTACT_DELETED",
  "REFERENCE_VIOLATED",
  "STORED_RULE_VIOLATED",
  "MERGE_ALREADY_UNDONE",
  "MERGE_ERASED",
  "MERGE_EXPIRED",
  "MERGE_SURVIVOR_GONE",
  "UNMERGE_CONFLICT",
  "MERGE_LIMIT_EXCEEDED",
  "CONTACT_VERSION_MISMATCH",
  "CONCURRENT_CHANGE",
  "IDENTITY_HELD_BY_OTHER_CONTACT",
  "REQUEST_ID_REUSED",
  "ALREADY_EXISTS",
  "PERMISSION_MISSING",
  "CONTACT_NOT_IN_INTERACTION",
  "LINK_INVALID",
  "LINK_EXPIRED",
  "LINK_REVOKED",
  "TOKEN_MISSING",
  "TOKEN_MALFORMED",
  "TOKEN_EXPIRED",
  "TOKEN_INVALID",
  "TOKEN_USER_UNKNOWN",
  "TOKEN_DOMAIN_UNKNOWN",
  "RESUME_POINT_PRUNED",
  "DATABASE_UNAVAILABLE",
  "SHUTTING_DOWN",
  "EVENT_HUB_STOPPED",
  "SLOW_CONSUMER",
  "DEADLINE_EXCEEDED",
  "INTERNAL",
] as const;

/** A reason the server documents. */
export type KnownReason = (typeof KNOWN_REASONS)[number];

/**
 * A reason as received: one of {@link KnownReason}, or (from a newer server) any other string,
 * kept as it came (`string & {}` keeps the editor's completion of the known ones).
 */
export type Reason = KnownReason | (string & {});

/** True when `reason` is one the server documents (this SDK knows). */
export function isKnownReason(reason: string | undefined): reason is KnownReason {
  return reason !== undefined && (KNOWN_REASONS as readonly string[]).includes(reason);
}

/** One invalid field of a request, from the server's `google.rpc.BadRequest`. */
export interface FieldViolation {
  /** The field path, for example `communications[0].phone.number`. */
  readonly field: string;
  /** What is wrong. */
  readonly description: string;
}

/** One failed precondition, from the server's `google.rpc.PreconditionFailure`. */
export interface PreconditionViolation {
  /** What kind of failure (a reason such as `IDENTITY_HELD_BY_OTHER_CONTACT`). */
  readonly type: string;
  /** What it is about, for example `contact/12/phones/34`. */
  readonly subject: string;
  /** For people. */
  readonly description: string;
}

/** `INVALID_ARGUMENT` for `Code.InvalidArgument`: the names gRPC itself uses. */
export function codeName(code: Code): string {
  const name = Code[code] as string | undefined;
  if (name === undefined) return `CODE_${code}`;
  return name === "Canceled" ? "CANCELLED" : name.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

/**
 * A failed call: the gRPC status code, the server's message, and what the server said about it
 * in the error's details. Every method of the SDK rejects with one (never a bare
 * `ConnectError`); `cause` holds the `ConnectError` it came from.
 */
export class ClientInfoError extends Error {
  override readonly name = "ClientInfoError";
  /** The gRPC status code. */
  readonly code: Code;
  /** The server's message, for people (without the code in front). */
  readonly rawMessage: string;
  /**
   * The stable reason from `google.rpc.ErrorInfo` (see {@link KNOWN_REASONS}); undefined when
   * the error carries none (a failed connection, a proxy's error).
   */
  readonly reason: Reason | undefined;
  /** `google.rpc.ErrorInfo.domain`: `client-info` for the server's own errors. */
  readonly domain: string | undefined;
  /** Facts that come with the reason, for example `current_version` or `permission`. */
  readonly metadata: Readonly<Record<string, string>>;
  /** Every invalid field, from `google.rpc.BadRequest` (INVALID_ARGUMENT). */
  readonly violations: readonly FieldViolation[];
  /** Every failed precondition, from `google.rpc.PreconditionFailure`. */
  readonly preconditions: readonly PreconditionViolation[];
  /** How long the server asked to wait before retrying (`google.rpc.RetryInfo`), in ms. */
  readonly retryDelayMs: number | undefined;

  constructor(code: Code, rawMessage: string, details: Partial<ErrorDetails> = {}, cause?: unknown) {
    super(rawMessage ? `${codeName(code).toLowerCase().replace(/_/g, " ")}: ${rawMessage}` : codeName(code), {
      cause,
    });
    this.code = code;
    this.rawMessage = rawMessage;
    this.reason = details.reason;
    this.domain = details.domain;
    this.metadata = details.metadata ?? {};
    this.violations = details.violations ?? [];
    this.preconditions = details.preconditions ?? [];
    this.retryDelayMs = details.retryDelayMs;
  }

  /** The code's name as gRPC writes it: `INVALID_ARGUMENT`, `UNAVAILABLE`, ... */
  get codeName(): string {
    return codeName(this.code);
  }

  /**
   * True when repeating the same request later may succeed: the server or the connection was
   * unavailable, the server asked to retry after a while (RESOURCE_EXHAUSTED with RetryInfo),
   * or a concurrent change won (ABORTED). False for a stale `expected_version` (reason
   * `CONTACT_VERSION_MISMATCH`): reload the contact and decide again.
   */
  get isRetryable(): boolean {
    switch (this.code) {
      case Code.Unavailable:
        return true;
      case Code.ResourceExhausted:
        return this.retryDelayMs !== undefined;
      case Code.Aborted:
        return this.reason !== "CONTACT_VERSION_MISMATCH";
      default:
        return false;
    }
  }

  /**
   * The `ClientInfoError` for anything a call threw: a `ConnectError` with its details decoded,
   * a failed connection as UNAVAILABLE (a browser's `fetch` says only "Failed to fetch"; Node's
   * HTTP/2 resets the streams of a lost connection with CANCEL), the caller's abort as CANCELLED. Never throws, whatever the details hold.
   */
  static from(e: unknown): ClientInfoError {
    if (e instanceof ClientInfoError) return e;
    const err = ConnectError.from(e);
    if (err.code === Code.Unknown && isNetworkFailure(err.cause)) {
      return new ClientInfoError(Code.Unavailable, `connection failed: ${describeCause(err.cause)}`, {}, err);
    }
    // Node's HTTP/2 session resets its streams with CANCEL when the connection is lost (a
    // server killed): a failed connection, not the caller's cancellation.
    if (err.code === Code.Canceled && /^http\/2 stream closed with error code/.test(err.rawMessage)) {
      return new ClientInfoError(Code.Unavailable, `connection failed: ${err.rawMessage}`, {}, err);
    }
    return new ClientInfoError(err.code, err.rawMessage, decodeDetails(err), err);
  }
}

/** What the details of an error say. */
interface ErrorDetails {
  reason: Reason | undefined;
  domain: string | undefined;
  metadata: Record<string, string>;
  violations: FieldViolation[];
  preconditions: PreconditionViolation[];
  retryDelayMs: number | undefined;
}

function decodeDetails(err: ConnectError): Partial<ErrorDetails> {
  const safely = <T>(f: () => T, fallback: T): T => {
    try {
      return f();
    } catch {
      return fallback; // a detail that does not decode is left out, never thrown
    }
  };
  const info = safely(() => err.findDetails(ErrorInfoSchema)[0], undefined);
  const retry = safely(() => err.findDetails(RetryInfoSchema)[0], undefined);
  const delay = retry?.retryDelay;
  return {
    reason: info?.reason || undefined,
    domain: info?.domain || undefined,
    metadata: info ? { ...info.metadata } : {},
    violations: safely(
      () =>
        err
          .findDetails(BadRequestSchema)
          .flatMap((b) => b.fieldViolations.map((v) => ({ field: v.field, description: v.description }))),
      [],
    ),
    preconditions: safely(
      () =>
        err
          .findDetails(PreconditionFailureSchema)
          .flatMap((p) => p.violations.map((v) => ({ type: v.type, subject: v.subject, description: v.description }))),
      [],
    ),
    retryDelayMs: delay ? Number(delay.seconds) * 1000 + Math.floor(delay.nanos / 1e6) : undefined,
  };
}

/** A `fetch` that got no HTTP response at all (refused, reset, DNS, CORS). */
function isNetworkFailure(cause: unknown): boolean {
  return cause instanceof TypeError;
}

function describeCause(cause: unknown): string {
  if (!(cause instanceof Error)) return String(cause);
  const inner = (cause as { cause?: unknown }).cause;
  return inner instanceof Error ? `${cause.message}: ${inner.message}` : cause.message;
}
