/*
 * Chat widget of the MDMA-assisted therapy assistant. A clinic embeds it with
 *   <script src="https://ASSISTANT-HOST/widget/chat-widget.js" defer></script>
 * It loads its style, its settings (config.json) and the Socket.IO client from
 * the same place as this script: no CDN, no build step.
 *
 * Safety and privacy choices:
 * - Bot and user text is only ever set with textContent; links are made from
 *   http(s) URLs found in the text, never from markup.
 * - The crisis line is in the panel header, always visible while it is open.
 * - The conversation (session id and messages) is kept in sessionStorage: it
 *   survives a reload, and is gone when the tab is closed, so the next person
 *   on a shared computer does not see it. "Clear" removes it at any time.
 */
(function () {
  "use strict";

  if (window.__mdmaChatWidget) {
    return;
  }
  window.__mdmaChatWidget = true;

  var script = document.currentScript;
  var baseUrl = new URL(".", script ? script.src : window.location.href);
  var STORAGE_KEY = "mdma-chat";
  var MAX_STORED_MESSAGES = 200;
  var MAX_MESSAGE_CHARS = 20000;
  var NARROW = window.matchMedia("(max-width: 600px)");
  var URL_PATTERN = /\bhttps?:\/\/[^\s<>"'`]+/gi;
  var TRAILING_PUNCTUATION = /[.,;:!?)\]}'"]+$/;

  var TEXT = {
    launcher: "Chat with our assistant",
    title: "Ask about MDMA-assisted therapy",
    close: "Close chat",
    clear: "Clear",
    clearLabel: "Clear this conversation from this device",
    inputLabel: "Your message",
    placeholder: "Type your question",
    send: "Send",
    you: "You said:",
    assistant: "Assistant said:",
    suggestions: "Suggested replies",
    disclaimer:
      "I'm an automated assistant, not a clinician or a person. I share general, " +
      "reviewed information about MDMA-assisted therapy for PTSD. This is education, " +
      "not medical advice, and I can't diagnose or advise on your own treatment. " +
      "If you tell me you may be at risk, I alert the clinic's care team.",
    emergencyPrefix: "In an emergency, call ",
    emergencyFallback: "In an emergency, call your local emergency number.",
    connecting: "Connecting to the assistant…",
    unreachable:
      "The assistant can't be reached right now. It will keep trying. If you need help now, use the numbers above.",
    tooLong: "That message is too long. Please shorten it to fewer than 20,000 characters.",
    cleared: "The conversation was cleared from this device.",
  };

  // ---- State kept across reloads (sessionStorage) -------------------------------------

  function loadState() {
    var empty = { sessionId: null, open: false, messages: [] };
    try {
      var stored = JSON.parse(window.sessionStorage.getItem(STORAGE_KEY) || "null");
      if (stored && Array.isArray(stored.messages)) {
        return {
          sessionId: typeof stored.sessionId === "string" ? stored.sessionId : null,
          open: stored.open === true,
          messages: stored.messages.filter(isStoredMessage),
        };
      }
    } catch (error) {
      // Storage can be switched off or full; the chat still works for this page view.
    }
    return empty;
  }

  function isStoredMessage(message) {
    return (
      message &&
      (message.from === "user" || message.from === "bot") &&
      typeof message.text === "string" &&
      (message.replies === undefined || Array.isArray(message.replies))
    );
  }

  var state = loadState();

  function saveState() {
    state.messages = state.messages.slice(-MAX_STORED_MESSAGES);
    try {
      window.sessionStorage.setItem(STORAGE_KEY, JSON.stringify(state));
    } catch (error) {
      // See loadState.
    }
  }

  // ---- DOM helpers: text only, never markup ------------------------------------------

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined) {
      node.textContent = text;
    }
    return node;
  }

  function safeHref(candidate) {
    try {
      var url = new URL(candidate);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (error) {
      return null;
    }
  }

  /** Appends `text` to `parent`, turning http(s) URLs into links; everything else is a text node. */
  function appendLinkified(parent, text) {
    var position = 0;
    var match;
    URL_PATTERN.lastIndex = 0;
    while ((match = URL_PATTERN.exec(text)) !== null) {
      var candidate = match[0].replace(TRAILING_PUNCTUATION, "");
      var href = safeHref(candidate);
      if (href) {
        if (match.index > position) {
          parent.appendChild(document.createTextNode(text.slice(position, match.index)));
        }
        var link = el("a", "mdma-chat__link", candidate);
        link.href = href;
        link.target = "_blank";
        link.rel = "noopener noreferrer nofollow";
        parent.appendChild(link);
        position = match.index + candidate.length;
      }
      URL_PATTERN.lastIndex = match.index + Math.max(candidate.length, 1);
    }
    if (position < text.length) {
      parent.appendChild(document.createTextNode(text.slice(position)));
    }
  }

  function telHref(number) {
    var digits = String(number).replace(/[^0-9+]/g, "");
    return digits ? "tel:" + digits : null;
  }

  // ---- Build the widget (inside a shadow root, so the clinic's CSS and ours don't mix) ---

  var host = el("div", "mdma-chat-host");
  host.setAttribute("data-mdma-chat", "");
  var root = host.attachShadow({ mode: "open" });

  var style = el("link");
  style.rel = "stylesheet";
  style.href = new URL("chat-widget.css", baseUrl).href;
  root.appendChild(style);

  var launcher = el("button", "mdma-chat__launcher", TEXT.launcher);
  launcher.type = "button";
  launcher.setAttribute("aria-expanded", "false");
  launcher.setAttribute("aria-controls", "mdma-chat-panel");

  var panel = el("section", "mdma-chat__panel");
  panel.id = "mdma-chat-panel";
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-labelledby", "mdma-chat-title");
  panel.hidden = true;

  var header = el("header", "mdma-chat__header");
  var titleRow = el("div", "mdma-chat__title-row");
  var title = el("h2", "mdma-chat__title", TEXT.title);
  title.id = "mdma-chat-title";
  var clearButton = el("button", "mdma-chat__clear", TEXT.clear);
  clearButton.type = "button";
  clearButton.setAttribute("aria-label", TEXT.clearLabel);
  var closeButton = el("button", "mdma-chat__close");
  closeButton.type = "button";
  closeButton.setAttribute("aria-label", TEXT.close);
  closeButton.appendChild(el("span", "mdma-chat__close-icon", "×")).setAttribute("aria-hidden", "true");
  titleRow.append(title, clearButton, closeButton);

  var crisis = el("p", "mdma-chat__crisis", TEXT.emergencyFallback);
  crisis.setAttribute("data-crisis-line", "");
  header.append(titleRow, crisis);

  var body = el("div", "mdma-chat__body");
  var disclaimer = el("p", "mdma-chat__disclaimer", TEXT.disclaimer);
  disclaimer.setAttribute("role", "note");
  var log = el("ol", "mdma-chat__log");
  log.setAttribute("role", "log");
  log.setAttribute("aria-live", "polite");
  log.setAttribute("aria-label", "Conversation");
  body.append(disclaimer, log);

  var status = el("p", "mdma-chat__status");
  status.setAttribute("role", "status");

  var form = el("form", "mdma-chat__form");
  var label = el("label", "mdma-chat__visually-hidden", TEXT.inputLabel);
  label.htmlFor = "mdma-chat-input";
  var input = el("textarea", "mdma-chat__input");
  input.id = "mdma-chat-input";
  input.rows = 2;
  input.maxLength = MAX_MESSAGE_CHARS;
  input.placeholder = TEXT.placeholder;
  input.autocomplete = "off";
  var sendButton = el("button", "mdma-chat__send", TEXT.send);
  sendButton.type = "submit";
  form.append(label, input, sendButton);

  panel.append(header, body, status, form);
  root.append(launcher, panel);

  function showCrisisLine(resources) {
    crisis.textContent = "";
    var strong = el("strong", null, TEXT.emergencyPrefix);
    var href = telHref(resources.emergency_number);
    var number = el(href ? "a" : "span", "mdma-chat__tel", String(resources.emergency_number));
    if (href) {
      number.href = href;
    }
    strong.append(number, ".");
    crisis.append(strong, " If you are thinking about suicide or hurting yourself, " + resources.crisis_line + ".");
  }

  // ---- Messages -------------------------------------------------------------------------

  function removeQuickReplies() {
    var groups = log.querySelectorAll(".mdma-chat__replies");
    for (var i = 0; i < groups.length; i++) {
      groups[i].remove();
    }
  }

  function renderMessage(message, withReplies) {
    var item = el("li", "mdma-chat__message mdma-chat__message--" + message.from);
    item.appendChild(el("span", "mdma-chat__visually-hidden", message.from === "user" ? TEXT.you : TEXT.assistant));
    var bubble = el("p", "mdma-chat__bubble");
    appendLinkified(bubble, message.text);
    item.appendChild(bubble);
    if (withReplies && message.replies && message.replies.length) {
      var group = el("div", "mdma-chat__replies");
      group.setAttribute("role", "group");
      group.setAttribute("aria-label", TEXT.suggestions);
      message.replies.forEach(function (reply) {
        var button = el("button", "mdma-chat__reply", reply.title);
        button.type = "button";
        button.addEventListener("click", function () {
          send(reply.payload, reply.title);
        });
        group.appendChild(button);
      });
      item.appendChild(group);
    }
    log.appendChild(item);
    body.scrollTop = body.scrollHeight;
  }

  function addMessage(message) {
    if (message.from === "user" || (message.replies && message.replies.length)) {
      removeQuickReplies();
    }
    state.messages.push(message);
    saveState();
    renderMessage(message, true);
  }

  function repliesOf(payload) {
    var buttons = payload.quick_replies || payload.buttons || [];
    if (!Array.isArray(buttons)) {
      return [];
    }
    return buttons
      .filter(function (button) {
        return button && typeof button.title === "string" && typeof button.payload === "string";
      })
      .map(function (button) {
        return { title: button.title, payload: button.payload };
      });
  }

  function receive(payload) {
    if (!payload || typeof payload !== "object") {
      return;
    }
    var text = typeof payload.text === "string" ? payload.text : "";
    var attachment = payload.attachment;
    if (!text && attachment && attachment.payload && typeof attachment.payload.src === "string") {
      text = attachment.payload.src;
    }
    var replies = repliesOf(payload);
    if (!text && !replies.length) {
      return;
    }
    setStatus("");
    addMessage({ from: "bot", text: text, replies: replies });
  }

  function restore() {
    var last = state.messages.length - 1;
    state.messages.forEach(function (message, index) {
      renderMessage(message, index === last);
    });
  }

  // ---- Connection -----------------------------------------------------------------------

  var settingsPromise = null;
  var socket = null;
  var confirmed = false;
  var outbox = [];

  function loadSettings() {
    if (!settingsPromise) {
      settingsPromise = fetch(new URL("config.json", baseUrl).href, { credentials: "omit", mode: "cors" })
        .then(function (response) {
          if (!response.ok) {
            throw new Error("config " + response.status);
          }
          return response.json();
        })
        .then(function (settings) {
          if (settings && settings.crisis) {
            showCrisisLine(settings.crisis);
          }
          return settings;
        });
      settingsPromise.catch(function () {
        settingsPromise = null;
      });
    }
    return settingsPromise;
  }

  function loadSocketClient() {
    if (window.io) {
      return Promise.resolve(window.io);
    }
    return new Promise(function (resolve, reject) {
      var tag = document.createElement("script");
      tag.src = new URL("socket.io.min.js", baseUrl).href;
      tag.async = true;
      tag.onload = function () {
        return window.io ? resolve(window.io) : reject(new Error("no io"));
      };
      tag.onerror = function () {
        tag.remove();
        reject(new Error("socket.io client did not load"));
      };
      document.head.appendChild(tag);
    });
  }

  function setStatus(text) {
    status.textContent = text;
  }

  function requestSession() {
    confirmed = false;
    socket.emit("session_request", { session_id: state.sessionId });
  }

  function connect() {
    if (socket) {
      return;
    }
    setStatus(TEXT.connecting);
    Promise.all([loadSettings(), loadSocketClient()])
      .then(function (results) {
        var settings = results[0];
        var io = results[1];
        if (socket) {
          return;
        }
        socket = io(settings.socket_url, {
          path: settings.socket_path || "/socket.io",
          transports: ["websocket", "polling"],
        });
        socket.on("connect", function () {
          requestSession();
        });
        socket.on("session_confirm", function (sessionId) {
          if (typeof sessionId !== "string") {
            return;
          }
          state.sessionId = sessionId;
          saveState();
          confirmed = true;
          setStatus("");
          while (outbox.length) {
            emitMessage(outbox.shift());
          }
        });
        socket.on("bot_uttered", receive);
        socket.on("chat_error", function (error) {
          setStatus(error && typeof error.message === "string" ? error.message : TEXT.unreachable);
        });
        socket.on("connect_error", function () {
          setStatus(TEXT.unreachable);
        });
        socket.on("disconnect", function () {
          confirmed = false;
        });
      })
      .catch(function () {
        setStatus(TEXT.unreachable);
      });
  }

  function emitMessage(payload) {
    socket.emit("user_uttered", { message: payload, session_id: state.sessionId });
  }

  function send(payload, shownText) {
    if (payload.length > MAX_MESSAGE_CHARS) {
      setStatus(TEXT.tooLong);
      return;
    }
    addMessage({ from: "user", text: shownText });
    if (socket && confirmed) {
      emitMessage(payload);
    } else {
      outbox.push(payload);
      connect();
    }
  }

  function clearConversation() {
    log.textContent = "";
    outbox = [];
    state.messages = [];
    state.sessionId = null;
    saveState();
    if (socket && socket.connected) {
      requestSession();
    }
    setStatus(TEXT.cleared);
    input.focus();
  }

  // ---- Opening, closing and the keyboard ------------------------------------------------

  function openPanel(moveFocus) {
    panel.hidden = false;
    launcher.hidden = true;
    launcher.setAttribute("aria-expanded", "true");
    state.open = true;
    saveState();
    connect();
    body.scrollTop = body.scrollHeight;
    if (moveFocus) {
      input.focus();
    }
  }

  function closePanel() {
    panel.hidden = true;
    launcher.hidden = false;
    launcher.setAttribute("aria-expanded", "false");
    state.open = false;
    saveState();
    launcher.focus();
  }

  function focusableInPanel() {
    return Array.prototype.filter.call(
      panel.querySelectorAll("button, a[href], textarea, [tabindex]:not([tabindex='-1'])"),
      function (node) {
        return !node.disabled && node.getClientRects().length > 0;
      }
    );
  }

  launcher.addEventListener("click", function () {
    openPanel(true);
  });
  closeButton.addEventListener("click", closePanel);
  clearButton.addEventListener("click", clearConversation);

  panel.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      event.preventDefault();
      closePanel();
      return;
    }
    // Full screen on a phone, the panel behaves as a modal: Tab stays inside it.
    if (event.key === "Tab" && NARROW.matches) {
      var focusable = focusableInPanel();
      if (!focusable.length) {
        return;
      }
      var first = focusable[0];
      var last = focusable[focusable.length - 1];
      var active = root.activeElement;
      if (event.shiftKey && active === first) {
        event.preventDefault();
        last.focus();
      } else if (!event.shiftKey && active === last) {
        event.preventDefault();
        first.focus();
      }
    }
  });

  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text) {
      return;
    }
    input.value = "";
    send(text, text);
  });

  function updateModal() {
    panel.setAttribute("aria-modal", NARROW.matches ? "true" : "false");
  }
  updateModal();
  NARROW.addEventListener("change", updateModal);

  // ---- Start ----------------------------------------------------------------------------

  function mount() {
    document.body.appendChild(host);
    restore();
    loadSettings().catch(function () {
      // The fallback crisis text stays; connect() reports the problem when the chat opens.
    });
    if (state.open) {
      // Reopened after a reload: show the conversation but leave focus where the browser put it.
      openPanel(false);
    }
  }

  if (document.body) {
    mount();
  } else {
    document.addEventListener("DOMContentLoaded", mount);
  }
})();
