// Edge geometry for the service map: where each edge leaves and enters its nodes, its curve,
// and where its label goes. Pure functions of the layout, no DOM.
//
// Edges sharing a node side get their own attachment slots, ordered by where their other end
// is, so that bundles fan out instead of piling onto one point. Labels are placed greedily,
// most important edge first, at the first spot on or beside the curve that overlaps neither
// a node nor an earlier label; a label with no free spot is left for the hover tooltip
// rather than drawn over another.

const SLOT_GAP = 7;
const CHAR_W = 5.9;
const LINE_H = 13;
const PAIR_BOW = 22;

function sides(a, b) {
  if (a === b) return ['r', 'r'];
  if (b.x >= a.x + a.w + 20) return ['r', 'l'];
  if (b.x + b.w + 20 <= a.x) return ['l', 'r'];
  return ['r', 'r'];
}

/** {edgeId: {src: offset, dst: offset, sides}} with offsets from the node's vertical centre. */
function slots(edges, pos) {
  const bySide = new Map();
  const out = new Map();
  for (const e of edges) {
    const a = pos.get(e.source);
    const b = pos.get(e.target);
    if (!a || !b) continue;
    const sd = sides(a, b);
    out.set(e.id, { src: 0, dst: 0, sides: sd });
    if (a === b) continue;
    const add = (node, side, end, other) => {
      const k = `${node}|${side}`;
      if (!bySide.has(k)) bySide.set(k, []);
      bySide.get(k).push({ id: e.id, end, y: other.y + other.h / 2, x: other.x });
    };
    add(e.source, sd[0], 'src', b);
    add(e.target, sd[1], 'dst', a);
  }
  for (const [k, list] of bySide) {
    const h = pos.get(k.slice(0, k.lastIndexOf('|'))).h;
    list.sort((p, q) => p.y - q.y || p.x - q.x || (p.end < q.end ? -1 : 1) || p.id.localeCompare(q.id));
    const spread = Math.min(h - 12, (list.length - 1) * SLOT_GAP);
    list.forEach((s, i) => {
      out.get(s.id)[s.end] = list.length === 1 ? 0 : -spread / 2 + (i * spread) / (list.length - 1);
    });
  }
  return out;
}

export function bezier(c, t) {
  const u = 1 - t;
  const k = [u * u * u, 3 * u * u * t, 3 * u * t * t, t * t * t];
  return {
    x: k[0] * c[0].x + k[1] * c[1].x + k[2] * c[2].x + k[3] * c[3].x,
    y: k[0] * c[0].y + k[1] * c[1].y + k[2] * c[2].y + k[3] * c[3].y,
  };
}

/**
 * The four control points of the curve from `a` to `b`. `bow` (px) pulls the middle of the
 * curve aside so that the two directions of a pair form a lens instead of overlapping.
 */
function curve(a, b, s, bow) {
  const anchor = (n, side, off, inset) => ({
    x: side === 'r' ? n.x + n.w + inset : n.x - inset,
    y: n.y + n.h / 2 + off,
  });
  if (a === b) {
    const p0 = { x: a.x + a.w, y: a.y + a.h / 2 - 7 };
    const p3 = { x: a.x + a.w + 4, y: a.y + a.h / 2 + 7 };
    return [p0, { x: p0.x + 52, y: a.y - 20 }, { x: p3.x + 52, y: a.y + a.h + 20 }, p3];
  }
  // The arrow head (6 px) sits outside the target node.
  const p0 = anchor(a, s.sides[0], s.src, 0);
  const p3 = anchor(b, s.sides[1], s.dst, 6);
  if (s.sides[0] === s.sides[1]) {
    // Same column: bow out to the right, further for nodes further apart.
    const bulge = 40 + Math.abs(p3.y - p0.y) * 0.3 + Math.abs(bow);
    return [p0, { x: p0.x + bulge, y: p0.y }, { x: p3.x + bulge, y: p3.y }, p3];
  }
  const dx = (p3.x - p0.x) / 2;
  return [p0, { x: p0.x + dx, y: p0.y + bow }, { x: p3.x - dx, y: p3.y + bow }, p3];
}

export function pathOf(c) {
  const f = (p) => `${p.x.toFixed(1)},${p.y.toFixed(1)}`;
  return `M${f(c[0])} C${f(c[1])} ${f(c[2])} ${f(c[3])}`;
}

function overlaps(r, list) {
  return list.some((q) => r.x < q.x + q.w && q.x < r.x + r.w && r.y < q.y + q.h && q.y < r.y + r.h);
}

/** Anchor of the first free w×h box near the curve, or null; the box is then taken. */
function findSpot(c, w, h, taken) {
  for (const t of [0.5, 0.4, 0.6, 0.3, 0.7, 0.22, 0.78]) {
    const p = bezier(c, t);
    // On the curve first, then beside it: a label next to its line still reads as its own.
    for (const [dx, dy] of [[0, 0], [0, -h / 2 - 3], [0, h / 2 + 3], [w / 2 + 6, 0], [-w / 2 - 6, 0]]) {
      const box = { x: p.x + dx - w / 2, y: p.y + dy - h / 2, w, h };
      if (!overlaps(box, taken)) {
        taken.push(box);
        return { x: p.x + dx, y: box.y + LINE_H - 2 };
      }
    }
  }
  return null;
}

/**
 * Curves and label spots for `edges` laid out at `pos`. `lines(e)` gives an edge's label
 * lines (strings); `rank(e)` orders who gets a free spot first (higher first).
 * Returns Map id → {c, label: {x, y} | null}; `label` is the first line's baseline centre.
 */
export function route(edges, pos, lines, rank) {
  const sl = slots(edges, pos);
  const out = new Map();
  const ids = new Set(edges.map((e) => e.id));
  for (const e of edges) {
    const s = sl.get(e.id);
    if (!s) continue;
    const paired = e.source !== e.target && ids.has(`${e.target}->${e.source}`);
    const bow = paired ? (e.source < e.target ? -PAIR_BOW : PAIR_BOW) : 0;
    out.set(e.id, { c: curve(pos.get(e.source), pos.get(e.target), s, bow), label: null });
  }
  const taken = [...pos.values()].map((p) => ({ x: p.x - 4, y: p.y - 4, w: p.w + 8, h: p.h + 8 }));
  const order = edges.filter((e) => out.has(e.id)).sort((p, q) => rank(q) - rank(p) || p.id.localeCompare(q.id));
  for (const e of order) {
    const ls = lines(e);
    if (!ls.length) continue;
    const w = Math.max(...ls.map((l) => l.length)) * CHAR_W + 8;
    const h = ls.length * LINE_H + 2;
    out.get(e.id).label = findSpot(out.get(e.id).c, w, h, taken);
  }
  return out;
}
