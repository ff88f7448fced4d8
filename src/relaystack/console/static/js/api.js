// The one way the console talks to relaystack: its public API, with the admin key when auth is on.
//
// The admin key lives in this module's memory, for this tab only. It is never written to a
// cookie, localStorage or sessionStorage: reloading or closing the tab forgets it.

let adminKey = null;
const listeners = new Set();

export const features = {
  auth: document.body.dataset.auth === "on",
  usage: document.body.dataset.usage === "on",
  metrics: document.body.dataset.metrics === "on",
  workers: Number(document.body.dataset.workers || "1"),
  version: document.body.dataset.version || "",
};

export function signedIn() {
  return !features.auth || adminKey !== null;
}

export function setAdminKey(key) {
  adminKey = key || null;
  for (const listener of listeners) listener(signedIn());
}

export function onSignInChange(listener) {
  listeners.add(listener);
}

export class ApiError extends Error {
  constructor(message, status, body) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.body = body;
  }
}

function headers(json) {
  const out = {};
  if (json) out["content-type"] = "application/json";
  if (adminKey) out.authorization = `Bearer ${adminKey}`;
  return out;
}

// The message of an error answer (OpenAI's {"error": {"message"}} or Anthropic's shape).
function errorMessage(status, body) {
  const error = body && body.error;
  if (error && typeof error === "object" && error.message) return `${error.message} (HTTP ${status})`;
  if (typeof error === "string") return `${error} (HTTP ${status})`;
  return `HTTP ${status}`;
}

async function fail(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: the status says enough
  }
  if (response.status === 401 && features.auth && adminKey !== null) setAdminKey(null);
  return new ApiError(errorMessage(response.status, body), response.status, body);
}

// JSON in, JSON out. Returns {data, headers}; throws ApiError on a non-2xx answer.
export async function call(path, { method = "GET", body, signal, key } = {}) {
  const init = { method, headers: headers(body !== undefined), signal, cache: "no-store" };
  if (key !== undefined) init.headers.authorization = `Bearer ${key}`;
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(path, init);
  if (!response.ok) throw await fail(response);
  const data = response.status === 204 ? null : await response.json();
  return { data, headers: response.headers };
}

export async function getJson(path, options) {
  return (await call(path, options)).data;
}

// A streamed request (server-sent events). Calls onOpen(headers) once the answer starts, then
// onEvent({event, data}) for each event (data parsed from JSON); resolves at the end of the
// stream. Aborting `signal` closes the connection, which makes relaystack cancel the upstream.
export async function stream(path, body, { signal, onOpen, onEvent }) {
  const response = await fetch(path, {
    method: "POST", headers: headers(true), body: JSON.stringify(body), signal, cache: "no-store",
  });
  if (!response.ok) throw await fail(response);
  if (onOpen) onOpen(response.headers);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = nextEventEnd(buffer)) !== null) {
        const raw = buffer.slice(0, end.index);
        buffer = buffer.slice(end.index + end.length);
        const parsed = parseEvent(raw);
        if (parsed) onEvent(parsed);
      }
    }
  } catch (error) {
    // an error event (or an abort): hang up, so the server stops generating
    reader.cancel().catch(() => {});
    throw error;
  }
  const rest = parseEvent(buffer + decoder.decode());
  if (rest) onEvent(rest);
}

function nextEventEnd(buffer) {
  const match = /\r?\n\r?\n/.exec(buffer);
  return match ? { index: match.index, length: match[0].length } : null;
}

function parseEvent(raw) {
  let event = "message";
  const data = [];
  for (const line of raw.split(/\r?\n/)) {
    if (line.startsWith("event:")) event = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  if (!data.length) return null;
  const text = data.join("\n");
  if (text === "[DONE]") return { event: "done", data: null };
  try {
    return { event, data: JSON.parse(text) };
  } catch {
    return { event, data: text };
  }
}
