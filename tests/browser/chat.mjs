// Headless-browser check of valor's web chat.
//
// Usage: node tests/browser/chat.mjs <base_url> <screenshot_path> <expected_reply_substring>
//
// Opens <base_url>, sends "What did we decide about the launch date?", waits
// (20 s) until the assistant reply contains <expected_reply_substring>, checks
// that the conversation shows up in the sidebar, saves a full-page screenshot
// and prints "browser chat: ok" (exit 0). On failure prints the reason and the
// page's console errors, still tries to save the screenshot, and exits 1.
//
// Environment: CHROMIUM_PATH (default /usr/bin/chromium); VALOR_TOKEN, if set,
// is stored as the page's bearer token before it loads; EXPECT_WAITING, if
// set, is the note that must show beside the typing dots before the reply
// (a model slow to start), screenshotted to WAITING_SCREENSHOT when given;
// ASK_AGAIN_IN_NEW, if set, asks the same question in a "+ New conversation"
// and checks it becomes a second conversation.
import { fail, launchPage } from './harness.mjs';

const QUESTION = 'What did we decide about the launch date?';
const REPLY_TIMEOUT_MS = 20_000;

const [baseUrl, screenshotPath, expected] = process.argv.slice(2);
if (!baseUrl || !screenshotPath || expected === undefined) {
  console.error('usage: node tests/browser/chat.mjs <base_url> <screenshot_path> <expected_reply_substring>');
  process.exit(1);
}

const consoleErrors = [];
let browser;
let page;

