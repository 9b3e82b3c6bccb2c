// The jobs page: every job, a page at a time, kept live by polling; and the submit form.

import { api, query } from './api.js';
import { clear, el } from './dom.js';
import { duration, num, when } from './format.js';
import { TERMINAL, badge, errorNote, stages } from './widgets.js';

const PAGE = 20;
const LIVE_MS = 2000; // while a job in view is queued or running
const IDLE_MS = 10000; // otherwise: new jobs submitted elsewhere still appear

const list = document.getElementById('jobs');
const pager = document.getElementById('jobs-pager');
const total = document.getElementById('jobs-total');
const statusFilter = document.getElementById('jobs-status');
let timer = null;
let shown = '';

function view() {
  const params = new URLSearchParams(location.search);
  const offset = Math.max(0, Number.parseInt(params.get('offset') || '0', 10) || 0);
  return { offset, status: params.get('status') || '' };
}

function go(changes) {
  const next = { ...view(), ...changes };
  history.pushState(null, '', `/ui${query({ offset: next.offset || null, status: next.status })}`);
  refresh();
}

async function refresh() {
  clearTimeout(timer);
  const { offset, status } = view();
  statusFilter.value = status;
  let live = false;
  try {
    const page = await api(`/v1/jobs${query({ limit: PAGE, offset, status })}`);
    live = page.items.some((job) => !TERMINAL.has(job.status));
    const key = JSON.stringify(page);
    if (key !== shown) {
      shown = key;
      render(page);
    }
  } catch (error) {
    shown = '';
    clear(list, errorNote(error));
  }
  if (!document.hidden) timer = setTimeout(refresh, live ? LIVE_MS : IDLE_MS);
}

function render(page) {
  total.textContent = `(${num(page.total)})`;
  if (!page.items.length) {
    clear(list, el('p', { class: 'muted' }, page.total ? 'No jobs on this page.' : 'No jobs yet: submit a dataset above.'));
  } else {
    clear(list, table(page.items));
  }
  const end = Math.min(page.offset + page.items.length, page.total);
  clear(
    pager,
    el('button', { type: 'button', disabled: page.offset === 0, onclick: () => go({ offset: Math.max(0, page.offset - PAGE) }) }, '← Newer'),
    el('span', { class: 'muted' }, page.total ? `${num(page.offset + 1)}–${num(end)} of ${num(page.total)}` : ''),
    el('button', { type: 'button', disabled: end >= page.total, onclick: () => go({ offset: page.offset + PAGE }) }, 'Older →'),
  );
}

function table(jobs) {
  return el(
    'table',
    { class: 'jobs' },
    el('thead', {}, el('tr', {}, ['Dataset', 'Status', 'Progress', 'Images', 'Created', 'Took'].map((h) => el('th', {}, h)))),
    el('tbody', {}, jobs.map(row)),
  );
}

function row(job) {
  const source = job.captions_path && job.captions_path === job.dataset_path ? 'captions file' : job.captions_path ? 'folder + captions' : 'folder';
  const mode = job.mode === 'organization' ? `organization${job.criterion ? ` by ${job.criterion}` : ''}` : 'per class';
  return el(
    'tr',
    { dataset: { jobId: job.id } },
    el(
      'td',
      { class: 'dataset' },
      el('a', { href: `/ui/jobs/${job.id}` }, job.dataset_path),
      el('div', { class: 'muted small' }, `${source} · ${mode}${job.submitted_by ? ` · by ${job.submitted_by}` : ''}`),
      job.error ? el('div', { class: 'error small' }, job.error) : null,
    ),
    el('td', {}, badge(job)),
    el('td', { class: 'progress' }, stages(job)),
    el('td', { class: 'num' }, num(job.valid), job.invalid ? el('div', { class: 'muted small' }, `${num(job.invalid)} skipped`) : null),
    el('td', { class: 'nowrap' }, when(job.created_at)),
    el('td', { class: 'nowrap' }, duration(job.duration_s)),
  );
}

// The form's fields as JobCreate takes them: empty fields left out, numbers as numbers.
function jobBody(form) {
  const data = new FormData(form);
  const body = {};
  for (const name of ['dataset_path', 'captions_path', 'mode', 'criterion', 'subject', 'assignment_mode']) {
    const value = String(data.get(name) || '').trim();
    if (value) body[name] = value;
  }
  for (const name of ['num_attributes', 'seed', 'token_budget']) {
    const value = String(data.get(name) || '').trim();
    if (value) body[name] = Number(value);
  }
  if (data.get('caption_class_hint')) body.caption_class_hint = true;
  return body;
}

function wireForm() {
  const form = document.getElementById('submit-form');
  if (!form) return; // a read-only key sees no form
  const result = document.getElementById('submit-result');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    clear(result, el('span', { class: 'muted' }, 'Submitting…'));
    try {
      const job = await api('/v1/jobs', { method: 'POST', body: jobBody(form) });
      clear(result, el('span', { class: 'ok' }, 'Queued: '), el('a', { href: `/ui/jobs/${job.id}` }, job.dataset_path));
      go({ offset: 0, status: '' });
    } catch (error) {
      clear(result, errorNote(error));
    } finally {
      button.disabled = false;
    }
  });
}

statusFilter.addEventListener('change', () => go({ offset: 0, status: statusFilter.value }));
window.addEventListener('popstate', refresh);
document.addEventListener('visibilitychange', () => {
  if (!document.hidden) refresh();
  else clearTimeout(timer);
});
wireForm();
refresh();
