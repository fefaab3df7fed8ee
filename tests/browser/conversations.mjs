// Headless-browser check of conversation management in the web chat's sidebar.
//
// Usage: node tests/browser/conversations.mjs <base_url> <png>
//
// Expects conversations "Launch plan" (a message mentioning March) and
// "Budget", and one background (job) conversation. Checks: the background one
// is listed only on request; search finds by title and by message text (with
// a snippet) and says when nothing matches; rename and delete (confirmed)
// change the list. Prints "browser conversations: ok".
import { fail, runCheck } from './harness.mjs';

let page;

const titles = () => page.locator('#conv-list .conv-row .conv-title').allTextContents();

async function waitForTitles(want, what) {
  await page.waitForFunction((expected) => {
    const got = [...document.querySelectorAll('#conv-list .conv-row .conv-title')].map((el) => el.textContent);
    return JSON.stringify(got.sort()) === JSON.stringify([...expected].sort());
  }, want, { timeout: 10_000 }).catch(async () => fail(`${what}: listed ${JSON.stringify(await titles())}`));
}

await runCheck('conversations', '<base_url> <png>', async ({ page: opened, args }) => {
  page = opened;
  const [url, png] = args;
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
});
