// Headless-browser check of a code run's branch buttons in the web chat.
//
// Usage: node tests/browser/branches.mjs <conversation_url> <png> <branch>
//
// Expects the conversation to show the run's result with "Merge into main",
// "Push" and "Discard" buttons. Saves a screenshot, presses Merge, then waits
// for the merge's answer to appear as a new notice (the server runs the
// merge) without a reload. Prints "browser branches: ok".
import { fail, runCheck } from './harness.mjs';

await runCheck('branches', '<conversation_url> <png> <branch>', async ({ page, args }) => {
  const [url, png, branch] = args;
  const result = page.locator('.msg.system', { hasText: branch }).filter({ has: page.locator('.notice-actions button') });
  await result.first().waitFor({ state: 'visible', timeout: 10_000 }).catch(() => fail('no result with buttons'));
  const labels = await result.first().locator('.notice-actions button').allTextContents();
  if (labels.join('|') !== '✅ Merge into main|⬆️ Push|🗑 Discard') fail(`the buttons are ${JSON.stringify(labels)}`);
  await page.screenshot({ path: png });
  await result.first().locator('.notice-actions button', { hasText: 'Merge into main' }).click();

  await page.waitForFunction((name) => [...document.querySelectorAll('.msg.system')]
    .some((el) => el.textContent.includes(`Merged ${name} into main`)), branch, { timeout: 30_000 })
    .catch(() => fail('the merge was never reported'));
});
