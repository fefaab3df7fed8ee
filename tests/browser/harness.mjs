// Shared by the browser checks: launching Debian's Chromium headless the way
// this machine needs it, collecting the page's console errors, and marking a
// failed check (as opposed to a crash) so the caller can report it plainly.
import { chromium } from 'playwright-core';

export function fail(reason) {
  const err = new Error(reason);
  err.isCheck = true;
  throw err;
}

// Opens a page at the given viewport; console and page errors are appended to
// `consoleErrors`. A `token` is stored as the web chat's bearer token first.
export async function launchPage({ width, height, token, consoleErrors }) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run',
      '--disable-dev-shm-usage',
    ],
  });
  const context = await browser.newContext({ viewport: { width, height } });
  if (token) {
    await context.addInitScript((tok) => localStorage.setItem('valor.token', tok), token);
  }
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  page.on('console', (msg) => { if (msg.type() === 'error') consoleErrors.push(`console: ${msg.text()}`); });
  page.on('pageerror', (err) => consoleErrors.push(`page error: ${err.message}`));
  return { browser, page };
}
