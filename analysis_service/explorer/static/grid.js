// A grid of images (or of captions, for jobs without image files) that loads one page at a
// time as it is scrolled: only what is looked at is ever fetched, at any subpopulation size.

import { thumbnail } from './api.js';
import { clear, el } from './dom.js';
import { num } from './format.js';
import { errorNote } from './widgets.js';

const AHEAD = '900px'; // start fetching the next page this far before the end comes into view

export function openGrid(container, { heading, total, pageOf, card }) {
  if (container.grid) container.grid.close();
  const items = el('div', { class: 'grid' });
  const counter = el('p', { class: 'muted count-line', 'aria-live': 'polite' });
  const sentinel = el('div', { class: 'sentinel' });
  const status = el('div', { class: 'grid-status' });
  clear(container, el('div', { class: 'grid-head' }, heading, counter), items, sentinel, status);
  let cursor = null;
  let loaded = 0;
  let loading = false;
  let done = false;
  let closed = false;

  const count = () => {
    const of = total === null || total === undefined ? '' : ` of ${num(total)}`;
    counter.textContent = `Showing ${num(loaded)}${of}`;
    counter.dataset.loaded = String(loaded);
  };
  const nearEnd = () => sentinel.getBoundingClientRect().top < window.innerHeight + 900;

  async function more() {
    if (loading || done || closed) return;
    loading = true;
    clear(status, el('span', { class: 'muted' }, 'Loading…'));
    try {
      const page = await pageOf(cursor);
      if (closed) return;
      items.append(...page.items.map(card));
      loaded += page.items.length;
      cursor = page.next;
      done = cursor === null || cursor === undefined;
      clear(status, done && loaded === 0 ? el('p', { class: 'muted' }, 'No images.') : null);
      count();
    } catch (error) {
      clear(status, errorNote(error), el('button', { type: 'button', onclick: more }, 'Try again'));
      return;
    } finally {
      loading = false;
    }
    if (!done && nearEnd()) more(); // a short page leaves the end in view: no scroll will come
  }

  const observer = new IntersectionObserver((entries) => {
    if (entries.some((entry) => entry.isIntersecting)) more();
  }, { rootMargin: `0px 0px ${AHEAD} 0px` });
  observer.observe(sentinel);
  count();
  more();
  container.grid = {
    close() {
      closed = true;
      observer.disconnect();
    },
  };
  return container.grid;
}

// One image: its thumbnail (or caption), its path, and what else the grid shows of it.
export function imageCard({ imageId, path, caption, hasImages, extra = null, cls = '' }) {
  const figure = el('figure', { class: `card ${cls}`.trim(), tabindex: 0, dataset: { imageId } });
  const detail = () => showDetail({ imageId, path, caption, hasImages, extra });
  figure.addEventListener('click', detail);
  figure.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' || event.key === ' ') {
      event.preventDefault();
      detail();
    }
  });
  if (hasImages) {
    const img = el('img', {
      src: thumbnail(imageId),
      loading: 'lazy',
      decoding: 'async',
      width: 256,
      height: 256,
      alt: path,
      title: caption || path,
    });
    img.addEventListener('error', () => unavailable(img, imageId, caption), { once: true });
    figure.append(el('div', { class: 'thumb' }, img));
  } else {
    figure.append(el('div', { class: 'thumb text' }, el('p', {}, caption || 'No caption.')));
    figure.title = caption || '';
  }
  figure.append(el('figcaption', { class: 'path', title: path }, path));
  if (extra) figure.append(extra.cloneNode(true));
  return figure;
}

// A thumbnail that did not load: ask the API why (its error body says) and show that instead.
async function unavailable(img, imageId, caption) {
  let body = null;
  try {
    body = await (await fetch(thumbnail(imageId), { credentials: 'same-origin' })).json();
  } catch {
    // no reason to show beyond the default
  }
  const code = body && body.error;
  const lead = LEADS[code] || 'Unavailable';
  const reason = (body && body.detail) || 'The thumbnail could not be loaded.';
  const box = el('div', { class: 'thumb placeholder', role: 'img', 'aria-label': `${lead}: ${reason}` });
  box.append(el('strong', {}, lead), el('span', {}, reason));
  if (code === 'no_image_file' && caption) box.append(el('p', { class: 'caption' }, caption));
  img.closest('.thumb').replaceWith(box);
}

// What a thumbnail's error code says, in a word or two above the API's reason.
const LEADS = {
  no_image_file: 'No image file',
  file_gone: 'File gone',
  file_changed: 'Changed since the scan',
  invalid_image: 'Cannot be shown',
  forbidden: 'Outside the data roots',
};

let dialog = null;

function showDetail({ imageId, path, caption, hasImages, extra }) {
  if (!dialog) {
    dialog = el('dialog', { class: 'detail' });
    dialog.addEventListener('click', (event) => {
      if (event.target === dialog) dialog.close(); // a click on the backdrop
    });
    document.body.append(dialog);
  }
  const picture = hasImages
    ? el('img', { src: thumbnail(imageId, 512), alt: path, width: 512, height: 512 })
    : null;
  if (picture) picture.addEventListener('error', () => picture.remove(), { once: true });
  clear(
    dialog,
    el('div', { class: 'detail-head' }, el('h3', { class: 'path' }, path), el('button', { type: 'button', class: 'close', 'aria-label': 'Close', onclick: () => dialog.close() }, '×')),
    picture,
    extra ? extra.cloneNode(true) : null,
    el('p', { class: 'caption' }, caption || (hasImages ? '' : 'No caption.')),
  );
  dialog.showModal();
}
