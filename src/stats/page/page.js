// The live page: polls the JSON stats API (same URI, same access rules) once a second and
// answers "is anything wrong, where, since when": a verdict, the overview, one row per pool
// (problems first, sortable) that opens to its targets and five-minute history, the recent
// errors and the recent requests. Every state is a word and an icon beside its colour.

const statsUrl = location.pathname;
const LEVELS = [
  { icon: "✔", word: "OK" },
  { icon: "⚠", word: "Warning" },
  { icon: "✖", word: "Failing" },
  { icon: "✖", word: "Down" },
];
const HEALTH = { up: "✔ up", down: "✖ down", unchecked: "– not checked" };
const view = { sort: "problems", desc: true, open: {}, samples: 0, doc: null, all: {} };
// Rows of the recent errors and requests shown until "show all" is pressed.
const FIRST_ROWS = 10;

// The first rows of a list, or all of them once asked for, with the button that asks.
function firstRows(list, name, rows) {
  const button = document.getElementById(name + "-more");
  button.hidden = list.length <= FIRST_ROWS;
  button.textContent = view.all[name] ? "Show the first " + FIRST_ROWS : "Show all " + list.length;
  return view.all[name] ? rows : rows.slice(0, FIRST_ROWS);
}

for (const name of ["errors", "recent"]) {
  document.getElementById(name + "-more").addEventListener("click", () => {
    view.all[name] = !view.all[name];
    if (view.doc) show(view.doc, false);
  });
}

function token() { return sessionStorage.getItem("poolgate-token") || ""; }

document.getElementById("auth").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem("poolgate-token", document.getElementById("token").value);
  document.getElementById("auth").hidden = true;
  poll();
});

function badge(level) {
  const l = LEVELS[level];
  return el("span", { class: "badge lvl" + level, text: l.icon + " " + l.word });
}

// What a pool's figures say: its level (0 OK, 1 warning, 2 failing, 3 down) and why.
function assess(id, p) {
  const c = p.counters, r = p.responses, lim = p.limits;
  const why = [];
  const add = (level, text) => why.push({ level, text });
  const down = p.targets.filter((t) => t.health === "down");
  if (p.targets.length > 0 && down.length === p.targets.length) {
    add(3, "every target down since " + fmtClock(Math.max(...down.map((t) => t.since))));
  } else if (down.length > 0) {
    const first = down.reduce((a, t) => (t.since < a.since ? t : a));
    add(2, down.length + " of " + p.targets.length + " targets down (" + first.url + " since " + fmtClock(first.since) + ")");
  }
  const failed = r["5xx"] + r.failed;
  if (failed > 0) add(2, failed + " answered 5xx or failed in the last second");
  else if (p.errors > 0) add(1, p.errors + " failed attempts in the last second");
  if (p.degraded) add(1, "degraded (X-Degraded sent)");
  if (p.throttled > 0) add(1, p.throttled + " throttled (429) in the last second");
  const near = (n, max) => max > 0 && n >= 0.9 * max;
  if (near(c.cur_executing_reqs, lim.max_concurrent_requests)) add(1, "near max_concurrent_requests");
  if (near(c.requests, lim.max_requests_per_sec)) add(1, "near max_requests_per_sec");
  if (near(c.cur_pending_reqs, lim.max_queue_length)) add(1, "queue near max_queue_length");
  const level = Math.max(0, ...why.map((w) => w.level));
  const history = p.history.requests;
  return {
    id, p, why, level,
    failed,
    up: p.targets.filter((t) => t.health !== "down").length,
    requests5min: history.reduce((a, b) => a + b, 0),
  };
}

const COLUMNS = [
  { key: "problems", label: "State", value: (m) => m.level * 1e12 + m.failed * 1e6 + m.p.errors },
  { key: "pool", label: "Pool", text: true, value: (m) => m.id },
  { key: "rps", label: "Req/s", value: (m) => m.p.counters.requests },
  { key: "inflight", label: "In flight", value: (m) => m.p.counters.cur_executing_reqs },
  { key: "queued", label: "Queued", value: (m) => m.p.counters.cur_pending_reqs },
  { key: "2xx", label: "2xx", value: (m) => m.p.responses["2xx"] },
  { key: "3xx", label: "3xx", value: (m) => m.p.responses["3xx"] },
  { key: "4xx", label: "4xx", value: (m) => m.p.responses["4xx"] },
  { key: "5xx", label: "5xx", value: (m) => m.failed },
  { key: "429", label: "429", value: (m) => m.p.throttled },
  { key: "retries", label: "Retries", value: (m) => m.p.retries },
  { key: "p50", label: "p50", value: (m) => m.p.percentiles.p50 },
  { key: "p95", label: "p95", value: (m) => m.p.percentiles.p95 },
  { key: "p99", label: "p99", value: (m) => m.p.percentiles.p99 },
  { key: "phase", label: "Slowest phase", text: true, value: (m) => m.p.dominant_phase },
  { key: "targets", label: "Targets up", value: (m) => m.up - m.p.targets.length },
  { key: "trend", label: "Req/s, 5 min", value: (m) => m.requests5min },
];

