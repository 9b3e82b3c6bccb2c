"""The bodies of the explorer's pages: the parts that do not depend on data. The page's module
(static/) fills in the rest from the JSON API and wires up the forms."""

from __future__ import annotations

from html import escape

from analysis_service.explorer.service import JobTarget

_SUBMIT_FORM = """
<section class="card" id="submit">
 <h2>Submit a job</h2>
 <form id="submit-form" novalidate>
  <div class="row">
   <label>Dataset folder<input name="dataset_path" placeholder="sample, or /data/waterbirds"
     autocomplete="off" spellcheck="false"></label>
   <label>Captions file<input name="captions_path" placeholder="optional: captions.csv or .jsonl"
     autocomplete="off" spellcheck="false"></label>
  </div>
  <p class="hint">A folder with one subfolder per class, or a captions file (image, label,
   caption) for discovery without images, or both (rows matched to the folder's images).
   Paths are absolute or relative to a data root.</p>
  <details><summary>Options</summary>
   <div class="row">
    <label>Mode<select name="mode"><option value="per_class">per class</option>
     <option value="organization">organization (all images, one criterion)</option></select></label>
    <label>Criterion<input name="criterion" placeholder="e.g. location" autocomplete="off"></label>
    <label>Attributes (organization)
     <input name="num_attributes" type="number" min="2" max="200"></label>
   </div>
   <div class="row">
    <label>Subject (organization)<input name="subject" placeholder="e.g. photo"></label>
    <label>Seed<input name="seed" type="number" min="0" value="0"></label>
    <label>Token budget<input name="token_budget" type="number" min="1" placeholder="none"></label>
    <label>Assignment<select name="assignment_mode"><option value="">service default</option>
     <option value="batched">batched</option>
     <option value="per_image_dimension">per image and dimension</option></select></label>
   </div>
   <label class="check"><input type="checkbox" name="caption_class_hint"> Name the class in
    the captioning prompt (reproduces the reference code; biases captions)</label>
  </details>
  <div class="actions"><button type="submit" class="primary">Submit</button>
   <span id="submit-result" role="status"></span></div>
 </form>
</section>
"""

_READ_ONLY = (
    '<section class="card" id="submit"><h2>Submit a job</h2>'
    '<p class="hint">This key is read-only: submitting needs a key with write scope.</p></section>'
)

_JOBS = """
<section class="card">
 <div class="heading"><h2>Jobs <span id="jobs-total" class="count"></span></h2>
  <label class="inline">Status <select id="jobs-status"><option value="">all</option>
   <option>queued</option><option>running</option><option>succeeded</option>
   <option>failed</option><option>cancelled</option></select></label></div>
 <div id="jobs" aria-live="polite"><p class="muted">Loading…</p></div>
 <nav class="pager" id="jobs-pager"></nav>
</section>
"""


def jobs_main(can_write: bool) -> str:
    return (_SUBMIT_FORM if can_write else _READ_ONLY) + _JOBS


def job_main(target: JobTarget) -> str:
    return f"""
<section class="job-head">
 <div><p class="crumbs"><a href="/ui">Jobs</a> / <span class="mono">{target.job_id}</span></p>
  <h1 id="job-title">{escape(target.dataset_path)}</h1></div>
 <div id="job-actions" class="actions"></div>
</section>
<section id="job-status" class="card"><p class="muted">Loading…</p></section>
<nav class="tabs" id="tabs">
 <a href="?" data-tab="structure">Structure</a>
 <a href="?tab=slices" data-tab="slices">Slices</a>
 <a href="?tab=invalid" data-tab="invalid">Invalid files <span id="invalid-count"
   class="count"></span></a>
 <a href="?tab=downloads" data-tab="downloads">Downloads</a>
</nav>
<section id="tab-structure" class="tab">
 <div class="split"><aside id="tree" class="card"></aside>
  <section id="grid" class="card"><p class="muted">Choose an attribute to see its
   images.</p></section></div>
</section>
<section id="tab-slices" class="tab" hidden></section>
<section id="tab-invalid" class="tab card" hidden></section>
<section id="tab-downloads" class="tab card" hidden></section>
"""
