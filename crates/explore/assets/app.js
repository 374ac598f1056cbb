// The explorer's page. It holds the session (spec + actions + position), sends it to the
// server, and draws the view that comes back. No protocol logic lives here: every node
// state, message, explanation and "chosen" mark is computed by the Rust code.
'use strict';

const $ = (id) => document.getElementById(id);
const SVGNS = 'http://www.w3.org/2000/svg';

let meta = null;
let scenarios = [];
let session = { spec: { protocol: 'synod', nodes: 3, seed: 1 }, actions: [], at: 0 };
let view = null;
let playing = null;
let scenario = null; // { s: scenario, next: index of the next narrated action }

function units(actions) {
  return actions.reduce((n, a) => n + (a.do === 'step' ? Math.max(1, a.n || 1) : 1), 0);
}

// The step numbers of the actions taken by hand (anything but "step").
function handSteps(actions) {
  const out = new Set();
  let u = 0;
  for (const a of actions) {
    if (a.do === 'step') u += Math.max(1, a.n || 1);
    else { u += 1; out.add(u); }
  }
  return out;
}

// The first `at` units of the action list (a step cut short if needed): used when the
// learner acts while rewound, so the future they left is replaced by the new action.
function prefix(actions, at) {
  const out = [];
  let left = at;
  for (const a of actions) {
    if (left === 0) break;
    const u = a.do === 'step' ? Math.max(1, a.n || 1) : 1;
    if (u <= left) { out.push(a); left -= u; } else { out.push({ do: 'step', n: left }); left = 0; }
  }
  return out;
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function showError(message) {
  const box = $('error');
  box.textContent = message || '';
  box.hidden = !message;
}

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  };
  const res = await fetch(path, init);
  const data = await res.json();
  if (!res.ok) throw new Error(data.error || res.statusText);
  return data;
}

function saveUrl() {
  const state = { spec: session.spec, actions: session.actions, at: session.at };
  history.replaceState(null, '', '#' + encodeURIComponent(JSON.stringify(state)));
}

// Requests run one at a time, in order: keys pressed quickly must all count.
let chain = Promise.resolve(true);
function queued(fn) {
  chain = chain.then(fn, fn);
  return chain;
}

async function refresh() {
  try {
    view = await api('/api/view', { spec: session.spec, actions: session.actions, at: session.at });
    session.at = view.step;
    showError(view.note ? view.note : '');
    draw();
    saveUrl();
    return true;
  } catch (e) {
    showError(e.message);
    stopPlay();
    return false;
  }
}

// ----- Acting -----

function act(action) {
  return queued(() => actNow(action));
}

function actNow(action) {
  const total = units(session.actions);
  if (session.at < total) session.actions = prefix(session.actions, session.at);
  const last = session.actions[session.actions.length - 1];
  if (action.do === 'step' && last && last.do === 'step') last.n = (last.n || 1) + 1;
  else session.actions.push(action);
  session.at = units(session.actions);
  return refresh();
}

function step() {
  return queued(stepNow);
}

function stepNow() {
  // Rewound: go forward along the recorded timeline first.
  if (session.at < units(session.actions)) { session.at += 1; return refresh(); }
  return actNow({ do: 'step', n: 1 });
}

function back() {
  return queued(() => {
    if (session.at === 0) return true;
    session.at -= 1;
    return refresh();
  });
}

function stopPlay() {
  if (playing) { clearTimeout(playing); playing = null; }
  $('play').textContent = 'Play';
}

function play() {
  if (playing) return stopPlay();
  $('play').textContent = 'Pause';
  const tick = async () => {
    const ok = await step();
    if (!ok || !playing) return stopPlay();
    playing = setTimeout(tick, 1000 / Number($('speed').value));
  };
  playing = setTimeout(tick, 0);
}

function newSession(spec) {
  stopPlay();
  scenario = null;
  $('scenario-panel').hidden = true;
  session = { spec, actions: [], at: 0 };
  syncSetup();
  return refresh();
}

function syncSetup() {
  $('protocol').value = session.spec.protocol;
  $('nodes').value = session.spec.nodes;
  $('seed').value = session.spec.seed;
  $('spares').value = session.spec.spares || 0;
  $('quorums').value = session.spec.quorums || '';
  $('bug').value = session.spec.bug || '';
}

