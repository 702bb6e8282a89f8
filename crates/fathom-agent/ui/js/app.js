// Entry point: tabs (the URL hash names the view), the theme toggle, the agent's status line,
// and the live indicator that sums up the state of every stream the page holds open.

import { getJSON } from './api.js';
import { fmtDuration, fmtCount, fmtRate } from './dom.js';
import { initMap, noteActivity, setMapVisible } from './map.js';
import { initFlows } from './flows.js';
import { initDrops, renderReasons } from './drops.js';
import { initPolicy } from './policy.js';
import { initDetail } from './detail.js';

const VIEWS = ['map', 'flows', 'drops', 'policy'];
const STATUS_MS = 5000;
const streams = new Map();
let lastStatus = null;

const $ = (id) => document.getElementById(id);

function route() {
  const name = location.hash.slice(1).split('?')[0];
  const view = VIEWS.includes(name) ? name : 'map';
  for (const v of VIEWS) $(`view-${v}`).hidden = v !== view;
  for (const a of document.querySelectorAll('.tabs a')) a.classList.toggle('active', a.dataset.tab === view);
  document.body.dataset.view = view;
  setMapVisible(view === 'map');
}

/** The header pill: live when every stream is, else the worst state among them. */
function streamState(name, state) {
  streams.set(name, state);
  const states = [...streams.values()];
  const worst = ['error', 'down', 'connecting'].find((s) => states.includes(s)) || 'live';
  const pill = $('live');
  pill.dataset.state = worst;
  pill.textContent = { live: 'live', connecting: 'connecting', down: 'agent unreachable', error: 'error' }[worst];
}

async function pollStatus() {
  try {
    const st = await getJSON('/v1/status');
    const k = st.kernel || {};
    const lost = Object.values(k.lost_events || {}).reduce((a, b) => a + b, 0) + (st.events_dropped || 0);
    const parts = [`node ${st.node}`, `up ${fmtDuration(st.uptime_seconds)}`];
    if (lastStatus) {
      const dt = Math.max(1, st.uptime_seconds - lastStatus.uptime_seconds);
      parts.push(`${fmtRate((st.records_published - lastStatus.records_published) / dt)} records`);
    } else {
      parts.push(`${fmtCount(st.records_published)} records`);
    }
    if (lost) parts.push(`${fmtCount(lost)} events lost`);
    if ((st.attach_errors || []).length) parts.push(`${st.attach_errors.length} attach errors`);
    $('agent-info').textContent = parts.join(' · ');
    $('agent-info').title = `Fathom ${st.version}, pid ${st.pid}`;
    renderReasons(k.drops);
    lastStatus = st;
  } catch (e) {
    $('agent-info').textContent = e.status === 401
      ? 'this agent needs its token: open the page as /?token=…'
      : `status unavailable (${e.message})`;
  }
  setTimeout(pollStatus, STATUS_MS);
}

const THEMES = ['auto', 'light', 'dark'];

function applyTheme(t) {
  if (t === 'auto') delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = t;
  $('theme').title = `Theme: ${t}`;
  $('theme').textContent = { auto: '◐', light: '☀', dark: '☾' }[t];
}

function initTheme() {
  let t = localStorage.getItem('fathom-theme');
  if (!THEMES.includes(t)) t = 'auto';
  applyTheme(t);
  $('theme').addEventListener('click', () => {
    t = THEMES[(THEMES.indexOf(t) + 1) % THEMES.length];
    localStorage.setItem('fathom-theme', t);
    applyTheme(t);
  });
}

function main() {
  initTheme();
  initDetail();
  window.addEventListener('hashchange', route);
  route();
  initMap();
  initFlows({ activity: noteActivity, streamState });
  initDrops({ activity: noteActivity, streamState });
  initPolicy({ streamState });
  pollStatus();
}

main();
