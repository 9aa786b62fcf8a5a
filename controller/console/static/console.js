// The smelter-ems operator console: live from /api/stream (server-sent events), mode changes
// through POST /api/mode. Times are shown in the plant's local time (the site's UTC offset).
"use strict";

let status = null;
let offsetH = 0;
let planChart = null;
let historyChart = null;
let manualBuiltFor = "";
const $ = (id) => document.getElementById(id);
const fix = (v, d = 1) => (v === null || v === undefined ? "–" : Number(v).toFixed(d));

function localTime(ts, withDate = false) {
  if (!ts) return "–";
  const iso = new Date((ts + offsetH * 3600) * 1000).toISOString();
  return withDate ? iso.slice(0, 10) + " " + iso.slice(11, 19) : iso.slice(11, 19);
}

function tzLabel(h) {
  const sign = h < 0 ? "−" : "+";
  const a = Math.abs(h);
  const m = Math.round((a % 1) * 60);
  return "UTC" + sign + Math.floor(a) + (m ? ":" + String(m).padStart(2, "0") : "");
}

// uPlot draws in the browser's zone: hand it a Date whose local fields are plant local time
function plantDate(ts) {
  const shifted = new Date((ts + offsetH * 3600) * 1000);
  return new Date(shifted.getTime() + shifted.getTimezoneOffset() * 60000);
}

function pill(el, text, cls) {
  el.textContent = text;
  el.className = "pill s-" + cls;
}

function bar(lo, hi, value, opts = {}) {
  const span = hi - lo || 1;
  const pos = (v) => Math.max(0, Math.min(100, ((v - lo) / span) * 100));
  let html = '<div class="bar">';
  if (opts.band) html += `<div class="band" style="left:${pos(opts.band[0])}%;width:${pos(opts.band[1]) - pos(opts.band[0])}%"></div>`;
  if (opts.fill !== undefined) html += `<div class="fill" style="width:${pos(opts.fill)}%"></div>`;
  if (opts.zero) html += `<div class="zero" style="left:${pos(0)}%"></div>`;
  if (opts.set !== undefined && opts.set !== null) html += `<div class="set" title="setpoint" style="left:${pos(opts.set)}%"></div>`;
  if (value !== null && value !== undefined) html += `<div class="mark" title="now" style="left:${pos(value)}%"></div>`;
  return html + "</div>";
}

function showStatus(s) {
  status = s;
  offsetH = s.utc_offset_h;
  $("site").textContent = s.site + " · " + s.instance;
  pill($("state"), s.state, s.state);
  $("mode").textContent = s.mode.mode;
  pill($("role"), s.active ? "active" : "standby (" + s.lease.role + ")", s.active ? "active" : "standby");
  $("plant-time").textContent = localTime(s.ts, true);
  $("tz").textContent = tzLabel(offsetH);
  $("links").textContent = "broker " + (s.mqtt.connected ? "connected" : "DOWN") +
    " · log " + s.tsdb.target + " (" + s.tsdb.written + " pts" +
    (s.tsdb.spool_points ? ", " + s.tsdb.spool_points + " spooled" : "") + ")";
  const reasons = $("reasons");
  reasons.replaceChildren(...(s.reasons.length ? s.reasons : ["all well"]).map((r) => {
    const li = document.createElement("li");
    li.textContent = r;
    return li;
  }));
  const p = s.plan;
  $("plan-info").textContent = p
    ? `plan ${p.plan_id} (${p.status}${p.reason ? ": " + p.reason : ""}), ${fix(p.age_s / 60, 0)} min old, solved in ${fix(p.solve_ms / 1000, 2)} s; ${s.plans_made} plans, ${s.fallback_plans} fallbacks` +
      (Object.keys(p.bent).length ? "; bent: " + Object.entries(p.bent).map(([k, v]) => k + " " + fix(v, 2)).join(", ") : "")
    : "no plan yet" + (s.plan_failure ? ": " + s.plan_failure : "");
  showLines(s);
  showSupply(s);
  buildManual(s);
  $("mode-submit").disabled = !s.operators;
  $("token").disabled = !s.operators;
  if (!s.operators) $("mode-result").textContent = "read-only: no operator credential is configured";
}

