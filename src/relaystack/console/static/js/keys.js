// Keys: create (the secret is shown once), list and revoke virtual keys through the admin API
// (/v1/admin/keys). With auth off there are no keys: the page says so and how to turn it on.

import { call, features, getJson } from "./api.js";
import { $, ago, h, replaceChildren, showError, usd, when } from "./dom.js";

const DAY_S = 86400;

export function init() {
  $("#keys-off").hidden = features.auth;
  $("#keys-on").hidden = !features.auth;
  if (!features.auth) return;
  $("#key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    createKey();
  });
  $("#keys-status").addEventListener("change", loadKeys);
  $("#key-copy").addEventListener("click", copySecret);
  $("#key-secret-done").addEventListener("click", hideSecret);
}

export function show() {
  if (features.auth) loadKeys();
}

export function hide() {
  hideSecret();
}

export function reset() {
  hideSecret();
  $("#keys-table tbody").replaceChildren();
}

function numberOrNull(input) {
  const value = input.value.trim();
  return value ? Number(value) : null;
}

function keyBody() {
  const body = { name: $("#key-name").value.trim() };
  for (const field of ["owner", "team"]) {
    const value = $(`#key-${field}`).value.trim();
    if (value) body[field] = value;
  }
  const models = $("#key-models").value.split(",").map((m) => m.trim()).filter(Boolean);
  if (models.length) body.models = models;
  const rpm = numberOrNull($("#key-rpm"));
  if (rpm) body.limits = { rpm };
  const budget = numberOrNull($("#key-budget"));
  if (budget) body.budget = { max_usd: budget, period: "month" };
  const days = numberOrNull($("#key-expires"));
  if (days) body.expires_at = Math.floor(Date.now() / 1000) + days * DAY_S;
  return body;
}

async function createKey() {
  const error = $("#key-error");
  showError(error, null);
  let created;
  try {
    created = (await call("/v1/admin/keys", { method: "POST", body: keyBody() })).data;
  } catch (e) {
    showError(error, e);
    return;
  }
  $("#key-form").reset();
  $("#key-secret-value").textContent = created.key;
  $("#key-secret").hidden = false;
  $("#key-copy").textContent = "Copy";
  $("#key-secret-done").focus();
  await loadKeys();
}

// The secret leaves the page as soon as it is dismissed (or the page is left).
function hideSecret() {
  $("#key-secret-value").textContent = "";
  $("#key-secret").hidden = true;
}

async function copySecret() {
  const value = $("#key-secret-value").textContent;
  const button = $("#key-copy");
  try {
    await navigator.clipboard.writeText(value);
    button.textContent = "Copied";
  } catch {
    // no clipboard access (plain http on another host): select it for Ctrl+C instead
    const range = document.createRange();
    range.selectNodeContents($("#key-secret-value"));
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    button.textContent = "Selected: press Ctrl+C";
  }
}

async function loadKeys() {
  const status = $("#keys-status").value;
  const error = $("#key-error");
  let keys;
  try {
    keys = await getJson(`/v1/admin/keys${status ? `?status=${encodeURIComponent(status)}` : ""}`);
  } catch (e) {
    showError(error, e);
    return;
  }
  const rows = [...keys.data].sort((a, b) => b.created_at - a.created_at).map(keyRow);
  replaceChildren($("#keys-table tbody"), rows);
  $("#keys-empty").hidden = rows.length > 0;
}

function limitsText(key) {
  const parts = [];
  const limits = key.limits || {};
  if (limits.rpm) parts.push(`${limits.rpm} rpm`);
  if (limits.tpm) parts.push(`${limits.tpm} tpm`);
  if (limits.max_concurrent) parts.push(`${limits.max_concurrent} at once`);
  if (key.budget) parts.push(`${usd(key.budget.max_usd)}/${key.budget.period}`);
  if (key.models) parts.push(`models: ${key.models.join(", ")}`);
  if (key.providers) parts.push(`providers: ${key.providers.join(", ")}`);
  return parts.join(" · ") || "defaults";
}

const STATUS_BADGE = { active: "ok", revoked: "bad", expired: "idle" };

function keyRow(key) {
  const revoke = key.status === "active" ? revokeButton(key) : null;
  const expiry = key.expires_at ? `expires ${ago(key.expires_at)}` : null;
  return h("tr", { "data-key": key.id },
    h("td", { class: "id" }, key.id),
    h("td", {}, key.name || h("span", { class: "muted" }, "–")),
    h("td", {}, key.owner || "–", key.team ? h("span", { class: "sub" }, key.team) : null),
    h("td", {}, limitsText(key)),
    h("td", { "data-status": key.status }, h("span", { class: `badge ${STATUS_BADGE[key.status] || "idle"}` }, key.status),
      expiry ? h("span", { class: "sub" }, expiry) : null),
    h("td", {}, when(key.created_at)),
    h("td", {}, revoke));
}

// Two steps: "Revoke" arms the button, a second press within five seconds revokes.
function revokeButton(key) {
  let armed = null;
  const button = h("button", { type: "button", class: "danger", "data-revoke": key.id,
    "aria-label": `Revoke ${key.name || key.id}` }, "Revoke");
  button.addEventListener("click", async () => {
    if (!armed) {
      button.textContent = "Confirm revoke";
      button.classList.add("confirm");
      armed = setTimeout(() => {
        armed = null;
        button.textContent = "Revoke";
        button.classList.remove("confirm");
      }, 5000);
      return;
    }
    clearTimeout(armed);
    button.disabled = true;
    try {
      await call(`/v1/admin/keys/${encodeURIComponent(key.id)}`, { method: "DELETE" });
    } catch (e) {
      showError($("#key-error"), e);
    }
    await loadKeys();
  });
  return button;
}
