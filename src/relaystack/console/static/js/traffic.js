// Traffic: request rate, latency and errors (GET /console/api/stats), the stored chat completions
// and responses (searchable by model and time, each opening its full conversation), and usage
// and spend per key, model and day when accounting is on (GET /v1/admin/usage).

import { features, getJson } from "./api.js";
import { bars, lines } from "./charts.js";
import { $, contentText, h, ms, num, replaceChildren, showError, truncate, usd, when } from "./dom.js";
import { fillSelect, loadModels, modelType } from "./models.js";
import { outputText } from "./playground.js";

const REFRESH_MS = 5000;
const PAGE_LIMIT = 100; // the API's largest page
const ROWS_PER_SEARCH = 25;
const PAGES_PER_SEARCH = 10;
let timer = null;
let search = null; // {kind, model, from, to, cursor, hasMore}
let lastStats = null;

export function init() {
  $("#stats-window").addEventListener("change", refreshStats);
  let resizing = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => lastStats && !$("#page-traffic").hidden && drawStats(lastStats), 150);
  });
  $("#stored-form").addEventListener("submit", (event) => {
    event.preventDefault();
    startSearch();
  });
  $("#stored-kind").addEventListener("change", startSearch);
  $("#stored-model").addEventListener("change", startSearch);
  $("#stored-more").addEventListener("click", () => loadStored());
  $("#conversation-close").addEventListener("click", () => $("#conversation").close());
  $("#conversation").addEventListener("click", (event) => {
    if (event.target === event.currentTarget) event.currentTarget.close(); // a click on the backdrop
  });
  $("#usage-on").hidden = !features.usage;
  $("#usage-off").hidden = features.usage;
  if (features.usage) {
    const today = new Date().toISOString().slice(0, 10);
    $("#usage-start").value = `${today.slice(0, 8)}01`;
    $("#usage-end").value = today;
    $("#usage-form").addEventListener("submit", (event) => {
      event.preventDefault();
      loadUsage();
    });
  }
}

export async function show() {
  refreshStats();
  clearInterval(timer);
  timer = setInterval(() => {
    if (document.visibilityState === "visible") refreshStats();
  }, REFRESH_MS);
  try {
    const models = await loadModels();
    fillSelect($("#stored-model"), models.filter((m) => modelType(m) === "llm"), { empty: "Any model" });
  } catch (error) {
    showError($("#stored-error"), error);
  }
  startSearch(); // the newest first, every time the page is shown
  if (features.usage) loadUsage();
}

export function hide() {
  clearInterval(timer);
  timer = null;
}

export function reset() {
  search = null;
  $("#stored-table tbody").replaceChildren();
  $("#usage-table tbody").replaceChildren();
}

// -- charts ----------------------------------------------------------------------------------

async function refreshStats() {
  let stats;
  try {
    stats = await getJson(`/console/api/stats?window=${$("#stats-window").value}`);
  } catch (error) {
    showError($("#banner"), new Error(`Traffic stats could not be read: ${error.message}`));
    return;
  }
  lastStats = stats;
  drawStats(stats);
  showError($("#banner"), null);
}

function drawStats(stats) {
  const perMinute = 60 / stats.bucket_s;
  const times = stats.buckets.map((b) => b.start);
  const total = stats.total;
  const minutes = Math.round(stats.window_s / 60);
  const empty = total.requests === 0;
  bars($("#chart-rate"), {
    empty,
    times,
    series: [{ label: "requests", cls: "s1", values: stats.buckets.map((b) => b.requests * perMinute) }],
    label: `${total.requests} requests in the last ${minutes} minutes`,
  });
  lines($("#chart-latency"), {
    times,
    empty,
    series: [
      { label: "p50", cls: "s1", values: stats.buckets.map((b) => b.p50_ms) },
      { label: "p95", cls: "s2", values: stats.buckets.map((b) => b.p95_ms) },
    ],
    yFormat: (v) => (v >= 1000 ? `${(v / 1000).toFixed(v >= 10000 ? 0 : 1)}s` : String(Math.round(v))),
    label: `Latency over the last ${minutes} minutes: p50 ${ms(total.p50_ms)}, p95 ${ms(total.p95_ms)}`,
  });
  bars($("#chart-errors"), {
    times,
    empty,
    series: [
      { label: "5xx", cls: "s2", values: stats.buckets.map((b) => b.server_errors * perMinute) },
      { label: "4xx", cls: "s3", values: stats.buckets.map((b) => b.client_errors * perMinute) },
      { label: "cancelled", cls: "s4", values: stats.buckets.map((b) => b.cancelled * perMinute) },
    ],
    label: `${total.server_errors} server errors, ${total.client_errors} client errors and ${total.cancelled} cancelled requests in the last ${minutes} minutes`,
  });
  const rate = total.requests ? (100 * total.server_errors) / total.requests : 0;
  const scope = stats.workers > 1
    ? ` Worker ${stats.pid} of ${stats.workers}: each worker counts its own requests (GET /metrics sums them).`
    : "";
  const requests = `${num(total.requests)} inference ${total.requests === 1 ? "request" : "requests"}`;
  $("#stats-note").textContent = `${requests} in the last ${minutes} minutes, `
    + `${rate.toFixed(1)}% server errors, ${num(total.cancelled)} cancelled, p50 ${ms(total.p50_ms)}, `
    + `p95 ${ms(total.p95_ms)}, ${num(total.tokens)} tokens.${scope}`;
  const rows = stats.models.map((m) => h("tr", {},
    h("td", { class: "id" }, m.model),
    h("td", { class: "num" }, num(m.requests)),
    h("td", { class: "num" }, num(m.errors)),
    h("td", { class: "num" }, ms(m.mean_ms)),
    h("td", { class: "num" }, num(m.tokens))));
  if (!rows.length) rows.push(h("tr", {}, h("td", { colspan: 5, class: "empty-row" }, "No inference requests yet.")));
  replaceChildren($("#stats-models tbody"), rows);
}

