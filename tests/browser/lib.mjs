// What every browser scenario shares: Debian's chromium driven by playwright-core, a fresh profile, a screenshot
// after every step, the browser's errors collected, and one JSON result on stdout (exit 1 with the reason).
//
// Parameters come as JSON in the environment variable BROWSER_PARAMS (not on argv: they carry a password, and
// argv is visible to every user of the machine). Common ones: base (the console's URL), artifacts (the folder
// for the screenshots), chromium (the executable), timeout_ms (a single wait).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";

// playwright-core is installed with the console's npm packages (`make web`), not next to these scripts: resolve
// it from there. Its CommonJS entry is what `require` loads.
const require = createRequire(new URL("../../services/console/web/package.json", import.meta.url));
const { chromium } = require("playwright-core");

export const LAUNCH_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export class StepFailed extends Error {}

export function params() {
  const text = process.env.BROWSER_PARAMS;
  if (!text) throw new StepFailed("BROWSER_PARAMS (a JSON object) is not set");
  return JSON.parse(text);
}

// One run of a scenario: the browser, its page, the steps done and what the browser complained about.
export class Run {
  constructor(p) {
    this.p = p;
    this.timeout = p.timeout_ms ?? 30_000;
    this.steps = [];
    this.current = "launch";
    this.consoleErrors = []; // console.error and failed resource loads: reported, not failing
    this.pageErrors = []; // uncaught exceptions and unhandled rejections in the page: a defect, the run fails
    this.serverErrors = []; // 5xx answers the pages received: a defect, the run fails
    this.shots = 0;
    mkdirSync(p.artifacts, { recursive: true });
  }

  async open(contextOptions = {}) {
    this.profile = mkdtempSync(join(tmpdir(), "amiflow-chromium-"));
    this.context = await chromium.launchPersistentContext(this.profile, {
      executablePath: this.p.chromium,
      headless: true,
      args: LAUNCH_ARGS,
      locale: "zh-CN",
      timezoneId: "Asia/Shanghai",
      ...contextOptions,
    });
    this.context.setDefaultTimeout(this.timeout);
    this.page = this.context.pages()[0] ?? (await this.context.newPage());
    this.page.on("console", (message) => {
      if (message.type() === "error") {
        this.consoleErrors.push({ step: this.current, text: message.text(), url: message.location().url });
      }
    });
    this.page.on("pageerror", (error) => this.pageErrors.push({ step: this.current, error: String(error.stack || error) }));
    this.page.on("response", (response) => {
      if (response.status() >= 500) {
        this.serverErrors.push({ step: this.current, status: response.status(), url: response.url() });
      }
    });
    return this.page;
  }

  // Run one step, then screenshot the page as the step left it (NN-name.png, in order).
  async step(name, work) {
    this.current = name;
    const started = Date.now();
    const outcome = await work(this.page);
    await this.shot(name);
    this.steps.push({ name, ms: Date.now() - started });
    return outcome;
  }

  async shot(name) {
    this.shots += 1;
    const file = join(this.p.artifacts, `${String(this.shots).padStart(2, "0")}-${name}.png`);
    await this.page.screenshot({ path: file, fullPage: true });
    return file;
  }

  testId(id) {
    return this.page.getByTestId(id);
  }

  // Poll `read` until `done(value)`; `fail(value)` (a reason) ends the wait at once. Returns the last value.
  async until(what, read, done, { timeout = this.timeout, every = 250, fail = () => null, seen = null } = {}) {
    const deadline = Date.now() + timeout;
    let value;
    for (;;) {
      value = await read().catch(() => undefined);
      if (seen && value !== undefined && seen.at(-1) !== value) seen.push(value);
      if (done(value)) return value;
      const reason = fail(value);
      if (reason) throw new StepFailed(`${what}: ${reason}`);
      if (Date.now() > deadline) {
        throw new StepFailed(`${what}: not within ${Math.round(timeout / 1000)} s (last seen: ${JSON.stringify(value ?? null)})`);
      }
      await this.page.waitForTimeout(every);
    }
  }

  // The element's attribute once the element is there (undefined while it is not).
  async attribute(id, name) {
    const element = this.testId(id);
    if ((await element.count()) === 0) return undefined;
    return (await element.first().getAttribute(name)) ?? undefined;
  }

  // Wait for a test id to be visible; a missing element fails with the id and the page it was expected on.
  async visible(id, timeout = this.timeout) {
    try {
      await this.testId(id).first().waitFor({ state: "visible", timeout });
    } catch {
      throw new StepFailed(`no visible [data-testid="${id}"] on ${this.page.url()} within ${Math.round(timeout / 1000)} s`);
    }
    return this.testId(id).first();
  }

  async close() {
    await this.context?.close().catch(() => {});
    if (this.profile) rmSync(this.profile, { recursive: true, force: true });
  }

  report(extra) {
    return {
      steps: this.steps,
      console_errors: this.consoleErrors,
      page_errors: this.pageErrors,
      server_errors: this.serverErrors,
      ...extra,
    };
  }
}

// Run a scenario: its result as one JSON line on stdout, exit 0; on failure the step, the reason and a
// screenshot (NN-failed-<step>.png), exit 1. Page errors and 5xx answers fail a scenario that otherwise passed.
export async function scenario(body) {
  let run;
  let result;
  let code = 0;
  try {
    run = new Run(params());
    const outcome = await body(run);
    const problems = [];
    if (run.pageErrors.length) problems.push(`${run.pageErrors.length} page error(s): ${run.pageErrors[0].error}`);
    if (run.serverErrors.length) {
      const first = run.serverErrors[0];
      problems.push(`${run.serverErrors.length} answer(s) 5xx, first ${first.status} ${first.url}`);
    }
    result = run.report({ ok: problems.length === 0, ...outcome });
    if (problems.length) {
      result.reason = problems.join("; ");
      code = 1;
    }
  } catch (error) {
    code = 1;
    const step = run?.current ?? "start";
    let screenshot = null;
    if (run?.page) screenshot = await run.shot(`failed-${step}`).catch(() => null);
    const reason = error instanceof StepFailed ? error.message : String(error.stack || error);
    result = { ...(run ? run.report({}) : {}), ok: false, step, reason, url: run?.page?.url() ?? null, screenshot };
  } finally {
    await run?.close();
  }
  const line = JSON.stringify(result);
  if (run) writeFileSync(join(run.p.artifacts, "result.json"), JSON.stringify(result, null, 2));
  process.stdout.write(`${line}\n`);
  process.exitCode = code;
}
