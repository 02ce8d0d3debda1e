// statemesh status page: plain JS, no build step. Text from peers is untrusted: textContent only.
'use strict';
(() => {
const KEY = 'statemesh.token', KEEP = 20, ROLES = ['voter', 'learner', 'edge'];
const $ = (id) => document.getElementById(id);
let token = null, locked = false;        // locked: waiting for a token
let view = null, viewAt = 0, lastData = 0, lastStream = 0;
let meshES = null, changesES = null, probing = null, lastProbe = 0;
let changes = [], changesStarted = false, lastChangesTry = 0, names = new Map();
const seen = new Set();

function el(tag, cls, text, title) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = String(text);
  if (title) e.title = title;
  return e;
}
const shortId = (id) => { id = String(id ?? ''); return id.length > 12 ? id.slice(0, 4) + '…' + id.slice(-4) : id; };
const nameOf = (id) => names.get(id) || shortId(id);
const num = (x) => (typeof x === 'number' && isFinite(x) ? x : 0);
const pad = (n) => String(n).padStart(2, '0');
const hms = (ms) => { const d = new Date(ms); return isNaN(d) ? '—' : pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds()); };
function dur(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' m ' + s % 60 + ' s';
  if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.floor(s % 3600 / 60) + ' m';
  return Math.floor(s / 86400) + ' d ' + Math.floor(s % 86400 / 3600) + ' h';
}
// The node's clock: the view's at_ms plus the time since it arrived (no clock skew).
const serverNow = () => num(view.at_ms) + Date.now() - viewAt;
const word = (s) => (/^[a-z_]+$/.test(s) ? s : 'other');   // safe for a class name

// ---- token ----
function readToken() {
  const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  let t = null;
  if (m) {
    try { t = decodeURIComponent(m[1]); } catch (e) { t = m[1]; }
    history.replaceState(null, '', location.pathname + location.search);
  }
  try { if (t) sessionStorage.setItem(KEY, t); t = t || sessionStorage.getItem(KEY); } catch (e) { /* memory only */ }
  token = t || null;
}
const withToken = (url) => (token ? url + (url.includes('?') ? '&' : '?') + 'access_token=' + encodeURIComponent(token) : url);

function needToken(status) {
  locked = true; changesStarted = false;
  closeStreams();
  $('banner').hidden = true;
  if (!view) $('summary').textContent = 'waiting for an API token';
  $('token-error').textContent = status === 403 ? 'this token may not read here (403)' : token ? 'the token was refused (401)' : '';
  const f = $('token-form');
  if (f.hidden) { f.hidden = false; f.elements.token.focus(); }
}
$('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const f = e.target, t = f.elements.token.value.trim();
  if (!t) return;
  token = t;
  try { sessionStorage.setItem(KEY, t); } catch (x) { /* memory only */ }
  f.elements.token.value = ''; f.hidden = true; locked = false;
  start();
});

// ---- requests ----
async function api(url) {
  const r = await fetch(url, { headers: token ? { Authorization: 'Bearer ' + token } : {}, cache: 'no-store' });
  if (r.status === 401 || r.status === 403) { needToken(r.status); throw Object.assign(new Error('auth'), { auth: true }); }
  if (!r.ok) {
    const e = Object.assign(new Error('HTTP ' + r.status), { status: r.status });
    try { const b = (await r.json()).error; e.code = b.code; e.message = b.message || e.message; } catch (x) { /* not JSON */ }
    throw e;
  }
  return r.json();
}
// GET /v1/mesh, one at a time: learns the status (401/403) that EventSource cannot see.
function probe() {
  if (locked) return Promise.resolve(false);
  if (!probing) {
    lastProbe = Date.now();
    probing = api('/v1/mesh').then((v) => { onView(v, !view); return true; }, () => false).finally(() => { probing = null; });
  }
  return probing;
}
function closeStreams() {
  if (meshES) meshES.close();
  if (changesES) changesES.close();
  meshES = changesES = null;
}
function onError(es) {
  if (es.readyState === EventSource.CLOSED) {   // not retried by the browser: the tick reopens it
    if (es === meshES) meshES = null;
    if (es === changesES) { changesES = null; changesStarted = false; }
  }
  if (Date.now() - lastProbe > 2000) probe();
}

// ---- mesh stream ----
function openMesh() {
  if (meshES || locked) return;
  const es = meshES = new EventSource(withToken('/v1/mesh/events'));
  es.addEventListener('mesh', (e) => {
    try { onView(JSON.parse(e.data), true); } catch (x) { console.warn('bad mesh event', x); }
  });
  es.onerror = () => { if (es === meshES) onError(es); };
}
function onView(v, fromStream) {
  if (!v || !v.node || !v.node.id) return;
  view = v; viewAt = lastData = Date.now();
  if (fromStream) lastStream = viewAt;
  render();
}

