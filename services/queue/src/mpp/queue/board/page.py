"""The board's HTML page: one self-contained document (inline CSS and JS, no external asset) for a TV."""

from __future__ import annotations

from html import escape
from typing import Any

import orjson


def render_page(*, title: str, subtitle: str, config: dict[str, Any]) -> str:
    """The page for one site or agency zone; ``config`` tells the script where to listen."""
    # Inside <script>, "</" must not appear: escape "<" in the JSON.
    config_json = orjson.dumps(config).decode().replace("<", "\\u003c")
    return (
        _PAGE.replace("{{title}}", escape(title))
        .replace("{{subtitle}}", escape(subtitle))
        .replace("{{config}}", config_json)
    )


_PAGE = """<!DOCTYPE html>
<html lang="id">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Papan Antrean - {{title}}</title>
<style>
  :root {
    --bg: #071a2f; --panel: #0d2a4a; --panel2: #10335a; --text: #ffffff; --muted: #b9cbe0;
    --accent: #ffd21f; --accent-text: #0a1a2c; --ok: #3ddc84; --line: #1f4a78;
  }
  * { box-sizing: border-box; margin: 0; padding: 0; }
  html, body { height: 100%; background: var(--bg); color: var(--text); overflow: hidden;
    font-family: "DejaVu Sans", "Liberation Sans", Arial, Helvetica, sans-serif; }
  body { display: grid; grid-template-rows: 12vh 1fr 21vh; gap: 1.6vh; padding: 1.6vh 1.6vw; }
  header { display: flex; align-items: center; justify-content: space-between; background: var(--panel);
    border-radius: 1.2vh; padding: 0 2.2vw; border-bottom: 0.6vh solid var(--accent); }
  .brand .org { font-size: 2vh; letter-spacing: 0.35vw; color: var(--accent); font-weight: 700; }
  .brand h1 { font-size: 4.4vh; font-weight: 800; line-height: 1.15; }
  .brand .sub { font-size: 2.3vh; color: var(--muted); }
  .clock { text-align: right; }
  .clock .time { font-size: 6vh; font-weight: 800; font-variant-numeric: tabular-nums; line-height: 1; }
  .clock .date { font-size: 2.4vh; color: var(--muted); margin-top: 0.6vh; }
  main { display: grid; grid-template-columns: 1.55fr 1fr; gap: 1.6vw; min-height: 0; }
  .now { background: var(--panel); border-radius: 1.6vh; display: flex; flex-direction: column;
    align-items: center; justify-content: center; text-align: center; padding: 2vh 2vw; position: relative; }
  .now .label { font-size: 4vh; letter-spacing: 0.5vw; color: var(--muted); font-weight: 700; }
  .now .number { font-size: 27vh; font-weight: 900; line-height: 1; letter-spacing: 0.4vw;
    font-variant-numeric: tabular-nums; margin: 1vh 0 1.5vh; }
  .now .counter { font-size: 9vh; font-weight: 900; background: var(--accent); color: var(--accent-text);
    border-radius: 1.4vh; padding: 0.4vh 3.2vw; }
  .now .arrow { font-size: 3vh; color: var(--muted); margin-bottom: 1vh; letter-spacing: 0.3vw; }
  .now .say { font-size: 2.6vh; color: var(--muted); margin-top: 2.4vh; min-height: 3vh; font-style: italic; }
  .now.idle .number { color: var(--muted); }
  .now.idle .counter { background: var(--panel2); color: var(--muted); }
  .now.flash { animation: flash 0.7s ease-in-out 0s 5; }
  @keyframes flash {
    0%, 100% { background: var(--panel); }
    50% { background: #b8860b; }
  }
  .history { background: var(--panel); border-radius: 1.6vh; padding: 2.2vh 1.8vw; display: flex;
    flex-direction: column; min-height: 0; }
  .history h2, .counters h2 { font-size: 2.6vh; letter-spacing: 0.3vw; color: var(--accent); margin-bottom: 1.4vh; }
  .history ol { list-style: none; display: flex; flex-direction: column; gap: 1.1vh; }
  .history li { display: grid; grid-template-columns: 1fr auto; align-items: center; background: var(--panel2);
    border-radius: 1vh; padding: 1.1vh 1.4vw; border-left: 0.7vh solid var(--line); }
  .history li .num { font-size: 6.2vh; font-weight: 800; font-variant-numeric: tabular-nums; }
  .history li .ctr { font-size: 3.8vh; font-weight: 700; color: var(--accent); }
  .history li.first { border-left-color: var(--accent); }
  .history .empty, .counters .empty { font-size: 3vh; color: var(--muted); }
  .counters { background: var(--panel); border-radius: 1.6vh; padding: 1.8vh 1.8vw; min-height: 0; overflow: hidden; }
  .counters ul { list-style: none; display: grid; grid-template-columns: repeat(auto-fill, minmax(11.5vw, 1fr));
    gap: 1vh 0.9vw; }
  .counters li { background: var(--panel2); border-radius: 1vh; padding: 0.9vh 0.8vw; text-align: center;
    border-top: 0.5vh solid var(--line); }
  .counters li.open { border-top-color: var(--ok); }
  .counters li.called { border-top-color: var(--accent); }
  .counters li .name { font-size: 2.3vh; color: var(--muted); font-weight: 700; }
  .counters li .tnum { font-size: 4.6vh; font-weight: 800; font-variant-numeric: tabular-nums; }
  .counters li.closed .tnum { font-size: 2.6vh; color: var(--muted); line-height: 2.1; font-weight: 600; }
  #status { position: fixed; right: 1.6vw; bottom: 1.2vh; font-size: 1.8vh; color: var(--accent-text);
    background: var(--accent); border-radius: 1vh; padding: 0.4vh 1vw; opacity: 0.92; }
  #status[hidden] { display: none; }
</style>
</head>
<body>
<header>
  <div class="brand">
    <div class="org">PAPAN PANGGILAN ANTREAN</div>
    <h1>{{title}}</h1>
    <div class="sub">{{subtitle}}</div>
  </div>
  <div class="clock"><div class="time" id="clock">--.--</div><div class="date" id="date"></div></div>
</header>
<main>
  <section class="now idle" id="now" aria-live="assertive">
    <div class="label">NOMOR ANTREAN</div>
    <div class="number" id="current-number">&mdash;</div>
    <div class="arrow" id="current-arrow">SILAKAN MENUJU</div>
    <div class="counter" id="current-counter">LOKET</div>
    <div class="say" id="announcement"></div>
  </section>
  <section class="history">
    <h2>PANGGILAN SEBELUMNYA</h2>
    <ol id="history"></ol>
  </section>
</main>
<section class="counters">
  <h2>LOKET</h2>
  <ul id="counters"></ul>
</section>
<div id="status" role="status" hidden>menghubungkan ulang&hellip;</div>
<script>
"use strict";
(function () {
  var CFG = {{config}};
  var DAYS = ["Minggu", "Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu"];
  var MONTHS = ["Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September",
    "Oktober", "November", "Desember"];
  var ZONES = {"Asia/Jakarta": "WIB", "Asia/Pontianak": "WIB", "Asia/Makassar": "WITA", "Asia/Jayapura": "WIT"};
  var HISTORY = 5;
  var calls = [];          // newest first, one entry per ticket
  var counters = {};       // code -> tile
  var order = [];          // counter codes in display order
  var source = null, retryTimer = null, watchdog = null, retryDelay = 1000, lastMessage = Date.now();

  function el(id) { return document.getElementById(id); }
  function node(tag, cls, text) {
    var n = document.createElement(tag);
    if (cls) { n.className = cls; }
    if (text !== undefined) { n.textContent = text; }
    return n;
  }
  function ticketOf(call) { return call.key.split(":")[0]; }
  function upper(s) { return (s || "").toUpperCase(); }

  // --- clock ---------------------------------------------------------------------------------------
  function tick() {
    var now = new Date(), p = {};
    try {
      new Intl.DateTimeFormat("en-GB", {timeZone: CFG.timezone, hourCycle: "h23", year: "numeric",
        month: "numeric", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit"})
        .formatToParts(now).forEach(function (x) { p[x.type] = x.value; });
    } catch (e) {
      p = {year: now.getFullYear(), month: now.getMonth() + 1, day: now.getDate(),
        hour: ("0" + now.getHours()).slice(-2), minute: ("0" + now.getMinutes()).slice(-2)};
    }
    var y = +p.year, m = +p.month, d = +p.day;
    var weekday = new Date(Date.UTC(y, m - 1, d)).getUTCDay();
    el("clock").textContent = p.hour + "." + p.minute + (ZONES[CFG.timezone] ? " " + ZONES[CFG.timezone] : "");
    el("date").textContent = DAYS[weekday] + ", " + d + " " + MONTHS[m - 1] + " " + y;
  }

  // --- rendering -----------------------------------------------------------------------------------
  function renderNow() {
    var now = el("now"), call = calls[0];
    if (!call) {
      now.classList.add("idle");
      el("current-number").textContent = "\\u2014";
      el("current-counter").textContent = "BELUM ADA PANGGILAN";
      el("announcement").textContent = "";
      return;
    }
    now.classList.remove("idle");
    el("current-number").textContent = call.number;
    el("current-counter").textContent = upper(call.counter_name);
    el("announcement").textContent = call.announcement;
  }
  function renderHistory() {
    var list = el("history");
    list.textContent = "";
    var rest = calls.slice(1, 1 + HISTORY);
    if (!rest.length) { list.appendChild(node("li", "empty", "Belum ada panggilan sebelumnya")); return; }
    rest.forEach(function (c, i) {
      var li = node("li", i === 0 ? "first" : "");
      li.appendChild(node("span", "num", c.number));
      li.appendChild(node("span", "ctr", upper(c.counter_name)));
      list.appendChild(li);
    });
  }
  function renderCounters() {
    var list = el("counters");
    list.textContent = "";
    var shown = order.filter(function (code) { return counters[code] && counters[code].open; });
    if (!shown.length) { list.appendChild(node("li", "empty", "Belum ada loket yang dibuka")); return; }
    shown.forEach(function (code) {
      var t = counters[code];
      var li = node("li", t.number ? "open called" : "open");
      li.setAttribute("data-counter", code);
      li.appendChild(node("div", "name", upper(t.name)));
      li.appendChild(node("div", "tnum", t.number || "\\u2014"));
      list.appendChild(li);
    });
  }
  function render() { renderNow(); renderHistory(); renderCounters(); }

  function setCounter(tile) {
    if (!counters[tile.counter]) { order.push(tile.counter); order.sort(); }
    counters[tile.counter] = tile;
  }

  // --- updates -------------------------------------------------------------------------------------
  function applySnapshot(s) {
    calls = s.calls.slice();
    counters = {}; order = [];
    s.counters.forEach(setCounter);
    render();
  }
  function applyCall(data) {
    var call = data.call;
    if (calls.some(function (c) { return c.key === call.key; })) { return; }
    calls = calls.filter(function (c) { return ticketOf(c) !== ticketOf(call); });
    calls.push(call);
    calls.sort(function (a, b) { return a.called_at < b.called_at ? 1 : a.called_at > b.called_at ? -1 : 0; });
    calls = calls.slice(0, 12);
    if (data.counter) { setCounter(data.counter); }
    render();
    if (calls[0] === call) { flash(); speak(call.announcement); }
  }
  function flash() {
    var now = el("now");
    now.classList.remove("flash");
    void now.offsetWidth;  // restart the animation
    now.classList.add("flash");
  }
  function speak(text) {
    if (!CFG.speak || !("speechSynthesis" in window)) { return; }
    try {
      var u = new SpeechSynthesisUtterance(text);
      u.lang = "id-ID"; u.rate = 0.9;
      window.speechSynthesis.speak(u);
    } catch (e) { /* no voice on this screen */ }
  }

  // --- connection ----------------------------------------------------------------------------------
  function query() { return CFG.agency ? "?agency=" + encodeURIComponent(CFG.agency) : ""; }
  function offline() { el("status").hidden = false; }
  function online() { el("status").hidden = true; retryDelay = 1000; }
  function refetch() {
    return fetch(CFG.base + "/state" + query(), {cache: "no-store"})
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(applySnapshot);
  }
  function heard() { lastMessage = Date.now(); }
  function connect() {
    if (retryTimer) { clearTimeout(retryTimer); retryTimer = null; }
    if (source) { source.close(); }
    var es = new EventSource(CFG.base + "/events" + query());
    source = es;
    var dropped = false;
    es.onopen = function () {
      heard();
      online();
      // After a drop, re-read the board even if the stream resumed: nothing is missed either way.
      if (dropped) { refetch().catch(function () {}); dropped = false; }
    };
    es.onerror = function () {
      dropped = true;
      offline();
      if (es.readyState === EventSource.CLOSED) { reconnectLater(); }
    };
    es.onmessage = heard;
    es.addEventListener("snapshot", function (e) { heard(); online(); applySnapshot(JSON.parse(e.data)); });
    es.addEventListener("call", function (e) { heard(); applyCall(JSON.parse(e.data)); });
    es.addEventListener("heartbeat", heard);
    es.addEventListener("counter", function (e) { heard(); setCounter(JSON.parse(e.data).counter); renderCounters(); });
  }
  function reconnectLater() {
    if (retryTimer) { return; }
    retryTimer = setTimeout(connect, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 15000);
  }
  function checkAlive() {
    // Heartbeats arrive every few seconds; a silent stream is a dead connection the browser has not noticed.
    if (Date.now() - lastMessage > CFG.heartbeat_ms * 3 + 5000) { offline(); heard(); connect(); }
  }

  tick();
  setInterval(tick, 1000);
  render();
  connect();
  watchdog = setInterval(checkAlive, 2000);
  window.mppBoard = {calls: function () { return calls.slice(); }, reconnect: connect};
})();
</script>
</body>
</html>
"""
