// The agent's session stream: WatchAgentSession with resume after the last sequence, as
// client-sdk/src/watch.rs does it: reconnect with full-jitter backoff (100 ms doubling to 5 s),
// skip what was already seen, start over with a snapshot on OUT_OF_RANGE, and presume a silent
// stream dead after two heartbeat intervals plus 5 s.

import type { AgentEvent } from "../gen/clientinfo/v1/event_pb";
import { type Api, Code, codeOf, describe } from "./api";

/** What the session tells the page. */
export interface SessionHandlers {
  /** The stream is open (again). */
  connected(): void;
  /** An event to apply (snapshots included; heartbeats and replays already filtered out). */
  event(event: AgentEvent): void;
  /** The stream broke; it reconnects by itself after `retryInMs`. */
  lost(reason: string, retryInMs: number): void;
  /** An error reconnecting cannot fix (token, permission): the session ends. */
  fatal(reason: string, code: Code): void;
}

const HEARTBEAT_HEADER = "x-heartbeat-interval-ms";
const INITIAL_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 5000;
const SILENCE_MARGIN_MS = 5000;

function terminal(code: Code): boolean {
  return (
    code === Code.Unauthenticated ||
    code === Code.PermissionDenied ||
    code === Code.InvalidArgument ||
    code === Code.Unimplemented
  );
}

/** Watches the session until `stop` aborts or a terminal error. */
export async function watchSession(api: Api, handlers: SessionHandlers, stop: AbortSignal): Promise<void> {
  let last = 0n;
  let backoff = INITIAL_BACKOFF_MS;
  while (!stop.aborted) {
    const call = new AbortController();
    const onStop = () => call.abort();
    stop.addEventListener("abort", onStop);
    let interval = 15000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => call.abort(), interval * 2 + SILENCE_MARGIN_MS);
    };
    let reason = "the stream ended";
    try {
      arm();
      const stream = api.info.watchAgentSession(
        { resumeAfter: last },
        {
          signal: call.signal,
          onHeader: (headers) => {
            const ms = Number(headers.get(HEARTBEAT_HEADER));
            if (ms > 0) interval = ms;
            arm();
            handlers.connected();
          },
        },
      );
      for await (const message of stream) {
        arm();
        const event = message.event;
        if (!event) continue;
        backoff = INITIAL_BACKOFF_MS;
        switch (event.event.case) {
          case "heartbeat":
            continue;
          case "snapshot":
            last = event.sequence;
            break;
          default:
            if (event.sequence <= last) continue;
            last = event.sequence;
        }
        handlers.event(event);
      }
    } catch (e) {
      if (stop.aborted) return;
      const code = codeOf(e);
      if (terminal(code)) {
        handlers.fatal(describe(e), code);
        return;
      }
      if (code === Code.OutOfRange) {
        // Older than the server keeps: start over with a snapshot.
        last = 0n;
        reason = describe(e);
      } else if (call.signal.aborted) {
        reason = "nothing received for too long";
      } else {
        reason = describe(e);
      }
    } finally {
      clearTimeout(timer);
      stop.removeEventListener("abort", onStop);
    }
    if (stop.aborted) return;
    const wait = Math.random() * backoff;
    handlers.lost(reason, wait);
    await new Promise((resolve) => setTimeout(resolve, wait));
    backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
  }
}
