// DOM helpers. Text from the server (stored conversations, model ids, error messages) only ever
// reaches the page as text nodes or attribute values: never as HTML.

export const $ = (selector, root = document) => root.querySelector(selector);

// h("td", {class: "num"}, "12") -> <td class="num">12</td>; children may be strings, nodes, arrays or null
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

const SVG_NS = "http://www.w3.org/2000/svg";

export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) el.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function replaceChildren(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

export function show(el, visible) {
  el.hidden = !visible;
}

export function showError(el, error) {
  if (!error) {
    el.hidden = true;
    el.textContent = "";
    return;
  }
  el.textContent = error.message || String(error);
  el.hidden = false;
}

// -- formatting -----------------------------------------------------------------------------

const numberFormat = new Intl.NumberFormat();

export function num(value, digits = 0) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  return digits ? value.toFixed(digits) : numberFormat.format(Math.round(value));
}

export function ms(value) {
  if (value === null || value === undefined) return "–";
  if (value >= 10000) return `${(value / 1000).toFixed(1)} s`;
  if (value >= 1000) return `${(value / 1000).toFixed(2)} s`;
  return `${Math.round(value)} ms`;
}

export function usd(value) {
  if (value === null || value === undefined) return "–";
  return value < 0.01 && value > 0 ? `$${value.toPrecision(2)}` : `$${value.toFixed(2)}`;
}

// epoch seconds -> "2026-11-25 14:03:07" (local time)
export function when(epochSeconds) {
  if (!epochSeconds) return "–";
  const d = new Date(epochSeconds * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// epoch seconds (or an ISO string) -> "12 s ago" / "in 30 s"
export function ago(value) {
  if (!value) return "never";
  const t = typeof value === "string" ? Date.parse(value) / 1000 : value;
  const delta = Math.round(Date.now() / 1000 - t);
  const abs = Math.abs(delta);
  const text = abs < 60 ? `${abs} s` : abs < 3600 ? `${Math.round(abs / 60)} min` : abs < 86400
    ? `${Math.round(abs / 3600)} h` : `${Math.round(abs / 86400)} d`;
  return delta >= 0 ? `${text} ago` : `in ${text}`;
}

export function truncate(text, length) {
  const clean = String(text ?? "").replace(/\s+/g, " ").trim();
  return clean.length > length ? `${clean.slice(0, length - 1)}…` : clean;
}

// OpenAI message content (a string, or a list of parts) -> plain text
export function contentText(content) {
  if (content === null || content === undefined) return "";
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content.map((part) => {
      if (typeof part === "string") return part;
      if (part.text !== undefined) return part.text;
      if (part.type === "image_url" || part.type === "input_image") return "[image]";
      if (part.type === "refusal") return part.refusal || "";
      return `[${part.type || "part"}]`;
    }).join("");
  }
  return JSON.stringify(content);
}
