// The whole babymon system booted under QEMU (the image of
// scripts/build-vm-image), watched by a real headless Chromium through the
// forwarded port, and driven through the serial shell and QEMU's monitor:
// boot, streaming, supervision, an unplugged camera, a clean power-off, a
// power cut, the read-only root, and the boot times. Judged by the serial
// log and the HTTP answers only. Run it in a network namespace of its own
// (scripts/test-vm does); prints `N passed, N failed` last.
//
//   node tests/vm/vm-test.mjs --work DIR [--port 8080]
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { launch, phonePage, counters, waitFor, sleep, options } from '../browser/lib.mjs';

const o = options({ work: '', port: '8080' });
const repo = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const base = `http://127.0.0.1:${o.port}`;
const results = { passed: 0, failed: 0 };
const figures = [];
const t0 = Date.now();

const say = (line) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${line}`);
function check(name, ok, detail = '') {
  results[ok ? 'passed' : 'failed']++;
  say(`${ok ? 'PASS' : 'FAIL'} ${name}${detail ? ` (${detail})` : ''}`);
  return ok;
}

// One boot of the VM: QEMU, its serial console (kept in a log file and in
// memory) and its monitor.
class Vm {
  constructor(name) {
    this.name = name;
    this.log = '';
    this.serialSock = path.join(o.work, `serial-${name}.sock`);
    this.monitorSock = path.join(o.work, `monitor-${name}.sock`);
    this.logFile = path.join(o.work, `serial-${name}.log`);
    this.exited = null;
    this.marker = 0;
  }

  async start() {
    current = this;
    say(`${this.name}: starting QEMU`);
    this.started = Date.now();
    const args = ['--port', o.port, '--serial', this.serialSock, '--monitor', this.monitorSock, '--data', path.join(o.work, 'data.img')];
    this.proc = spawn(path.join(repo, 'scripts/run-vm'), args, { stdio: ['ignore', 'inherit', 'inherit'] });
    this.exitPromise = new Promise((resolve) => this.proc.on('exit', () => resolve((this.exited = Date.now()))));
    this.serial = await connect(this.serialSock, 20000);
    const out = fs.createWriteStream(this.logFile);
    this.serial.on('data', (d) => {
      const s = d.toString('utf8');
      this.log += s;
      out.write(s);
    });
  }

  // Waits until the serial log matches `re`; returns the match or null.
  async waitLog(re, ms, from = 0) {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      const m = this.log.slice(from).match(re);
      if (m) return m;
      if (this.exited) return null;
      await sleep(200);
    }
    return null;
  }

  // Runs a command in the serial shell; returns its output and exit code.
  // The markers are split with quotes so that the echoed command line does
  // not match them.
  async sh(cmd, ms = 20000) {
    const n = ++this.marker;
    const from = this.log.length;
    this.serial.write(`echo "@@B""${n}@@"; ${cmd}; echo "@@E""${n}@@ $?"\n`);
    const m = await this.waitLog(new RegExp(`@@B${n}@@\\r?\\n([\\s\\S]*?)@@E${n}@@ (\\d+)`), ms, from);
    if (!m) return { out: '', code: -1 };
    // Init's own log lines share the console: leave them out.
    const out = m[1].split(/\r?\n/).filter((l) => !l.startsWith('babymon-init: ') && !/^\[ *\d+\.\d+\]/.test(l)).join('\n');
    return { out: out.trim(), code: Number(m[2]) };
  }

  async monitor(command) {
    const s = await connect(this.monitorSock, 5000);
    s.write(`${command}\n`);
    await sleep(500);
    s.end();
  }

  // Seconds from QEMU's start until /healthz answers 200, or null.
  async healthy(ms) {
    const until = Date.now() + ms;
    while (Date.now() < until && !this.exited) {
      const r = await get('/healthz', 2000);
      if (r.status === 200) return (Date.now() - this.started) / 1000;
      await sleep(500);
    }
    return null;
  }

  async ended(ms) {
    return Promise.race([this.exitPromise, sleep(ms).then(() => null)]);
  }

  async kill() {
    if (!this.exited) {
      this.proc.kill('SIGKILL');
      await this.exitPromise;
    }
    this.serial?.destroy();
  }
}

// Keeps every RTCPeerConnection the page makes, so that the test can read
// the browser's own ICE view with getStats.
async function iceWatched(page) {
  await page.addInitScript(() => {
    const Native = window.RTCPeerConnection;
    window.__pcs = [];
    window.RTCPeerConnection = function (...args) {
      const pc = new Native(...args);
      window.__pcs.push(pc);
      return pc;
    };
    window.RTCPeerConnection.prototype = Native.prototype;
  });
  return page;
}

// The browser's candidates and pairs of its newest peer connection, in a
// line: what a failed check shows.
async function iceReport(page) {
  return page
    .evaluate(async () => {
      const pc = window.__pcs?.[window.__pcs.length - 1];
      if (!pc) return 'no peer connection';
      const byId = new Map();
      (await pc.getStats()).forEach((s) => byId.set(s.id, s));
      const cand = (c) => (c ? `${c.protocol}${c.tcpType ? `/${c.tcpType}` : ''} ${c.address}:${c.port} ${c.candidateType}` : '?');
      const all = [...byId.values()];
      const local = all.filter((s) => s.type === 'local-candidate').map(cand);
      const remote = all.filter((s) => s.type === 'remote-candidate').map(cand);
      const pairs = all.filter((s) => s.type === 'candidate-pair').map((p) => `${cand(byId.get(p.localCandidateId))} -> ${cand(byId.get(p.remoteCandidateId))} ${p.state}${p.nominated ? ' nominated' : ''}`);
      return `ice ${pc.iceConnectionState}; local [${local.join(', ')}]; remote [${remote.join(', ')}]; pairs [${pairs.join('; ')}]`;
    })
    .catch((e) => `no ICE report: ${e.message}`);
}

async function connect(sock, ms) {
  const until = Date.now() + ms;
  for (;;) {
    try {
      return await new Promise((resolve, reject) => {
        const s = net.createConnection(sock, () => resolve(s));
        s.on('error', reject);
      });
    } catch (e) {
      if (Date.now() > until) throw new Error(`${sock}: ${e.message}`);
      await sleep(100);
    }
  }
}

async function get(p, ms = 5000) {
  try {
    const r = await fetch(base + p, { signal: AbortSignal.timeout(ms) });
    const text = await r.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {}
    return { status: r.status, text, json };
  } catch (e) {
    return { status: 0, text: String(e), json: null };
  }
}

// Polls /api/status until `pred` holds; returns the last status.
async function statusUntil(pred, ms) {
  const until = Date.now() + ms;
  let s = null;
  while (Date.now() < until) {
    s = (await get('/api/status')).json;
    if (s && pred(s)) return { ok: true, s };
    await sleep(1000);
  }
  return { ok: false, s };
}

const serveOf = (s) => (s?.system?.services || []).find((x) => x.name === 'serve');
// The camera in use; that /dev/video0 is vivid's is checked with v4l2-ctl.
const isVivid = (s) => s?.source?.kind === 'v4l2' && /^\/dev\/video\d+$/.test(s?.source?.device || '');

async function firstBoot(browser) {
  const vm = new Vm('first');
  await vm.start();
  try {
    const up = await vm.healthy(180000);
    figures.push(`first boot: ${up ? up.toFixed(1) : 'no'} s from QEMU start to /healthz 200`);
    check('boot: /healthz answers 200 through the forwarded port', up !== null, up && `${up.toFixed(1)} s`);
    for (const step of [/boot: mounting proc/, /\/data: \/dev\/vdc (made anew and )?mounted/, /boot: config \/boot\/babymon.toml read, 0 problems/, /module vivid: loaded/, /boot: done in \d+ ms/, /serve: attempt 1/]) {
      check(`boot: serial log shows ${step.source}`, step.test(vm.log));
    }
    const st = await statusUntil((s) => s.system && isVivid(s), 30000);
    const s = st.s || {};
    const card = await vm.sh(`v4l2-ctl -d ${s.source?.device || '/dev/video0'} --info | grep 'Card type'`);
    check('status: the source is the vivid camera', isVivid(s) && /vivid/.test(card.out), `${JSON.stringify(s.source)}, ${card.out}`);
    check('status: a software encoder', /^(x264enc|openh264enc)$/.test(s.encoder?.name || ''), JSON.stringify(s.encoder));
    check("status: init's view under system", !!serveOf(s) && typeof s.system.clock === 'object', `services ${(s.system?.services || []).map((x) => `${x.name}:${x.state}`).join(' ')}`);
    // QEMU's user network leases 10.0.2.15; init reads the address back from the kernel.
    const withAddress = await statusUntil((x) => (x.system?.addresses || []).length > 0, 30000);
    const addrs = withAddress.s?.system?.addresses || [];
    const ipOut = await vm.sh("ip -4 -o addr show | grep -v ' lo ' | awk '{print $4}'");
    check("status: the device's own address under system, as the VM's ip sees it",
      addrs.some((a) => a.address === '10.0.2.15' && ipOut.out.includes(`${a.address}/`)),
      `${JSON.stringify(addrs)}; ip: ${ipOut.out.trim()}`);
    check('status: boot_errors is an empty list on a good boot', Array.isArray(withAddress.s?.system?.boot_errors) && withAddress.s.system.boot_errors.length === 0, JSON.stringify(withAddress.s?.system?.boot_errors));

    const page = await iceWatched(await phonePage(browser));
    await page.goto(base + '/');
    let w = await waitFor(page, (c) => c.framesDecoded >= 30, 60000);
    const ice = w.ok ? '' : `; ${await iceReport(page)}`;
    check('browser: Chromium on the host decodes 30 frames from the VM', w.ok, `${w.c?.framesDecoded} frames, ${w.ms} ms, ${w.c?.transport || ''}${ice}`);
    check('browser: sound packets arrive too', (w.c?.audioPackets || 0) > 0, `${w.c?.audioPackets} packets`);

    // Supervision: serve killed; init starts it again and the page comes back.
    const before = serveOf(s)?.restarts ?? 0;
    const killed = await vm.sh('kill -9 $(pidof babymon) && echo killed');
    check('supervision: babymon serve killed through the serial shell', /killed/.test(killed.out), killed.out);
    const again = await vm.waitLog(/serve: attempt 2/, 30000);
    check('supervision: init starts serve again', !!again);
    const restarted = await statusUntil((x) => (serveOf(x)?.restarts ?? 0) > before && isVivid(x), 60000);
    check('supervision: status shows the restart', restarted.ok, `restarts ${serveOf(restarted.s)?.restarts}`);
    const c0 = (await counters(page))?.framesDecoded ?? 0;
    w = await waitFor(page, (c) => c.reconnects > 0 && c.framesDecoded >= c0 + 30, 60000);
    check('supervision: the page reconnects by itself and decodes again', w.ok, `${w.c?.reconnects} reconnects, ${w.c?.framesDecoded} frames${w.ok ? '' : `; ${await iceReport(page)}`}`);

    // An unplugged camera, then the camera back.
    const dev = restarted.s?.source?.device || '/dev/video0';
    const beforeCut = await counters(page);
    const cut = await vm.sh(`v4l2-ctl -d ${dev} --set-ctrl disconnect=1`);
    check('camera: vivid disconnected with v4l2-ctl', cut.code === 0, cut.out);
    const gone = await statusUntil((x) => x.source?.kind === 'test' || !x.source?.device, 60000);
    check('camera: serve lets the unplugged device go', gone.ok, JSON.stringify(gone.s?.source));
    // The last user of the device may take a moment to close it.
    const reload = await vm.sh('for i in 1 2 3 4 5 6 7 8 9 10; do modprobe -r vivid 2>/dev/null && break; sleep 1; done; grep "^vivid " /proc/modules; modprobe vivid && echo reloaded', 40000);
    let holders = '';
    if (/^vivid /m.test(reload.out)) {
      // Which process still holds a video or media node open.
      const h = await vm.sh('for p in /proc/[0-9]*; do for f in $p/fd/*; do l=$(readlink $f); case $l in *video*|*media*|*v4l*) echo "pid ${p#/proc/} $(cat $p/comm) $l";; esac; done; done 2>/dev/null');
      holders = `; holders: ${h.out.replace(/\n/g, ' | ') || 'none'}`;
    }
    check('camera: vivid unloaded and loaded again', /reloaded/.test(reload.out) && !/^vivid /m.test(reload.out), reload.out.replace(/\n/g, ' | ') + holders);
    const back = await statusUntil(isVivid, 60000);
    check('camera: the stream comes back from vivid without a reboot', back.ok, JSON.stringify(back.s?.source));
    const c1 = (await counters(page))?.framesDecoded ?? 0;
    w = await waitFor(page, (c) => c.framesDecoded >= c1 + 30, 60000);
    check('camera: the page decodes the camera again', w.ok, `${w.c?.framesDecoded} frames`);
    figures.push(`camera unplugged and back: the page made ${(w.c?.sessions ?? 0) - (beforeCut?.sessions ?? 0)} new sessions`);
    await page.close();

    // Read-only root and what /data holds.
    const ro = await vm.sh("awk '$2 == \"/\" { print $4 }' /proc/mounts; touch /probe 2>&1");
    check('read-only: / is mounted ro and refuses writes', /^ro\b/.test(ro.out) && /Read-only/.test(ro.out), ro.out.replace(/\n/g, ' | '));
    const data = await vm.sh('cd /data && find . -mindepth 1 | sort');
    const files = data.out.split('\n').filter(Boolean);
    const unexpected = files.filter((f) => !/^\.\/(lost\+found|babymon|babymon\/(clock|serve|serve\/gstreamer-registry\.bin|logs?(\/.*)?))$/.test(f));
    check('read-only: /data holds only what init keeps', data.code === 0 && unexpected.length === 0, files.join(' '));

    // A clean power-off through QEMU's power button.
    const from = vm.log.length;
    const pressed = Date.now();
    await vm.monitor('system_powerdown');
    const end = await vm.ended(15000);
    const tail = vm.log.slice(from);
    check('power: QEMU ends within 15 s of system_powerdown', end !== null, end && `${((end - pressed) / 1000).toFixed(1)} s`);
    check('power: init stops the services', /serve: stop(ping|ped)/.test(tail));
    check('power: init unmounts /data', /\/data: unmounted/.test(tail));
    check('power: init powers off', /shutdown: power.?off now/.test(tail));
  } finally {
    await vm.kill();
  }
}

async function secondBoot(browser) {
  const vm = new Vm('second');
  await vm.start();
  try {
    const up = await vm.healthy(180000);
    figures.push(`next boot: ${up ? up.toFixed(1) : 'no'} s from QEMU start to /healthz 200`);
    check('next boot: /healthz 200', up !== null, up && `${up.toFixed(1)} s`);
    check('next boot: /data mounted clean (no repair)', /\/data: \/dev\/vdc mounted/.test(vm.log) && !/repaired|made anew/.test(vm.log));
    check('next boot: the saved time is restored', /clock set to \d+ from the saved time/.test(vm.log));
    const year = await vm.sh('date +%Y');
    check('next boot: the clock is not in 2000', Number(year.out) > 2020, year.out);
    // A power cut: QEMU killed while /data is mounted read-write.
    await vm.sh('sync');
  } finally {
    await vm.kill();
  }
  say('power cut: QEMU killed without warning');

  const cut = new Vm('after-cut');
  await cut.start();
  try {
    const up = await cut.healthy(180000);
    check('after a power cut: /healthz 200', up !== null, up && `${up.toFixed(1)} s`);
    check('after a power cut: /data mounted (repaired if needed)', /\/data: \/dev\/vdc (repaired and )?mounted/.test(cut.log));
    const page = await iceWatched(await phonePage(browser));
    await page.goto(base + '/');
    const w = await waitFor(page, (c) => c.framesDecoded >= 30, 60000);
    const ice = w.ok ? '' : `; ${await iceReport(page)}`;
    check('after a power cut: Chromium decodes 30 frames', w.ok, `${w.c?.framesDecoded} frames, ${w.ms} ms${ice}`);
    await page.close();
  } finally {
    await cut.kill();
  }
}

// /proc/net/dev lists the interfaces of this process's own namespace: only
// loopback and the veth pair that scripts/test-vm makes there.
const nets = fs
  .readFileSync('/proc/net/dev', 'utf8')
  .split('\n')
  .slice(2)
  .map((l) => l.split(':')[0].trim())
  .filter(Boolean)
  .sort();
if (nets.join(' ') !== 'lo vmtest0 vmtest1') {
  console.error(`vm-test: run me in a network namespace with only lo, vmtest0 and vmtest1 (scripts/test-vm makes it); interfaces here: ${nets.join(' ')}`);
  process.exit(2);
}
if (!o.work) {
  console.error('usage: node tests/vm/vm-test.mjs --work DIR [--port N]');
  process.exit(2);
}
let current = null;
process.on('SIGTERM', async () => {
  await current?.kill();
  process.exit(143);
});
const browser = await launch();
try {
  await firstBoot(browser);
  await secondBoot(browser);
} catch (e) {
  check('the VM test ran to its end', false, e.stack || String(e));
} finally {
  await browser.close().catch(() => {});
}
for (const f of figures) say(f);
say(`serial logs in ${o.work}`);
console.log(`${results.passed} passed, ${results.failed} failed`);
process.exit(results.failed ? 1 : 0);
