// Countersign web inbox: live updates over server-sent events, deadline countdowns, keys.
// No build step; htmx (vendored beside this file) does the swapping.
(function () {
  "use strict";
  var status = function (text) {
    var el = document.getElementById("live-status");
    if (el) el.textContent = text;
  };
  var timers = {};
  var refresh = function (id) {
    // Coalesce bursts: one reload per element per 300 ms.
    if (timers[id]) return;
    timers[id] = setTimeout(function () {
      delete timers[id];
      var el = document.getElementById(id);
      if (el && window.htmx) window.htmx.trigger(el, "refresh");
    }, 300);
  };

  function listen() {
    if (!window.EventSource) return;
    var source = new EventSource("/api/events");
    source.addEventListener("open", function () { status("live"); });
    source.addEventListener("error", function () { status("reconnecting…"); });
    source.addEventListener("inbox", function (event) {
      var change;
      try { change = JSON.parse(event.data); } catch (e) { return; }
      if (document.getElementById("inbox-list")) refresh("inbox-list");
      var card = document.getElementById("card");
      if (card && (change.kind === "resync" ||
                   card.dataset.interruptId === change.interrupt_id ||
                   (change.kind === "run" && card.dataset.runId === change.run_id))) {
        // Never reload a card under someone's typing: only when no form field has focus.
        var active = document.activeElement;
        if (!(active && card.contains(active) && /INPUT|TEXTAREA|SELECT/.test(active.tagName))) {
          refresh("card");
        }
      }
    });
  }

  function fmt(seconds) {
    var late = seconds < 0, s = Math.floor(Math.abs(seconds));
    var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60), r = s % 60;
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    var text = d ? d + "d " + h + "h" : h ? h + "h " + pad(m) + "m" : m + "m " + pad(r) + "s";
    return late ? text + " ago" : text;
  }
  var overdueChecks = {};
  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-deadline]").forEach(function (el) {
      var left = (Date.parse(el.dataset.deadline) - now) / 1000;
      el.textContent = fmt(left);
      if (left > 0) { el.dataset.future = "1"; return; }
      if (el.dataset.future === "1") {
        // The deadline passed while shown: the request expires or escalates; ask the server.
        delete el.dataset.future;
        setTimeout(function () { refresh("card"); refresh("inbox-list"); }, 1500);
      }
    });
    // An open card past its deadline: look again every 2 s (20 times at most) until the
    // engine's expiry or escalation shows.
    var card = document.getElementById("card");
    var status = card && card.querySelector("[data-testid=status]");
    var countdown = card && card.querySelector("[data-deadline]");
    if (status && countdown && status.textContent === "open" &&
        Date.parse(countdown.dataset.deadline) < now) {
      var id = card.dataset.interruptId, seen = overdueChecks[id] || {n: 0, at: 0};
      if (seen.n < 20 && now - seen.at > 2000) {
        overdueChecks[id] = {n: seen.n + 1, at: now};
        refresh("card");
      }
    }
  }

  function keys(event) {
    if (event.target && /INPUT|TEXTAREA|SELECT/.test(event.target.tagName)) return;
    if (event.key !== "j" && event.key !== "k") return;
    var links = Array.prototype.slice.call(document.querySelectorAll("#inbox-list a.item-link"));
    if (!links.length) return;
    var at = links.indexOf(document.activeElement);
    var next = event.key === "j" ? Math.min(at + 1, links.length - 1) : Math.max(at - 1, 0);
    links[next].focus();
    event.preventDefault();
  }

  document.addEventListener("DOMContentLoaded", function () {
    listen();
    tick();
    setInterval(tick, 1000);
    document.addEventListener("keydown", keys);
  });
})();
