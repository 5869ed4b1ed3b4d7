// Retries of idempotent calls, as the Rust SDK does them (client-sdk/src/retry.rs): jittered
// exponential backoff, a bounded number of attempts, and a retry budget per client (gRPC's
// retry throttling, proposal A6: each retryable failure spends a token, each success earns a
// tenth of one, and retries stop while fewer than half the tokens are left), so an outage
// does not multiply the load.
//
// Idempotent here means repeating the call cannot do twice what it does once: reads, an offer
// (its interaction id is the key), a create with a `requestId`, a select or an unbind. Accept,
// close, update, delete, link and unlink, and a create without a request id, are never retried.
//
// Imports only `errors`.

import { Code } from "@connectrpc/connect";
import { ClientInfoError } from "./errors.js";

/** How idempotent calls are retried. */
export interface RetryPolicy {
  /** Attempts in all, the first included (1: no retries). Default 3. */
  readonly maxAttempts: number;
  /**
   * The first wait's ceiling, in ms; each wait is drawn between zero and the ceiling ("full
   * jitter"), which doubles after each attempt. Default 100.
   */
  readonly initialBackoffMs: number;
  /** The largest ceiling, in ms (also caps a delay the server asks for). Default 2,000. */
  readonly maxBackoffMs: number;
}

/** 3 attempts, backoff from 100 ms up to 2 s. */
export const DEFAULT_RETRY_POLICY: RetryPolicy = Object.freeze({
  maxAttempts: 3,
  initialBackoffMs: 100,
  maxBackoffMs: 2000,
});

/** No retries. */
export const NO_RETRIES: RetryPolicy = Object.freeze({ ...DEFAULT_RETRY_POLICY, maxAttempts: 1 });

const MAX_TOKENS = 10;
const TOKEN_RATIO = 0.1;

/** The retry budget of a client. */
export class RetryThrottle {
  private tokens = MAX_TOKENS;

  /** A call succeeded: earn a tenth of a token. */
  success(): void {
    this.tokens = Math.min(this.tokens + TOKEN_RATIO, MAX_TOKENS);
  }

  /** A retryable failure: spend a token; true when a retry is still allowed. */
  failure(): boolean {
    this.tokens = Math.max(this.tokens - 1, 0);
    return this.tokens > MAX_TOKENS / 2;
  }
}

/** Whether a call may be repeated. */
export type Idempotency = "idempotent" | "not-idempotent";

/** A random wait between zero and `ceilingMs` (full jitter). */
export function jittered(ceilingMs: number): number {
  return Math.floor(Math.random() * (ceilingMs + 1));
}

/** Resolves after `ms`, or rejects at once when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(ClientInfoError.from(signal.reason));
    const onAbort = () => {
      clearTimeout(timer);
      reject(ClientInfoError.from(signal?.reason));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Runs `attempt` once, and again under `policy` while it fails in a way a repetition can fix
 * (unavailable, overloaded with a retry delay, a concurrent change, a deadline), the call is
 * idempotent, and `throttle` still allows a retry. Waits what the server's RetryInfo says when
 * it says (capped at `maxBackoffMs`), else a jittered backoff. Rejects with a
 * {@link ClientInfoError}.
 */
export async function runWithRetry<T>(
  policy: RetryPolicy,
  throttle: RetryThrottle,
  idempotency: Idempotency,
  attempt: () => Promise<T>,
  signal?: AbortSignal,
): Promise<T> {
  let ceiling = policy.initialBackoffMs;
  for (let attempts = 1; ; attempts++) {
    try {
      const value = await attempt();
      throttle.success();
      return value;
    } catch (thrown) {
      const e = ClientInfoError.from(thrown);
      const retryable =
        idempotency === "idempotent" && (e.isRetryable || e.code === Code.DeadlineExceeded) && !signal?.aborted;
      if (!retryable || attempts >= policy.maxAttempts || !throttle.failure()) {
        throw e;
      }
      const wait = e.retryDelayMs !== undefined ? Math.min(e.retryDelayMs, policy.maxBackoffMs) : jittered(ceiling);
      await sleep(wait, signal);
      ceiling = Math.min(ceiling * 2, policy.maxBackoffMs);
    }
  }
}
