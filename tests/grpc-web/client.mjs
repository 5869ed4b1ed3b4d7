// A gRPC-Web client built only from libraries this project did not write, run by
// tests/api/transport.rs to prove that the server's gRPC-Web works for real clients:
//   connect-h1    @connectrpc/connect-node's gRPC-Web transport (binary) over HTTP/1.1
//   connect-h2    the same over HTTP/2 (cleartext, prior knowledge)
//   grpcweb-text  Google's grpc-web package in text mode (application/grpc-web-text), over
//                 HTTP/1.1 through the xmlhttprequest polyfill
// Messages are described at run time from the server's own descriptor set (no generated code).
//
// Usage: node client.mjs --url URL --token JWT --descriptors FILE --transport MODE
//                        --contact-id N [--timeout-ms 20000]
// Prints one JSON object per line on stdout: unary, error, snapshot, event (the first
// InteractionOffered), or failed.

import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { createFileRegistry, fromBinary, toBinary, create } from "@bufbuild/protobuf";
import * as wkt from "@bufbuild/protobuf/wkt";
import { createClient, ConnectError } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-node";

const { values: args } = parseArgs({
  options: {
    url: { type: "string" },
    token: { type: "string" },
    descriptors: { type: "string" },
    transport: { type: "string" },
    "contact-id": { type: "string" },
    "timeout-ms": { type: "string", default: "20000" },
  },
});

const print = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const fail = (reason) => {
  print({ step: "failed", reason: String(reason) });
  process.exit(1);
};
for (const required of ["url", "token", "descriptors", "transport", "contact-id"]) {
  if (!args[required]) fail(`--${required} is required`);
}
setTimeout(() => fail(`timed out after ${args["timeout-ms"]} ms`), Number(args["timeout-ms"])).unref();

// The descriptor set, completed with the well-known types it imports when it lacks them.
const set = fromBinary(wkt.FileDescriptorSetSchema, readFileSync(args.descriptors));
const wellKnown = new Map(
  Object.values(wkt)
    .filter((v) => v && v.kind === "file" && v.proto?.name?.startsWith("google/protobuf/"))
    .map((f) => [f.proto.name, f.proto]),
);
// Every file after its imports (createFileRegistry resolves imports among earlier files).
const byName = new Map(set.file.map((f) => [f.name, f]));
const ordered = [];
const visit = (name) => {
  if (ordered.some((f) => f.name === name)) return;
  const file = byName.get(name) ?? wellKnown.get(name) ?? fail(`missing import ${name}`);
  file.dependency.forEach(visit);
  ordered.push(file);
};
set.file.forEach((f) => visit(f.name));
set.file = ordered;
const registry = createFileRegistry(set);
const service = (name) => registry.getService(name) ?? fail(`no service ${name}`);
const message = (name) => registry.getMessage(name) ?? fail(`no message ${name}`);

const search = service("clientinfo.v1.ContactSearchService");
const clientInfo = service("clientinfo.v1.ClientInfoService");
const contactId = BigInt(args["contact-id"]);
const authorization = `Bearer ${args.token}`;

/** Follows the session stream: prints the snapshot, then the first InteractionOffered (the
 * events before it, such as its ContactIdentified, are listed in `before`). */
async function follow(responses) {
  let heartbeats = 0;
  const before = [];
  for await (const response of responses) {
    const event = response.event;
    const kind = event?.event?.case;
    if (kind === "snapshot") {
      print({ step: "snapshot", sequence: Number(event.sequence) });
    } else if (kind === "heartbeat") {
      heartbeats += 1;
    } else if (kind === "interactionOffered") {
      const interactionId = event.event.value.panel?.interactionId ?? "";
      print({ step: "event", kind, sequence: Number(event.sequence), interactionId, heartbeats, before });
      return;
    } else if (kind) {
      before.push(kind);
    }
  }
  fail("the stream ended before an event");
}

