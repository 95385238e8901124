// Drives headless Chromium in the phone's network namespace against babymon
// serve behind the test relay (tests/tunnel/relay.py, the stand-in for
// Cloudflare's edge and cloudflared). Run by tests/tunnel/run and
// scripts/soak-tunnel, which build the namespaces.
//
//   node tunnel.mjs checks URL RELAY_CONTROL    the remote-path checks
//   node tunnel.mjs soak URL RELAY_CONTROL SECONDS
//
// Prints one "ok - ..." or "not ok - ..." line per check, and figures on
// lines starting with "#".

import { chromium } from 'playwright-core';
import net from 'node:net';
import { phonePage, counters } from './lib.mjs';

const [mode, url, control, soakArg] = process.argv.slice(2);
if (!['checks', 'soak'].includes(mode) || !url || !control) {
  console.error('usage: node tunnel.mjs checks|soak URL RELAY_CONTROL [SECONDS]');
  process.exit(2);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let passed = 0;
let failed = 0;
function check(ok, what, detail = '') {
  if (ok) passed++;
  else failed++;
  console.log(`${ok ? 'ok' : 'not ok'} - ${what}${detail ? ` (${detail})` : ''}`);
  return ok;
}

// One command to the relay; its JSON answer.
function relay(cmd) {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(control, () => s.write(cmd + '\n'));
    let buf = '';
    s.on('data', (d) => {
      buf += d;
      if (buf.includes('\n')) {
        s.end();
        const reply = JSON.parse(buf);
        if (reply.error) reject(new Error(`relay: ${reply.error}`));
        else resolve(reply);
      }
    });
    s.on('error', reject);
  });
}

// Keeps every RTCPeerConnection the page makes, so that the test reads the
// same statistics the page does, across reconnections.
const hook = () => {
  const Orig = window.RTCPeerConnection;
  window.__pcs = [];
  function Hooked(...args) {
    const pc = new Orig(...args);
    window.__pcs.push(pc);
    return pc;
  }
  Hooked.prototype = Orig.prototype;
  Hooked.generateCertificate = Orig.generateCertificate;
  window.RTCPeerConnection = Hooked;
};

// Per connection: frames decoded, fps, packets lost, round trip and the
// protocol of the chosen candidate pair, as the phone's Chromium sees them.
const readStats = async () => {
  const out = [];
  for (const [i, pc] of window.__pcs.entries()) {
    const s = { i, state: pc.connectionState, frames: 0, fps: 0, lost: 0, rtt: null, proto: null,
      nacks: 0, plis: 0, freezes: 0 };
    if (pc.connectionState !== 'closed') {
      const report = await pc.getStats();
      const byId = new Map();
      report.forEach((r) => byId.set(r.id, r));
      report.forEach((r) => {
        if (r.type === 'inbound-rtp' && r.kind === 'video') {
          s.frames = r.framesDecoded || 0;
          s.fps = r.framesPerSecond || 0;
          s.lost = r.packetsLost || 0;
          s.nacks = r.nackCount || 0;
          s.plis = r.pliCount || 0;
          s.freezes = r.freezeCount || 0;
        }
        if (r.type === 'transport' && r.selectedCandidatePairId) {
          const pair = byId.get(r.selectedCandidatePairId);
          if (pair) {
            s.rtt = pair.currentRoundTripTime ?? null;
            s.proto = byId.get(pair.localCandidateId)?.protocol ?? null;
          }
        }
      });
    }
    out.push(s);
  }
  return out;
};

class Viewer {
  constructor(page) {
    this.page = page;
    this.best = new Map(); // connection index -> most frames seen
    this.navigations = 0;
    this.sessions = []; // WHEP session URLs the page was given
    page.on('framenavigated', (f) => {
      if (f === page.mainFrame()) this.navigations++;
    });
    page.on('response', (r) => {
      if (r.request().method() === 'POST' && r.status() === 201) {
        const loc = r.headers()['location'];
        if (loc) this.sessions.push(loc);
      }
    });
  }

  static async open(browser) {
    const page = await phonePage(browser);
    await page.addInitScript(hook);
    const v = new Viewer(page);
    await page.goto(url, { waitUntil: 'load', timeout: 30000 });
    return v;
  }

  async stats() {
    const list = await this.page.evaluate(readStats);
    for (const s of list) this.best.set(s.i, Math.max(this.best.get(s.i) || 0, s.frames));
    const live = list.filter((s) => s.state === 'connected');
    return { list, live: live[live.length - 1] || null, total: this.total() };
  }

  total() {
    let n = 0;
    for (const f of this.best.values()) n += f;
    return n;
  }

