// The served models (GET /v1/models), shared by the pages and cached for a few seconds.

import { getJson } from "./api.js";

const FRESH_MS = 5000;
let cached = null;
let fetchedAt = 0;
let pending = null;

export async function loadModels({ force = false } = {}) {
  if (!force && cached && Date.now() - fetchedAt < FRESH_MS) return cached;
  if (!pending) {
    pending = getJson("/v1/models").then((body) => {
      cached = [...body.data].sort((a, b) => a.id.localeCompare(b.id));
      fetchedAt = Date.now();
      return cached;
    }).finally(() => {
      pending = null;
    });
  }
  return pending;
}

export function forgetModels() {
  cached = null;
}

export function modelType(model) {
  return model.model_type || (model.custom_metadata && model.custom_metadata.model_type) || "llm";
}

// Fill a <select> with models (keeping the current choice when it is still there).
export function fillSelect(select, models, { empty = null } = {}) {
  const previous = select.value;
  select.replaceChildren();
  if (empty !== null) select.append(new Option(empty, ""));
  for (const model of models) select.append(new Option(model.id, model.id));
  if ([...select.options].some((o) => o.value === previous)) select.value = previous;
}
