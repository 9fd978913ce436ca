"use strict";
// The live page's drawing and formatting: inline SVG charts with axes and units (built from
// numbers only, so no figure from the server reaches markup), sparklines, and the number,
// time and size formats of the tables.

const HISTORY_SECONDS = 300;

function fmtNum(n) {
  if (!isFinite(n)) return "0";
  if (Math.abs(n) >= 1e6) return (n / 1e6).toFixed(1) + " M";
  if (Math.abs(n) >= 1e4) return (n / 1e3).toFixed(1) + " k";
  if (Number.isInteger(n)) return String(n);
  return n < 10 ? n.toFixed(2) : n.toFixed(1);
}

function fmtMs(ms) {
  if (!ms) return "0 ms";
  if (ms >= 10000) return (ms / 1000).toFixed(1) + " s";
  if (ms >= 1000) return (ms / 1000).toFixed(2) + " s";
  if (ms >= 100) return ms.toFixed(0) + " ms";
  if (ms >= 10) return ms.toFixed(1) + " ms";
  return ms.toFixed(2) + " ms";
}

function fmtBytes(b) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (b >= 1024 && i < units.length - 1) { b /= 1024; i += 1; }
  return (i === 0 ? String(b) : b.toFixed(1)) + " " + units[i];
}

function fmtPct(part, whole) {
  if (!whole) return "0 %";
  const pct = (100 * part) / whole;
  return (pct >= 10 || pct === 0 ? pct.toFixed(0) : pct.toFixed(1)) + " %";
}

function fmtDuration(sec) {
  sec = Math.max(0, Math.floor(sec));
  const d = Math.floor(sec / 86400), h = Math.floor((sec % 86400) / 3600);
  const m = Math.floor((sec % 3600) / 60), s = sec % 60;
  if (d > 0) return d + " d " + h + " h";
  if (h > 0) return h + " h " + m + " min";
  if (m > 0) return m + " min " + s + " s";
  return s + " s";
}

function fmtClock(unixSec) {
  return unixSec ? new Date(unixSec * 1000).toLocaleTimeString() : "–";
}

// "12:03:04 (3 min ago)".
function fmtSince(unixSec, nowSec) {
  if (!unixSec) return "–";
  return fmtClock(unixSec) + " (" + fmtDuration(nowSec - unixSec) + " ago)";
}

// A round axis maximum at or above `max`: 1, 2 or 5 times a power of ten.
function niceMax(max) {
  if (!(max > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(max)));
  for (const m of [1, 2, 5, 10]) if (m * p >= max) return m * p;
  return 10 * p;
}

function axisLabel(v, unit) {
  return unit === "ms" ? fmtMs(v) : fmtNum(v) + (unit ? " " + unit : "");
}

// A chart of one or more series over the last five minutes, one point a second, ending at
// the newest point. `series`: [{values, color}]. Returns SVG markup.
function chartSvg(name, series, unit, points, width) {
  const W = width || 360, H = 130, L = 48, R = 8, T = 8, B = 20;
  const all = series.flatMap((s) => s.values);
  const top = niceMax(Math.max(0, ...all));
  const x = (i, n) => L + (W - L - R) * ((HISTORY_SECONDS - n + i) / (HISTORY_SECONDS - 1));
  const y = (v) => T + (H - T - B) * (1 - v / top);
  let out = '<svg class="chart" viewBox="0 0 ' + W + " " + H + '" role="img" data-series="' + name +
    '" data-points="' + points + '" data-max="' + Math.max(0, ...all) + '">';
  for (const f of [0, 0.5, 1]) {
    const gy = y(top * f).toFixed(1);
    out += '<line class="grid" x1="' + L + '" x2="' + (W - R) + '" y1="' + gy + '" y2="' + gy + '"/>';
    out += '<text x="' + (L - 4) + '" y="' + (Number(gy) + 3) + '" text-anchor="end">' + axisLabel(top * f, unit) + "</text>";
  }
  for (let m = 5; m >= 0; m -= 1) {
    const gx = (L + (W - L - R) * (1 - m / 5)).toFixed(1);
    out += '<line class="axis" x1="' + gx + '" x2="' + gx + '" y1="' + (H - B) + '" y2="' + (H - B + 3) + '"/>';
    const anchor = m === 5 ? "start" : m === 0 ? "end" : "middle";
    out += '<text x="' + gx + '" y="' + (H - 5) + '" text-anchor="' + anchor + '">' + (m === 0 ? "now" : "−" + m + " min") + "</text>";
  }
  out += '<line class="axis" x1="' + L + '" x2="' + L + '" y1="' + T + '" y2="' + (H - B) + '"/>';
  out += '<line class="axis" x1="' + L + '" x2="' + (W - R) + '" y1="' + (H - B) + '" y2="' + (H - B) + '"/>';
  for (const s of series) {
    const n = s.values.length;
    if (n === 0) continue;
    const pts = s.values.map((v, i) => x(i, n).toFixed(1) + "," + y(v).toFixed(1)).join(" ");
    out += '<polyline class="line" stroke="' + s.color + '" points="' + pts + '"/>';
  }
  return out + "</svg>";
}

// A small line of the last five minutes, no axes (the pool rows).
function sparkSvg(values) {
  const W = 110, H = 24, top = Math.max(1, ...values), n = values.length;
  const pts = values.map((v, i) => {
    const px = W * ((HISTORY_SECONDS - n + i) / (HISTORY_SECONDS - 1));
    return px.toFixed(1) + "," + (H - 2 - (H - 4) * (v / top)).toFixed(1);
  }).join(" ");
  return '<svg class="spark" viewBox="0 0 ' + W + " " + H + '" data-points="' + n + '" aria-hidden="true">' +
    '<line class="base" x1="0" x2="' + W + '" y1="' + (H - 2) + '" y2="' + (H - 2) + '"/>' +
    (n ? '<polyline class="line" points="' + pts + '"/>' : "") + "</svg>";
}

// An element with attributes (`text` sets its text) and children.
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") e.textContent = v;
    else if (k === "svg") e.innerHTML = v; // markup of chartSvg / sparkSvg: numbers only
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const kid of kids) if (kid !== null && kid !== undefined) e.append(kid);
  return e;
}

// A table cell with its label for the phone layout.
function td(label, content, cls) {
  const cell = el("td", { "data-label": label, class: cls });
  if (content instanceof Node) cell.append(content); else cell.textContent = content;
  return cell;
}

// A count that is dim at zero and stands out when it is a problem.
function countCell(label, n, bad) {
  return td(label, fmtNum(n), n === 0 ? "zero" : bad ? "hot" : undefined);
}
