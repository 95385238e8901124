// Opens the viewer page in N phone-sized Chromium windows at once and waits
// until each decodes enough video frames and receives sound. Prints JSON.
//   node watch.mjs --url URL [--viewers 1] [--frames 60] [--timeout 15000]
//                  [--screenshot FILE] [--tap 1] [--password PW]
import { launch, phonePage, waitFor, decoding, options, sleep, log } from './lib.mjs';

const o = options({ viewers: '1', frames: '60', timeout: '15000', screenshot: '', tap: '0', password: '' });
const n = Number(o.viewers);
const result = { viewers: [] };
const browsers = [];
try {
  const pages = [];
  for (let i = 0; i < n; i++) {
    const browser = await launch();
    browsers.push(browser);
    const page = await phonePage(browser);
    pages.push(page);
  }
  const t0 = Date.now();
  await Promise.all(
    pages.map(async (page) => {
      await page.goto(o.url);
      if (o.password) {
        await page.fill('#password', o.password);
        await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
      }
    }),
  );
  const waits = await Promise.all(pages.map((p) => waitFor(p, decoding(Number(o.frames)), Number(o.timeout))));
  result.elapsedMs = Date.now() - t0;
  for (const w of waits) {
    result.viewers.push({ ok: w.ok, waitedMs: w.ms, ...w.c });
  }
  const page = pages[0];
  if (o.tap === '1' && waits[0].ok) {
    await page.tap('#sound');
    await sleep(1500);
    const c = await page.evaluate(() => ({ ...window.babymon }));
    result.afterTap = { muted: c.muted, meter: c.meter, videoMuted: await page.evaluate(() => document.getElementById('video').muted) };
  }
  if (o.screenshot && waits[0].ok) {
    await sleep(1000);
    await page.screenshot({ path: o.screenshot });
    await page.tap('#info');
    await sleep(800);
    await page.screenshot({ path: o.screenshot.replace(/\.png$/, '-panel.png') });
    result.panelText = await page.evaluate(() => document.getElementById('facts').innerText);
  }
} catch (e) {
  log(e.stack || String(e));
  result.error = String(e);
} finally {
  await Promise.all(browsers.map((b) => b.close().catch(() => {})));
}
console.log(JSON.stringify(result));
