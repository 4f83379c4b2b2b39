// The customer portal on a phone, as issue 11 says: see the balance, pay, see the balance change. And the
// refusals: a wrong password is answered with the reason, and a customer opening the console lands in the portal.
//
// BROWSER_PARAMS: base, artifacts, chromium, username, password, amount, provider, paid_timeout_ms.
// Result: the login refusal's text, the balance before and after as the page shows them (decimal strings,
// compared by the test), the order the pay page created and the states it went through.
import { StepFailed, scenario } from "./lib.mjs";

const PHONE = { viewport: { width: 375, height: 812 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 };
const ORDER_PAGE = /\/portal\/pay\/([^/?#]+)$/;
const UNPAID_END = new Set(["expired", "failed", "cancelled"]);

await scenario(async (run) => {
  const p = run.p;
  const page = await run.open(PHONE);

  await run.step("login-page", async () => {
    await page.goto(`${p.base}/portal/login`);
    await run.visible("username");
  });

  const refusal = await run.step("wrong-password", async () => {
    await run.testId("username").fill(p.username);
    await run.testId("password").fill(`${p.password}-wrong`);
    await run.testId("login-submit").tap();
    const error = await run.visible("login-error");
    if (!/\/portal\/login/.test(page.url())) throw new StepFailed(`a wrong password left the login page (${page.url()})`);
    return (await error.innerText()).trim();
  });

  const before = await run.step("home", async () => {
    await run.testId("username").fill(p.username);
    await run.testId("password").fill(p.password);
    await run.testId("login-submit").tap();
    await page.waitForURL(/\/portal\/home$/).catch(() => {
      throw new StepFailed(`not taken to /portal/home after logging in (at ${page.url()})`);
    });
    await run.visible("balance");
    const amount = await run.until("the balance's data-amount", () => run.attribute("balance", "data-amount"), (a) => !!a);
    const state = await run.until("the balance state's data-state", () => run.attribute("balance-state", "data-state"), (s) => !!s);
    // The supply state loads on its own; waited for only so that the screenshot shows it.
    await run.testId("supply").first().waitFor({ timeout: 10_000 }).catch(() => {});
    return { amount, state };
  });

  const sentBack = await run.step("console-refused", async () => {
    await page.goto(`${p.base}/console/overview`);
    await page.waitForURL(/\/portal\//).catch(() => {
      throw new StepFailed(`a customer opening /console/overview was not sent to the portal (at ${page.url()})`);
    });
    await run.visible("balance");
    return new URL(page.url()).pathname;
  });

  await run.step("pay-form", async () => {
    await (await run.visible("tab-pay")).tap();
    await page.waitForURL(/\/portal\/pay$/);
    await (await run.visible("pay-amount")).fill(p.amount);
    const provider = run.testId("pay-provider");
    if ((await provider.count()) > 0 && p.provider) {
      const offered = await provider.locator("option").evaluateAll((options) => options.map((o) => o.value));
      if (!offered.includes(p.provider)) throw new StepFailed(`pay-provider offers ${JSON.stringify(offered)}, not ${p.provider}`);
      await provider.selectOption(p.provider);
    }
  });

  const orderId = await run.step("sandbox-checkout", async () => {
    await run.testId("pay-submit").tap();
    await page.waitForURL(ORDER_PAGE).catch(() => {
      throw new StepFailed(`pay-submit did not lead to /portal/pay/<order> (at ${page.url()})`);
    });
    await run.visible("sandbox-confirm");
    return decodeURIComponent(ORDER_PAGE.exec(new URL(page.url()).pathname)[1]);
  });

  const orderStates = [];
  await run.step("paid", async () => {
    await run.testId("sandbox-confirm").tap();
    await run.until("the order paid", () => run.attribute("order-state", "data-state"), (s) => s === "paid",
      { timeout: p.paid_timeout_ms ?? 60_000, seen: orderStates,
        fail: (s) => (UNPAID_END.has(s) ? `the order ended ${s}` : null) });
  });

  const after = await run.step("balance-changed", async () => {
    await (await run.visible("back-home")).tap();
    await page.waitForURL(/\/portal\/home$/);
    await run.visible("balance");
    const amount = await run.until("the balance changed", () => run.attribute("balance", "data-amount"),
      (a) => !!a && a !== before.amount);
    return { amount, state: await run.attribute("balance-state", "data-state") };
  });

  return { login_error: refusal, console_sent_to: sentBack, balance_before: before.amount, balance_state_before: before.state,
    order_id: orderId, order_states: orderStates, balance_after: after.amount, balance_state_after: after.state };
});
