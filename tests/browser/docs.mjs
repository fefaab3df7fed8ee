// Headless-browser check of the API docs page.
//
// Usage: node tests/browser/docs.mjs <base_url>/docs <png>
//
// /docs renders /openapi.json: every path and method of the document is an
// entry; the "Event streams" box links POST /api/messages with its events;
// opening it shows the request examples, the JSON and SSE response
// examples and one row per server-sent event with example data. At 390 px
// nothing is wider than the screen. Saves a screenshot of the opened entry
// and prints "browser docs: ok".
import { fail, runCheck } from './harness.mjs';

await runCheck('docs', '<docs_url> <png>', async ({ page, args }) => {
  const [, png] = args;
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.locator('#ops details.op').first().waitFor({ timeout: 10_000 }).catch(() => fail('no operations rendered'));
  const doc = await page.evaluate(async () => (await fetch('/openapi.json')).json());
  const wanted = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of ['get', 'post', 'put', 'patch', 'delete']) if (item[method]) wanted.push([path, method]);
  }
  const shown = await page.evaluate(() => [...document.querySelectorAll('details.op')].map((el) => [el.dataset.path, el.dataset.method]));
  const missing = wanted.filter(([p, m]) => !shown.some(([sp, sm]) => sp === p && sm === m));
  if (missing.length) fail(`not on the page: ${JSON.stringify(missing)}`);
  if (wanted.length < 25) fail(`only ${wanted.length} operations in the document`);

  const streams = await page.locator('#streams').textContent();
  if (!streams.includes('POST /api/messages') || !streams.includes('turn_started') || !streams.includes('done')) {
    fail(`the event streams box says ${JSON.stringify(streams)}`);
  }
  await page.locator('#streams a', { hasText: 'POST /api/messages' }).click();
  const op = page.locator('details.op[data-path="/api/messages"][data-method="post"]');
  if (!(await op.evaluate((el) => el.open))) fail('the link did not open POST /api/messages');
  const events = await op.locator('table.events tr').evaluateAll((rows) => rows.map((r) => r.dataset.event));
  for (const name of ['turn_started', 'text_delta', 'tool_started', 'tool_finished', 'waiting', 'error', 'done']) {
    if (!events.includes(name)) fail(`the events table lacks ${name}: ${events}`);
  }
  const data = await op.locator('table.events tr[data-event="done"] pre').textContent();
  if (!data.startsWith('data: {') || !data.includes('"reply"')) fail(`the done event's example reads ${JSON.stringify(data)}`);
  const text = await op.textContent();
  for (const needle of ['Example request · Start a new conversation', 'Example response 200 · application/json',
    'Example response 200 · text/event-stream', 'event: turn_started']) {
    if (!text.includes(needle)) fail(`POST /api/messages lacks ${JSON.stringify(needle)}`);
  }
  await op.locator('table.events').scrollIntoViewIfNeeded();
  await page.screenshot({ path: png });

  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(200);
  const wide = await page.evaluate(() => {
    const over = document.scrollingElement.scrollWidth - window.innerWidth;
    const culprits = [...document.querySelectorAll('body *')].filter((el) => el.getBoundingClientRect().right > window.innerWidth + 0.5)
      .slice(0, 5).map((el) => `${el.tagName.toLowerCase()}.${el.className} "${el.textContent.slice(0, 30)}"`);
    return over > 0 ? `${over} px too wide: ${culprits.join(', ')}` : '';
  });
  if (wide) fail(`at 390 px the page is ${wide}`);
});
