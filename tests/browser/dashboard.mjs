// Headless-browser check of the web chat's Status and Jobs views.
//
// Usage: node tests/browser/dashboard.mjs <base_url> <status_png> <jobs_png>
//
// Expects the server to hold a running job with progress text "halfway
// through the notes" at 50 % and a queued job titled "Clean the inbox".
// Opens <base_url>#status: the health score, memory and a sparkline render
// from /api/status. Then the Jobs tab: both jobs are listed with their
// progress, "Cancel" on the queued job makes it cancelled, "Retry" queues it
// again. Saves a screenshot of each view and prints "browser dashboard: ok".
import { fail, launchPage } from './harness.mjs';

const [baseUrl, statusPng, jobsPng] = process.argv.slice(2);
if (!baseUrl || !statusPng || !jobsPng) {
  console.error('usage: node tests/browser/dashboard.mjs <base_url> <status_png> <jobs_png>');
  process.exit(1);
}

const consoleErrors = [];
let browser;
let page;

async function main() {
  ({ browser, page } = await launchPage({ width: 1280, height: 860, consoleErrors }));

  const res = await page.goto(`${baseUrl}#status`, { waitUntil: 'load', timeout: 15_000 })
    .catch((e) => fail(`cannot open ${baseUrl}: ${e.message}`));
  if (!res || !res.ok()) fail(`GET ${baseUrl} answered ${res ? res.status() : 'nothing'}`);

  // Status view: a numeric score, memory in MiB, a drawn sparkline, components.
  await page.waitForFunction(() => /^\d+$/.test(document.getElementById('status-score').textContent), null,
    { timeout: 10_000 }).catch(() => fail('the Status view never showed a numeric health score'));
  if (await page.locator('#main').isVisible()) fail('the chat is still visible in the Status view');
  const rss = await page.locator('#metric-rss .metric-value').textContent();
  if (!/^\d+(\.\d)? MiB$/.test(rss) || rss.startsWith('0.0')) fail(`memory shows ${JSON.stringify(rss)}`);
  if ((await page.locator('#metric-rss svg.spark polyline').count()) !== 1) fail('no memory sparkline was drawn');
  const parts = await page.locator('#status-parts li').count();
  if (parts !== 6) fail(`the score lists ${parts} components, expected 6`);
  const queue = await page.locator('#metric-queue .metric-value').textContent();
  if (queue !== '1 queued') fail(`the queue card shows ${JSON.stringify(queue)}, expected "1 queued"`);
  if ((await page.locator('#status-components li').count()) < 3) fail('the component list is empty');
  await page.screenshot({ path: statusPng, fullPage: true });

  // Jobs view: both jobs, live progress, cancel then retry.
  await page.locator('#tab-jobs').click();
  if ((await page.evaluate(() => location.hash)) !== '#jobs') fail('the Jobs tab did not set #jobs');
  await page.locator('#jobs-list .job-row').nth(1).waitFor({ timeout: 10_000 })
    .catch(() => fail('the Jobs view did not list two jobs'));
  const running = page.locator('#jobs-list .job-row[data-status="running"]');
  const progress = await running.locator('.progress-text').textContent();
  if (!progress.includes('50 %') || !progress.includes('halfway through the notes')) {
    fail(`the running job shows progress ${JSON.stringify(progress)}`);
  }
  const width = await running.locator('.progress-fill').evaluate((el) => el.style.width);
  if (width !== '50%') fail(`the progress bar is ${width} wide`);
  const queued = page.locator('#jobs-list .job-row', { hasText: 'Clean the inbox' });
  await queued.locator('button[data-action="cancel"]').click();
  await page.locator('#jobs-list .job-row[data-status="cancelled"]', { hasText: 'Clean the inbox' })
    .waitFor({ timeout: 5_000 }).catch(() => fail('cancelling did not show the job as cancelled'));
  await page.locator('#jobs-list .job-row', { hasText: 'Clean the inbox' }).locator('button[data-action="retry"]').click();
  await page.locator('#jobs-list .job-row[data-status="queued"]', { hasText: 'Clean the inbox' })
    .waitFor({ timeout: 5_000 }).catch(() => fail('retrying did not queue the job again'));
  await page.screenshot({ path: jobsPng, fullPage: true });

  // Back to the chat: the composer is there again.
  await page.locator('#tab-chat').click();
  if (!(await page.locator('#composer-input').isVisible())) fail('the Chat tab did not bring the chat back');
  if (consoleErrors.length) fail(`the page logged errors: ${consoleErrors.join('; ')}`);
  console.log('browser dashboard: ok');
}

try {
  await main();
  await browser.close();
  process.exit(0);
} catch (e) {
  console.error(`browser dashboard: FAILED: ${e.isCheck ? e.message : (e.stack || e.message || e)}`);
  for (const line of consoleErrors) console.error(`  ${line}`);
  if (page) await page.screenshot({ path: statusPng, fullPage: true }).catch(() => {});
  if (browser) await browser.close().catch(() => {});
  process.exit(1);
}
