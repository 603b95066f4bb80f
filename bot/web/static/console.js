// Clinician console: sign-in, the escalation list and the detail view.
// Everything a person wrote is put into the page with textContent, never as HTML.
(function () {
  "use strict";

  const BASE = document.querySelector('meta[name="console-base"]').content;
  const API = "/api";
  const REFRESH_MS = 10000;
  // Shown in the reader's own time zone, with the zone named, e.g. "Nov 28, 2024, 04:00:00 AM EST".
  const TIME_FORMAT = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
  });

  const state = {
    user: null,
    refreshTimer: null,
    escalation: null,
    lastSummary: "",
    // Levels, statuses, categories, channels and limits, from /api/vocabulary.
    vocabulary: null,
    labels: {},
    // Cursor of each page seen so far; the first page has none.
    cursors: [null],
    pageIndex: 0,
    selected: new Set(),
    listRequests: 0,
  };

  function $(id) {
    return document.getElementById(id);
  }

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function label(kind, value) {
    const known = state.labels[kind] || {};
    return known[value] || String(value || "").replace(/_/g, " ");
  }

  function formatAge(seconds) {
    const minutes = Math.floor(seconds / 60);
    if (minutes < 1) return "under 1 min";
    if (minutes < 60) return minutes + " min";
    const hours = Math.floor(minutes / 60);
    if (hours < 24) return hours + " h " + (minutes % 60) + " min";
    return Math.floor(hours / 24) + " d " + (hours % 24) + " h";
  }

  // The API sends ISO 8601 UTC; shown here in local time.
  function formatTime(iso) {
    if (!iso) return "";
    const moment = new Date(iso);
    return isNaN(moment.getTime()) ? String(iso) : TIME_FORMAT.format(moment);
  }

  function timeElement(iso) {
    const node = el("time", formatTime(iso));
    node.dateTime = iso;
    return node;
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
      await loadVocabulary();
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

  async function loadVocabulary() {
    const data = await api("GET", "/vocabulary");
    state.vocabulary = data;
    state.labels = {};
    Object.keys(data).forEach(function (kind) {
      if (!Array.isArray(data[kind])) return;
      state.labels[kind] = {};
      data[kind].forEach(function (term) {
        state.labels[kind][term.value] = term.label;
      });
    });
    fillSelect("status-filter", data.statuses, null);
    fillSelect("level-filter", data.levels, "All levels");
    fillSelect("category-filter", data.categories, "All categories");
    fillSelect("channel-filter", data.channels, "All channels");
    $("resolve-note").maxLength = data.limits.note;
    $("bulk-note").maxLength = data.limits.note;
  }

  function fillSelect(id, terms, anyLabel) {
    const select = $(id);
    const previous = select.value;
    const options = terms.map(function (term) {
      const option = el("option", term.label);
      option.value = term.value;
      return option;
    });
    if (anyLabel) {
      const any = el("option", anyLabel);
      any.value = "";
      options.unshift(any);
    }
    select.replaceChildren.apply(select, options);
    if (previous && terms.some(function (term) { return term.value === previous; })) select.value = previous;
  }

  async function openList() {
    showView("list-view");
    document.title = "Escalations - Clinician console";
    focusHeading("list-heading");
    try {
      // Again on each visit: a channel that escalated since is offered as a filter.
      await loadVocabulary();
    } catch (error) {
      if (handleAuthError(error)) return;
    }
    if ($("list-view").hidden) return;
    loadList();
    stopRefresh();
    state.refreshTimer = window.setInterval(loadList, REFRESH_MS);
  }

  function escalationLink(item) {
    const link = el("a", "Open");
    link.href = BASE + "/escalations/" + encodeURIComponent(item.id);
    link.dataset.id = item.id;
    link.setAttribute("aria-label", "Open " + describe(item));
    link.addEventListener("click", function (event) {
      if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
      event.preventDefault();
      navigate(link.href);
    });
    return link;
  }

  function describe(item) {
    return label("levels", item.level) + " escalation, " + label("categories", item.category) +
      ", waiting " + formatAge(item.age_seconds);
  }

  function selectBox(item) {
    const box = el("input");
    box.type = "checkbox";
    box.className = "select-escalation";
    box.value = item.id;
    box.checked = state.selected.has(item.id);
    box.disabled = item.status === "resolved";
    box.setAttribute("aria-label", "Select " + describe(item));
    box.addEventListener("change", function () {
      if (box.checked) state.selected.add(item.id);
      else state.selected.delete(item.id);
      selectionChanged();
    });
    return box;
  }

  function escalationRow(item) {
    const row = el("tr", null, "level-" + item.level);
    row.dataset.id = item.id;
    const select = el("td");
    select.appendChild(selectBox(item));
    row.appendChild(select);
    const level = el("td");
    level.appendChild(el("span", label("levels", item.level), "badge badge-" + item.level));
    row.appendChild(level);
    row.appendChild(el("td", formatAge(item.age_seconds)));
    row.appendChild(el("td", label("categories", item.category)));
    row.appendChild(el("td", label("statuses", item.status)));
    row.appendChild(el("td", label("channels", item.channel)));
    const raised = el("td");
    raised.appendChild(timeElement(item.created_at));
    row.appendChild(raised);
    const open = el("td");
    open.appendChild(escalationLink(item));
    row.appendChild(open);
    return row;
  }

  function selectableBoxes() {
    return Array.prototype.filter.call(
      $("escalation-rows").querySelectorAll("input.select-escalation"),
      function (box) { return !box.disabled; }
    );
  }

  function selectionChanged() {
    const count = state.selected.size;
    $("bulk-submit").textContent = "Resolve selected (" + count + ")";
    $("bulk-submit").disabled = count === 0;
    const boxes = selectableBoxes();
    const ticked = boxes.filter(function (box) { return box.checked; }).length;
    $("select-page").checked = boxes.length > 0 && ticked === boxes.length;
    $("select-page").indeterminate = ticked > 0 && ticked < boxes.length;
    $("select-page").disabled = boxes.length === 0;
  }

  function selectPage() {
    const on = $("select-page").checked;
    selectableBoxes().forEach(function (box) {
      box.checked = on;
      if (on) state.selected.add(box.value);
      else state.selected.delete(box.value);
    });
    selectionChanged();
  }

  function renderQueue(queue) {
    const levels = state.vocabulary.levels.map(function (term) {
      return (queue.open_by_level[term.value] || 0) + " " + term.label.toLowerCase();
    });
    $("queue-open").textContent = queue.open + " open" + (queue.open ? " (" + levels.join(", ") + ")" : "");
    $("queue-acknowledged").textContent = queue.acknowledged + " acknowledged, not yet resolved.";
    const oldest = $("queue-oldest");
    if (queue.oldest_open_at) {
      oldest.replaceChildren(
        "Oldest open escalation waiting " + formatAge(queue.oldest_open_wait_seconds) + ", raised ",
        timeElement(queue.oldest_open_at),
        "."
      );
    } else {
      oldest.textContent = "Nothing is waiting.";
    }
  }

  function summarise(data) {
    const which = data.status === "all" ? "" : label("statuses", data.status).toLowerCase() + " ";
    const filtered = data.filters.level || data.filters.category || data.filters.channel ? " matching the filters" : "";
    if (data.total === 0) return "No " + which + "escalations" + filtered + ".";
    return data.total + " " + which + (data.total === 1 ? "escalation" : "escalations") + filtered + ".";
  }

  function listPath() {
    const query = new URLSearchParams();
    query.set("status", $("status-filter").value);
    [["level", "level-filter"], ["category", "category-filter"], ["channel", "channel-filter"]].forEach(function (pair) {
      if ($(pair[1]).value) query.set(pair[0], $(pair[1]).value);
    });
    query.set("limit", String(state.vocabulary.limits.page_size));
    const cursor = state.cursors[state.pageIndex];
    if (cursor) query.set("cursor", cursor);
    return "/escalations?" + query.toString();
  }

  function firstPage() {
    state.cursors = [null];
    state.pageIndex = 0;
    state.selected.clear();
    state.lastSummary = "";
  }

  async function loadList() {
    // Filters changed quickly send several requests; only the latest may draw the list.
    const ticket = ++state.listRequests;
    let data;
    try {
      data = await api("GET", listPath());
    } catch (error) {
      if (ticket !== state.listRequests) return;
      if (handleAuthError(error)) return;
      if (error.status === 400 && state.pageIndex > 0) {
        // A page link from an older list: start again from the first page.
        firstPage();
        return loadList();
      }
      $("list-error").textContent = error.message;
      return;
    }
    if (ticket !== state.listRequests || $("list-view").hidden) return;
    $("list-error").textContent = "";
    renderQueue(data.queue);
    state.cursors[state.pageIndex + 1] = data.next_cursor;
    const shown = new Set(data.escalations.map(function (item) { return item.id; }));
    state.selected.forEach(function (id) {
      if (!shown.has(id)) state.selected.delete(id);
    });
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
    selectionChanged();
    const first = state.pageIndex * data.limit + 1;
    $("page-position").textContent = data.count
      ? "Showing " + first + "–" + (first + data.count - 1) + " of " + data.total
      : "";
    $("previous-page").disabled = state.pageIndex === 0;
    $("next-page").disabled = !data.next_cursor;
    const summary = summarise(data);
    // Only a change is announced, not every refresh.
    if (summary !== state.lastSummary) {
      $("list-summary").textContent = summary;
      state.lastSummary = summary;
    }
    // Levels come most severe first: the title counts the open ones of the first.
    const severest = state.vocabulary.levels[0];
    const waiting = severest ? data.queue.open_by_level[severest.value] || 0 : 0;
    document.title = (waiting ? "(" + waiting + " " + severest.label.toLowerCase() + ") " : "") +
      "Escalations - Clinician console";
    $("list-updated").textContent = "Updated " + new Date().toLocaleTimeString();
  }

  function changePage(step) {
    const target = state.pageIndex + step;
    if (target < 0 || (step > 0 && !state.cursors[target])) return;
    state.pageIndex = target;
    state.selected.clear();
    loadList();
  }

  async function bulkResolve(event) {
    event.preventDefault();
    const ids = Array.from(state.selected);
    const note = $("bulk-note").value.trim();
    $("bulk-status").textContent = "";
    $("bulk-error").textContent = "";
    if (!ids.length) {
      $("bulk-error").textContent = "Tick the escalations to resolve in the list first.";
      return;
    }
    if (!note) {
      $("bulk-error").textContent = "Please write a short note of what was done.";
      $("bulk-note").focus();
      return;
    }
    $("bulk-submit").disabled = true;
    try {
      const result = await api("POST", "/escalations/resolve", { ids: ids, note: note });
      const skipped = result.not_resolved.length;
      $("bulk-status").textContent =
        "Resolved " + result.resolved.length + (result.resolved.length === 1 ? " escalation." : " escalations.") +
        (skipped ? " " + skipped + " had been resolved already or no longer exist." : "");
      $("bulk-note").value = "";
      // What was resolved leaves the pages: start again from the first one.
      firstPage();
    } catch (error) {
      if (handleAuthError(error)) return;
      $("bulk-error").textContent = error.message;
    } finally {
      selectionChanged();
    }
    await loadList();
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
    addFact(facts, "Level", label("levels", item.level));
    addFact(facts, "Category", label("categories", item.category));
    addFact(facts, "Kind", label("kinds", item.kind));
    addFact(facts, "Status", label("statuses", item.status));
    addFact(facts, "Raised at", formatTime(item.created_at) + " (" + formatAge(item.age_seconds) + " ago)");
    addFact(facts, "Chat channel", label("channels", item.channel));
    addFact(facts, "Conversation id", item.conversation_id);
    if (item.contact) {
      addFact(facts, "How to contact them", label("contact_methods", item.contact.method) + ": " + item.contact.value);
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
      meta.appendChild(el("strong", label("senders", turn.sender)));
      if (turn.timestamp) {
        meta.appendChild(document.createTextNode(" "));
        meta.appendChild(timeElement(turn.timestamp));
      }
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
      item.appendChild(el("span", formatTime(event.at) + ": " + label("actions", event.action) + " by " + event.actor_name));
      if (event.note && event.action !== "created") {
        item.appendChild(el("p", event.note, "event-note"));
      }
      list.appendChild(item);
    });
  }

  function renderDetail(item) {
    state.escalation = item;
    $("detail-heading").textContent =
      label("levels", item.level) + ": " + label("categories", item.category);
    document.title = label("levels", item.level) + " escalation - Clinician console";
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
    $("note-count").textContent = used + " of " + $("resolve-note").maxLength + " characters used.";
  }

  // Start ------------------------------------------------------------------

  async function start() {
    $("login-form").addEventListener("submit", signIn);
    $("sign-out").addEventListener("click", signOut);
    ["status-filter", "level-filter", "category-filter", "channel-filter"].forEach(function (id) {
      $(id).addEventListener("change", function () {
        firstPage();
        loadList();
      });
    });
    $("refresh-list").addEventListener("click", loadList);
    $("previous-page").addEventListener("click", function () { changePage(-1); });
    $("next-page").addEventListener("click", function () { changePage(1); });
    $("select-page").addEventListener("change", selectPage);
    $("bulk-form").addEventListener("submit", bulkResolve);
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
      await loadVocabulary();
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
