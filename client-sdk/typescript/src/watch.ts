// The agent session stream kept open: reconnecting after a dropped connection, a server
// restart, a cut for reading too slowly or a silent connection, and resuming after the last
// event yielded, so every event comes once and in order (as client-sdk/src/watch.rs does).
//
// Imports `errors` and `retry`; the client hands in how to open one stream.

import { Code } from "@connectrpc/connect";
import type { AgentEvent } from "./gen/clientinfo/v1/event_pb.js";
import type { WatchAgentSessionResponse } from "./gen/clientinfo/v1/client_info_service_pb.js";
import { ClientInfoError } from "./errors.js";
import { jittered, sleep } from "./retry.js";

/** How a session watch starts and reconnects. */
export interface WatchOptions {
  /** Resume after this sequence (default 0: start with a snapshot). */
  resumeAfter?: bigint;
  /** Also yield heartbeats (sequence 0). Default false. */
  heartbeats?: boolean;
  /**
   * First reconnect delay in ms (default 100); doubles up to `maxBackoffMs` (default 5,000).
   * Each wait is drawn at random between zero and the current delay, so that desktops cut off
   * together (a server restart) do not all come back at the same instant.
   */
  initialBackoffMs?: number;
  /** Longest reconnect delay in ms (default 5,000). */
  maxBackoffMs?: number;
  /**
   * The heartbeat interval assumed until the server states its own in the
   * `x-heartbeat-interval-ms` response header (which then wins). Default 15,000 ms.
   */
  heartbeatIntervalMs?: number;
  /**
   * The stream is presumed dead when nothing (no event, no heartbeat) arrives for two heartbeat
   * intervals plus this margin (default 5,000 ms): it is dropped and resumed on a new
   * connection, since the old one may be frozen without knowing it (NAT timeout, roaming).
   */
  silenceMarginMs?: number;
  /** Ends the watch (the iterator then finishes without an error). */
  signal?: AbortSignal;
}

/** Response metadata naming the server's heartbeat interval in milliseconds. */
export const HEARTBEAT_HEADER = "x-heartbeat-interval-ms";

/** What the watch needs of the client: how to open one stream. */
export interface SessionOpener {
  /**
   * Opens the stream after `resumeAfter`; `fresh` asks for a connection of its own (the shared
   * one may be the frozen one).
   */
  open(
    resumeAfter: bigint,
    fresh: boolean,
    call: { signal: AbortSignal; onHeader: (headers: Headers) => void },
  ): AsyncIterable<WatchAgentSessionResponse>;
  /** True when the client asks a provider for each call's token (an expired one is replaced). */
  readonly refreshesTokens: boolean;
}

/** Codes after which reconnecting cannot help: the watch ends with the error. */
function isTerminal(code: Code): boolean {
  return (
    code === Code.Unauthenticated ||
    code === Code.PermissionDenied ||
    code === Code.InvalidArgument ||
    code === Code.Unimplemented
  );
}

/**
 * The calling agent's session: a snapshot, then every event exactly once and in order,
 * reconnecting with jittered backoff and resuming after the last sequence yielded; when that
 * is older than the server keeps (OUT_OF_RANGE), it starts over with a new snapshot. It ends
 * only on an error reconnecting cannot fix (a bad token, or an expired one without a token
 * provider, a missing permission), thrown from the iterator, or when the caller stops
 * iterating or aborts `options.signal`.
 */
export async function* watchSession(opener: SessionOpener, options: WatchOptions = {}): AsyncGenerator<AgentEvent> {
  const initialBackoff = options.initialBackoffMs ?? 100;
  const maxBackoff = options.maxBackoffMs ?? 5000;
  const margin = options.silenceMarginMs ?? 5000;
  const outer = options.signal;
  let last = options.resumeAfter ?? 0n;
  let backoff = initialBackoff;
  let fresh = false;
  while (!outer?.aborted) {
    const abort = new AbortController();
    const stop = () => abort.abort();
    outer?.addEventListener("abort", stop, { once: true });
    let silence = 2 * (options.heartbeatIntervalMs ?? 15000) + margin;
    let silent = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        silent = true;
        abort.abort();
      }, silence);
    };
    let failure: ClientInfoError;
    try {
      arm();
      const stream = opener.open(last, fresh, {
        signal: abort.signal,
        onHeader: (headers) => {
          const ms = Number(headers.get(HEARTBEAT_HEADER));
          if (Number.isFinite(ms) && ms > 0) {
            silence = 2 * ms + margin;
            arm();
          }
        },
      });
      fresh = false;
      for await (const message of stream) {
        arm();
        backoff = initialBackoff;
        const event = message.event;
        if (event === undefined) continue;
        switch (event.event.case) {
          case "heartbeat":
            if (!options.heartbeats) continue;
            break;
          case "snapshot":
            last = event.sequence;
            break;
          default:
            if (event.sequence <= last) continue; // already yielded before a reconnect
            last = event.sequence;
        }
        yield event;
      }
      failure = new ClientInfoError(Code.Unavailable, "stream ended");
    } catch (e) {
      if (outer?.aborted) return;
      if (silent) {
        fresh = true;
        failure = new ClientInfoError(
          Code.Unavailable,
          `nothing received for ${silence} ms: the connection is presumed dead`,
        );
      } else {
        failure = ClientInfoError.from(e);
      }
    } finally {
      clearTimeout(timer);
      outer?.removeEventListener("abort", stop);
      abort.abort(); // closes the stream when the caller stopped iterating
    }
    if (failure.code === Code.OutOfRange) {
      last = 0n; // the resume point was pruned: start over with a snapshot
      continue;
    }
    // The stream's token expired: the provider gives the next call a fresh one, and the
    // stream resumes where it was, at once.
    if (failure.code === Code.Unauthenticated && opener.refreshesTokens && failure.reason === "TOKEN_EXPIRED") {
      continue;
    }
    if (isTerminal(failure.code)) throw failure;
    try {
      await sleep(jittered(backoff), outer);
    } catch {
      return;
    }
    backoff = Math.min(backoff * 2, maxBackoff);
  }
}
