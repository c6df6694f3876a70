// The status page in headless Chromium, as a person would read it: `keel run` on the embedded
// venue (trading on it), the page loaded, and within a bound: every symbol's book shown synced,
// a number for loop lag, frames flowing, the overall status, and (with an ops token given in the
// address's fragment) the same page behind the token. Screenshots (desktop and phone) go to
// KEEL_ARTIFACTS (default target/ci-artifacts).
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";

const root = resolve(import.meta.dirname, "../..");
const keel = process.env.KEEL_BIN || join(root, "target/release/keel");
const artifacts = process.env.KEEL_ARTIFACTS || join(root, "target/ci-artifacts");
const browserPath = process.env.CHROMIUM || "/usr/bin/chromium";
const SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"];
const TOKEN = "page-test-token-7f3a";

const freePort = () =>
  new Promise((ok, fail) => {
    const s = createServer();
    s.on("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });

async function startKeel(name, env = {}) {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), `keel-page-${name}-`));
  // Strategies that act on any signal, so orders and fills show within seconds.
  const config = join(dir, "eager.toml");
  writeFileSync(config, "[strategy]\nconfidence_min = 0.0\n");
  const child = spawn(
    keel,
    ["run", "--auto-execute", "--duration", "120", "--db", join(dir, "keel.db"), "--ops-addr", `127.0.0.1:${port}`, "--config", config],
    { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] },
  );
  let log = "";
  child.stderr.on("data", (d) => (log += d));
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/health`);
      if (r.ok) break;
    } catch {}
    if (Date.now() > deadline) throw new Error(`keel did not answer /health within 30 s:\n${log}`);
    await new Promise((ok) => setTimeout(ok, 200));
  }
  return { port, child, dir, log: () => log };
}

function stop(k) {
  k.child.kill("SIGTERM");
  rmSync(k.dir, { recursive: true, force: true });
}

async function check(browser, url, shotName) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  const t0 = Date.now();
  await page.goto(url);
  // Every symbol's book synced, as the table shows it.
  await page.waitForFunction(
    (symbols) =>
      symbols.every((s) => document.querySelector(`#books tr[data-symbol="${s}"]`)?.dataset.state === "synced"),
    SYMBOLS,
    { timeout: 30_000 },
  );
  // A number for loop lag, frames arriving, and the overall status.
  await page.waitForFunction(
    () => /^\d+(\.\d+)?$/.test(document.getElementById("loop-lag").textContent) && Number(document.getElementById("fps").textContent) > 0,
    null,
    { timeout: 30_000 },
  );
  const seen = await page.evaluate(() => ({
    status: document.getElementById("status").textContent,
    lag: document.getElementById("loop-lag").textContent,
    fps: document.getElementById("fps").textContent,
    books: [...document.querySelectorAll("#books tbody tr")].map((r) => r.innerText.replace(/\s+/g, " ")),
    components: document.querySelectorAll("#components tbody tr").length,
    text: document.body.innerText,
  }));
  for (const s of SYMBOLS) {
    if (!seen.text.includes(s)) throw new Error(`${s} is not on the page`);
  }
  if (!["ok", "degraded"].includes(seen.status)) throw new Error(`status shows ${seen.status}`);
  if (seen.components < 5) throw new Error(`only ${seen.components} components shown`);
  if (errors.length) throw new Error(`the page threw: ${errors.join("; ")}`);
  console.log(`${shotName}: live data after ${Date.now() - t0} ms; status ${seen.status}, loop lag ${seen.lag} ms, ${seen.fps} frames/s`);
  for (const b of seen.books) console.log(`  ${b}`);
  mkdirSync(artifacts, { recursive: true });
  // For the pictures: a few chart points, and the first orders if the strategies trade soon.
  await page.waitForTimeout(3_000);
  await page
    .waitForFunction(() => document.querySelectorAll("#orders tbody tr td:not(.muted)").length > 0, null, { timeout: 20_000 })
    .then(() => console.log("  orders shown"))
    .catch(() => console.log("  no order within 20 s (the strategies did not trade yet)"));
  await page.screenshot({ path: join(artifacts, `${shotName}.png`), fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (overflow > 0) throw new Error(`on a phone the page is ${overflow} px wider than the screen`);
  await page.screenshot({ path: join(artifacts, `${shotName}-phone.png`), fullPage: true });
  await page.close();
}

const browser = await chromium.launch({
  executablePath: browserPath,
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
let failed = false;
const open = await startKeel("open");
try {
  await check(browser, `http://127.0.0.1:${open.port}/`, "status-page");
} catch (e) {
  failed = true;
  console.error(`status page: ${e.message}\n${open.log().slice(-4000)}`);
} finally {
  stop(open);
}
const guarded = await startKeel("token", { KEEL_OPS_TOKEN: TOKEN });
try {
  // Without the token the data is refused; with it in the fragment the page reads it.
  const refused = await fetch(`http://127.0.0.1:${guarded.port}/api/page`);
  if (refused.status !== 401) throw new Error(`/api/page without the token: HTTP ${refused.status}`);
  await check(browser, `http://127.0.0.1:${guarded.port}/#token=${TOKEN}`, "status-page-token");
} catch (e) {
  failed = true;
  console.error(`status page with a token: ${e.message}\n${guarded.log().slice(-4000)}`);
} finally {
  stop(guarded);
}
await browser.close();
if (failed) process.exit(1);
console.log(`status page: ok; screenshots in ${artifacts}`);
