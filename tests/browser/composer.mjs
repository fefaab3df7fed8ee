// Headless-browser check of the composer's limits and failures.
//
// Usage: node tests/browser/composer.mjs <base_url> <png> <limit>
//
// Near the server's limit the composer counts characters; over it Send is off
// and Enter keeps the text; a send the network drops puts the text back and
// leaves no user bubble; a turn whose model fails shows its error once.
// Prints "browser composer: ok".
import { fail, runCheck } from './harness.mjs';

await runCheck('composer', '<base_url> <png> <limit>', async ({ page, args }) => {
  const [url, png, limitText] = args;
  const limit = Number(limitText);
  await page.waitForFunction(() => document.body.dataset.ready === 'true', null, { timeout: 10_000 })
    .catch(() => fail('the page did not finish loading'));
  const input = page.locator('#composer-input');
  const count = page.locator('#composer-count');

  await input.fill('x'.repeat(limit - 10));
  if (await count.isVisible()) fail('the counter shows far from the limit');
  await input.fill('x'.repeat(limit - 2));
  if ((await count.textContent()) !== `${limit - 2} / ${limit}`) fail(`near the limit: ${await count.textContent()}`);
  await input.fill('é'.repeat(limit + 5)); // characters, not bytes
  const over = await count.textContent();
  if (!over.includes('5 characters too long')) fail(`over the limit: ${JSON.stringify(over)}`);
  if (!(await page.locator('#send-btn').isDisabled())) fail('Send is enabled over the limit');
  await page.screenshot({ path: png });
  await input.press('Enter');
  if ((await input.inputValue()) !== 'é'.repeat(limit + 5)) fail('Enter lost the over-long text');
  if (await page.locator('.msg.user').count()) fail('an over-long message was shown as sent');

  // The network drops the send: the text is back in the composer, no user bubble stays.
  await page.route('**/api/messages', (route) => route.abort('connectionreset'));
  await input.fill('a message the network drops');
  await input.press('Enter');
  await page.locator('.msg.error').first().waitFor({ timeout: 10_000 }).catch(() => fail('no error for the dropped send'));
  await page.waitForFunction(() => document.body.dataset.busy === 'false', null, { timeout: 10_000 });
  if ((await input.inputValue()) !== 'a message the network drops') fail('the dropped text was not put back');
  if (await page.locator('.msg.user').count()) fail('the dropped message still shows as sent');
  await page.unroute('**/api/messages');
  await page.locator('.msg.error').evaluateAll((els) => els.forEach((el) => el.remove()));

  // The model fails: its error is shown once (not as reply text and again as an error).
  await input.fill('this turn fails at the model');
  await input.press('Enter');
  await page.waitForFunction(() => document.body.dataset.busy === 'false' && document.querySelector('.msg.error'),
    null, { timeout: 20_000 }).catch(() => fail('the failed turn never ended with an error'));
  const error = await page.locator('.msg.error .bubble').first().textContent();
  const shown = await page.evaluate((text) => [...document.querySelectorAll('.msg .bubble')]
    .filter((b) => b.textContent.includes(text.slice(0, 40))).length, error);
  if (shown !== 1) fail(`the error ${JSON.stringify(error)} is shown ${shown} times`);
  if ((await page.locator('.msg.error').count()) !== 1) fail('more than one error bubble');
}, { consoleErrorsFail: false }); // the dropped send logs a network error by design
