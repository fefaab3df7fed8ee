// Headless-browser check of the web chat's Status and Jobs views.
//
// Usage: node tests/browser/dashboard.mjs <base_url>#status <status_png> <jobs_png>
//          <details_png> <status_phone_png> <jobs_phone_png>
//
// Expects the server to hold (tests/browser.rs `seed_jobs`): a succeeded
// claude_code run "Add a hello file to the shop" (2 files, branch
// valor/1-add-a-hello-file, $0.0123), a succeeded task "Draft the release
// notes", a running job at 50 % "halfway through the notes" and a queued job
// "Clean the inbox".
//
// Status at 1280×800: a numeric score inside its ring, memory in MiB, charts
// with clock labels on the time axis and units on the value axis, a tooltip
// on hover and with the arrow keys. Jobs: finished cards say how they ended
// (never "100 % — started working on it"), the running one its progress; a
// card opens its details by click and by keyboard, Esc and Back close them;
// Cancel then Retry on the queued job. Then the same at 390×844: no
// horizontal overflow of the page, the cards or clipped text, the score still
// inside its ring (also at 320, 760 and 1000 px, and with "100"). Saves the
// five screenshots and prints "browser dashboard: ok".
import { fail, runCheck } from './harness.mjs';

// The score's digits lie inside the ring's hole (the ring is 8 px wide).
async function scoreFits(page, label) {
  const fit = await page.evaluate(() => {
    const ring = document.getElementById('status-score').getBoundingClientRect();
    const range = document.createRange();
    range.selectNodeContents(document.getElementById('status-score-value'));
    const text = range.getBoundingClientRect();
    const cx = ring.left + ring.width / 2;
    const cy = ring.top + ring.height / 2;
    const hole = ring.width / 2 - 8;
    const corners = [[text.left, text.top], [text.right, text.top], [text.left, text.bottom], [text.right, text.bottom]];
    const far = Math.max(...corners.map(([x, y]) => Math.hypot(x - cx, y - cy)));
    return { far, hole, ring: [ring.width, ring.height], text: [text.width, text.height] };
  });
  if (fit.ring[0] < 60 || Math.abs(fit.ring[0] - fit.ring[1]) > 1) fail(`${label}: the ring is ${fit.ring.join('×')}`);
  if (!(fit.text[0] > 0) || fit.far > fit.hole) {
    fail(`${label}: the score (${fit.text.join('×')} px) reaches ${fit.far.toFixed(1)} px from the centre, the hole is ${fit.hole} px`);
  }
}

// The charts' time labels do not run into each other or out of their card.
async function labelsApart(page, label) {
  const bad = await page.evaluate(() => [...document.querySelectorAll('#status-view svg.chart-svg')].some((chart) => {
    const card = chart.closest('.card').getBoundingClientRect();
    const boxes = [...chart.querySelectorAll('text.chart-x, text.chart-y')].map((t) => t.getBoundingClientRect());
    const xs = [...chart.querySelectorAll('text.chart-x')].map((t) => t.getBoundingClientRect());
    return boxes.some((b) => b.left < card.left || b.right > card.right)
      || xs.some((a, i) => xs.slice(i + 1).some((b) => a.right > b.left && b.right > a.left));
  }));
  if (bad) fail(`${label}: chart axis labels overlap or leave their card`);
}

// Nothing wider than the viewport: the page, the view, each card and job row,
// and no text cut off with an ellipsis.
async function fitsWidth(page, view, label) {
  const problems = await page.evaluate((viewId) => {
    const out = [];
    const vw = window.innerWidth;
    const root = document.scrollingElement;
    if (root.scrollWidth > vw) out.push(`the page is ${root.scrollWidth} px wide`);
    const el = document.getElementById(viewId);
    for (const box of [el, ...el.querySelectorAll('.view-body, .main-head, .card, .job-row, .job-head, .metric, table')]) {
      const r = box.getBoundingClientRect();
      const name = box.id || box.className;
      if (r.right > vw + 0.5 || r.left < -0.5) out.push(`${name} spans ${r.left.toFixed(0)}–${r.right.toFixed(0)} px`);
      if (box.scrollWidth > box.clientWidth + 1 && getComputedStyle(box).overflowX !== 'auto') {
        out.push(`${name} holds ${box.scrollWidth} px in ${box.clientWidth} px`);
      }
    }
    for (const node of el.querySelectorAll('*')) {
      const style = getComputedStyle(node);
      if (style.textOverflow === 'ellipsis' && node.scrollWidth > node.clientWidth + 1) {
        out.push(`"${node.textContent.slice(0, 40)}" is cut off`);
      }
    }
    return out;
  }, view);
  if (problems.length) fail(`${label}: ${problems.join('; ')}`);
}

