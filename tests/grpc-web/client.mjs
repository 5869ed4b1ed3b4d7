// gRPC-Web interoperability client: calls the client-info server through gRPC-Web with
// libraries this project did not write, so a Rust test can prove that real gRPC-Web clients
// work, not only tonic's own. Modes (--transport):
//   connect-h1    @connectrpc/connect-node createGrpcWebTransport, binary
//                 (application/grpc-web+proto), HTTP/1.1
//   connect-h2    the same over HTTP/2 (cleartext, prior knowledge)
//   grpcweb-text  Google's grpc-web, GrpcWebClientBase({format: "text"})
//                 (application/grpc-web-text), HTTP/1.1 through the xhr2 XMLHttpRequest
// No generated code: messages and services come at run time from a serialized
// google.protobuf.FileDescriptorSet of the clientinfo protos (--descriptors), with or without
// the google/protobuf well-known imports (those missing are taken from @bufbuild/protobuf/wkt).
//
// Usage:
//   node client.mjs --url http://127.0.0.1:PORT --token JWT --descriptors FILE
//                   --transport MODE --contact-id N [--timeout-ms 20000]
//                   [--event-kind interactionOffered|any|KIND]
//
// Steps, each printed as one JSON object per line on stdout (diagnostics go to stderr):
//   1. {"step":"unary","contactId":N,"displayName":"..."}     GetContact(N)
//   2. {"step":"error","code":5,"message":"..."}              GetContact(999999999), whatever
//                                                             status it fails with
//   3. {"step":"snapshot","sequence":S}                       WatchAgentSession(resume_after 0),
//                                                             its first message
//   4. {"step":"event","kind":"interactionOffered","sequence":S,"interactionId":"...",
//       "heartbeats":H,"before":["contactIdentified"]}
//      The first event of --event-kind (default interactionOffered; "any" takes the first that
//      is neither snapshot nor heartbeat). `before` lists the kinds of the other events passed
//      over: an offer whose caller is identified commits a contactIdentified just before its
//      interactionOffered. `interactionId` is the panel's for interactionOffered, else "".
//      Then the stream is cancelled and the process exits 0.
// Anything unexpected, or --timeout-ms passing: {"step":"failed","reason":"..."}, exit 1.

