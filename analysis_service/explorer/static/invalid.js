// The files a job skipped, with the reason, a page at a time.

import { api, query } from './api.js';
import { clear, el } from './dom.js';
import { num } from './format.js';
import { errorNote } from './widgets.js';

const PAGE = 100;

export function renderInvalid(container, jobId) {
  const body = el('tbody');
  const counter = el('span', { class: 'muted' });
  const more = el('button', { type: 'button', hidden: true }, 'Show more');
  const status = el('div');
  let offset = 0;
  clear(
    container,
    el('div', { class: 'heading' }, el('h2', {}, 'Invalid files'), counter),
    el('p', { class: 'hint' }, 'Files the scan could not use, with the reason; the job went on with the rest.'),
    el('table', { class: 'invalid' }, el('thead', {}, el('tr', {}, el('th', {}, 'File'), el('th', {}, 'Class'), el('th', {}, 'Reason'))), body),
    status,
    more,
  );
  async function load() {
    more.disabled = true;
    try {
      const page = await api(`/v1/jobs/${jobId}/invalid-images${query({ limit: PAGE, offset })}`);
      body.append(...page.items.map((item) => el('tr', {}, el('td', { class: 'path' }, item.path), el('td', {}, item.class || '–'), el('td', {}, item.reason))));
      offset += page.items.length;
      counter.textContent = `${num(offset)} of ${num(page.total)}`;
      more.hidden = offset >= page.total;
      clear(status, page.total ? null : el('p', { class: 'muted' }, 'None: every file was used.'));
    } catch (error) {
      clear(status, errorNote(error));
    } finally {
      more.disabled = false;
    }
  }
  more.addEventListener('click', load);
  load();
}