  // Waits until `count` more frames than `from` are decoded; the total.
  async framesPast(from, count, timeoutMs) {
    const end = Date.now() + timeoutMs;
    let s;
    do {
      s = await this.stats();
      if (s.total - from >= count) break;
      await sleep(250);
    } while (Date.now() < end);
    return s;
  }

  // This viewer's entry in /api/status (viewers.list), found by the session
  // id the page holds (window.babymon.session) or, failing that, in the
  // session URL the page was given.
  async serverView() {
    const st = await this.page.evaluate(async () => {
      const r = await fetch('/api/status', { cache: 'no-store' });
      return r.ok ? r.json() : { http: r.status };
    });
    const list = st?.viewers?.list;
    if (!Array.isArray(list)) return { status: st, viewer: null };
    const session = (await counters(this.page))?.session || '';
    const url = this.sessions[this.sessions.length - 1] || '';
    const viewer = list.find((v) => v.id && (session.startsWith(v.id) || url.includes(v.id))) || null;
    return { status: st, viewer };
  }

  // The page's own counters (window.babymon).
  counters() {
    return counters(this.page);
  }

  // What the page's status panel says, one line.
  async panelText() {
    const open = await this.page.evaluate(() => !document.getElementById('panel')?.hidden);
    if (!open) await this.page.click('#info').catch(() => {});
    await sleep(1500);
    return (await this.page.evaluate(() => document.getElementById('facts')?.innerText || ''))
      .replace(/\s+/g, ' ').trim();
  }

  close() {
    return this.page.context().close();
  }
}

async function decodesOver(browser, label, proto) {
  const v = await Viewer.open(browser);
  const s = await v.framesPast(0, 60, 30000);
  check(s.total >= 60, `${label}: Chromium decodes 60 frames through the relay`, `${s.total} frames`);
  check(s.live?.proto === proto, `${label}: the phone's chosen candidate pair is ${proto}`,
    `${s.live?.proto ?? 'no connected pair'}`);
  const { status, viewer } = await v.serverView();
  check(viewer?.path === 'tunnel', `${label}: /api/status shows the viewer on path "tunnel"`,
    viewer ? `path "${viewer.path}"` : `no viewer in ${JSON.stringify(status).slice(0, 200)}`);
  check(viewer?.transport === proto, `${label}: /api/status shows transport "${proto}"`,
    viewer ? `transport "${viewer.transport}"` : 'no viewer');
  // The page learns its path from /api/status, which it reads every 5 s.
  let c;
  for (let t = 0; t < 40; t++) {
    c = await v.counters();
    if (c?.path && c?.transport) break;
    await sleep(250);
  }
  check(c?.path === 'tunnel' && c?.transport === proto,
    `${label}: the page knows it is on "tunnel, ${proto}"`, `window.babymon: ${c?.path}, ${c?.transport}`);
  const text = await v.panelText();
  check(text.includes(`tunnel, ${proto}`), `${label}: the page's status panel shows "tunnel, ${proto}"`,
    text.slice(0, 120));
  return v;
}