// ---- recent changes ----
const note = (t) => { $('changes-note').textContent = t || ''; };
async function startChanges() {
  if (changesStarted || locked || !view) return;
  changesStarted = true; lastChangesTry = Date.now();
  // oldest > head also on a fresh node with history on (head 0, oldest 1): the feed's 409
  // history_disabled, not the cursors, tells that history is off.
  const f = view.feed || {}, head = num(f.head), since = Math.min(head, Math.max(head - KEEP, num(f.oldest) - 1, 0));
  try {
    const page = await api('/v1/changes?since=' + since + '&limit=' + KEEP);
    if (locked) return;
    addChanges(page.events || []);
    note('');
    openChanges(num(page.cursor));
  } catch (e) {
    if (e.code === 'history_disabled') return openChanges(null);
    changesStarted = false;   // the tick retries
    if (!e.auth) note('(could not load: ' + e.message + ')');
  }
}
// since null: history is off, only new changes (the feed serves that as delivery=at_most_once).
function openChanges(since) {
  if (changesES) changesES.close();
  if (since === null) note('(history off: new changes only)');
  const es = changesES = new EventSource(withToken('/v1/changes?' + (since === null ? 'delivery=at_most_once' : 'since=' + since)));
  es.addEventListener('change', (e) => {
    try { addChanges([JSON.parse(e.data)]); } catch (x) { console.warn('bad change event', x); }
  });
  es.addEventListener('lagged', () => note('(some changes were skipped)'));
  es.addEventListener('expired', () => { es.close(); if (es === changesES) { changesES = null; changesStarted = false; } });
  es.onerror = (e) => {
    if (es !== changesES) return;
    if (e.data) try { note('(' + JSON.parse(e.data).error.message + ')'); } catch (x) { /* ignore */ }
    onError(es);
  };
}
function addChanges(list) {
  const n = changes.length;
  for (const c of list) if (c && c.id != null && !changes.some((o) => o.id === c.id)) changes.push(c);
  if (changes.length === n) return;
  changes.sort((a, b) => num(b.cursor) - num(a.cursor) || num(b.time_ms) - num(a.time_ms));
  changes.length = Math.min(changes.length, KEEP);
  renderChanges();
}
function changeItem(c) {
  const li = el('li', c.deleted ? 'deleted' : ''), id = String(c.id), i = id.lastIndexOf(':');
  const origin = i > 0 ? id.slice(0, i) : id, kind = String(c.kind ?? '?');
  li.dataset.changeId = id;
  li.append(el('time', 'when', hms(c.time_ms), new Date(num(c.time_ms)).toString()),
    el('span', 'kind kind-' + word(kind), kind),
    el('span', 'doc', c.namespace + '/' + c.doc, 'cursor ' + c.cursor + (c.version ? ', version ' + c.version : '')),
    el('span', 'author', c.author == null ? '' : 'by ' + c.author),
    el('span', 'origin', nameOf(origin), 'origin ' + origin + '\nchange ' + id));
  return li;
}
function renderChanges() {
  const ol = $('changes'), old = new Map([...ol.children].map((li) => [li.dataset.changeId, li]));
  changes.forEach((c, i) => {
    const fresh = changeItem(c);
    let li = old.get(fresh.dataset.changeId);
    if (!li) { li = fresh; if (seen.size) li.classList.add('new'); seen.add(li.dataset.changeId); }
    else if (!li.isEqualNode(fresh)) li.replaceChildren(...fresh.childNodes);
    if (ol.children[i] !== li) ol.insertBefore(li, ol.children[i] || null);
  });
  while (ol.children.length > changes.length) ol.lastChild.remove();
  if (!changes.length) ol.replaceChildren(el('li', 'muted empty', 'no changes yet'));
}