await runCheck('dashboard', '<base_url> <status_png> <jobs_png> <details_png> <status_phone_png> <jobs_phone_png>',
  async ({ page, args }) => {
    const [, statusPng, jobsPng, detailsPng, statusPhonePng, jobsPhonePng] = args;
    await page.setViewportSize({ width: 1280, height: 800 });

    // ---- Status: score, memory, charts with axes and a tooltip.
    await page.waitForFunction(() => /^\d+$/.test(document.getElementById('status-score').textContent), null,
      { timeout: 10_000 }).catch(() => fail('the Status view never showed a numeric health score'));
    if (await page.locator('#main').isVisible()) fail('the chat is still visible in the Status view');
    const rss = await page.locator('#metric-rss .metric-value').textContent();
    if (!/^\d+(\.\d)? MiB$/.test(rss) || rss.startsWith('0.0')) fail(`memory shows ${JSON.stringify(rss)}`);
    const memory = page.locator('#metric-rss svg.chart-svg');
    if ((await memory.locator('polyline').count()) !== 1) fail('no memory chart was drawn');
    const times = await memory.locator('text.chart-x').allTextContents();
    if (times.length < 2 || !times.every((t) => /^\d{2}:\d{2}(:\d{2})?$/.test(t))) fail(`the time axis reads ${JSON.stringify(times)}`);
    const values = await memory.locator('text.chart-y').allTextContents();
    if (values.length !== 3 || values[0] !== '0' || !values[2].endsWith(' MiB')) fail(`the memory axis reads ${JSON.stringify(values)}`);
    await labelsApart(page, '1280 px');
    for (const [card, unit] of [['metric-cpu', '%'], ['metric-turns', 'turns'], ['metric-queue', 'jobs']]) {
      const label = await page.locator(`#${card} text.chart-y`).last().textContent();
      if (!label.endsWith(` ${unit}`)) fail(`#${card}'s value axis reads ${JSON.stringify(label)}`);
    }
    const box = await memory.boundingBox();
    await page.mouse.move(box.x + box.width - 12, box.y + box.height / 2);
    const tip = page.locator('#metric-rss .chart-tip');
    await tip.waitFor({ state: 'visible', timeout: 3_000 }).catch(() => fail('hovering the memory chart shows no tooltip'));
    const tipText = await tip.textContent();
    if (!/^\d{2}:\d{2}:\d{2} · \d+(\.\d)? MiB$/.test(tipText)) fail(`the tooltip reads ${JSON.stringify(tipText)}`);
    await page.screenshot({ path: statusPng, fullPage: true });
    await page.mouse.move(0, 0);
    await page.locator('#metric-cpu svg.chart-svg').focus();
    if (!/ %$/.test(await page.locator('#metric-cpu .chart-tip').textContent())) fail('focusing the CPU chart shows no tooltip');
    await page.keyboard.press('ArrowLeft');
    if (await page.locator('#metric-cpu .chart-tip').isHidden()) fail('the arrow keys hide the tooltip');
    const parts = await page.locator('#status-parts li').count();
    if (parts !== 6) fail(`the score lists ${parts} components, expected 6`);
    const queue = await page.locator('#metric-queue .metric-value').textContent();
    if (queue !== '1 queued') fail(`the queue card shows ${JSON.stringify(queue)}, expected "1 queued"`);
    if ((await page.locator('#status-components li').count()) < 3) fail('the component list is empty');
    await scoreFits(page, '1280 px');

    // ---- Jobs: end-state words, progress, details, cancel and retry.
    await page.locator('#tab-jobs').click();
    if ((await page.evaluate(() => location.hash)) !== '#jobs') fail('the Jobs tab did not set #jobs');
    await page.locator('#jobs-list .job-row').nth(3).waitFor({ timeout: 10_000 })
      .catch(() => fail('the Jobs view did not list four jobs'));
    const listText = await page.locator('#jobs-list').textContent();
    if (listText.includes('started working on it') || listText.includes('100 %')) {
      fail(`a finished job still shows its running note: ${JSON.stringify(listText)}`);
    }
    const notes = page.locator('#jobs-list .job-row', { hasText: 'Draft the release notes' }).locator('.progress-text');
    const said = await notes.textContent();
    if (said !== 'Succeeded — Release notes drafted: three fixes and one new command.') fail(`the finished task says ${JSON.stringify(said)}`);
    const running = page.locator('#jobs-list .job-row[data-status="running"]');
    const progress = await running.locator('.progress-text').textContent();
    if (!progress.includes('50 %') || !progress.includes('halfway through the notes')) {
      fail(`the running job shows progress ${JSON.stringify(progress)}`);
    }
    const width = await running.locator('.progress-fill').evaluate((el) => el.style.width);
    if (width !== '50%') fail(`the progress bar is ${width} wide`);
    await page.screenshot({ path: jobsPng, fullPage: true });

    // Details by click: task, attempts, files, branch, cost; Esc closes.
    const dialog = page.locator('#job-dialog');
    const run = page.locator('#jobs-list .job-row', { hasText: 'Add a hello file to the shop' });
    await run.locator('.job-meta').click();
    await dialog.waitFor({ state: 'visible', timeout: 5_000 }).catch(() => fail('clicking a card opened no details'));
    await page.locator('#job-dialog .job-fields').waitFor({ timeout: 5_000 }).catch(() => fail('the details never loaded'));
    const details = await dialog.textContent();
    for (const needle of ['Add a hello file to the shop', 'Attempts1 of 3', 'Files changed (2)', 'hello.txt', 'tests/hello.rs',
      'valor/1-add-a-hello-file', 'from main', '0123456789ab', '2 files changed, 9 insertions(+)', '$0.0123', '3 turns',
      'Added hello.txt and a greeting test.', 'Succeeded', 'took 42 s']) {
      if (!details.includes(needle)) fail(`the details lack ${JSON.stringify(needle)}: ${details}`);
    }
    if (details.includes('started working on it')) fail('the details show the stale running note');
    await page.screenshot({ path: detailsPng });
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden', timeout: 3_000 }).catch(() => fail('Esc did not close the details'));
    const focused = await page.evaluate(() => document.activeElement && document.activeElement.textContent);
    if (focused !== 'Add a hello file to the shop') fail(`after Esc the focus is on ${JSON.stringify(focused)}`);
    // The list redraws every 2 s; the keyboard focus stays on that card.
    await page.waitForTimeout(2_500);
    const still = await page.evaluate(() => document.activeElement && document.activeElement.textContent);
    if (still !== 'Add a hello file to the shop') fail(`after a refresh the focus is on ${JSON.stringify(still)}`);

    // By keyboard: Tab to a title, Enter opens; Back closes and stays in Jobs.
    await page.locator('#jobs-list .job-row', { hasText: 'Draft the release notes' }).locator('.job-title').focus();
    await page.keyboard.press('Enter');
    await dialog.waitFor({ state: 'visible', timeout: 5_000 }).catch(() => fail('Enter on a card title opened no details'));
    await page.waitForFunction(() => document.getElementById('job-dialog').textContent.includes('Release notes drafted'),
      null, { timeout: 5_000 }).catch(() => fail('the task details show no result'));
    await page.goBack();
    await dialog.waitFor({ state: 'hidden', timeout: 3_000 }).catch(() => fail('Back did not close the details'));
    if (!(await page.locator('#jobs-view').isVisible())) fail('Back left the Jobs view');

    const queued = page.locator('#jobs-list .job-row', { hasText: 'Clean the inbox' });
    await queued.locator('button[data-action="cancel"]').click();
    await page.locator('#jobs-list .job-row[data-status="cancelled"]', { hasText: 'Clean the inbox' })
      .waitFor({ timeout: 5_000 }).catch(() => fail('cancelling did not show the job as cancelled'));
    if (await dialog.isVisible()) fail('Cancel on a card opened its details');
    const cancelled = await page.locator('#jobs-list .job-row', { hasText: 'Clean the inbox' }).locator('.progress-text').textContent();
    if (cancelled !== 'Cancelled') fail(`the cancelled job says ${JSON.stringify(cancelled)}`);
    await page.locator('#jobs-list .job-row', { hasText: 'Clean the inbox' }).locator('button[data-action="retry"]').click();
    await page.locator('#jobs-list .job-row[data-status="queued"]', { hasText: 'Clean the inbox' })
      .waitFor({ timeout: 5_000 }).catch(() => fail('retrying did not queue the job again'));

    // ---- Phone width: nothing cut off, the ring still fits.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(300);
    await fitsWidth(page, 'jobs-view', 'Jobs at 390 px');
    await page.screenshot({ path: jobsPhonePng, fullPage: true });
    // The details fit the phone too, and close again.
    await page.locator('#jobs-list .job-row', { hasText: 'Add a hello file to the shop' }).locator('.job-title').click();
    await page.locator('#job-dialog .job-fields').waitFor({ timeout: 5_000 }).catch(() => fail('no details at 390 px'));
    const sticks = await page.evaluate(() => {
      const d = document.getElementById('job-dialog');
      const r = d.getBoundingClientRect();
      return r.left < 0 || r.right > window.innerWidth || d.scrollWidth > d.clientWidth + 1;
    });
    if (sticks) fail('the details dialog is wider than the phone');
    await page.locator('#job-dialog-close').click();
    await dialog.waitFor({ state: 'hidden', timeout: 3_000 }).catch(() => fail('✕ did not close the details'));
    // As a phone user goes there: the menu, then the Status tab.
    await page.locator('#jobs-view [data-menu]').click();
    await page.locator('#tab-status').click();
    await page.waitForFunction(() => /^\d+$/.test(document.getElementById('status-score').textContent), null,
      { timeout: 10_000 }).catch(() => fail('the Status view did not load at 390 px'));
    await page.waitForTimeout(300);
    await fitsWidth(page, 'status-view', 'Status at 390 px');
    await scoreFits(page, '390 px');
    await labelsApart(page, '390 px');
    // A tap (a touch pointer) shows the tooltip too.
    const phoneChart = await page.locator('#metric-cpu svg.chart-svg').boundingBox();
    await page.locator('#metric-cpu svg.chart-svg').dispatchEvent('pointerdown', {
      pointerType: 'touch', clientX: phoneChart.x + phoneChart.width / 2, clientY: phoneChart.y + 40, bubbles: true,
    });
    if (!/^\d{2}:\d{2}:\d{2} · [\d.]+ %$/.test(await page.locator('#metric-cpu .chart-tip').textContent())) {
      fail('a tap on the CPU chart shows no tooltip');
    }
    await page.screenshot({ path: statusPhonePng, fullPage: true });
    for (const w of [320, 760, 1000, 1280]) {
      await page.setViewportSize({ width: w, height: 800 });
      await page.waitForTimeout(250);
      await scoreFits(page, `${w} px`);
      await fitsWidth(page, 'status-view', `Status at ${w} px`);
      await labelsApart(page, `${w} px`);
    }
    // The widest score there is.
    await page.evaluate(() => { document.getElementById('status-score-value').textContent = '100'; });
    await scoreFits(page, '"100" at 1280 px');
    await page.setViewportSize({ width: 320, height: 700 });
    await scoreFits(page, '"100" at 320 px');

    // Back to the chat: the composer is there again.
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.locator('#tab-chat').click();
    if (!(await page.locator('#composer-input').isVisible())) fail('the Chat tab did not bring the chat back');
  });