function sortedModels(doc) {
  const models = Object.entries(doc.pools || {}).map(([id, p]) => assess(id, p));
  const col = COLUMNS.find((c) => c.key === view.sort) || COLUMNS[0];
  const sign = view.desc ? -1 : 1;
  return models.sort((a, b) => {
    const va = col.value(a), vb = col.value(b);
    const diff = col.text ? String(va).localeCompare(String(vb)) : va - vb;
    return diff * sign || b.level - a.level || a.id.localeCompare(b.id);
  });
}

function renderHead() {
  const row = document.getElementById("pool-head");
  row.replaceChildren(...COLUMNS.map((c) => {
    const th = el("th", { class: c.text || c.key === "problems" ? "t" : undefined, scope: "col" });
    if (view.sort === c.key) th.setAttribute("aria-sort", view.desc ? "descending" : "ascending");
    const b = el("button", { class: "sort", type: "button", text: c.label });
    b.addEventListener("click", () => {
      view.desc = view.sort === c.key ? !view.desc : !c.text;
      view.sort = c.key;
      renderHead();
      if (view.doc) renderPools(view.doc);
    });
    th.append(b);
    return th;
  }));
}

function limited(n, max) { return max > 0 ? fmtNum(n) + " / " + fmtNum(max) : fmtNum(n); }

function poolRow(m, open) {
  const p = m.p, c = p.counters, r = p.responses, lim = p.limits, pc = p.percentiles;
  const toggle = el("button", {
    class: "toggle", type: "button", "aria-expanded": open ? "true" : "false",
    "aria-label": (open ? "Close " : "Open ") + m.id, text: open ? "▾" : "▸",
  });
  toggle.addEventListener("click", () => {
    view.open[m.id] = !open;
    renderPools(view.doc);
  });
  const state = td("State", el("span", {}, toggle, badge(m.level)), "t");
  const name = td("Pool", el("div", {}, el("strong", { text: m.id }),
    m.why.length ? el("div", { class: "why", text: m.why.map((w) => w.text).join("; ") }) : null), "t name");
  const queued = lim.use_queue ? limited(c.cur_pending_reqs, lim.max_queue_length) : "–";
  return el("tr", {
    class: "pool lvl" + m.level, "data-pool": m.id, "data-level": m.level,
    "data-state": LEVELS[m.level].word.toLowerCase(), "data-rps": c.requests,
    "data-requests-5min": m.requests5min,
  },
    state, name,
    td("Req/s", limited(c.requests, lim.max_requests_per_sec)),
    td("In flight", limited(c.cur_executing_reqs, lim.max_concurrent_requests)),
    td("Queued", queued),
    countCell("2xx", r["2xx"]), countCell("3xx", r["3xx"]), countCell("4xx", r["4xx"]),
    countCell("5xx / failed", m.failed, true), countCell("429", p.throttled, true),
    countCell("Retries", p.retries),
    td("p50", fmtMs(pc.p50)), td("p95", fmtMs(pc.p95)), td("p99", fmtMs(pc.p99)),
    td("Slowest phase", p.dominant_phase || "–", "t"),
    td("Targets up", m.up + " / " + p.targets.length, m.up < p.targets.length ? "hot" : undefined),
    td("Req/s, 5 min", el("span", { svg: sparkSvg(p.history.requests) })),
  );
}

