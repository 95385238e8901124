// Opens the viewer page in N phone-sized Chromium windows at once and waits
// until each decodes enough video frames and receives sound. Prints JSON.
//   node watch.mjs --url URL [--viewers 1] [--frames 60] [--timeout 15000]
//                  [--screenshot FILE] [--tap 1] [--password PW]
import { launch, phonePage, waitFor, decoding, options, sleep, log, counters } from './lib.mjs';

// What the video element shows: its size and the brightest pixel of a
// small copy (the test pattern's ball is white on black).
async function picture(page) {
  return page.evaluate(() => {
    const v = document.getElementById('video');
    const c = document.createElement('canvas');
    c.width = 64;
    c.height = 48;
    const g = c.getContext('2d');
    g.drawImage(v, 0, 0, c.width, c.height);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    let max = 0;
    for (let i = 0; i < d.length; i += 4) max = Math.max(max, (d[i] + d[i + 1] + d[i + 2]) / 3);
    return { width: v.videoWidth, height: v.videoHeight, maxLuma: Math.round(max) };
  });
}

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
      await page.goto(o.url, { waitUntil: 'domcontentloaded' });
      if (o.password) {
        await page.fill('#password', o.password);
        await Promise.all([page.waitForNavigation({ waitUntil: 'domcontentloaded' }), page.click('button[type=submit]')]);
      }
    }),
  );
  const waits = await Promise.all(pages.map((p) => waitFor(p, decoding(Number(o.frames)), Number(o.timeout))));
  result.elapsedMs = Date.now() - t0;
  for (const w of waits) {
    result.viewers.push({ ok: w.ok, waitedMs: w.ms, ...w.c });
  }
  const page = pages[0];
  result.picture = await Promise.all(pages.map(picture));
  if (o.screenshot && waits[0].ok) {
    await sleep(1000);
    await page.screenshot({ path: o.screenshot });
  }
  if (o.tap === '1' && waits[0].ok) {
    await page.tap('#sound');
    await sleep(1500);
    const c = await counters(page);
    result.afterTap = { muted: c.muted, meter: c.meter, videoMuted: await page.evaluate(() => document.getElementById('video').muted) };
    await page.tap('#sound');
    await sleep(800);
    const m = await counters(page);
    result.mutedAgain = { muted: m.muted, meter: m.meter };
    await page.tap('#sound');
  }
  if (o.screenshot && waits[0].ok) {
    await page.tap('#info');
    await sleep(800);
    await page.screenshot({ path: o.screenshot.replace(/\.png$/, '-panel.png') });
    result.panelText = await page.evaluate(() => document.getElementById('facts').innerText);
    await page.tap('#info');
  }
  result.final = await Promise.all(pages.map(counters));
} catch (e) {
  log(e.stack || String(e));
  result.error = String(e);
} finally {
  await Promise.all(browsers.map((b) => b.close().catch(() => {})));
}
console.log(JSON.stringify(result));
