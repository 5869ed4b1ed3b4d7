// The common calls against the real server, over every transport: identify (offer, then the
// panel names the contact), select, search with paging, create with its errors, update with
// its version conflict, deadlines, tokens and permissions.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import {
  ClientInfoError,
  Code,
  ConnectError,
  ErrorInfoSchema,
  IdentificationOutcome,
  InteractionState,
  KNOWN_REASONS,
  attributeKey,
  isKnownReason,
} from "@client-info/sdk/node";
import { create } from "@bufbuild/protobuf";
import { REPO, createTestDatabase } from "./support/server.mjs";
import { TRANSPORTS, unique, uniqueNumber } from "./support/transports.mjs";

/** The id of a contact in a view (full card or summary). */
const idOf = (view) => view?.view.value?.id;

/** The rejection of `promise`, which must reject with a ClientInfoError. */
async function rejection(promise) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof ClientInfoError, `expected a ClientInfoError, got ${e}`);
    return e;
  }
  assert.fail("expected the call to fail");
}

let db;
let server;

before(async () => {
  db = await createTestDatabase("calls");
  server = await db.serve();
});

after(async () => {
  await server?.kill();
  await db?.drop();
});

test("the reasons the SDK knows are exactly the README's table", () => {
  const readme = readFileSync(path.join(REPO, "README.md"), "utf8");
  const table = readme.slice(readme.indexOf("<summary>Every reason</summary>"), readme.indexOf("</details>"));
  const documented = [...table.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]);
  assert.ok(documented.length > 40, "the README's table of reasons was found");
  assert.deepEqual([...KNOWN_REASONS].sort(), documented.sort());
});

test("an unknown reason is kept as it came, and undecodable details never throw", () => {
  const info = create(ErrorInfoSchema, { reason: "SOMETHING_NEW", domain: "client-info", metadata: { a: "b" } });
  const e = ClientInfoError.from(new ConnectError("new", Code.FailedPrecondition, undefined, [{ desc: ErrorInfoSchema, value: info }]));
  assert.equal(e.reason, "SOMETHING_NEW");
  assert.equal(isKnownReason(e.reason), false);
  assert.deepEqual(e.metadata, { a: "b" });
  const garbled = ClientInfoError.from(
    new ConnectError("x", Code.Internal, undefined, [{ type: "google.rpc.ErrorInfo", value: new Uint8Array([0xff, 0xff]) }]),
  );
  assert.equal(garbled.code, Code.Internal);
  assert.equal(garbled.reason, undefined);
});