// ----- Drawing -----

function draw() {
  const v = view;
  $('position').textContent = `step ${v.step} / ${v.total}`;
  $('timeline').max = v.total;
  $('timeline').value = v.step;
  $('clock').textContent = `t = ${(v.time_us / 1000).toFixed(3)} ms`;
  const current = v.log.filter((l) => l.step === v.step);
  $('explain-text').textContent = current.length
    ? current.map((l) => l.text).join(' ')
    : (v.step === 0 ? 'Nothing yet: step, or propose a value.' : '');
  drawViolations(v);
  drawCluster(v);
  drawCards(v);
  drawMessages(v);
  drawChosen(v);
  drawOps(v);
  drawLinks(v);
  drawDiagram(v);
  drawLog(v);
}

function drawViolations(v) {
  const box = $('violations');
  box.replaceChildren();
  box.hidden = v.violations.length === 0;
  if (!v.violations.length) return;
  box.append(el('h2', {}, '✖ Safety violated'));
  for (const x of v.violations) {
    box.append(el('p', { class: 'violation' }, el('strong', {}, `${x.check} at step ${x.step}: `), x.detail));
    // The last few events, and every action taken by hand before them (the schedule's choices).
    const hand = handSteps(session.actions);
    const led = v.log.filter((l) => l.step <= x.step && (l.step > x.step - 8 || hand.has(l.step)));
    const ol = el('ol', {});
    for (const l of led) ol.append(el('li', { value: l.step, class: hand.has(l.step) ? 'by-hand' : '' }, l.text));
    box.append(el('p', {}, 'The events that led to it (actions taken by hand in bold):'), ol);
  }
}

function nodePositions(names, clients) {
  const pos = {};
  const n = names.length;
  names.forEach((name, i) => {
    const a = -Math.PI / 2 + (2 * Math.PI * i) / n;
    pos[name] = [200 + 140 * Math.cos(a), 200 + 140 * Math.sin(a)];
  });
  // Clients sit along the left edge.
  clients.forEach((c, i) => { pos[c] = [24, 380 - i * 40]; });
  return pos;
}

function drawCluster(v) {
  const s = $('cluster');
  s.replaceChildren();
  const pos = nodePositions(v.nodes.map((n) => n.name), v.clients);
  const defs = svg('defs');
  const marker = svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' });
  marker.append(svg('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#0b57a4' }));
  defs.append(marker);
  s.append(defs);
  for (const [a, b] of v.cut) {
    const [x1, y1] = pos[a]; const [x2, y2] = pos[b];
    s.append(svg('line', { x1, y1, x2, y2, stroke: '#b3261e', 'stroke-width': 2, 'stroke-dasharray': '6 5' }));
  }
  // One arrow per (from, to, kind) group so a busy network stays readable.
  const groups = new Map();
  for (const m of v.in_flight) {
    const k = `${m.from}>${m.to}`;
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k).push(m);
  }
  for (const [k, ms] of groups) {
    const [from, to] = k.split('>');
    if (!pos[from] || !pos[to]) continue;
    const [x1, y1] = pos[from]; const [x2, y2] = pos[to];
    const dx = x2 - x1, dy = y2 - y1, len = Math.hypot(dx, dy) || 1;
    const ox = (-dy / len) * 6, oy = (dx / len) * 6; // offset so a→b and b→a do not overlap
    const sx = x1 + (dx / len) * 26 + ox, sy = y1 + (dy / len) * 26 + oy;
    const ex = x2 - (dx / len) * 26 + ox, ey = y2 - (dy / len) * 26 + oy;
    s.append(svg('line', { x1: sx, y1: sy, x2: ex, y2: ey, stroke: '#0b57a4', 'stroke-width': 1.6, 'marker-end': 'url(#arrow)', class: 'flight' }));
    const label = ms.length === 1 ? ms[0].label.split(' ').slice(0, 2).join(' ') : `${ms.length} msgs`;
    s.append(svg('text', { x: (sx + ex) / 2 + ox, y: (sy + ey) / 2 + oy, 'text-anchor': 'middle', fill: '#0b57a4' }, label));
  }
  for (const n of v.nodes) {
    const [x, y] = pos[n.name];
    const isLead = n.role === 'leader' || n.role.startsWith('proposer');
    s.append(svg('circle', { cx: x, cy: y, r: 24, fill: n.up ? (isLead ? '#fff1d6' : '#fff') : '#e4e4e4',
      stroke: n.up ? (isLead ? '#7a4a00' : '#333') : '#888', 'stroke-width': isLead ? 3 : 1.5, 'stroke-dasharray': n.up ? '' : '4 3' }));
    s.append(svg('text', { x, y: y + 4, 'text-anchor': 'middle', 'font-weight': 700 }, (n.up ? '' : '✕ ') + n.name + (isLead ? ' ◆' : '')));
    s.append(svg('text', { x, y: y + 40, 'text-anchor': 'middle', fill: '#5a6370' }, n.role));
  }
  for (const c of v.clients) {
    const [x, y] = pos[c];
    s.append(svg('rect', { x: x - 16, y: y - 12, width: 32, height: 24, fill: '#f4f4ff', stroke: '#555' }));
    s.append(svg('text', { x, y: y + 4, 'text-anchor': 'middle' }, c));
  }
}

