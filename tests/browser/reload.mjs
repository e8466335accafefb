// Loads Coffer's web app twice in real headless Chromium and prints, as
// JSON, how many bytes each load moved over the network (the Performance
// API's transferSize of the page and every resource it loaded) and how long
// it took from navigation to the login form and to the first listing. A
// repeat visit should revalidate the page and take every content-hashed
// asset from the cache; the tab keeps its sign-in, so the second load goes
// straight to the listing.
//
// Environment: COFFER_URL (the server), COFFER_USER and COFFER_PASSWORD
// (whom to sign in as on the first load; the listing must have a row),
// CHROMIUM (default /usr/bin/chromium). For measurements (BENCHMARKS.md):
// COFFER_THROTTLE="KBIT/S,RTT_MS" emulates a slower link;
// COFFER_AS_BEFORE=1 asks for nothing compressed and keeps nothing cached,
// as the app was served before it was compressed and cached. Exits non-zero
// if the app does not come up.
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
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  if (process.env.COFFER_THROTTLE) {
    const [kbits, rtt] = process.env.COFFER_THROTTLE.split(',').map(Number);
    const bytesPerSecond = (kbits * 1000) / 8;
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false,
      latency: rtt,
      downloadThroughput: bytesPerSecond,
      uploadThroughput: bytesPerSecond,
    });
  }
  if (process.env.COFFER_AS_BEFORE) {
    await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
    await cdp.send('Network.setExtraHTTPHeaders', { headers: { 'Accept-Encoding': 'identity' } });
  }
  const signedIn = () => page.waitForSelector('[data-testid=file-row]', { timeout: 120000 });
  const load = async (first) => {
    await page.goto(base, { waitUntil: 'commit' });
    let loginMs = null;
    if (first) {
      // The app is up once it asks for a login.
      await page.waitForSelector('[data-testid=login-form]', { timeout: 120000 });
      loginMs = await page.evaluate(() => performance.now());
      if (process.env.COFFER_USER) {
        await page.fill('[data-testid=login-user]', process.env.COFFER_USER);
        await page.fill('[data-testid=login-password]', process.env.COFFER_PASSWORD);
        await page.click('[data-testid=login-submit]');
        await signedIn();
      }
    } else if (process.env.COFFER_USER) {
      await signedIn();
    } else {
      await page.waitForSelector('[data-testid=login-form]', { timeout: 120000 });
    }
    // performance.now() counts from the navigation's start.
    const listingMs = process.env.COFFER_USER ? await page.evaluate(() => performance.now()) : null;
    await page.waitForLoadState('load');
    return page.evaluate(
      ([loginMs, listingMs]) => {
        const entries = [
          ...performance.getEntriesByType('navigation'),
          ...performance.getEntriesByType('resource'),
        ];
        return {
          loginMs: loginMs === null ? null : Math.round(loginMs),
          listingMs: listingMs === null ? null : Math.round(listingMs),
          bytes: entries.reduce((n, e) => n + (e.transferSize || 0), 0),
          decoded: entries.reduce((n, e) => n + (e.decodedBodySize || 0), 0),
          resources: entries.map((e) => ({ name: e.name, transfer: e.transferSize, body: e.decodedBodySize })),
        };
      },
      [loginMs, listingMs],
    );
  };
  const first = await load(true);
  const second = await load(false);
  console.log(JSON.stringify({ first, second }));
} finally {
  await browser.close();
}
