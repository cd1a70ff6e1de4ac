// chatd web client: plain JavaScript on the stock Socket.IO client. Protocol: docs/protocol.md.
// User data is only ever put into the page as text nodes (textContent), never as HTML.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const ACK_TIMEOUT = 10000;
  const RETRY_DELAY = 1500;
  // Errors after which the same request can simply be tried again a little later.
  const TRANSIENT = new Set(["unavailable", "rate_limited", "too_many_connections"]);
  const TYPING_REFRESH = 2000;
  const TYPING_IDLE = 3000;

  /** Creates an element; string children become text nodes. */
  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      node.append(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return node;
  }

  const URL_RE = /\bhttps?:\/\/[^\s<>"']+/gi;

  /** Text with http(s) links made clickable, as DOM nodes. */
  function linkify(text) {
    const frag = document.createDocumentFragment();
    let last = 0;
    for (const match of text.matchAll(URL_RE)) {
      let url = match[0].replace(/[.,!?;:)\]]+$/, "");
      const start = match.index;
      frag.append(document.createTextNode(text.slice(last, start)));
      let safe = null;
      try {
        const parsed = new URL(url);
        if (parsed.protocol === "http:" || parsed.protocol === "https:") safe = parsed.href;
      } catch (_) { /* not a URL after all */ }
      if (safe) {
        frag.append(h("a", { href: safe, target: "_blank", rel: "noopener noreferrer nofollow" }, url));
      } else {
        frag.append(document.createTextNode(url));
      }
      last = start + url.length;
    }
    frag.append(document.createTextNode(text.slice(last)));
    return frag;
  }

  const saved = {
    name: () => localStorage.getItem("chatd.name") || "",
    token: (name) => localStorage.getItem("chatd.token." + name.toLowerCase()) || undefined,
    remember(name, token) {
      localStorage.setItem("chatd.name", name);
      localStorage.setItem("chatd.token." + name.toLowerCase(), token);
    },
    // The people this user has direct conversations with (the server has no list of them).
    peers(me) {
      try {
        const list = JSON.parse(localStorage.getItem("chatd.dms." + me.toLowerCase()) || "[]");
        return Array.isArray(list) ? list.filter((p) => typeof p === "string") : [];
      } catch (_) {
        return [];
      }
    },
    addPeer(me, peer) {
      const list = saved.peers(me);
      if (list.includes(peer.toLowerCase())) return;
      list.push(peer.toLowerCase());
      localStorage.setItem("chatd.dms." + me.toLowerCase(), JSON.stringify(list));
    },
  };

  const state = {
    me: null,
    guest: false,
    config: null, // GET /api/config
    socket: null,
    everConnected: false,
    listing: new Map(), // room name -> {topic, members}
    convs: new Map(), // "#room" or "@peer" -> conversation
    current: null,
    counter: 0,
    typingSentAt: 0,
    typingTimer: null,
    // Set when the server moves us to another node (a rolling restart): the reconnection that
    // follows is expected and quick, so it shows no banner unless it takes a while.
    moving: null,
    moveTimer: null, // shows the banner if the move's reconnection takes too long
  };

  /** How long a move to another node may take before the banner says we are reconnecting. */
  const MOVE_GRACE_MS = 5000;

  function conv(kind, name) {
    const key = (kind === "room" ? "#" : "@") + name.toLowerCase();
    let c = state.convs.get(key);
    if (!c) {
      c = {
        key, kind, name, topic: "", joined: false, loaded: false,
        messages: new Map(), pending: new Map(), lastSeq: 0, more: true, loadingOlder: false,
        unread: 0, members: new Set(), typing: new Map(),
      };
      state.convs.set(key, c);
    }
    return c;
  }

  // ---- connection -------------------------------------------------------------------------

  function banner(kind, text) {
    const b = $("banner");
    if (!kind) {
      if (b.hidden) return; // already: no mutation for observers
      b.hidden = true;
      b.removeAttribute("data-state");
      return;
    }
    b.hidden = false;
    b.dataset.state = kind;
    b.textContent = text;
  }

  const OFFLINE = "Offline. Messages will be sent when you are back.";

  /** The connection is down: "offline" while the browser has no network, else "reconnecting". */
  function lost(text) {
    if (navigator.onLine) banner("reconnecting", text);
    else banner("offline", OFFLINE);
  }

  /** A request to the accounts API: { status, body } (body null when not JSON). */
  async function api(path, body) {
    const init = { credentials: "same-origin", headers: {} };
    if (body !== undefined) {
      init.method = "POST";
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    let json = null;
    try { json = await res.json(); } catch (_) { /* not JSON */ }
    return { status: res.status, body: json };
  }

  /** Connects as a guest named `name`, or (no name) as the account of the session cookie. */
  function connect(name) {
    // `?transports=polling` (or `websocket`) restricts the transports, for testing and for
    // networks that break WebSockets.
    const only = new URLSearchParams(location.search).get("transports");
    state.guest = Boolean(name);
    // An account's session travels in its HttpOnly cookie, which the browser sends itself.
    const options = { auth: name ? { username: name, token: saved.token(name) } : {} };
    if (only) options.transports = only.split(",");
    const socket = io("/chat", options);
    state.socket = socket;
    banner("connecting", "Connecting…");

    socket.on("connect_error", (err) => {
      const code = err && err.data && err.data.code;
      if (code && !state.everConnected) {
        socket.disconnect();
        state.socket = null;
        showLogin(err.message);
        return;
      }
      if (code === "name_taken" || code === "invalid_name") {
        socket.disconnect();
        banner("offline", "Your name was taken while you were away. Reload to pick another.");
        return;
      }
      if (code === "invalid_session" || code === "auth_required") {
        socket.disconnect();
        banner("offline", "Your session has ended. Reload to log in again.");
        return;
      }
      if (!state.moving || Date.now() - state.moving >= MOVE_GRACE_MS) lost("Reconnecting…");
      // A refusal at CONNECT (e.g. the server is shutting down) ends the stock client's
      // reconnection loop: start it again.
      if (code) setTimeout(() => { if (!socket.connected && !socket.active) socket.connect(); }, RETRY_DELAY);
    });
    socket.io.on("reconnect_attempt", (n) => {
      if (state.moving && Date.now() - state.moving < MOVE_GRACE_MS) return;
      lost(`Reconnecting (attempt ${n})…`);
    });
    socket.on("moving", () => {
      state.moving = Date.now();
    });
    socket.on("disconnect", (reason) => {
      if (reason === "io client disconnect" || state.ended) return;
      if (state.moving && reason !== "io server disconnect") {
        // One timer for the move in progress: an earlier move's must not fire during this one.
        clearTimeout(state.moveTimer);
        state.moveTimer = setTimeout(() => {
          if (!socket.connected && state.moving) lost("Connection lost. Reconnecting…");
        }, MOVE_GRACE_MS);
        return;
      }
      lost(reason === "io server disconnect" ? "Disconnected by the server." : "Connection lost. Reconnecting…");
      if (reason === "io server disconnect") setTimeout(() => socket.connect(), 1000);
    });
    socket.on("session", ({ user, token, guest }) => {
      state.me = user;
      if (guest) {
        socket.auth.token = token;
        saved.remember(user, token);
      }
      $("logout").hidden = Boolean(guest);
      $("me").textContent = user;
      for (const peer of saved.peers(user)) conv("dm", peer);
      renderRooms();
    });
    socket.on("session_ended", ({ reason }) => {
      // Logged out elsewhere, revoked, or a new password: back to the login screen.
      if (state.ended) return; // this tab is logging out itself
      state.ended = true;
      socket.disconnect();
      sessionStorage.setItem("chatd.ended", `You were logged out (${reason}).`);
      location.reload();
    });
    socket.on("connect", () => onConnect(socket));
    socket.on("message", (m) => onMessage(conv("room", m.room), m));
    socket.on("dm", (m) => {
      const peer = dmPeer(m.room);
      saved.addPeer(state.me, peer);
      onMessage(conv("dm", peer), m);
    });
    socket.on("presence", ({ room, user, online }) => {
      const c = conv("room", room);
      if (online) c.members.add(user);
      else {
        c.members.delete(user);
        c.typing.delete(user);
      }
      const l = state.listing.get(room);
      if (l) l.members = c.members.size;
      renderMembers();
      renderRooms();
      renderTyping();
    });
    socket.on("typing", ({ room, user, typing }) => {
      const c = conv("room", room);
      clearTimeout(c.typing.get(user));
      if (typing) c.typing.set(user, setTimeout(() => { c.typing.delete(user); renderTyping(); }, 6000));
      else c.typing.delete(user);
      renderTyping();
    });
    socket.on("topic", ({ room, topic }) => {
      conv("room", room).topic = topic;
      renderHeader();
    });
  }

  async function onConnect(socket) {
    banner(null);
    state.moving = null;
    clearTimeout(state.moveTimer);
    const first = !state.everConnected;
    state.everConnected = true;
    if (first) {
      $("login").hidden = true;
      $("shell").hidden = false;
      await refreshRooms();
      await openRoom("lobby");
    } else if (!socket.recovered) {
      // A new session: rejoin every room from the last message seen, and fetch the latest
      // direct messages, so nothing is missed.
      for (const c of state.convs.values()) {
        try {
          if (c.kind === "room" && c.joined) await joinRoom(c, c.lastSeq || undefined);
          if (c.kind === "dm" && c.loaded) await catchUpDm(c);
        } catch (_) { /* the room is gone, or no answer: carry on with the others */ }
      }
      refreshRooms();
    }
    flushOutbox();
  }

  // Every direct message after the last one seen, a page at a time.
  async function catchUpDm(c) {
    let after = c.lastSeq;
    for (;;) {
      const res = await call("dm:history", after ? { with: c.name, after } : { with: c.name });
      if (!res.ok) return;
      merge(c, res.messages);
      if (!after || !res.more || res.messages.length === 0) return;
      after = res.messages[res.messages.length - 1].seq;
    }
  }

  function dmPeer(room) {
    const names = room.replace(/^@/, "").split(":");
    const me = (state.me || "").toLowerCase();
    return names.find((n) => n !== me) || names[0];
  }

  function call(event, payload) {
    return state.socket.timeout(ACK_TIMEOUT).emitWithAck(event, payload);
  }

  // ---- rooms --------------------------------------------------------------------------------

  async function refreshRooms() {
    try {
      const res = await call("rooms:list", {});
      if (!res.ok) return;
      state.listing.clear();
      for (const r of res.rooms) state.listing.set(r.name, { topic: r.topic, members: r.members });
      renderRooms();
    } catch (_) { /* offline: keep the old list */ }
  }

  async function joinRoom(c, since) {
    const res = await call("room:join", { room: c.name, since });
    if (!res.ok) throw new Error(res.error.message);
    c.joined = true;
    c.loaded = true;
    c.topic = res.room.topic;
    c.members = new Set(res.members);
    if (since === undefined) c.more = (res.cursor || 1) > 1;
    merge(c, res.messages);
    // A catch-up comes a page at a time: ask for the rest.
    let page = res;
    while (page.more && page.messages.length > 0) {
      const after = page.messages[page.messages.length - 1].seq;
      page = await call("history", { room: c.name, after, limit: 100 });
      if (!page.ok) break;
      merge(c, page.messages);
    }
    const l = state.listing.get(c.name) || { topic: c.topic, members: 0 };
    l.members = c.members.size;
    state.listing.set(c.name, l);
    renderRooms();
  }

  async function openRoom(name) {
    const c = conv("room", name);
    if (!c.joined) {
      try {
        await joinRoom(c);
      } catch (e) {
        flash(e.message);
        return;
      }
    }
    select(c);
  }

  async function openDm(peer) {
    const c = conv("dm", peer);
    saved.addPeer(state.me, peer);
    select(c);
    if (!c.loaded) await loadOlder(c);
  }

  function select(c) {
    state.current = c;
    c.unread = 0;
    document.body.classList.remove("sidebar-open", "members-open");
    renderRooms();
    renderHeader();
    renderMembers();
    renderMessages(true);
    renderTyping();
    $("input").focus();
  }

  // ---- messages -------------------------------------------------------------------------------

  function merge(c, list) {
    for (const m of list) {
      c.messages.set(m.seq, m);
      c.lastSeq = Math.max(c.lastSeq, m.seq);
      if (m.user.toLowerCase() === (state.me || "").toLowerCase()) c.pending.delete(m.id);
    }
    if (c === state.current) renderMessages(false);
  }

  function onMessage(c, m) {
    if (c.messages.has(m.seq)) return;
    const typingTimer = c.typing.get(m.user);
    if (typingTimer) {
      clearTimeout(typingTimer);
      c.typing.delete(m.user);
      renderTyping();
    }
    merge(c, [m]);
    const mine = m.user.toLowerCase() === (state.me || "").toLowerCase();
    if (c !== state.current && !mine) {
      c.unread += 1;
      renderRooms();
    }
  }

  async function loadOlder(c) {
    if (c.loadingOlder || (!c.more && c.loaded)) return;
    c.loadingOlder = true;
    const oldest = Math.min(...c.messages.keys());
    const before = Number.isFinite(oldest) ? oldest : undefined;
    const box = $("messages");
    let grew = false;
    try {
      const res = c.kind === "room"
        ? await call("history", { room: c.name, before })
        : await call("dm:history", { with: c.name, before });
      if (res.ok) {
        c.loaded = true;
        c.more = res.more;
        grew = res.messages.length > 0;
        const fromBottom = box.scrollHeight - box.scrollTop;
        merge(c, res.messages);
        if (c === state.current) box.scrollTop = box.scrollHeight - fromBottom;
      }
    } catch (_) { /* retried on the next scroll */ }
    c.loadingOlder = false;
    // Still nothing to scroll, so the scroll handler cannot ask for more: go on.
    if (grew && c.more && c === state.current && box.clientHeight > 0 && box.scrollHeight <= box.clientHeight) loadOlder(c);
  }

  function newId() {
    state.counter += 1;
    return `${Date.now().toString(36)}-${state.counter}-${Math.random().toString(36).slice(2, 8)}`;
  }

  function send(text) {
    const c = state.current;
    if (!c || !text.trim()) return;
    const id = newId();
    c.pending.set(id, { id, text, status: "sending", ts: Date.now() });
    renderMessages(true);
    stopTyping();
    deliver(c, id);
  }

  function deliver(c, id) {
    const p = c.pending.get(id);
    if (!p) return;
    if (!state.socket || !state.socket.connected) {
      p.status = "queued";
      renderMessages(false);
      return;
    }
    p.status = "sending";
    const payload = c.kind === "room"
      ? { room: c.name, id, text: p.text }
      : { to: c.name, id, text: p.text };
    const event = c.kind === "room" ? "message:send" : "dm:send";
    const socket = state.socket;
    socket.timeout(ACK_TIMEOUT).emit(event, payload, (err, res) => {
      if (c.pending.get(id) !== p) return; // acknowledged by another attempt meanwhile
      if (!err && res.ok) {
        c.pending.delete(id);
        merge(c, [res.message]);
        return;
      }
      if (err || TRANSIENT.has(res.error.code)) {
        // No answer, or "try again": resend with the same id (the server ignores duplicates).
        // Without a connection, the next connect sends it (flushOutbox).
        p.status = "queued";
        setTimeout(() => { if (p.status === "queued" && socket.connected) deliver(c, id); }, RETRY_DELAY);
      } else {
        p.status = "failed";
        p.error = res.error.message;
      }
      if (c === state.current) renderMessages(false);
    });
  }

  function flushOutbox() {
    for (const c of state.convs.values()) {
      for (const p of c.pending.values()) {
        if (p.status !== "failed") deliver(c, p.id);
      }
    }
  }

  // ---- typing ---------------------------------------------------------------------------------

  function typed() {
    const c = state.current;
    if (!c || c.kind !== "room" || !state.socket || !state.socket.connected) return;
    const now = Date.now();
    if (now - state.typingSentAt > TYPING_REFRESH) {
      state.typingSentAt = now;
      state.socket.emit("typing", { room: c.name, typing: true });
    }
    clearTimeout(state.typingTimer);
    state.typingTimer = setTimeout(stopTyping, TYPING_IDLE);
  }

  function stopTyping() {
    clearTimeout(state.typingTimer);
    const c = state.current;
    if (state.typingSentAt && c && c.kind === "room" && state.socket && state.socket.connected) {
      state.socket.emit("typing", { room: c.name, typing: false });
    }
    state.typingSentAt = 0;
  }

  // ---- rendering ------------------------------------------------------------------------------

  function flash(text) {
    banner("error", text);
    setTimeout(() => { if ($("banner").dataset.state === "error") banner(null); }, 4000);
  }

  function badge(n) {
    return n > 0 ? h("span", { class: "badge", "data-testid": "unread" }, String(n)) : null;
  }

  function renderRooms() {
    const rooms = $("rooms");
    const names = new Set([...state.listing.keys()]);
    for (const c of state.convs.values()) if (c.kind === "room" && c.joined) names.add(c.name);
    rooms.replaceChildren(...[...names].sort().map((name) => {
      const c = state.convs.get("#" + name);
      const l = state.listing.get(name) || { members: 0 };
      const current = state.current && state.current.key === "#" + name;
      return h("li", { class: current ? "active" : "", "data-testid": "room", "data-room": name },
        h("button", { onclick: () => openRoom(name) },
          h("span", { class: "name" }, "# " + name),
          h("span", { class: "count", title: "online", "data-testid": "room-members" }, String(l.members)),
          badge(c ? c.unread : 0)));
    }));
    const dms = $("dms");
    const peers = [...state.convs.values()].filter((c) => c.kind === "dm");
    dms.replaceChildren(...peers.map((c) => h("li", { class: state.current === c ? "active" : "", "data-testid": "dm", "data-peer": c.name },
      h("button", { onclick: () => openDm(c.name) }, h("span", { class: "name" }, "@ " + c.name), badge(c.unread)))));
  }

  function renderHeader() {
    const c = state.current;
    if (!c) return;
    $("conv-title").textContent = c.kind === "room" ? "# " + c.name : "@ " + c.name;
    $("conv-topic").textContent = c.kind === "room" ? c.topic : "Direct message";
  }

  function renderMembers() {
    const c = state.current;
    const list = $("members");
    if (!c || c.kind !== "room") {
      list.replaceChildren();
      return;
    }
    const me = (state.me || "").toLowerCase();
    list.replaceChildren(...[...c.members].sort((a, b) => a.localeCompare(b)).map((name) =>
      h("li", { "data-testid": "member", "data-user": name },
        name.toLowerCase() === me
          ? h("span", { class: "name self" }, name + " (you)")
          : h("button", { class: "name", title: "Direct message", onclick: () => openDm(name) }, name))));
  }

  function renderTyping() {
    const c = state.current;
    const names = c ? [...c.typing.keys()] : [];
    $("typing").textContent = names.length === 0 ? ""
      : names.length === 1 ? `${names[0]} is typing…`
      : names.length === 2 ? `${names[0]} and ${names[1]} are typing…`
      : "Several people are typing…";
  }

  function time(ts) {
    return new Date(ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  const STATUS = { sending: "sending…", queued: "queued", failed: "not sent", sent: "✓" };

  function messageNode(m, mine, status, error) {
    return h("div", {
      class: `msg${mine ? " mine" : ""}${status !== "sent" && mine ? " pending" : ""}`,
      "data-testid": "message", "data-seq": m.seq, "data-status": mine ? status : null,
    },
      h("div", { class: "meta" },
        h("span", { class: "author" }, m.user),
        h("time", { datetime: new Date(m.ts).toISOString() }, time(m.ts)),
        mine ? h("span", { class: "status", "data-testid": "status", title: error || "" }, STATUS[status]) : null,
        status === "failed" ? h("button", { class: "retry", onclick: () => retry(m.id) }, "retry") : null),
      h("div", { class: "text", "data-testid": "text" }, linkify(m.text)));
  }

  function retry(id) {
    const c = state.current;
    const p = c && c.pending.get(id);
    if (p) deliver(c, id);
  }

  function renderMessages(scrollToEnd) {
    const c = state.current;
    const box = $("messages");
    if (!c) return;
    const atEnd = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
    const me = (state.me || "").toLowerCase();
    const nodes = [];
    if (c.more) nodes.push(h("p", { class: "older" }, c.loadingOlder ? "Loading…" : "Scroll up for older messages"));
    for (const seq of [...c.messages.keys()].sort((a, b) => a - b)) {
      const m = c.messages.get(seq);
      nodes.push(messageNode(m, m.user.toLowerCase() === me, "sent"));
    }
    for (const p of c.pending.values()) {
      nodes.push(messageNode({ seq: "", id: p.id, user: state.me, text: p.text, ts: p.ts }, true, p.status, p.error));
    }
    box.replaceChildren(...nodes);
    if (scrollToEnd || atEnd) box.scrollTop = box.scrollHeight;
    // Nothing to scroll yet, so no way to ask for more: fetch older messages now.
    if (c.more && c.loaded && box.clientHeight > 0 && box.scrollHeight <= box.clientHeight) loadOlder(c);
  }

  // ---- page wiring ------------------------------------------------------------------------

  function showLogin(error) {
    $("login").hidden = false;
    $("shell").hidden = true;
    banner(null);
    const guest = state.guest;
    const e = $(guest ? "login-error" : "account-error");
    e.hidden = !error;
    e.textContent = error || "";
    $(guest ? "login-name" : "account-name").focus();
  }

  // ---- accounts ---------------------------------------------------------------------------

  function accountMode(mode) {
    const form = $("account-form");
    if (mode === "register" && state.config && state.config.registration === "closed") mode = "login";
    form.dataset.mode = mode;
    const register = mode === "register";
    $("mode-login").setAttribute("aria-selected", String(!register));
    $("mode-register").setAttribute("aria-selected", String(register));
    $("account-submit").textContent = register ? "Create account" : "Log in";
    $("account-password").autocomplete = register ? "new-password" : "current-password";
    const invite = register && state.config && state.config.registration === "invite";
    $("invite-label").hidden = !invite;
    $("account-invite").hidden = !invite;
    $("account-invite").required = invite;
    $("account-error").hidden = true;
  }

  $("mode-login").addEventListener("click", () => accountMode("login"));
  $("mode-register").addEventListener("click", () => accountMode("register"));

  $("account-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (state.socket) return;
    const register = $("account-form").dataset.mode === "register";
    const body = { name: $("account-name").value.trim(), password: $("account-password").value };
    if (register && !$("account-invite").hidden) body.invite = $("account-invite").value.trim();
    const error = $("account-error");
    error.hidden = true;
    $("account-submit").disabled = true;
    try {
      const res = await api(register ? "/api/register" : "/api/login", body);
      if (res.body && res.body.ok) {
        $("account-password").value = "";
        connect(null);
        return;
      }
      error.textContent = (res.body && res.body.error && res.body.error.message) || `The server answered ${res.status}.`;
      error.hidden = false;
    } catch (_) {
      error.textContent = "The server did not answer. Try again.";
      error.hidden = false;
    } finally {
      $("account-submit").disabled = false;
    }
  });

  $("logout").addEventListener("click", async () => {
    state.ended = true;
    try {
      await api("/api/logout", {});
    } catch (_) { /* the page starts over anyway */ }
    if (state.socket) state.socket.disconnect();
    location.reload();
  });

  /** What the server allows (guests, registration), then the session of the cookie, if any. */
  async function start() {
    try {
      const config = await api("/api/config");
      state.config = config.body && config.body.ok ? config.body : { registration: "open", guests: false };
    } catch (_) {
      state.config = { registration: "open", guests: false };
    }
    $("mode-register").hidden = state.config.registration === "closed";
    $("login-form").hidden = !state.config.guests;
    accountMode("login");
    try {
      const me = await api("/api/me");
      if (me.body && me.body.ok) {
        connect(null);
        return;
      }
    } catch (_) { /* not logged in */ }
    const ended = sessionStorage.getItem("chatd.ended");
    sessionStorage.removeItem("chatd.ended");
    showLogin(ended || undefined);
  }

  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const name = $("login-name").value.trim();
    if (!name || state.socket) return;
    $("login-error").hidden = true;
    connect(name);
  });

  $("composer").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = $("input");
    send(input.value);
    input.value = "";
    input.style.height = "";
  });

  $("input").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      $("composer").requestSubmit();
    }
  });

  $("input").addEventListener("input", (ev) => {
    const t = ev.target;
    t.style.height = "";
    t.style.height = Math.min(t.scrollHeight, 160) + "px";
    if (t.value.trim()) typed();
    else stopTyping();
  });

  $("messages").addEventListener("scroll", () => {
    const c = state.current;
    if (c && $("messages").scrollTop < 40 && c.more) loadOlder(c);
  });

  $("create-room").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const name = $("create-room-name").value.trim();
    if (!name) return;
    try {
      const res = await call("room:create", { room: name });
      if (!res.ok && res.error.code !== "room_exists") return flash(res.error.message);
      $("create-room-name").value = "";
      await refreshRooms();
      await openRoom(name.toLowerCase());
    } catch (_) {
      flash("Could not create the room: the server did not answer.");
    }
  });

  $("open-sidebar").addEventListener("click", () => document.body.classList.add("sidebar-open"));
  $("close-sidebar").addEventListener("click", () => document.body.classList.remove("sidebar-open"));
  $("toggle-members").addEventListener("click", () => document.body.classList.toggle("members-open"));
  $("close-members").addEventListener("click", () => document.body.classList.remove("members-open"));
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") document.body.classList.remove("sidebar-open", "members-open");
  });
  window.addEventListener("offline", () => { if (state.socket) banner("offline", OFFLINE); });
  window.addEventListener("online", () => {
    if (!state.socket) return;
    if (state.socket.connected) banner(null); // the connection survived the blip
    else banner("reconnecting", "Reconnecting…");
  });
  const refreshIfConnected = () => { if (state.socket && state.socket.connected) refreshRooms(); };
  setInterval(refreshIfConnected, 15000);
  window.addEventListener("focus", refreshIfConnected);

  $("login-name").value = saved.name();
  start();
})();
