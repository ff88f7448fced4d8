// Playground: chat with any served model (Chat Completions or the Responses API, streamed or
// not) and compare two texts with an embedding model.

import { call, stream } from "./api.js";
import { $, h, ms, num, showError } from "./dom.js";
import { fillSelect, loadModels, modelType } from "./models.js";

// The Responses API refuses max_output_tokens below 16 (as OpenAI does)
const RESPONSES_MIN_TOKENS = 16;

let history = []; // [{role, content}] of this conversation (the system prompt is added per request)
let controller = null; // the AbortController of the generation in flight
let modelsById = new Map();

export function init() {
  $("#chat-form").addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  $("#chat-settings").addEventListener("submit", (event) => event.preventDefault());
  $("#chat-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && controller && !$("#page-playground").hidden) stop();
  });
  $("#chat-stop").addEventListener("click", stop);
  $("#chat-clear").addEventListener("click", clearConversation);
  const temperature = $("#chat-temperature");
  temperature.addEventListener("input", () => {
    $("#chat-temperature-value").textContent = Number(temperature.value).toFixed(1);
  });
  $("#embed-form").addEventListener("submit", (event) => {
    event.preventDefault();
    compare();
  });
  initTabs();
}

export async function show() {
  try {
    const models = await loadModels();
    modelsById = new Map(models.map((m) => [m.id, m]));
    const chat = models.filter((m) => modelType(m) === "llm");
    const embedding = models.filter((m) => modelType(m) === "embedding");
    fillSelect($("#chat-model"), chat);
    fillSelect($("#embed-model"), embedding);
    if (!chat.length) showError($("#chat-error"), new Error("No chat model is served: add a provider or model to run.yaml."));
  } catch (error) {
    showError($("#chat-error"), error);
  }
}

export function reset() {
  stop();
  clearConversation();
}

// -- tabs (arrow keys move between them, as in the ARIA tabs pattern) ------------------------

function initTabs() {
  const tabs = [$("#tab-chat"), $("#tab-embeddings")];
  const select = (tab) => {
    for (const other of tabs) {
      const selected = other === tab;
      other.setAttribute("aria-selected", String(selected));
      other.tabIndex = selected ? 0 : -1;
      $(`#${other.getAttribute("aria-controls")}`).hidden = !selected;
    }
  };
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => select(tab));
    tab.addEventListener("keydown", (event) => {
      const step = event.key === "ArrowRight" ? 1 : event.key === "ArrowLeft" ? -1 : 0;
      if (!step) return;
      const next = tabs[(i + step + tabs.length) % tabs.length];
      select(next);
      next.focus();
    });
  });
}

// -- chat ------------------------------------------------------------------------------------

function settings() {
  const api = document.querySelector('input[name="api"]:checked').value;
  return {
    api,
    model: $("#chat-model").value,
    system: $("#chat-system").value.trim(),
    temperature: Number($("#chat-temperature").value),
    maxTokens: Math.max(1, Number($("#chat-max-tokens").value) || 256),
    stream: $("#chat-stream").checked,
  };
}

function messageItem(role, text) {
  const body = h("p", { class: "text" }, text);
  const item = h("li", { class: `message ${role}` }, h("span", { class: "role" }, role), body);
  $("#transcript").append(item);
  $("#chat-empty").hidden = true;
  return { item, body };
}

function setBusy(busy) {
  $("#chat-send").disabled = busy;
  $("#chat-stop").disabled = !busy;
  $("#transcript").setAttribute("aria-busy", String(busy));
}

function clearConversation() {
  if (controller) return;
  history = [];
  $("#transcript").replaceChildren();
  $("#chat-empty").hidden = false;
  showError($("#chat-error"), null);
  for (const id of ["#m-ttft", "#m-rate", "#m-usage", "#m-provider"]) $(id).textContent = "–";
}

function stop() {
  if (controller) controller.abort();
}

async function send() {
  const input = $("#chat-input");
  const text = input.value.trim();
  const options = settings();
  if (!text || controller || !options.model) return;
  showError($("#chat-error"), null);
  input.value = "";
  history.push({ role: "user", content: text });
  messageItem("user", text);
  const reply = messageItem("assistant", "");
  reply.item.classList.add("streaming");
  reply.item.scrollIntoView({ block: "nearest" });

  controller = new AbortController();
  setBusy(true);
  const run = { started: performance.now(), first: null, ended: null, text: "", usage: null, finish: null,
    provider: null, chunks: 0 };
  const onText = (delta) => {
    if (!delta) return;
    if (run.first === null) run.first = performance.now();
    run.chunks += 1;
    run.text += delta;
    reply.body.textContent = run.text;
    reply.item.scrollIntoView({ block: "nearest" });
  };
  let stopped = false;
  try {
    if (options.api === "responses") await viaResponses(options, run, onText, controller.signal);
    else await viaChat(options, run, onText, controller.signal);
  } catch (error) {
    if (error.name === "AbortError") stopped = true;
    else showError($("#chat-error"), error);
  } finally {
    run.ended = performance.now();
    controller = null;
    setBusy(false);
    reply.item.classList.remove("streaming");
  }
  if (stopped) {
    reply.item.classList.add("stopped");
    reply.item.append(h("span", { class: "note" }, "Stopped: relaystack cancelled the generation upstream."));
  } else if (run.finish === "length") {
    reply.item.append(h("span", { class: "note" }, "Cut at the max tokens limit."));
  }
  if (run.text) history.push({ role: "assistant", content: run.text });
  else if (!stopped) reply.item.remove();
  showMetrics(run, options);
  $("#chat-input").focus();
}

