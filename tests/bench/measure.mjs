// Measures a WHEP sender from a real headless Chromium: the time from the
// POST of the offer to the answer, to the first video frame received and to
// its decoded picture handed to the compositor (medians of several fresh
// sessions), then the sender's CPU and memory while N viewers watch.
//
//   node measure.mjs --url http://HOST:PORT [--pid PID] [--runs 10] [--viewers 1,4]
//
// Prints one JSON object on stdout.
import { chromium } from '../browser/node_modules/playwright-core/index.mjs';
import { readFileSync } from 'node:fs';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const url = args.url;
const pid = Number(args.pid);
const runs = Number(args.runs ?? 10);
// --viewers 0 measures the first frame only (scripts/first-frame).
const viewerCounts = (args.viewers ?? '1,4').split(',').map(Number).filter((n) => n > 0);
const measureSeconds = Number(args.seconds ?? 10);

const clockTicks = 100; // USER_HZ on Linux
function cpuTicks() {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime
}
// Resident memory in MB: all of it, the heap and stacks (anonymous), and
// the mapped files (mostly shared libraries).
function rssMb() {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const mb = (key) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)[1]) / 1024;
  return { all: mb('VmRSS'), anon: mb('RssAnon'), file: mb('RssFile') };
}

// Runs in the page: one WHEP session; resolves with its timings once the
// first frame is decoded. Keeps the session open in window.sessions.
async function openSession() {
  const pc = new RTCPeerConnection();
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  const video = document.createElement('video');
  video.muted = true;
  video.autoplay = true;
  video.playsInline = true;
  document.body.append(video);
  // The first frame is timed by the video element itself: the
  // requestVideoFrameCallback metadata carry when its last packet arrived
  // and when the decoded picture went to the compositor, on the same clock
  // as t0. (Polling getStats for framesDecoded would round every result up
  // to Chromium's 50 ms stats cache.)
  const shown = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no frame within 10 s')), 10000);
    video.requestVideoFrameCallback((_now, m) => {
      clearTimeout(timer);
      resolve(m);
    });
  });
  pc.ontrack = (e) => {
    if (e.track.kind === 'video') video.srcObject = new MediaStream([e.track]);
  };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && resolve();
    setTimeout(resolve, 2000);
  });
  const t0 = performance.now();
  const res = await fetch('/whep', {
    method: 'POST',
    headers: { 'Content-Type': 'application/sdp' },
    body: pc.localDescription.sdp,
  });
  if (res.status !== 201) throw new Error(`POST /whep: ${res.status} ${await res.text()}`);
  const tAnswer = performance.now();
  const location = res.headers.get('Location');
  await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
  const first = await shown;
  window.sessions = window.sessions || [];
  window.sessions.push({ pc, location, video });
  return {
    answerMs: tAnswer - t0,
    receivedMs: first.receiveTime - t0,
    firstFrameMs: first.presentationTime - t0,
  };
}

async function closeAll() {
  for (const s of window.sessions || []) {
    s.pc.close();
    s.video.remove();
    await fetch(s.location, { method: 'DELETE' }).catch(() => {});
  }
  window.sessions = [];
}

async function framesDecoded() {
  let total = 0;
  for (const s of window.sessions || []) {
    for (const st of (await s.pc.getStats()).values()) {
      if (st.type === 'inbound-rtp' && st.kind === 'video') total += st.framesDecoded || 0;
    }
  }
  return total;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// playwright gives each launch a fresh, temporary profile.
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--disable-features=WebRtcHideLocalIpsWithMdns', '--allow-loopback-in-peer-connection',
    '--autoplay-policy=no-user-gesture-required',
  ],
});
const result = { url, firstFrame: [], received: [], answer: [], load: {} };
try {
  const page = await browser.newPage();
  await page.goto(url + '/healthz');
  // Warm-up session, not counted (both senders get one).
  await page.evaluate(openSession);
  await page.evaluate(closeAll);
  await sleep(500);
  for (let i = 0; i < runs; i++) {
    const t = await page.evaluate(openSession);
    result.firstFrame.push(t.firstFrameMs);
    result.received.push(t.receivedMs);
    result.answer.push(t.answerMs);
    await page.evaluate(closeAll);
    await sleep(300);
  }
  result.firstFrameMedianMs = median(result.firstFrame);
  result.receivedMedianMs = median(result.received);
  result.answerMedianMs = median(result.answer);
  for (const n of viewerCounts) {
    for (let i = 0; i < n; i++) await page.evaluate(openSession);
    await sleep(3000);
    const c0 = cpuTicks();
    const f0 = await page.evaluate(framesDecoded);
    const t0 = Date.now();
    await sleep(measureSeconds * 1000);
    const seconds = (Date.now() - t0) / 1000;
    const cpu = ((cpuTicks() - c0) / clockTicks / seconds) * 100;
    const fps = (await page.evaluate(framesDecoded) - f0) / seconds / n;
    const rss = rssMb();
    result.load[n] = { cpuPercent: cpu, rssMb: rss.all, anonMb: rss.anon, fileMb: rss.file, fpsPerViewer: fps };
    await page.evaluate(closeAll);
    await sleep(1000);
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
