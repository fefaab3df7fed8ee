// Headless-browser check of the web chat's Markdown: the model's answer
// renders as elements (heading, table, blockquote, task list, link, fenced
// code with its language class, colours and a copy button), copying works,
// and nothing from the answer runs (its payloads set window.__xss).
//
// Usage: node tests/browser/markdown.mjs <base_url> <desktop_png> <phone_png> <question>
//
// Sends <question> (the model stand-in answers with the corpus), checks the
// streamed answer, then reloads the conversation and checks the stored one
// the same way; screenshots at 1280×800 and 390×844. Prints "browser markdown: ok".
import { fail, launchPage } from './harness.mjs';

const [baseUrl, desktopPng, phonePng, question] = process.argv.slice(2);
if (!baseUrl || !desktopPng || !phonePng || !question) {
  console.error('usage: node tests/browser/markdown.mjs <base_url> <desktop_png> <phone_png> <question>');
  process.exit(1);
}

const consoleErrors = [];
let browser;
let page;

// What the rendered answer must contain, and what must never be there.
async function checkAnswer(when) {
  const answer = page.locator('.msg.assistant').last();
  const must = {
    'h2 heading': 'h2',
    table: '.table-wrap table th.align-right',
    blockquote: 'blockquote strong',
    'task list': 'li.task input[type="checkbox"][disabled][checked]',
    'code block with language': '.code-block pre code.language-rust',
    'highlighted code': 'pre code.language-rust .hljs-keyword',
    'code language label': '.code-block .code-lang',
    'code copy button': '.code-block button.copy-code',
    'safe link': 'a[href="https://example.com/docs"][rel="noopener noreferrer"][target="_blank"]',
    'outside image as a link': 'a.image-link[href="https://tracker.example/pixel.gif"]',
    'message copy button': '.msg-actions button.copy-msg',
  };
  for (const [what, selector] of Object.entries(must)) {
    if ((await answer.locator(selector).count()) === 0) fail(`${when}: no ${what} (${selector})`);
  }
  const active = await page.evaluate(() => {
    const root = document.getElementById('messages');
    const found = [];
    for (const el of root.querySelectorAll('*')) {
      if (['SCRIPT', 'IFRAME', 'OBJECT', 'EMBED', 'SVG', 'STYLE', 'FORM'].includes(el.tagName.toUpperCase())) found.push(el.tagName);
      for (const attr of el.attributes) {
        if (/^on/i.test(attr.name)) found.push(`${el.tagName}[${attr.name}]`);
        if (/^(href|src)$/i.test(attr.name) && /^\s*(javascript|data|vbscript):/i.test(attr.value)) found.push(`${el.tagName}[${attr.name}=${attr.value}]`);
      }
      if (el.tagName === 'IMG' && !el.getAttribute('src').startsWith('/')) found.push(`IMG ${el.getAttribute('src')}`);
    }
    return found;
  });
  if (active.length) fail(`${when}: active content from the answer: ${active.join(', ')}`);
  if (await page.evaluate(() => window.__xss !== undefined)) fail(`${when}: a script from the answer ran`);
  const text = await answer.locator('.bubble').innerText();
  if (!text.includes('<script>')) fail(`${when}: the raw <script> is not shown as text`);
}

async function main() {
  ({ browser, page } = await launchPage({ width: 1280, height: 800, consoleErrors }));
  const origin = new URL(baseUrl).origin;
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin });
  const res = await page.goto(baseUrl, { waitUntil: 'load', timeout: 15_000 })
    .catch((e) => fail(`cannot open ${baseUrl}: ${e.message}`));
  if (!res || !res.ok()) fail(`GET ${baseUrl} answered ${res ? res.status() : 'nothing'}`);
  if (!(res.headers()['content-security-policy'] || '').includes("script-src 'self'")) fail('the page has no CSP');
  await page.waitForFunction(() => document.body.dataset.ready === 'true', null, { timeout: 10_000 })
    .catch(() => fail('the page did not finish its first load'));

  await page.locator('#composer-input').fill(question);
  await page.locator('#send-btn').click();
  // Formatted while it streams, not only at the end.
  await page.locator('.msg.assistant table').first().waitFor({ timeout: 20_000 })
    .catch(() => fail('the streaming answer never showed a table'));
  await page.waitForFunction(() => document.body.dataset.busy === 'false', null, { timeout: 20_000 })
    .catch(() => fail('the answer never finished'));
  await checkAnswer('streamed');

  // Copy the code block, then the whole message.
  const copyCode = page.locator('.msg.assistant .copy-code').first();
  await copyCode.click();
  await page.waitForFunction(() => document.querySelector('.msg.assistant .copy-code').textContent === 'Copied', null,
    { timeout: 5_000 }).catch(() => fail('the code copy button never said "Copied"'));
  const code = await page.evaluate(() => navigator.clipboard.readText());
  if (!code.startsWith('fn main() {') || code.includes('Copy')) fail(`the code copied is ${JSON.stringify(code)}`);
  const answer = page.locator('.msg.assistant').last();
  await answer.hover();
  await answer.locator('.copy-msg').click();
  const source = await page.evaluate(() => navigator.clipboard.readText());
  if (!source.includes('| Item |') || !source.includes('```rust')) fail(`the message copied is ${JSON.stringify(source.slice(0, 200))}`);
  await page.screenshot({ path: desktopPng });

  // The stored conversation renders the same (the messages API's html).
  await page.reload({ waitUntil: 'load' });
  await page.waitForFunction(() => document.body.dataset.ready === 'true' && document.querySelector('.msg.assistant'),
    null, { timeout: 10_000 }).catch(() => fail('the conversation did not load again'));
  await checkAnswer('reloaded');
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(600); // the sidebar slides away at phone width
  await page.locator('.msg.assistant table').first().scrollIntoViewIfNeeded();
  await page.screenshot({ path: phonePng });
  if (consoleErrors.length) fail(`the page logged errors: ${consoleErrors.join('; ')}`);
  console.log('browser markdown: ok');
}

try {
  await main();
  await browser.close();
  process.exit(0);
} catch (e) {
  console.log(`browser markdown: FAILED: ${e.isCheck ? e.message : (e.stack || e.message || e)}`);
  for (const line of consoleErrors) console.log(`  ${line}`);
  if (page) await page.screenshot({ path: desktopPng }).catch(() => {});
  if (browser) await browser.close().catch(() => {});
  process.exit(1);
}