function drawCards(v) {
  const wrap = $('node-cards');
  wrap.replaceChildren();
  v.nodes.forEach((n, index) => {
    // Actions number nodes in view order: Disk Paxos's disks (d1...) come after its processors.
    const num = index + 1;
    const isDisk = n.name.startsWith('d');
    const isLead = n.role === 'leader';
    const card = el('div', { class: `node-card${n.up ? '' : ' down'}${isLead ? ' leader' : ''}`, 'data-node': n.name });
    card.append(el('h3', {}, `${n.name} `, el('span', { class: 'role' }, n.up ? n.role : '✕ down')));
    const dl = el('dl', {});
    const row = (k, val) => { dl.append(el('dt', {}, k), el('dd', {}, val)); };
    row('promised', n.promised);
    row('own ballot', n.ballot);
    if (view.spec.protocol === 'multi') row('thinks leader', n.leader || '—');
    card.append(dl);
    if (n.slots.length) {
      const t = el('table', { class: 'slots' }, el('tr', {}, el('th', {}, 'slot'), el('th', {}, 'accepted'), el('th', {}, 'ballot')));
      for (const sl of n.slots.slice(-8)) {
        t.append(el('tr', { class: sl.known_chosen ? 'slot-chosen' : '' },
          el('td', {}, String(sl.slot)), el('td', {}, sl.value + (sl.known_chosen ? ' ✔ chosen' : '')), el('td', {}, sl.ballot)));
      }
      card.append(t);
    } else {
      card.append(el('p', { class: 'muted' }, 'accepted nothing'));
    }
    for (const note of n.notes) card.append(el('p', { class: 'muted' }, note));
    const buttons = el('div', { class: 'row' });
    if (n.up) buttons.append(el('button', { type: 'button', 'data-act': 'crash', onclick: () => act({ do: 'crash', node: num }) }, isDisk ? 'Fail disk' : 'Crash'));
    else buttons.append(el('button', { type: 'button', 'data-act': 'restart', onclick: () => act({ do: 'restart', node: num }) }, 'Restart'));
    if (!isDisk) buttons.append(el('button', { type: 'button', 'data-act': 'timer', title: view.spec.protocol === 'multi' ? 'Start an election now' : 'Retry with a higher ballot now', onclick: () => act({ do: 'timer', node: num }) }, 'Fire timer'));
    if (n.up && n.notes.some((x) => x.includes('disk write'))) {
      buttons.append(el('button', { type: 'button', 'data-act': 'persist', title: 'Finish its oldest disk write now, out of turn', onclick: () => act({ do: 'persist', node: num }) }, 'Finish disk write'));
    }
    card.append(buttons);
    wrap.append(card);
  });
}

