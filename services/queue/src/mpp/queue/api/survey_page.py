"""The SKM survey page: one self-contained document (inline CSS and JS, no external asset).

Large buttons for a phone or a kiosk tablet; it reads the questionnaire from the public API and posts
the answers back. ``?kiosk=1`` marks the answers as given at the kiosk.
"""

from __future__ import annotations

import orjson


def render_survey_page(*, api: str) -> str:
    # Inside <script>, "</" must not appear: escape "<" in the JSON.
    return _PAGE.replace("{{api}}", orjson.dumps(api).decode().replace("<", "\\u003c"))


_PAGE = """<!DOCTYPE html>
<html lang="id">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Survei Kepuasan Masyarakat</title>
<style>
  * { box-sizing: border-box; }
  body { margin: 0; font-family: "DejaVu Sans", "Liberation Sans", Arial, Helvetica, sans-serif;
    background: #f3f6fa; color: #10243a; font-size: 18px; line-height: 1.4; }
  header { background: #0d2a4a; color: #fff; padding: 16px 20px; border-bottom: 6px solid #ffd21f; }
  header h1 { margin: 0; font-size: 24px; }
  header p { margin: 4px 0 0; color: #cfe0f3; }
  main { max-width: 760px; margin: 0 auto; padding: 16px; }
  .card { background: #fff; border-radius: 12px; padding: 16px; margin-bottom: 14px;
    box-shadow: 0 1px 3px rgba(0,0,0,.12); }
  .card h2 { margin: 0 0 6px; font-size: 19px; }
  .card .q { margin: 0 0 12px; color: #34495e; font-size: 16px; }
  .scale { display: grid; grid-template-columns: repeat(4, 1fr); gap: 8px; }
  .opts { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 8px; }
  button.choice { min-height: 64px; border: 2px solid #9fb4c9; border-radius: 10px; background: #fff;
    font-size: 16px; font-weight: 700; color: #10243a; padding: 8px; cursor: pointer; }
  button.choice .n { display: block; font-size: 24px; }
  button.choice[aria-pressed="true"] { background: #0d6efd; border-color: #0d6efd; color: #fff; }
  #send { width: 100%; min-height: 72px; font-size: 22px; font-weight: 800; border: 0;
    border-radius: 12px; background: #198754; color: #fff; cursor: pointer; }
  #send:disabled { background: #8aa59a; }
  .msg { padding: 16px; border-radius: 12px; font-size: 20px; font-weight: 700; margin-bottom: 14px; }
  .msg.ok { background: #d1f2dd; color: #0b4d25; }
  .msg.err { background: #fde2e1; color: #7a1410; }
  .hint { color: #5b6f84; font-size: 15px; }
  [hidden] { display: none !important; }
</style>
</head>
<body>
<header>
  <h1>Survei Kepuasan Masyarakat</h1>
  <p id="service">Memuat survei...</p>
</header>
<main>
  <div id="status" class="msg" role="status" hidden></div>
  <form id="form" hidden>
    <p class="hint">Survei ini tanpa nama dan tanpa NIK. Pilih satu jawaban untuk setiap unsur.</p>
    <div id="elements"></div>
    <div class="card"><h2>Tentang Anda (boleh dilewati)</h2><div id="profile"></div></div>
    <button id="send" type="submit" disabled>Kirim penilaian</button>
  </form>
</main>
<script>
(function () {
  "use strict";
  var API = {{api}};
  var kiosk = /[?&]kiosk=1/.test(location.search);
  var scores = {}, profile = {}, total = 0;
  var status = document.getElementById("status");
  var form = document.getElementById("form");
  var send = document.getElementById("send");

  function show(text, ok) {
    status.textContent = text; status.className = "msg " + (ok ? "ok" : "err"); status.hidden = false;
  }
  function el(tag, cls, text) {
    var e = document.createElement(tag); if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text; return e;
  }
  function group(container, items, onPick, withNumber) {
    var buttons = [];
    items.forEach(function (item) {
      var b = el("button", "choice"); b.type = "button"; b.setAttribute("aria-pressed", "false");
      b.dataset.value = item.value;
      if (withNumber) b.appendChild(el("span", "n", String(item.value)));
      b.appendChild(document.createTextNode(item.label));
      b.addEventListener("click", function () {
        buttons.forEach(function (x) { x.setAttribute("aria-pressed", x === b ? "true" : "false"); });
        onPick(item.value);
      });
      buttons.push(b); container.appendChild(b);
    });
  }
  function refresh() { send.disabled = Object.keys(scores).length !== total; }

  fetch(API).then(function (r) {
    return r.json().then(function (body) { return { status: r.status, body: body }; });
  }).then(function (res) {
    if (res.status !== 200) { show(res.body.error ? res.body.error.message : "Survei tidak tersedia", false);
      document.getElementById("service").textContent = ""; return; }
    var s = res.body;
    document.getElementById("service").textContent = s.service_name + " - " + s.agency_name;
    if (s.state === "answered") { show("Survei untuk layanan ini sudah diisi. Terima kasih.", true); return; }
    if (s.state === "closed") { show("Batas waktu pengisian survei sudah lewat.", false); return; }
    total = s.elements.length;
    var box = document.getElementById("elements");
    s.elements.forEach(function (e) {
      var card = el("div", "card"); card.dataset.element = e.code;
      card.appendChild(el("h2", "", e.code + ". " + e.name));
      card.appendChild(el("p", "q", e.question));
      var scale = el("div", "scale"); card.appendChild(scale);
      group(scale, s.scale, function (v) { scores[e.code] = v; refresh(); }, true);
      box.appendChild(card);
    });
    var pbox = document.getElementById("profile");
    Object.keys(s.respondent).forEach(function (key) {
      var part = s.respondent[key];
      pbox.appendChild(el("p", "q", part.title));
      var opts = el("div", "opts"); opts.dataset.profile = key; pbox.appendChild(opts);
      group(opts, part.options, function (v) { profile[key] = v; }, false);
    });
    form.hidden = false;
  }).catch(function () { show("Survei tidak dapat dimuat. Periksa sambungan lalu muat ulang.", false); });

  form.addEventListener("submit", function (ev) {
    ev.preventDefault(); send.disabled = true;
    fetch(API, { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ scores: scores, respondent: profile, channel: kiosk ? "kiosk" : "online" }) })
      .then(function (r) { return r.json().then(function (b) { return { status: r.status, body: b }; }); })
      .then(function (res) {
        if (res.status === 201) { form.hidden = true; show(res.body.message, true); window.scrollTo(0, 0); }
        else { show(res.body.error ? res.body.error.message : "Penilaian gagal dikirim", false); refresh(); }
      })
      .catch(function () { show("Penilaian gagal dikirim. Coba lagi.", false); refresh(); });
  });
})();
</script>
</body>
</html>
"""
