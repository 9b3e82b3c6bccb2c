// The job page: live status, and tabs for the structure (with thumbnail grids), the slices of
// its prediction sets, its invalid files and its downloads. The URL holds what is open, so
// links can be shared and the back button walks back through it.

import { api, query } from './api.js';
import { clear, el } from './dom.js';
import { duration, num, when } from './format.js';
import { renderDownloads } from './downloads.js';
import { imageCard, openGrid } from './grid.js';
import { renderInvalid } from './invalid.js';
import { renderSlices } from './slices.js';
import { renderTree } from './tree.js';
import { TERMINAL, badge, errorNote, stages } from './widgets.js';

const data = document.body.dataset;
const jobId = data.jobId;
const hasImages = data.hasImages === 'true';
const canWrite = data.canWrite === 'true';
const POLL_MS = 2000;
const PAGE = 60;

const $ = (id) => document.getElementById(id);
const tabs = ['structure', 'slices', 'invalid', 'downloads'];
let job = null;
let structure = null;
let tree = null;
let openId = null;
let invalidShown = false;
let lastStructure = {};

function navigate(params) {
  history.pushState(null, '', `${location.pathname}${query(params)}`);
  apply();
}

function currentTab(params) {
  const tab = params.get('tab');
  if (tabs.includes(tab)) return tab;
  return params.has('predictions') ? 'slices' : 'structure';
}

function apply() {
  const params = new URLSearchParams(location.search);
  const tab = currentTab(params);
  for (const name of tabs) {
    $(`tab-${name}`).hidden = name !== tab;
    const link = document.querySelector(`#tabs a[data-tab="${name}"]`);
    link.classList.toggle('active', name === tab);
    if (name === tab) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  if (!job) return;
  if (tab === 'structure') showStructure(params);
  else if (job.status !== 'succeeded' && tab !== 'invalid') waiting($(`tab-${tab}`));
  else if (tab === 'slices') renderSlices($('tab-slices'), { job, params, navigate, hasImages, canWrite });
  else if (tab === 'downloads') renderDownloads($('tab-downloads'), job, structure);
  if (tab === 'invalid' && !invalidShown) {
    invalidShown = true;
    renderInvalid($('tab-invalid'), jobId);
  }
}

function waiting(box) {
  const why = TERMINAL.has(job.status) ? `It ended ${job.status}.` : 'This page updates when it does.';
  const note = el('p', { class: 'muted' }, `Results appear once the job has succeeded. ${why}`);
  clear(box, box.classList.contains('card') ? note : el('div', { class: 'card' }, note));
}

function showStructure(params) {
  if (job.status !== 'succeeded') {
    clear($('tree'), el('h2', {}, 'Structure'), el('p', { class: 'muted' }, 'Discovered once the job has succeeded.'));
    waiting($('grid'));
    return;
  }
  const raw = params.get('subpopulation');
  lastStructure = raw ? { subpopulation: raw } : {};
  const id = raw === null ? null : Number(raw);
  if (id === openId) return;
  openId = id;
  tree.mark(id);
  if (id === null) {
    if ($('grid').grid) $('grid').grid.close();
    clear($('grid'), el('p', { class: 'muted' }, 'Choose an attribute to see its images.'));
    return;
  }
  const entry = tree.byId.get(id);
  if (!entry) {
    clear($('grid'), el('p', { class: 'error', role: 'alert' }, `This job has no subpopulation ${raw}.`));
    return;
  }
  openSubpopulation(entry);
}

function openSubpopulation(entry) {
  const heading = el('div', { class: 'heading' },
    el('h2', {}, el('span', { class: 'muted' }, `${entry.class} · ${entry.dimension} · `), entry.attribute),
    el('span', { class: 'muted', dataset: { size: entry.size } }, `${num(entry.size)} images · ${(entry.share * 100).toFixed(1)}% of ${entry.class}`));
  openGrid($('grid'), {
    heading,
    total: entry.size,
    pageOf: async (after) => {
      const page = await api(`/v1/subpopulations/${entry.id}/images${query({ limit: PAGE, after })}`);
      return { items: page.items, next: page.next };
    },
    card: (item) => imageCard({ imageId: item.image_id, path: item.path, caption: item.caption, hasImages }),
  });
}

function renderStatus() {
  const facts = [
    ['Images', `${num(job.valid)} analysed${job.invalid ? `, ${num(job.invalid)} skipped` : ''} of ${num(job.images)} found`],
    ['Mode', job.mode === 'organization' ? `organization${job.criterion ? ` by ${job.criterion}` : ''}` : `per class${job.criterion ? `, criterion ${job.criterion}` : ''}`],
    ['Source', job.captions_path ? (job.captions_path === job.dataset_path ? 'captions file' : `folder + ${job.captions_path}`) : 'image folder'],
    ['Captions', job.caption_engine || '–'],
    ['Reasoner', job.reasoner || '–'],
    job.llm && job.llm.model ? ['LLM', `${job.llm.model}: ${num(job.llm.spent.tokens)} tokens in ${num(job.llm.spent.calls)} calls`] : null,
    ['Submitted', `${when(job.created_at)}${job.submitted_by ? ` by ${job.submitted_by}` : ''}`],
    ['Took', duration(job.duration_s)],
  ].filter(Boolean);
  clear(
    $('job-status'),
    el('div', { class: 'status-line' }, badge(job), job.stage ? el('span', { class: 'muted' }, `stage: ${job.stage}`) : null,
      job.attempts > 1 ? el('span', { class: 'muted' }, `attempt ${job.attempts}`) : null),
    job.error ? el('p', { class: 'error' }, job.error) : null,
    el('div', { class: 'status-body' }, stages(job), el('dl', { class: 'facts' }, facts.map(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]))),
  );
  $('invalid-count').textContent = job.invalid ? num(job.invalid) : '';
  renderActions();
}

