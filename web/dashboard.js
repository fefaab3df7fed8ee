// valor web chat: the Jobs view (GET /api/jobs, polled every 2 s while
// shown, with cancel and retry) and the Status view (GET /api/status: health
// score, resources, queue, breakers, components and inline SVG sparklines of
// the last hour, polled every 10 s while shown). No framework, no build step.
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
    const viewHash = /^#(jobs|status)$/.test(location.hash);
    if (name === 'chat') {
      if (viewHash) history.replaceState(null, '', location.pathname);
      return;
    }
    if (location.hash !== `#${name}`) history.replaceState(null, '', `#${name}`);
    closeNav();
    const refresh = name === 'jobs' ? refreshJobs : refreshStatus;
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

  function jobRow(job) {
    const pct = Number.isFinite(job.progress_percent) ? Math.max(0, Math.min(100, job.progress_percent)) : null;
    const actions = h('div', { class: 'job-actions' });
    const canCancel = (job.status === 'queued' || job.status === 'running') && !job.cancel_requested;
    if (canCancel) actions.append(actionButton(job, 'cancel', 'Cancel'));
    if (job.status === 'failed' || job.status === 'cancelled') actions.append(actionButton(job, 'retry', 'Retry'));
    const meta = [
      `#${job.id}`, job.kind, `attempt ${job.attempts}/${job.max_attempts}`,
      job.retries ? `${job.retries} retr${job.retries === 1 ? 'y' : 'ies'}` : '',
      `created ${when(job.created_at_ms)}`, job.finished_at_ms ? `finished ${when(job.finished_at_ms)}` : '',
    ].filter(Boolean).join(' · ');
    const row = h('article', { class: 'job-row', 'data-id': job.id, 'data-status': job.status },
      h('div', { class: 'job-head' },
        h('span', { class: `badge badge-${job.status}`, text: job.cancel_requested && job.status === 'running' ? 'cancelling' : job.status }),
        h('span', { class: 'job-title', text: jobTitle(job), title: jobTitle(job) }),
        actions),
      h('div', { class: 'job-meta', text: meta }));
    if (pct !== null || job.progress_text) {
      const bar = h('div', { class: 'progress', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100,
        'aria-valuenow': pct ?? undefined });
      const fill = h('div', { class: 'progress-fill' });
      fill.style.width = `${pct ?? 0}%`;
      bar.append(fill);
      row.append(h('div', { class: 'job-progress' }, bar,
        h('span', { class: 'progress-text', text: [pct !== null ? `${pct} %` : '', job.progress_text || ''].filter(Boolean).join(' — ') })));
    }
    if (job.error) row.append(h('div', { class: 'job-error', text: job.error }));
    return row;
  }

  function actionButton(job, action, label) {
    const button = h('button', { type: 'button', class: 'btn btn-small', 'data-action': action, text: label });
    button.addEventListener('click', async () => {
      button.disabled = true;
      try {
        await apiJson(`/api/jobs/${encodeURIComponent(job.id)}/${action}`, { method: 'POST' });
      } catch (e) {
        showError($('jobs-error'), e);
      }
      await refreshJobs();
    });
    return button;
  }

  async function refreshJobs() {
    if (inFlight) return;
    inFlight = true;
    try {
      const filter = $('jobs-filter').value;
      const query = filter ? `?status=${encodeURIComponent(filter)}&limit=100` : '?limit=100';
      const body = await apiJson(`/api/jobs${query}`);
      const jobs = body.jobs || [];
      const list = $('jobs-list');
      list.replaceChildren(...jobs.map(jobRow));
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

  // A sparkline of `values` (oldest first): a polyline with a filled area,
  // scaled from 0 (or the minimum, if negative) to max(ceiling, the maximum).
  function sparkline(values, ceiling, label) {
    const width = 240;
    const height = 48;
    const chart = svg('svg', { class: 'spark', viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: 'none',
      role: 'img', 'aria-label': label });
    if (values.length === 0) return chart;
    if (values.length === 1) values = [values[0], values[0]]; // one sample: a flat line, not a lone dot
    const top = Math.max(ceiling || 0, ...values) || 1;
    const step = values.length > 1 ? width / (values.length - 1) : 0;
    const points = values.map((v, i) => [values.length > 1 ? i * step : width, height - 2 - (v / top) * (height - 4)]);
    const line = points.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' ');
    chart.append(svg('polygon', { class: 'spark-area', points: `${points[0][0].toFixed(1)},${height} ${line} ${points[points.length - 1][0].toFixed(1)},${height}` }));
    chart.append(svg('polyline', { class: 'spark-line', points: line }));
    const [lx, ly] = points[points.length - 1];
    chart.append(svg('circle', { class: 'spark-dot', cx: lx.toFixed(1), cy: ly.toFixed(1), r: 2.5 }));
    return chart;
  }

  function metric(id, title, value, detail, values, ceiling) {
    $(id).replaceChildren(
      h('div', { class: 'metric-title', text: title }),
      h('div', { class: 'metric-value', text: value }),
      h('div', { class: 'metric-detail', text: detail }),
      sparkline(values, ceiling, `${title}, last hour`),
    );
  }

  function renderStatus(s) {
    const samples = s.samples || [];
    const res = s.resources || {};
    const latest = res.latest || samples[samples.length - 1] || {};
    const score = $('status-score');
    score.textContent = String(s.health.score);
    score.dataset.level = s.health.level;
    $('status-level').textContent = s.health.level;
    $('status-uptime').textContent = `valor ${s.version} · up ${duration(s.uptime_secs)}`;
    $('status-parts').replaceChildren(...s.health.components.map((c) =>
      h('li', { class: c.penalty ? 'part part-lost' : 'part' },
        h('span', { class: 'part-name', text: c.name }),
        h('span', { class: 'part-note', text: c.note, title: c.note }),
        h('span', { class: 'part-points', text: c.penalty ? `−${c.penalty}` : 'ok' }))));

    const hours = samples.length ? ` · ${samples.length} sample${samples.length === 1 ? '' : 's'}` : '';
    metric('metric-rss', 'Memory (RSS)', mib(latest.rss_bytes || 0),
      `high-water mark ${mib(res.max_rss_bytes || 0)}${hours}`, samples.map((x) => x.rss_bytes / MIB), 0);
    metric('metric-cpu', 'CPU', `${(latest.cpu_percent || 0).toFixed(1)} %`,
      `of one core${latest.child_processes != null ? ` · ${latest.child_processes} child process(es)` : ''}`,
      samples.map((x) => x.cpu_percent), 5);
    const pressure = res.pressure ? ` · shedding load (${res.pressure.replace(/_/g, ' ')})` : '';
    metric('metric-turns', 'Active turns', `${res.active_turns} / ${res.max_active_turns}`,
      `${res.shed_total} refused since start${pressure}`, samples.map((x) => x.active_turns), 1);
    const q = s.queue || {};
    metric('metric-queue', 'Queue', `${q.queued || 0} queued`,
      `${q.running || 0} running · ${q.failed || 0} failed · ${q.succeeded || 0} done`,
      samples.map((x) => x.queued_jobs), 1);

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
    $('status-components').replaceChildren(...(s.components || []).map((c) =>
      h('li', { class: c.on ? 'component on' : 'component off' },
        h('span', { class: 'dot', 'aria-hidden': 'true' }),
        h('span', { class: 'component-name', text: c.name }),
        h('span', { class: 'component-detail', text: c.detail }))));
    $('status-grid').hidden = false;
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