function drawMessages(v) {
  const body = $('messages').tBodies[0];
  body.replaceChildren();
  $('msg-count').textContent = `(${v.in_flight.length})`;
  const sorted = [...v.in_flight].sort((a, b) => a.deliver_at - b.deliver_at || a.id - b.id);
  for (const m of sorted) {
    body.append(el('tr', { class: 'msg-row', 'data-id': m.id, 'data-kind': m.kind },
      el('td', {}, String(m.id)), el('td', {}, `${m.from} → ${m.to}`), el('td', {}, m.label),
      el('td', {}, `${(m.deliver_at / 1000).toFixed(3)} ms`),
      el('td', {},
        el('button', { type: 'button', 'data-act': 'deliver', onclick: () => act({ do: 'deliver', id: m.id }) }, 'Deliver'),
        el('button', { type: 'button', 'data-act': 'drop', onclick: () => act({ do: 'drop', id: m.id }) }, 'Drop'),
        el('button', { type: 'button', 'data-act': 'duplicate', onclick: () => act({ do: 'duplicate', id: m.id }) }, 'Duplicate'))));
  }
}

function drawChosen(v) {
  const ul = $('chosen');
  ul.replaceChildren();
  if (!v.chosen.length) ul.append(el('li', { class: 'muted none' }, 'nothing chosen yet'));
  for (const c of v.chosen) {
    const known = c.known_by.length ? `known by ${c.known_by.join(', ')}` : 'no node knows it yet';
    ul.append(el('li', { 'data-slot': c.slot },
      el('strong', {}, `slot ${c.slot}: ${c.value}`), ` chosen at step ${c.at_step} (ballot ${c.ballot}); ${known}`));
  }
}

function drawOps(v) {
  const ul = $('ops');
  ul.replaceChildren();
  for (const o of v.ops.slice(-12)) {
    ul.append(el('li', { class: o.output ? 'done' : 'waiting' }, `${o.client}: ${o.input} → ${o.output || '… waiting'}`));
  }
  const multi = v.spec.protocol === 'multi';
  $('key-label').hidden = !multi && v.spec.protocol !== 'epaxos';
  $('read').hidden = !multi;
  $('reconfigure-row').hidden = !multi;
  // Multi-Paxos and Fast Paxos propose through clients (Fast Paxos: proposers c1, c2).
  const byClient = multi || v.spec.protocol === 'fast';
  $('who-label').firstChild.textContent = byClient ? 'Client ' : 'Node ';
  const who = $('who');
  // Disks propose nothing: only nodes named n... are offered.
  const options = byClient ? v.clients : v.nodes.map((n) => n.name).filter((n) => n.startsWith('n'));
  if (who.options.length !== options.length || who.dataset.kind !== (byClient ? 'c' : 'n')) {
    who.replaceChildren(...options.map((o) => el('option', { value: o.slice(1) }, o)));
    who.dataset.kind = byClient ? 'c' : 'n';
  }
  const automatic = !!v.spec.faults;
  $('propose').disabled = automatic;
  $('read').disabled = automatic;
  $('reconfigure').disabled = automatic;
}

function drawLinks(v) {
  for (const id of ['link-from', 'link-to']) {
    const sel = $(id);
    if (sel.options.length !== v.nodes.length) {
      sel.replaceChildren(...v.nodes.map((n, i) => el('option', { value: i + 1 }, n.name)));
    }
  }
  if ($('link-to').selectedIndex === 0 && v.nodes.length > 1 && $('link-from').selectedIndex === 0) $('link-to').selectedIndex = 1;
  $('cut-list').textContent = v.cut.length ? 'cut: ' + v.cut.map(([a, b]) => `${a}→${b}`).join(', ') : 'all links work';
}

