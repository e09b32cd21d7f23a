"use strict";
// Peregrine UI. Alert text is attacker-controlled: it only ever reaches the page through textContent,
// text nodes and attribute setters, never through an HTML-parsing sink or string-built markup.
(() => {
  const PRIORITIES = ["Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Debug"];
  const DIMS = ["priority", "rule", "hostname", "source", "tag"];
  const LABEL = { priority: "Priority", rule: "Rule", hostname: "Host", source: "Source", tag: "Tag", q: "Search" };
  const SVGNS = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  const state = { view: "dashboard", since: "24h", from: "", to: "", q: "", event: "",
                  f: { priority: [], rule: [], hostname: [], source: [], tag: [] } };
  let cursor = null, seen = new Set(), timer = null, lastCounts = null;

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return el;
  }
  const prioVar = (p) => `var(--p-${String(p).toLowerCase()})`;
  const fmtN = (n) => n.toLocaleString("en-US");
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  function fmtTime(iso) {
    const d = new Date(iso);
    if (isNaN(d)) return iso;
    const frac = (String(iso).match(/\.(\d+)/) || ["", "000"])[1].slice(0, 3).padEnd(3, "0");
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${frac}`;
  }
  function localInput(epochS) {
    const d = new Date(epochS * 1000);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  // ---- state <-> URL hash ("#events?since=1h&priority=Critical&q=shadow")
  function params(extra) {
    const p = new URLSearchParams();
    if (state.from && state.to) { p.set("from", state.from); p.set("to", state.to); } else p.set("since", state.since);
    if (state.q) p.set("q", state.q);
    for (const d of DIMS) for (const v of state.f[d]) p.append(d, v);
    for (const [k, v] of Object.entries(extra || {})) p.set(k, v);
    return p;
  }
  function writeHash() {
    const p = params();
    if (state.event) p.set("event", state.event);
    const next = `#${state.view}?${p.toString()}`;
    if (location.hash !== next) history.replaceState(null, "", next);
  }
  function readHash() {
    const raw = location.hash.slice(1);
    const [view, query] = [raw.split("?")[0], raw.split("?").slice(1).join("?")];
    state.view = view === "events" ? "events" : "dashboard";
    const p = new URLSearchParams(query || "");
    state.since = p.get("since") || "24h";
    state.from = p.get("from") || ""; state.to = p.get("to") || "";
    state.q = p.get("q") || ""; state.event = p.get("event") || "";
    for (const d of DIMS) state.f[d] = p.getAll(d);
  }

  async function api(path, extra) {
    const res = await fetch(`/api/${path}?${params(extra)}`, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (res.status === 401) { location.assign("/login?next=" + encodeURIComponent("/" + location.hash)); throw new Error("signed out"); }
    const body = await res.json();
    if (!res.ok) throw new Error(body.error || res.statusText);
    return body;
  }

  // ---- filters
  function addFilter(dim, value) {
    if (!state.f[dim].includes(value)) state.f[dim].push(value);
    refresh(true);
  }
  function removeFilter(dim, value) {
    if (dim === "q") { state.q = ""; $("search").value = ""; }
    else if (dim === "range") { state.from = state.to = ""; }
    else state.f[dim] = state.f[dim].filter((v) => v !== value);
    refresh(true);
  }
  function renderChips() {
    const chips = [];
    const chip = (dim, label, value) => h("span", { class: "chip", "data-dim": dim },
      h("b", {}, label), h("span", { title: value }, value),
      h("button", { title: "Remove filter", onclick: () => removeFilter(dim, value) }, "✕"));
    if (state.from && state.to) chips.push(chip("range", "Range", `${fmtTime(new Date(state.from * 1000).toISOString())} → ${fmtTime(new Date(state.to * 1000).toISOString())}`));
    for (const d of DIMS) for (const v of state.f[d]) chips.push(chip(d, LABEL[d], v));
    if (state.q) chips.push(chip("q", "Search", state.q));
    $("chips").replaceChildren(...chips);
  }
  function fillAdders(counts) {
    for (const d of DIMS) {
      const sel = $(`add-${d}`);
      const values = d === "priority" ? PRIORITIES.map((p) => ({ value: p, count: (counts.by.priority.values.find((x) => x.value === p) || {}).count || 0 }))
                                      : counts.by[d].values;
      const opts = [h("option", { value: "" }, `${LABEL[d]}…`)];
      for (const v of values) if (!state.f[d].includes(v.value)) opts.push(h("option", { value: v.value }, `${v.value}  (${fmtN(v.count)})`));
      sel.replaceChildren(...opts);
      sel.value = "";
    }
  }

  // ---- dashboard
  function renderCards(counts) {
    const by = Object.fromEntries(counts.by.priority.values.map((x) => [x.value, x.count]));
    const cards = [h("div", { class: "card total" }, h("div", { class: "l" }, "All alerts"), h("div", { class: "n", id: "total-count" }, fmtN(counts.total)))];
    for (const p of PRIORITIES) {
      const n = by[p] || 0;
      const card = h("div", { class: n ? "card" : "card zero", title: `Filter on ${p}`, onclick: () => addFilter("priority", p) },
        h("div", { class: "l" }, p), h("div", { class: "n" }, fmtN(n)));
      card.style.setProperty("--c", prioVar(p));
      cards.push(card);
    }
    $("prio-cards").replaceChildren(...cards);
  }
  function renderBars(dim, block) {
    const box = $(`by-${dim}`);
    const rows = block.values.slice(0, 10);
    const max = Math.max(1, ...rows.map((r) => r.count));
    if (!rows.length) { box.replaceChildren(h("div", { class: "none" }, "No alerts in this range.")); $(`more-${dim}`).textContent = ""; return; }
    box.replaceChildren(...rows.map((r) => {
      const fill = h("span", { class: "fill" });
      fill.style.width = `${(100 * r.count) / max}%`;
      return h("div", { class: "row", title: `Filter on ${r.value}`, onclick: () => addFilter(dim, r.value) },
        h("div", { class: "label" }, fill, r.value), h("div", { class: "count" }, fmtN(r.count)));
    }));
    const hidden = block.distinct - rows.length;
    $(`more-${dim}`).textContent = hidden > 0 ? `${fmtN(block.distinct)} distinct · top 10 shown` : `${fmtN(block.distinct)} distinct`;
  }
  function stepLabel(step) {
    if (step % 86400 === 0) return `${step / 86400} d`;
    if (step % 3600 === 0) return `${step / 3600} h`;
    if (step % 60 === 0) return `${step / 60} min`;
    return `${step} s`;
  }
  function renderTimeline(tl) {
    const box = $("timeline");
    const W = Math.max(320, box.clientWidth), H = 230, L = 48, R = 8, T = 10, B = 26;
    const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "Alerts over time by priority" });
    const totals = new Array(tl.buckets).fill(0);
    for (const vals of Object.values(tl.series)) vals.forEach((v, i) => { totals[i] += v; });
    const max = Math.max(1, ...totals);
    // Axis step: 1, 2 or 5 × 10^k, at least 1 (counts are integers), about four grid lines.
    const raw = Math.max(1, max / 4), mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const gstep = [1, 2, 5, 10].map((k) => k * mag).find((v) => v >= raw);
    const lines = Math.ceil(max / gstep), top = lines * gstep;
    const y = (v) => T + (H - T - B) * (1 - v / top), bw = (W - L - R) / tl.buckets;
    for (let i = 0; i <= lines; i++) {
      const v = gstep * i;
      svg.append(s("line", { class: "grid-line", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      svg.append(s("text", { class: "axis", x: L - 6, y: y(v) + 4, "text-anchor": "end" }, fmtN(Math.round(v))));
    }
    const ticks = Math.min(8, tl.buckets);
    for (let k = 0; k < ticks; k++) {
      const i = Math.round((k * (tl.buckets - 1)) / Math.max(1, ticks - 1));
      const d = new Date((tl.start + i * tl.step) * 1000);
      const label = tl.step >= 86400 ? `${pad(d.getMonth() + 1)}-${pad(d.getDate())}` :
        (tl.buckets * tl.step > 86400 ? `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}` : `${pad(d.getHours())}:${pad(d.getMinutes())}`);
      const anchor = k === 0 ? "start" : k === ticks - 1 ? "end" : "middle";
      const x = k === 0 ? L + i * bw : k === ticks - 1 ? L + (i + 1) * bw : L + (i + 0.5) * bw;
      svg.append(s("text", { class: "axis", x, y: H - 8, "text-anchor": anchor }, label));
    }
    const order = PRIORITIES.slice().reverse().filter((p) => tl.series[p]);
    for (let i = 0; i < tl.buckets; i++) {
      if (!totals[i]) continue;
      const col = s("g", { class: "col" });
      const t0 = tl.start + i * tl.step;
      const tip = [`${fmtTime(new Date(t0 * 1000).toISOString())} (+${stepLabel(tl.step)})`, `${fmtN(totals[i])} alerts`];
      let acc = 0;
      for (const p of order) {
        const v = tl.series[p][i];
        if (!v) continue;
        tip.push(`${p}: ${fmtN(v)}`);
        const rect = s("rect", { class: "bar", x: L + i * bw + Math.min(1, bw * 0.1), width: Math.max(1, bw - Math.min(2, bw * 0.2)),
                                 y: y(acc + v), height: Math.max(0.5, y(acc) - y(acc + v)) });
        rect.style.fill = prioVar(p);
        col.append(rect);
        acc += v;
      }
      col.append(s("title", {}, tip.join("\n")));
      col.addEventListener("click", () => { state.from = String(t0); state.to = String(t0 + tl.step); refresh(true); });
      svg.append(col);
    }
    if (!totals.some(Boolean)) svg.append(s("text", { class: "empty", x: W / 2, y: H / 2, "text-anchor": "middle" }, "No alerts in this range"));
    box.replaceChildren(svg);
    $("timeline-step").textContent = `${stepLabel(tl.step)} per bar · click a bar to zoom`;
    $("legend").replaceChildren(...PRIORITIES.filter((p) => tl.series[p]).map((p) => {
      const dot = h("i"); dot.style.background = prioVar(p); return h("span", {}, dot, p);
    }));
  }
  async function loadDashboard() {
    const [counts, tl] = await Promise.all([api("counts"), api("timeline")]);
    lastCounts = counts;
    renderCards(counts); renderTimeline(tl);
    for (const d of ["rule", "hostname", "tag", "source"]) renderBars(d, counts.by[d]);
    fillAdders(counts);
  }

  // ---- events
  // Falco's text output starts with "<time>: <Priority> "; the table already has both columns.
  const PREFIX = new RegExp(`^\\S+: (${PRIORITIES.join("|")}|Info) `);
  const message = (output) => output.replace(PREFIX, "");
  function eventRow(e, fresh) {
    const badge = h("span", { class: "badge" }, e.priority); badge.style.setProperty("--c", prioVar(e.priority));
    return h("tr", { class: fresh ? "fresh" : null, "data-uuid": e.uuid, onclick: () => openDetail(e.uuid) },
      h("td", { class: "time" }, fmtTime(e.time)), h("td", {}, badge), h("td", { title: e.rule }, e.rule),
      h("td", { title: e.hostname }, e.hostname), h("td", {}, e.source), h("td", { class: "output", title: e.output }, message(e.output)),
      h("td", { title: e.tags.join(", ") }, ...e.tags.map((t) => h("span", { class: "tag" }, t))));
  }
  async function loadEvents(append) {
    const extra = { limit: "100" };
    if (append && cursor) extra.before = cursor;
    const page = await api("events", extra);
    const body = $("events-body");
    const rows = page.events.map((e) => eventRow(e, !append && seen.size > 0 && !seen.has(e.uuid)));
    if (append) body.append(...rows);
    else {
      seen = new Set(page.events.map((e) => e.uuid));
      body.replaceChildren(...(rows.length ? rows : [h("tr", { class: "empty-row" }, h("td", { colspan: 7 }, "No alerts match these filters."))]));
    }
    if (append) page.events.forEach((e) => seen.add(e.uuid));
    cursor = page.next;
    $("more").hidden = !cursor;
    $("events-total").textContent = `· ${fmtN(page.total)}${page.total_exact ? "" : "+"} matching`;
    for (const fmt of ["json", "csv"]) $(`export-${fmt}`).setAttribute("href", `/api/export?${params({ format: fmt })}`);
    if (!lastCounts) { lastCounts = await api("counts"); fillAdders(lastCounts); }
  }

  // ---- detail
  function closeDetail() { state.event = ""; $("detail").hidden = true; $("scrim").hidden = true; writeHash(); }
  function procBox(p, isSelf) {
    return h("div", { class: isSelf ? "proc self" : "proc" },
      h("span", { class: "lvl" }, p.level === 0 ? "this process" : p.level === 1 ? "parent" : `ancestor ${p.level}`),
      h("span", { class: "pname" }, p.name || "(unknown)"), p.pid !== undefined ? h("span", { class: "pid" }, `pid ${p.pid}`) : null,
      p.cmdline ? h("div", { class: "cmd" }, p.cmdline) : null,
      p.exepath && !p.cmdline ? h("div", { class: "cmd" }, p.exepath) : null);
  }
  async function openDetail(uuid) {
    state.event = uuid; writeHash();
    const res = await fetch(`/api/event/${encodeURIComponent(uuid)}`, { credentials: "same-origin" });
    if (res.status === 401) { location.assign("/login"); return; }
    const body = await res.json();
    $("detail").hidden = false; $("scrim").hidden = false;
    if (!res.ok) { $("detail-title").replaceChildren(h("div", { class: "title" }, body.error)); $("detail-body").replaceChildren(); return; }
    const a = body.alert;
    const badge = h("span", { class: "badge" }, a.priority); badge.style.setProperty("--c", prioVar(a.priority));
    $("detail-title").replaceChildren(badge, h("div", { class: "title" }, a.rule),
      h("div", { class: "sub" }, `${fmtTime(a.time)} · ${a.hostname} · ${a.source} · uuid ${a.uuid}`));
    const parts = [h("h3", {}, "Output"), h("pre", { id: "detail-output" }, a.output)];
    parts.push(h("div", { class: "quick" },
      h("button", { onclick: () => { closeDetail(); addFilter("rule", a.rule); } }, "Only this rule"),
      h("button", { onclick: () => { closeDetail(); addFilter("hostname", a.hostname); } }, "Only this host"),
      ...a.tags.map((t) => h("button", { onclick: () => { closeDetail(); addFilter("tag", t); } }, `Tag: ${t}`))));
    if (body.ancestry.length) {
      const chain = [];
      body.ancestry.slice().reverse().forEach((p, i, all) => {
        chain.push(procBox(p, p.level === 0));
        if (i < all.length - 1) chain.push(h("div", { class: "link" }, "↳ spawned"));
      });
      parts.push(h("h3", {}, "Process ancestry"), h("div", { class: "chain", id: "ancestry" }, chain));
    }
    const keys = Object.keys(a.output_fields).sort();
    parts.push(h("h3", {}, `Output fields (${keys.length})`), h("table", { class: "fields", id: "detail-fields" },
      h("tbody", {}, keys.map((k) => { const v = a.output_fields[k];
        return h("tr", {}, h("td", { class: "k" }, k), h("td", { class: "v" }, v === null ? "null" : typeof v === "object" ? JSON.stringify(v) : String(v))); }))));
    if (a.tags.length) parts.push(h("h3", {}, "Tags"), h("div", {}, a.tags.map((t) => h("span", { class: "tag" }, t))));
    parts.push(h("h3", {}, "Raw alert"), h("pre", {}, JSON.stringify(a, null, 2)));
    $("detail-body").replaceChildren(...parts);
    $("detail-body").scrollTop = 0;
  }

  // ---- status, refresh loop
  async function loadStatus() {
    try {
      const st = await api("status");
      const age = st.newest ? Math.max(0, Math.round(Date.now() / 1000 - st.newest)) : null;
      const ago = age === null ? "no alerts yet" : age < 90 ? `newest ${age}s ago` : age < 5400 ? `newest ${Math.round(age / 60)} min ago` : `newest ${Math.round(age / 3600)} h ago`;
      $("status").className = st.ingest.last_error ? "status stale" : "status";
      $("status").replaceChildren(h("span", { class: "dot" }), `${fmtN(st.ingest.inserted)} ingested · ${ago}`);
      $("status").title = st.ingest.last_error || "Ingesting from the alerts topic";
    } catch (e) { /* shown on next success */ }
  }
  async function refresh(reset) {
    if (reset) { cursor = null; lastCounts = null; }
    writeHash();
    renderChips();
    $("range").value = state.from && state.to ? "custom" : state.since;
    $("custom-range").hidden = !(state.from && state.to) && $("range").value !== "custom";
    if (state.from && state.to) { $("from").value = localInput(+state.from); $("to").value = localInput(+state.to); }
    $("search").value = state.q;
    for (const v of ["dashboard", "events"]) {
      $(`view-${v}`).hidden = state.view !== v;
      $(`nav-${v}`).classList.toggle("active", state.view === v);
    }
    document.body.dataset.loading = "1";
    try {
      if (state.view === "dashboard") await loadDashboard(); else await loadEvents(false);
      document.body.dataset.loading = "";
      document.body.dataset.ready = String(Date.now());
    } catch (e) {
      document.body.dataset.loading = "";
      $("status").textContent = `Error: ${e.message}`;
    }
  }
  function schedule() {
    clearInterval(timer);
    timer = setInterval(() => {
      loadStatus();
      if ($("live").checked && !state.event && !(state.from && state.to) && !(state.view === "events" && $("events-body").children.length > 100)) refresh(false);
    }, 5000);
  }

  function wire() {
    let debounce = null;
    $("search").addEventListener("input", () => {
      clearTimeout(debounce);
      debounce = setTimeout(() => { state.q = $("search").value.trim(); refresh(true); }, 300);
    });
    $("search").addEventListener("keydown", (ev) => { if (ev.key === "Enter") { clearTimeout(debounce); state.q = $("search").value.trim(); refresh(true); } });
    $("range").addEventListener("change", () => {
      const v = $("range").value;
      if (v === "custom") {
        const now = Math.floor(Date.now() / 1000);
        state.to = String(now); state.from = String(now - 3600);
      } else { state.since = v; state.from = state.to = ""; }
      refresh(true);
    });
    for (const id of ["from", "to"]) $(id).addEventListener("change", () => {
      const f = Date.parse($("from").value), t = Date.parse($("to").value);
      if (!isNaN(f) && !isNaN(t) && f < t) { state.from = String(Math.floor(f / 1000)); state.to = String(Math.floor(t / 1000)); refresh(true); }
    });
    for (const d of DIMS) $(`add-${d}`).addEventListener("change", (ev) => { if (ev.target.value) addFilter(d, ev.target.value); });
    for (const v of ["dashboard", "events"]) $(`nav-${v}`).addEventListener("click", (ev) => {
      ev.preventDefault(); state.view = v; refresh(true);
    });
    $("more").addEventListener("click", () => loadEvents(true));
    $("detail-close").addEventListener("click", closeDetail);
    $("scrim").addEventListener("click", closeDetail);
    document.addEventListener("keydown", (ev) => { if (ev.key === "Escape" && state.event) closeDetail(); });
    window.addEventListener("hashchange", () => { readHash(); refresh(true); if (state.event) openDetail(state.event); });
    let resize = null;
    window.addEventListener("resize", () => { clearTimeout(resize); resize = setTimeout(() => { if (state.view === "dashboard") refresh(false); }, 200); });
  }

  readHash();
  wire();
  refresh(true).then(() => { if (state.event) openDetail(state.event); });
  loadStatus();
  schedule();
})();