async function withConnect(httpVersion) {
  const transport = createGrpcWebTransport({ baseUrl: args.url, httpVersion });
  const headers = { authorization };
  const contacts = createClient(search, transport);
  const found = await contacts.getContact({ contactId }, { headers });
  print({ step: "unary", contactId: Number(found.contact.id), displayName: found.contact.displayName });
  try {
    await contacts.getContact({ contactId: 999999999n }, { headers });
    fail("GetContact of an unknown id succeeded");
  } catch (e) {
    const err = ConnectError.from(e);
    print({ step: "error", code: err.code, message: err.rawMessage });
  }
  const abort = new AbortController();
  const panel = createClient(clientInfo, transport);
  await follow(panel.watchAgentSession({ resumeAfter: 0n }, { headers, signal: abort.signal }));
  abort.abort();
}

async function withGrpcWeb() {
  // The xmlhttprequest package fires readystatechange for every chunk of a response, as
  // browsers do, which grpc-web's text mode reads the stream by. One quirk: its default
  // "Accept: */*" is not replaced by a caller's Accept but joined to it, and tonic-web picks
  // the response encoding from Accept; a lower-case name lands last, and Node keeps the last.
  const { XMLHttpRequest: Polyfill } = (await import("xmlhttprequest")).default;
  function XMLHttpRequest() {
    const xhr = new Polyfill();
    const set = xhr.setRequestHeader;
    xhr.setRequestHeader = (name, value) =>
      set.call(xhr, name.toLowerCase() === "accept" ? "accept" : name, value);
    return xhr;
  }
  globalThis.XMLHttpRequest = XMLHttpRequest;
  const { default: grpcWeb } = await import("grpc-web");
  const client = new grpcWeb.GrpcWebClientBase({ format: "text" });
  const metadata = { authorization };
  const descriptor = (svc, method, type) => {
    const m = svc.methods.find((x) => x.name === method) ?? fail(`no method ${method}`);
    return new grpcWeb.MethodDescriptor(
      `/${svc.typeName}/${method}`,
      type,
      Object,
      Object,
      (request) => toBinary(m.input, create(m.input, request)),
      (bytes) => fromBinary(m.output, bytes),
    );
  };
  const getContact = descriptor(search, "GetContact", grpcWeb.MethodType.UNARY);
  const unary = (request) =>
    new Promise((resolve, reject) =>
      client.rpcCall(args.url + getContact.getName(), request, metadata, getContact, (err, res) =>
        err ? reject(err) : resolve(res),
      ),
    );
  const found = await unary({ contactId });
  print({ step: "unary", contactId: Number(found.contact.id), displayName: found.contact.displayName });
  try {
    await unary({ contactId: 999999999n });
    fail("GetContact of an unknown id succeeded");
  } catch (e) {
    print({ step: "error", code: e.code, message: e.message });
  }
  const watch = descriptor(clientInfo, "WatchAgentSession", grpcWeb.MethodType.SERVER_STREAMING);
  const stream = client.serverStreaming(args.url + watch.getName(), { resumeAfter: 0n }, metadata, watch);
  // The stream's messages as an async iterable.
  const queue = [];
  let wake = null;
  let ended = null;
  stream.on("data", (m) => { queue.push(m); wake?.(); });
  stream.on("error", (e) => { ended = e; wake?.(); });
  stream.on("end", () => { ended = ended ?? "end"; wake?.(); });
  async function* messages() {
    for (;;) {
      if (queue.length) { yield queue.shift(); continue; }
      if (ended) { if (ended !== "end") throw new Error(`${ended.code}: ${ended.message}`); return; }
      await new Promise((r) => { wake = r; });
      wake = null;
    }
  }
  await follow(messages());
  stream.cancel();
}

try {
  switch (args.transport) {
    case "connect-h1": await withConnect("1.1"); break;
    case "connect-h2": await withConnect("2"); break;
    case "grpcweb-text": await withGrpcWeb(); break;
    default: fail(`unknown --transport ${args.transport}`);
  }
  process.exit(0);
} catch (e) {
  fail(e?.stack ?? `${e?.code ?? ""} ${e?.message ?? JSON.stringify(e)}`);
}