// -- stored conversations --------------------------------------------------------------------

function epoch(input) {
  return input.value ? new Date(input.value).getTime() / 1000 : null;
}

function startSearch() {
  search = {
    kind: $("#stored-kind").value,
    model: $("#stored-model").value,
    from: epoch($("#stored-from")),
    to: epoch($("#stored-to")),
    cursor: null,
    hasMore: true,
  };
  $("#stored-table tbody").replaceChildren();
  loadStored();
}

async function loadStored() {
  const state = search;
  const base = state.kind === "chat" ? "/v1/chat/completions" : "/v1/responses";
  const tbody = $("#stored-table tbody");
  showError($("#stored-error"), null);
  $("#stored-more").hidden = true;
  $("#stored-status").textContent = "Loading…";
  let found = 0;
  try {
    for (let page = 0; page < PAGES_PER_SEARCH && found < ROWS_PER_SEARCH && state.hasMore; page += 1) {
      const params = new URLSearchParams({ limit: String(PAGE_LIMIT), order: "desc" });
      if (state.model) params.set("model", state.model);
      if (state.cursor) params.set("after", state.cursor);
      const body = await getJson(`${base}?${params}`);
      if (search !== state) return; // a newer search started meanwhile
      state.hasMore = body.has_more;
      if (body.last_id) state.cursor = body.last_id;
      for (const item of body.data) {
        const created = state.kind === "chat" ? item.created : item.created_at;
        if (state.to !== null && created > state.to) continue;
        if (state.from !== null && created < state.from) {
          state.hasMore = false; // newest first: everything after this is older still
          break;
        }
        tbody.append(state.kind === "chat" ? chatRow(item) : responseRow(item));
        found += 1;
      }
    }
  } catch (error) {
    showError($("#stored-error"), error);
  }
  const shown = tbody.children.length;
  $("#stored-status").textContent = shown
    ? `${shown} shown${state.hasMore ? "; more match" : ""}.`
    : "Nothing stored matches (conversations are stored unless a request says store: false).";
  $("#stored-more").hidden = !state.hasMore;
}

function openButton(id, created, kind) {
  return h("button", { type: "button", class: "row-open", "data-open": id,
    "aria-label": `Open ${kind === "chat" ? "chat completion" : "response"} ${id}`,
    onclick: () => openConversation(kind, id) }, when(created));
}

function chatRow(item) {
  const inputs = item.input_messages || [];
  const lastUser = [...inputs].reverse().find((m) => m.role === "user");
  const choice = (item.choices || [])[0] || {};
  const answer = choice.message ? contentText(choice.message.content) : "";
  return h("tr", { "data-id": item.id },
    h("td", {}, openButton(item.id, item.created, "chat")),
    h("td", { class: "id" }, item.model),
    h("td", { class: "preview" }, truncate(lastUser ? contentText(lastUser.content) : "", 90),
      h("span", { class: "sub" }, `→ ${truncate(answer, 90)}`)),
    h("td", { class: "num" }, item.usage ? num(item.usage.total_tokens) : "–"),
    h("td", {}, choice.finish_reason || "–"));
}

function responseRow(item) {
  return h("tr", { "data-id": item.id },
    h("td", {}, openButton(item.id, item.created_at, "responses")),
    h("td", { class: "id" }, item.model),
    h("td", { class: "preview" }, item.instructions ? truncate(item.instructions, 90) : h("span", { class: "muted" }, "(input: open to see)"),
      h("span", { class: "sub" }, `→ ${truncate(outputText(item), 90)}`)),
    h("td", { class: "num" }, item.usage ? num(item.usage.total_tokens) : "–"),
    h("td", {}, item.status || "–"));
}

function messageNode(role, text, extra) {
  return h("li", { class: `message ${role}` }, h("span", { class: "role" }, role),
    h("p", { class: "text" }, text), extra ? h("pre", {}, extra) : null);
}

