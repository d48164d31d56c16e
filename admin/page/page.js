// The aagtm live status page. It renders the /v1/status document that
// /v1/status/stream pushes (Server-Sent Events) on every change; it never
// reloads and needs no token. All text is set with textContent: nothing
// from the node is parsed as HTML.
"use strict";

// readable formats float seconds at the precision a person reads, as the
// node's policy.Readable does: 412µs, 801ms, 1.3s, 2m5s.
function readable(sec) {
  if (sec === undefined || sec === null || isNaN(sec)) return "-";
  const neg = sec < 0 ? "-" : "";
  const a = Math.abs(sec);
  if (a === 0) return "0s";
  if (a < 0.001) return neg + Math.round(a * 1e6) + "µs";
  if (a < 1) return neg + Math.round(a * 1e3) + "ms";
  if (a < 60) return neg + (Math.round(a * 10) / 10) + "s";
  const s = Math.round(a), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return neg + (h ? h + "h" : "") + (h || m ? m + "m" : "") + r + "s";
}

// clock prints a time as the node's tables do, UTC to the millisecond.
function clock(t) {
  if (!t) return "-";
  const d = new Date(t);
  return isNaN(d) ? String(t) : d.toISOString().replace("T", " ").replace("Z", " UTC");
}

// ago says how long before the node's evaluation time a time was.
function ago(t, now) {
  if (!t) return "";
  const d = (now - new Date(t)) / 1000;
  return d >= 0 ? readable(d) + " ago" : "";
}

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const k of kids.flat()) {
    if (k === undefined || k === null || k === "") continue;
    e.append(k instanceof Node ? k : String(k));
  }
  return e;
}

// badge is a state told by symbol, word and colour together.
function badge(kind, text) {
  const sym = { up: "▲", down: "▼", warn: "◆", info: "●", muted: "○" }[kind] || "";
  return el("span", { class: "badge " + kind }, sym + " " + text);
}

// row builds a table row whose cells carry their column's label for the
// phone layout.
function row(table, cells, attrs) {
  const labels = [...document.querySelectorAll("#" + table + " thead th")].map((th) => th.textContent);
  return el("tr", attrs, cells.map((c, i) => {
    const a = Object.assign({ "data-label": labels[i] || "" }, c && c.attrs);
    return el("td", a, c && c.attrs ? c.kids : c);
  }));
}

function fill(id, rows, empty) {
  const body = document.querySelector("#" + id + " tbody");
  if (rows.length === 0) rows = [el("tr", {}, el("td", { colspan: 9, class: "muted" }, empty))];
  body.replaceChildren(...rows);
}

function memberVerdict(m) {
  if (m.verdict === "down") return badge("down", "DOWN" + (m.down_outcome ? ": " + m.down_outcome : ""));
  if (m.verdict === "up") return badge("up", "up");
  return badge("muted", m.verdict || "unknown");
}

function votes(m) {
  return el("ul", { class: "votes" }, (m.vantages || []).map((v) => {
    let kind = v.verdict === "down" ? "down" : "up", word = v.verdict;
    if (!v.fresh) { kind = "muted"; word = "stale"; }
    else if (!v.voting) { kind = "muted"; word = "abstains"; }
    const outcome = v.last_outcome && v.last_outcome !== "pass" ? " " + v.last_outcome : "";
    return el("li", { title: v.last_error || "" }, el("span", { class: "mono" }, v.agent), " ", badge(kind, word + outcome),
      v.fresh && v.rtt_seconds > 0 ? el("span", { class: "muted" }, " rtt " + readable(v.rtt_seconds)) : "");
  }));
}

function lags(m) {
  const by = m.lag_by_source_seconds || {};
  const names = Object.keys(by).sort();
  if (!m.lag_known || names.length === 0) return el("span", { class: "muted" }, "not measured");
  return el("ul", { class: "lags" }, names.map((src) => el("li", {}, src + ": " + readable(by[src]))));
}

function minRTT(m) {
  const r = (m.vantages || []).filter((v) => v.fresh && v.rtt_seconds > 0).map((v) => v.rtt_seconds);
  return r.length ? readable(Math.min(...r)) : "-";
}

function flags(m) {
  const f = [];
  if (m.drained) f.push(badge("warn", "drained"));
  if (m.forced) f.push(badge("info", "forced"));
  if (m.lagging) f.push(badge("warn", "lagging"));
  if (m.verdict === "up" && !m.settled) f.push(badge("warn", "failback hold"));
  if (m.fail_static) f.push(badge("warn", "no quorum: last verdict kept"));
  return f.length ? f.flatMap((b) => [b, " "]) : el("span", { class: "muted" }, "-");
}

function answerCell(a) {
  if (a.servfail) return badge("down", "SERVFAIL");
  if (!a.members || a.members.length === 0) return "-";
  return el("span", {}, el("strong", {}, a.members.join(", ")), el("br"), el("span", { class: "muted mono" }, (a.records || []).join(" · ")));
}

// overrideValue shows any override field: the page does not need to know
// them all (who, why and until when show as they are added to the API).
function overrideValue(v) {
  if (Array.isArray(v)) return v.length ? v.map(overrideValue).join(", ") : null;
  if (v && typeof v === "object") {
    const parts = Object.entries(v).map(([k, x]) => {
      const s = overrideValue(x);
      return s === null ? null : k + (typeof x === "object" && x !== null ? " (" + s + ")" : " = " + s);
    }).filter((s) => s !== null);
    return parts.length ? parts.join("; ") : null;
  }
  if (v === undefined || v === null || v === "") return null;
  return String(v);
}