// ---- nodes ----
function rowsOf(v) {
  const n = v.node, raft = n.raft, leader = raft && raft.leader;
  const members = new Map(((raft && raft.members) || []).map((m) => [m.id, m]));
  const rows = [{ id: n.id, self: true, reachable: true, s: n }], ids = new Set([n.id]);
  for (const p of v.peers || []) {
    if (p && p.id && !ids.has(p.id)) { ids.add(p.id); rows.push({ id: p.id, reachable: !!p.connected, s: p.summary, peer: p }); }
  }
  for (const id of members.keys()) if (!ids.has(id)) { ids.add(id); rows.push({ id, reachable: false }); }
  for (const r of rows) {
    const m = members.get(r.id), role = r.s ? r.s.role : m ? (m.voter ? 'voter' : 'learner') : '';
    r.role = ROLES.includes(role) ? role : 'unknown';
    r.leader = !!leader && r.id === leader;
    r.stale = !r.self && !r.reachable && !!r.s;
  }
  return rows;
}
function vvDistance(theirs, ours) {
  theirs = theirs || {}; ours = ours || {};
  let ahead = 0, behind = 0, tip = 'their seq − ours, per origin:';
  for (const k of [...new Set([...Object.keys(theirs), ...Object.keys(ours)])].sort()) {
    const d = num(theirs[k]) - num(ours[k]);
    if (d > 0) ahead += d; else behind -= d;
    tip += '\n' + nameOf(k) + ' (' + shortId(k) + '): ' + (d > 0 ? '+' + d : d < 0 ? '−' + -d : '0');
  }
  return ahead || behind ? el('span', 'warn', '+' + ahead + ' / −' + behind, tip) : el('span', 'ok', 'in sync', tip);
}
function rowOf(r, n) {
  const s = r.s, p = r.peer, tr = el('tr', r.stale ? 'stale-row' : '');
  Object.assign(tr.dataset, { nodeId: r.id, self: !!r.self, role: r.role, reachable: r.reachable, leader: r.leader });
  const dash = () => el('span', 'muted', '—');
  const td = (content, stale, cls) => {   // stale: a value from the summary, greyed when last known
    const c = el('td', ((cls || '') + (stale && r.stale ? ' stale' : '')).trim(), null, stale && r.stale ? 'last known value' : null);
    c.append(content);
    return c;
  };
  const name = el('td', 'name', null, r.id + (p && p.address ? '\n' + p.address : '') +
    (p && p.summary_age_ms != null ? '\nsummary ' + dur(p.summary_age_ms) + ' old' : ''));
  const sub = [s && s.name ? shortId(r.id) : '', r.self ? 'this node' : '', r.self || p ? '' : 'never met', r.stale ? '(last known)' : ''];
  name.append(el('div', 'nm', (s && s.name) || shortId(r.id)));
  if (sub.join('')) name.append(el('div', 'sub', sub.filter(Boolean).join(' · ')));
  const role = td(el('span', 'badge role-' + r.role, r.role), !!s);
  if (r.leader) role.append(' ', el('span', 'badge leader', '★ leader'));
  const raft = s && s.raft;
  const reach = td(r.reachable ? el('span', 'ok', 'reachable') : el('span', 'bad', 'unreachable'));
  if (p && p.connected && p.connected_since_ms) reach.title = 'connected since ' + new Date(p.connected_since_ms).toLocaleString();
  if (!p && !r.self) reach.title = 'a Raft member this node has never met';
  const last = p && p.last_contact_ms;
  const sync = td(r.self || !s ? dash() : vvDistance(s.version_vector, n.version_vector), true);
  if (p && (p.changes_we_lack || p.changes_they_lack)) sync.append(el('div', 'sub', 'we lack ' + num(p.changes_we_lack) + ', they lack ' + num(p.changes_they_lack)));
  tr.append(name, role,
    td(raft ? el('span', 'raft-' + word(raft.state), raft.state + ' · term ' + raft.term) : dash(), true),
    reach,
    td(r.self ? dash() : last ? el('span', '', dur(serverNow() - last) + ' ago', new Date(last).toLocaleString()) : el('span', 'muted', 'never')),
    sync,
    td(s ? num(s.writes_per_sec).toFixed(1) : dash(), true, 'num'),
    td(s ? String(s.documents) : dash(), true, 'num'),
    td(s ? el('span', s.storage === 'ok' ? 'ok' : s.storage === 'failed' ? 'bad' : 'warn', s.storage) : dash(), true),
    td(s ? String(s.admission) : dash(), true));
  return tr;
}
function renderNodes(rows, n) {
  const tbody = $('nodes').tBodies[0], old = new Map([...tbody.rows].map((tr) => [tr.dataset.nodeId, tr]));
  rows.forEach((r, i) => {
    const fresh = rowOf(r, n);
    let tr = old.get(r.id);
    if (!tr) tr = fresh;
    else {   // keep the row and unchanged cells, so hovers and tooltips survive updates
      tr.className = fresh.className;
      Object.assign(tr.dataset, fresh.dataset);
      [...fresh.cells].forEach((c, j) => { if (!tr.cells[j].isEqualNode(c)) tr.replaceChild(c, tr.cells[j]); });
    }
    old.delete(r.id);
    if (tbody.rows[i] !== tr) tbody.insertBefore(tr, tbody.rows[i] || null);
  });
  for (const tr of old.values()) tr.remove();
}

