"""The queue page's HTML: one self-contained document (inline style and script, nothing
fetched from elsewhere) that polls /queue/data every few seconds with its own query and
ticks the waiting times every second. It writes text only (`textContent`), never markup
from the data, and has no form or button: it cannot change anything."""

from __future__ import annotations

POLL_MS = 3000

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>chat-rescue queue</title>
<style>
body{font:15px/1.4 system-ui,sans-serif;margin:0;background:#101418;color:#e8ecef}
header{display:flex;justify-content:space-between;padding:10px 16px;background:#1b2229}
h1{font-size:18px;margin:0}h2{font-size:16px;margin:18px 16px 6px}
#status{color:#9aa5b1}#status.bad{color:#ff8a80}
.figures{margin:0 16px 8px;color:#c6ced6}.figures b{color:#fff}
table{border-collapse:collapse;margin:0 16px;width:calc(100% - 32px)}
td,th{padding:5px 8px;text-align:left;border-bottom:1px solid #26303a}
th{color:#9aa5b1;font-weight:normal}
tr.row td:first-child{border-left:6px solid}
.waiting td:first-child{border-left-color:#ffb300}.waiting .label{color:#ffb300}
.overdue td:first-child{border-left-color:#ff5252}.overdue{background:#3a1717}
.overdue .label{color:#ff8a80}
.with_operator td:first-child{border-left-color:#42a5f5}.with_operator .label{color:#90caf9}
.waiting_on_customer td:first-child{border-left-color:#66bb6a}
.waiting_on_customer .label{color:#a5d6a7}
.wait{font-variant-numeric:tabular-nums;white-space:nowrap}
.preview{color:#c6ced6;max-width:40em;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
ol.events{margin:6px 16px 0;padding-left:20px;color:#c6ced6}
.more{margin:4px 16px;color:#9aa5b1}
</style></head>
<body>
<header><h1>Support queue</h1><span id="status">loading…</span></header>
<main id="teams"></main>
<script>
"use strict";
const LABELS = {waiting: "waiting", overdue: "overdue", with_operator: "with operator",
                waiting_on_customer: "waiting on customer"};
let skew = 0;  // server time minus this browser's, so the times tick from the server's clock
function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}
function took(seconds) {
  seconds = Math.max(0, Math.floor(seconds));
  const h = Math.floor(seconds / 3600), m = Math.floor(seconds % 3600 / 60), s = seconds % 60;
  return h ? h + "h " + m + "m" : m ? m + "m " + String(s).padStart(2, "0") + "s" : s + "s";
}
function clock(at) { return new Date(at * 1000).toLocaleTimeString(); }
function tick() {
  const now = Date.now() / 1000 + skew;
  for (const cell of document.querySelectorAll("[data-since]")) {
    cell.textContent = took(now - Number(cell.dataset.since));
  }
}
function figures(team) {
  const p = document.createElement("p");
  p.className = "figures";
  const parts = [["open", team.open], ["overdue", team.overdue],
                 ["answered today", team.answered_today],
                 ["first response p50", team.first_response_p50 === null ? "–"
                   : took(team.first_response_p50)],
                 ["within target" + (team.first_response_target === null ? ""
                   : " (" + took(team.first_response_target) + ")"),
                  team.within_target === null ? "–" : Math.round(team.within_target * 100) + "%"]];
  for (const [name, value] of parts) {
    p.append(name + " ", el("b", value), "   ");
  }
  return p;
}
function render(data) {
  skew = data.at - Date.now() / 1000;
  const main = document.getElementById("teams");
  const sections = [];
  for (const team of data.teams) {
    const section = el("section");
    section.dataset.team = team.team;
    section.append(el("h2", team.team), figures(team));
    const table = el("table");
    const head = el("tr");
    for (const name of ["state", "waiting", "customer", "owner", "preview"]) {
      head.append(el("th", name));
    }
    table.append(head);
    for (const row of team.rows) {
      const tr = el("tr", null, "row " + row.shown);
      tr.dataset.key = row.key;
      tr.dataset.shown = row.shown;
      const label = row.shown === "overdue" && row.escalations ? "overdue (called in)"
        : LABELS[row.shown];
      const wait = el("td", "", "wait");
      wait.dataset.since = row.since;
      tr.append(el("td", label, "label"), wait, el("td", row.customer),
                el("td", row.owner === null ? "nobody" : row.owner),
                el("td", row.preview, "preview"));
      table.append(tr);
    }
    section.append(table);
    if (team.more) section.append(el("p", "and " + team.more + " more", "more"));
    const events = el("ol", null, "events");
    for (const event of team.events) {
      const words = clock(event.at) + "  " + event.kind + (event.detail ? " (" + event.detail
        + ")" : "") + (event.who ? " by " + event.who : "");
      events.append(el("li", words));
    }
    if (team.events.length) section.append(el("h2", "Newest events"), events);
    sections.push(section);
  }
  if (!sections.length) sections.push(el("p", "No open conversations.", "more"));
  main.replaceChildren(...sections);
  tick();
}
async function poll() {
  const status = document.getElementById("status");
  try {
    const answer = await fetch("/queue/data" + location.search, {cache: "no-store"});
    if (!answer.ok) {
      status.textContent = (await answer.text()).trim() || "refused (" + answer.status + ")";
      status.className = "bad";
      return;  // a link that expired stays expired: stop asking
    }
    render(await answer.json());
    status.textContent = "updated " + new Date().toLocaleTimeString();
    status.className = "";
  } catch (failed) {
    status.textContent = "cannot reach the bot; trying again";
    status.className = "bad";
  }
  setTimeout(poll, POLL);
}
const POLL = __POLL__;
setInterval(tick, 1000);
poll();
</script>
</body></html>
""".replace("__POLL__", str(POLL_MS))