function showLines(s) {
  const rows = s.lines.map((l) => {
    const [hmin, hmax] = l.hard_ka;
    const heat = l.heat_budget_mwh;
    return `<tr><td><strong>${l.name}</strong></td>` +
      `<td>${fix(l.current_ka)} / ${fix(l.setpoint_ka)} <span class="muted">band ${fix(l.band_ka[0], 0)}–${fix(l.band_ka[1], 0)}</span>` +
      bar(hmin, hmax, l.current_ka, { band: l.band_ka, set: l.setpoint_ka }) + "</td>" +
      `<td>${fix(heat)} <span class="muted">of ±${fix(l.heat_limit_mwh, 0)}</span>` +
      bar(-l.heat_limit_mwh, l.heat_limit_mwh, heat, { zero: true }) + "</td>" +
      `<td>${fix(l.aluminium_today_t, 0)} <span class="muted">target ${fix(l.aluminium_target_so_far_t, 0)} so far, ${fix(l.aluminium_target_day_t, 0)} a day</span>` +
      bar(0, l.aluminium_target_day_t, null, { fill: l.aluminium_today_t || 0, set: l.aluminium_target_so_far_t }) + "</td></tr>";
  });
  document.querySelector("#lines tbody").innerHTML = rows.join("");
}

function showSupply(s) {
  const rows = [];
  for (const b of s.bess) {
    rows.push(`<tr><td>BESS ${b.name}</td><td>${fix(b.power_mw)} MW (setpoint ${fix(b.setpoint_mw)}), SOC ${fix(b.soc_frac * 100, 0)} %` +
      bar(0, 1, b.soc_frac, { band: b.soc_band_frac }) + "</td></tr>");
  }
  if (s.grid.islanded) {
    for (const m of s.grid.meters) rows.push(`<tr><td>island bus ${m.name}</td><td>${fix(m.frequency_hz, 3)} Hz</td></tr>`);
  } else {
    for (const m of s.grid.meters) {
      rows.push(`<tr><td>grid ${m.name}</td><td>${fix(m.power_mw)} MW ${m.power_mw >= 0 ? "import" : "export"} (limit ${fix(s.grid.import_limit_mw, 0)}), ${fix(m.frequency_hz, 2)} Hz` +
        bar(-s.grid.export_limit_mw, s.grid.import_limit_mw, m.power_mw, { zero: true }) + "</td></tr>");
    }
  }
  for (const c of s.captive) {
    rows.push(`<tr><td>captive ${c.name}</td><td>${fix(c.power_mw)} MW (setpoint ${fix(c.setpoint_mw)}, ${fix(c.range_mw[0], 0)}–${fix(c.range_mw[1], 0)})` +
      bar(0, c.range_mw[1], c.power_mw, { band: c.range_mw, set: c.setpoint_mw }) + "</td></tr>");
  }
  rows.push(`<tr><td>renewable</td><td>${fix(s.renewable_available_mw)} MW available; curtailed today ${fix(s.curtailed_today_mwh)} MWh</td></tr>`);
  document.querySelector("#supply tbody").innerHTML = rows.join("");
}

function buildManual(s) {
  const key = s.lines.map((l) => l.name).concat(s.bess.map((b) => b.name), s.captive.map((c) => c.name)).join(",");
  if (key === manualBuiltFor) return;
  manualBuiltFor = key;
  const field = (group, name, unit, lo, hi, value) =>
    `<label>${name} <input data-group="${group}" data-asset="${name}" type="number" step="any" min="${lo}" max="${hi}" value="${value === null ? "" : value.toFixed(1)}"> ${unit}</label>`;
  $("manual-setpoints").innerHTML =
    s.lines.map((l) => field("potline_current_ka", l.name, "kA", l.hard_ka[0], l.hard_ka[1], l.setpoint_ka ?? l.nominal_ka)).join("") +
    s.bess.map((b) => field("bess_power_mw", b.name, "MW", -b.power_limit_mw, b.power_limit_mw, b.setpoint_mw ?? 0)).join("") +
    s.captive.map((c) => field("captive_power_mw", c.name, "MW", c.range_mw[0], c.range_mw[1], c.setpoint_mw ?? c.power_mw)).join("");
}

function chartOpts(title, series, el) {
  return {
    title, width: Math.max(el.clientWidth, 400), height: 240, tzDate: plantDate,
    scales: { x: { time: true } },
    axes: [{}, { label: "MW" }],
    series: [{}].concat(series),
  };
}

