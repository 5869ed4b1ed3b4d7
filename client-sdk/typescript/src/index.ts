// The browser entry (`@client-info/sdk`): the client over gRPC-Web, on the browser's fetch
// (also usable from Node 20+, Deno and Bun, which have fetch too).

import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { ClientInfoClient, type ClientOptions } from "./client.js";

export * from "./shared.js";

/** What a browser client takes: the common options (`https://` uses the browser's trust). */
export type BrowserClientOptions = ClientOptions;

/**
 * A client over gRPC-Web (binary), the way a web page reaches client-info: the server answers
 * gRPC-Web on its gRPC port; a page on another origin needs `--cors-origin` on the server.
 */
export function createClientInfoClient(options: BrowserClientOptions): ClientInfoClient {
  return new ClientInfoClient(options, ({ interceptors, defaultTimeoutMs }) =>
    createGrpcWebTransport({ baseUrl: options.baseUrl, interceptors, defaultTimeoutMs }),
  );
}
