// The demo page: it talks only to the demo's own backend (/demo/api/…),
// which holds the API key. Everything it shows is text (textContent), never
// markup built from data.
"use strict";

const POLL_MS = 1000;

const KINDS = {
  initialize: "Set PIN",
  recovery: "Set up recovery",
  update_pin: "Update PIN",
  reset_pin: "Reset PIN",
  export_private_keys: "Export private keys",
  create_wallets: "Create wallets",
};

const STATUS_TEXT = {
  starting: "starting",
  awaiting_user: "waiting for the user",
  completed: "completed",
  failed: "failed",
  expired: "expired",
  cancelled: "cancelled",
};

const $ = (id) => document.getElementById(id);

let customerId = new URL(location.href).searchParams.get("customer") || "";
let clockSkew = 0; // server time minus browser time, ms
let busy = false;
let lastNotice = null;

function el(tag, props, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}

function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

function fmtLeft(ms) {
  if (ms <= 0) return "now";
  const s = Math.ceil(ms / 1000);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  if (h > 0) return `${h} h ${m} min`;
  if (m > 0) return `${m} min ${r} s`;
  return `${r} s`;
}

function notice(kind, title, text) {
  const n = $("notice");
  n.replaceChildren(el("strong", { text: title }), text ? document.createTextNode(text) : "");
  n.className = "notice" + (kind === "error" ? " error" : "");
  n.setAttribute("role", kind === "error" ? "alert" : "status");
  n.dataset.kind = kind;
  n.hidden = false;
  lastNotice = { kind, title };
}

function clearNotice() {
  $("notice").hidden = true;
  lastNotice = null;
}

async function api(method, path, body) {
  const opts = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, opts);
  } catch (e) {
    return { status: 0, body: { error: { code: "network", message: "The demo's server did not answer; is dev still running?" } } };
  }
  let data = null;
  try {
    data = await resp.json();
  } catch (e) {
    data = { error: { code: "bad_response", message: "The demo's server sent something that is not JSON." } };
  }
  return { status: resp.status, body: data };
}

// explain turns an API error into a sentence for the person.
function explain(err) {
  if (!err) return "Something went wrong.";
  if (err.code === "export_on_hold" && err.availableAt) {
    return `The PIN was reset recently, so custodyflows holds private key exports. Export opens at ${fmtTime(err.availableAt)} (export_on_hold).`;
  }
  return `${err.message} (${err.code})`;
}

// ---- customer creation ----

async function createCustomer(ev) {
  ev.preventDefault();
  if (busy) return;
  busy = true;
  $("create").disabled = true;
  notice("info", "Creating the customer…", "");
  const r = await api("POST", "/demo/api/customers", { name: $("name").value });
  busy = false;
  $("create").disabled = false;
  if (r.status !== 201 && r.status !== 200) {
    notice("error", "The customer was not created.", explain(r.body && r.body.error));
    return;
  }
  customerId = r.body.id;
  const u = new URL(location.href);
  u.search = "?customer=" + encodeURIComponent(customerId);
  history.replaceState(null, "", u);
  notice("info", "Customer created.", "Start with Set PIN: the Gateway asks for a PIN and a recovery method.");
  showCustomerPanels(true);
  poll();
}

// ---- flows ----

async function startFlow(route) {
  if (busy || !customerId) return;
  const body = {};
  if (route === "wallets") {
    body.blockchains = [...document.querySelectorAll(".chains input:checked")].map((i) => i.value);
  }
  busy = true;
  setButtons(true);
  notice("info", "Starting the flow…", "custodyflows asks Planbok for a challenge, then this page sends you to the Gateway.");
  const r = await api("POST", `/demo/api/customers/${encodeURIComponent(customerId)}/flows/${route}`, body);
  if ((r.status === 201 || r.status === 200) && r.body && r.body.gatewayUrl) {
    notice("info", "Going to the Planbok Gateway…", "");
    location.assign(r.body.gatewayUrl);
    return;
  }
  busy = false;
  setButtons(false);
  notice("error", "The flow was not started.", explain(r.body && r.body.error));
}

