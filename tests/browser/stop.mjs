// Headless-browser check of Stop in the web chat.
//
// Usage: node tests/browser/stop.mjs <base_url> <png> <question>
//
// Sends <question> (the model answers slowly), presses Stop once the answer
// has begun, and checks the answer ends, marked stopped, with Send back.
// Then asks again and stops that answer from elsewhere (another client's
// `POST /api/turns/{id}/cancel`): it is marked stopped too, from the turn's
// `done`, not from this tab's own button. Prints "browser stop: ok".
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

  // Stopped by someone else: this tab never pressed Stop.
  await page.locator('#composer-input').fill(`${question} once more`);
  await page.locator('#send-btn').click();
  await page.waitForFunction(() => document.querySelectorAll('.msg.assistant').length >= 2
    && document.querySelectorAll('.msg.assistant')[1].querySelector('.bubble .text')?.textContent.trim().length > 0,
  null, { timeout: 15_000 }).catch(() => fail('the second answer never began'));
  const cancelled = await page.evaluate(async () => {
    const list = await (await fetch('/api/conversations')).json();
    const id = list.conversations[0].id;
    const turns = await (await fetch(`/api/conversations/${id}/turns`)).json();
    const running = turns.turns.find((t) => t.status === 'running');
    if (!running) return 'no running turn';
    const res = await fetch(`/api/turns/${running.id}/cancel`, { method: 'POST' });
    return res.status;
  });
  if (cancelled !== 202) fail(`cancelling from elsewhere answered ${cancelled}`);
  await page.waitForFunction(() => document.body.dataset.busy === 'false', null, { timeout: 10_000 })
    .catch(() => fail('a stop from elsewhere did not end the answer'));
  const second = await page.locator('.msg.assistant').last().textContent();
  if (!second.includes('stopped')) fail(`the answer stopped elsewhere is not marked: ${JSON.stringify(second.slice(-200))}`);
});
