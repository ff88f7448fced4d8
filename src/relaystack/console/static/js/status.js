// Status: the server, each provider's health, the router's deployments and every model, read
// from GET /v1/health (which never calls an upstream) every two seconds while the page is shown.

import { features, getJson } from "./api.js";
import { $, ago, h, replaceChildren, showError } from "./dom.js";
import { loadModels, modelType } from "./models.js";

const REFRESH_MS = 2000;
let timer = null;
let inFlight = false;
let providerTypes = new Map(); // provider_id -> provider_type (read once: it never changes)
let models = [];

const OUTCOME = { ok: "ok", degraded: "warn", unreachable: "bad", unknown: "idle" };
const LOCAL_STATE = { ready: "ok", loading: "warn", not_loaded: "idle" };
const DEPLOYMENT_STATE = { healthy: "ok", half_open: "warn", cooling_down: "bad" };

export function init() {
  $("#status-live").addEventListener("change", (event) => {
    if (event.target.checked && timer !== null) refresh(); // back to live: catch up at once
  });
  $("#models-filter").addEventListener("input", renderModels);
  document.addEventListener("visibilitychange", () => {
    if (timer !== null && document.visibilityState === "visible") refresh();
  });
}

export function show() {
  refresh({ full: true });
  schedule();
}

export function hide() {
  clearInterval(timer);
  timer = null;
}

export function reset() {
  providerTypes = new Map();
  models = [];
  $("#providers-table tbody").replaceChildren();
  $("#models-table tbody").replaceChildren();
  $("#status-summary").replaceChildren();
}

function schedule() {
  clearInterval(timer);
  timer = setInterval(() => {
    if ($("#status-live").checked && document.visibilityState === "visible") refresh();
  }, REFRESH_MS);
}