async function cancelFlow(id) {
  const r = await api("POST", `/demo/api/flows/${encodeURIComponent(id)}/cancel`, {});
  if (r.status !== 200) notice("error", "The flow was not cancelled.", explain(r.body && r.body.error));
  else notice("info", "Flow cancelled.", "");
  poll();
}

function setButtons(disabled) {
  for (const b of document.querySelectorAll(".action button")) b.disabled = disabled;
}

// ---- rendering ----

function showCustomerPanels(show) {
  $("create-panel").hidden = show;
  for (const id of ["customer-panel", "flows-panel", "events-panel"]) $(id).hidden = !show;
}

function setField(name, node, cls) {
  const dd = document.querySelector(`[data-field="${name}"]`);
  dd.replaceChildren(node);
  dd.className = cls || "";
}

function yesNo(name, value, goodWhenTrue) {
  const good = goodWhenTrue ? value : !value;
  const text = name === "lockedOut" ? (value ? "Locked out" : "No") : value ? "Yes" : "No";
  setField(name, document.createTextNode(text), value ? (good ? "yes" : "bad") : good ? "yes" : "no");
  document.querySelector(`[data-field="${name}"]`).dataset.value = String(value);
}

function renderCustomer(c, serverNow) {
  $("customer-name").textContent = c.name;
  $("customer-id").textContent = c.id;
  $("customer-ref").textContent = c.refId;
  const s = c.security;
  yesNo("hasPin", s.hasPin, true);
  yesNo("hasRecovery", s.hasRecovery, true);
  yesNo("lockedOut", s.lockedOut, false);
  yesNo("canTransact", s.canTransact, true);
  for (const f of ["pinSetAt", "pinUpdatedAt", "recoverySetAt", "lastPinResetAt", "lastExportAt"]) {
    const t = el("time", { text: fmtTime(s[f]) });
    if (s[f]) t.dateTime = s[f];
    setField(f, t, s[f] ? "" : "no");
  }
  const hold = $("hold");
  if (s.exportAvailableAt) {
    const left = new Date(s.exportAvailableAt).getTime() - serverNow;
    const t = el("time", { text: fmtTime(s.exportAvailableAt) });
    t.dateTime = s.exportAvailableAt;
    setField("exportAvailableAt", t, "bad");
    hold.replaceChildren(
      el("strong", { text: "Private key export is on hold. " }),
      `The PIN was reset at ${fmtTime(s.lastPinResetAt)}, so keys cannot be exported until ${fmtTime(s.exportAvailableAt)} (${fmtLeft(left)} left). ` +
        "If the person did not reset it, this is the time to stop an account takeover.",
    );
    hold.dataset.availableAt = s.exportAvailableAt;
    hold.hidden = false;
  } else {
    setField("exportAvailableAt", document.createTextNode("No hold"), "yes");
    hold.hidden = true;
    delete hold.dataset.availableAt;
  }
}

function renderFlows(flows) {
  const rows = flows.map(({ flow: f, temporalUrl }) => {
    const kind = el("td", {}, el("span", { text: KINDS[f.kind] || f.kind }), el("span", { class: "sub", text: f.id }));
    const status = el("td", {}, el("span", { class: "badge " + f.status, text: STATUS_TEXT[f.status] || f.status }));
    if (f.error) status.append(el("span", { class: "sub", text: `${f.error.message} (${f.error.code})` }));
    const started = el("td", { text: fmtTime(f.createdAt) });
    const links = el("td", { class: "links-cell" });
    if (f.status === "awaiting_user" && f.gatewayUrl) links.append(el("a", { href: f.gatewayUrl, text: "Continue on the Gateway" }));
    if (temporalUrl) links.append(el("a", { href: temporalUrl, target: "_blank", rel: "noopener", text: "Temporal UI", class: "temporal" }));
    if (f.status === "awaiting_user" || f.status === "starting") {
      const b = el("button", { type: "button", class: "secondary", text: "Cancel" });
      b.addEventListener("click", () => cancelFlow(f.id));
      links.append(b);
    }
    return el("tr", { "data-flow-id": f.id, "data-kind": f.kind, "data-status": f.status }, kind, status, started, links);
  });
  $("flows").replaceChildren(...rows);
  $("no-flows").hidden = rows.length > 0;
}

