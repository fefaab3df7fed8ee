// valor web chat: conversation list, streamed replies (SSE over fetch), tool
// cards, bearer-token prompt. No framework, no build step. The Jobs and
// Status views live in dashboard.js and use `window.valor` from here.
//
// Invariant: text from the server or the model reaches the page through
// textContent / createTextNode; the one exception is Markdown the server
// rendered (the `html` of text blocks and turn events, valor's markdown
// module: raw HTML escaped, links http/https/mailto only, images only from
// this server), and only `setHtml` puts it in. The page's
// Content-Security-Policy runs no inline script either.
'use strict';

(() => {
  const TOKEN_KEY = 'valor.token';

  const $ = (id) => document.getElementById(id);
  const els = {
    app: $('app'),
    convList: $('conv-list'),
    convEmpty: $('conv-empty'),
    convSearch: $('conv-search'),
    convBackground: $('conv-background'),
    newConv: $('new-conversation'),
    main: $('main'),
    title: $('main-title'),
    messages: $('messages'),
    welcome: $('welcome'),
    composer: $('composer'),
    input: $('composer-input'),
    count: $('composer-count'),
    stop: $('stop-btn'),
    send: $('send-btn'),
    menu: $('menu-btn'),
    scrim: $('scrim'),
    tokenOverlay: $('token-overlay'),
    tokenForm: $('token-form'),
    tokenInput: $('token-input'),
    tokenReason: $('token-reason'),
    tokenCancel: $('token-cancel'),
    changeToken: $('change-token'),
    approvals: $('approvals'),
  };

  const state = {
    conversations: [],
    current: null,   // selected conversation id; null = a new one
    busy: false,     // a turn is streaming
    loadSeq: 0,      // guards against out-of-order message loads
    stream: null,    // the open conversation's live event stream: { id, abort, lastId }
    shown: new Map(), // message id → its element (system notices are replaced in place)
    thread: null,    // { msg, turnId }: the assistant bubble a following assistant message joins
    cards: new Map(), // tool_use id → its card, until its result arrives
    ownTurns: new Set(), // turns this tab streams itself (their stored copies are not shown again)
    held: [],        // live messages of some turn, held while this tab's own turn streams
    search: null,    // { q, results } while the sidebar shows a search
    showBackground: false, // list job and daydream conversations too
    turnId: null,    // the streaming turn (Stop cancels it)
  };

  // ---------------------------------------------------------------- DOM utils
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === undefined || v === null || v === false) continue;
        if (k === 'class') el.className = v;
        else if (k === 'text') el.textContent = v;
        else el.setAttribute(k, v === true ? '' : String(v));
      }
    }
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  // Markdown the server rendered (see the invariant above), then highlighted.
  function setHtml(el, html) {
    el.innerHTML = html;
    highlight(el);
  }

  // Colours for fenced code in a language highlight.js (embedded) knows.
  function highlight(root) {
    const hljs = window.hljs;
    if (!hljs) return;
    for (const code of root.querySelectorAll('pre code[class*="language-"]')) {
      const cls = [...code.classList].find((c) => c.startsWith('language-'));
      if (cls && hljs.getLanguage(cls.slice('language-'.length))) hljs.highlightElement(code);
    }
  }

  // Copy to the clipboard; the button says "Copied" for a moment.
  async function copyText(text, button) {
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      const area = h('textarea', { class: 'copy-buffer', 'aria-hidden': 'true' });
      area.value = text;
      document.body.append(area);
      area.select();
      const ok = document.execCommand('copy');
      area.remove();
      if (!ok) { button.textContent = 'Copy failed'; return; }
    }
    if (!button.dataset.label) button.dataset.label = button.textContent;
    button.textContent = 'Copied';
    button.classList.add('copied');
    clearTimeout(button.copyTimer);
    button.copyTimer = setTimeout(() => { button.textContent = button.dataset.label; button.classList.remove('copied'); }, 1500);
  }

  // A message's own text, as its Copy button copies it (Markdown for answers).
  function sourceOf(msg) {
    if (msg.classList.contains('assistant')) {
      return [...msg.querySelectorAll('.bubble > .text')].map((t) => t.dataset.raw || t.textContent).join('\n\n');
    }
    const bubble = msg.querySelector('.bubble');
    return (bubble && (bubble.dataset.raw || bubble.textContent)) || '';
  }

  function copyButton() {
    return h('div', { class: 'msg-actions' },
      h('button', { type: 'button', class: 'copy-msg', title: 'Copy message', 'aria-label': 'Copy message', text: 'Copy' }));
  }

  function relTime(iso) {
    const t = Date.parse(iso);
    if (Number.isNaN(t)) return '';
    const s = Math.round((Date.now() - t) / 1000);
    if (s < 45) return 'just now';
    if (s < 3600) return `${Math.round(s / 60)} min ago`;
    if (s < 86400) return `${Math.round(s / 3600)} h ago`;
    if (s < 7 * 86400) return `${Math.round(s / 86400)} d ago`;
    return new Date(t).toLocaleDateString();
  }

  function pretty(value) {
    if (typeof value === 'string') return value;
    try { return JSON.stringify(value, null, 2); } catch { return String(value); }
  }

  // One-line hint of a tool's input: its first string argument, else JSON.
  function inputHint(input) {
    if (input === null || input === undefined) return '';
    if (typeof input !== 'object') return String(input);
    for (const v of Object.values(input)) if (typeof v === 'string' && v) return v;
    const s = JSON.stringify(input);
    return s === '{}' ? '' : s;
  }

  // -------------------------------------------------------------------- API
  class ApiError extends Error {
    constructor(message, status, code) { super(message); this.status = status; this.code = code; }
  }

  let tokenPrompt = null; // one shared promise while the token form is open

  function askForToken(reason) {
    if (tokenPrompt) return tokenPrompt;
    tokenPrompt = new Promise((resolve) => {
      els.tokenReason.textContent = reason || 'The server asks for a bearer token.';
      els.tokenInput.value = localStorage.getItem(TOKEN_KEY) || '';
      els.tokenOverlay.hidden = false;
      els.tokenInput.focus();
      const finish = (saved) => {
        els.tokenOverlay.hidden = true;
        els.tokenForm.removeEventListener('submit', onSave);
        els.tokenCancel.removeEventListener('click', onCancel);
        tokenPrompt = null;
        resolve(saved);
      };
      const onSave = (e) => {
        e.preventDefault();
        const tok = els.tokenInput.value.trim();
        if (tok) localStorage.setItem(TOKEN_KEY, tok);
        else localStorage.removeItem(TOKEN_KEY);
        finish(true);
      };
      const onCancel = () => finish(false);
      els.tokenForm.addEventListener('submit', onSave);
      els.tokenCancel.addEventListener('click', onCancel);
    });
    return tokenPrompt;
  }

  async function errorFrom(res) {
    let message = `${res.status} ${res.statusText || 'error'}`.trim();
    let code;
    try {
      const body = await res.json();
      if (body && body.error) {
        if (typeof body.error === 'string') message = body.error;
        else {
          if (body.error.message) message = body.error.message;
          code = body.error.code;
        }
      }
    } catch { /* not JSON: keep the status line */ }
    return new ApiError(message, res.status, code);
  }

  // fetch with the stored token; on 401 ask for a token and retry.
  async function apiFetch(path, opts = {}) {
    for (;;) {
      const headers = new Headers(opts.headers || {});
      const tok = localStorage.getItem(TOKEN_KEY);
      if (tok) headers.set('Authorization', `Bearer ${tok}`);
      let res;
      try {
        res = await fetch(path, { ...opts, headers });
      } catch (e) {
        throw new ApiError(`Cannot reach the server (${e.message || e}).`, 0, 'network');
      }
      if (res.status === 401) {
        const err = await errorFrom(res);
        const saved = await askForToken(err.message);
        if (saved) continue;
        throw err;
      }
      if (!res.ok) throw await errorFrom(res);
      return res;
    }
  }

  async function apiJson(path, opts) {
    const res = await apiFetch(path, opts);
    return res.json();
  }

  // ----------------------------------------------------------- conversations
  function sortConversations(list) {
    const key = (c) => Date.parse(c.updated_at || c.created_at) || 0;
    return [...list].sort((a, b) => key(b) - key(a));
  }

  // Only the newest list request is shown (an early one may answer late).
  let conversationsLoad = 0;
  async function loadConversations() {
    const mine = ++conversationsLoad;
    try {
      const body = await apiJson('/api/conversations');
      if (mine !== conversationsLoad) return;
      state.conversations = sortConversations(body.conversations || []);
      renderConversations();
    } catch (e) {
      if (mine !== conversationsLoad) return;
      state.conversations = [];
      renderConversations();
      els.convEmpty.textContent = `Could not load conversations: ${e.message}`;
      els.convEmpty.hidden = false;
    }
  }

  // Conversations valor opens for its own work (job runs, the daydream): listed only on request.
  const BACKGROUND_CHANNELS = new Set(['job', 'daydream']);

  function renderConversations() {
    for (const el of els.convList.querySelectorAll('.conv-row')) el.remove();
    const searching = state.search !== null;
    const all = searching ? state.search.results : state.conversations;
    const background = searching ? [] : all.filter((c) => BACKGROUND_CHANNELS.has(c.channel));
    const shown = searching || state.showBackground ? all : all.filter((c) => !BACKGROUND_CHANNELS.has(c.channel));
    els.convEmpty.textContent = searching ? `Nothing matches “${state.search.q}”.` : 'No conversations yet.';
    els.convEmpty.hidden = shown.length > 0;
    for (const c of shown) els.convList.insertBefore(conversationRow(c), els.convBackground);
    els.convBackground.hidden = background.length === 0;
    els.convBackground.textContent = state.showBackground
      ? 'Hide background conversations'
      : `Show ${background.length} background conversation${background.length === 1 ? '' : 's'} (jobs, daydream)`;
  }

  function conversationRow(c) {
    const n = Number(c.message_count) || 0;
    const meta = [`${n} message${n === 1 ? '' : 's'}`, relTime(c.updated_at || c.created_at)]
      .filter(Boolean).join(' · ');
    const active = c.id === state.current;
    const item = h('button', {
      type: 'button',
      class: 'conv-item' + (active ? ' active' : ''),
      'data-id': c.id,
      title: c.title || 'Untitled',
      'aria-current': active ? 'true' : null,
    },
    h('span', { class: 'conv-title', text: c.title || 'Untitled' }),
    h('span', { class: 'conv-meta', text: meta }),
    c.snippet ? h('span', { class: 'conv-snippet', text: c.snippet }) : null);
    item.addEventListener('click', () => selectConversation(c.id));
    const rename = h('button', { type: 'button', class: 'conv-action', 'data-action': 'rename',
      title: 'Rename', 'aria-label': `Rename ${c.title || 'Untitled'}`, text: '✎' });
    rename.addEventListener('click', () => renameConversation(c));
    const remove = h('button', { type: 'button', class: 'conv-action', 'data-action': 'delete',
      title: 'Delete', 'aria-label': `Delete ${c.title || 'Untitled'}`, text: '🗑' });
    remove.addEventListener('click', () => deleteConversation(c));
    return h('div', { class: 'conv-row' + (active ? ' active' : ''), 'data-id': c.id },
      item, h('div', { class: 'conv-actions' }, rename, remove));
  }

  async function renameConversation(c) {
    const title = window.prompt('Rename the conversation', c.title || '');
    if (title === null || !title.trim() || title.trim() === c.title) return;
    try {
      await apiJson(`/api/conversations/${encodeURIComponent(c.id)}`, {
        method: 'PATCH', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ title: title.trim() }),
      });
    } catch (e) { addError(e.message); return; }
    await refreshList();
    if (state.current === c.id) els.title.textContent = title.trim();
  }

  async function deleteConversation(c) {
    if (state.busy) return;
    if (!window.confirm(`Delete “${c.title || 'Untitled'}” and all its messages? This cannot be undone.`)) return;
    try {
      await apiFetch(`/api/conversations/${encodeURIComponent(c.id)}`, { method: 'DELETE' });
    } catch (e) { addError(e.message); return; }
    if (state.current === c.id) newConversation();
    await refreshList();
  }

  // The list as it is shown: the search's results while searching, else every conversation.
  async function refreshList() {
    if (state.search !== null) await searchConversations(state.search.q);
    await loadConversations();
  }

  let searchSeq = 0;
  async function searchConversations(q) {
    const mine = ++searchSeq;
    if (!q) { state.search = null; renderConversations(); return; }
    try {
      const body = await apiJson(`/api/conversations?q=${encodeURIComponent(q)}&limit=50`);
      if (mine !== searchSeq) return;
      state.search = { q, results: body.conversations || [] };
    } catch (e) {
      if (mine !== searchSeq) return;
      state.search = { q, results: [] };
    }
    renderConversations();
  }

  function setCurrent(id) {
    const changed = state.current !== id;
    state.current = id;
    // The prompts belong to the conversation (its stream sends them again on connecting).
    if (changed && els.approvals) { els.approvals.replaceChildren(); els.approvals.hidden = true; }
    if (!state.stream || state.stream.id !== id) closeStream(); // another conversation's stream stops here
    els.main.dataset.conversationId = id || '';
    const conv = state.conversations.find((c) => c.id === id);
    els.title.textContent = conv ? (conv.title || 'Untitled') : (id ? els.title.textContent : 'New conversation');
    for (const row of els.convList.querySelectorAll('.conv-row')) row.classList.toggle('active', row.dataset.id === id);
    for (const el of els.convList.querySelectorAll('.conv-item')) {
      const on = el.dataset.id === id;
      el.classList.toggle('active', on);
      if (on) el.setAttribute('aria-current', 'true'); else el.removeAttribute('aria-current');
    }
    const want = id ? `#c/${encodeURIComponent(id)}` : '';
    // "#jobs"/"#status" belong to dashboard.js, which clears them when it shows the chat.
    const viewHash = /^#(jobs|status)$/.test(location.hash);
    if (location.hash !== want && !(id === null && viewHash)) history.replaceState(null, '', want || location.pathname);
  }

  function clearMessages() {
    for (const el of [...els.messages.children]) if (el !== els.welcome) el.remove();
    state.shown = new Map();
    state.thread = null;
    state.cards = new Map();
    state.held = [];
  }

  function showWelcome(on) { els.welcome.hidden = !on; }

  function newConversation() {
    if (state.busy) return;
    state.loadSeq++;
    setCurrent(null);
    clearMessages();
    showWelcome(true);
    closeNav();
    els.input.focus();
  }

  async function selectConversation(id) {
    if (state.busy && id !== state.current) return;
    closeNav();
    setCurrent(id);
    const seq = ++state.loadSeq;
    clearMessages();
    showWelcome(false);
    const loading = h('div', { class: 'msg system' }, h('div', { class: 'bubble', text: 'Loading…' }));
    els.messages.append(loading);
    try {
      const body = await apiJson(`/api/conversations/${encodeURIComponent(id)}/messages`);
      if (seq !== state.loadSeq) return;
      clearMessages();
      renderHistory(body.messages || []);
      showWelcome(els.messages.querySelectorAll('.msg').length === 0);
      connectStream(id, body.revision);
    } catch (e) {
      if (seq !== state.loadSeq) return;
      loading.remove();
      addError(e.message);
    }
    scrollToEnd(true);
  }

  // ----------------------------------------------------------------- messages
  function scrollToEnd(force) {
    const m = els.messages;
    const near = m.scrollHeight - m.scrollTop - m.clientHeight < 120;
    if (force || near) m.scrollTop = m.scrollHeight;
  }

  function addUserMessage(text) {
    const el = h('div', { class: 'msg user' }, h('div', { class: 'bubble', text }), copyButton());
    els.messages.append(el);
    return el;
  }

  function addError(message) {
    const el = h('div', { class: 'msg error', role: 'alert' }, h('div', { class: 'bubble', text: message }));
    els.messages.append(el);
    scrollToEnd(true);
    return el;
  }

  // A tool card: "🔧 name hint" while running, "✓ name" / "✗ name" when done,
  // input and output in a collapsible <details>.
  function toolCard(call) {
    const icon = h('span', { class: 'tool-icon', 'aria-hidden': 'true' });
    const arg = h('span', { class: 'tool-arg' });
    const body = h('div', { class: 'tool-body' });
    const card = h('details', { class: 'tool', 'data-tool-id': call.id || '' },
      h('summary', null, icon, h('span', { class: 'tool-name', text: call.name || 'tool' }), arg),
      body);
    const api = {
      el: card,
      id: call.id,
      running() {
        card.className = 'tool running';
        icon.textContent = '🔧';
        arg.textContent = inputHint(call.input) ? `${inputHint(call.input)} …` : '…';
        card.title = `${call.name} running`;
      },
      finish(output, isError) {
        card.className = 'tool ' + (isError ? 'failed' : 'ok');
        icon.textContent = isError ? '✗' : '✓';
        arg.textContent = inputHint(call.input);
        card.title = `${call.name} ${isError ? 'failed' : 'finished'}`;
        body.replaceChildren();
        if (call.input !== undefined && call.input !== null && inputHint(call.input) !== '') {
          body.append(h('div', { class: 'tool-label', text: 'Input' }), h('pre', { text: pretty(call.input) }));
        }
        if (output !== undefined && output !== null && output !== '') {
          body.append(h('div', { class: 'tool-label', text: isError ? 'Error' : 'Output' }), h('pre', { text: pretty(output) }));
        } else if (output === undefined) {
          body.append(h('div', { class: 'tool-label', text: 'No output recorded' }));
        }
      },
      setInput(input) { if (input !== undefined) call.input = input; },
    };
    return api;
  }

  // An assistant bubble made of segments: text runs and tool cards, in the
  // order they happened.
  function assistantMessage() {
    const bubble = h('div', { class: 'bubble' });
    const meta = h('div', { class: 'msg-meta', hidden: true });
    const el = h('div', { class: 'msg assistant' }, bubble, meta, copyButton());
    const tools = new Map();
    let textEl = null;
    let textBuf = '';
    let runHtml = false; // the current run shows the server's rendering
    let typing = null;
    const msg = {
      el,
      bubble,
      streamed: '',
      showTyping() {
        if (typing) return;
        typing = h('div', { class: 'typing', 'aria-label': 'Valor is typing' }, h('span'), h('span'), h('span'));
        bubble.append(typing);
      },
      hideTyping() { if (typing) { typing.remove(); typing = null; } },
      // The model is slow to start: say so beside the dots until text arrives.
      waiting(note) {
        msg.showTyping();
        if (!typing.querySelector('.waiting-note')) typing.append(h('em', { class: 'waiting-note', text: note }));
      },
      appendText(t) {
        if (!t) return;
        msg.hideTyping();
        msg.streamed += t;
        if (!textEl) { textEl = h('div', { class: 'text' }); bubble.append(textEl); textBuf = ''; runHtml = false; }
        textBuf += t;
        textEl.dataset.raw = textBuf; // the Markdown source, for Copy and tests
        if (!runHtml) { textEl.textContent = textBuf; textEl.classList.add('plain'); } // until the server's rendering arrives
      },
      // The current run as the server rendered it (`text_html` while streaming).
      setRunHtml(html) {
        if (!textEl || typeof html !== 'string') return;
        runHtml = true;
        textEl.classList.remove('plain');
        setHtml(textEl, html);
      },
      // A stored text block: its own run, its source and its rendering.
      addRun(text, html) {
        msg.newTextRun();
        msg.appendText(text);
        msg.setRunHtml(html);
        msg.newTextRun();
      },
      tool(call) {
        msg.hideTyping();
        textEl = null; // text after a tool call starts a new run
        let card = call.id ? tools.get(call.id) : null;
        if (!card) {
          card = toolCard({ ...call });
          if (call.id) tools.set(call.id, card);
          bubble.append(card.el);
        } else {
          card.setInput(call.input);
        }
        return card;
      },
      newTextRun() { textEl = null; },
      // Replace all text runs by `text`, placed after the tool cards.
      replaceText(text, html) {
        msg.hideTyping();
        for (const t of bubble.querySelectorAll(':scope > .text')) t.remove();
        textEl = null;
        msg.streamed = '';
        msg.appendText(text);
        msg.setRunHtml(html);
      },
      setMeta(parts) {
        const s = parts.filter(Boolean).join(' · ');
        meta.textContent = s;
        meta.hidden = !s;
      },
      isEmpty() { return bubble.children.length === 0 || (bubble.children.length === 1 && typing); },
    };
    return msg;
  }

  function blocksOf(m) {
    let c = m.content;
    if (typeof c === 'string') { try { c = JSON.parse(c); } catch { return []; } }
    if (c && !Array.isArray(c) && Array.isArray(c.content)) c = c.content;
    return Array.isArray(c) ? c : [];
  }

  function resultText(block) {
    const c = block.content;
    if (Array.isArray(c)) return c.map((b) => (b && typeof b.text === 'string' ? b.text : pretty(b))).join('\n');
    return c;
  }

  // Stored history: user and assistant messages; tool results are folded into
  // the matching tool cards; consecutive assistant messages of one turn share
  // a bubble.
  // A notice button's API call: a job's Cancel (`job:cancel:<id>`) or a run
  // branch's merge / push / discard (`branch:<id>:<action>`); null for others.
  function noticeAction(data) {
    const job = /^job:cancel:(\d+)$/.exec(data || '');
    if (job) return { path: `/api/jobs/${job[1]}/cancel`, live: true };
    const branch = /^branch:(\d+):(merge|push|discard)$/.exec(data || '');
    if (branch) return { path: `/api/branches/${branch[1]}/${branch[2]}`, live: false };
    return null;
  }

  // A system notice; a job's live status message (changed in place on the
  // server, and so replaced here by the live stream) carries its buttons in
  // a `buttons` block; a code run's result carries its branch's buttons
  // (their answer arrives as a new notice).
  function systemNotice(m) {
    const blocks = blocksOf(m);
    const texts = blocks.filter((b) => b && b.type === 'text');
    const text = m.text || texts.map((b) => b.text).join('\n');
    if (!text) return null;
    const bubble = h('div', { class: 'bubble' });
    bubble.dataset.raw = text;
    if (texts.length && texts.every((b) => typeof b.html === 'string')) setHtml(bubble, texts.map((b) => b.html).join(''));
    else { bubble.textContent = text; bubble.classList.add('plain'); }
    const el = h('div', { class: 'msg system', 'data-message-id': m.id }, bubble);
    const buttons = blocks.filter((b) => b && b.type === 'buttons').flatMap((b) => b.buttons || []);
    let live = false;
    const actions = buttons.map((b) => [b, noticeAction(b.data)]).filter(([, action]) => action).map(([b, action]) => {
      live = live || action.live;
      const button = h('button', { type: 'button', class: 'btn', text: b.label });
      button.addEventListener('click', async () => {
        button.disabled = true;
        try { await apiJson(action.path, { method: 'POST' }); } catch (e) { addError(e.message); }
        if (!action.live) button.disabled = false;
      });
      return button;
    });
    if (live) el.dataset.live = 'true';
    if (actions.length) el.append(h('div', { class: 'notice-actions' }, ...actions));
    el.append(copyButton());
    return el;
  }

  // One stored message into the page, in order: history and the live
  // stream both come here. Consecutive assistant messages of a turn share a
  // bubble; tool results (role "tool", or user messages in the Anthropic
  // shape) finish their tool's card; a message seen before is skipped,
  // except a system notice changed in place, which is replaced.
  function renderMessage(m) {
    const blocks = blocksOf(m);
    const seen = state.shown.get(m.id);
    if (seen) {
      if (m.role === 'system') {
        const el = systemNotice(m);
        if (el) { seen.replaceWith(el); state.shown.set(m.id, el); }
      }
      return;
    }
    if (m.role === 'assistant') {
      let t = state.thread;
      if (!t || (m.turn_id && t.turnId && m.turn_id !== t.turnId)) {
        t = state.thread = { msg: assistantMessage(), turnId: m.turn_id };
        els.messages.append(t.msg.el);
      }
      if (!blocks.some((b) => b && b.type === 'text') && m.text) t.msg.addRun(m.text);
      for (const b of blocks) {
        if (!b) continue;
        if (b.type === 'text') t.msg.addRun(b.text, b.html);
        else if (b.type === 'tool_use') {
          const card = t.msg.tool({ id: b.id, name: b.name, input: b.input });
          card.running();
          if (b.id) state.cards.set(b.id, card);
        }
      }
      state.shown.set(m.id, t.msg.el);
      return;
    }
    for (const r of blocks.filter((b) => b && b.type === 'tool_result' && b.tool_use_id)) {
      const card = state.cards.get(r.tool_use_id);
      if (card) { card.finish(resultText(r), !!r.is_error); state.cards.delete(r.tool_use_id); }
    }
    if (m.role === 'user') {
      const onlyResults = blocks.length > 0 && blocks.every((b) => b && b.type === 'tool_result');
      if (onlyResults) return; // tool results in the Anthropic shape
      const text = m.text || blocks.filter((b) => b && b.type === 'text').map((b) => b.text).join('\n');
      if (!text) return;
      state.thread = null;
      const el = addUserMessage(text);
      el.dataset.messageId = m.id;
      state.shown.set(m.id, el);
    } else if (m.role === 'system') {
      const el = systemNotice(m);
      if (!el) return;
      state.thread = null;
      els.messages.append(el);
      state.shown.set(m.id, el);
    }
    // role "tool": folded into the cards above
  }

  function renderHistory(messages) {
    for (const m of messages) renderMessage(m);
    // A call without a stored result (a crash, or a turn still running elsewhere); a result may still come live.
    for (const card of state.cards.values()) card.finish(undefined, false);
    for (const el of els.messages.querySelectorAll('.msg.assistant .bubble')) {
      if (el.children.length === 0) el.closest('.msg').remove();
    }
  }

  // A message from the live stream. This tab's own turn is already on the
  // page (from its POST stream): its stored copies are skipped, and while it
  // streams, messages of turns not yet known to be someone else's wait.
  function liveMessage(m) {
    if (m.turn_id && state.ownTurns.has(m.turn_id)) return;
    if (m.turn_id && state.busy) { state.held.push(m); return; }
    renderMessage(m);
    showWelcome(false);
    scrollToEnd(false);
    refreshListSoon();
  }

  function releaseHeld() {
    const held = state.held;
    state.held = [];
    for (const m of held) liveMessage(m);
  }

  let listTimer = null;
  function refreshListSoon() {
    clearTimeout(listTimer);
    listTimer = setTimeout(() => { if (state.search === null) loadConversations(); }, 1000);
  }

  // ------------------------------------------------------------- live stream
  // One event stream per open conversation (GET /api/conversations/{id}/events):
  // its new and changed messages, its pending permission requests, its
  // deletion. Read with fetch, not EventSource, because EventSource cannot
  // send the bearer token; it reconnects the same way, with Last-Event-ID.
  function closeStream() {
    if (!state.stream) return;
    state.stream.abort.abort();
    state.stream = null;
    document.body.dataset.live = 'false';
  }

  function connectStream(id, after) {
    if (state.stream && state.stream.id === id) return;
    closeStream();
    const lastId = after === undefined || after === null ? null : String(after);
    const stream = { id, abort: new AbortController(), lastId };
    state.stream = stream;
    runStream(stream);
  }

  async function runStream(stream) {
    let delay = 1000;
    while (state.stream === stream) {
      try {
        const headers = { Accept: 'text/event-stream' };
        if (stream.lastId !== null) headers['Last-Event-ID'] = stream.lastId;
        const res = await apiFetch(`/api/conversations/${encodeURIComponent(stream.id)}/events`,
          { headers, signal: stream.abort.signal });
        await readSse(res.body, (name, raw, id) => {
          if (state.stream !== stream) return true;
          if (id) stream.lastId = id;
          delay = 1000;
          let d;
          try { d = JSON.parse(raw); } catch { return false; }
          return onStreamEvent(stream, name, d || {});
        });
      } catch (e) {
        if (state.stream !== stream) return;
        // The conversation is gone, or no token was given: reconnecting would not help.
        if (e.status === 404 || e.status === 401) { closeStream(); return; }
      }
      if (state.stream !== stream) return;
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 15000);
    }
  }

  // Returns true when the stream is over.
  function onStreamEvent(stream, name, d) {
    if (state.current !== stream.id) return true;
    if (name === 'ready') document.body.dataset.live = 'true'; // connected (tests wait for this)
    else if (name === 'message') liveMessage(d);
    else if (name === 'approvals') renderApprovals(d.approvals || []);
    else if (name === 'deleted') {
      closeStream();
      if (state.current === stream.id) newConversation();
      loadConversations();
      return true;
    }
    return false;
  }

  // ------------------------------------------------------------------ sending
  function setBusy(on) {
    state.busy = on;
    document.body.dataset.busy = on ? 'true' : 'false';
    els.send.disabled = on;
    els.newConv.disabled = on;
    // While an answer streams, Stop stands where Send was.
    els.send.hidden = on;
    els.stop.hidden = !on;
    els.stop.disabled = false;
    if (!on) state.turnId = null;
  }

  async function stopTurn() {
    if (!state.turnId) return;
    els.stop.disabled = true;
    try {
      // The turn's `done` says it was stopped (whoever stopped it); nothing is marked here.
      await apiJson(`/api/turns/${encodeURIComponent(state.turnId)}/cancel`, { method: 'POST' });
    } catch (e) {
      if (e.status !== 409) addError(e.message); // 409: it had just ended anyway
    }
  }

  function newConversationName(text) {
    const oneLine = text.replace(/\s+/g, ' ').trim();
    if (oneLine) return oneLine.length > 40 ? oneLine.slice(0, 40).trimEnd() + '…' : oneLine;
    return `New conversation ${new Date().toLocaleString()}`;
  }

  // Parse an SSE byte stream; calls onEvent(name, dataString, lastEventId) per event and
  // stops reading (closing the stream) as soon as onEvent returns true.
  async function readSse(body, onEvent) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    let name = '';
    let data = [];
    let lastId = '';
    let stop = false;
    const dispatch = () => {
      if (data.length && !stop) stop = onEvent(name || 'message', data.join('\n'), lastId) === true;
      name = '';
      data = [];
    };
    const line = (l) => {
      if (l === '') return dispatch();
      if (l.startsWith(':')) return;
      const i = l.indexOf(':');
      const field = i === -1 ? l : l.slice(0, i);
      let value = i === -1 ? '' : l.slice(i + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') name = value;
      else if (field === 'data') data.push(value);
      else if (field === 'id' && !value.includes('\0')) lastId = value;
    };
    for (;;) {
      const { value, done } = await reader.read();
      buf += decoder.decode(value || new Uint8Array(), { stream: !done });
      let nl;
      while ((nl = buf.search(/\r\n|\r|\n/)) !== -1) {
        const len = buf[nl] === '\r' && buf[nl + 1] === '\n' ? 2 : 1;
        if (buf[nl] === '\r' && nl + 1 === buf.length && !done) break; // maybe a split \r\n
        line(buf.slice(0, nl));
        buf = buf.slice(nl + len);
        if (stop) { reader.cancel().catch(() => {}); return; }
      }
      if (done) break;
    }
    if (buf) line(buf);
    dispatch();
  }

  // The server's limit (characters, as it counts them: code points).
  const MAX_CHARS = Number(document.body.dataset.maxChars) || 32000;
  const charCount = (text) => [...text].length;

  // Near the limit the composer shows "N / limit"; over it, how much too long, and Send is off.
  function updateCount() {
    const n = charCount(els.input.value.trim());
    const near = n >= MAX_CHARS * 0.9;
    els.count.hidden = !near;
    const over = n > MAX_CHARS;
    els.count.classList.toggle('over', over);
    els.count.textContent = over
      ? `${n.toLocaleString()} / ${MAX_CHARS.toLocaleString()} — ${(n - MAX_CHARS).toLocaleString()} characters too long`
      : `${n.toLocaleString()} / ${MAX_CHARS.toLocaleString()}`;
    els.send.disabled = state.busy || over;
  }

  async function send(text) {
    if (state.busy) return;
    const isNew = !state.current;
    const ref = isNew ? newConversationName(text) : state.current;
    setBusy(true);
    showWelcome(false);
    const userBubble = addUserMessage(text);
    const reply = assistantMessage();
    reply.showTyping();
    els.messages.append(reply.el);
    scrollToEnd(true);

    let conversationId = isNew ? null : state.current;
    let finished = false;
    let started = false; // the server stored the message (turn_started)
    let failure = null; // the turn's error, shown once as an error bubble
    let stopped = false; // the turn's `done` said it was stopped
    const meta = { intent: '', model: '' };
    // A failed turn also streams its error as reply text: show it once, as the error.
    const withoutFailure = (text) => (failure && text.endsWith(failure) ? text.slice(0, -failure.length).trimEnd() : text);

    const adopt = (id) => {
      if (!id || conversationId === id) return;
      conversationId = id;
      if (state.current === null && isNew) {
        setCurrent(id);
        connectStream(id, null);
        if (!state.conversations.some((c) => c.id === id)) els.title.textContent = ref;
      }
    };

    const finish = (d) => {
      finished = true;
      stopped = d.stopped === true;
      adopt(d.conversation);
      for (const call of d.tool_calls || []) {
        const card = reply.tool({ id: call.id, name: call.name, input: call.input });
        card.finish(call.output, !!call.is_error);
      }
      const text = typeof d.reply === 'string' ? withoutFailure(d.reply) : '';
      if (text !== '' && text !== reply.streamed) reply.replaceText(text, text === d.reply ? d.html : undefined);
    };

    const handlers = {
      turn_started(d) {
        started = true;
        state.turnId = d.turn_id || null;
        if (d.turn_id) state.ownTurns.add(d.turn_id);
        adopt(d.conversation);
        // The conversation exists from the turn's start: list it now, not only after the reply.
        if (isNew) loadConversations();
        meta.intent = d.intent || '';
        meta.model = d.model || '';
        reply.setMeta([meta.intent, meta.model]);
      },
      text_delta(d) {
        const text = d.text || '';
        if (failure && (text === failure || !text.trim())) return; // the error's own text, shown as the error
        reply.appendText(text);
      },
      text_html(d) { if (!failure) reply.setRunHtml(d.html); },
      waiting(d) { reply.waiting(d.message || 'still waiting for the model…'); },
      tool_started(d) { reply.tool({ id: d.id, name: d.name, input: d.input }).running(); },
      tool_finished(d) {
        const card = reply.tool({ id: d.id, name: d.name, input: d.input });
        card.finish(d.output, !!d.is_error);
      },
      error(d) {
        reply.hideTyping();
        failure = d.message || 'Something went wrong.';
        addError(failure);
      },
      done(d) { finish(d); },
    };

    try {
      const res = await apiFetch('/api/messages', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream' },
        // A new conversation is always created (`title`), never looked up by its name.
        body: JSON.stringify(isNew ? { title: ref, text } : { conversation: ref, text }),
      });
      const ctype = res.headers.get('Content-Type') || '';
      if (ctype.includes('text/event-stream') && res.body) {
        await readSse(res.body, (name, raw) => {
          let d;
          try { d = JSON.parse(raw); } catch { d = { text: raw, message: raw }; }
          const fn = handlers[name];
          if (fn) fn(d || {});
          scrollToEnd(false);
          return name === 'done'; // the turn is over even if the server keeps the stream open
        });
      } else {
        finish(await res.json()); // a server that ignored Accept: plain JSON
      }
      if (!finished) addError('The connection closed before the reply was complete.');
    } catch (e) {
      addError(e.message || String(e));
      // Refused before the server stored it (too long, unreachable, …): the text goes back to the composer.
      if (!started) {
        userBubble.remove();
        if (!els.input.value.trim()) { els.input.value = text; autoGrow(); }
      }
    } finally {
      reply.hideTyping();
      if (stopped) reply.setMeta([meta.intent, meta.model, 'stopped']);
      else if (reply.isEmpty()) reply.el.remove();
      else if (!meta.intent && !meta.model) reply.setMeta([]);
      await loadConversations();
      if (conversationId && (state.current === conversationId || (isNew && state.current === null))) {
        setCurrent(conversationId);
      }
      setBusy(false); // last: "not busy" means the list is refreshed too
      releaseHeld();
      updateCount();
      scrollToEnd(true);
      els.input.focus();
    }
  }

  // ------------------------------------------------------------------- wiring
  function autoGrow() {
    els.input.style.height = 'auto';
    els.input.style.height = Math.min(els.input.scrollHeight + 2, 220) + 'px';
  }

  function submit() {
    const text = els.input.value;
    if (!text.trim() || state.busy) return;
    if (charCount(text.trim()) > MAX_CHARS) { updateCount(); return; } // the text stays; the counter says why
    els.input.value = '';
    autoGrow();
    updateCount();
    send(text.trim());
  }

  function openNav() { els.app.classList.add('nav-open'); els.scrim.hidden = false; }
  function closeNav() { els.app.classList.remove('nav-open'); els.scrim.hidden = true; }

  els.composer.addEventListener('submit', (e) => { e.preventDefault(); submit(); });
  els.input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); }
  });
  els.input.addEventListener('input', () => { autoGrow(); updateCount(); });
  els.newConv.addEventListener('click', newConversation);
  els.stop.addEventListener('click', stopTurn);
  let searchTimer = null;
  els.convSearch.addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => searchConversations(els.convSearch.value.trim()), 250);
  });
  els.convBackground.addEventListener('click', () => { state.showBackground = !state.showBackground; renderConversations(); });
  els.menu.addEventListener('click', () => (els.app.classList.contains('nav-open') ? closeNav() : openNav()));
  els.scrim.addEventListener('click', closeNav);
  els.changeToken.addEventListener('click', async () => {
    if (await askForToken('Paste the bearer token for this server (empty to clear).')) {
      await loadConversations();
    }
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') closeNav();
  });
  // Copy buttons: a code block's (its code) and every message's (its text).
  els.messages.addEventListener('click', (e) => {
    const code = e.target.closest('.copy-code');
    if (code) {
      const pre = code.closest('.code-block') && code.closest('.code-block').querySelector('pre');
      if (pre) copyText(pre.textContent, code);
      return;
    }
    const copy = e.target.closest('.copy-msg');
    if (copy) copyText(sourceOf(copy.closest('.msg')), copy);
  });

  // ---------------------------------------------------------------- approvals
  // Claude Code permission requests of the open conversation, as the live
  // stream sends them (`approvals`: the pending ones); each shows the tool,
  // its input and three answers. An answered one leaves with the next snapshot.
  const APPROVAL_ANSWERS = [['once', 'Allow once'], ['run', 'Allow for this run'], ['deny', 'Deny']];

  function approvalCard(a) {
    const buttons = APPROVAL_ANSWERS.map(([answer, label]) => {
      const b = h('button', { type: 'button', class: answer === 'deny' ? 'btn' : 'btn btn-primary',
        'data-answer': answer, text: label });
      b.addEventListener('click', () => answerApproval(a.id, answer, card));
      return b;
    });
    const card = h('div', { class: 'approval', 'data-id': a.id },
      h('p', { class: 'approval-title' }, `Claude Code (job #${a.job_id}) asks to use `, h('strong', { text: a.tool_name })),
      h('pre', { class: 'approval-input', text: pretty(a.input) }),
      h('div', { class: 'approval-actions' }, ...buttons));
    return card;
  }

  async function answerApproval(id, answer, card) {
    for (const b of card.querySelectorAll('button')) b.disabled = true;
    try {
      await apiJson(`/api/approvals/${id}`, { method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ answer }) });
    } catch (e) {
      addError(e.message);
      if (e.status !== 409) for (const b of card.querySelectorAll('button')) b.disabled = false;
    }
  }

  function renderApprovals(list) {
    const shown = [...els.approvals.children].map((el) => el.dataset.id).join(',');
    if (shown !== list.map((a) => String(a.id)).join(',')) els.approvals.replaceChildren(...list.map(approvalCard));
    els.approvals.hidden = list.length === 0;
  }

  // What dashboard.js (the Jobs and Status views) shares with the chat.
  window.valor = Object.freeze({ apiJson, apiFetch, h, openNav, closeNav });

  async function start() {
    await loadConversations();
    const m = location.hash.match(/^#c\/(.+)$/);
    const id = m ? decodeURIComponent(m[1]) : null;
    if (id && state.conversations.some((c) => c.id === id)) await selectConversation(id);
    else newConversation();
    document.body.dataset.ready = 'true'; // initial load settled (tests wait for this)
  }

  start();
})();
