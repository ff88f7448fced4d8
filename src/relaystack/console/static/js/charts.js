// Small SVG charts (bars, stacked bars, lines) drawn from plain arrays; colours come from CSS
// classes (s1..s4), so they follow the light and dark themes.

import { h, replaceChildren, svg } from "./dom.js";

const H = 170;
const PAD = { left: 46, right: 10, top: 10, bottom: 24 };

// "0.5", "12", "1.2k": short labels for an axis
export function shortNumber(v) {
  if (v >= 10000) return `${Math.round(v / 1000)}k`;
  if (v >= 1000) return `${(v / 1000).toFixed(1)}k`;
  return Number.isInteger(v) ? String(v) : v.toFixed(v < 1 ? 2 : 1).replace(/0+$/, "");
}

// 0.37 -> 0.5, 7 -> 10, 130 -> 200: an axis maximum people can read
function niceMax(value) {
  if (!(value > 0)) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (value <= step * magnitude) return step * magnitude;
  }
  return 10 * magnitude;
}

// drawn at the container's own width, so text keeps its size (charts are redrawn on resize)
function frame(container, { times, max, yFormat, label, empty }) {
  const W = Math.max(240, Math.round(container.clientWidth || 360));
  const innerW = W - PAD.left - PAD.right;
  const innerH = H - PAD.top - PAD.bottom;
  const y = (v) => PAD.top + innerH - (v / max) * innerH;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", "aria-label": label });
  if (empty) {
    root.append(svg("text", { x: PAD.left + innerW / 2, y: PAD.top + innerH / 2, "text-anchor": "middle",
      class: "empty-chart" }, "no requests in this window"));
  }
  for (const fraction of [0, 0.5, 1]) {
    const value = max * fraction;
    root.append(
      svg("line", { class: fraction ? "gridline" : "axis", x1: PAD.left, x2: W - PAD.right, y1: y(value), y2: y(value) }),
      svg("text", { x: PAD.left - 6, y: y(value) + 4, "text-anchor": "end" }, yFormat(value)),
    );
  }
  const n = times.length;
  const slot = innerW / Math.max(n, 1);
  const x = (i) => PAD.left + i * slot;
  if (n) {
    const minutes = Math.round((times[n - 1] - times[0]) / 60);
    root.append(
      svg("text", { x: PAD.left, y: H - 6, "text-anchor": "start" }, `−${minutes} min`),
      svg("text", { x: W - PAD.right, y: H - 6, "text-anchor": "end" }, "now"),
    );
  }
  return { root, x, y, slot };
}

function legend(series) {
  return h("div", { class: "legend" }, series.map((s) => h("span", {},
    h("span", { class: `swatch ${s.cls}` }), s.label)));
}

// Bars per time slot; several series are stacked.
export function bars(container, { times, series, yFormat = shortNumber, label, empty = false }) {
  const totals = times.map((_, i) => series.reduce((sum, s) => sum + (s.values[i] || 0), 0));
  const max = niceMax(Math.max(...totals, 0));
  const { root, x, y, slot } = frame(container, { times, max, yFormat, label, empty });
  const width = Math.max(1, slot * 0.8);
  times.forEach((_, i) => {
    let base = 0;
    for (const s of series) {
      const value = s.values[i] || 0;
      if (value > 0) {
        root.append(svg("rect", { class: s.cls, x: x(i) + (slot - width) / 2, y: y(base + value),
          width, height: Math.max(0.5, y(base) - y(base + value)) }));
      }
      base += value;
    }
  });
  replaceChildren(container, root, series.length > 1 ? legend(series) : null);
}

// One line per series; gaps (null) break the line.
export function lines(container, { times, series, yFormat = shortNumber, label, empty = false }) {
  const all = series.flatMap((s) => s.values.filter((v) => v !== null && v !== undefined));
  const max = niceMax(Math.max(...all, 0));
  const { root, x, y, slot } = frame(container, { times, max, yFormat, label, empty });
  for (const s of series) {
    let d = "";
    let pen = false;
    s.values.forEach((value, i) => {
      if (value === null || value === undefined) {
        pen = false;
        return;
      }
      const px = (x(i) + slot / 2).toFixed(1);
      const py = y(value).toFixed(1);
      d += `${pen ? "L" : "M"}${px},${py}`;
      pen = true;
    });
    if (d) root.append(svg("path", { class: `line ${s.cls}`, d }));
    // single points (no neighbours) still show
    s.values.forEach((value, i) => {
      const lonely = value !== null && value !== undefined && (s.values[i - 1] ?? null) === null
        && (s.values[i + 1] ?? null) === null;
      if (lonely) root.append(svg("circle", { class: s.cls, cx: x(i) + slot / 2, cy: y(value), r: 2.5 }));
    });
  }
  replaceChildren(container, root, legend(series));
}