function drawDiagram(v) {
  const s = $('diagram');
  s.replaceChildren();
  const hide = $('hide-heartbeats').checked;
  const rows = [...v.nodes.map((n) => n.name), ...v.clients];
  const lines = v.lines.filter((l) => !(hide && (l.kind === 'heartbeat' || l.kind === 'heartbeat_ack')));
  const first = Math.max(0, Math.min(...lines.map((l) => l.sent), v.step) - 1);
  const last = Math.max(v.step, 1);
  const dx = 14, left = 40, top = 14, dy = 34;
  const width = left + (last - first + 1) * dx + 20;
  const height = top + rows.length * dy;
  s.setAttribute('width', width);
  s.setAttribute('height', height);
  const y = (name) => top + rows.indexOf(name) * dy + 10;
  const x = (st) => left + (st - first) * dx;
  rows.forEach((r) => {
    s.append(svg('line', { x1: left, x2: width - 10, y1: y(r), y2: y(r), stroke: '#999' }));
    s.append(svg('text', { x: 4, y: y(r) + 4 }, r));
  });
  s.append(svg('line', { x1: x(v.step), x2: x(v.step), y1: 0, y2: height, stroke: '#0b57a4', 'stroke-dasharray': '2 3' }));
  for (const c of v.chosen) {
    if (c.at_step >= first) {
      s.append(svg('text', { x: x(c.at_step) - 4, y: 11, fill: '#176b2c', 'font-weight': 700 }, '✔'));
    }
  }
  for (const l of lines) {
    if (rows.indexOf(l.from) < 0 || rows.indexOf(l.to) < 0) continue;
    const end = l.ended === null ? v.step : l.ended;
    const colour = l.fate === 'dropped' ? '#b3261e' : (l.fate === 'flying' ? '#0b57a4' : '#444');
    const attrs = { x1: x(l.sent), y1: y(l.from), x2: x(end), y2: y(l.to), stroke: colour, 'stroke-width': 1.2 };
    if (l.fate === 'flying') attrs['stroke-dasharray'] = '4 3';
    const line = svg('line', attrs);
    line.append(svg('title', {}, `${l.id}: ${l.kind} ${l.from}→${l.to} (${l.fate})`));
    s.append(line);
    if (l.fate === 'dropped') s.append(svg('text', { x: x(end) - 4, y: y(l.to) + 4, fill: '#b3261e' }, '✕'));
  }
  $('diagram-wrap').scrollLeft = width;
}

function drawLog(v) {
  const ol = $('log');
  ol.replaceChildren();
  for (const l of v.log) {
    ol.append(el('li', { value: l.step, class: l.step === v.step ? 'current' : '' }, l.text));
  }
  ol.scrollTop = ol.scrollHeight;
}

// ----- Scenarios -----

function showScenario() {
  const { s, next } = scenario;
  $('scenario-panel').hidden = false;
  $('scenario-title').textContent = s.title;
  const said = next === 0 ? s.intro : s.steps[next - 1].say;
  $('scenario-text').textContent = said;
  $('scenario-progress').textContent = `${next} / ${s.steps.length}`;
  $('scenario-next').disabled = next >= s.steps.length;
}

async function startScenario(id) {
  const s = scenarios.find((x) => x.id === id);
  if (!s) return;
  await newSession({ ...s.spec });
  scenario = { s, next: 0 };
  showScenario();
}

async function scenarioNext() {
  if (!scenario || scenario.next >= scenario.s.steps.length) return;
  const st = scenario.s.steps[scenario.next];
  scenario.next += 1;
  session.actions = prefix(session.actions, session.at);
  session.actions.push(st.action);
  session.at = units(session.actions);
  await refresh();
  showScenario();
}

// ----- Setup, files, keys -----

async function openTrace(file) {
  const text = await file.text();
  // The header and the first records are enough: the server replays the seed and checks
  // the records it was given against its own.
  const head = text.split('\n').slice(0, 3000).join('\n');
  try {
    const opened = await api('/api/trace', head);
    await newSession(opened.spec);
    $('explain-text').textContent = `Trace opened: seed ${opened.spec.seed}, ${opened.spec.nodes} nodes, faults ${opened.spec.faults}. The replay reproduced its first ${opened.checked} events exactly. Step through it.`;
  } catch (e) {
    showError(e.message);
  }
}

function exportJson() {
  const blob = new Blob([JSON.stringify({ spec: session.spec, actions: session.actions, at: session.at }, null, 1)], { type: 'application/json' });
  const a = el('a', { href: URL.createObjectURL(blob), download: `synod-session-${session.spec.protocol}-seed${session.spec.seed}.json` });
  document.body.append(a);
  a.click();
  a.remove();
}

async function importJson(file) {
  try {
    const data = JSON.parse(await file.text());
    session = { spec: data.spec, actions: data.actions || [], at: data.at ?? units(data.actions || []) };
    syncSetup();
    await refresh();
  } catch (e) {
    showError('import: ' + e.message);
  }
}

function loadFromUrl() {
  if (!location.hash || location.hash.length < 2) return false;
  try {
    const data = JSON.parse(decodeURIComponent(location.hash.slice(1)));
    session = { spec: data.spec, actions: data.actions || [], at: data.at ?? units(data.actions || []) };
    syncSetup();
    return true;
  } catch (e) {
    showError('The address does not hold a session: ' + e.message);
    return false;
  }
}

