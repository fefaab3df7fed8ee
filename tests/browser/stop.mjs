// Headless-browser check of Stop in the web chat.
//
// Usage: node tests/browser/stop.mjs <base_url> <png> <question>
//
// Sends <question> (the model answers slowly), presses Stop once the answer
// has begun, and checks the answer ends, marked stopped, with Send back.
// Prints "browser stop: ok".
import { fail, launchPage } from './harness.mjs';

const [url, png, question] = process.argv.slice(2);
if (!url || !png || !question) {
  console.error('usage: node tests/browser/stop.mjs <base_url> <png> <question>');
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
  await page.waitForFunction(() => document.body.dataset.ready === 'true', null, { timeout: 10_000 });
  await page.locator('#composer-input').fill(question);
  await page.locator('#send-btn').click();
  const stop = page.locator('#stop-btn');
  await stop.waitFor({ state: 'visible', timeout: 5_000 }).catch(() => fail('no Stop button while answering'));
  if (await page.locator('#send-btn').isVisible()) fail('Send is shown beside Stop');
  await page.waitForFunction(() => {
    const text = document.querySelector('.msg.assistant .bubble .text');
    return text && text.textContent.trim().length > 0;
  }, null, { timeout: 15_000 }).catch(() => fail('the answer never began'));
  await page.screenshot({ path: png });
  await stop.click();
  await page.waitForFunction(() => document.body.dataset.busy === 'false', null, { timeout: 10_000 })
    .catch(() => fail('Stop did not end the answer'));
  const meta = await page.locator('.msg.assistant').last().textContent();
  if (!meta.includes('stopped')) fail(`the stopped answer is not marked: ${JSON.stringify(meta.slice(-200))}`);
  if (!(await page.locator('#send-btn').isVisible()) || (await stop.isVisible())) fail('Send did not come back');
  if (await page.locator('.msg.error').count()) fail('a stop was shown as an error');
  if (consoleErrors.length) fail(`the page logged errors: ${consoleErrors.join('; ')}`);
  console.log('browser stop: ok');
}

try {
  await main();
  await browser.close();
  process.exit(0);
} catch (e) {
  console.error(`browser stop: FAILED: ${e.isCheck ? e.message : (e.stack || e.message || e)}`);
  for (const line of consoleErrors) console.error(`  ${line}`);
  if (page) await page.screenshot({ path: png }).catch(() => {});
  if (browser) await browser.close().catch(() => {});
  process.exit(1);
}
