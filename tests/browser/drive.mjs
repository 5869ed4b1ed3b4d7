// Drives headless Chromium for tests/api/browser.rs: one JSON command per line on stdin, one
// JSON answer per line on stdout ({"ok":true,"value":...} or {"ok":false,"error":"..."}).
// Elements are found as a user finds them: buttons by their accessible name, fields by their
// label, text by what it says, optionally within a CSS selector ("within"). Every wait has a
// timeout ("timeout" in ms, default 20000). Diagnostics go to stderr.
//
//   node drive.mjs --chromium /usr/bin/chromium --shots DIR
import { createInterface } from "node:readline";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, a, i, all) => (a.startsWith("--") ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), []),
);
const shots = args.shots ?? "screenshots";
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: args.chromium ?? "/usr/bin/chromium",
  headless: true,
  // The flags Debian's Chromium needs here: no sandbox as root, and no background traffic to
  // hosts this machine cannot reach.
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const pages = new Map();
const problems = [];

async function page(name = "main") {
  let p = pages.get(name);
  if (!p) {
    const context = await browser.newContext({ viewport: { width: 760, height: 900 }, deviceScaleFactor: 1 });
    p = await context.newPage();
    p.on("pageerror", (e) => problems.push(`${name}: page error: ${e.message}`));
    p.on("console", (m) => {
      // Failed requests while the test cuts the connection are expected; script errors are not.
      if (m.type() === "error" && !/net::ERR_|Failed to load resource/.test(m.text())) problems.push(`${name}: console: ${m.text()}`);
    });
    pages.set(name, p);
  }
  return p;
}

function scope(p, c) {
  return c.within ? p.locator(c.within).first() : p;
}

async function run(c) {
  const p = await page(c.page);
  const timeout = c.timeout ?? 20000;
  const s = scope(p, c);
  switch (c.op) {
    case "goto":
      await p.goto(c.url, { timeout });
      return null;
    case "fill":
      await s.getByLabel(c.label, { exact: true }).fill(c.value, { timeout });
      return null;
    case "click":
      await s.getByRole(c.role ?? "button", { name: c.name, exact: true }).click({ timeout });
      return null;
    case "press":
      await p.keyboard.press(c.key);
      return null;
    case "waitText":
      await s.getByText(c.text, { exact: false }).first().waitFor({ state: "visible", timeout });
      return null;
    case "waitGone":
      await s.getByText(c.text, { exact: false }).first().waitFor({ state: "hidden", timeout });
      return null;
    case "waitSelector":
      await p.locator(c.selector).first().waitFor({ state: c.state ?? "visible", timeout });
      return null;
    case "waitEnabled": {
      const want = c.enabled ?? true;
      const button = s.getByRole(c.role ?? "button", { name: c.name, exact: true });
      const until = Date.now() + timeout;
      for (;;) {
        if ((await button.count()) === 1 && (await button.isEnabled()) === want) return null;
        if (Date.now() > until) throw new Error(`${c.name}: not ${want ? "enabled" : "disabled"} within ${timeout} ms`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    case "text":
      return await p.locator(c.selector).first().innerText({ timeout });
    case "enabled":
      return await s.getByRole(c.role ?? "button", { name: c.name, exact: true }).isEnabled({ timeout });
    case "focused":
      return await p.evaluate(() => {
        const el = document.activeElement;
        return el ? { tag: el.tagName.toLowerCase(), text: (el.textContent ?? "").trim(), label: el.getAttribute("aria-label") } : null;
      });
    case "shot": {
      const path = join(shots, `${c.name}.png`);
      if (c.selector) await p.locator(c.selector).first().screenshot({ path, timeout });
      else await p.screenshot({ path, fullPage: true, timeout });
      return path;
    }
    case "problems":
      return problems;
    case "quit":
      await browser.close();
      process.stdout.write(JSON.stringify({ ok: true, value: null }) + "\n");
      process.exit(0);
    default:
      throw new Error(`unknown op ${c.op}`);
  }
}

process.stdout.write(JSON.stringify({ ok: true, value: "ready" }) + "\n");
const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  let answer;
  try {
    answer = { ok: true, value: await run(JSON.parse(line)) };
  } catch (e) {
    answer = { ok: false, error: String(e?.message ?? e).split("\n").slice(0, 6).join("\n") };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}
await browser.close();
