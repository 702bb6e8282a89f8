// Service map layout: namespaces as boxes arranged in columns, pods stacked inside them.
//
// Deterministic on purpose (no force simulation): the same map lays out the same way on every
// refresh, so nodes do not wander while one reads them. Calls run left to right: each
// namespace sits one column right of the furthest namespace that calls it. Inside a box, pods
// are ordered by where their peers are (one barycenter pass), which removes most edge
// crossings for maps of ~50 nodes.

export const NODE_W = 184;
export const NODE_H = 38;
const GAP_Y = 10;
const GAP_X = 16;
const PAD = 14;
const HEAD = 30;
const COL_GAP = 210;
const BOX_GAP = 28;
const PER_SUBCOL = 10;

export const WORLD_GROUP = 'world';

export function groupOf(node) {
  if (node.namespace) return node.namespace;
  return node.kind === 'ip' || node.kind === 'world' ? WORLD_GROUP : '(no namespace)';
}

/** Namespace order: callers left, callees right (by cross-namespace edges). */
function orderGroups(groups, edges, groupById) {
  const score = new Map([...groups.keys()].map((g) => [g, { out: 0, inn: 0 }]));
  for (const e of edges) {
    const a = groupById.get(e.source);
    const b = groupById.get(e.target);
    if (a === undefined || b === undefined || a === b) continue;
    score.get(a).out++;
    score.get(b).inn++;
  }
  const val = (g) => {
    const s = score.get(g);
    return (s.inn - s.out) / (s.inn + s.out || 1);
  };
  return [...groups.keys()].sort((a, b) => val(a) - val(b) || (a === WORLD_GROUP) - (b === WORLD_GROUP) || a.localeCompare(b));
}

function boxSize(n) {
  const sub = Math.max(1, Math.ceil(n / PER_SUBCOL));
  const rows = Math.ceil(n / sub);
  return {
    sub,
    w: PAD * 2 + sub * NODE_W + (sub - 1) * GAP_X,
    h: HEAD + PAD + rows * (NODE_H + GAP_Y) - GAP_Y + PAD,
  };
}

/**
 * Columns of namespaces: each one column right of the furthest namespace that calls it
 * (longest path over the calls; only calls that go forward in the caller-first order count,
 * which breaks cycles). A column much taller than the average is split in two, so that a
 * wide layer does not shrink the whole map to fit one tall column.
 */
function columnsOf(order, groups, edges, groupById) {
  const at = new Map(order.map((g, i) => [g, i]));
  const next = new Map(order.map((g) => [g, new Set()]));
  for (const e of edges) {
    const a = groupById.get(e.source);
    const b = groupById.get(e.target);
    if (a !== undefined && b !== undefined && at.get(a) < at.get(b)) next.get(a).add(b);
  }
  const rank = new Map(order.map((g) => [g, 0]));
  for (const g of order) for (const b of next.get(g)) rank.set(b, Math.max(rank.get(b), rank.get(g) + 1));
  const layers = [];
  for (const g of order) (layers[rank.get(g)] ||= []).push(g);
  const height = (col) => col.reduce((acc, g) => acc + boxSize(groups.get(g).length).h + BOX_GAP, -BOX_GAP);
  const dense = layers.filter(Boolean);
  const total = dense.reduce((acc, col) => acc + height(col), 0);
  const limit = Math.max(...order.map((g) => boxSize(groups.get(g).length).h), (1.3 * total) / dense.length);
  const cols = [];
  for (const layer of dense) {
    let col = [];
    for (const g of layer) {
      if (col.length && height([...col, g]) > limit) {
        cols.push(col);
        col = [];
      }
      col.push(g);
    }
    cols.push(col);
  }
  return cols;
}

function place(cols, groups) {
  const boxes = [];
  const pos = new Map();
  let x = 0;
  const heights = cols.map((col) => col.reduce((acc, g) => acc + boxSize(groups.get(g).length).h, 0) + BOX_GAP * Math.max(0, col.length - 1));
  const tallest = Math.max(0, ...heights);
  cols.forEach((col, ci) => {
    if (!col.length) return;
    const width = Math.max(...col.map((g) => boxSize(groups.get(g).length).w));
    // Shorter columns are centred against the tallest one.
    let y = (tallest - heights[ci]) / 2;
    for (const g of col) {
      const nodes = groups.get(g);
      const size = boxSize(nodes.length);
      const rows = Math.ceil(nodes.length / size.sub);
      const bx = x + (width - size.w) / 2;
      boxes.push({ id: g, x: bx, y, w: size.w, h: size.h, count: nodes.length, world: g === WORLD_GROUP });
      nodes.forEach((n, i) => {
        const sc = Math.floor(i / rows);
        const r = i % rows;
        pos.set(n.id, {
          x: bx + PAD + sc * (NODE_W + GAP_X),
          y: y + HEAD + PAD + r * (NODE_H + GAP_Y),
          w: NODE_W,
          h: NODE_H,
          node: n,
          group: g,
        });
      });
      y += size.h + BOX_GAP;
    }
    x += width + COL_GAP;
  });
  return { boxes, pos, width: Math.max(0, x - COL_GAP), height: tallest };
}

/** Reorder each box's nodes by the mean y of their peers in other boxes. */
function barycenter(groups, edges, pos) {
  const peers = new Map();
  const add = (a, b) => {
    const pa = pos.get(a);
    const pb = pos.get(b);
    if (!pa || !pb || pa.group === pb.group) return;
    const l = peers.get(a) || [];
    l.push(pb.y);
    peers.set(a, l);
  };
  for (const e of edges) {
    add(e.source, e.target);
    add(e.target, e.source);
  }
  for (const [g, nodes] of groups) {
    const key = (n) => {
      const l = peers.get(n.id);
      return l ? l.reduce((a, b) => a + b, 0) / l.length : Infinity;
    };
    groups.set(g, nodes.map((n, i) => [key(n), i, n]).sort((a, b) => a[0] - b[0] || a[1] - b[1]).map((x) => x[2]));
  }
}

/** Box and node positions for `map` (the caller fits the result to its view). */
export function layout(map) {
  const groups = new Map();
  const groupById = new Map();
  for (const n of [...map.nodes].sort((a, b) => a.label.localeCompare(b.label) || a.id.localeCompare(b.id))) {
    const g = groupOf(n);
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g).push(n);
    groupById.set(n.id, g);
  }
  if (!groups.size) return { boxes: [], pos: new Map(), width: 0, height: 0 };
  const order = orderGroups(groups, map.edges, groupById);
  const cols = columnsOf(order, groups, map.edges, groupById);
  const first = place(cols, groups);
  barycenter(groups, map.edges, first.pos);
  return place(cols, groups);
}
