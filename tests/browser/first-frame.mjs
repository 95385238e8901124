// Prints the time from POST /whep to the first decoded video frame in
// headless Chromium, for each of N sessions in a row, and the median.
// Usage: node tests/browser/first-frame.mjs URL [N]   (scripts/first-frame
// runs it). A benchmark: it prints figures and never fails on a time.
import fs from 'fs';
import os from 'os';
import path from 'path';
import { chromium } from 'playwright-core';

const url = process.argv[2];
const runs = Number(process.argv[3] || 10);
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'babymon-ff-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns'],
});
const page = await context.newPage();
await page.goto(`${url}/healthz`, { waitUntil: 'commit' });

// One session: offer (gathered first, as the viewer page does), POST, then
// poll getStats until a frame is decoded.
async function session() {
  const pc = new RTCPeerConnection();
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((done) => {
    if (pc.iceGatheringState === 'complete') done();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && done();
    setTimeout(done, 1000);
  });
  const t0 = performance.now();
  const res = await fetch('/whep', { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp });
  const answerMs = performance.now() - t0;
  const location = res.headers.get('Location');
  await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
  let firstMs = -1;
  while (performance.now() - t0 < 10000) {
    let frames = 0;
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') frames = s.framesDecoded || 0;
    });
    if (frames > 0) {
      firstMs = performance.now() - t0;
      break;
    }
    await new Promise((done) => setTimeout(done, 5));
  }
  pc.close();
  if (location) await fetch(location, { method: 'DELETE' });
  return { answerMs: Math.round(answerMs), firstMs: Math.round(firstMs) };
}

const results = [];
for (let i = 0; i < runs; i++) {
  results.push(await page.evaluate(`(${session.toString()})()`));
  await new Promise((done) => setTimeout(done, 300));
}
await context.close();
fs.rmSync(profile, { recursive: true, force: true });
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const r of results) console.log(`answer ${r.answerMs} ms, first frame ${r.firstMs} ms`);
console.log(`median of ${runs}: answer ${median(results.map((r) => r.answerMs))} ms, ` +
  `first decoded frame ${median(results.map((r) => r.firstMs))} ms after the POST`);
