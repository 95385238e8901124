// The viewer limit, with the limit set to 2 in the server's config:
// two viewers decode at once; a third offer is refused (503, Retry-After)
// and the page says so; when one viewer vanishes without a DELETE (its
// browser killed) its place frees and the waiting page gets in by itself.
//   node limits.mjs --url URL [--timeout 15000] [--free-timeout 60000]
import { launch, launchKillable, phonePage, waitFor, decoding, options, chromiumOffer, sleep, log } from './lib.mjs';

const o = options({ timeout: '15000', 'free-timeout': '60000' });
const result = {};
const browsers = [];
const viewerCount = async () => {
  const r = await fetch(new URL('/api/status', o.url));
  return (await r.json()).viewers.count;
};
try {
  const pages = [];
  for (let i = 0; i < 3; i++) {
    const browser = i === 0 ? await launchKillable() : await launch();
    browsers.push(browser);
    pages.push(await phonePage(browser));
  }
  const [a, b, c] = pages;
  await Promise.all([a.goto(o.url, { waitUntil: 'domcontentloaded' }), b.goto(o.url, { waitUntil: 'domcontentloaded' })]);
  const two = await Promise.all([a, b].map((p) => waitFor(p, decoding(30), Number(o.timeout))));
  result.twoDecode = two.map((w) => ({ ok: w.ok, frames: w.c && w.c.framesDecoded }));
  result.countWithTwo = await viewerCount();

  // A third offer straight to the server.
  const offer = await chromiumOffer(browsers[2]);
  const r = await fetch(new URL('/whep', o.url), {
    method: 'POST',
    headers: { 'Content-Type': 'application/sdp' },
    body: offer,
  });
  result.third = { status: r.status, retryAfter: r.headers.get('retry-after'), body: (await r.text()).trim() };

  // A third page: refused, it says so and waits.
  await c.goto(o.url, { waitUntil: 'domcontentloaded' });
  const refused = await waitFor(c, (x) => x.state === 'reconnecting' && /too many/.test(x.lastError), 10000);
  result.thirdPage = { refused: refused.ok, state: refused.c && refused.c.state, lastError: refused.c && refused.c.lastError };

  // Viewer A vanishes: no pagehide, no DELETE.
  browsers[0].vanish();
  const t0 = Date.now();
  let count = 2;
  while (Date.now() - t0 < Number(o['free-timeout'])) {
    count = await viewerCount();
    if (count < 2) break;
    await sleep(250);
  }
  result.freed = { count, ms: Date.now() - t0 };

  // The waiting page gets in by itself, and B never stopped.
  const inC = await waitFor(c, decoding(30), Number(o['free-timeout']));
  result.thirdGetsIn = { ok: inC.ok, frames: inC.c && inC.c.framesDecoded, reconnects: inC.c && inC.c.reconnects };
  const bNow = await waitFor(b, (x) => x.state === 'live', 1000);
  result.secondStillLive = bNow.ok;

  // B leaves the ordinary way (here by going to another page; Playwright's
  // page.close() drops keepalive requests, which a real tab close sends):
  // the page's pagehide sends DELETE.
  const before = await viewerCount();
  await b.goto('about:blank');
  await sleep(1500);
  result.afterClose = { before, after: await viewerCount() };
} catch (e) {
  log(e.stack || String(e));
  result.error = String(e);
} finally {
  await Promise.all(browsers.map((b) => (b.closeAll ? b.closeAll() : b.close()).catch(() => {})));
}
console.log(JSON.stringify(result));