let previousAnswers = new Map();

function render(st) {
  const now = st.generated ? new Date(st.generated) : new Date();
  document.getElementById("node").textContent = "node " + st.node;
  document.title = "aagtm " + st.node + (st.members.some((m) => m.verdict === "down") ? " · member down" : "");
  const down = st.members.filter((m) => m.verdict === "down").length;
  const lagging = st.members.filter((m) => m.lagging).length;
  document.getElementById("summary").replaceChildren(
    st.ready ? badge("up", "ready") : badge("down", "NOT READY"), " ",
    down ? badge("down", down + " down") : badge("up", "all members up"), " ",
    lagging ? badge("warn", lagging + " lagging") : "", " ",
    el("span", { class: "muted" }, "zone " + (st.zone || "-") + " · serial " + st.serial + " · evaluated " + clock(st.generated) + " · config " + (st.config_hash || "-")));

  const state = st.state;
  const stateItems = [];
  if (state && state.last_save_error) stateItems.push(el("li", {}, badge("down", "NOT SAVED"), " " + state.last_save_error + " (" + state.save_failures + " failures)"));
  if (state && state.corrupt) stateItems.push(el("li", {}, badge("warn", "corrupt state file found at start"), " " + overrideValue(state.corrupt)));
  document.getElementById("state-section").hidden = stateItems.length === 0;
  document.getElementById("state").replaceChildren(...stateItems);

  const seen = new Map();
  fill("answers", st.answers.map((a) => {
    const key = a.database + "/" + a.region, val = (a.members || []).join(",") + (a.servfail ? "!" : "");
    seen.set(key, val);
    const changed = previousAnswers.has(key) && previousAnswers.get(key) !== val;
    return row("answers", [a.database, a.region, { attrs: { class: "answer" }, kids: answerCell(a) },
      el("span", { title: clock(a.since) }, ago(a.since, now)), { attrs: { class: "reason" }, kids: a.reason }],
    { "data-db": a.database, "data-region": a.region, "data-members": (a.members || []).join(","), class: changed ? "changed" : null });
  }), "no answers yet");
  previousAnswers = seen;

  fill("members", st.members.map((m) => row("members", [
    el("span", {}, el("strong", {}, m.name), el("br"), el("span", { class: "muted" }, m.database + " · " + m.region)),
    el("span", {}, memberVerdict(m), el("br"), el("span", { class: "muted" }, m.reason || ""), m.since ? el("span", { class: "muted" }, " · since " + clock(m.since)) : ""),
    votes(m), lags(m), minRTT(m), flags(m),
  ], { "data-member": m.name, "data-verdict": m.verdict, "data-lagging": String(!!m.lagging) })), "no members evaluated yet");

  const ov = overrideValue(st.overrides);
  document.getElementById("overrides").replaceChildren(ov ? el("p", { class: "warn" }, ov) : el("p", { class: "muted" }, "none: every answer follows health"));

  const events = (st.events || []).slice().reverse();
  document.getElementById("events").replaceChildren(...(events.length ? events.map((e) => {
    const figures = [];
    if (e.detection_seconds > 0) figures.push("detected in " + readable(e.detection_seconds));
    if (e.kind === "failover") figures.push("RPO estimate " + (e.rpo_known ? readable(e.rpo_estimate_seconds) : "unknown"));
    return el("li", { class: e.kind, "data-kind": e.kind, "data-region": e.region, "data-to": e.to },
      el("span", { class: "when" }, clock(e.at)), " ",
      e.kind === "failover" ? badge("down", "failover") : e.kind === "failback" ? badge("up", "failback") : badge("info", e.kind), " ",
      el("strong", {}, e.database + " " + (e.region || "") + ": " + (e.from || "(none)") + " → " + (e.to || "(none)")),
      figures.length ? el("span", { class: "figures" }, " · " + figures.join(" · ")) : "",
      el("br"), el("span", { class: "muted" }, e.reason || ""));
  }) : [el("li", { class: "muted" }, "no answer changes since the node started")]));

  fill("agents", (st.agents || []).map((a) => row("agents", [
    el("span", { class: "mono" }, a.id), a.region,
    a.connected ? el("span", {}, badge("up", "connected"), " " + (a.remote || "") + (a.streams > 1 ? " (" + a.streams + " streams)" : ""))
      : badge("down", "disconnected"),
    el("span", { title: clock(a.last_seen) }, a.last_seen ? ago(a.last_seen, now) : "never"),
    a.accepted + " / " + a.refused + " / " + a.dropped, a.last_refusal || "-",
  ], { "data-agent": a.id })), "no agents known to this node");
}

function connect() {
  const conn = document.getElementById("conn");
  const es = new EventSource("/v1/status/stream");
  es.addEventListener("status", (ev) => {
    conn.textContent = "● live";
    conn.className = "conn live";
    render(JSON.parse(ev.data));
  });
  es.onerror = () => {
    // EventSource reconnects by itself; say so meanwhile.
    conn.textContent = "✕ connection lost: reconnecting";
    conn.className = "conn lost";
  };
}

connect();