function targetsTable(p, now) {
  const head = ["Target", "Health", "Since", "Last check", "Active", "Connections (reused)", "Failures"];
  const rows = p.targets.map((t) => {
    const check = t.last_check;
    const last = check.when ? (check.passed ? "✔ " : "✖ ") + check.result + " at " + fmtClock(check.when) : "–";
    return el("tr", { class: "target " + t.health, "data-target": t.url, "data-health": t.health },
      td("Target", t.url, "t"),
      td("Health", el("span", { class: "badge " + t.health, text: HEALTH[t.health] || t.health }), "t"),
      td("Since", t.health === "unchecked" ? "–" : fmtSince(t.since, now), "t"),
      td("Last check", last, "t wrap"),
      td("Active", fmtNum(t.active)),
      td("Connections (reused)", fmtNum(t.connections) + " (" + fmtNum(t.reused) + ")"),
      countCell("Failures", t.failures, true));
  });
  return el("table", { class: "grid targets" },
    el("thead", {}, el("tr", {}, ...head.map((h, i) => el("th", { class: i < 4 ? "t" : undefined, text: h })))),
    el("tbody", {}, ...rows));
}

function chartBox(title, svg) {
  return el("div", { class: "chart-box" }, el("h3", { text: title }), el("div", { svg }));
}

function historyCharts(h) {
  const n = h.requests.length;
  return el("div", { class: "charts" },
    chartBox("Requests / s", chartSvg("requests", [{ values: h.requests, color: "#0969da" }], "/s", n)),
    chartBox("Failed attempts / s", chartSvg("errors", [{ values: h.errors, color: "#cf222e" }], "/s", n)),
    chartBox("p99 total time (ms)", chartSvg("p99", [{ values: h.p99_ms, color: "#8250df" }], "ms", n)));
}

function detailsRow(m, now) {
  const span = COLUMNS.length;
  const box = el("div", { class: "pool-details" },
    el("h3", {}, "Targets of " + m.id + " ", el("small", {
      text: m.p.targets.some((t) => t.health !== "unchecked") ? "figures since start; health from health_check" : "figures since start; no health_check",
    })),
    targetsTable(m.p, now),
    el("h3", {}, "Last 5 minutes ", el("small", { text: m.p.history.requests.length + " points, one a second, kept by poolgate" })),
    historyCharts(m.p.history));
  return el("tr", { class: "details", "data-details": m.id }, el("td", { colspan: span }, box));
}

function renderPools(doc) {
  const now = Math.floor(Date.now() / 1000);
  const models = sortedModels(doc);
  const rows = [];
  for (const m of models) {
    // Open by default: every pool when there are few, else the ones with a problem.
    const open = view.open[m.id] ?? (models.length <= 3 || m.level >= 2);
    rows.push(poolRow(m, open));
    if (open) rows.push(detailsRow(m, now));
  }
  document.getElementById("pool-rows").replaceChildren(...rows);
  return models;
}

function card(label, value, note, level) {
  return el("div", { class: "card" + (level ? " lvl" + level : ""), "data-card": label },
    el("div", { class: "label", text: label }), el("div", { class: "value", text: value }),
    note ? el("div", { class: "note", text: note }) : null);
}

function renderOverview(doc, models) {
  const w = doc.web, s = w.stats, srv = w.server, q = w.queue;
  const n = s.num_requests, bad = s.responses["5xx"] + s.responses.failed;
  const cards = [
    card("Requests / s", fmtNum(n), "client requests"),
    card("Error rate", fmtPct(bad, n), bad + " answered 5xx", bad > 0 ? 2 : 0),
    card("Connections", s.max_sockets > 0 ? fmtNum(s.cur_sockets) + " / " + fmtNum(s.max_sockets) : fmtNum(s.cur_sockets),
      s.max_sockets > 0 ? "of http_max_connections" : "no http_max_connections",
      s.max_sockets > 0 && s.cur_sockets >= 0.9 * s.max_sockets ? 1 : 0),
    card("TLS", fmtPct(s.tls_requests, n), "of requests"),
    card("HTTP/2", fmtPct(s.h2_requests, n), "of requests"),
    card("CPU", srv.cpu_pct.toFixed(1) + " %", "of one core"),
    card("Memory", fmtBytes(srv.rss_bytes), "resident"),
    card("Uptime", fmtDuration(srv.uptime_sec), "since " + fmtClock(Math.floor(Date.now() / 1000) - srv.uptime_sec)),
  ];
  if (q.max_running > 0) {
    cards.push(card("Request queue", fmtNum(q.pending) + (q.max_pending > 0 ? " / " + fmtNum(q.max_pending) : "") + " waiting",
      fmtNum(q.running) + " / " + fmtNum(q.max_running) + " running", q.pending > 0 ? 1 : 0));
  }
  if (doc.cluster) {
    const c = doc.cluster;
    cards.push(card("Cluster", c.redis_reachable ? "✔ Redis up" : "✖ Redis down",
      c.live_instances + " instances", c.redis_reachable ? 0 : 2));
  }
  document.getElementById("cards").replaceChildren(...cards);
  // Every pool's history summed; the ticker adds every pool's second at once, so the
  // histories end together.
  const sum = (key) => {
    const len = Math.max(0, ...models.map((m) => m.p.history[key].length));
    const out = new Array(len).fill(0);
    for (const m of models) {
      const v = m.p.history[key], off = len - v.length;
      v.forEach((x, i) => { out[off + i] += x; });
    }
    return out;
  };
  const req = sum("requests"), err = sum("errors");
  document.getElementById("overview-charts").replaceChildren(
    chartBox("All pools: requests / s (blue) and failed attempts / s (red)",
      chartSvg("all", [{ values: req, color: "#0969da" }, { values: err, color: "#cf222e" }], "/s", req.length, 560)));
}

