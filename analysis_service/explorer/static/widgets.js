// Pieces both pages show: status badges, per-stage progress, error notes.

import { ApiError, describe } from './api.js';
import { bar, el } from './dom.js';
import { num } from './format.js';

export const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);
const STAGE_ORDER = ['scan', 'import', 'caption', 'discover', 'summarize'];

export function badge(job) {
  const text = job.cancel_requested && job.status === 'running' ? 'cancelling' : job.status;
  return el('span', { class: `badge ${job.status}` }, text);
}

export function stages(job) {
  const names = Object.keys(job.progress || {}).sort(
    (a, b) => STAGE_ORDER.indexOf(a) - STAGE_ORDER.indexOf(b),
  );
  if (!names.length) return el('span', { class: 'muted' }, job.status === 'queued' ? 'waiting for a worker' : '–');
  return el('div', { class: 'stages' }, names.map((name) => stage(name, job.progress[name], job)));
}

function stage(name, progress, job) {
  const done = progress.state === 'done';
  const known = progress.total !== null && progress.total !== undefined && progress.total > 0;
  const fraction = done ? 1 : known ? progress.done / progress.total : 0;
  const counts = known ? `${num(progress.done)} / ${num(progress.total)} ${progress.unit}` : done ? 'done' : `${num(progress.done)} ${progress.unit}`;
  const active = !done && job.status === 'running' && job.stage === name;
  return el(
    'div',
    { class: `stage ${done ? 'done' : active ? 'active' : ''}`.trim(), dataset: { stage: name } },
    el('span', { class: 'stage-name' }, name),
    bar(fraction, 'stage-bar'),
    el('span', { class: 'stage-count' }, counts),
  );
}

export function errorNote(error) {
  const note = el('p', { class: 'error', role: 'alert' }, describe(error));
  if (error instanceof ApiError && error.signedOut) note.append(' ', el('a', { href: '/ui/login' }, 'Sign in'));
  return note;
}