async function checks(browser) {
  await relay('udp on');
  let v = await decodesOver(browser, 'udp', 'udp');
  await v.close();

  await relay('udp off');
  v = await decodesOver(browser, 'udp off', 'tcp');
  await v.close();
  await relay('udp on');

  await relay('delay 150');
  await relay('loss 2');
  v = await Viewer.open(browser);
  let s = await v.framesPast(0, 60, 45000);
  check(s.total >= 60, 'lossy (150 ms each way, 2 % loss): frames decode', `${s.total} frames`);
  const r0 = await relay('stats');
  const from = s.total;
  const window = 20;
  for (let i = 0; i < window; i += 5) {
    await sleep(5000);
    s = await v.stats();
    const l = s.live;
    console.log(`# lossy: ${i + 5} s: ${s.total - from} frames decoded, ${l?.fps ?? '?'} frames/s, ` +
      `round trip ${l?.rtt != null ? Math.round(l.rtt * 1000) : '?'} ms, ${l?.lost ?? '?'} packets lost, ` +
      `${l?.nacks ?? '?'} NACKs, ${l?.plis ?? '?'} PLIs, ${l?.freezes ?? '?'} freezes`);
  }
  const r = await relay('stats');
  const carried = (x) => x.udp_packets_to_pi + x.udp_packets_to_phone + x.udp_packets_lost;
  console.log(`# lossy: the relay dropped ${r.udp_packets_lost - r0.udp_packets_lost} of ` +
    `${carried(r) - carried(r0)} UDP packets in those ${window} s`);
  check(s.total - from >= 60, `lossy: frames keep decoding over ${window} s`,
    `${s.total - from} frames, ${((s.total - from) / window).toFixed(1)} frames/s on average`);
  const pc = await v.counters();
  console.log(`# lossy: the page's counters: round trip ${pc?.rttMs} ms, ${pc?.fps} frames/s, ` +
    `${pc?.packetsLost} packets lost, ${pc?.nackCount} NACKs`);
  check(pc?.rttMs >= 300, "lossy: the page's own round trip shows the added delay", `${pc?.rttMs} ms`);
  check(pc?.fps >= 10, "lossy: the page's own frame rate", `${pc?.fps} frames/s`);
  check(pc?.nackCount > 0 && pc?.packetsLost >= 0, "lossy: the page counts the resends it asked for",
    `${pc?.nackCount} NACKs, ${pc?.packetsLost} lost`);
  check(s.live?.rtt >= 0.3, "lossy: Chromium's stats show the added round trip", `${s.live?.rtt} s`);
  await v.close();
  await relay('delay 0');
  await relay('loss 0');

  v = await Viewer.open(browser);
  s = await v.framesPast(0, 60, 30000);
  await v.page.evaluate(() => { window.__sameDocument = true; });
  const navBefore = v.navigations;
  const sessionsBefore = (await v.counters())?.sessions ?? 0;
  await relay('stop');
  const atStop = (await v.stats()).total;
  await sleep(10000);
  const duringOutage = (await v.stats()).total - atStop;
  await relay('start');
  const atStart = (await v.stats()).total;
  const t0 = Date.now();
  s = await v.framesPast(atStart, 60, 60000);
  const back = Date.now() - t0;
  check(duringOutage < 30, 'outage: no frames while the relay is stopped 10 s', `${duringOutage} frames`);
  check(s.total - atStart >= 60, 'outage: the page decodes again after the relay returns',
    `${s.total - atStart} frames, ${(back / 1000).toFixed(1)} s after the restart`);
  const same = await v.page.evaluate(() => window.__sameDocument === true);
  check(same && v.navigations === navBefore, 'outage: without a reload');
  const after = await v.counters();
  console.log(`# outage: back ${(back / 1000).toFixed(1)} s after the restart; the page made ` +
    `${(after?.sessions ?? 0) - sessionsBefore} new session(s), ${v.best.size} peer connection(s) in all, ` +
    `now "${after?.state}" on ${after?.path}, ${after?.transport}`);
  await v.close();
}

async function soak(browser, seconds) {
  const v = await Viewer.open(browser);
  const t0 = Date.now();
  let prev = 0;
  let stalls = 0;
  console.log('# minute  frames   fps  rtt_ms  lost  udp_flows_opened  idle_drops  ' +
    'longest_phone_silence_s  path/transport');
  for (let minute = 1; (Date.now() - t0) / 1000 < seconds; minute++) {
    await sleep(Math.min(60000, t0 + seconds * 1000 - Date.now()));
    const s = await v.stats();
    const r = await relay('stats');
    const { viewer } = await v.serverView().catch(() => ({ viewer: null }));
    if (s.total - prev < 100) stalls++;
    console.log(`# ${String(minute).padStart(6)}  ${String(s.total).padStart(6)}  ` +
      `${String(s.live?.fps ?? 0).padStart(4)}  ${String(s.live?.rtt != null ? Math.round(s.live.rtt * 1000) : '-').padStart(6)}  ` +
      `${String(s.live?.lost ?? '-').padStart(4)}  ${String(r.udp_flows_opened).padStart(16)}  ` +
      `${String(r.udp_flows_idle_dropped).padStart(10)}  ` +
      `${String(r.udp_longest_phone_silence_s).padStart(23)}  ${viewer ? `${viewer.path}/${viewer.transport}` : '?'}`);
    prev = s.total;
  }
  const s = await v.stats();
  const r = await relay('stats');
  const mins = ((Date.now() - t0) / 60000).toFixed(1);
  check(stalls === 0, `soak: frames decoded in every minute of ${mins}`, `${stalls} minutes without`);
  check(v.best.size === 1 && s.live !== null, 'soak: one peer connection held the whole time',
    `${v.best.size} connections`);
  check(r.udp_flows_idle_dropped === 0, 'soak: the relay dropped no flow as idle',
    `${r.udp_flows_idle_dropped} dropped, idle limit ${r.udp_idle_s} s`);
  await v.close();
}

// playwright-core gives each launch a fresh profile directory of its own.
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  if (mode === 'checks') await checks(browser);
  else await soak(browser, Number(soakArg || 3600));
} catch (e) {
  check(false, 'the browser run finished', e.message.split('\n')[0]);
} finally {
  await browser.close();
}
console.log(`# browser: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
