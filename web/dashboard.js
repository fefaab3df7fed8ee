// valor web chat: the Jobs view (GET /api/jobs, polled every 2 s while
// shown, with cancel and retry; a card opens its details, GET /api/jobs/{id},
// in a dialog that Esc and the browser's Back close) and the Status view
// (GET /api/status: health score ring, resources, queue, breakers, components
// and SVG charts of the last hour with time and value axes and a tooltip on
// hover, tap or arrow keys, polled every 10 s while shown). No framework, no
// build step.
//
// Invariant: text that came from the server is only ever put into the page
// with textContent / createTextNode (through `h`), never innerHTML; polling
// runs only while its view is shown.
'use strict';

(() => {
  const { apiJson, h, openNav, closeNav } = window.valor;
  const $ = (id) => document.getElementById(id);
  const SVG = 'http://www.w3.org/2000/svg';
  const JOBS_EVERY_MS = 2000;
  const STATUS_EVERY_MS = 10000;

  const views = { chat: $('main'), jobs: $('jobs-view'), status: $('status-view') };
  const tabs = [...document.querySelectorAll('.view-tab')];
  let current = 'chat';
  let timer = null;
  let inFlight = false;

  // ------------------------------------------------------------- switching
  function showView(name) {
    if (!views[name]) name = 'chat';
    current = name;
    document.body.dataset.view = name;
    for (const [key, el] of Object.entries(views)) el.hidden = key !== name;
    for (const tab of tabs) {
      const on = tab.dataset.view === name;
      tab.classList.toggle('active', on);
      tab.setAttribute('aria-selected', on ? 'true' : 'false');
    }
    clearInterval(timer);
    timer = null;
    if (name !== 'jobs') closeJob(true);
    const viewHash = /^#(jobs|status)$/.test(location.hash);
    if (name === 'chat') {
      if (viewHash) history.replaceState(null, '', location.pathname);
      return;
    }
    if (location.hash !== `#${name}`) history.replaceState(null, '', `#${name}`);
    closeNav();
    const refresh = name === 'jobs' ? refreshBoth : refreshStatus;
    refresh();
    timer = setInterval(refresh, name === 'jobs' ? JOBS_EVERY_MS : STATUS_EVERY_MS);
  }

  function stamp(el) {
    el.textContent = `updated ${new Date().toLocaleTimeString()}`;
  }

  function showError(el, error) {
    el.textContent = error ? `Could not load: ${error.message || error}` : '';
    el.hidden = !error;
  }

  // ------------------------------------------------------------------ jobs
  function jobTitle(job) {
    const task = job.payload && typeof job.payload.task === 'string' ? job.payload.task : '';
    return task || job.kind;
  }

  function when(ms) {
    if (!ms) return '';
    const s = Math.round((Date.now() - ms) / 1000);
    if (s < 45) return 'just now';
    if (s < 3600) return `${Math.round(s / 60)} min ago`;
    if (s < 86400) return `${Math.round(s / 3600)} h ago`;
    return new Date(ms).toLocaleString();
  }

  const FINISHED = new Set(['succeeded', 'failed', 'cancelled']);

  function firstLine(text, max = 160) {
    const line = String(text || '').split('\n').map((l) => l.trim()).find(Boolean) || '';
    return line.length > max ? `${line.slice(0, max - 1)}…` : line;
  }

  function money(usd) {
    return `$${usd < 1 ? usd.toFixed(4) : usd.toFixed(2)}`;
  }

  // What a finished code run did, in a few words: files, branch, cost.
  function codeRunLine(run) {
    if (!run) return '';
    const files = run.files_changed.length;
    return [
      files ? `${files} file${files === 1 ? '' : 's'} changed` : '',
      run.branch ? `branch ${run.branch}` : '',
      run.cost_usd ? money(run.cost_usd) : '',
    ].filter(Boolean).join(' · ');
  }

  // The words a card shows under its title: the live progress while the job
  // runs or waits, its end state's words once it finished (never the last
  // running note: "100 % — started working on it" after success).
  function jobState(job) {
    const pct = Number.isFinite(job.progress_percent) ? Math.max(0, Math.min(100, job.progress_percent)) : null;
    switch (job.status) {
      case 'succeeded': {
        const result = job.result && typeof job.result === 'object' ? job.result : {};
        const said = job.code_run ? (job.code_run.summary || codeRunLine(job.code_run))
          : firstLine(typeof job.result === 'string' ? job.result : result.reply || result.summary || '');
        return { kind: 'done', text: said ? `Succeeded — ${firstLine(said)}` : 'Succeeded' };
      }
      case 'failed':
        return { kind: 'failed', text: `Failed after ${job.attempts} attempt${job.attempts === 1 ? '' : 's'}${job.error ? `: ${firstLine(job.error, 240)}` : ''}` };
      case 'cancelled':
        return { kind: 'cancelled', text: `Cancelled${job.error ? `: ${firstLine(job.error, 240)}` : ''}` };
      case 'queued': {
        const place = job.queue_position ? ` · #${job.queue_position} in line` : '';
        const note = job.progress_text ? ` · ${job.progress_text}` : '';
        return { kind: 'waiting', text: `Waiting${place}${note}${lastError(job)}` };
      }
      default:
        return { kind: 'progress', pct, text: [pct !== null ? `${pct} %` : '', job.progress_text || (job.cancel_requested ? 'stopping…' : 'working…')].filter(Boolean).join(' — ') + lastError(job) };
    }
  }

  // A job tried again after a failed attempt says why that attempt failed.
  function lastError(job) {
    return job.error ? ` · last attempt failed: ${firstLine(job.error, 160)}` : '';
  }

  function jobMeta(job) {
    return [
      `#${job.id}`, job.kind, `attempt ${job.attempts}/${job.max_attempts}`,
      job.retries ? `${job.retries} retr${job.retries === 1 ? 'y' : 'ies'}` : '',
      `created ${when(job.created_at_ms)}`, job.finished_at_ms ? `finished ${when(job.finished_at_ms)}` : '',
    ].filter(Boolean).join(' · ');
  }

  function progressBar(pct) {
    const bar = h('div', { class: 'progress', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100,
      'aria-valuenow': pct ?? undefined });
    const fill = h('div', { class: 'progress-fill' });
    fill.style.width = `${pct ?? 0}%`;
    bar.append(fill);
    return bar;
  }

  function jobActions(job, after) {
    const actions = h('div', { class: 'job-actions' });
    const canCancel = (job.status === 'queued' || job.status === 'running') && !job.cancel_requested;
    if (canCancel) actions.append(actionButton(job, 'cancel', 'Cancel', after));
    if (job.status === 'failed' || job.status === 'cancelled') actions.append(actionButton(job, 'retry', 'Retry', after));
    return actions;
  }

  function badge(job) {
    return h('span', { class: `badge badge-${job.status}`, text: job.cancel_requested && job.status === 'running' ? 'cancelling' : job.status });
  }

  // A card: the title is the button that opens the details (click, Enter, Space).
  function jobRow(job) {
    const state = jobState(job);
    const row = h('article', { class: 'job-row', 'data-id': job.id, 'data-status': job.status },
      h('div', { class: 'job-head' },
        badge(job),
        h('button', { type: 'button', class: 'job-title', text: jobTitle(job), title: `Details of job #${job.id}`,
          'aria-haspopup': 'dialog', 'data-open': job.id }),
        jobActions(job, refreshJobs)),
      h('div', { class: 'job-meta', text: jobMeta(job) }));
    const line = h('div', { class: `job-progress job-state-${state.kind}` });
    if (state.kind === 'progress') line.append(progressBar(state.pct));
    line.append(h('span', { class: 'progress-text', text: state.text }));
    row.append(line);
    row.addEventListener('click', (e) => {
      if (e.target.closest('button:not(.job-title), a')) return;
      openJob(job.id);
    });
    return row;
  }

  function actionButton(job, action, label, after) {
    const button = h('button', { type: 'button', class: 'btn btn-small', 'data-action': action, text: label });
    button.addEventListener('click', async (e) => {
      e.stopPropagation();
      button.disabled = true;
      try {
        await apiJson(`/api/jobs/${encodeURIComponent(job.id)}/${action}`, { method: 'POST' });
      } catch (err) {
        showError($('jobs-error'), err);
      }
      await after();
    });
    return button;
  }

  // ----------------------------------------------------------- job details
  const dialog = $('job-dialog');
  let openId = null;
  let shownJob = '';

  function duration0(ms) {
    return ms >= 0 ? duration(Math.round(ms / 1000)) : '';
  }

  function field(label, ...value) {
    return h('div', { class: 'job-field' }, h('dt', { text: label }), h('dd', null, ...value));
  }

  function jobDetails(job) {
    const state = jobState(job);
    const fields = [
      field('Status', badge(job), ' ', h('span', { class: 'job-state-text', text: state.text })),
      field('Task', h('span', { class: 'job-task', text: jobTitle(job) })),
    ];
    if (job.status === 'running' || job.status === 'queued') {
      fields.push(field('Progress', progressBar(state.pct ?? job.progress_percent ?? 0),
        h('span', { class: 'progress-text', text: state.text })));
    }
    fields.push(field('Attempts', `${job.attempts} of ${job.max_attempts}${job.retries ? ` · retried ${job.retries}×` : ''}`));
    const times = [`created ${new Date(job.created_at_ms).toLocaleString()}`];
    if (job.started_at_ms) times.push(`started ${new Date(job.started_at_ms).toLocaleTimeString()}`);
    if (job.finished_at_ms) {
      times.push(`finished ${new Date(job.finished_at_ms).toLocaleTimeString()}`);
      if (job.started_at_ms) times.push(`took ${duration0(job.finished_at_ms - job.started_at_ms)}`);
    }
    fields.push(field('Time', times.join(' · ')));
    const run = job.code_run;
    if (run) {
      if (run.workspace) fields.push(field('Workspace', h('code', { text: run.workspace })));
      if (run.tool) fields.push(field('Now', h('code', { text: run.tool })));
      if (run.files_changed.length) {
        const label = FINISHED.has(job.status) ? 'Files changed' : 'Files so far';
        fields.push(field(`${label} (${run.files_changed.length})`,
          h('ul', { class: 'job-files' }, ...run.files_changed.map((f) => h('li', null, h('code', { text: f }))))));
      } else if (FINISHED.has(job.status)) {
        fields.push(field('Files changed', 'none'));
      }
      if (run.branch) {
        const git = [h('code', { text: run.branch })];
        if (run.base_branch) git.push(` from ${run.base_branch}`);
        if (run.commit) git.push(' · commit ', h('code', { text: run.commit.slice(0, 12) }));
        if (run.diff_stat !== null) git.push(` · ${run.diff_stat || 'nothing new to commit'}`);
        fields.push(field('Branch', ...git));
      }
      const spent = [run.cost_usd ? money(run.cost_usd) : '', run.turns ? `${run.turns} turn${run.turns === 1 ? '' : 's'}` : '']
        .filter(Boolean).join(' · ');
      if (spent) fields.push(field('Cost', spent));
      if (run.summary) fields.push(field('Summary', h('div', { class: 'job-text', text: run.summary })));
    } else if (job.result !== null && job.result !== undefined) {
      const reply = typeof job.result === 'string' ? job.result : job.result.reply;
      if (typeof reply === 'string') fields.push(field('Result', h('div', { class: 'job-text', text: reply })));
    }
    if (job.error) fields.push(field(job.status === 'failed' ? 'Error' : 'Last error', h('div', { class: 'job-text job-error', text: job.error })));
    const raw = h('details', { class: 'job-raw' }, h('summary', { text: 'Raw job (JSON)' }),
      h('pre', { text: JSON.stringify({ payload: job.payload, result: job.result }, null, 2) }));
    return [h('dl', { class: 'job-fields' }, ...fields), jobActions(job, refreshBoth), raw];
  }

  async function refreshOpenJob() {
    if (openId === null) return;
    const id = openId;
    try {
      const job = await apiJson(`/api/jobs/${encodeURIComponent(id)}`);
      if (openId !== id) return;
      // Unchanged: leave the dialog as it is (scroll position, selection, open sections).
      const seen = JSON.stringify(job);
      if (seen === shownJob) return;
      shownJob = seen;
      $('job-dialog-title').textContent = `Job #${job.id} · ${job.kind}`;
      const openRaw = dialog.querySelector('.job-raw[open]') !== null;
      $('job-dialog-body').replaceChildren(...jobDetails(job));
      if (openRaw) dialog.querySelector('.job-raw').open = true;
    } catch (e) {
      if (openId !== id) return;
      shownJob = '';
      $('job-dialog-body').replaceChildren(h('p', { class: 'view-error', text: `Could not load job #${id}: ${e.message || e}` }));
    }
  }

  async function refreshBoth() {
    await Promise.all([refreshOpenJob(), refreshJobs()]);
  }

  // Opening pushes a history entry, so the browser's Back (or a phone's back
  // gesture) closes the dialog; Esc and ✕ close it and drop that entry.
  async function openJob(id) {
    openId = Number(id);
    shownJob = '';
    $('job-dialog-title').textContent = `Job #${openId}`;
    $('job-dialog-body').replaceChildren(h('p', { class: 'muted', text: 'Loading…' }));
    if (!dialog.open) {
      dialog.showModal();
      history.pushState({ valorJob: openId }, '', location.hash || '#jobs');
    }
    await refreshOpenJob();
  }

  function closeJob(fromHistory) {
    if (openId === null) return;
    const id = openId;
    openId = null;
    if (dialog.open) dialog.close();
    if (!fromHistory && history.state && history.state.valorJob === id) history.back();
    // Back to the card that opened it (close() has run, so this wins over its own focus restore).
    const opener = document.querySelector(`#jobs-list .job-title[data-open="${id}"]`);
    if (opener) opener.focus();
  }

  // Esc: closed here, at once, rather than by the browser (whose 'close' event comes a task later).
  dialog.addEventListener('cancel', (e) => { e.preventDefault(); closeJob(false); });
  dialog.addEventListener('close', () => closeJob(false));
  $('job-dialog-close').addEventListener('click', () => closeJob(false));
  dialog.addEventListener('click', (e) => { if (e.target === dialog) closeJob(false); }); // the backdrop
  window.addEventListener('popstate', () => {
    if (openId !== null && !(history.state && history.state.valorJob === openId)) closeJob(true);
  });

  async function refreshJobs() {
    if (inFlight) return;
    inFlight = true;
    try {
      const filter = $('jobs-filter').value;
      const query = filter ? `?status=${encodeURIComponent(filter)}&limit=100` : '?limit=100';
      const body = await apiJson(`/api/jobs${query}`);
      const jobs = body.jobs || [];
      const list = $('jobs-list');
      // Keep the keyboard focus on the same card's title or button across the redraw.
      const focused = list.contains(document.activeElement) ? document.activeElement : null;
      const row = focused && focused.closest('.job-row');
      const again = row && `.job-row[data-id="${row.dataset.id}"] ${focused.dataset.action ? `[data-action="${focused.dataset.action}"]` : '.job-title'}`;
      list.replaceChildren(...jobs.map(jobRow));
      if (again) { const el = list.querySelector(again); if (el) el.focus(); }
      $('jobs-empty').hidden = jobs.length > 0;
      showError($('jobs-error'), null);
      stamp($('jobs-updated'));
    } catch (e) {
      showError($('jobs-error'), e);
    } finally {
      inFlight = false;
    }
  }

  // ---------------------------------------------------------------- status
  const MIB = 1024 * 1024;
  const mib = (bytes) => `${(bytes / MIB).toFixed(1)} MiB`;

  function duration(secs) {
    if (secs < 60) return `${secs} s`;
    if (secs < 3600) return `${Math.floor(secs / 60)} min`;
    if (secs < 86400) return `${Math.floor(secs / 3600)} h ${Math.floor((secs % 3600) / 60)} min`;
    return `${Math.floor(secs / 86400)} d ${Math.floor((secs % 86400) / 3600)} h`;
  }

  function svg(tag, attrs) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
    return el;
  }

  // ---------------------------------------------------------------- charts
  // A line chart of `points` ({t: ms, v}) in pixels of its card's width:
  // value axis from 0 to a round top (at least `floor`) with the unit,
  // time axis with clock labels, and a cursor with a tooltip that follows
  // the pointer (hover or tap) or the arrow keys when focused.
  const CHART_H = 112;
  const PAD = { left: 44, right: 8, top: 8, bottom: 20 };

  function niceTop(max) {
    if (!(max > 0)) return 1;
    const step = 10 ** Math.floor(Math.log10(max));
    for (const m of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * step >= max) return m * step;
    return 10 * step;
  }

  // 24-hour clock time, "19:05" or "19:05:09": short enough for an axis.
  function clock(ms, withSeconds) {
    const d = new Date(ms);
    const two = (n) => String(n).padStart(2, '0');
    return `${two(d.getHours())}:${two(d.getMinutes())}${withSeconds ? `:${two(d.getSeconds())}` : ''}`;
  }

  function chart(card, points, { label, unit, floor = 0, format }) {
    const fmt = format || ((v) => `${Number.isInteger(v) ? v : v.toFixed(1)}`);
    const width = Math.max(160, Math.round(card.clientWidth - 32));
    const plotW = width - PAD.left - PAD.right;
    const plotH = CHART_H - PAD.top - PAD.bottom;
    const wrap = h('div', { class: 'chart' });
    const el = svg('svg', { class: 'chart-svg', width, height: CHART_H, viewBox: `0 0 ${width} ${CHART_H}`,
      role: 'img', tabindex: 0, 'aria-label': `${label}, last hour` });
    wrap.append(el);
    const top = niceTop(Math.max(floor, ...points.map((p) => p.v)));
    const y = (v) => PAD.top + plotH - (v / top) * plotH;
    // Value axis: 0, half and the top; the top one also names the unit.
    for (const v of [0, top / 2, top]) {
      el.append(svg('line', { class: 'chart-grid', x1: PAD.left, x2: width - PAD.right, y1: y(v), y2: y(v) }));
      const text = svg('text', { class: 'chart-label chart-y', x: PAD.left - 6, y: y(v) + 4, 'text-anchor': 'end' });
      const shown = Number.isInteger(v) ? String(v) : fmt(v); // round ticks read "50 MiB", not "50.0 MiB"
      text.textContent = v === top && unit ? `${shown} ${unit}` : shown;
      el.append(text);
    }
    if (points.length === 0) {
      const none = svg('text', { class: 'chart-label', x: PAD.left + plotW / 2, y: PAD.top + plotH / 2, 'text-anchor': 'middle' });
      none.textContent = 'no samples yet';
      el.append(none);
      return wrap;
    }
    const t0 = points[0].t;
    const t1 = Math.max(points[points.length - 1].t, t0 + 1000);
    const x = (t) => PAD.left + ((t - t0) / (t1 - t0)) * plotW;
    // Time axis: start and end of the window, and its middle where there is room.
    const seconds = t1 - t0 < 10 * 60 * 1000;
    const ticks = plotW >= (seconds ? 190 : 150) ? [[t0, 'start'], [(t0 + t1) / 2, 'middle'], [t1, 'end']] : [[t0, 'start'], [t1, 'end']];
    ticks.forEach(([t, anchor]) => {
      el.append(svg('line', { class: 'chart-tick', x1: x(t), x2: x(t), y1: PAD.top + plotH, y2: PAD.top + plotH + 4 }));
      const text = svg('text', { class: 'chart-label chart-x', x: x(t), y: CHART_H - 4, 'text-anchor': anchor });
      text.textContent = clock(t, seconds);
      el.append(text);
    });
    const xy = points.length === 1
      ? [[PAD.left, y(points[0].v)], [width - PAD.right, y(points[0].v)]] // one sample: a flat line
      : points.map((p) => [x(p.t), y(p.v)]);
    const line = xy.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(' ');
    const base = (PAD.top + plotH).toFixed(1);
    el.append(svg('polygon', { class: 'spark-area', points: `${xy[0][0].toFixed(1)},${base} ${line} ${xy[xy.length - 1][0].toFixed(1)},${base}` }));
    el.append(svg('polyline', { class: 'spark-line', points: line }));
    const last = points.length === 1 ? [width - PAD.right, y(points[0].v)] : xy[xy.length - 1];
    el.append(svg('circle', { class: 'spark-dot', cx: last[0].toFixed(1), cy: last[1].toFixed(1), r: 2.5 }));

    // Cursor and tooltip.
    const guide = svg('line', { class: 'chart-guide', y1: PAD.top, y2: PAD.top + plotH, visibility: 'hidden' });
    const dot = svg('circle', { class: 'chart-cursor', r: 4, visibility: 'hidden' });
    el.append(guide, dot);
    const tip = h('div', { class: 'chart-tip', role: 'status', hidden: true });
    wrap.append(tip);
    let at = -1;
    const show = (i) => {
      at = Math.max(0, Math.min(points.length - 1, i));
      const p = points[at];
      const [cx, cy] = points.length === 1 ? last : xy[at];
      for (const [k, v] of [['x1', cx], ['x2', cx]]) guide.setAttribute(k, cx.toFixed(1));
      dot.setAttribute('cx', cx.toFixed(1));
      dot.setAttribute('cy', cy.toFixed(1));
      guide.setAttribute('visibility', 'visible');
      dot.setAttribute('visibility', 'visible');
      tip.textContent = `${clock(p.t, true)} · ${fmt(p.v)}${unit ? ` ${unit}` : ''}`;
      tip.hidden = false;
      const tipW = tip.offsetWidth;
      tip.style.left = `${Math.max(0, Math.min(width - tipW, cx - tipW / 2))}px`;
      tip.style.top = `${Math.max(0, cy - 34)}px`;
    };
    const hide = () => {
      at = -1;
      guide.setAttribute('visibility', 'hidden');
      dot.setAttribute('visibility', 'hidden');
      tip.hidden = true;
    };
    const nearest = (clientX) => {
      const box = el.getBoundingClientRect();
      const px = ((clientX - box.left) / box.width) * width;
      let best = 0;
      for (let i = 1; i < points.length; i++) if (Math.abs(xy[i][0] - px) < Math.abs(xy[best][0] - px)) best = i;
      return best;
    };
    el.addEventListener('pointermove', (e) => show(nearest(e.clientX)));
    el.addEventListener('pointerdown', (e) => show(nearest(e.clientX)));
    el.addEventListener('pointerleave', (e) => { if (e.pointerType === 'mouse') hide(); });
    el.addEventListener('focus', () => show(points.length - 1));
    el.addEventListener('blur', hide);
    el.addEventListener('keydown', (e) => {
      if (e.key === 'ArrowLeft' || e.key === 'ArrowRight') {
        e.preventDefault();
        show((at < 0 ? points.length - 1 : at) + (e.key === 'ArrowLeft' ? -1 : 1));
      } else if (e.key === 'Escape') {
        hide();
      }
    });
    return wrap;
  }

  // The last data per card, so a resize redraws the charts at the new width.
  const charts = new Map();

  function metric(id, title, value, detail, points, options) {
    const card = $(id);
    charts.set(id, [title, value, detail, points, options]);
    card.replaceChildren(
      h('div', { class: 'metric-title', text: title }),
      h('div', { class: 'metric-value', text: value }),
      h('div', { class: 'metric-detail', text: detail }),
    );
    card.append(chart(card, points, { label: title, ...options }));
  }

  let resizeTimer = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      if (current === 'status') for (const [id, args] of charts) metric(id, ...args);
    }, 150);
  });

  function renderStatus(s) {
    $('status-grid').hidden = false; // first, so the charts measure their cards
    const samples = s.samples || [];
    const res = s.resources || {};
    const latest = res.latest || samples[samples.length - 1] || {};
    const score = $('status-score');
    $('status-score-value').textContent = String(s.health.score);
    score.dataset.level = s.health.level;
    score.style.setProperty('--score', String(Math.max(0, Math.min(100, s.health.score))));
    score.setAttribute('aria-label', `Health score ${s.health.score} of 100, ${s.health.level}`);
    $('status-level').textContent = s.health.level;
    $('status-uptime').textContent = `valor ${s.version} · up ${duration(s.uptime_secs)}`;
    $('status-parts').replaceChildren(...s.health.components.map((c) =>
      h('li', { class: c.penalty ? 'part part-lost' : 'part' },
        h('span', { class: 'part-name', text: c.name }),
        h('span', { class: 'part-note', text: c.note, title: c.note }),
        h('span', { class: 'part-points', text: c.penalty ? `−${c.penalty}` : 'ok' }))));

    const count = samples.length ? ` · ${samples.length} sample${samples.length === 1 ? '' : 's'}` : '';
    const series = (pick) => samples.map((x) => ({ t: x.at_ms, v: pick(x) }));
    metric('metric-rss', 'Memory (RSS)', mib(latest.rss_bytes || 0),
      `high-water mark ${mib(res.max_rss_bytes || 0)}${count}`, series((x) => x.rss_bytes / MIB),
      { unit: 'MiB', format: (v) => (v >= 100 ? v.toFixed(0) : v.toFixed(1)) });
    metric('metric-cpu', 'CPU', `${(latest.cpu_percent || 0).toFixed(1)} %`,
      `of one core${latest.child_processes != null ? ` · ${latest.child_processes} child process(es)` : ''}`,
      series((x) => x.cpu_percent), { unit: '%', floor: 5 });
    const pressure = res.pressure ? ` · shedding load (${res.pressure.replace(/_/g, ' ')})` : '';
    metric('metric-turns', 'Active turns', `${res.active_turns} / ${res.max_active_turns}`,
      `${res.shed_total} refused since start${pressure}`, series((x) => x.active_turns), { unit: 'turns', floor: 2 });
    const q = s.queue || {};
    metric('metric-queue', 'Queue', `${q.queued || 0} queued`,
      `${q.running || 0} running · ${q.failed || 0} failed · ${q.succeeded || 0} done`,
      series((x) => x.queued_jobs), { unit: 'jobs', floor: 2 });

    const breakers = s.breakers || [];
    const table = $('status-breakers');
    if (breakers.length === 0) {
      table.replaceChildren(h('tbody', null, h('tr', null, h('td', { class: 'muted', text: 'No external services are configured.' }))));
    } else {
      table.replaceChildren(
        h('thead', null, h('tr', null, h('th', { text: 'service' }), h('th', { text: 'state' }), h('th', { text: 'failures in a row' }))),
        h('tbody', null, ...breakers.map((b) => h('tr', null,
          h('td', { text: b.service }),
          h('td', null, h('span', { class: `badge badge-breaker-${b.state}`, text: b.state.replace('_', '-') })),
          h('td', { text: String(b.consecutive_failures) })))));
    }
    // The library's servers the chat uses; their breaker is `mcp:<name>` in the table above.
    const servers = s.mcp_servers || [];
    const breakerOf = new Map(breakers.map((b) => [b.service, b.state]));
    const mcp = $('status-mcp');
    if (servers.length === 0) {
      mcp.replaceChildren(h('tbody', null, h('tr', null, h('td', { class: 'muted', text: 'No MCP servers in the library serve the chat.' }))));
    } else {
      mcp.replaceChildren(
        h('thead', null, h('tr', null, h('th', { text: 'server' }), h('th', { text: 'state' }), h('th', { text: 'breaker' }), h('th', { text: 'tools' }))),
        h('tbody', null, ...servers.map((m) => {
          const state = m.missing_credentials.length ? `missing ${m.missing_credentials.join(', ')}`
            : m.running ? 'running' : (m.last_error ? `stopped: ${m.last_error}` : 'stopped (starts on use)');
          const breaker = breakerOf.get(`mcp:${m.name}`) || 'closed';
          return h('tr', { 'data-mcp-server': m.name },
            h('td', { text: `${m.name} (${m.transport})` }),
            h('td', { text: state }),
            h('td', null, h('span', { class: `badge badge-breaker-${breaker}`, text: breaker.replace('_', '-') })),
            h('td', { text: m.tools.length ? String(m.tools.length) : '—' }));
        })));
    }
    $('status-components').replaceChildren(...(s.components || []).map((c) =>
      h('li', { class: c.on ? 'component on' : 'component off' },
        h('span', { class: 'dot', 'aria-hidden': 'true' }),
        h('span', { class: 'component-name', text: c.name }),
        h('span', { class: 'component-detail', text: c.detail }))));
  }

  async function refreshStatus() {
    try {
      renderStatus(await apiJson('/api/status'));
      showError($('status-error'), null);
      stamp($('status-updated'));
    } catch (e) {
      showError($('status-error'), e);
    }
  }

  // ---------------------------------------------------------------- wiring
  for (const tab of tabs) tab.addEventListener('click', () => showView(tab.dataset.view));
  for (const button of document.querySelectorAll('[data-menu]')) {
    button.addEventListener('click', () => (document.getElementById('app').classList.contains('nav-open') ? closeNav() : openNav()));
  }
  // Opening a conversation (or a new one) goes back to the chat.
  $('conv-list').addEventListener('click', (e) => { if (e.target.closest('.conv-item')) showView('chat'); });
  $('new-conversation').addEventListener('click', () => showView('chat'));
  $('jobs-filter').addEventListener('change', refreshJobs);
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && current !== 'chat') showView(current);
  });

  const initial = location.hash.match(/^#(jobs|status)$/);
  if (initial) showView(initial[1]);
})();