function renderActions() {
  const box = $('job-actions');
  if (!canWrite) return clear(box);
  const act = (verb, label) => el('button', { type: 'button', onclick: () => post(verb) }, label);
  const running = job.status === 'queued' || job.status === 'running';
  clear(box, running && !job.cancel_requested ? act('cancel', 'Cancel') : null,
    job.status === 'failed' || job.status === 'cancelled' ? act('retry', 'Retry') : null);
}

async function post(verb) {
  try {
    job = await api(`/v1/jobs/${jobId}/${verb}`, { method: 'POST' });
    renderStatus();
    poll();
  } catch (error) {
    $('job-actions').append(errorNote(error));
  }
}

let pollTimer = null;

async function poll() {
  clearTimeout(pollTimer);
  try {
    job = await api(`/v1/jobs/${jobId}`);
  } catch (error) {
    clear($('job-status'), errorNote(error));
    pollTimer = setTimeout(poll, POLL_MS * 5);
    return;
  }
  renderStatus();
  if (job.status === 'succeeded' && !structure) {
    try {
      structure = await api(`/v1/jobs/${jobId}/structure`);
    } catch (error) {
      clear($('tree'), errorNote(error));
      return;
    }
    tree = renderTree($('tree'), structure, (id) => navigate({ subpopulation: id }));
    openId = undefined; // the grid opens now that the tree exists
    apply();
  } else if (!TERMINAL.has(job.status)) {
    pollTimer = setTimeout(poll, POLL_MS);
  }
  if (!tree) apply();
}

document.getElementById('tabs').addEventListener('click', (event) => {
  const link = event.target.closest('a[data-tab]');
  if (!link) return;
  event.preventDefault();
  const tab = link.dataset.tab;
  navigate(tab === 'structure' ? lastStructure : { tab });
});
window.addEventListener('popstate', apply);
apply();
poll();