function wire() {
  $('setup-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const spec = { protocol: $('protocol').value, nodes: Number($('nodes').value), seed: Number($('seed').value) };
    if ($('bug').value) spec.bug = $('bug').value;
    const spares = Number($('spares').value || 0);
    if (spares > 0) spec.spares = spares;
    const quorums = $('quorums').value.trim();
    if (quorums) spec.quorums = quorums;
    newSession(spec);
  });
  $('step').addEventListener('click', step);
  $('back').addEventListener('click', back);
  $('play').addEventListener('click', play);
  $('speed').addEventListener('input', () => { $('speed-text').textContent = `${$('speed').value}/s`; });
  $('speed-text').textContent = `${$('speed').value}/s`;
  $('timeline').addEventListener('change', () => queued(() => { session.at = Number($('timeline').value); return refresh(); }));
  $('propose-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const who = Number($('who').value || 1);
    const value = $('value').value;
    if (session.spec.protocol === 'multi') act({ do: 'propose', value, client: who, key: $('key').value });
    else if (session.spec.protocol === 'fast') act({ do: 'propose', value, client: who });
    // EPaxos: the command goes to the replica chosen, which leads it.
    else if (session.spec.protocol === 'epaxos') act({ do: 'propose', value, node: who, key: $('key').value });
    else act({ do: 'propose', value, node: who });
  });
  $('read').addEventListener('click', () => act({ do: 'read', client: Number($('who').value || 1), key: $('key').value }));
  $('cut').addEventListener('click', () => act({ do: 'cut', from: Number($('link-from').value), to: Number($('link-to').value) }));
  $('heal').addEventListener('click', () => act({ do: 'heal', from: Number($('link-from').value), to: Number($('link-to').value) }));
  $('heal-all').addEventListener('click', () => act({ do: 'heal_all' }));
  const numbers = (text) => text.split(',').map((x) => Number(x.trim())).filter((x) => x > 0);
  $('reconfigure').addEventListener('click', () => act({ do: 'reconfigure', voters: numbers($('next-voters').value), learners: numbers($('next-learners').value) }));
  $('partition').addEventListener('click', () => {
    const groups = $('groups').value.split('|').map((g) => g.split(',').map((x) => Number(x.trim())).filter((x) => x > 0)).filter((g) => g.length);
    act({ do: 'partition', groups });
  });
  $('hide-heartbeats').addEventListener('change', () => view && drawDiagram(view));
  $('start-scenario').addEventListener('click', () => startScenario($('scenario').value));
  $('scenario-next').addEventListener('click', scenarioNext);
  $('scenario-close').addEventListener('click', () => { scenario = null; $('scenario-panel').hidden = true; });
  $('trace-file').addEventListener('change', (e) => e.target.files[0] && openTrace(e.target.files[0]));
  $('import-file').addEventListener('change', (e) => e.target.files[0] && importJson(e.target.files[0]));
  $('export').addEventListener('click', exportJson);
  document.addEventListener('keydown', (e) => {
    const t = e.target.tagName;
    if (t === 'INPUT' || t === 'SELECT' || t === 'TEXTAREA' || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === 's' || e.key === 'ArrowRight') { e.preventDefault(); step(); }
    else if (e.key === 'b' || e.key === 'ArrowLeft') { e.preventDefault(); back(); }
    else if (e.key === 'p' || e.key === ' ') { e.preventDefault(); play(); }
  });
  window.addEventListener('hashchange', () => { if (loadFromUrl()) refresh(); });
}

async function main() {
  wire();
  try {
    meta = await api('/api/meta');
    const bug = $('bug');
    for (const b of meta.bugs) bug.append(el('option', { value: b }, b));
    if (!meta.planted_bugs_available) {
      bug.disabled = true;
      $('bug-note').textContent = 'This build has no planted bugs, so "break it" is off: rebuild with --features planted-bugs to try it.';
    }
    scenarios = await api('/api/scenarios');
    for (const s of scenarios) $('scenario').append(el('option', { value: s.id }, s.title));
  } catch (e) {
    showError(e.message);
  }
  loadFromUrl();
  await refresh();
}

main();
