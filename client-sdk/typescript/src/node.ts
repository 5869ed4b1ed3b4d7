// The Node entry (`@client-info/sdk/node`): the client over gRPC (HTTP/2, the default) or
// gRPC-Web, with TLS and mTLS from PEM files.

import type { SecureClientSessionOptions } from "node:http2";
import { createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { ClientInfoClient, type ClientOptions } from "./client.js";

export * from "./shared.js";

/** TLS for an `https://` URL, as PEM text or buffers. */
export interface TlsOptions {
  /** CA certificate(s) to trust instead of Node's roots (a private CA, a self-signed server). */
  ca?: string | Buffer;
  /** The client certificate chain, for a server that requires mTLS (`--tls-client-ca`). */
  cert?: string | Buffer;
  /** The client certificate's private key. */
  key?: string | Buffer;
}

/** What a Node client takes. */
export interface NodeClientOptions extends ClientOptions {
  /** `"grpc"` (HTTP/2, default) or `"grpc-web"` (through proxies that speak only HTTP/1.1). */
  protocol?: "grpc" | "grpc-web";
  /**
   * gRPC-Web's HTTP version (default "2"); gRPC is always HTTP/2. Over "1.1", connect-node
   * reports an error the server answers before reading the request body (a missing token,
   * for one) as INTERNAL "write EPIPE" now and then, instead of the server's error.
   */
  httpVersion?: "1.1" | "2";
  /** TLS settings for an `https://` URL. */
  tls?: TlsOptions;
  /**
   * HTTP/2 keepalive: a ping after this many ms without traffic, so a dead connection is noticed
   * and replaced (default 20,000; the Rust SDK's). Only for HTTP/2.
   */
  pingIntervalMs?: number;
}

/** HTTP/2 keepalive ping interval, in ms. */
export const DEFAULT_PING_INTERVAL_MS = 20_000;

/**
 * A Node client: gRPC over HTTP/2 by default, or gRPC-Web; `https://` with `tls` for a private
 * CA or mTLS.
 */
export function createClientInfoClient(options: NodeClientOptions): ClientInfoClient {
  const https = options.baseUrl.startsWith("https://");
  if (options.tls !== undefined && !https) {
    throw new TypeError("tls options need an https:// baseUrl");
  }
  // The same three settings suit an HTTP/2 session and an HTTPS request alike.
  const tls = https ? { ca: options.tls?.ca, cert: options.tls?.cert, key: options.tls?.key } : {};
  const nodeOptions: SecureClientSessionOptions = tls;
  const protocol = options.protocol ?? "grpc";
  const httpVersion = protocol === "grpc" ? "2" : (options.httpVersion ?? "2");
  return new ClientInfoClient(options, ({ interceptors, defaultTimeoutMs }) => {
    const common = { baseUrl: options.baseUrl, interceptors, defaultTimeoutMs };
    if (httpVersion === "2") {
      const h2 = {
        ...common,
        httpVersion: "2" as const,
        nodeOptions,
        pingIntervalMs: options.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS,
      };
      return protocol === "grpc" ? createGrpcTransport(h2) : createGrpcWebTransport(h2);
    }
    return createGrpcWebTransport({ ...common, httpVersion: "1.1", nodeOptions: tls });
  });
}
