import { launchPage } from './harness.mjs';
const [baseUrl, png] = process.argv.slice(2);
const { browser, page } = await launchPage({ width: 1280, height: 860, consoleErrors: [] });
await page.goto(`${baseUrl}#status`, { waitUntil: 'load' });
await page.waitForFunction(() => /^\d+$/.test(document.getElementById('status-score').textContent), null, { timeout: 10000 });
await page.waitForTimeout(500);
await page.screenshot({ path: png, fullPage: true });
console.log(await page.locator('#status-parts').innerText());
await browser.close();