async function openConversation(kind, id) {
  const dialog = $("#conversation");
  const body = $("#conversation-body");
  replaceChildren(body, h("li", { class: "muted" }, "Loading…"));
  $("#conversation-title").textContent = kind === "chat" ? "Chat completion" : "Response";
  $("#conversation-meta").textContent = id;
  $("#conversation-raw").textContent = "";
  if (!dialog.open) dialog.showModal();
  try {
    if (kind === "chat") await showChat(id);
    else await showResponse(id);
  } catch (error) {
    replaceChildren(body, h("li", { class: "error" }, error.message));
  }
}

async function showChat(id) {
  const item = await getJson(`/v1/chat/completions/${encodeURIComponent(id)}`);
  const nodes = (item.input_messages || []).map((m) => messageNode(m.role, contentText(m.content),
    m.tool_calls ? JSON.stringify(m.tool_calls, null, 2) : null));
  for (const choice of item.choices || []) {
    const message = choice.message || {};
    nodes.push(messageNode(message.role || "assistant", contentText(message.content),
      message.tool_calls ? JSON.stringify(message.tool_calls, null, 2) : null));
  }
  replaceChildren($("#conversation-body"), nodes);
  const usage = item.usage ? ` · ${num(item.usage.prompt_tokens)} + ${num(item.usage.completion_tokens)} tokens` : "";
  const finish = item.choices && item.choices[0] ? ` · finish: ${item.choices[0].finish_reason}` : "";
  $("#conversation-meta").textContent = `${id} · ${item.model} · ${when(item.created)}${usage}${finish}`;
  $("#conversation-raw").textContent = JSON.stringify(item, null, 2);
}

function itemNode(item) {
  if (item.type === "message" || (item.role && item.type === undefined)) {
    return messageNode(item.role, contentText(item.content));
  }
  if (item.type === "function_call") return messageNode("assistant", `calls ${item.name}`, item.arguments);
  if (item.type === "function_call_output") return messageNode("tool", contentText(item.output));
  return messageNode(item.type || "item", "", JSON.stringify(item, null, 2));
}

async function showResponse(id) {
  const path = `/v1/responses/${encodeURIComponent(id)}`;
  const [response, inputs] = await Promise.all([getJson(path), getJson(`${path}/input_items?order=asc&limit=100`)]);
  const nodes = [];
  if (response.instructions) nodes.push(messageNode("system", response.instructions));
  for (const item of inputs.data || []) nodes.push(itemNode(item));
  for (const item of response.output || []) nodes.push(itemNode(item));
  replaceChildren($("#conversation-body"), nodes);
  const usage = response.usage ? ` · ${num(response.usage.input_tokens)} + ${num(response.usage.output_tokens)} tokens` : "";
  $("#conversation-meta").textContent = `${id} · ${response.model} · ${when(response.created_at)}${usage} · ${response.status}`;
  $("#conversation-raw").textContent = JSON.stringify({ ...response, input_items: inputs.data }, null, 2);
}

// -- usage and spend -------------------------------------------------------------------------

const GROUP_LABELS = { key_id: "Key", model: "Model", day: "Day", provider: "Provider", owner: "Owner", team: "Team" };

async function loadUsage() {
  const params = new URLSearchParams({ group_by: $("#usage-group").value });
  if ($("#usage-start").value) params.set("start", $("#usage-start").value);
  if ($("#usage-end").value) params.set("end", $("#usage-end").value);
  showError($("#usage-error"), null);
  let report;
  try {
    report = await getJson(`/v1/admin/usage?${params}`);
  } catch (error) {
    showError($("#usage-error"), error);
    return;
  }
  const groups = report.group_by.map((g) => (g === "key" ? "key_id" : g));
  const numbers = [["requests", "Requests"], ["prompt_tokens", "Prompt tokens"],
    ["completion_tokens", "Completion tokens"], ["total_tokens", "Total tokens"]];
  const table = $("#usage-table");
  replaceChildren(table.tHead, h("tr", {},
    groups.map((g) => h("th", { scope: "col" }, GROUP_LABELS[g] || g)),
    numbers.map(([, label]) => h("th", { scope: "col", class: "num" }, label)),
    h("th", { scope: "col", class: "num" }, "Cost")));
  const sorted = [...report.data].sort((a, b) => String(b.day || "").localeCompare(String(a.day || ""))
    || b.cost_usd - a.cost_usd || b.total_tokens - a.total_tokens);
  const rows = sorted.map((row) => h("tr", {},
    groups.map((g) => h("td", { class: g === "key_id" || g === "model" ? "id" : "" }, row[g] ?? "–")),
    numbers.map(([name]) => h("td", { class: "num" }, num(row[name]))),
    h("td", { class: "num" }, usd(row.cost_usd))));
  if (!rows.length) {
    rows.push(h("tr", {}, h("td", { colspan: groups.length + numbers.length + 1, class: "empty-row" },
      `No usage between ${report.start} and ${report.end}.`)));
  }
  replaceChildren(table.tBodies[0], rows);
  const total = report.total;
  replaceChildren(table.tFoot, h("tr", {},
    h("td", { colspan: groups.length }, `Total, ${report.start} to ${report.end}`),
    numbers.map(([name]) => h("td", { class: "num" }, num(total[name]))),
    h("td", { class: "num" }, usd(total.cost_usd))));
}
