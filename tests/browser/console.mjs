// The operator console, as issue 11 says: log in, find a meter, see its curve, close its valve, see the command
// confirmed; and switch the language to English and back.
//
// BROWSER_PARAMS: base, artifacts, chromium, username, password, meter_id, note, confirm_timeout_ms.
// Result: the texts before/after the language switch, the curve's point count, every state the newest
// command showed (in order), and the command ids listed in the live panel.
import { StepFailed, scenario } from "./lib.mjs";

const FINAL = new Set(["confirmed", "failed", "expired", "cancelled"]);
const UUID = /^command-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;

await scenario(async (run) => {
  const p = run.p;
  const page = await run.open({ viewport: { width: 1280, height: 900 } });
  const meterPath = `/console/meters/${encodeURIComponent(p.meter_id)}`;

  await run.step("login-page", async () => {
    await page.goto(`${p.base}/console/login`);
    await run.visible("username");
  });

  await run.step("overview", async () => {
    await run.testId("username").fill(p.username);
    await run.testId("password").fill(p.password);
    await run.testId("login-submit").click();
    await page.waitForURL(/\/console\/overview$/).catch(async () => {
      const refused = (await run.testId("login-error").count()) ? await run.testId("login-error").innerText() : "";
      throw new StepFailed(`not taken to /console/overview after logging in (at ${page.url()}) ${refused}`.trim());
    });
    await run.visible("nav-meters");
    // The morning figures come from three services; each card group appears once its service answered.
    for (const id of ["meters-online", "readings-today", "collections-today"]) await run.visible(id);
  });

  // The language: the same navigation entry reads differently in English, and as before once switched back.
  const language = await run.step("english", async () => {
    const nav = run.testId("nav-meters");
    const before = (await nav.innerText()).trim();
    await run.testId("locale").selectOption("en");
    const english = await run.until("the menu in English", async () => (await nav.innerText()).trim(), (t) => t && t !== before);
    const lang = await page.evaluate(() => document.documentElement.lang);
    return { before, english, lang_attribute: lang };
  });
  await run.step("chinese-again", async () => {
    const nav = run.testId("nav-meters");
    await run.testId("locale").selectOption("zh-CN");
    language.after = await run.until("the menu back in Chinese", async () => (await nav.innerText()).trim(), (t) => t === language.before);
  });

  await run.step("meters", async () => {
    await run.testId("nav-meters").click();
    await page.waitForURL(/\/console\/meters$/);
    await run.visible("meter-search");
  });

  await run.step("search", async () => {
    await run.testId("meter-search").fill(p.meter_id);
    await run.testId("meter-search").press("Enter");
    await run.visible(`meter-row-${p.meter_id}`);
  });

  const points = await run.step("meter-curve", async () => {
    // Where an operator clicks: the row's first cell, the meter id (the gateway cell links to the gateway).
    await run.testId(`meter-row-${p.meter_id}`).locator("td").first().click();
    await page.waitForURL((url) => url.pathname === meterPath).catch(() => {
      throw new StepFailed(`the row did not open /console/meters/${p.meter_id} (at ${page.url()})`);
    });
    await run.visible("meter-curve");
    const drawn = await run.until("the curve's data-points > 0", () => run.attribute("meter-curve", "data-points"),
      (n) => Number.parseInt(n ?? "0", 10) > 0, { timeout: 60_000 });
    return Number.parseInt(drawn, 10);
  });

  await run.step("valve-close-dialog", async () => {
    await (await run.visible("command-valve_close")).click();
    await (await run.visible("command-note")).fill(p.note);
  });

  const states = [];
  await run.step("command-sent", async () => {
    await run.testId("command-confirm").click();
    await run.visible("latest-command-state");
  });
  const finalState = await run.step("command-confirmed", async () =>
    run.until("the newest command confirmed", () => run.attribute("latest-command-state", "data-state"),
      (s) => s === "confirmed",
      { timeout: p.confirm_timeout_ms ?? 60_000, every: 200, seen: states,
        fail: (s) => (FINAL.has(s) && s !== "confirmed" ? `it ended ${s}` : null) }));

  const listed = await run.testId(/^command-[0-9a-f-]{36}$/).evaluateAll((rows) =>
    rows.map((row) => ({ testid: row.getAttribute("data-testid"), state: row.getAttribute("data-state") })));
  const commands = listed.filter((row) => UUID.test(row.testid ?? ""))
    .map((row) => ({ command_id: UUID.exec(row.testid)[1], state: row.state }));
  const shownText = (await run.testId("latest-command-state").innerText()).trim();

  return { language, points, final_state: finalState, states_seen: states, latest_state_text: shownText, commands };
});
