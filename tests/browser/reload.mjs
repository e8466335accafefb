// Loads Coffer's web app twice in real headless Chromium and prints, as
// JSON, how many bytes each load moved over the network (the Performance
// API's transferSize of the page and every resource it loaded). A repeat
// visit should revalidate the page and take every content-hashed asset
// from the cache.
//
// Environment: COFFER_URL (the server), CHROMIUM (default
// /usr/bin/chromium). Exits non-zero if the app does not come up.
import { chromium } from 'playwright-core';

const base = process.env.COFFER_URL;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
    '--no-first-run', '--disable-component-update', '--disable-sync'],
});
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  const load = async () => {
    await page.goto(base, { waitUntil: 'load' });
    // The app is up once it asks for a login.
    await page.waitForSelector('[data-testid=login-form]', { timeout: 60000 });
    return page.evaluate(() => {
      const entries = [
        ...performance.getEntriesByType('navigation'),
        ...performance.getEntriesByType('resource'),
      ];
      return {
        bytes: entries.reduce((n, e) => n + (e.transferSize || 0), 0),
        decoded: entries.reduce((n, e) => n + (e.decodedBodySize || 0), 0),
        resources: entries.map((e) => ({ name: e.name, transfer: e.transferSize, body: e.decodedBodySize })),
      };
    });
  };
  const first = await load();
  const second = await load();
  console.log(JSON.stringify({ first, second }));
} finally {
  await browser.close();
}
