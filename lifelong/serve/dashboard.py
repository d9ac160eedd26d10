"""``GET /dashboard``: a live page for the operator, one self-contained HTML document (no external
scripts, styles or fonts) that polls ``GET /dashboard/data`` once a second.

The page itself holds no data. ``/dashboard/data`` needs the predict token when ``protect_predict``
is set: open ``/dashboard#token=<token>`` (the fragment never reaches the server or its logs; the
page keeps the token in the tab's sessionStorage and removes it from the address bar).

It shows online accuracy over time, drift alarms, events received / applied / pending, apply lag,
snapshots, rollbacks, the freeze switch, shadow mode and the learning model's accuracy, the
negative flip rate, refused publishes and failing writes.
"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lifelong serve</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em;margin:0 0 .6em}
table{border-collapse:collapse;margin:.5em 0}
td{padding:.15em .8em .15em 0}
td.v{font-variant-numeric:tabular-nums;font-weight:600}
#status.ok{color:#176b2c}#status.degraded,#status.halted{color:#a11}
#errors{color:#a11;white-space:pre-wrap}
svg{border:1px solid #ccc;background:#fafafa}
</style></head>
<body>
<h1>lifelong serve: <span id="learner">…</span> <span id="status">…</span></h1>
<div id="auth" hidden>This dashboard needs the predict token: open <code>/dashboard#token=&lt;token&gt;</code>.</div>
<table>
<tr><td>events logged</td><td class="v" id="logged_seq">–</td><td>applied</td><td class="v" id="applied_seq">–</td>
<td>pending</td><td class="v" id="pending">–</td><td>published</td><td class="v" id="published_seq">–</td></tr>
<tr><td>online accuracy</td><td class="v" id="online_accuracy">–</td><td>apply lag p50</td><td class="v" id="lag_p50">–</td>
<td>p99</td><td class="v" id="lag_p99">–</td><td>negative flip rate</td><td class="v" id="negative_flip_rate">–</td></tr>
<tr><td>snapshots</td><td class="v" id="snapshots">–</td><td>last snapshot seq</td><td class="v" id="snapshot_seq">–</td>
<td>rollbacks</td><td class="v" id="rollbacks">–</td><td>drift alarms</td><td class="v" id="drift_alarms">–</td></tr>
<tr><td>learning</td><td class="v" id="frozen">–</td><td>failing writes</td><td class="v" id="faults">–</td>
<td>updates</td><td class="v" id="updates">0</td></tr>
<tr><td>shadow mode</td><td class="v" id="shadow">–</td><td>learning model accuracy</td><td class="v" id="shadow_online_accuracy">–</td>
<td>refused publishes</td><td class="v" id="refused">–</td><td>served</td><td class="v" id="pinned">–</td></tr>
</table>
<div>online accuracy over time (drift alarms in red)</div>
<svg id="chart" width="640" height="160" viewBox="0 0 640 160" role="img" aria-label="online accuracy over time">
<polyline id="acc" fill="none" stroke="#2458a6" stroke-width="2" points=""></polyline><g id="alarms"></g></svg>
<div id="errors"></div>
<script>
"use strict";
(function () {
  const errors = document.getElementById("errors");
  function fail(msg) { errors.textContent = String(msg); }
  window.addEventListener("error", (e) => fail(e.message));
  const hash = new URLSearchParams(location.hash.slice(1));
  let token = hash.get("token") || sessionStorage.getItem("lifelong-serve-token") || "";
  if (hash.get("token")) {
    sessionStorage.setItem("lifelong-serve-token", token);
    history.replaceState(null, "", location.pathname);
  }
  let updates = 0;
  const set = (id, v) => { document.getElementById(id).textContent = v; };
  const num = (v, d) => (v === null || v === undefined) ? "–" : Number(v).toFixed(d);
  function chart(d) {
    const h = d.history;
    if (!h.length) return;
    const t0 = h[0][0], t1 = Math.max(h[h.length - 1][0], t0 + 1);
    const x = (t) => 5 + 630 * (t - t0) / (t1 - t0);
    const pts = h.filter((p) => p[1] !== null).map((p) => x(p[0]).toFixed(1) + "," + (155 - 150 * p[1]).toFixed(1));
    document.getElementById("acc").setAttribute("points", pts.join(" "));
    const g = document.getElementById("alarms");
    g.replaceChildren(...d.drift.filter((a) => a[0] >= t0).map((a) => {
      const l = document.createElementNS("http://www.w3.org/2000/svg", "line");
      l.setAttribute("x1", x(a[0])); l.setAttribute("x2", x(a[0])); l.setAttribute("y1", 0); l.setAttribute("y2", 160);
      l.setAttribute("stroke", "#c22"); return l;
    }));
  }
  async function refresh() {
    const r = await fetch("/dashboard/data", {headers: token ? {"Authorization": "Bearer " + token} : {}, cache: "no-store"});
    if (r.status === 401 || r.status === 403) { document.getElementById("auth").hidden = false; return; }
    if (!r.ok) { fail("GET /dashboard/data: " + r.status); return; }
    const d = await r.json();
    set("learner", d.learner);
    const s = document.getElementById("status"); s.textContent = d.status; s.className = d.status;
    for (const k of ["logged_seq", "applied_seq", "pending", "published_seq", "snapshots", "snapshot_seq", "rollbacks",
                     "drift_alarms"]) set(k, d[k]);
    set("online_accuracy", num(d.online_accuracy, 3));
    set("lag_p50", d.apply_lag_p50 === null ? "–" : num(1000 * d.apply_lag_p50, 1) + " ms");
    set("lag_p99", d.apply_lag_p99 === null ? "–" : num(1000 * d.apply_lag_p99, 1) + " ms");
    set("negative_flip_rate", num(d.negative_flip_rate, 3));
    set("frozen", d.frozen ? "frozen" : "on");
    set("shadow", d.shadow ? "on" : "off");
    set("shadow_online_accuracy", num(d.shadow_online_accuracy, 3));
    set("refused", d.publish_guard ? d.publish_guard.refused : "–");
    set("pinned", d.pinned ? "pinned at seq " + d.published_seq : "latest");
    set("faults", Object.keys(d.faults).join(", ") || "none");
    chart(d);
    errors.textContent = "";
    set("updates", ++updates);
  }
  const tick = () => refresh().catch((e) => fail("GET /dashboard/data: " + e));
  tick();
  setInterval(tick, 1000);
})();
</script>
</body></html>
"""
