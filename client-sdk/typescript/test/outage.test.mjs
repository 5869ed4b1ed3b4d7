// Outages, over every transport: a real server killed (SIGKILL) and started again on the same
// database and port. The session watch resumes without losing or repeating an event, even
// those committed while its server was down; an idempotent call is retried until the server is
// back, a non-idempotent one never is.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { ClientInfoError, Code } from "@client-info/sdk/node";
import { createTestDatabase } from "./support/server.mjs";
import { TRANSPORTS, unique } from "./support/transports.mjs";

/** Waits until `check()` is true, failing after `ms` with `what`. */
async function waitFor(check, what, ms = 30_000) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await delay(20);
  }
}

let db;
const servers = [];

before(async () => {
  db = await createTestDatabase("outage");
});

after(async () => {
  for (const s of servers) await s.kill();
  await db?.drop();
});

/** A server on the test database, killed after the file's tests. */
async function serve(port) {
  const s = await db.serve(port);
  servers.push(s);
  return s;
}

for (const transport of TRANSPORTS) {
  describe(transport.name, () => {
    test("watch: every event exactly once across a server restart, those made while it was down included", async () => {
      // The agent watches through server A; routing offers through server B, on the same
      // database, so offers go on while A is down.
      let a = await serve();
      const b = await serve();
      let opens = 0;
      const countOpens = (next) => async (req) => {
        if (req.stream) opens += 1;
        return next(req);
      };
      const agent = transport.client({ baseUrl: a.url, token: db.tokens.agent, interceptors: [countOpens] });
      const routing = transport.client({ baseUrl: b.url, token: db.tokens.routing });
      const prefix = unique("watch");
      const ids = Array.from({ length: 15 }, (_, i) => `${prefix}-${i}`);
      const offer = (id) => routing.offerCall({ interactionId: id, number: "hidden", agentUserId: db.agentId });

      const stop = new AbortController();
      const events = [];
      const offered = new Map();
      const reader = (async () => {
        for await (const event of agent.watchSession({ signal: stop.signal, initialBackoffMs: 50, maxBackoffMs: 400 })) {
          events.push(event);
          if (event.event.case === "interactionOffered") {
            const id = event.event.value.panel?.interactionId ?? "";
            if (id.startsWith(prefix)) offered.set(id, (offered.get(id) ?? 0) + 1);
          }
        }
      })();
      const has = (n) => () => ids.slice(0, n).every((id) => offered.has(id));

      await waitFor(() => events.length > 0, "the snapshot");
      assert.equal(events[0].event.case, "snapshot", "the watch starts with a snapshot");
      for (const id of ids.slice(0, 5)) await offer(id);
      await waitFor(has(5), "the first offers");

      await a.kill();
      for (const id of ids.slice(5, 10)) await offer(id); // committed while the watch's server is down
      await delay(300);
      a = await a.restart();
      servers.push(a);
      for (const id of ids.slice(10)) await offer(id);
      await waitFor(has(15), "every offer, after the restart");
      await delay(500); // time for a repeat to show, were there one
      stop.abort();
      await reader;

      assert.ok(opens >= 2, `the stream was opened again after the restart (opened ${opens} times)`);
      for (const id of ids) assert.equal(offered.get(id), 1, `${id} was delivered once`);
      assert.deepEqual(
        events.filter((e) => e.event.case === "snapshot").length,
        1,
        "it resumed after its last event, not with a new snapshot",
      );
      const sequences = events.slice(1).map((e) => e.sequence);
      for (let i = 1; i < sequences.length; i++) {
        assert.ok(sequences[i] > sequences[i - 1], `sequences increase: ${sequences[i - 1]} then ${sequences[i]}`);
      }
      assert.ok(events.every((e) => e.event.case !== "heartbeat"), "no heartbeats unless asked for");
    });

    test("retry: an idempotent call is repeated while the server is down, a non-idempotent one never", async () => {
      let server = await serve();
      const setup = transport.client({ baseUrl: server.url, token: db.tokens.crm });
      const { contact } = await setup.createContact({ displayName: "Outage Contact", requestId: unique("outage") });

      // On the first failed attempt, the server is started again before the SDK decides.
      let attempts = 0;
      const failures = [];
      const observe = (next) => async (req) => {
        attempts += 1;
        try {
          return await next(req);
        } catch (e) {
          failures.push(ClientInfoError.from(e).code);
          if (attempts === 1) {
            server = await server.restart();
            servers.push(server);
          }
          throw e;
        }
      };
      const crm = transport.client({
        baseUrl: server.url,
        token: db.tokens.crm,
        interceptors: [observe],
        retry: { maxAttempts: 3, initialBackoffMs: 50 },
      });

      await server.kill();
      const card = await crm.getContact(contact.id);
      assert.equal(card.id, contact.id);
      assert.deepEqual(failures, [Code.Unavailable], "the first attempt found the server down");
      assert.equal(attempts, 2, "the read was repeated once the server was back");

      await server.kill();
      attempts = 0;
      failures.length = 0;
      let rejected;
      try {
        await crm.updateContact(contact.id, contact.version, { description: "during the outage" });
      } catch (e) {
        rejected = e;
      }
      assert.ok(rejected instanceof ClientInfoError, `the update failed: ${rejected}`);
      assert.equal(rejected.code, Code.Unavailable);
      assert.equal(rejected.isRetryable, true);
      assert.equal(attempts, 1, "an update is never repeated, though the server was back");
      const updated = await crm.updateContact(contact.id, contact.version, { description: "after the outage" });
      assert.equal(updated.description, "after the outage", "the first update never reached the server");
    });
  });
}
