// Shared by the browser checks: launching Debian's Chromium headless the way
// this machine needs it, collecting the page's console errors, and marking a
// failed check (as opposed to a crash) so the caller can report it plainly.
import { chromium } from 'playwright-core';

export function fail(reason) {
  const err = new Error(reason);
  err.isCheck = true;
  throw err;
}

// Opens a page at the given viewport; console and page errors are appended to
// `consoleErrors`. A `token` is stored as the web chat's bearer token first.
export async function launchPage({ width, height, token, consoleErrors }) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run',
      '--disable-dev-shm-usage',
    ],
  });
  const context = await browser.newContext({ viewport: { width, height } });
  if (token) {
    await context.addInitScript((tok) => localStorage.setItem('valor.token', tok), token);
  }
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  page.on('console', (msg) => { if (msg.type() === 'error') consoleErrors.push(`console: ${msg.text()}`); });
  page.on('pageerror', (err) => consoleErrors.push(`page error: ${err.message}`));
  return { browser, page };
}

// Runs one check end to end: `usage` names the arguments (all required);
// `check({ page, args, consoleErrors })` drives a 1100×760 page opened at
// args[0] (answered 2xx), and passing means no console errors either (unless
// `consoleErrorsFail` is false: a check that drops requests on purpose). Prints
// "browser <name>: ok" and exits 0, or the reason (and the console errors),
// saves a screenshot of the failure to args[1], and exits 1.
export async function runCheck(name, usage, check, { consoleErrorsFail = true } = {}) {
  const args = process.argv.slice(2);
  if (args.length < usage.split(' ').length || args.some((arg) => !arg)) {
    console.error(`usage: node tests/browser/${name}.mjs ${usage}`);
    process.exit(1);
  }
  const consoleErrors = [];
  let browser;
  let page;
  try {
    ({ browser, page } = await launchPage({ width: 1100, height: 760, consoleErrors }));
    const res = await page.goto(args[0], { waitUntil: 'load', timeout: 15_000 })
      .catch((e) => fail(`cannot open ${args[0]}: ${e.message}`));
    if (!res || !res.ok()) fail(`GET ${args[0]} answered ${res ? res.status() : 'nothing'}`);
    await check({ page, args, consoleErrors });
    if (consoleErrorsFail && consoleErrors.length) fail(`the page logged errors: ${consoleErrors.join('; ')}`);
    console.log(`browser ${name}: ok`);
    await browser.close();
    process.exit(0);
  } catch (e) {
    console.error(`browser ${name}: FAILED: ${e.isCheck ? e.message : (e.stack || e.message || e)}`);
    for (const line of consoleErrors) console.error(`  ${line}`);
    if (page) await page.screenshot({ path: args[1] }).catch(() => {});
    if (browser) await browser.close().catch(() => {});
    process.exit(1);
  }
}
