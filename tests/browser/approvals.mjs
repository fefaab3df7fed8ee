// Headless-browser check of the web chat's permission prompt.
//
// Usage: node tests/browser/approvals.mjs <conversation_url> <png>
//
// Expects the conversation to have one pending Claude Code request for the
// tool "Bash" with the command "make deploy". Opens the conversation, waits
// for the prompt (tool, input, three buttons), saves a screenshot, presses
// "Allow for this run", and waits for the prompt to go away. Prints
// "browser approvals: ok".
import { fail, launchPage } from './harness.mjs';

const [url, png] = process.argv.slice(2);
if (!url || !png) {
  console.error('usage: node tests/browser/approvals.mjs <conversation_url> <png>');
  process.exit(1);
}

const consoleErrors = [];
let browser;
let page;

async function main() {
  ({ browser, page } = await launchPage({ width: 1100, height: 760, consoleErrors }));
  const res = await page.goto(url, { waitUntil: 'load', timeout: 15_000 })
    .catch((e) => fail(`cannot open ${url}: ${e.message}`));
  if (!res || !res.ok()) fail(`GET ${url} answered ${res ? res.status() : 'nothing'}`);

  const card = page.locator('#approvals .approval');
  await card.first().waitFor({ state: 'visible', timeout: 10_000 })
    .catch(() => fail('no permission prompt appeared'));
  if ((await card.count()) !== 1) fail(`${await card.count()} prompts shown, expected 1`);
  const title = await card.locator('.approval-title').textContent();
  if (!title.includes('asks to use Bash')) fail(`the prompt says ${JSON.stringify(title)}`);
  const input = await card.locator('.approval-input').textContent();
  if (!input.includes('make deploy')) fail(`the prompt shows the input ${JSON.stringify(input)}`);
  const labels = await card.locator('button').allTextContents();
  if (labels.join('|') !== 'Allow once|Allow for this run|Deny') fail(`buttons: ${labels.join(', ')}`);
  await page.screenshot({ path: png });

  await card.locator('button[data-answer="run"]').click();
  await page.waitForFunction(() => document.getElementById('approvals').hidden, null, { timeout: 10_000 })
    .catch(() => fail('the prompt stayed after answering'));
  if (consoleErrors.length) fail(`the page logged errors: ${consoleErrors.join('; ')}`);
  console.log('browser approvals: ok');
}

try {
  await main();
  await browser.close();
  process.exit(0);
} catch (e) {
  console.error(`browser approvals: FAILED: ${e.isCheck ? e.message : (e.stack || e.message || e)}`);
  for (const line of consoleErrors) console.error(`  ${line}`);
  if (page) await page.screenshot({ path: png }).catch(() => {});
  if (browser) await browser.close().catch(() => {});
  process.exit(1);
}
