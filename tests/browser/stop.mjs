// Headless-browser check of Stop in the web chat.
//
// Usage: node tests/browser/stop.mjs <base_url> <png> <question>
//
// Sends <question> (the model answers slowly), presses Stop once the answer
// has begun, and checks the answer ends, marked stopped, with Send back.
// Prints "browser stop: ok".
import { fail, runCheck } from './harness.mjs';

await runCheck('stop', '<base_url> <png> <question>', async ({ page, args }) => {
  const [url, png, question] = args;
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
});
