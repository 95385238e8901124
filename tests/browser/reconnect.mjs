// A page that lost its server (stopped, then started again on the same
// port) reconnects by itself, without a reload. Prints `live` once the
// first connection decodes (the test then restarts the server), then JSON.
//   node reconnect.mjs --url URL [--timeout 60000]
import { launch, phonePage, waitFor, decoding, options, log } from './lib.mjs';

const o = options({ timeout: '60000' });
const result = {};
const browser = await launch();
try {
  const page = await phonePage(browser);
  await page.goto(o.url, { waitUntil: 'domcontentloaded' });
  const first = await waitFor(page, decoding(30), 15000);
  result.first = { ok: first.ok, session: first.c && first.c.session };
  // A reload would drop this mark.
  await page.evaluate(() => (window.sameDocument = true));
  console.log('live');
  const lost = await waitFor(page, (c) => c.state === 'reconnecting', Number(o.timeout));
  result.lost = { ok: lost.ok, words: await page.locator('#state-text').innerText(), lastError: lost.c && lost.c.lastError };
  const back = await waitFor(
    page,
    (c) => c.state === 'live' && c.session !== result.first.session && c.framesDecoded >= 30,
    Number(o.timeout),
  );
  result.back = { ok: back.ok, ms: back.ms, reconnects: back.c && back.c.reconnects, sessions: back.c && back.c.sessions };
  result.sameDocument = await page.evaluate(() => window.sameDocument === true);
} catch (e) {
  log(e.stack || String(e));
  result.error = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
