// valor web chat: conversation list, streamed replies (SSE over fetch), tool
// cards, bearer-token prompt. No framework, no build step. The Jobs and
// Status views live in dashboard.js and use `window.valor` from here.
//
// Invariant: text that came from the server or the model is only ever put into
// the page with textContent / createTextNode, never innerHTML.
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
    lastMessageId: 0, // the newest stored message of the open conversation seen (pollNotices)
    search: null,    // { q, results } while the sidebar shows a search
    showBackground: false, // list job and daydream conversations too
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

  // Inline `code` and **bold** spans inside a paragraph, as DOM nodes.
  function inlineNodes(text) {
    const out = [];
    const re = /`([^`\n]+)`|\*\*([^*\n]+)\*\*/g;
    let last = 0;
    let m;
    while ((m = re.exec(text)) !== null) {
      if (m.index > last) out.push(document.createTextNode(text.slice(last, m.index)));
      out.push(m[1] !== undefined ? h('code', { text: m[1] }) : h('strong', { text: m[2] }));
      last = re.lastIndex;
    }
    if (last < text.length) out.push(document.createTextNode(text.slice(last)));
    return out;
  }

  // Paragraphs and ``` fenced code blocks (an unclosed fence, as while
  // streaming, runs to the end). Returns a DocumentFragment.
  function formatText(text) {
    const frag = document.createDocumentFragment();
    const lines = String(text ?? '').replace(/\r\n?/g, '\n').split('\n');
    let para = [];
    const flushPara = () => {
      const body = para.join('\n').replace(/^\n+|\n+$/g, '');
      para = [];
      if (body.trim() === '') return;
      const p = h('p');
      p.append(...inlineNodes(body));
      frag.append(p);
    };
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      const fence = line.match(/^\s*```\s*([\w+.#-]*)\s*$/);
      if (fence) {
        flushPara();
        const code = [];
        i++;
        while (i < lines.length && !/^\s*```\s*$/.test(lines[i])) code.push(lines[i++]);
        const codeEl = h('code', { text: code.join('\n') });
        if (fence[1]) codeEl.dataset.lang = fence[1];
        frag.append(h('pre', null, codeEl));
      } else if (line.trim() === '') {
        flushPara();
      } else {
        para.push(line);
      }
    }
    flushPara();
    return frag;
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
    state.current = id;
    if (els.approvals) { els.approvals.replaceChildren(); els.approvals.hidden = true; pollApprovals(); }
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
    const el = h('div', { class: 'msg user' }, h('div', { class: 'bubble', text }));
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
    const el = h('div', { class: 'msg assistant' }, bubble, meta);
    const tools = new Map();
    let textEl = null;
    let textBuf = '';
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
        if (!textEl) { textEl = h('div', { class: 'text' }); bubble.append(textEl); textBuf = ''; }
        textBuf += t;
        textEl.dataset.raw = textBuf; // the unformatted source, for tests and copy tools
        textEl.replaceChildren(formatText(textBuf));
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
      replaceText(text) {
        msg.hideTyping();
        for (const t of bubble.querySelectorAll(':scope > .text')) t.remove();
        textEl = null;
        msg.streamed = '';
        msg.appendText(text);
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

  // A system notice; a job's live status message (updated in place on the
  // server) carries its buttons in a `buttons` block and is refreshed by
  // pollNotices; a code run's result carries its branch's buttons (their
  // answer arrives as a new notice).
  function systemNotice(m) {
    const blocks = blocksOf(m);
    const text = m.text || blocks.filter((b) => b && b.type === 'text').map((b) => b.text).join('\n');
    if (!text) return null;
    const el = h('div', { class: 'msg system', 'data-message-id': m.id }, h('div', { class: 'bubble', text }));
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
    if (m.id > state.lastMessageId) state.lastMessageId = m.id;
    return el;
  }

  // New system notices of the open conversation, and the live ones changed
  // in place, every 2 s (from the oldest live status on).
  async function pollNotices() {
    const id = state.current;
    if (!id || state.busy || document.hidden) return;
    const live = [...els.messages.querySelectorAll('.msg.system[data-live]')].map((el) => Number(el.dataset.messageId));
    const after = Math.min(state.lastMessageId, ...live.map((n) => n - 1));
    let body;
    try {
      body = await apiJson(`/api/conversations/${encodeURIComponent(id)}/messages?after=${after}`);
    } catch (_) {
      return;
    }
    if (state.current !== id || state.busy) return;
    for (const m of body.messages || []) {
      if (m.id > state.lastMessageId) state.lastMessageId = m.id;
      if (m.role !== 'system') continue;
      const shown = els.messages.querySelector(`.msg.system[data-message-id="${m.id}"]`);
      const el = systemNotice(m);
      if (shown && el) shown.replaceWith(el);
      else if (el) { els.messages.append(el); showWelcome(false); scrollToEnd(false); }
    }
  }
  setInterval(pollNotices, 2000);

  function renderHistory(messages) {
    state.lastMessageId = messages.reduce((max, m) => Math.max(max, m.id || 0), 0);
    const results = new Map();
    for (const m of messages) {
      for (const b of blocksOf(m)) {
        if (b && b.type === 'tool_result' && b.tool_use_id) results.set(b.tool_use_id, b);
      }
    }
    let current = null; // the assistant bubble a following assistant message joins
    for (const m of messages) {
      const blocks = blocksOf(m);
      if (m.role === 'assistant') {
        if (!current) { current = assistantMessage(); els.messages.append(current.el); }
        const textBlocks = blocks.filter((b) => b && b.type === 'text');
        const render = (b) => {
          if (b.type === 'text') current.appendText(b.text);
          else if (b.type === 'tool_use') {
            const card = current.tool({ id: b.id, name: b.name, input: b.input });
            const r = results.get(b.id);
            card.finish(r ? resultText(r) : undefined, r ? !!r.is_error : false);
          }
        };
        if (textBlocks.length === 0 && m.text) current.appendText(m.text);
        for (const b of blocks) if (b) render(b);
        current.newTextRun(); // the next message's text gets its own run
      } else if (m.role === 'user') {
        const hasText = blocks.some((b) => b && b.type === 'text');
        const onlyResults = blocks.length > 0 && blocks.every((b) => b && b.type === 'tool_result');
        if (onlyResults && !hasText) continue; // tool results in the Anthropic shape
        const text = m.text || blocks.filter((b) => b && b.type === 'text').map((b) => b.text).join('\n');
        if (!text) continue;
        current = null;
        addUserMessage(text);
      } else if (m.role === 'system') {
        const el = systemNotice(m);
        if (!el) continue;
        current = null;
        els.messages.append(el);
      }
      // role "tool": folded into the cards above
    }
    for (const el of els.messages.querySelectorAll('.msg.assistant .bubble')) {
      if (el.children.length === 0) el.closest('.msg').remove();
    }
  }

  // ------------------------------------------------------------------ sending
  function setBusy(on) {
    state.busy = on;
    document.body.dataset.busy = on ? 'true' : 'false';
    els.send.disabled = on;
    els.newConv.disabled = on;
  }

  function newConversationName(text) {
    const oneLine = text.replace(/\s+/g, ' ').trim();
    if (oneLine) return oneLine.length > 40 ? oneLine.slice(0, 40).trimEnd() + '…' : oneLine;
    return `New conversation ${new Date().toLocaleString()}`;
  }

  // Parse an SSE byte stream; calls onEvent(name, dataString) per event and
  // stops reading (closing the stream) as soon as onEvent returns true.
  async function readSse(body, onEvent) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    let name = '';
    let data = [];
    let stop = false;
    const dispatch = () => {
      if (data.length && !stop) stop = onEvent(name || 'message', data.join('\n')) === true;
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
    const meta = { intent: '', model: '' };
    // A failed turn also streams its error as reply text: show it once, as the error.
    const withoutFailure = (text) => (failure && text.endsWith(failure) ? text.slice(0, -failure.length).trimEnd() : text);

    const adopt = (id) => {
      if (!id || conversationId === id) return;
      conversationId = id;
      if (state.current === null && isNew) {
        setCurrent(id);
        if (!state.conversations.some((c) => c.id === id)) els.title.textContent = ref;
      }
    };

    const finish = (d) => {
      finished = true;
      adopt(d.conversation);
      for (const call of d.tool_calls || []) {
        const card = reply.tool({ id: call.id, name: call.name, input: call.input });
        card.finish(call.output, !!call.is_error);
      }
      const text = typeof d.reply === 'string' ? withoutFailure(d.reply) : '';
      if (text !== '' && text !== reply.streamed) reply.replaceText(text);
    };

    const handlers = {
      turn_started(d) {
        started = true;
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
      if (reply.isEmpty()) reply.el.remove();
      else if (!meta.intent && !meta.model) reply.setMeta([]);
      await loadConversations();
      if (conversationId && (state.current === conversationId || (isNew && state.current === null))) {
        setCurrent(conversationId);
      }
      setBusy(false); // last: "not busy" means the list is refreshed too
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

  // ---------------------------------------------------------------- approvals
  // Claude Code permission requests of the open conversation, polled every
  // 2 s; each shows the tool, its input and three answers.
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
    }
    await pollApprovals();
  }

  async function pollApprovals() {
    const id = state.current;
    if (!id || document.hidden) { els.approvals.hidden = true; return; }
    let body;
    try {
      const res = await fetch(`/api/approvals?conversation=${encodeURIComponent(id)}`, {
        headers: localStorage.getItem(TOKEN_KEY) ? { Authorization: `Bearer ${localStorage.getItem(TOKEN_KEY)}` } : {},
      });
      if (!res.ok) return; // a missing token is asked for by the chat itself
      body = await res.json();
    } catch (_) {
      return;
    }
    if (state.current !== id) return;
    const list = body.approvals || [];
    const shown = [...els.approvals.children].map((el) => el.dataset.id).join(',');
    if (shown !== list.map((a) => String(a.id)).join(',')) els.approvals.replaceChildren(...list.map(approvalCard));
    els.approvals.hidden = list.length === 0;
  }
  setInterval(pollApprovals, 2000);

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
