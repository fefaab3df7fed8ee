// The README's screenshots: the web chat with a real conversation (a
// Markdown answer and a job's notices) and the Status tab, at 1280×800.
//
// Usage: node tests/browser/screenshots.mjs <base_url> <chat_png> <status_png>
//
// Expects valor at <base_url> with a model stand-in loaded with
// tests/fixtures/screenshots/aimock.json and at least one job worker:
// asks "where are we with the launch", waits for the Markdown answer and
// for the queued job to finish and post its result, saves <chat_png>; opens
// the Status tab, waits for its charts, saves <status_png>. Each must be under 200 KB. Prints
// "browser screenshots: ok". Run by scripts/screenshots.sh (real binary,
// into docs/screenshots/) and by tests/browser.rs (into tests/output/).
import { mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { fail, runCheck } from './harness.mjs';

const QUESTION = 'Hi! Where are we with the launch? Please also go through the beta feedback in the background.';
const MAX_BYTES = 200 * 1024;

await runCheck('screenshots', '<base_url> <chat_png> <status_png>', async ({ page, args }) => {
  const [baseUrl, chatPng, statusPng] = args;
  for (const png of [chatPng, statusPng]) mkdirSync(dirname(png), { recursive: true });
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.waitForFunction(() => document.body.dataset.ready === 'true', null, { timeout: 10_000 })
    .catch(() => fail('the page did not finish loading'));
  await page.locator('#composer-input').fill(QUESTION);
  await page.locator('#send-btn').click();
  await page.waitForFunction(() => [...document.querySelectorAll('.msg.assistant .bubble')]
    .some((el) => el.textContent.includes('Code freeze')), null, { timeout: 30_000 })
    .catch(() => fail('the Markdown answer never arrived'));
  await page.waitForFunction(() => document.body.dataset.busy !== 'true', null, { timeout: 15_000 })
    .catch(() => fail('the turn never ended'));

  // The job runs on the server's worker; its result lands in the conversation.
  const deadline = Date.now() + 30_000;
  for (;;) {
    const jobs = await page.evaluate(async () => (await fetch('/api/jobs')).json());
    const job = (jobs.jobs || [])[0];
    if (job && job.status === 'succeeded') break;
    if (job && (job.status === 'failed' || job.status === 'cancelled')) fail(`the job ${job.status}: ${job.error}`);
    if (Date.now() > deadline) fail(`the job did not finish: ${JSON.stringify(job)}`);
    await page.waitForTimeout(250);
  }
  const notice = () => page.locator('.msg.system', { hasText: '14 testers answered' }).first();
  // Live where the page streams notices; otherwise the conversation is opened again.
  const live = await notice().waitFor({ timeout: 4_000 }).then(() => true, () => false);
  if (!live) {
    const id = await page.locator('#main').getAttribute('data-conversation-id');
    await page.goto(`${baseUrl.replace(/\/?$/, '/')}#c/${encodeURIComponent(id)}`, { waitUntil: 'load' });
    await page.reload({ waitUntil: 'load' });
    await notice().waitFor({ timeout: 10_000 }).catch(() => fail('the job\'s result is not in the conversation'));
  }
  await page.locator('#composer-input').fill('');
  await page.mouse.move(0, 0);
  // The question at the top, then the answer, the job's status and its result.
  await page.locator('#messages').evaluate((el) => {
    const asked = [...el.querySelectorAll('.msg.user')].pop();
    el.scrollTop = asked ? asked.offsetTop - el.offsetTop - 16 : el.scrollHeight;
  });
  await page.waitForTimeout(300);
  await page.screenshot({ path: chatPng });

  await page.locator('#tab-status').click();
  await page.waitForFunction(() => document.querySelectorAll('#status-view svg.chart-svg polyline').length >= 4, null,
    { timeout: 15_000 }).catch(() => fail('the Status charts were not drawn'));
  const box = await page.locator('#metric-rss svg.chart-svg').boundingBox();
  await page.mouse.move(box.x + box.width * 0.6, box.y + box.height / 2);
  await page.locator('#metric-rss .chart-tip').waitFor({ timeout: 3_000 }).catch(() => fail('no tooltip'));
  await page.screenshot({ path: statusPng });

  for (const png of [chatPng, statusPng]) {
    const size = statSync(png).size;
    if (size > MAX_BYTES) fail(`${png} is ${Math.round(size / 1024)} KB, over 200 KB`);
    console.log(`${png}: ${Math.round(size / 1024)} KB`);
  }
});