async function refresh({ full = false } = {}) {
  if (inFlight) return;
  inFlight = true;
  try {
    if (full || !providerTypes.size) {
      const providers = await getJson("/v1/providers");
      providerTypes = new Map(providers.data.map((p) => [p.provider_id, p.provider_type]));
    }
    const [health, served] = await Promise.all([getJson("/v1/health"), loadModels({ force: full })]);
    models = served;
    renderSummary(health);
    renderProviders(health);
    renderDeployments(health.deployments || {});
    renderModels();
    $("#status-updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    showError($("#banner"), null);
  } catch (error) {
    showError($("#banner"), new Error(`Status could not be read: ${error.message}`));
  } finally {
    inFlight = false;
  }
}

function badge(kind, text) {
  return h("span", { class: `badge ${kind}` }, text);
}

function card(key, value, sub, kind) {
  return h("div", { class: "card" },
    h("div", { class: "k" }, key),
    h("div", { class: "v" }, kind ? badge(kind, value) : value),
    sub ? h("div", { class: "s" }, sub) : null);
}

function renderSummary(health) {
  const llm = models.filter((m) => modelType(m) === "llm").length;
  const recording = health.recording || {};
  const cards = [
    card("Server", health.ready ? "ready" : "not ready", `relaystack ${features.version}`, health.ready ? "ok" : "warn"),
    card("Models", String(models.length), `${llm} chat, ${models.length - llm} other`),
    card("Recording", recording.mode || "live", recording.dir || "upstream traffic goes live",
      recording.mode && recording.mode !== "live" ? "warn" : "idle"),
  ];
  for (const name of ["store", "state"]) {
    const backend = health[name];
    if (!backend) continue;
    const ok = backend.status === "OK";
    cards.push(card(name === "store" ? "Store" : "Shared state", backend.backend || "?",
      ok ? "connected" : backend.error || backend.status, ok ? "ok" : "bad"));
  }
  cards.push(card("Auth", features.auth ? "on" : "off", features.auth ? "virtual keys" : "anyone who can reach it",
    features.auth ? "ok" : "idle"));
  if (features.workers > 1) cards.push(card("Workers", String(features.workers), "processes"));
  replaceChildren($("#status-summary"), cards);
}

function eventText(event, what) {
  if (!event) return h("span", { class: "muted" }, "none yet");
  const parts = [];
  if (event.status !== undefined) parts.push(`HTTP ${event.status}`);
  if (event.models !== undefined) parts.push(`${event.models} ${event.models === 1 ? "model" : "models"}`);
  if (event.error) parts.push(event.error);
  return [
    badge(OUTCOME[event.state] || "idle", event.state),
    h("span", { class: "sub" }, `${parts.join(" · ") || what} · ${ago(event.at)}`),
  ];
}

function localModel(provider) {
  if (provider.state === undefined) return h("span", { class: "muted" }, "remote");
  const failed = provider.state.startsWith("failed");
  const kind = failed ? "bad" : LOCAL_STATE[provider.state] || "idle";
  const queue = provider.queue !== undefined ? `queue ${provider.queue}` : null;
  return [badge(kind, failed ? "failed" : provider.state.replace("_", " ")),
    h("span", { class: "sub" }, failed ? provider.state.slice(8) : queue)];
}

function renderProviders(health) {
  const rows = Object.entries(health.providers || {}).map(([id, provider]) => h("tr", { "data-provider": id },
    h("td", {}, h("strong", {}, id), h("span", { class: "sub" }, providerTypes.get(id) || "")),
    h("td", { "data-outcome": provider.outcome }, badge(OUTCOME[provider.outcome] || "idle", provider.outcome)),
    h("td", {}, eventText(provider.last_request, "request")),
    h("td", {}, eventText(provider.last_discovery, "discovery")),
    h("td", {}, localModel(provider))));
  if (!rows.length) rows.push(h("tr", {}, h("td", { colspan: 5, class: "empty-row" }, "No providers configured.")));
  replaceChildren($("#providers-table tbody"), rows);
}

function renderDeployments(deployments) {
  const entries = Object.entries(deployments);
  const box = $("#deployments");
  if (!entries.length) {
    replaceChildren(box, h("p", { class: "muted" },
      "No model has several deployments with cooldowns (", h("code", {}, "deployments:"), " and ",
      h("code", {}, "routing:"), " in run.yaml)."));
    return;
  }
  replaceChildren(box, entries.map(([model, targets]) => h("div", { class: "deployment-model" },
    h("h3", {}, model),
    h("div", { class: "table-wrap" }, h("table", { class: "data compact" },
      h("thead", {}, h("tr", {}, ["Deployment", "Provider", "State", "In flight", "Counts"].map(
        (name) => h("th", { scope: "col" }, name)))),
      h("tbody", {}, Object.entries(targets).map(([name, d]) => h("tr", { "data-deployment": name },
        h("td", {}, name, h("span", { class: "sub" }, d.provider_model_id || "")),
        h("td", {}, d.provider_id),
        h("td", { "data-state": d.state }, badge(DEPLOYMENT_STATE[d.state] || "idle", d.state.replace("_", " ")),
          d.until ? h("span", { class: "sub" }, `until ${new Date(d.until).toLocaleTimeString()} (${ago(d.until)})`) : null),
        h("td", { class: "num" }, String(d.outstanding ?? 0)),
        h("td", {}, Object.entries(d.counts || {}).map(([k, v]) => `${k} ${v}`).join(" · ") || "–")))))))));
}

function renderModels() {
  const filter = $("#models-filter").value.trim().toLowerCase();
  const shown = models.filter((m) => !filter || m.id.toLowerCase().includes(filter)
    || (m.provider_id || "").toLowerCase().includes(filter));
  const rows = shown.map((m) => {
    const meta = m.metadata || {};
    const details = [];
    if (meta.context_length) details.push(`context ${meta.context_length}`);
    if (meta.embedding_dimension) details.push(`${meta.embedding_dimension} dimensions`);
    return h("tr", {},
      h("td", { class: "id" }, m.id),
      h("td", {}, modelType(m)),
      h("td", {}, m.provider_id || m.owned_by || ""),
      h("td", { class: "id" }, m.provider_resource_id || ""),
      h("td", {}, details.join(", ") || "–"));
  });
  if (!rows.length) rows.push(h("tr", {}, h("td", { colspan: 5, class: "empty-row" }, filter ? "No model matches." : "No models.")));
  replaceChildren($("#models-table tbody"), rows);
}
