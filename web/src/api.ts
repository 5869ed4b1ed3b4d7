// The API clients over gRPC-Web (connect-web), with the agent's token on every call.

import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { ClientInfoService } from "../gen/clientinfo/v1/client_info_service_pb";
import { ContactBindingService } from "../gen/clientinfo/v1/contact_binding_service_pb";
import { ContactSearchService } from "../gen/clientinfo/v1/contact_search_service_pb";

/** The services the panel calls. */
export interface Api {
  info: Client<typeof ClientInfoService>;
  search: Client<typeof ContactSearchService>;
  binding: Client<typeof ContactBindingService>;
}

/** What the page can tell from the token itself (not verified here: the server does that). */
export interface TokenFacts {
  userId: string;
  domainId: string;
  permissions: string[];
  expiresAt: Date | null;
}

/** Finds the JWT in pasted text: a bare token, `Bearer <token>` or an `export X_TOKEN='...'` line. */
export function extractToken(text: string): string | null {
  const m = text.match(/[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/);
  return m ? m[0] : null;
}

/** Reads the token's claims; null when it is not a readable JWT. */
export function tokenFacts(token: string): TokenFacts | null {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")));
    return {
      userId: String(claims.sub ?? ""),
      domainId: String(claims.domain_id ?? ""),
      permissions: Array.isArray(claims.permissions) ? claims.permissions.map(String) : [],
      expiresAt: typeof claims.exp === "number" ? new Date(claims.exp * 1000) : null,
    };
  } catch {
    return null;
  }
}

/**
 * Where the API is: the page's own origin, unless the server serves the page on an address of its
 * own (`--web-listen`), when /config.json names the API's port on the same host.
 */
export async function apiBaseUrl(): Promise<string> {
  try {
    const r = await fetch("config.json", { cache: "no-store" });
    if (r.ok) {
      const c = await r.json();
      if (typeof c.api_port === "number") {
        return `${c.api_tls ? "https" : "http"}://${location.hostname}:${c.api_port}`;
      }
    }
  } catch {
    // Not served by client-info (a file or another server): same origin.
  }
  return location.origin;
}

/** The clients, sending `token`. */
export function connect(baseUrl: string, token: string): Api {
  const auth: Interceptor = (next) => async (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
  const transport = createGrpcWebTransport({ baseUrl, interceptors: [auth] });
  return {
    info: createClient(ClientInfoService, transport),
    search: createClient(ContactSearchService, transport),
    binding: createClient(ContactBindingService, transport),
  };
}

const CODE_NAMES: Record<number, string> = {
  [Code.Canceled]: "cancelled",
  [Code.Unknown]: "unknown error",
  [Code.InvalidArgument]: "invalid input",
  [Code.DeadlineExceeded]: "timed out",
  [Code.NotFound]: "not found",
  [Code.AlreadyExists]: "already exists",
  [Code.PermissionDenied]: "not allowed",
  [Code.ResourceExhausted]: "busy",
  [Code.FailedPrecondition]: "not possible now",
  [Code.Aborted]: "changed meanwhile",
  [Code.OutOfRange]: "out of range",
  [Code.Unimplemented]: "not supported",
  [Code.Internal]: "server error",
  [Code.Unavailable]: "server unavailable",
  [Code.DataLoss]: "data loss",
  [Code.Unauthenticated]: "not signed in",
};

/** The words to show for a failed call: what kind of failure, and the server's message. */
export function describe(e: unknown): string {
  const err = ConnectError.from(e);
  const kind = CODE_NAMES[err.code] ?? "error";
  return err.rawMessage ? `${capitalise(kind)}: ${err.rawMessage}` : capitalise(kind);
}

function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** The gRPC code of a failed call. */
export function codeOf(e: unknown): Code {
  return ConnectError.from(e).code;
}

export { Code };
