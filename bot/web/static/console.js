// Clinician console: sign-in, the escalation list and the detail view.
// Everything a person wrote is put into the page with textContent, never as HTML.
(function () {
  "use strict";

  const BASE = document.querySelector('meta[name="console-base"]').content;
  const API = "/api";
  const REFRESH_MS = 10000;
  const MAX_NOTE = 2000;

  const LEVELS = { urgent: "Urgent", priority: "Priority", low: "Low" };
  const CATEGORIES = {
    suicide: "Suicide risk",
    self_harm: "Self-harm",
    harm_to_others: "Harm to others",
    medical_emergency: "Medical emergency",
    acute_crisis: "Acute crisis",
    abuse_danger: "Abuse or danger",
    human_request: "Asked to talk to a person",
  };
  const KINDS = { risk: "Risk detected", human_request: "Request to talk to a person" };
  const STATUSES = { open: "Open", acknowledged: "Acknowledged", resolved: "Resolved" };
  const ACTIONS = {
    created: "Raised",
    acknowledged: "Acknowledged",
    resolved: "Resolved",
    contact_recorded: "Contact details recorded",
  };
  const SENDERS = { user: "Person", bot: "Assistant" };

  const state = { user: null, refreshTimer: null, escalation: null, lastSummary: "" };

  function $(id) {
    return document.getElementById(id);
  }

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function label(map, value) {
    return map[value] || String(value || "").replace(/_/g, " ");
  }

  function formatAge(seconds) {
    const minutes = Math.floor(seconds / 60);
    if (minutes < 1) return "under 1 min";
    if (minutes < 60) return minutes + " min";
    const hours = Math.floor(minutes / 60);
    if (hours < 24) return hours + " h " + (minutes % 60) + " min";
    return Math.floor(hours / 24) + " d " + (hours % 24) + " h";
  }

  function formatTime(iso) {
    if (!iso) return "";
    const moment = new Date(iso);
    return isNaN(moment.getTime()) ? String(iso) : moment.toLocaleString();
  }

  class ApiError extends Error {
    constructor(status, message, data) {
      super(message);
      this.status = status;
      this.data = data || {};
    }
  }

  async function api(method, path, body) {
    const options = {
      method: method,
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    };
    if (method !== "GET") {
      options.headers["X-Requested-With"] = "console";
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body || {});
    }
    let response;
    try {
      response = await fetch(API + path, options);
    } catch (error) {
      throw new ApiError(0, "The console cannot reach the server. Check the connection.");
    }
    if (response.status === 204) return null;
    let data = null;
    try {
      data = await response.json();
    } catch (error) {
      data = null;
    }
    if (!response.ok) {
      const detail = (data && data.error) || {};
      throw new ApiError(response.status, detail.message || "Something went wrong.", detail);
    }
    return data;
  }

  // Views ------------------------------------------------------------------

  function showView(id) {
    ["loading", "login-view", "list-view", "detail-view"].forEach(function (viewId) {
      $(viewId).hidden = viewId !== id;
    });
    if (id !== "list-view") stopRefresh();
  }

  function focusHeading(id) {
    const heading = $(id);
    if (heading) heading.focus();
  }

  function showAccount() {
    $("account").hidden = !state.user;
    $("account-name").textContent = state.user ? state.user.name : "";
  }

  function handleAuthError(error) {
    if (error instanceof ApiError && error.status === 401) {
      state.user = null;
      showAccount();
      showLogin("Your session has ended. Please sign in again.");
      return true;
    }
    return false;
  }

  function showLogin(message) {
    document.title = "Sign in - Clinician console";
    showView("login-view");
    $("login-error").textContent = message || "";
    $("password").value = "";
    focusHeading("login-heading");
  }

  function currentRoute() {
    const path = window.location.pathname.replace(/\/+$/, "");
    const prefix = BASE + "/escalations/";
    if (path.indexOf(prefix) === 0) {
      return { view: "detail", id: decodeURIComponent(path.slice(prefix.length)) };
    }
    return { view: "list" };
  }

  function navigate(url) {
    window.history.pushState(null, "", url);
    render();
  }

  function render() {
    if (!state.user) {
      showLogin();
      return;
    }
    const route = currentRoute();
    if (route.view === "detail") {
      openDetail(route.id);
    } else {
      openList();
    }
  }

  // Sign-in ----------------------------------------------------------------

  async function signIn(event) {
    event.preventDefault();
    const username = $("username").value.trim();
    const password = $("password").value;
    if (!username || !password) {
      $("login-error").textContent = "Please enter your username and password.";
      return;
    }
    $("login-submit").disabled = true;
    $("login-error").textContent = "";
    try {
      state.user = await api("POST", "/login", { username: username, password: password });
      $("password").value = "";
      showAccount();
      render();
    } catch (error) {
      $("login-error").textContent = error.message;
      $("password").value = "";
      $("password").focus();
    } finally {
      $("login-submit").disabled = false;
    }
  }

  async function signOut() {
    try {
      await api("POST", "/logout");
    } catch (error) {
      // Signed out already if the session had ended; the form is shown either way.
    }
    state.user = null;
    showAccount();
    window.history.pushState(null, "", BASE);
    showLogin("You are signed out.");
  }

  // List -------------------------------------------------------------------

  function stopRefresh() {
    if (state.refreshTimer !== null) {
      window.clearInterval(state.refreshTimer);
      state.refreshTimer = null;
    }
  }

  function openList() {
    showView("list-view");
    document.title = "Escalations - Clinician console";
    focusHeading("list-heading");
    loadList();
    stopRefresh();
    state.refreshTimer = window.setInterval(loadList, REFRESH_MS);
  }

  function escalationLink(item) {
    const link = el("a", "Open");
    link.href = BASE + "/escalations/" + encodeURIComponent(item.id);
    link.dataset.id = item.id;
    link.setAttribute(
      "aria-label",
      "Open " + label(LEVELS, item.level) + " escalation, " + label(CATEGORIES, item.category) +
        ", waiting " + formatAge(item.age_seconds)
    );
    link.addEventListener("click", function (event) {
      if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
      event.preventDefault();
      navigate(link.href);
    });
    return link;
  }

  function escalationRow(item) {
    const row = el("tr", null, "level-" + item.level);
    const level = el("td");
    level.appendChild(el("span", label(LEVELS, item.level), "badge badge-" + item.level));
    row.appendChild(level);
    row.appendChild(el("td", formatAge(item.age_seconds)));
    row.appendChild(el("td", label(CATEGORIES, item.category)));
    row.appendChild(el("td", label(STATUSES, item.status)));
    row.appendChild(el("td", formatTime(item.created_at)));
    const open = el("td");
    open.appendChild(escalationLink(item));
    row.appendChild(open);
    return row;
  }

  function summarise(data) {
    const counts = { urgent: 0, priority: 0, low: 0 };
    data.escalations.forEach(function (item) {
      counts[item.level] = (counts[item.level] || 0) + 1;
    });
    const which = data.status === "all" ? "" : label(STATUSES, data.status).toLowerCase() + " ";
    if (data.count === 0) return { text: "No " + which + "escalations.", urgent: 0 };
    const text =
      data.count + " " + which + (data.count === 1 ? "escalation" : "escalations") + ": " +
      counts.urgent + " urgent, " + counts.priority + " priority, " + counts.low + " low." +
      (data.truncated ? " Only the most recent resolved ones are shown." : "");
    return { text: text, urgent: data.status === "open" ? counts.urgent : 0 };
  }

  async function loadList() {
    const status = $("status-filter").value;
    let data;
    try {
      data = await api("GET", "/escalations?status=" + encodeURIComponent(status));
    } catch (error) {
      if (!handleAuthError(error)) $("list-error").textContent = error.message;
      return;
    }
    if ($("list-view").hidden) return;
    $("list-error").textContent = "";
    const focusedId = document.activeElement && document.activeElement.dataset
      ? document.activeElement.dataset.id
      : undefined;
    const rows = $("escalation-rows");
    rows.replaceChildren.apply(rows, data.escalations.map(escalationRow));
    $("escalation-table").hidden = data.count === 0;
    if (focusedId) {
      const again = rows.querySelector('a[data-id="' + CSS.escape(focusedId) + '"]');
      if (again) again.focus();
    }
    const summary = summarise(data);
    // Only a change is announced, not every refresh.
    if (summary.text !== state.lastSummary) {
      $("list-summary").textContent = summary.text;
      state.lastSummary = summary.text;
    }
    document.title =
      (summary.urgent ? "(" + summary.urgent + " urgent) " : "") + "Escalations - Clinician console";
    $("list-updated").textContent = "Updated " + new Date().toLocaleTimeString();
  }

  // Detail -----------------------------------------------------------------

  function addFact(list, name, value) {
    if (value === null || value === undefined || value === "") return;
    list.appendChild(el("dt", name));
    list.appendChild(el("dd", value));
  }

  function renderFacts(item) {
    const facts = $("detail-facts");
    facts.replaceChildren();
    addFact(facts, "Level", label(LEVELS, item.level));
    addFact(facts, "Category", label(CATEGORIES, item.category));
    addFact(facts, "Kind", label(KINDS, item.kind));
    addFact(facts, "Status", label(STATUSES, item.status));
    addFact(facts, "Raised at", formatTime(item.created_at) + " (" + formatAge(item.age_seconds) + " ago)");
    addFact(facts, "Chat channel", item.channel);
    addFact(facts, "Conversation id", item.conversation_id);
    if (item.contact) {
      addFact(facts, "How to contact them", label({ phone: "Phone", email: "E-mail" }, item.contact.method) + ": " + item.contact.value);
    } else {
      addFact(facts, "How to contact them", "No contact details were shared.");
    }
    if (item.acknowledged_by) {
      addFact(facts, "Acknowledged", (item.acknowledged_by_name || item.acknowledged_by) + ", " + formatTime(item.acknowledged_at));
    }
    if (item.resolved_by) {
      addFact(facts, "Resolved", (item.resolved_by_name || item.resolved_by) + ", " + formatTime(item.resolved_at));
      addFact(facts, "Resolution note", item.resolution_note);
    }
  }

  function renderTranscript(turns) {
    const list = $("transcript");
    list.replaceChildren();
    if (!turns.length) {
      list.appendChild(el("li", "No conversation was recorded.", "muted"));
      return;
    }
    turns.forEach(function (turn) {
      const item = el("li", null, "turn turn-" + (turn.sender === "user" ? "user" : "bot"));
      const meta = el("p", null, "turn-meta");
      meta.appendChild(el("strong", label(SENDERS, turn.sender)));
      if (turn.timestamp) meta.appendChild(el("span", " " + formatTime(turn.timestamp)));
      item.appendChild(meta);
      item.appendChild(el("p", turn.text, "turn-text"));
      list.appendChild(item);
    });
  }

  function renderEvents(events) {
    const list = $("events");
    list.replaceChildren();
    events.forEach(function (event) {
      const item = el("li");
      item.appendChild(el("span", formatTime(event.at) + ": " + label(ACTIONS, event.action) + " by " + event.actor_name));
      if (event.note && event.action !== "created") {
        item.appendChild(el("p", event.note, "event-note"));
      }
      list.appendChild(item);
    });
  }

  function renderDetail(item) {
    state.escalation = item;
    $("detail-heading").textContent =
      label(LEVELS, item.level) + ": " + label(CATEGORIES, item.category);
    document.title = label(LEVELS, item.level) + " escalation - Clinician console";
    renderFacts(item);
    renderTranscript(item.transcript);
    renderEvents(item.events);
    $("acknowledge").hidden = item.status !== "open";
    $("resolve-form").hidden = item.status === "resolved";
    if (item.status === "resolved") {
      $("action-status").textContent = "This escalation is resolved. Nothing more to do here.";
    }
    $("detail-error").textContent = "";
    $("detail-body").hidden = false;
  }

  async function openDetail(id) {
    showView("detail-view");
    $("detail-body").hidden = true;
    $("detail-heading").textContent = "Escalation";
    $("detail-error").textContent = "";
    $("action-status").textContent = "";
    $("action-error").textContent = "";
    $("resolve-note").value = "";
    updateNoteCount();
    try {
      renderDetail(await api("GET", "/escalations/" + encodeURIComponent(id)));
    } catch (error) {
      if (handleAuthError(error)) return;
      $("detail-error").textContent =
        error.status === 404 ? "There is no escalation with this id." : error.message;
    }
    focusHeading("detail-heading");
  }

  async function changeStatus(path, body, doneMessage) {
    const item = state.escalation;
    if (!item) return;
    $("action-error").textContent = "";
    $("acknowledge").disabled = true;
    $("resolve-submit").disabled = true;
    try {
      renderDetail(await api("POST", "/escalations/" + encodeURIComponent(item.id) + path, body));
      $("action-status").textContent = doneMessage;
      return true;
    } catch (error) {
      if (handleAuthError(error)) return false;
      $("action-error").textContent = error.message;
      if (error.status === 409) {
        // Someone else acted first: show what the escalation looks like now.
        try {
          renderDetail(await api("GET", "/escalations/" + encodeURIComponent(item.id)));
        } catch (reloadError) {
          handleAuthError(reloadError);
        }
      }
      return false;
    } finally {
      $("acknowledge").disabled = false;
      $("resolve-submit").disabled = false;
    }
  }

  function acknowledge() {
    changeStatus("/acknowledge", {}, "Acknowledged. You have taken this escalation on.");
  }

  async function resolve(event) {
    event.preventDefault();
    const note = $("resolve-note").value.trim();
    if (!note) {
      $("action-error").textContent = "Please write a short note of what was done.";
      $("resolve-note").focus();
      return;
    }
    if (await changeStatus("/resolve", { note: note }, "Resolved. Thank you.")) {
      $("resolve-note").value = "";
      updateNoteCount();
    }
  }

  function updateNoteCount() {
    const used = $("resolve-note").value.length;
    $("note-count").textContent = used + " of " + MAX_NOTE + " characters used.";
  }

  // Start ------------------------------------------------------------------

  async function start() {
    $("login-form").addEventListener("submit", signIn);
    $("sign-out").addEventListener("click", signOut);
    $("status-filter").addEventListener("change", function () {
      state.lastSummary = "";
      loadList();
    });
    $("refresh-list").addEventListener("click", loadList);
    $("back-to-list").addEventListener("click", function (event) {
      if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
      event.preventDefault();
      navigate(BASE);
    });
    $("acknowledge").addEventListener("click", acknowledge);
    $("resolve-form").addEventListener("submit", resolve);
    $("resolve-note").addEventListener("input", updateNoteCount);
    window.addEventListener("popstate", render);
    try {
      state.user = await api("GET", "/session");
    } catch (error) {
      state.user = null;
      if (!(error instanceof ApiError) || error.status !== 401) {
        showAccount();
        showLogin(error.message);
        return;
      }
    }
    showAccount();
    render();
  }

  start();
})();
