// Drawing pieces of the service map that hold no state: node glyphs and captions, edge
// labels, arrow markers and the legend.

import { h, s, fmtBytes, fmtPct, fmtMs, fmtCount, hue } from './dom.js';
import { NODE_H } from './layout.js';

export const STATUSES = ['ok', 'error', 'audit', 'drop'];

export function glyph(kind, color) {
  const g = s('g', { transform: `translate(18 ${NODE_H / 2})` });
  const bg = s('circle', { r: 11, fill: color, 'fill-opacity': 0.16 });
  g.append(bg);
  if (kind === 'world') {
    g.append(
      s('circle', { r: 6.5, fill: 'none', stroke: color, 'stroke-width': 1.4 }),
      s('ellipse', { rx: 3, ry: 6.5, fill: 'none', stroke: color, 'stroke-width': 1.1 }),
      s('line', { x1: -6.5, x2: 6.5, y1: 0, y2: 0, stroke: color, 'stroke-width': 1.1 }),
    );
  } else if (kind === 'ip') {
    g.append(s('rect', { x: -5.5, y: -5.5, width: 11, height: 11, rx: 2.5, fill: 'none', stroke: color, 'stroke-width': 1.6 }));
  } else {
    const hex = 'M0,-6.5 L5.6,-3.25 L5.6,3.25 L0,6.5 L-5.6,3.25 L-5.6,-3.25 Z';
    g.append(s('path', { d: hex, fill: kind === 'workload' ? color : 'none', 'fill-opacity': 0.5, stroke: color, 'stroke-width': 1.6 }));
  }
  return g;
}

export function nodeColor(n) {
  if (n.kind === 'ip' || n.kind === 'world') return 'hsl(210 12% 55%)';
  return `hsl(${hue(n.namespace || n.id)} 62% 52%)`;
}

export function nodeSub(n) {
  if (n.kind === 'world') return 'other external addresses';
  const parts = [];
  if (n.kind === 'workload' && n.pods) parts.push(`${n.pods.length} pod${n.pods.length === 1 ? '' : 's'}`);
  if (n.flows_out || n.flows_in) parts.push(`↑${fmtCount(n.flows_out)} ↓${fmtCount(n.flows_in)}`);
  const b = n.bytes_sent + n.bytes_received;
  if (b) parts.push(fmtBytes(b));
  return parts.join(' · ') || (n.kind === 'ip' ? 'external address' : '');
}

/** Label lines of an edge as [text, class]: what, how much, and what went wrong. */
export function labelLines(e, benign) {
  const lines = [];
  const ports = e.ports.length > 1 ? `${e.ports[0]} +${e.ports.length - 1}` : e.ports[0] || '';
  const flows = e.flows ? `${fmtCount(e.flows)} flow${e.flows === 1 ? '' : 's'}` : '';
  const main = [ports, flows, e.flows ? fmtBytes(e.bytes_out + e.bytes_in) : ''].filter(Boolean).join(' · ');
  if (main) lines.push([main, '']);
  if (e.l7) {
    const l7 = [`${fmtCount(e.l7.requests)} req`];
    if (e.l7.latency_p95_ms !== null) l7.push(`p95 ${fmtMs(e.l7.latency_p95_ms)}`);
    if (e.l7.errors) l7.push(`${fmtPct(e.l7.error_rate)} err`);
    lines.push([l7.join(' · '), e.l7.errors ? 'errs' : '']);
  }
  if (e.drops) {
    const reasons = Object.keys(e.drop_reasons).filter((r) => !benign.has(r));
    lines.push([`${fmtCount(e.drops)} dropped · ${reasons.join(', ')}`, 'drops']);
  }
  const deny = e.verdicts && e.verdicts.deny;
  if (deny) lines.push([`${fmtCount(deny)} denied`, 'drops']);
  return lines;
}

export function edgeRank(e) {
  return (e.status === 'drop' ? 1e15 : 0) + (e.status === 'error' ? 1e14 : 0) + e.bytes_out + e.bytes_in + e.flows;
}

export function drawLabel(e, at, hidden, benign) {
  const t = s('text', { class: 'edge-label', 'text-anchor': 'middle', dataset: { label: e.id } });
  labelLines(e, benign).forEach(([text, cls], i) => {
    t.append(s('tspan', { x: at.x, y: at.y + i * 13, class: cls || null }, text));
  });
  if (hidden) t.setAttribute('visibility', 'hidden');
  return t;
}

export function defs() {
  return s('defs', null, STATUSES.map((st) => s('marker', {
    id: `arrow-${st}`, viewBox: '0 0 10 10', refX: 8, refY: 5, markerWidth: 9, markerHeight: 9,
    markerUnits: 'userSpaceOnUse', orient: 'auto-start-reverse',
  }, s('path', { d: 'M0,1 L9,5 L0,9 z', class: `marker-${st}` }))));
}

/** The legend strip under the map. */
export function legend(el) {
  const line = (cls, label, extra = {}) => h('div', { class: 'item' },
    s('svg', { width: 28, height: 10 }, s('g', { class: `edge ${cls}` }, s('path', { class: 'line', d: 'M2,5 L26,5', 'stroke-width': 2.5, ...extra }))),
    label);
  const node = (kind, label) => h('div', { class: 'item' },
    s('svg', { width: 28, height: 24, viewBox: '4 -1 28 24' }, glyph(kind, kind === 'ip' || kind === 'world' ? 'hsl(210 12% 55%)' : 'hsl(205 62% 52%)')),
    label);
  el.replaceChildren(
    line('s-ok', 'traffic'),
    line('s-ok active', 'active flows'),
    line('s-error', 'L7 errors / resets'),
    line('s-audit', 'audit would deny'),
    line('s-drop', 'drops / denied'),
    h('div', { class: 'item' }, 'width ∝ bytes'),
    h('div', { class: 'sep' }),
    node('pod', 'pod'),
    node('workload', 'workload'),
    node('ip', 'external IP'),
    node('world', 'world'),
  );
}