function renderEvents(events, elsewhere) {
  if (elsewhere) {
    $("events-note").textContent = `Events go to ${elsewhere} (--notify-url), so this page does not see them.`;
  }
  const items = events.map((e) => {
    const li = el("li", { "data-type": e.type, "data-flow-id": e.flowId || "" });
    if (e.type === "customer.export_hold_started") li.className = "hold-event";
    li.append(el("span", { class: "type", text: e.type }), el("span", { class: "verified", text: "✓ signature verified" }));
    const parts = [`received ${fmtTime(e.receivedAt)}`];
    if (e.kind) parts.push(`${KINDS[e.kind] || e.kind} ${e.status || ""}`.trim());
    if (e.deliveries > 1) parts.push(`delivered ${e.deliveries}×`);
    li.append(el("span", { class: "detail", text: parts.join(" · ") }));
    const sec = e.security || {};
    if (sec.exportAvailableAt) {
      li.append(el("span", { class: "detail", text: `security.exportAvailableAt: ${fmtTime(sec.exportAvailableAt)}` }));
    }
    return li;
  });
  $("events").replaceChildren(...items);
  $("no-events").hidden = items.length > 0;
}

// ---- polling ----

let pollTimer = null;

async function poll() {
  clearTimeout(pollTimer);
  if (!customerId) return;
  if (document.hidden) {
    // Each read asks Planbok for the customer: none while nobody looks.
    pollTimer = setTimeout(poll, POLL_MS);
    return;
  }
  const r = await api("GET", `/demo/api/customers/${encodeURIComponent(customerId)}`);
  if (r.status === 200) {
    const st = r.body;
    clockSkew = new Date(st.serverTime).getTime() - Date.now();
    showCustomerPanels(true);
    renderCustomer(st.customer, Date.now() + clockSkew);
    renderFlows(st.flows);
    renderEvents(st.events, st.eventsElsewhere);
    const link = $("customer-temporal");
    link.hidden = !st.customerWorkflowUrl;
    if (st.customerWorkflowUrl) link.href = st.customerWorkflowUrl;
    if (lastNotice && lastNotice.kind === "error" && lastNotice.title === "The demo lost its connection.") clearNotice();
  } else if (r.status === 404) {
    customerId = "";
    showCustomerPanels(false);
    notice("error", "No such customer.", "Create a new one below.");
    return;
  } else {
    notice("error", "The demo lost its connection.", explain(r.body && r.body.error));
  }
  pollTimer = setTimeout(poll, POLL_MS);
}

// ---- start ----

function init() {
  $("create-form").addEventListener("submit", createCustomer);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) poll();
  });
  for (const b of document.querySelectorAll(".action button")) {
    b.addEventListener("click", () => startFlow(b.dataset.route));
  }
  const u = new URL(location.href);
  const back = u.searchParams.get("challengeId");
  if (back) {
    const status = u.searchParams.get("status") || "unknown";
    if (status === "verified") {
      notice("info", "Back from the Gateway: challenge verified.", " The flow completes as soon as custodyflows reads Planbok's answer (a webhook, or its own poll).");
    } else {
      notice("error", `Back from the Gateway: challenge ${status}.`, "");
    }
    u.searchParams.delete("challengeId");
    u.searchParams.delete("status");
    history.replaceState(null, "", u);
  }
  if (customerId) {
    showCustomerPanels(true);
    poll();
  } else {
    showCustomerPanels(false);
    $("name").focus();
  }
}

init();