// ---- connection graph (d3 v3 force layout) ----
const W = 360, H = 260, M = 22;
let g = null;   // {links, nodes, byId, key, force}
function drawGraph() {
  g.nodes.selectAll('g.n').each((d) => { d.x = Math.max(M, Math.min(W - M, d.x)); d.y = Math.max(M, Math.min(H - M - 10, d.y)); })
    .attr('transform', (d) => 'translate(' + d.x + ',' + d.y + ')');
  g.links.selectAll('line').attr('x1', (d) => d.source.x).attr('y1', (d) => d.source.y)
    .attr('x2', (d) => d.target.x).attr('y2', (d) => d.target.y);
}
function renderGraph(rows, n) {
  if (!g) {
    if (!window.d3 || !d3.layout) return;
    const svg = d3.select('#graph');
    g = { links: svg.append('g'), nodes: svg.append('g'), byId: new Map(), key: '',
      force: d3.layout.force().size([W, H]).charge(-420).linkDistance(90).gravity(0.09).on('tick', drawGraph) };
  }
  const present = new Set(rows.map((r) => r.id));
  for (const id of [...g.byId.keys()]) if (!present.has(id)) g.byId.delete(id);
  const nodes = rows.map((r, i) => {   // reuse node objects by id: positions stay put
    let d = g.byId.get(r.id);
    if (!d) {
      const a = i * 2.4;
      d = r.self ? { x: W / 2, y: H / 2, fixed: true } : { x: W / 2 + 70 * Math.cos(a), y: H / 2 + 60 * Math.sin(a) };
      d.id = r.id;
      g.byId.set(r.id, d);
    }
    const name = r.s && r.s.name;
    d.label = name ? (name.length > 14 ? name.slice(0, 13) + '…' : name) : shortId(r.id);
    d.cls = 'n' + (r.self ? ' self' : '') + (r.leader ? ' leader' : '') + (r.reachable ? '' : ' down');
    return d;
  });
  const edges = new Map();
  const add = (a, b) => {
    const k = a < b ? a + ' ' + b : b + ' ' + a;
    if (a !== b && present.has(a) && present.has(b) && !edges.has(k)) edges.set(k, { key: k, source: g.byId.get(a), target: g.byId.get(b) });
  };
  for (const id of n.connected || []) add(n.id, id);
  for (const r of rows) if (!r.self && r.reachable && r.s) for (const id of r.s.connected || []) add(r.id, id);
  const links = [...edges.values()];
  const line = g.links.selectAll('line').data(links, (d) => d.key);
  line.enter().append('line');
  line.exit().remove();
  const node = g.nodes.selectAll('g.n').data(nodes, (d) => d.id);
  const enter = node.enter().append('g');
  enter.append('circle').attr('class', 'ring').attr('r', 15);
  enter.append('circle').attr('class', 'dot').attr('r', 10);
  enter.append('text').attr('dy', 26).attr('text-anchor', 'middle');
  enter.append('title');
  node.exit().remove();
  node.attr('class', (d) => d.cls);
  node.select('text').text((d) => d.label);
  node.select('title').text((d) => d.id);
  const key = nodes.map((d) => d.id).join() + '|' + [...edges.keys()].sort().join();
  if (key !== g.key) { g.key = key; g.force.nodes(nodes).links(links).start(); } else drawGraph();
}

// ---- page ----
function render() {
  const n = view.node;
  names = new Map();
  for (const p of view.peers || []) if (p && p.summary && p.summary.name) names.set(p.id, p.summary.name);
  if (n.name) names.set(n.id, n.name);
  document.title = $('title').textContent = 'statemesh — ' + nameOf(n.id);
  $('summary').className = '';
  $('summary').replaceChildren(el('span', 'mono', shortId(n.id), n.id), ' · v' + n.version,
    ' · ' + n.role + (n.raft ? ' (' + n.raft.state + ', term ' + n.raft.term + ')' : ''),
    ' · up ' + dur(num(n.uptime_ms)), ' · admission: ' + n.admission, ' · ', el('span', 'updated'));
  const rows = rowsOf(view);
  renderNodes(rows, n);
  try { renderGraph(rows, n); } catch (e) { console.error('graph', e); }
  if (changes.length) renderChanges();   // origin names may have changed
  tick();
}
function tick() {
  const now = Date.now(), up = document.querySelector('#summary .updated');
  if (up) up.textContent = 'updated ' + Math.floor((now - lastData) / 1000) + ' s ago';
  $('banner').hidden = locked || now - lastStream <= 3000;
  if (locked) return;
  // A stream that went quiet without an error (a dead TCP path) is replaced.
  if (meshES && meshES.readyState === EventSource.OPEN && now - lastStream > 10000 && now - lastProbe > 10000) { meshES.close(); meshES = null; }
  if (!meshES && now - lastProbe > 3000) probe().then((ok) => ok && openMesh());
  if (!changesStarted && view && now - lastChangesTry > 5000) startChanges();
}
async function start() {
  closeStreams();
  if (await probe()) { openMesh(); startChanges(); }
}

readToken();
lastStream = Date.now();   // no banner during the first load
renderChanges();
start();
setInterval(tick, 500);
})();
