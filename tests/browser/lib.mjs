// Shared by the browser test scripts: starts Debian's Chromium headless with
// the flags this machine needs, and reads the viewer page's window.babymon.
import { chromium } from 'playwright-core';

export const PHONE = { width: 390, height: 844 };

const ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--allow-loopback-in-peer-connection',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
];

// One browser process per viewer, so a test can make one vanish. Playwright
// gives each launch a fresh profile folder.
export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ARGS,
  });
}

// The same, with a `vanish()` that kills the browser process outright (no
// pagehide, no DELETE), as when a phone drops off the network.
export async function launchKillable() {
  const server = await chromium.launchServer({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ARGS,
  });
  const browser = await chromium.connect(server.wsEndpoint());
  browser.vanish = () => server.process().kill('SIGKILL');
  browser.closeAll = async () => {
    await browser.close().catch(() => {});
    await server.close().catch(() => {});
  };
  return browser;
}

// A phone-sized page in its own context.
export async function phonePage(browser) {
  const context = await browser.newContext({
    viewport: PHONE,
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
  });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') log(`page ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => log(`page error: ${e.message}`));
  return page;
}

export function log(...args) {
  console.error('[browser]', ...args);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The page's counters, or null before the script ran.
export async function counters(page) {
  return page.evaluate(() => (window.babymon ? { ...window.babymon } : null)).catch(() => null);
}

// Waits until `done(counters)` holds or `ms` pass; returns the last counters
// and how long it took.
export async function waitFor(page, done, ms) {
  const t0 = Date.now();
  let c = null;
  while (Date.now() - t0 < ms) {
    c = await counters(page);
    if (c && done(c)) return { ok: true, ms: Date.now() - t0, c };
    await sleep(200);
  }
  return { ok: false, ms: Date.now() - t0, c };
}

export const decoding = (min) => (c) => c.framesDecoded >= min && c.audioBytes > 0 && c.audioPackets > 0;

// Reads --name value pairs.
export function options(defaults) {
  const o = { ...defaults };
  const a = process.argv.slice(2);
  for (let i = 0; i < a.length; i += 2) o[a[i].replace(/^--/, '')] = a[i + 1];
  return o;
}

// A real Chromium offer (recvonly video and audio, candidates gathered).
export async function chromiumOffer(browser) {
  const page = await browser.newPage();
  const sdp = await page.evaluate(async () => {
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((r) => {
      if (pc.iceGatheringState === 'complete') r();
      pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r();
      setTimeout(r, 2000);
    });
    return pc.localDescription.sdp;
  });
  await page.close();
  return sdp;
}
