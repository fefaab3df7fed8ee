// Headless-browser check that the open conversation is live: what the test
// does on the server side shows up without a reload, within a time limit.
//
// Usage: node tests/browser/live.mjs <conversation_url> <desktop_png> <phone_png>
//
// Opens the conversation at 1280×800 and prints "live" once its event stream
// is connected. Then reads steps, one JSON line each on stdin, and answers
// "seen <label>" for each:
//   {"label", "at", "within", "selector", "text", "count"?}: an element
//     matching `selector` whose text contains `text` appears within `within`
//     ms of `at` (the server-side write, epoch ms); with `count`, exactly that
//     many such elements are shown (a message changed in place stays one);
//   {"label", "at", "within", "approval": "<tool>"}: the permission prompt
//     for that tool appears with its three buttons; Deny is pressed and the
//     prompt must go away within `within` ms of the press;
//   {"label": "done"}: screenshots at 1280×800 and 390×844, then
//     "browser live: ok".
import readline from 'node:readline';
import { fail, launchPage } from './harness.mjs';

const [url, desktopPng, phonePng] = process.argv.slice(2);
if (!url || !desktopPng || !phonePng) {
  console.error('usage: node tests/browser/live.mjs <conversation_url> <desktop_png> <phone_png>');
  process.exit(1);
}

const consoleErrors = [];
let browser;
let page;

async function waitFor(step) {
  const { selector, text, at, within } = step;
  const left = Math.max(at + within - Date.now(), 1);
  await page.waitForFunction(({ selector, text }) => [...document.querySelectorAll(selector)]
    .some((el) => el.textContent.includes(text)), { selector, text }, { timeout: left, polling: 50 })
    .catch(() => fail(`${step.label}: no ${selector} with ${JSON.stringify(text)} within ${within} ms ` +
      `(shown: ${JSON.stringify(shownText())})`));
  if (step.count !== undefined) {
    const count = await page.evaluate(({ selector, text }) => [...document.querySelectorAll(selector)]
      .filter((el) => el.textContent.includes(text)).length, { selector, text });
    if (count !== step.count) fail(`${step.label}: ${count} × ${selector} with ${JSON.stringify(text)}, expected ${step.count}`);
  }
}

let lastShown = '';
function shownText() { return lastShown.slice(-600); }

async function approval(step) {
  const card = page.locator('#approvals .approval', { hasText: step.approval });
  const left = Math.max(step.at + step.within - Date.now(), 1);
  await card.first().waitFor({ state: 'visible', timeout: left })
    .catch(() => fail(`${step.label}: no permission prompt for ${step.approval} within ${step.within} ms`));
  const labels = await card.first().locator('button').allTextContents();
  if (labels.join('|') !== 'Allow once|Allow for this run|Deny') fail(`${step.label}: buttons ${labels.join(', ')}`);
  await page.screenshot({ path: desktopPng });
  const pressed = Date.now();
  await card.first().locator('button[data-answer="deny"]').click();
  await page.waitForFunction(() => document.getElementById('approvals').hidden, null,
    { timeout: Math.max(pressed + step.within - Date.now(), 1) })
    .catch(() => fail(`${step.label}: the prompt stayed after Deny`));
}

async function main() {
  ({ browser, page } = await launchPage({ width: 1280, height: 800, consoleErrors }));
  const res = await page.goto(url, { waitUntil: 'load', timeout: 15_000 })
    .catch((e) => fail(`cannot open ${url}: ${e.message}`));
  if (!res || !res.ok()) fail(`GET ${url} answered ${res ? res.status() : 'nothing'}`);
  await page.waitForFunction(() => document.body.dataset.live === 'true', null, { timeout: 10_000 })
    .catch(() => fail('the conversation\'s event stream never connected'));
  console.log('live');

  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    const step = JSON.parse(line);
    lastShown = await page.evaluate(() => document.getElementById('messages').innerText);
    if (step.label === 'done') break;
    if (step.approval) await approval(step);
    else await waitFor(step);
    if (consoleErrors.length) fail(`the page logged errors: ${consoleErrors.join('; ')}`);
    console.log(`seen ${step.label}`);
  }
  await page.screenshot({ path: desktopPng });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(600); // the sidebar slides away at phone width
  await page.screenshot({ path: phonePng });
  if (consoleErrors.length) fail(`the page logged errors: ${consoleErrors.join('; ')}`);
  console.log('browser live: ok');
}

try {
  await main();
  await browser.close();
  process.exit(0);
} catch (e) {
  console.log(`browser live: FAILED: ${e.isCheck ? e.message : (e.stack || e.message || e)}`);
  for (const line of consoleErrors) console.log(`  ${line}`);
  if (page) await page.screenshot({ path: desktopPng }).catch(() => {});
  if (browser) await browser.close().catch(() => {});
  process.exit(1);
}