import { readFileSync } from "node:fs";
import { StringDecoder } from "node:string_decoder";
import { parseArgs } from "node:util";
import { create, createFileRegistry, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as wkt from "@bufbuild/protobuf/wkt";
import { ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-node";
import grpcWeb from "grpc-web";
import XHR2 from "xhr2";

const CONTACT_SEARCH = "clientinfo.v1.ContactSearchService";
const CLIENT_INFO = "clientinfo.v1.ClientInfoService";
const UNKNOWN_CONTACT_ID = 999999999n;

// ---------------------------------------------------------------------------------------------
// Output: one JSON object per line; the first terminal line (done or failed) ends the process.

let finished = false;

function print(obj) {
  if (!finished) process.stdout.write(`${JSON.stringify(obj)}\n`);
}

/** Ends the process once stdout has been flushed. */
function exit(code) {
  finished = true;
  process.stdout.write("", () => process.exit(code));
}

function fail(reason) {
  if (finished) return;
  print({ step: "failed", reason: String(reason) });
  exit(1);
}

class Failure extends Error {}

/** A one-line reason for the failed line; the stack of an unforeseen error goes to stderr. */
function describe(e) {
  if (e instanceof Failure) return e.message;
  if (e instanceof ConnectError) return `gRPC ${e.code}: ${e.rawMessage}`;
  if (typeof e?.code === "number") return `gRPC ${e.code}: ${e.message}`; // grpc-web RpcError
  if (e instanceof Error) {
    console.error(e.stack);
    return e.message;
  }
  return String(e);
}

process.on("uncaughtException", (e) => fail(`uncaught: ${describe(e)}`));
process.on("unhandledRejection", (e) => fail(`unhandled rejection: ${describe(e)}`));

// ---------------------------------------------------------------------------------------------
// Arguments.

function parseArguments() {
  const { values } = parseArgs({
    options: {
      url: { type: "string" },
      token: { type: "string" },
      descriptors: { type: "string" },
      transport: { type: "string" },
      "contact-id": { type: "string" },
      "timeout-ms": { type: "string", default: "20000" },
      "event-kind": { type: "string", default: "interactionOffered" },
    },
    strict: true,
  });
  for (const name of ["url", "token", "descriptors", "transport", "contact-id"]) {
    if (!values[name]) throw new Failure(`--${name} is required`);
  }
  if (!/^[0-9]+$/.test(values["contact-id"])) throw new Failure("--contact-id must be a number");
  const timeoutMs = Number(values["timeout-ms"]);
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
    throw new Failure("--timeout-ms must be a positive integer");
  }
  return {
    url: values.url.replace(/\/+$/, ""),
    token: values.token,
    descriptors: values.descriptors,
    transport: values.transport,
    contactId: BigInt(values["contact-id"]),
    timeoutMs,
    eventKind: values["event-kind"],
  };
}

// ---------------------------------------------------------------------------------------------
// Descriptors.

/** The well-known google/protobuf files @bufbuild/protobuf ships, by file name. */
function wellKnownFiles() {
  const files = new Map();
  for (const value of Object.values(wkt)) {
    if (value?.kind === "file" && value.proto?.name?.startsWith("google/protobuf/")) {
      files.set(value.proto.name, value.proto);
    }
  }
  return files;
}

/**
 * A registry of every file in the descriptor set. Imports the set lacks (buf build
 * --exclude-imports leaves out google/protobuf/timestamp.proto and the like) are taken from
 * @bufbuild/protobuf's well-known types; files are put after their imports, which
 * createFileRegistry needs.
 */
function loadRegistry(path) {
  const set = fromBinary(wkt.FileDescriptorSetSchema, readFileSync(path));
  const inSet = new Map(set.file.map((f) => [f.name, f]));
  const wellKnown = wellKnownFiles();
  const ordered = [];
  const placed = new Set();
  const borrowed = [];
  const visit = (name, importer, path = []) => {
    if (placed.has(name)) return;
    if (path.includes(name)) throw new Failure(`import cycle: ${[...path, name].join(" -> ")}`);
    let file = inSet.get(name);
    if (!file) {
      file = wellKnown.get(name);
      if (!file) throw new Failure(`${importer} imports ${name}, which the descriptor set lacks`);
      borrowed.push(name);
    }
    for (const dependency of file.dependency) visit(dependency, name, [...path, name]);
    placed.add(name);
    ordered.push(file);
  };
  for (const file of set.file) visit(file.name, path);
  if (borrowed.length) {
    console.error(`descriptor set lacks ${borrowed.join(", ")}: using @bufbuild/protobuf/wkt`);
  }
  return createFileRegistry(create(wkt.FileDescriptorSetSchema, { file: ordered }));
}

function method(registry, serviceName, methodName) {
  const service = registry.getService(serviceName);
  if (!service) throw new Failure(`the descriptor set has no service ${serviceName}`);
  const found = service.methods.find((m) => m.name === methodName);
  if (!found) throw new Failure(`${serviceName} has no method ${methodName}`);
  return found;
}

// ---------------------------------------------------------------------------------------------
// The steps, shared by every transport. An `api` has:
//   getContact(contactId: bigint) -> Promise<GetContactResponse>
//   watchAgentSession(resumeAfter: bigint) -> { messages: AsyncIterable<WatchAgentSessionResponse>,
//                                               cancel(): void }

async function run(api, { contactId, eventKind }) {
  const found = await api.getContact(contactId);
  if (!found.contact) throw new Failure("GetContact answered without a contact");
  print({
    step: "unary",
    contactId: Number(found.contact.id),
    displayName: found.contact.displayName,
  });

  let unexpected;
  try {
    unexpected = await api.getContact(UNKNOWN_CONTACT_ID);
  } catch (e) {
    const { code, message } = api.status(e);
    print({ step: "error", code, message });
  }
  if (unexpected) throw new Failure(`GetContact(${UNKNOWN_CONTACT_ID}) succeeded`);

  const watch = api.watchAgentSession(0n);
  let heartbeats = 0;
  const before = [];
  let first = true;
  try {
    for await (const { event } of watch.messages) {
      if (!event) throw new Failure("the stream sent a message without an event");
      const kind = event.event.case ?? "";
      if (first) {
        if (kind !== "snapshot") {
          throw new Failure(`the stream's first message is "${kind}", not a snapshot`);
        }
        print({ step: "snapshot", sequence: Number(event.sequence) });
        first = false;
      } else if (kind === "heartbeat") {
        heartbeats += 1;
      } else if (kind === "snapshot" || (eventKind !== "any" && kind !== eventKind)) {
        before.push(kind);
      } else {
        const interactionId =
          kind === "interactionOffered" ? (event.event.value.panel?.interactionId ?? "") : "";
        print({
          step: "event",
          kind,
          sequence: Number(event.sequence),
          interactionId,
          heartbeats,
          before,
        });
        return;
      }
    }
    throw new Failure(`the stream ended before an event (passed over: ${before.join(", ")})`);
  } finally {
    watch.cancel();
  }
}

// ---------------------------------------------------------------------------------------------
// @connectrpc/connect-node: gRPC-Web, binary, over HTTP/1.1 or HTTP/2.

function connectApi(registry, options, httpVersion) {
  const transport = createGrpcWebTransport({
    baseUrl: options.url,
    httpVersion,
    useBinaryFormat: true,
  });
  const headers = { authorization: `Bearer ${options.token}` };
  const search = createClient(registry.getService(CONTACT_SEARCH), transport);
  const clientInfo = createClient(registry.getService(CLIENT_INFO), transport);
  return {
    getContact: (contactId) => search.getContact({ contactId }, { headers }),
    status: (e) => {
      const err = ConnectError.from(e);
      return { code: err.code, message: err.rawMessage };
    },
    watchAgentSession(resumeAfter) {
      const abort = new AbortController();
      return {
        messages: clientInfo.watchAgentSession({ resumeAfter }, { headers, signal: abort.signal }),
        cancel: () => abort.abort(),
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Google's grpc-web, text mode, over HTTP/1.1 through xhr2.

/**
 * xhr2 as browsers behave for streamed responses. xhr2 fills responseText only when the
 * response has ended and fires readystatechange once on entering LOADING; browsers expose the
 * text received so far and fire readystatechange for every chunk, and grpc-web's text mode
 * reads server streams that way. Without this a server stream delivers nothing until it ends.
 * (Overrides two of xhr2's private methods: the xhr2 version is pinned in package.json.)
 */
class StreamingXMLHttpRequest extends XHR2 {
  open(...args) {
    super.open(...args);
    this.responseText = "";
    this._streamDecoder = new StringDecoder("utf8");
  }

  _onHttpResponseData(response, data) {
    const current = response === this._response;
    const wasLoading = this.readyState === XHR2.LOADING;
    if (current) this.responseText += this._streamDecoder.write(data);
    super._onHttpResponseData(response, data); // fires readystatechange on entering LOADING
    if (current && wasLoading) this._setReadyState(XHR2.LOADING);
  }
}

function grpcWebApi(registry, options) {
  globalThis.XMLHttpRequest = StreamingXMLHttpRequest;
  const client = new grpcWeb.GrpcWebClientBase({ format: "text" });
  const metadata = { authorization: `Bearer ${options.token}` };
  const descriptor = (serviceName, methodName, methodType) => {
    const m = method(registry, serviceName, methodName);
    return new grpcWeb.MethodDescriptor(
      `/${serviceName}/${methodName}`,
      methodType,
      Object, // request and response "classes": grpc-web only passes them through
      Object,
      (request) => toBinary(m.input, request),
      (bytes) => fromBinary(m.output, bytes),
    );
  };
  const getContact = descriptor(CONTACT_SEARCH, "GetContact", grpcWeb.MethodType.UNARY);
  const getContactInput = method(registry, CONTACT_SEARCH, "GetContact").input;
  const watch = descriptor(CLIENT_INFO, "WatchAgentSession", grpcWeb.MethodType.SERVER_STREAMING);
  const watchInput = method(registry, CLIENT_INFO, "WatchAgentSession").input;
  return {
    getContact: (contactId) =>
      client.unaryCall(
        options.url + getContact.getName(),
        create(getContactInput, { contactId }),
        metadata,
        getContact,
      ),
    status: (e) => ({ code: e.code, message: e.message }),
    watchAgentSession(resumeAfter) {
      const stream = client.serverStreaming(
        options.url + watch.getName(),
        create(watchInput, { resumeAfter }),
        metadata,
        watch,
      );
      return { messages: streamMessages(stream), cancel: () => stream.cancel() };
    },
  };
}

/** A grpc-web ClientReadableStream as an async iterable (it ends with "end" or "error"). */
async function* streamMessages(stream) {
  const queue = [];
  let outcome = null; // { error } once the stream is over
  let wake = () => {};
  stream.on("data", (message) => {
    queue.push(message);
    wake();
  });
  stream.on("error", (error) => {
    outcome ??= { error };
    wake();
  });
  stream.on("end", () => {
    outcome ??= { error: null };
    wake();
  });
  for (;;) {
    if (queue.length) {
      yield queue.shift();
    } else if (outcome) {
      if (outcome.error) throw outcome.error;
      return;
    } else {
      await new Promise((resolve) => {
        wake = resolve;
      });
    }
  }
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const options = parseArguments();
  setTimeout(() => fail(`timed out after ${options.timeoutMs} ms`), options.timeoutMs);
  const registry = loadRegistry(options.descriptors);
  method(registry, CONTACT_SEARCH, "GetContact");
  method(registry, CLIENT_INFO, "WatchAgentSession");
  let api;
  switch (options.transport) {
    case "connect-h1":
      api = connectApi(registry, options, "1.1");
      break;
    case "connect-h2":
      api = connectApi(registry, options, "2");
      break;
    case "grpcweb-text":
      api = grpcWebApi(registry, options);
      break;
    default:
      throw new Failure(
        `unknown --transport ${options.transport} (connect-h1, connect-h2 or grpcweb-text)`,
      );
  }
  await run(api, options);
}

main().then(
  () => exit(0),
  (e) => fail(describe(e)),
);
