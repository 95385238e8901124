// Prints a real Chromium WHEP offer (recvonly H.264/VP8/... video and Opus
// audio) as JSON, for tests that send doctored offers by hand.
import { launch, chromiumOffer, log } from './lib.mjs';

const browser = await launch();
try {
  console.log(JSON.stringify({ offer: await chromiumOffer(browser) }));
} catch (e) {
  log(e.stack || String(e));
  console.log(JSON.stringify({ error: String(e) }));
} finally {
  await browser.close();
}
