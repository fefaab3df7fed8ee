// Headless-browser check of a job's live status message in the web chat.
//
// Usage: node tests/browser/status.mjs <conversation_url> <png> <job_id>
//
// Expects the conversation to show the job's status message ("working", with
// a Cancel button; its Markdown rendered: "Job #N" bold). Saves a
// screenshot, presses Cancel, then waits for the same message to turn
// "cancelled" without its button (the server updates it in place once the
// job is cancelled; the live stream brings the change, no reload) and checks
// it is still one message.
// Prints "browser status: ok".
import { fail, runCheck } from './harness.mjs';

await runCheck('status', '<conversation_url> <png> <job_id>', async ({ page, args }) => {
  const [url, png, job] = args;
  const status = page.locator('.msg.system', { hasText: `Job #${job} ·` });
  await status.first().waitFor({ state: 'visible', timeout: 10_000 }).catch(() => fail('no status message'));
  const text = await status.first().locator('.bubble').textContent();
  if (!text.includes('working')) fail(`the status says ${JSON.stringify(text)}`);
  const bold = await status.first().locator('.bubble strong').first().textContent().catch(() => '');
  if (bold !== `Job #${job}`) fail(`the status's Markdown is not rendered (bold: ${JSON.stringify(bold)})`);
  const cancel = status.first().locator('.notice-actions button', { hasText: 'Cancel' });
  if ((await cancel.count()) !== 1) fail('the status shows no Cancel button');
  await page.screenshot({ path: png });
  await cancel.click();

  await page.waitForFunction((id) => [...document.querySelectorAll('.msg.system')]
    .some((el) => el.textContent.includes(`Job #${id} · cancelled`) && !el.querySelector('.notice-actions')), job,
  { timeout: 15_000 }).catch(() => fail('the status never showed its end state'));
  const count = await page.locator('.msg.system', { hasText: `Job #${job} ·` }).count();
  if (count !== 1) fail(`${count} status messages shown, expected 1`);
});