function renderVerdict(models) {
  const box = document.getElementById("verdict");
  const bad = models.filter((m) => m.level > 0);
  const level = Math.max(0, ...models.map((m) => m.level));
  box.className = "verdict lvl" + level;
  box.dataset.level = String(level);
  if (bad.length === 0) {
    const targets = models.reduce((a, m) => a + m.p.targets.length, 0);
    box.replaceChildren(LEVELS[0].icon + " No problems: " + models.length + " pools, " + targets + " targets up or unchecked.");
    return;
  }
  box.replaceChildren(LEVELS[level].icon + " " + bad.length + " of " + models.length + " pools need attention:",
    el("ul", {}, ...bad.map((m) => el("li", { text: LEVELS[m.level].icon + " " + m.id + ": " + m.why.map((w) => w.text).join("; ") }))));
}

function renderErrors(errors) {
  document.getElementById("errors-count").textContent = errors.length ? "(" + errors.length + ", newest first)" : "(none)";
  const rows = errors.map((e) => el("tr", { "data-status": e.status },
    td("Time", fmtClock(e.when), "t"), td("Pool", e.pool, "t"),
    td("Status", e.status ? String(e.status) : "none", "hot"),
    td("Cause", e.cause, "t wrap"), td("Request", e.method + " " + e.uri, "t wrap"),
    td("Target", e.target || "–", "t")));
  document.getElementById("error-rows").replaceChildren(...firstRows(errors, "errors", rows));
}

function renderRecent(recent) {
  document.getElementById("recent-count").textContent = recent.length ? "(" + recent.length + ", newest first)" : "(none kept: http_recent_requests)";
  const rows = recent.map((r) => el("tr", {},
    td("Time", fmtClock(r.when), "t"),
    td("Status", r.code + " " + r.status, r.code >= 500 ? "hot" : undefined),
    td("Request", r.proto + "://" + r.host + r.uri, "t wrap"),
    td("Client", (r.ips || []).join(", "), "t"),
    td("Total", fmtMs((r.perf && r.perf.perf && r.perf.perf.total) || 0))));
  document.getElementById("recent-rows").replaceChildren(...firstRows(recent, "recent", rows));
}

function show(doc, fresh = true) {
  view.doc = doc;
  const srv = doc.web.server;
  document.getElementById("server").textContent =
    srv.name + " " + srv.version + " on " + srv.hostname + " (" + srv.ip + "), up " + fmtDuration(srv.uptime_sec);
  const models = renderPools(doc);
  renderVerdict(models);
  renderOverview(doc, models);
  renderErrors(doc.web.errors || []);
  renderRecent(doc.web.recent || []);
  if (!fresh) return;
  view.samples += 1;
  document.body.dataset.samples = String(view.samples);
  document.getElementById("status").textContent =
    "updated " + new Date().toLocaleTimeString() + " · " + view.samples + " samples";
}

async function poll() {
  const headers = token() ? { Authorization: "Bearer " + token() } : {};
  try {
    const resp = await fetch(statsUrl, { headers, cache: "no-store" });
    if (resp.status === 403) {
      document.getElementById("status").textContent = "403: not in the ACL; enter a stats token";
      document.getElementById("auth").hidden = false;
      return;
    }
    show(await resp.json());
  } catch (e) {
    document.getElementById("status").textContent = "cannot reach poolgate: " + e;
  }
  setTimeout(poll, 1000);
}

renderHead();
poll();
