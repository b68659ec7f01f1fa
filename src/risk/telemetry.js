/* Sentinel behavioural telemetry collector (docs/biometrics.md, "At the edge").
   Usage: <script src="/.sentinel/telemetry.js"></script>
          SentinelTelemetry.start({token: "<the user's bearer token>"});
   Sends mouse moves (sampled), presses, releases, wheel, and key down/up
   times with opaque key ids: HMAC-SHA256(per-user secret, KeyboardEvent.code),
   12 base64url characters. Never a character, never an input's value. */
(function (w) {
  "use strict";
  var MAX = 200, EVERY = 2000, MOVE_MS = 15, BASE = "/.sentinel/";
  var s = null;
  function b64(buf) {
    var b = new Uint8Array(buf), t = "";
    for (var i = 0; i < b.length; i++) t += String.fromCharCode(b[i]);
    return btoa(t).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function now() { return Math.max(0, Math.round((performance.now() - s.t0) * 10) / 10); }
  function px(v) { v = Math.round(v); return v > 65535 ? 65535 : v < -65535 ? -65535 : v; }
  function btn(b) { return b === 0 ? "left" : b === 1 ? "middle" : b === 2 ? "right" : "none"; }
  function held(bs) { return bs & 1 ? "left" : bs & 2 ? "right" : bs & 4 ? "middle" : "none"; }
  function mouse(e, button, state) {
    if (s.stopped) return;
    s.mouse.push({t: now(), x: px(e.screenX), y: px(e.screenY), button: button, state: state});
    if (s.mouse.length >= MAX) flush(false);
  }
  function onMove(e) {
    var t = performance.now();
    if (t - s.lastMove < MOVE_MS) return;
    s.lastMove = t;
    var b = held(e.buttons);
    mouse(e, b, b === "none" ? "move" : "drag");
  }
  function hmac(text) {
    if (s.ids[text]) return s.ids[text];
    var p = s.key.then(function (k) {
      return crypto.subtle.sign("HMAC", k, new TextEncoder().encode(text));
    }).then(function (sig) { return b64(sig).slice(0, 12); });
    s.ids[text] = p;
    return p;
  }
  function fieldOf(el) {
    var all = document.querySelectorAll("input,textarea,[contenteditable]");
    for (var i = 0; i < all.length; i++) if (all[i] === el) return "field:" + i;
    return "field:-";
  }
  function onDown(e) {
    if (s.stopped || e.repeat || !e.code) return;
    var p = {code: e.code, down: now(), up: null, field: fieldOf(e.target)};
    s.pending.push(p);
    (s.open[e.code] = s.open[e.code] || []).push(p);
  }
  function onUp(e) {
    var q = s.open[e.code];
    if (!q || !q.length) return;
    q.shift().up = now();
    // Presses go out in the order they went down, once released (SPEC: non-decreasing).
    while (s.pending.length && s.pending[0].up !== null) s.ready.push(s.pending.shift());
    if (s.ready.length >= MAX) flush(false);
  }
  function keys() {
    var out = s.ready.splice(0, MAX);
    return Promise.all(out.map(function (p) {
      return Promise.all([hmac(p.field), hmac("key:" + p.code)]).then(function (ids) {
        return {field: ids[0], key: ids[1], down: p.down, up: Math.max(p.up, p.down)};
      });
    }));
  }
  function flush(leaving) {
    if (s.stopped || Date.now() < s.backoffUntil) return;
    if (!s.mouse.length && !s.ready.length) return;
    var mouseOut = s.mouse.splice(0, MAX);
    keys().then(function (keyOut) {
      var body = JSON.stringify({session_id: s.id, seq: s.seq++, mouse: mouseOut, keys: keyOut});
      return send(body, leaving, 0);
    }).catch(function () {});
  }
  function send(body, leaving, tries) {
    return fetch(BASE + "biometrics", {
      method: "POST", keepalive: leaving || body.length < 60000, credentials: "omit",
      headers: {"content-type": "application/json", authorization: "Bearer " + s.token},
      body: body
    }).then(function (r) {
      if (r.status === 401 || r.status === 403) { stop(); return; }
      if (r.status === 429 || r.status >= 500) {
        s.delay = Math.min((s.delay || 1000) * 2, 60000);
        s.backoffUntil = Date.now() + s.delay;
        if (tries < 3) setTimeout(function () { send(body, false, tries + 1); }, s.delay);
        return;
      }
      s.delay = 0;
      return r.json().then(function (a) { s.last = a; if (s.onAnswer) s.onAnswer(a); });
    });
  }
  var handlers = [
    ["mousemove", onMove],
    ["mousedown", function (e) { mouse(e, btn(e.button), "pressed"); }],
    ["mouseup", function (e) { mouse(e, btn(e.button), "released"); }],
    ["wheel", function (e) { mouse(e, "scroll", e.deltaY < 0 ? "up" : "down"); }],
    ["keydown", onDown],
    ["keyup", onUp],
    ["pagehide", function () { flush(true); }]
  ];
  function stop() {
    if (!s) return;
    s.stopped = true;
    clearInterval(s.timer);
    handlers.forEach(function (h) { w.removeEventListener(h[0], h[1], true); });
  }
  function start(opts) {
    if (s && !s.stopped) stop();
    s = {token: opts.token, onAnswer: opts.onAnswer, t0: performance.now(), seq: 0,
         id: opts.sessionId || ("s-" + b64(crypto.getRandomValues(new Uint8Array(12)))),
         mouse: [], pending: [], ready: [], open: {}, ids: {}, lastMove: 0,
         backoffUntil: 0, stopped: false, last: null};
    s.key = fetch(BASE + "telemetry/key", {headers: {authorization: "Bearer " + s.token}})
      .then(function (r) { if (!r.ok) { stop(); throw new Error("telemetry key: " + r.status); } return r.json(); })
      .then(function (j) {
        var raw = Uint8Array.from(atob(j.key.replace(/-/g, "+").replace(/_/g, "/")), function (c) { return c.charCodeAt(0); });
        return crypto.subtle.importKey("raw", raw, {name: "HMAC", hash: "SHA-256"}, false, ["sign"]);
      });
    s.key.catch(function () {});
    handlers.forEach(function (h) { w.addEventListener(h[0], h[1], {capture: true, passive: true}); });
    s.timer = setInterval(function () { flush(false); }, EVERY);
    return {sessionId: s.id, flush: function () { flush(false); }, stop: stop,
            last: function () { return s.last; }};
  }
  w.SentinelTelemetry = {start: start};
})(window);