function showPlan(data) {
  const plan = data.plan;
  const el = $("plan-chart");
  if (plan) {
    const cols = [plan.times, plan.forecast_p10_mw, plan.forecast_p50_mw, plan.forecast_p90_mw,
      plan.renewable_used_mw, plan.curtailed_mw, plan.grid_mw];
    const sum = (named) => plan.times.map((_, i) => Object.values(named).reduce((a, v) => a + v[i], 0));
    cols.push(sum(plan.bess_power_mw), sum(plan.captive_mw));
    const series = [
      { label: "P10", stroke: "#9ae6b4", dash: [4, 4] },
      { label: "P50", stroke: "#38a169", width: 2 },
      { label: "P90", stroke: "#9ae6b4", dash: [4, 4] },
      { label: "renewable used", stroke: "#2b6cb0", width: 2 },
      { label: "curtailed", stroke: "#e53e3e" },
      { label: "grid", stroke: "#718096" },
      { label: "BESS", stroke: "#805ad5" },
      { label: "captive", stroke: "#744210" },
    ];
    if (!planChart) planChart = new uPlot(chartOpts("plan " + plan.plan_id, series, el), cols, el);
    else {
      planChart.setData(cols);
      planChart.root.querySelector(".u-title").textContent = "plan " + plan.plan_id;
    }
    el.dataset.points = String(plan.times.length);
    el.dataset.planId = plan.plan_id;
  }
  const h = data.history;
  const hel = $("history-chart");
  if (h && h.ts.length) {
    const cols = [h.ts, h.load_mw, h.renewable_available_mw, h.renewable_used_mw, h.grid_mw, h.bess_mw, h.captive_mw];
    const series = [
      { label: "pot-lines", stroke: "#1d2430", width: 2 },
      { label: "renewable available", stroke: "#38a169" },
      { label: "renewable used", stroke: "#2b6cb0", width: 2 },
      { label: "grid", stroke: "#718096" },
      { label: "BESS", stroke: "#805ad5" },
      { label: "captive", stroke: "#744210" },
    ];
    if (!historyChart) historyChart = new uPlot(chartOpts("measured", series, hel), cols, hel);
    else historyChart.setData(cols);
    hel.dataset.points = String(h.ts.length);
  }
}

function showEvents(events) {
  const body = document.querySelector("#events tbody");
  for (const e of events) {
    const tr = document.createElement("tr");
    tr.className = e.kind;
    const who = e.who ? " [" + e.who + "]" : "";
    for (const text of [localTime(e.ts, true), e.kind + (e.code ? " " + e.code : ""), e.message + who]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.appendChild(td);
    }
    body.prepend(tr);
  }
  while (body.rows.length > 200) body.deleteRow(-1);
}

async function setMode(ev) {
  ev.preventDefault();
  const mode = document.querySelector('input[name="mode"]:checked').value;
  const body = { mode };
  const result = $("mode-result");
  if (mode === "manual") {
    for (const input of document.querySelectorAll("#manual-setpoints input")) {
      if (input.value === "") continue;
      const v = Number(input.value);
      if (v < Number(input.min) || v > Number(input.max)) {
        result.textContent = `${input.dataset.asset}: ${v} is outside the hard limits [${input.min}, ${input.max}]`;
        result.className = "err";
        return;
      }
      (body[input.dataset.group] ??= {})[input.dataset.asset] = v;
    }
  }
  const response = await fetch("/api/mode", {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: "Bearer " + $("token").value },
    body: JSON.stringify(body),
  });
  const answer = await response.json();
  if (response.ok) {
    result.textContent = answer.taken ? `mode ${answer.command.mode} in force` : `mode ${answer.command.mode} sent, not yet taken`;
    result.className = "ok";
  } else {
    result.textContent = `refused (${response.status}): ${answer.error}`;
    result.className = "err";
  }
}

function connect() {
  const source = new EventSource("/api/stream");
  source.addEventListener("open", () => pill($("live"), "live", "live"));
  source.addEventListener("error", () => pill($("live"), "connection lost, retrying", "lost"));
  source.addEventListener("status", (e) => showStatus(JSON.parse(e.data)));
  source.addEventListener("plan", (e) => showPlan(JSON.parse(e.data)));
  source.addEventListener("events", (e) => showEvents(JSON.parse(e.data)));
}

window.addEventListener("DOMContentLoaded", () => {
  $("mode-form").addEventListener("submit", setMode);
  connect();
});