async function main() {
  ({ browser, page } = await launchPage({ width: 1280, height: 800, token: process.env.VALOR_TOKEN, consoleErrors }));
  page.on('requestfailed', (req) => {
    const why = req.failure()?.errorText || '';
    // ERR_ABORTED: the page itself closed the request (e.g. the SSE stream after `done`).
    if (!why.includes('ERR_ABORTED')) consoleErrors.push(`request failed: ${req.method()} ${req.url()} (${why})`);
  });

  const res = await page.goto(baseUrl, { waitUntil: 'load', timeout: 15_000 }).catch((e) => fail(`cannot open ${baseUrl}: ${e.message}`));
  if (!res || !res.ok()) fail(`GET ${baseUrl} answered ${res ? res.status() : 'nothing'}`);

  const input = page.locator('#composer-input');
  await input.waitFor({ state: 'visible', timeout: 10_000 }).catch(() => fail('the composer textarea (#composer-input) never appeared'));
  // The first load has settled, or the page is asking for a token.
  await page.waitForFunction(
    () => document.body.dataset.ready === 'true' || !document.getElementById('token-overlay').hidden,
    null, { timeout: 10_000 },
  ).catch(() => fail('the page did not finish its first load (GET /api/conversations) within 10 s'));
  if (await page.locator('#token-overlay').isVisible()) {
    fail('the page asks for a token (the API answered 401); set VALOR_TOKEN');
  }
  await input.fill(QUESTION);
  await page.locator('#send-btn').click();

  // The user's message is shown at once.
  await page.locator('.msg.user .bubble', { hasText: QUESTION }).first()
    .waitFor({ timeout: 5_000 }).catch(() => fail('the sent message did not appear as a user bubble'));

  if (process.env.EXPECT_WAITING) {
    await page.locator('.msg.assistant .typing .waiting-note', { hasText: process.env.EXPECT_WAITING }).first()
      .waitFor({ timeout: 10_000 }).catch(() => fail(`no "${process.env.EXPECT_WAITING}" note beside the typing dots`));
    // The conversation is listed from its first turn's start, not only after the reply.
    await page.locator('.conv-item').first().waitFor({ timeout: 5_000 })
      .catch(() => fail('the new conversation is not in the sidebar while its first turn runs'));
    if (process.env.WAITING_SCREENSHOT) await page.screenshot({ path: process.env.WAITING_SCREENSHOT });
  }

  // Wait for the assistant reply to contain the expected text. Only the
  // reply's text runs count, not tool cards (whose output may quote anything).
  try {
    await page.waitForFunction((want) => {
      const replies = document.querySelectorAll('.msg.assistant .bubble');
      const last = replies[replies.length - 1];
      if (!last) return false;
      const runs = [...last.querySelectorAll(':scope > .text')];
      // rendered text, or the raw source (so "**bold**" / "`code`" also match)
      return runs.map((t) => t.innerText).join('\n').includes(want) ||
        runs.map((t) => t.dataset.raw || '').join('').includes(want);
    }, expected, { timeout: REPLY_TIMEOUT_MS, polling: 100 });
  } catch {
    const state = await page.evaluate(() => {
      const replies = [...document.querySelectorAll('.msg.assistant .bubble')]
        .map((b) => [...b.querySelectorAll(':scope > .text')].map((t) => t.innerText).join('\n'));
      const errors = [...document.querySelectorAll('.msg.error .bubble')].map((b) => b.textContent);
      return { reply: replies[replies.length - 1] || '', errors, busy: document.body.dataset.busy };
    });
    fail(`no assistant reply containing ${JSON.stringify(expected)} within ${REPLY_TIMEOUT_MS / 1000} s` +
      `; last reply: ${JSON.stringify(state.reply.slice(0, 400))}` +
      (state.errors.length ? `; error bubbles: ${JSON.stringify(state.errors)}` : '') +
      `; still streaming: ${state.busy}`);
  }

  // The turn ends (done event) and the conversation is in the sidebar, selected.
  await page.waitForFunction(() => document.body.dataset.busy === 'false', null, { timeout: REPLY_TIMEOUT_MS })
    .catch(() => fail('the reply never finished streaming (no done event?)'));
  const convId = await page.locator('#main').getAttribute('data-conversation-id');
  if (!convId) fail('the page never learned the conversation id (turn_started/done without "conversation"?)');
  const item = page.locator(`#conv-list .conv-item[data-id="${convId.replace(/["\\]/g, '\\$&')}"]`);
  await item.waitFor({ timeout: 5_000 })
    .catch(() => fail(`conversation ${convId} is not listed in the sidebar (GET /api/conversations)`));
  if (!(await item.evaluate((el) => el.classList.contains('active')))) {
    fail(`conversation ${convId} is in the sidebar but not selected`);
  }

  await page.screenshot({ path: screenshotPath, fullPage: true });

  if (process.env.ASK_AGAIN_IN_NEW) {
    // "+ New conversation" and the same question: a second conversation, never the first one again.
    await page.locator('#new-conversation').click();
    await input.fill(QUESTION);
    await page.locator('#send-btn').click();
    await page.waitForFunction((first) => {
      const id = document.getElementById('main').dataset.conversationId;
      return document.body.dataset.busy === 'false' && id && id !== first;
    }, convId, { timeout: REPLY_TIMEOUT_MS }).catch(() => fail('the new conversation joined the old one'));
    const users = await page.locator('.msg.user').count();
    if (users !== 1) fail(`the new conversation shows ${users} user messages, expected 1`);
    const listed = await page.locator('#conv-list .conv-item').count();
    if (listed !== 2) fail(`${listed} conversations listed, expected 2`);
  }
  console.log('browser chat: ok');
}

try {
  await main();
  await browser.close();
  process.exit(0);
} catch (e) {
  console.error(`browser chat: FAILED: ${e.isCheck ? e.message : (e.stack || e.message || e)}`);
  if (consoleErrors.length) {
    console.error('page console errors:');
    for (const line of consoleErrors) console.error(`  ${line}`);
  } else {
    console.error('page console errors: none');
  }
  if (page) {
    await page.screenshot({ path: screenshotPath, fullPage: true }).then(
      () => console.error(`screenshot of the failure saved to ${screenshotPath}`),
      () => {});
  }
  if (browser) await browser.close().catch(() => {});
  process.exit(1);
}
