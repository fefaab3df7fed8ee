// Headless-browser check of a code run's branch buttons in the web chat.
//
// Usage: node tests/browser/branches.mjs <conversation_url> <png> <branch>
//
// Expects the conversation to show the run's result with "Merge into main",
// "Push" and "Discard" buttons. Saves a screenshot, presses Merge, then waits
// for the merge's answer to appear as a new notice (the server runs the
// merge) without a reload. Prints "browser branches: ok".
import { fail, launchPage } from './harness.mjs';

const [url, png, branch] = process.argv.slice(2);
if (!url || !png || !branch) {
  console.error('usage: node tests/browser/branches.mjs <conversation_url> <png> <branch>');
  process.exit(1);
}

const consoleErrors = [];
let browser;
let page;

async function main() {
  ({ browser, page } = await launchPage({ width: 1100, height: 760, consoleErrors }));
  const res = await page.goto(url, { waitUntil: 'load', timeout: 15_000 })
    .catch((e) => fail(`cannot open ${url}: ${e.message}`));
  if (!res || !res.ok()) fail(`GET ${url} answered ${res ? res.status() : 'nothing'}`);

  const result = page.locator('.msg.system', { hasText: branch }).filter({ has: page.locator('button') });
  await result.first().waitFor({ state: 'visible', timeout: 10_000 }).catch(() => fail('no result with buttons'));
  const labels = await result.first().locator('button').allTextContents();
  if (labels.join('|') !== '✅ Merge into main|⬆️ Push|🗑 Discard') fail(`the buttons are ${JSON.stringify(labels)}`);
  await page.screenshot({ path: png });
  await result.first().locator('button', { hasText: 'Merge into main' }).click();

  await page.waitForFunction((name) => [...document.querySelectorAll('.msg.system')]
    .some((el) => el.textContent.includes(`Merged \`${name}\` into \`main\``)), branch, { timeout: 30_000 })
    .catch(() => fail('the merge was never reported'));
  if (consoleErrors.length) fail(`the page logged errors: ${consoleErrors.join('; ')}`);
  console.log('browser branches: ok');
}

try {
  await main();
  await browser.close();
  process.exit(0);
} catch (e) {
  console.error(`browser branches: FAILED: ${e.isCheck ? e.message : (e.stack || e.message || e)}`);
  for (const line of consoleErrors) console.error(`  ${line}`);
  if (page) await page.screenshot({ path: png }).catch(() => {});
  if (browser) await browser.close().catch(() => {});
  process.exit(1);
}