for (const transport of TRANSPORTS) {
  describe(transport.name, () => {
    let routing;
    let agent;
    let crm;
    let tokenAsked = 0;

    before(() => {
      routing = transport.client({ baseUrl: server.url, token: db.tokens.routing });
      // A token provider, asked before every call.
      agent = transport.client({
        baseUrl: server.url,
        token: async () => {
          tokenAsked += 1;
          return db.tokens.agent;
        },
      });
      crm = transport.client({ baseUrl: server.url, token: db.tokens.crm, timeoutMs: 5000 });
    });

    test("identify: an offered call from a known number names its contact, which the agent selects", async () => {
      const number = uniqueNumber();
      const { contact } = await crm.createContact({
        requestId: unique("crm"),
        displayName: "Ann Lee",
        timeZone: "Europe/London",
        communications: [{ communication: { case: "phone", value: { number: `+44 ${number.slice(1)}` } } }],
      });
      const iid = unique("call");
      const offered = await routing.offerCall({
        interactionId: iid,
        number,
        agentUserId: db.agentId,
        queue: { id: "q1", name: "Support" },
        variables: { lang: "en", tier: "gold" },
      });
      assert.equal(offered.state, InteractionState.OFFERED);
      assert.equal(offered.identification?.outcome, IdentificationOutcome.IDENTIFIED);

      const asked = tokenAsked;
      const panel = await agent.getClientInfo(iid);
      assert.ok(tokenAsked > asked, "the token provider was asked for the call");
      assert.equal(panel.interactionId, iid);
      assert.equal(panel.queue?.name, "Support");
      assert.deepEqual(
        panel.variables.map((v) => [v.key, v.value]),
        [["lang", "en"], ["tier", "gold"]],
      );
      assert.equal(panel.identification?.outcome, IdentificationOutcome.IDENTIFIED);
      assert.equal(panel.candidates.length, 1);
      assert.equal(idOf(panel.candidates[0].contact), contact.id);
      assert.equal(panel.allowedActions?.select, false, "nothing to select before the call is accepted");

      // Selecting before the call is accepted is refused with the documented reason.
      const early = await rejection(agent.selectContact(iid, contact.id));
      assert.equal(early.code, Code.FailedPrecondition);
      assert.equal(early.reason, "INTERACTION_NOT_ACCEPTED");

      await routing.acceptInteraction(iid, db.agentId);
      const bound = await agent.selectContact(iid, contact.id);
      assert.equal(idOf(bound.boundContact), contact.id);
      const unbound = await agent.unbindContact(iid);
      assert.equal(unbound.boundContact, undefined);
      await routing.closeInteraction(iid);
    });

    test("identify: a key from the IVR identifies the contact before the number", async () => {
      const account = unique("acct");
      const { contact } = await crm.createContact({
        displayName: "Key Holder",
        attributes: [{ key: "account_no", value: account }],
      });
      const iid = unique("call");
      const offered = await routing.offerCall({
        interactionId: iid,
        number: "hidden",
        agentUserId: db.agentId,
        identificationKeys: [attributeKey("account_no", account, "entered in the IVR")],
      });
      assert.equal(offered.identification?.outcome, IdentificationOutcome.IDENTIFIED);
      assert.match(offered.identification?.reason ?? "", /entered in the IVR/);
      const panel = await agent.getClientInfo(iid);
      assert.equal(idOf(panel.candidates[0].contact), contact.id);
    });

    test("search: every hit once, page after page, in a stable order", async () => {
      const batch = unique("batch");
      const ids = [];
      for (let i = 0; i < 5; i++) {
        const { contact } = await crm.createContact({
          displayName: `Paged Contact ${i}`,
          attributes: [{ key: "batch", value: batch }],
        });
        ids.push(contact.id);
      }
      const query = { attributes: [{ key: "batch", value: batch }], pageSize: 2 };
      const first = await crm.searchPage(query);
      assert.equal(first.hits.length, 2);
      assert.equal(first.hasMore, true);
      assert.notEqual(first.nextPageToken, "");

      const seen = [];
      for await (const hit of crm.searchContacts(query)) seen.push(idOf(hit.contact));
      assert.equal(seen.length, 5, "five hits over three pages");
      assert.deepEqual([...seen].sort(), [...ids].sort());
      assert.deepEqual(seen.slice(0, 2), first.hits.map((h) => idOf(h.contact)), "the first page comes first");

      // Stopping early reads no further page than needed.
      const some = [];
      for await (const hit of crm.searchContacts(query)) {
        some.push(hit);
        if (some.length === 1) break;
      }
      assert.equal(some.length, 1);

      // A forged page token is INVALID_ARGUMENT.
      const forged = await rejection(crm.searchPage(query, "not-a-token"));
      assert.equal(forged.code, Code.InvalidArgument);
    });

    test("create: invalid fields are all named, with the reason", async () => {
      const e = await rejection(
        crm.createContact({
          displayName: "",
          timeZone: "Mars/Olympus_Mons",
          communications: [{ communication: { case: "email", value: { address: "not an address" } } }],
        }),
      );
      assert.equal(e.code, Code.InvalidArgument);
      assert.equal(e.codeName, "INVALID_ARGUMENT");
      assert.equal(e.reason, "INVALID_FIELDS");
      assert.equal(e.domain, "client-info");
      assert.equal(e.isRetryable, false);
      const fields = e.violations.map((v) => v.field);
      assert.ok(fields.includes("display_name"), `display_name among ${fields}`);
      assert.ok(fields.includes("time_zone"), `time_zone among ${fields}`);
      assert.ok(fields.some((f) => f.startsWith("communications[0]")), `communications[0] among ${fields}`);
      assert.ok(e.violations.every((v) => v.description.length > 0));
      assert.match(e.message, /^invalid argument: /);
    });

    test("create with a request id: a repeat returns the same contact; another body is refused", async () => {
      const requestId = unique("req");
      const first = await crm.createContact({ requestId, displayName: "Once Only" });
      assert.equal(first.created, true);
      const again = await crm.createContact({ requestId, displayName: "Once Only" });
      assert.equal(again.created, false);
      assert.equal(again.contact.id, first.contact.id);
      const other = await rejection(crm.createContact({ requestId, displayName: "Someone Else" }));
      assert.equal(other.code, Code.AlreadyExists);
      assert.equal(other.reason, "REQUEST_ID_REUSED");
    });

    test("update: the field mask is built from the changes; a stale version is CONTACT_VERSION_MISMATCH", async () => {
      const { contact } = await crm.createContact({ displayName: "Versioned", description: "before" });
      const got = await crm.getContact(contact.id);
      assert.equal(got.version, contact.version);
      const updated = await crm.updateContact(contact.id, contact.version, {
        description: "Call after 18:00",
        labels: ["VIP"],
      });
      assert.equal(updated.description, "Call after 18:00");
      assert.deepEqual(updated.labels, ["VIP"]);
      assert.equal(updated.displayName, "Versioned", "a field not given is left alone");
      assert.ok(updated.version > contact.version);

      const stale = await rejection(crm.updateContact(contact.id, contact.version, { description: "too late" }));
      assert.equal(stale.code, Code.Aborted);
      assert.equal(stale.reason, "CONTACT_VERSION_MISMATCH");
      assert.equal(stale.metadata.current_version, String(updated.version));
      assert.equal(stale.isRetryable, false, "repeating a stale update can never succeed");
      assert.equal((await crm.getContact(contact.id)).description, "Call after 18:00");
    });

    test("errors: not found, permission missing, bad token, deadline", async () => {
      const missing = await rejection(crm.getContact(987654321n));
      assert.equal(missing.code, Code.NotFound);
      assert.equal(missing.reason, "CONTACT_NOT_FOUND");

      const denied = await rejection(routing.getContact(1n));
      assert.equal(denied.code, Code.PermissionDenied);
      assert.equal(denied.reason, "PERMISSION_MISSING");
      assert.equal(denied.metadata.permission, "contacts.read");

      const stranger = transport.client({ baseUrl: server.url, token: `${db.tokens.crm.slice(0, -4)}AAAA` });
      const forged = await rejection(stranger.getContact(1n));
      assert.equal(forged.code, Code.Unauthenticated);
      assert.equal(forged.reason, "TOKEN_INVALID");

      const anonymous = transport.client({ baseUrl: server.url });
      const none = await rejection(anonymous.getContact(1n));
      assert.equal(none.reason, "TOKEN_MISSING");

      // A per-call deadline too short for any answer: DEADLINE_EXCEEDED (retried, then given up).
      const late = await rejection(crm.getContact(1n, { timeoutMs: 1 }));
      assert.equal(late.code, Code.DeadlineExceeded);
    });
  });
}