function chatMessages(options) {
  const messages = options.system ? [{ role: "system", content: options.system }] : [];
  return messages.concat(history);
}

async function viaChat(options, run, onText, signal) {
  const body = {
    model: options.model,
    messages: chatMessages(options),
    temperature: options.temperature,
    max_tokens: options.maxTokens,
  };
  if (!options.stream) {
    const { data, headers } = await call("/v1/chat/completions", { method: "POST", body, signal });
    run.provider = headers.get("x-relaystack-provider");
    const choice = data.choices && data.choices[0];
    onText(choice && choice.message ? choice.message.content || "" : "");
    run.finish = choice ? choice.finish_reason : null;
    run.usage = data.usage || null;
    return;
  }
  body.stream = true;
  body.stream_options = { include_usage: true };
  await stream("/v1/chat/completions", body, {
    signal,
    onOpen: (headers) => {
      run.provider = headers.get("x-relaystack-provider");
    },
    onEvent: ({ data }) => {
      if (!data || typeof data !== "object") return;
      if (data.error) throw new Error(data.error.message || "The stream ended with an error.");
      const choice = data.choices && data.choices[0];
      if (choice) {
        onText(choice.delta && choice.delta.content);
        if (choice.finish_reason) run.finish = choice.finish_reason;
      }
      if (data.usage) run.usage = data.usage;
    },
  });
}

async function viaResponses(options, run, onText, signal) {
  const body = {
    model: options.model,
    input: history.map((m) => ({ role: m.role, content: m.content })),
    temperature: options.temperature,
    max_output_tokens: Math.max(RESPONSES_MIN_TOKENS, options.maxTokens),
  };
  if (options.system) body.instructions = options.system;
  const finish = (response) => {
    if (!response) return;
    if (response.usage) {
      run.usage = {
        prompt_tokens: response.usage.input_tokens,
        completion_tokens: response.usage.output_tokens,
        total_tokens: response.usage.total_tokens,
      };
    }
    run.finish = response.status === "incomplete" ? "length" : response.status;
    if (response.status === "failed" && response.error) throw new Error(response.error.message || "The response failed.");
  };
  if (!options.stream) {
    const { data, headers } = await call("/v1/responses", { method: "POST", body, signal });
    run.provider = headers.get("x-relaystack-provider");
    onText(outputText(data));
    finish(data);
    return;
  }
  body.stream = true;
  await stream("/v1/responses", body, {
    signal,
    onOpen: (headers) => {
      run.provider = headers.get("x-relaystack-provider");
    },
    onEvent: ({ data }) => {
      if (!data || typeof data !== "object") return;
      if (data.type === "response.output_text.delta") onText(data.delta);
      else if (data.type === "response.completed" || data.type === "response.incomplete"
        || data.type === "response.failed") finish(data.response);
      else if (data.type === "error" || data.error) {
        const error = data.error || data;
        throw new Error(error.message || "The stream ended with an error.");
      }
    },
  });
}

export function outputText(response) {
  const parts = [];
  for (const item of response.output || []) {
    for (const part of item.content || []) {
      if (part.type === "output_text") parts.push(part.text);
    }
  }
  return parts.join("");
}

function showMetrics(run, options) {
  $("#m-ttft").textContent = run.first !== null ? ms(run.first - run.started) : "–";
  const generating = run.first !== null ? (run.ended - run.first) / 1000 : 0;
  const tokens = run.usage ? run.usage.completion_tokens : null;
  if (tokens && generating > 0.001) $("#m-rate").textContent = `${num(tokens / generating, 1)} tok/s`;
  else if (run.chunks > 1 && generating > 0.001) $("#m-rate").textContent = `≈ ${num(run.chunks / generating, 1)} chunks/s`;
  else $("#m-rate").textContent = "–";
  $("#m-usage").textContent = run.usage
    ? `${num(run.usage.prompt_tokens)} + ${num(run.usage.completion_tokens)} = ${num(run.usage.total_tokens)}`
    : run.first !== null ? "not reported" : "–";
  const model = modelsById.get(options.model);
  $("#m-provider").textContent = run.provider || (model ? model.provider_id : "–");
}

// -- embeddings ------------------------------------------------------------------------------

async function compare() {
  const model = $("#embed-model").value;
  const a = $("#embed-a").value;
  const b = $("#embed-b").value;
  showError($("#embed-error"), null);
  if (!model) {
    showError($("#embed-error"), new Error("No embedding model is served."));
    return;
  }
  if (!a.trim() || !b.trim()) {
    showError($("#embed-error"), new Error("Give two texts to compare."));
    return;
  }
  const button = $("#embed-run");
  button.disabled = true;
  const started = performance.now();
  try {
    const { data } = await call("/v1/embeddings", { method: "POST", body: { model, input: [a, b] } });
    const vectors = [...data.data].sort((x, y) => x.index - y.index).map((d) => d.embedding);
    const score = cosine(vectors[0], vectors[1]);
    $("#embed-score").textContent = score.toFixed(4);
    $("#embed-meter").value = score;
    const tokens = data.usage ? `, ${num(data.usage.prompt_tokens)} tokens` : "";
    $("#embed-detail").textContent = `${vectors[0].length} dimensions${tokens}, ${ms(performance.now() - started)}`;
    $("#embed-result").hidden = false;
  } catch (error) {
    showError($("#embed-error"), error);
  } finally {
    button.disabled = false;
  }
}

export function cosine(a, b) {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i += 1) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return na && nb ? dot / Math.sqrt(na * nb) : 0;
}
