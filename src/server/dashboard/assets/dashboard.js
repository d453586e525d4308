// plugsync dashboard: keeps the server-rendered pages live over server-sent events
// (GET /api/v1/events), filters the fleet table, and sends the rollout actions with the API
// token entered once and kept for this tab only (sessionStorage). No dependencies, no build.
//
// The fleet page re-renders its row cells from the events (the same words and classes as
// src/server/dashboard/render.rs); the plugin page fetches its live part, rendered by the
// server, whenever an event concerns the plugin. Text from events is only ever set with
// textContent, never parsed as HTML.
(() => {
  'use strict';
  const TOKEN_KEY = 'plugsync.apiToken';
  const body = document.body;
  const page = body.dataset.page;
  const pluginId = body.dataset.plugin || '';
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  // ---- numbers and times, as render.rs writes them

  const number = (v) => String(Math.round(v * 100) / 100);
  function seconds(ms) {
    const s = Math.floor(ms / 1000);
    return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
  }
  function ago(iso) {
    const t = Date.parse(iso);
    if (Number.isNaN(t)) return iso;
    const s = Math.max(0, Math.round((Date.now() - t) / 1000));
    const when = new Date(t).toLocaleTimeString();
    if (s < 60) return `${when} (${s} s ago)`;
    if (s < 3600) return `${when} (${Math.floor(s / 60)} min ago)`;
    return `${new Date(t).toLocaleString()}`;
  }
  function timeEl(iso) {
    const t = el('time', '', iso);
    t.dateTime = iso;
    t.title = iso;
    t.dataset.ago = '';
    t.textContent = ago(iso);
    return t;
  }
  const tick = () => $$('time[data-ago]').forEach((t) => { t.textContent = ago(t.dateTime); });
  tick();
  setInterval(tick, 1000);

  // ---- the API token, for this tab only

  function getToken() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; }
  }
  function setToken(token) {
    try {
      if (token) sessionStorage.setItem(TOKEN_KEY, token); else sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* storage disabled: actions go without a token and are refused */ }
    showToken();
  }
  function showToken() {
    const has = getToken() !== '';
    const state = $('#token-state');
    if (state) {
      state.textContent = has ? 'API token set for this tab' : 'no API token: actions will be refused';
      state.className = has ? 'token-set' : 'token-missing';
    }
    const forget = $('#token-forget');
    if (forget) forget.hidden = !has;
    const input = $('#token-input');
    if (input) input.value = '';
  }
  const form = $('#token-form');
  if (form) {
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      setToken(($('#token-input').value || '').trim());
    });
  }
  const forget = $('#token-forget');
  if (forget) forget.addEventListener('click', () => setToken(''));
  showToken();

  // ---- actions: POST with the token; the API's answer said plainly

  function say(kind, text) {
    const r = $('#action-result');
    if (!r) return;
    r.className = `result ${kind}`;
    r.dataset.kind = kind;
    r.textContent = text;
    r.hidden = false;
  }
  async function act(button) {
    const label = button.dataset.label || button.textContent;
    const headers = {};
    const token = getToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    button.disabled = true;
    try {
      const r = await fetch(button.dataset.url, { method: 'POST', headers, credentials: 'same-origin' });
      const text = await r.text();
      let message = text;
      try { message = JSON.parse(text).error || ''; } catch (e) { /* not JSON */ }
      if (r.ok) {
        say('ok', `${label}: accepted (${r.status}); the daemon acts on it now.`);
        setTimeout(refreshLive, 500);
      } else if (r.status === 401) {
        say('refused', `${label}: refused (401 Unauthorized): ${message}. `
          + (token ? 'The API token is wrong: enter the right one above.' : 'Enter the API token above, then try again.'));
      } else {
        say('error', `${label}: failed (${r.status}): ${message}`);
      }
    } catch (e) {
      say('error', `${label}: the daemon did not answer (${e}).`);
    } finally {
      button.disabled = false;
    }
  }
  $$('button[data-url]').forEach((b) => b.addEventListener('click', () => act(b)));

  // ---- cells of the fleet table (render.rs)

  const LIFECYCLE_OK = /^[A-Z_]+$/;
  function stateBadge(state) {
    const s = LIFECYCLE_OK.test(state) ? state : 'NONE';
    return el('span', `badge state-${s.toLowerCase()}`, s);
  }
  function fillSlots(td, slots) {
    td.textContent = '';
    const entries = Object.entries(slots || {}).sort((a, b) => (a[0] < b[0] ? -1 : 1));
    if (!entries.length) { td.append(el('span', 'none', 'none')); return; }
    entries.forEach(([slot, v], i) => {
      if (i > 0) td.append(el('br'));
      td.append(el('span', `slot slot-${slot.replace(/[^a-z]/g, '')}`, slot), ` ${v.version} ×${v.instances}`);
    });
  }
  function fillInstances(td, slots, desired) {
    const running = Object.values(slots || {}).reduce((n, v) => n + (v.instances || 0), 0);
    td.textContent = '';
    if (desired === '') { td.append(el('span', 'short', `${running}/–`)); return; }
    const want = Number(desired);
    td.append(el('span', running < want ? 'short' : 'ok', `${running}/${want}`));
  }
  function fillDrift(td, drift) {
    td.textContent = '';
    if (drift && drift.open) {
      const n = (drift.findings || []).length;
      const b = el('span', 'badge drift-open', `open: ${n} finding${n === 1 ? '' : 's'}`);
      b.title = (drift.findings || []).join('\n');
      td.append(b);
    } else if (drift) {
      td.append(el('span', 'badge drift-resolved', 'resolved'));
    } else {
      td.append(el('span', 'none', 'none'));
    }
  }
  const PHASE_WORDS = { progressing: 'progressing', paused: 'paused', converged: 'converged', rolledBack: 'rolled back', failed: 'failed' };
  const isFinal = (phase) => phase !== 'progressing' && phase !== 'paused';
  function progress(live, abMs) {
    let weight = null; let percent = null; let head;
    if (live.steps && live.steps.length) {
      const n = live.steps.length;
      const index = Math.min(live.step, n - 1);
      weight = live.phase === 'converged' ? 100 : live.steps[index];
      percent = weight;
      head = live.phase === 'converged' ? `100 % · all ${n} steps` : `${number(weight)} % · step ${index + 1} of ${n}`;
      if (live.stepStartedMs != null && live.stepPeriodMs != null && live.phase === 'progressing') {
        const elapsed = Math.min(Math.max(0, live.atMs - live.stepStartedMs), live.stepPeriodMs);
        head += ` · ${seconds(elapsed)} of ${seconds(live.stepPeriodMs)}`;
      }
    } else if (live.strategy === 'ABTesting') {
      // The test runs from when B joined traffic (the step's start).
      const start = live.stepStartedMs != null ? live.stepStartedMs : (live.startedMs != null ? live.startedMs : live.atMs);
      const elapsed = Math.max(0, live.atMs - start);
      if (abMs > 0) percent = Math.min(100, (elapsed * 100) / abMs);
      head = `A/B test · ${seconds(elapsed)}${abMs ? ` of ${seconds(abMs)}` : ''}`;
    } else {
      head = live.strategy;
    }
    return { weight, percent, label: `${head} · ${PHASE_WORDS[live.phase] || live.phase}` };
  }
  function bar(percent) {
    const p = el('progress');
    p.max = 100;
    if (percent !== null) p.value = Math.max(0, Math.min(100, Math.round(percent * 100) / 100));
    return p;
  }
  function fillRollout(td, live, persisted, abMs) {
    td.textContent = '';
    td.title = '';
    delete td.dataset.weight;
    delete td.dataset.phase;
    if (live && !isFinal(live.phase)) {
      const p = progress(live, abMs);
      td.dataset.phase = live.phase;
      if (p.weight !== null) td.dataset.weight = number(p.weight);
      td.title = live.note || '';
      td.append(bar(p.percent), el('span', 'rl', p.label));
    } else if (persisted) {
      td.dataset.phase = 'recorded';
      const what = persisted.paused ? `paused at step ${persisted.step + 1}: ${persisted.paused}`
        : `at step ${persisted.step + 1}, resuming`;
      td.append(el('span', 'rl', what));
    } else if (live) {
      td.dataset.phase = live.phase;
      td.append(el('span', `last outcome-${live.phase}`, `last: ${PHASE_WORDS[live.phase] || live.phase}`));
    } else {
      td.append(el('span', 'none', '–'));
    }
  }

  // ---- the fleet page

  const rollouts = {};
  let lastStatus = null;
  const rows = {};
  $$('#plugins tbody tr[data-plugin]').forEach((r) => { rows[r.dataset.plugin] = r; });

  function cell(row, name) { return $(`td[data-cell="${name}"]`, row); }
  function updateRow(id) {
    const row = rows[id];
    if (!row) return;
    const st = (lastStatus && lastStatus.plugins && lastStatus.plugins[id]) || null;
    if (lastStatus) {
      fillSlots(cell(row, 'versions'), st && st.slots);
      fillInstances(cell(row, 'instances'), st && st.slots, row.dataset.desired || '');
      const stateTd = cell(row, 'state');
      stateTd.textContent = '';
      stateTd.append(stateBadge(st ? st.state : 'NONE'));
      fillDrift(cell(row, 'drift'), st && st.drift);
    }
    fillRollout(cell(row, 'rollout'), rollouts[id], st && st.rollout, Number(row.dataset.abMs || 0));
  }
  function setDoc(name, node) {
    const dd = $(`[data-doc="${name}"]`);
    if (!dd) return;
    dd.textContent = '';
    dd.append(node);
  }
  function summary(doc) {
    if (doc.revision) {
      const c = el('code', '', doc.revision.slice(0, 12));
      c.title = doc.revision;
      setDoc('revision', c);
    }
    if (doc.at) setDoc('at', timeEl(doc.at));
    const counts = {};
    Object.values(doc.plugins || {}).forEach((p) => { counts[p.state] = (counts[p.state] || 0) + 1; });
    const states = document.createDocumentFragment();
    Object.keys(counts).sort().forEach((s) => { states.append(stateBadge(s), ` ${counts[s]} `); });
    setDoc('states', states);
    const plan = doc.plan || {};
    setDoc('plan', document.createTextNode(`${(plan.changes || []).length} change(s), ${(plan.held || []).length} held`));
    const notice = $('#new-plugins');
    if (notice) notice.hidden = !Object.keys(doc.plugins || {}).some((id) => !rows[id]);
  }
  function inFlight() {
    setDoc('in-flight', document.createTextNode(String(Object.values(rollouts).filter((r) => !isFinal(r.phase)).length)));
  }
  function onFleetStatus(doc) {
    lastStatus = doc || {};
    summary(lastStatus);
    Object.keys(rows).forEach(updateRow);
  }
  function onFleetRollout(live) {
    rollouts[live.plugin] = live;
    updateRow(live.plugin);
    inFlight();
  }

  const filter = $('#filter');
  function applyFilter() {
    const terms = (filter.value || '').toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    const all = Object.values(rows);
    all.forEach((row) => {
      const text = `${row.dataset.search} ${row.textContent.toLowerCase()}`;
      const show = terms.every((t) => text.includes(t));
      row.hidden = !show;
      if (show) shown += 1;
    });
    $('#filter-count').textContent = terms.length ? `${shown} of ${all.length} plugins` : `${all.length} plugins`;
  }
  if (filter) filter.addEventListener('input', applyFilter);

  // ---- the plugin page: swap in the server-rendered live part

  const live = $('#live');
  let fetching = false;
  let again = false;
  async function refreshLive() {
    if (!live) return;
    if (fetching) { again = true; return; }
    fetching = true;
    try {
      const r = await fetch(live.dataset.liveUrl, { credentials: 'same-origin', cache: 'no-store' });
      if (r.ok) {
        live.innerHTML = await r.text(); // rendered and escaped by the server
        tick();
      }
    } catch (e) { /* the event stream says when the daemon is away */ }
    fetching = false;
    if (again) { again = false; refreshLive(); }
  }

  // Git moved (`revision`: a new revision after a pass; `target`: a rollout to a new spec, whose
  // pass may last the whole rollout): the manifest's sections as Git has them now.
  const catalogue = $('#catalogue');
  async function refreshCatalogue(key, value) {
    if (!catalogue || !value || catalogue.dataset[key] === value) return;
    catalogue.dataset[key] = value;
    try {
      const r = await fetch(catalogue.dataset.url, { credentials: 'same-origin', cache: 'no-store' });
      if (r.ok) catalogue.innerHTML = await r.text(); // rendered and escaped by the server
    } catch (e) { /* tried again at the next revision */ }
  }

  // ---- narration

  function onLog(event) {
    const list = $('#log');
    if (!list) return;
    const li = el('li');
    const t = el('time', '', new Date(Date.parse(event.at) || Date.now()).toLocaleTimeString());
    li.append(t, event.line);
    list.prepend(li);
    while (list.children.length > 80) list.lastChild.remove();
  }

  // ---- the event stream

  const liveState = $('#live-state');
  function connection(kind, text) {
    if (!liveState) return;
    liveState.className = `live ${kind}`;
    liveState.textContent = text;
  }
  const url = page === 'plugin' ? `/api/v1/events?plugin=${encodeURIComponent(pluginId)}` : '/api/v1/events';
  const source = new EventSource(url);
  source.addEventListener('open', () => connection('open', 'live'));
  source.addEventListener('error', () => {
    connection('closed', source.readyState === EventSource.CLOSED ? 'disconnected' : 'reconnecting…');
  });
  const parse = (e) => { try { return JSON.parse(e.data); } catch (err) { return null; } };
  source.addEventListener('status', (e) => {
    const ev = parse(e);
    if (!ev) return;
    if (page === 'fleet') {
      onFleetStatus(ev.status);
    } else {
      refreshLive();
      refreshCatalogue('revision', ev.status && ev.status.revision);
    }
  });
  source.addEventListener('rollout', (e) => {
    const ev = parse(e);
    if (!ev) return;
    if (page === 'fleet') {
      onFleetRollout(ev);
    } else if (ev.plugin === pluginId) {
      refreshLive();
      refreshCatalogue('target', ev.target);
    }
  });
  source.addEventListener('log', (e) => { const ev = parse(e); if (ev) onLog(ev); });
  source.addEventListener('lagged', () => { if (page === 'plugin') refreshLive(); });
  window.addEventListener('pagehide', () => source.close());
})();
