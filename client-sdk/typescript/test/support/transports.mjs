// The ways a test reaches the server, each through the BUILT package (dist, by its package
// name): every test runs once per transport.

import * as browser from "@client-info/sdk";
import * as node from "@client-info/sdk/node";

/** Name -> how to make a client with the common options. */
export const TRANSPORTS = [
  { name: "gRPC (node entry, HTTP/2)", client: (o) => node.createClientInfoClient({ ...o, protocol: "grpc" }) },
  { name: "gRPC-Web (node entry, HTTP/2)", client: (o) => node.createClientInfoClient({ ...o, protocol: "grpc-web" }) },
  { name: "gRPC-Web (browser entry, fetch)", client: (o) => browser.createClientInfoClient(o) },
];

/** A short id unique to this run, for interaction ids, numbers and attribute values. */
export function unique(prefix) {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

/** A UK mobile number no other test uses: 07400 + 6 random digits. */
let serial = 0;
export function uniqueNumber() {
  serial += 1;
  return `07400 ${String((process.pid * 1000 + serial * 7919 + Date.now()) % 1_000_000).padStart(6, "0")}`;
}
