// The real server for the tests, black-box through its command line: a fresh PostgreSQL
// database per suite (`migrate`, then `admin create-domain`, `create-user`, `mint-token`), and
// servers on it (`--listen 127.0.0.1:PORT --log-json`; the bound address is read from the log
// line "serving"), stopped and started again on the same port when a test needs an outage.
//
// The binary: $CLIENT_INFO_SERVER_BIN (the Rust test wrapper passes Cargo's), else
// <repo>/target/debug/client-info-server-under-test. PostgreSQL: 127.0.0.1:5432, user postgres,
// trust auth.

import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
/** The repository's root. */
export const REPO = path.resolve(here, "../../../..");
const BIN = process.env.CLIENT_INFO_SERVER_BIN || path.join(REPO, "target/debug/client-info-server-under-test");
/** How long a server may take to say "serving". */
const START_TIMEOUT_MS = 30_000;

const running = new Set();
process.on("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

/** Runs `$BIN args...` against the database; its trimmed stdout. */
async function cli(env, args) {
  try {
    const { stdout } = await run(BIN, args, { env, timeout: 60_000 });
    return stdout.trim();
  } catch (e) {
    throw new Error(`${path.basename(BIN)} ${args.join(" ")} failed: ${e.stderr || e.message}`);
  }
}

/**
 * A fresh database with a domain (region GB) and three users: routing (`interactions.route`),
 * an agent (`interactions.handle`, `contacts.read`) and a CRM service (`contacts.read`,
 * `contacts.write`), each with a token. `drop()` removes the database.
 */
export async function createTestDatabase(label) {
  if (!existsSync(BIN)) {
    throw new Error(`no server binary at ${BIN}: cargo build -p client-info-tests --bin client-info-server-under-test, or set CLIENT_INFO_SERVER_BIN`);
  }
  const name = `ts_sdk_${label}_${process.pid}_${randomBytes(4).toString("hex")}`;
  const env = {
    ...process.env,
    DATABASE_URL: `postgres://postgres@127.0.0.1/${name}`,
    CLIENT_INFO_JWT_SECRET: randomBytes(32).toString("hex"),
  };
  await cli(env, ["migrate"]);
  const domainId = await cli(env, ["admin", "create-domain", name, "--region", "GB", "--fallback-digits", "0"]);
  const user = (who) => cli(env, ["admin", "create-user", "--domain", domainId, who]);
  const token = (userId, permissions) =>
    cli(env, ["admin", "mint-token", "--domain", domainId, "--user", userId, "--permissions", permissions, "--ttl", "2h"]);
  const [routingId, agentId, crmId] = [await user("Routing"), await user("Alice Agent"), await user("CRM")];
  return {
    name,
    env,
    domainId: BigInt(domainId),
    agentId: BigInt(agentId),
    tokens: {
      routing: await token(routingId, "interactions.route"),
      agent: await token(agentId, "interactions.handle,contacts.read"),
      crm: await token(crmId, "contacts.read,contacts.write"),
    },
    /** Starts a server on this database (on `port`, or any free one). */
    serve: (port = 0) => TestServer.start(env, port),
    async drop() {
      await run("psql", ["-h", "127.0.0.1", "-U", "postgres", "-q", "-c", `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`]);
    },
  };
}

/** One server process. */
export class TestServer {
  constructor(env, child, port, log) {
    this.env = env;
    this.child = child;
    this.port = port;
    this.log = log;
    this.url = `http://127.0.0.1:${port}`;
  }

  /** Starts the binary and waits for its "serving" log line. */
  static start(env, port = 0) {
    const child = spawn(BIN, ["--listen", `127.0.0.1:${port}`, "--log-json"], {
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    running.add(child);
    const log = [];
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`the server did not say "serving" in ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
      const fail = (e) => {
        clearTimeout(timer);
        child.kill("SIGKILL");
        reject(new Error(`${e.message}\n${log.slice(-20).join("\n")}`));
      };
      for (const stream of [child.stdout, child.stderr]) {
        createInterface({ input: stream }).on("line", (line) => {
          log.push(line);
          if (log.length > 500) log.shift();
          let entry;
          try {
            entry = JSON.parse(line);
          } catch {
            return;
          }
          if (entry.fields?.message === "serving" && entry.fields.local_addr) {
            clearTimeout(timer);
            const bound = Number(entry.fields.local_addr.split(":").pop());
            resolve(new TestServer(env, child, bound, log));
          }
        });
      }
      child.on("exit", (code, signal) => {
        running.delete(child);
        fail(new Error(`the server exited (${code ?? signal}) before serving`));
      });
    });
  }

  /** Kills the process at once (SIGKILL: no goodbye to its clients) and waits for it to end. */
  async kill() {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    this.child.kill("SIGKILL");
    await exited;
  }

  /** A new server on the same database and port (after `kill`). */
  restart() {
    return TestServer.start(this.env, this.port);
  }
}
