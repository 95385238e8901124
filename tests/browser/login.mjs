// The password flow in a browser: the form, a wrong password, the right
// one, the cookie's flags, then live video.
//   node login.mjs --url URL --password PW [--timeout 15000]
import { launch, phonePage, waitFor, decoding, options, log } from './lib.mjs';

const o = options({ timeout: '15000' });
const result = {};
const browser = await launch();
try {
  const page = await phonePage(browser);
  await page.goto(o.url, { waitUntil: 'domcontentloaded' });
  result.formShown = (await page.locator('input[type=password]').count()) === 1;
  result.viewerBeforeLogin = await page.evaluate(() => !!window.babymon);
  await page.fill('#password', o.password + 'x');
  await Promise.all([page.waitForNavigation({ waitUntil: 'domcontentloaded' }), page.click('button[type=submit]')]);
  result.wrongMessage = (await page.locator('.error').innerText()).trim();
  await page.fill('#password', o.password);
  await Promise.all([page.waitForNavigation({ waitUntil: 'domcontentloaded' }), page.click('button[type=submit]')]);
  const cookies = await page.context().cookies();
  result.cookies = cookies.map((c) => ({ name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite, isPassword: c.value === o.password }));
  result.scriptSeesCookie = await page.evaluate(() => document.cookie.includes('babymon_session'));
  const w = await waitFor(page, decoding(30), Number(o.timeout));
  result.decodes = { ok: w.ok, frames: w.c && w.c.framesDecoded };
} catch (e) {
  log(e.stack || String(e));
  result.error = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
