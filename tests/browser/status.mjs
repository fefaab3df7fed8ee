// Headless-browser check of a job's live status message in the web chat.
//
// Usage: node tests/browser/status.mjs <conversation_url> <png> <job_id>
//
// Expects the conversation to show the job's status message ("working", with
// a Cancel button). Saves a screenshot, presses Cancel, then waits for the
// same message to turn "cancelled" without its button (the server updates it
// in place once the job is cancelled) and checks it is still one message.
// Prints "browser status: ok".
import { fail, launchPage } from './harness.mjs';

const [url, png, job] = process.argv.slice(2);
if (!url || !png || !job) {
  console.error('usage: node tests/browser/status.mjs <conversation_url> <png> <job_id>');
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

  const status = page.locator('.msg.system', { hasText: `Job #${job}**` });
  await status.first().waitFor({ state: 'visible', timeout: 10_000 }).catch(() => fail('no status message'));
  const text = await status.first().locator('.bubble').textContent();
  if (!text.includes('working')) fail(`the status says ${JSON.stringify(text)}`);
  const cancel = status.first().locator('button', { hasText: 'Cancel' });
  if ((await cancel.count()) !== 1) fail('the status shows no Cancel button');
  await page.screenshot({ path: png });
  await cancel.click();

  await page.waitForFunction((id) => [...document.querySelectorAll('.msg.system')]
    .some((el) => el.textContent.includes(`Job #${id}** · cancelled`) && !el.querySelector('button')), job,
  { timeout: 15_000 }).catch(() => fail('the status never showed its end state'));
  const count = await page.locator('.msg.system', { hasText: `Job #${job}**` }).count();
  if (count !== 1) fail(`${count} status messages shown, expected 1`);
  if (consoleErrors.length) fail(`the page logged errors: ${consoleErrors.join('; ')}`);
  console.log('browser status: ok');
}

try {
  await main();
  await browser.close();
  process.exit(0);
} catch (e) {
  console.error(`browser status: FAILED: ${e.isCheck ? e.message : (e.stack || e.message || e)}`);
  for (const line of consoleErrors) console.error(`  ${line}`);
  if (page) await page.screenshot({ path: png }).catch(() => {});
  if (browser) await browser.close().catch(() => {});
  process.exit(1);
}
