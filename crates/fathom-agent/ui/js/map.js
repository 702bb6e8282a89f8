// The service map view: /ui/api/map drawn as SVG (layout.js), refreshed every few seconds and
// sooner when the live streams show a pair of endpoints or a drop the map does not have yet.

import { s, truncate, fmtTime } from './dom.js';
import { getJSON } from './api.js';
import { layout, NODE_W, NODE_H } from './layout.js';
import { route, pathOf, bezier } from './edges.js';
import { glyph, nodeColor, nodeSub, labelLines, edgeRank, drawLabel, defs, legend } from './mapdraw.js';
import { edgeTip, renderSide } from './mapside.js';

const REFRESH_MS = 5000;
const QUICK_MS = 1200;
// Beyond this many edges, labels show on hover only: past that they overlap into noise.
const LABEL_LIMIT = 60;

let current = null;
let lastKey = '';
let selected = null;
let geometry = null;
let view = null;
let userMoved = false;
let timer = null;
let quick = null;
let visible = false;
let benign = new Set();
const knownEdges = new Set();
const droppingEdges = new Set();

const $ = (id) => document.getElementById(id);

function params() {
  return { window: $('map-window').value, group: $('map-group').value };
}

async function refresh() {
  clearTimeout(timer);
  // Nobody is looking: keep the agent's aggregation work for when somebody is (after the
  // first load, which also tells the other views which drop reasons are benign).
  if (current && (!visible || document.hidden)) {
    timer = setTimeout(refresh, REFRESH_MS);
    return;
  }
  const p = params();
  try {
    const m = await getJSON(`/ui/api/map?window=${encodeURIComponent(p.window)}&group=${encodeURIComponent(p.group)}`);
    current = m;
    benign = new Set(m.benign_reasons || []);
    knownEdges.clear();
    droppingEdges.clear();
    for (const e of m.edges) {
      knownEdges.add(e.id);
      if (e.drops) droppingEdges.add(e.id);
    }
    const key = JSON.stringify([m.nodes, m.edges]);
    if (key !== lastKey) {
      lastKey = key;
      render();
    }
    side();
    $('map-updated').textContent = `updated ${fmtTime(new Date().toISOString()).slice(0, 8)}`;
  } catch (e) {
    $('map-updated').textContent = `map unavailable: ${e.message}`;
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

/** Drop reasons that do not mean lost traffic (teardown, flooded copies), per the agent. */
export function benignReasons() {
  return benign;
}

/** A live record arrived: refresh soon if it shows something the map lacks. */
export function noteActivity(rec) {
  if (!current || quick || $('map-group').value !== 'pod') return;
  const name = (ep) => (ep && ep.pod ? (ep.namespace ? `${ep.namespace}/${ep.pod}` : ep.pod) : ep && ep.ip);
  const id = `${name(rec.source)}->${name(rec.destination)}`;
  const news = !knownEdges.has(id) || (rec.type === 'drop' && !droppingEdges.has(id));
  if (news) quick = setTimeout(() => {
    quick = null;
    refresh();
  }, QUICK_MS);
}

// ---- drawing ----

function drawNode(p) {
  const n = p.node;
  const color = nodeColor(n);
  const g = s('g', { class: 'node', transform: `translate(${p.x} ${p.y})`, dataset: { node: n.id, kind: n.kind } },
    s('title', null, n.id),
    s('rect', { class: 'body', width: NODE_W, height: NODE_H, rx: 8 }),
    s('rect', { x: 0, y: 7, width: 3, height: NODE_H - 14, rx: 1.5, fill: color }),
    glyph(n.kind, color),
    s('text', { class: 'name', x: 36, y: 16 }, truncate(n.label, 22)),
    s('text', { class: 'sub', x: 36, y: 30 }, nodeSub(n)));
  if (n.drops) {
    g.append(
      s('circle', { class: 'badge', cx: NODE_W - 2, cy: 2, r: 9 }),
      s('text', { class: 'badge-text', x: NODE_W - 2, y: 5.5, 'text-anchor': 'middle' }, n.drops > 99 ? '99+' : n.drops),
    );
  }
  g.addEventListener('click', (e) => {
    e.stopPropagation();
    select({ kind: 'node', id: n.id });
  });
  g.addEventListener('mouseenter', () => highlight(n.id));
  g.addEventListener('mouseleave', () => highlight(null));
  return g;
}

function drawEdge(e, r, hideLabels) {
  const d = pathOf(r.c);
  const width = 1.4 + Math.min(5.5, Math.log10(1 + e.bytes_out + e.bytes_in) * 0.75);
  const g = s('g', {
    class: `edge s-${e.status}${e.active ? ' active' : ''}`,
    dataset: {
      edge: e.id,
      status: e.status,
      drops: e.drops,
      reasons: Object.keys(e.drop_reasons).join(','),
      flows: e.flows,
    },
  },
  s('path', { class: 'line', d, 'stroke-width': width.toFixed(2), 'marker-end': `url(#arrow-${e.status})` }),
  s('path', { class: 'hit', d }));
  g.addEventListener('mouseenter', (ev) => {
    highlight(null, e);
    tooltip(ev, edgeTip(e, benign));
  });
  g.addEventListener('mousemove', (ev) => moveTip(ev));
  g.addEventListener('mouseleave', () => {
    highlight(null);
    tooltip(null);
  });
  g.addEventListener('click', (ev) => {
    ev.stopPropagation();
    select({ kind: 'edge', id: e.id });
  });
  // No free spot: the label still exists, shown on hover (over whatever is there).
  const at = r.label || bezier(r.c, 0.5);
  return { g, label: drawLabel(e, at, hideLabels || !r.label, benign) };
}

function render() {
  const svg = $('map');
  const m = current;
  $('map-empty').hidden = m.nodes.length > 0;
  const L = layout(m);
  geometry = L;
  const boxes = s('g');
  for (const b of L.boxes) {
    const label = b.id === 'world' ? 'WORLD' : b.id.toUpperCase();
    const unit = b.world ? 'address' : m.grouping === 'workload' ? 'workload' : 'pod';
    boxes.append(s('g', { class: 'group', dataset: { group: b.id } },
      s('rect', { class: `group-box${b.world ? ' world' : ''}`, x: b.x, y: b.y, width: b.w, height: b.h, rx: 12 }),
      s('text', { class: 'group-title', x: b.x + 14, y: b.y + 20 }, truncate(label, 24)),
      s('text', { class: 'group-count', x: b.x + b.w - 14, y: b.y + 20, 'text-anchor': 'end' }, `${b.count} ${unit}${b.count === 1 ? '' : b.world ? 'es' : 's'}`)));
  }
  const routes = route(m.edges, L.pos, (e) => labelLines(e, benign).map((l) => l[0]), edgeRank);
  const edges = s('g');
  const labels = s('g');
  const hideLabels = m.edges.length > LABEL_LIMIT;
  for (const e of m.edges) {
    const r = routes.get(e.id);
    if (!r) continue;
    const { g, label } = drawEdge(e, r, hideLabels);
    edges.append(g);
    labels.append(label);
  }
  const nodes = s('g');
  for (const p of L.pos.values()) nodes.append(drawNode(p));
  svg.replaceChildren(defs(), boxes, edges, nodes, labels);
  if (!userMoved) fit();
  else applyView();
  applySelection();
}

// ---- pan and zoom (viewBox) ----

function fit() {
  const g = geometry;
  if (!g || !g.width) {
    view = { x: 0, y: 0, w: 100, h: 100 };
  } else {
    const pad = 60;
    const wrap = $('map-wrap');
    // Extra room on the right: same-column edges bow out there, with their labels.
    const w = g.width + 2 * pad + 120;
    const hgt = g.height + 2 * pad;
    // A hidden view measures 0: assume a usual size until it is shown (setMapVisible).
    const cw = wrap.clientWidth || 1000;
    const ch = wrap.clientHeight || 600;
    // A small map is enlarged a little, not to fill the view: its text would look oversized.
    const scale = Math.max(w / cw, hgt / ch, 0.8);
    const vw = cw * scale;
    const vh = ch * scale;
    view = { x: (g.width - vw) / 2 + 60, y: (g.height - vh) / 2, w: vw, h: vh };
  }
  applyView();
}

function applyView() {
  $('map').setAttribute('viewBox', `${view.x} ${view.y} ${view.w} ${view.h}`);
}

function initPanZoom() {
  const svg = $('map');
  let drag = null;
  svg.addEventListener('wheel', (e) => {
    e.preventDefault();
    const r = svg.getBoundingClientRect();
    const k = Math.exp(e.deltaY * 0.0015);
    const px = view.x + ((e.clientX - r.left) / r.width) * view.w;
    const py = view.y + ((e.clientY - r.top) / r.height) * view.h;
    view = { x: px - (px - view.x) * k, y: py - (py - view.y) * k, w: view.w * k, h: view.h * k };
    userMoved = true;
    applyView();
  }, { passive: false });
  svg.addEventListener('mousedown', (e) => {
    drag = { x: e.clientX, y: e.clientY, v: { ...view }, moved: false };
    svg.classList.add('panning');
  });
  window.addEventListener('mousemove', (e) => {
    if (!drag) return;
    const r = svg.getBoundingClientRect();
    const dx = ((e.clientX - drag.x) / r.width) * drag.v.w;
    const dy = ((e.clientY - drag.y) / r.height) * drag.v.h;
    if (Math.abs(e.clientX - drag.x) + Math.abs(e.clientY - drag.y) > 3) drag.moved = true;
    if (!drag.moved) return;
    view = { ...drag.v, x: drag.v.x - dx, y: drag.v.y - dy };
    userMoved = true;
    applyView();
  });
  window.addEventListener('mouseup', () => {
    drag = null;
    svg.classList.remove('panning');
  });
  svg.addEventListener('click', () => select(null));
}

// ---- hover, tooltip, selection ----

function highlight(nodeId, edge) {
  const svg = $('map');
  for (const el of svg.querySelectorAll('.lit')) el.classList.remove('lit');
  if (!nodeId && !edge) {
    svg.classList.remove('dim');
    for (const t of svg.querySelectorAll('.edge-label[data-hover]')) {
      t.setAttribute('visibility', 'hidden');
      delete t.dataset.hover;
    }
    return;
  }
  svg.classList.add('dim');
  const lit = (sel) => {
    const el = svg.querySelector(sel);
    if (el) el.classList.add('lit');
  };
  for (const e of current.edges) {
    if (edge ? e.id !== edge.id : e.source !== nodeId && e.target !== nodeId) continue;
    lit(`[data-edge="${CSS.escape(e.id)}"]`);
    lit(`[data-node="${CSS.escape(e.source)}"]`);
    lit(`[data-node="${CSS.escape(e.target)}"]`);
    const t = svg.querySelector(`[data-label="${CSS.escape(e.id)}"]`);
    if (t) t.classList.add('lit');
    if (t && t.getAttribute('visibility') === 'hidden') {
      t.removeAttribute('visibility');
      t.dataset.hover = '';
    }
  }
  if (nodeId) lit(`[data-node="${CSS.escape(nodeId)}"]`);
}

function tooltip(ev, content) {
  const tip = $('tooltip');
  if (!content) {
    tip.hidden = true;
    return;
  }
  tip.replaceChildren(...content);
  tip.hidden = false;
  moveTip(ev);
}

function moveTip(ev) {
  const tip = $('tooltip');
  const r = $('map-wrap').getBoundingClientRect();
  let x = ev.clientX - r.left + 14;
  const y = ev.clientY - r.top + 14;
  if (x + tip.offsetWidth > r.width - 8) x = ev.clientX - r.left - tip.offsetWidth - 14;
  tip.style.left = `${Math.max(4, x)}px`;
  tip.style.top = `${Math.min(y, r.height - tip.offsetHeight - 8)}px`;
}

function select(sel) {
  selected = sel;
  applySelection();
  side();
}

function side() {
  if (current) renderSide($('map-side'), current, { selected, select, benign });
}

function applySelection() {
  const svg = $('map');
  for (const el of svg.querySelectorAll('.selected')) el.classList.remove('selected');
  if (!selected) return;
  const attr = selected.kind === 'node' ? 'data-node' : 'data-edge';
  const el = svg.querySelector(`[${attr}="${CSS.escape(selected.id)}"]`);
  if (el) el.classList.add('selected');
}

export function setMapVisible(v) {
  visible = v;
  if (v) {
    // Sizes are only known once the view is shown: draw again.
    lastKey = '';
    refresh();
  }
}

export function initMap() {
  legend($('legend'));
  initPanZoom();
  $('map-window').addEventListener('change', refresh);
  $('map-group').addEventListener('change', () => {
    userMoved = false;
    selected = null;
    refresh();
  });
  $('map-fit').addEventListener('click', () => {
    userMoved = false;
    fit();
  });
  window.addEventListener('resize', () => {
    if (visible && current) render();
  });
  refresh();
}
