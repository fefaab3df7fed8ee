// Headless-browser check of conversation management in the web chat's sidebar.
//
// Usage: node tests/browser/conversations.mjs <base_url> <png>
//
// Expects conversations "Launch plan" (a message mentioning March) and
// "Budget", and one background (job) conversation. Checks: the background one
// is listed only on request; search finds by title and by message text (with
// a snippet) and says when nothing matches; rename and delete (confirmed)
// change the list. Prints "browser conversations: ok".
import { fail, launchPage } from './harness.mjs';

const [url, png] = process.argv.slice(2);
if (!url || !png) {
  console.error('usage: node tests/browser/conversations.mjs <base_url> <png>');
  process.exit(1);
}

const consoleErrors = [];
let browser;
let page;

const titles = () => page.locator('#conv-list .conv-row .conv-title').allTextContents();

async function waitForTitles(want, what) {
  await page.waitForFunction((expected) => {
    const got = [...document.querySelectorAll('#conv-list .conv-row .conv-title')].map((el) => el.textContent);
    return JSON.stringify(got.sort()) === JSON.stringify([...expected].sort());
  }, want, { timeout: 10_000 }).catch(async () => fail(`${what}: listed ${JSON.stringify(await titles())}`));
}

async function main() {
  ({ browser, page } = await launchPage({ width: 1100, height: 760, consoleErrors }));
  const res = await page.goto(url, { waitUntil: 'load', timeout: 15_000 })
    .catch((e) => fail(`cannot open ${url}: ${e.message}`));
  if (!res || !res.ok()) fail(`GET ${url} answered ${res ? res.status() : 'nothing'}`);
  await waitForTitles(['Launch plan', 'Budget'], 'at first');
  const background = page.locator('#conv-background');
  if (!(await background.textContent()).includes('Show 1 background conversation')) fail('no background toggle');
  await background.click();
  await waitForTitles(['Launch plan', 'Budget', 'job #7'], 'with background conversations');
  await background.click();
  await waitForTitles(['Launch plan', 'Budget'], 'background hidden again');

  const search = page.locator('#conv-search');
  await search.fill('march');
  await waitForTitles(['Launch plan'], 'searching a message word');
  const snippet = await page.locator('#conv-list .conv-snippet').first().textContent();
  if (!snippet.includes('[March]')) fail(`the snippet is ${JSON.stringify(snippet)}`);
  await page.screenshot({ path: png });
  await search.fill('budg');
  await waitForTitles(['Budget'], 'searching a title');
  await search.fill('zzzz');
  await waitForTitles([], 'searching nothing');
  if (!(await page.locator('#conv-empty').textContent()).includes('Nothing matches')) fail('no "Nothing matches"');
  await search.fill('');
  await waitForTitles(['Launch plan', 'Budget'], 'search cleared');

  page.once('dialog', (dialog) => dialog.accept('Launch (renamed)'));
  const launch = page.locator('#conv-list .conv-row', { hasText: 'Launch plan' });
  await launch.hover();
  await launch.locator('[data-action="rename"]').click();
  await waitForTitles(['Launch (renamed)', 'Budget'], 'after renaming');

  page.once('dialog', (dialog) => {
    if (!dialog.message().includes('Budget')) fail(`the confirmation says ${dialog.message()}`);
    dialog.accept();
  });
  const budget = page.locator('#conv-list .conv-row', { hasText: 'Budget' });
  await budget.hover();
  await budget.locator('[data-action="delete"]').click();
  await waitForTitles(['Launch (renamed)'], 'after deleting');
  if (consoleErrors.length) fail(`the page logged errors: ${consoleErrors.join('; ')}`);
  console.log('browser conversations: ok');
}

try {
  await main();
  await browser.close();
  process.exit(0);
} catch (e) {
  console.error(`browser conversations: FAILED: ${e.isCheck ? e.message : (e.stack || e.message || e)}`);
  for (const line of consoleErrors) console.error(`  ${line}`);
  if (page) await page.screenshot({ path: png }).catch(() => {});
  if (browser) await browser.close().catch(() => {});
  process.exit(1);
}
