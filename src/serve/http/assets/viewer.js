// babymon viewer: receives the camera and microphone over WHEP (WebRTC),
// plays the sound after one tap, shows the sound level and the connection
// state, and reconnects by itself after any failure. window.babymon holds
// counters for people and tests to read.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const video = $('video');
  const soundButton = $('sound');
  const soundLabel = $('sound-label');
  const stateText = $('state-text');
  const dot = $('dot');
  const levelBar = $('level');
  const infoButton = $('info');
  const panel = $('panel');
  const facts = $('facts');

  const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000, 30000];
  // babymon's answer carries its own reachable candidates, and it learns the
  // viewer's address from the first ICE check, so the offer goes at once
  // with the candidates found so far; later ones follow by PATCH.
  const GATHER_MS = 0;
  const NO_PICTURE_MS = 10000; // no new frame for this long: start again
  const DISCONNECTED_MS = 4000; // ICE "disconnected" this long: start again
  const STABLE_MS = 10000; // live this long: the back-off starts afresh
  const STATUS_EVERY_MS = 5000;

  const b = (window.babymon = {
    state: 'connecting',
    framesDecoded: 0,
    audioBytes: 0,
    audioPackets: 0,
    audioLevel: 0,
    reconnects: 0,
    sessions: 0,
    session: '',
    path: '',
    transport: '',
    lastError: '',
    fps: 0, // frames per second decoded, as the browser counts them
    packetsLost: 0, // video packets never received, after resends
    nackCount: 0, // resends this viewer asked for
    rttMs: null, // round trip on the chosen candidate pair
    answerMs: null, // from the start of an attempt to the answer
    firstFrameMs: null, // from the start of the first attempt to its first frame
    lastFirstFrameMs: null, // the same for the latest attempt
    muted: true,
    meter: 0,
  });

  let pc = null;
  let sessionUrl = null;
  let generation = 0; // bumps on every new attempt; old callbacks see a stale value
  let attempt = 0;
  let retryTimer = null;
  let watchTimer = null;
  let started = 0;
  let lastFrames = 0;
  let lastFrameAt = 0;
  let liveSince = 0;
  let disconnectedAt = 0;
  let stateWords = 'connecting';

  function show(state, words, kind) {
    b.state = state;
    stateWords = words;
    stateText.textContent = words;
    dot.className = 'dot' + (kind ? ' ' + kind : '');
  }

  // --- connecting --------------------------------------------------------

  async function connect() {
    const gen = ++generation;
    clearTimeout(retryTimer);
    show('connecting', 'connecting', '');
    started = performance.now();
    lastFrames = 0;
    lastFrameAt = 0;
    liveSince = 0;
    disconnectedAt = 0;
    // What a new connection may find different.
    Object.assign(b, { path: '', transport: '', rttMs: null, fps: 0 });
    const mine = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
    pc = mine;
    const v = mine.addTransceiver('video', { direction: 'recvonly' });
    const a = mine.addTransceiver('audio', { direction: 'recvonly' });
    // The receivers' tracks exist from the start and carry media once
    // connected, so the element gets its stream once, complete.
    video.srcObject = new MediaStream([v.receiver.track, a.receiver.track]);
    video.play().catch(() => {});
    meter.attach(a.receiver.track);
    const firstFrame = () => {
      if (gen !== generation) return;
      b.lastFirstFrameMs = Math.round(performance.now() - started);
      if (b.firstFrameMs === null) b.firstFrameMs = b.lastFirstFrameMs;
    };
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(firstFrame);
    else video.addEventListener('loadeddata', firstFrame, { once: true });
    mine.onconnectionstatechange = () => {
      if (gen !== generation) return;
      const s = mine.connectionState;
      if (s === 'failed') fail('connection failed');
      disconnectedAt = s === 'disconnected' ? performance.now() : 0;
    };
    const late = [];
    let posted = false;
    mine.onicecandidate = (e) => {
      if (gen !== generation || !posted || !e.candidate || !e.candidate.candidate) return;
      late.push(e.candidate);
      if (sessionUrl) sendCandidates(gen, late.splice(0));
    };

    try {
      await mine.setLocalDescription(await mine.createOffer());
      if (GATHER_MS > 0) await gathered(mine, GATHER_MS);
      if (gen !== generation) return;
      posted = true;
      const res = await fetch('/whep', {
        method: 'POST',
        headers: { 'Content-Type': 'application/sdp' },
        body: mine.localDescription.sdp,
        credentials: 'same-origin',
        cache: 'no-store',
      });
      if (res.status === 201 && gen !== generation) {
        // Given up on while the answer was on its way: free the place.
        endSession(new URL(res.headers.get('Location'), location.href).href);
        return;
      }
      if (gen !== generation) return;
      if (res.status === 401) {
        location.reload(); // the password form
        return;
      }
      if (res.status !== 201) {
        const reason = (await res.text()).trim() || 'HTTP ' + res.status;
        const wait = parseInt(res.headers.get('Retry-After') || '', 10);
        fail(res.status === 503 && /limit/.test(reason) ? 'too many viewers' : reason, wait);
        return;
      }
      b.answerMs = Math.round(performance.now() - started);
      sessionUrl = new URL(res.headers.get('Location'), location.href).href;
      b.session = sessionUrl.split('/').pop();
      b.sessions += 1;
      await mine.setRemoteDescription({ type: 'answer', sdp: await res.text() });
      if (late.length) sendCandidates(gen, late.splice(0));
      clearInterval(watchTimer);
      watchTimer = setInterval(() => watch(gen, mine), 500);
      refreshStatus();
    } catch (err) {
      if (gen === generation) fail(String((err && err.message) || err));
    }
  }

  function gathered(conn, ms) {
    if (conn.iceGatheringState === 'complete') return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        conn.removeEventListener('icegatheringstatechange', check);
        resolve();
      };
      const check = () => conn.iceGatheringState === 'complete' && done();
      conn.addEventListener('icegatheringstatechange', check);
      setTimeout(done, ms);
    });
  }

  // Late candidates as an application/trickle-ice-sdpfrag body.
  function sendCandidates(gen, candidates) {
    const sdp = (pc && pc.localDescription && pc.localDescription.sdp) || '';
    const ufrag = (sdp.match(/a=ice-ufrag:(.*)/) || [])[1];
    const pwd = (sdp.match(/a=ice-pwd:(.*)/) || [])[1];
    const wanted = candidates.filter((c) => !/\s\S+\.local\s/.test(c.candidate));
    if (!ufrag || !pwd || !wanted.length || !sessionUrl) return;
    const byMid = new Map();
    for (const c of wanted) {
      const mid = c.sdpMid || '0';
      if (!byMid.has(mid)) byMid.set(mid, []);
      byMid.get(mid).push(c.candidate);
    }
    let frag = `a=ice-ufrag:${ufrag.trim()}\r\na=ice-pwd:${pwd.trim()}\r\n`;
    for (const [mid, lines] of byMid) {
      frag += `m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:${mid}\r\n`;
      for (const line of lines) frag += `a=${line}\r\n`;
    }
    fetch(sessionUrl, {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/trickle-ice-sdpfrag' },
      body: frag,
      credentials: 'same-origin',
    }).then(
      (res) => res.ok || res.status === 405 || gen !== generation || console.warn('babymon: PATCH', res.status),
      () => {},
    );
  }

  function endSession(url) {
    fetch(url, { method: 'DELETE', keepalive: true, credentials: 'same-origin' }).catch(() => {});
  }

  function teardown() {
    clearInterval(watchTimer);
    watchTimer = null;
    if (pc) {
      pc.onicecandidate = pc.onconnectionstatechange = null;
      pc.close();
      pc = null;
    }
    if (sessionUrl) endSession(sessionUrl);
    sessionUrl = null;
  }

  // Any failure ends up here: give up this connection and try again later.
  function fail(reason, retryAfterS) {
    generation += 1;
    b.lastError = reason;
    teardown();
    let delay = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)];
    if (retryAfterS > 0) delay = Math.max(delay, retryAfterS * 1000);
    attempt += 1;
    const until = performance.now() + delay;
    const tick = () => {
      const left = Math.ceil((until - performance.now()) / 1000);
      if (left <= 0) {
        b.reconnects += 1;
        connect();
        return;
      }
      show('reconnecting', `${reason}: reconnecting in ${left} s`, 'bad');
      retryTimer = setTimeout(tick, Math.min(1000, until - performance.now() + 5));
    };
    clearTimeout(retryTimer);
    tick();
  }

  function restartNow() {
    attempt = 0;
    generation += 1;
    teardown();
    connect();
  }

  // --- watching ----------------------------------------------------------

  async function watch(gen, conn) {
    let report;
    try {
      report = await conn.getStats();
    } catch (_) {
      return;
    }
    if (gen !== generation) return;
    const now = performance.now();
    let frames = 0;
    let localId = '';
    const byId = new Map();
    report.forEach((s) => {
      byId.set(s.id, s);
      if (s.type === 'inbound-rtp' && s.kind === 'video') {
        frames = s.framesDecoded || 0;
        b.frameWidth = s.frameWidth || 0;
        b.frameHeight = s.frameHeight || 0;
        b.framesDropped = s.framesDropped || 0;
        b.decoder = s.decoderImplementation || '';
        b.fps = s.framesPerSecond || 0;
        b.packetsLost = s.packetsLost || 0;
        b.nackCount = s.nackCount || 0;
        b.jitterBufferMs = s.jitterBufferEmittedCount ? Math.round((1000 * s.jitterBufferDelay) / s.jitterBufferEmittedCount) : 0;
      }
      if (s.type === 'inbound-rtp' && s.kind === 'audio') {
        b.audioBytes = s.bytesReceived || 0;
        b.audioPackets = s.packetsReceived || 0;
        if (typeof s.audioLevel === 'number') b.audioLevel = s.audioLevel;
      }
      if (s.type === 'transport' && s.selectedCandidatePairId) localId = s.selectedCandidatePairId;
    });
    const pair = byId.get(localId);
    const local = pair && byId.get(pair.localCandidateId);
    if (local && local.protocol && !b.transport) b.transport = local.protocol;
    if (pair && typeof pair.currentRoundTripTime === 'number') b.rttMs = Math.round(pair.currentRoundTripTime * 1000);
    b.framesDecoded = frames;

    if (frames > lastFrames) {
      lastFrames = frames;
      lastFrameAt = now;
      if (b.state !== 'live') {
        liveSince = now;
        show('live', 'live', 'live');
        refreshStatus();
      }
    }
    if (b.state === 'live' && liveSince && now - liveSince > STABLE_MS) attempt = 0;
    if (document.hidden) return; // phones stop drawing in the background
    if (disconnectedAt && now - disconnectedAt > DISCONNECTED_MS) return fail('connection lost');
    const quietSince = lastFrameAt || started;
    if (now - quietSince > NO_PICTURE_MS) fail(lastFrameAt ? 'picture stopped' : 'no picture');
  }

  // --- sound -------------------------------------------------------------

  // The level comes from a WebAudio analyser on the received track once a
  // tap has allowed audio; before that, from the receiver's own statistics.
  const meter = {
    ctx: null,
    analyser: null,
    source: null,
    track: null,
    data: null,
    attach(track) {
      this.track = track;
      if (this.ctx) this.connect();
    },
    start() {
      const AC = window.AudioContext || window.webkitAudioContext;
      if (!AC) return;
      if (!this.ctx) this.ctx = new AC();
      this.ctx.resume().catch(() => {});
      if (this.track) this.connect();
    },
    connect() {
      if (this.source) this.source.disconnect();
      this.source = this.ctx.createMediaStreamSource(new MediaStream([this.track]));
      this.analyser = this.ctx.createAnalyser();
      this.analyser.fftSize = 1024;
      this.data = new Float32Array(this.analyser.fftSize);
      this.source.connect(this.analyser); // not to the speakers: the video element plays it
    },
    level() {
      if (this.analyser && this.ctx.state === 'running') {
        this.analyser.getFloatTimeDomainData(this.data);
        let sum = 0;
        for (const v of this.data) sum += v * v;
        return Math.sqrt(sum / this.data.length);
      }
      return b.state === 'live' ? b.audioLevel : 0;
    },
  };

  function drawLevel() {
    const amplitude = meter.level();
    b.meter = amplitude;
    const db = 20 * Math.log10(Math.max(amplitude, 1e-5));
    const pct = Math.max(0, Math.min(100, ((db + 60) / 60) * 100));
    levelBar.style.width = pct.toFixed(1) + '%';
    requestAnimationFrame(drawLevel);
  }

  function setMuted(muted) {
    video.muted = muted;
    b.muted = muted;
    soundButton.classList.toggle('on', !muted);
    soundButton.setAttribute('aria-pressed', String(!muted));
    soundLabel.textContent = muted ? 'Tap for sound' : 'Sound on';
    if (!muted) {
      meter.start();
      video.play().catch(() => {});
    }
  }

  soundButton.addEventListener('click', () => setMuted(!video.muted));
  video.addEventListener('click', () => video.muted && setMuted(false));
  video.addEventListener('dblclick', () => {
    const el = document.documentElement;
    if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
    else if (el.requestFullscreen) el.requestFullscreen().catch(() => {});
  });

  // --- status panel ------------------------------------------------------

  infoButton.addEventListener('click', () => {
    const open = panel.hidden;
    panel.hidden = !open;
    infoButton.setAttribute('aria-expanded', String(open));
    if (open) refreshStatus();
  });

  let statusBusy = false;
  async function refreshStatus() {
    if (statusBusy) return;
    statusBusy = true;
    try {
      const res = await fetch('/api/status', { credentials: 'same-origin', cache: 'no-store' });
      if (res.status === 401) return location.reload();
      if (res.ok) render(await res.json());
    } catch (_) {
      // The connection state already says what is wrong.
    } finally {
      statusBusy = false;
    }
  }

  function render(s) {
    const me = (s.viewers.list || []).find((v) => v.id && b.session.startsWith(v.id));
    if (me) {
      b.path = me.path || b.path;
      b.transport = me.transport || b.transport;
    }
    if (panel.hidden) return;
    const rows = [['State', stateWords]];
    const how = [b.path, b.transport].filter(Boolean).join(', ');
    rows.push(['You', how || 'not known yet']);
    const src = s.source || {};
    rows.push(['Camera', [src.kind, src.device, src.format].filter(Boolean).join(' · ') || s.pipeline]);
    if (s.media_error) rows.push(['Problem', s.media_error]);
    if (s.encoder && s.encoder.name) rows.push(['Encoder', `${s.encoder.name} (${s.encoder.reason})`]);
    const v = s.video || {};
    if (v.width) rows.push(['Video', `${v.width}×${v.height} at ${v.framerate}/s, ${v.bitrate_kbps} kbit/s`]);
    if (s.audio && s.audio.kind) rows.push(['Sound', [s.audio.kind, s.audio.device].filter(Boolean).join(' · ')]);
    rows.push(['Viewers', `${s.viewers.count} of ${s.viewers.max}`]);
    rows.push(['Received', `${b.framesDecoded} frames, ${Math.round(b.audioBytes / 1024)} KiB sound`]);
    const link = [`${Math.round(b.fps)} frames/s`, `${b.packetsLost} packets lost`];
    if (b.rttMs != null) link.unshift(`round trip ${b.rttMs} ms`);
    rows.push(['Link', link.join(', ')]);
    const sys = s.system;
    if (sys) {
      if (sys.tunnel) rows.push(['Tunnel', sys.tunnel]);
      if (sys.wifi) {
        const w = sys.wifi;
        const dbm = w.signal_dbm != null ? `, ${w.signal_dbm} dBm` : '';
        rows.push(['Wi-Fi', `${w.ssid} (${w.connected ? 'connected' : 'not connected'}${dbm})`]);
      }
      if (sys.clock) rows.push(['Clock', sys.clock.synced ? `set (${sys.clock.source})` : 'not set yet']);
      if (sys.temperature_c != null) rows.push(['Temperature', `${Number(sys.temperature_c).toFixed(1)} °C`]);
      for (const svc of sys.services || []) rows.push([svc.name, svc.state + (svc.restarts ? `, ${svc.restarts} restarts` : '')]);
      for (const a of sys.addresses || []) rows.push(['Address', `${a.address} (${a.interface})`]);
      for (const e of sys.boot_errors || []) rows.push(['Boot', e]);
      for (const e of sys.config_errors || []) rows.push(['Config', e]);
    }
    rows.push(['Version', `${s.version}, up ${formatDuration(s.uptime_s)}`]);
    facts.replaceChildren();
    for (const [k, val] of rows) {
      const dt = document.createElement('dt');
      const dd = document.createElement('dd');
      dt.textContent = k;
      dd.textContent = val;
      facts.append(dt, dd);
    }
  }

  function formatDuration(s) {
    if (s < 120) return `${s} s`;
    if (s < 7200) return `${Math.round(s / 60)} min`;
    if (s < 172800) return `${Math.round(s / 3600)} h`;
    return `${Math.round(s / 86400)} days`;
  }

  // --- page life ---------------------------------------------------------

  window.addEventListener('pagehide', () => {
    generation += 1;
    clearTimeout(retryTimer);
    teardown();
  });
  window.addEventListener('pageshow', (e) => e.persisted && restartNow());
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && b.state === 'reconnecting') restartNow();
  });

  setInterval(refreshStatus, STATUS_EVERY_MS);
  requestAnimationFrame(drawLevel);
  connect();
})();
