/* slotgraph booking pages: optional improvements; every page works without this file.
 *
 * - On a booking page whose visitor has not chosen a time zone (no ?tz=), detect the browser's
 *   zone and reload the week in it.
 * - Week navigation and the time-zone / duration form load the week as an HTML fragment
 *   (`?...&fragment=week`) and swap it in, without a full reload; the address bar follows.
 */
(function () {
  "use strict";

  function slots() {
    return document.getElementById("slots");
  }

  function load(url, push) {
    var box = slots();
    if (!box) { window.location.href = url; return; }
    var target = new URL(url, window.location.href);
    var fragment = new URL(target.href);
    fragment.searchParams.set("fragment", "week");
    box.classList.add("loading");
    box.setAttribute("aria-busy", "true");
    fetch(fragment.href, { headers: { "Accept": "text/html" }, credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) { throw new Error(String(r.status)); }
        return r.text();
      })
      .then(function (html) {
        box.outerHTML = html;
        if (push) { window.history.pushState({}, "", target.href); }
        var fresh = slots();
        if (fresh) { fresh.setAttribute("aria-busy", "false"); }
        syncControls(target);
      })
      .catch(function () { window.location.href = target.href; });
  }

  function syncControls(url) {
    var tz = url.searchParams.get("tz");
    var select = document.querySelector("[data-testid=tz-select]");
    if (tz && select) { select.value = tz; }
  }

  function detectZone() {
    var box = slots();
    if (!box || box.getAttribute("data-tz-chosen") === "1") { return; }
    var zone;
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { return; }
    if (!zone || zone === box.getAttribute("data-tz")) { return; }
    var select = document.querySelector("[data-testid=tz-select]");
    if (select && !Array.prototype.some.call(select.options, function (o) { return o.value === zone; })) {
      var option = document.createElement("option");
      option.value = zone;
      option.textContent = zone;
      select.appendChild(option);
    }
    var url = new URL(window.location.href);
    url.searchParams.set("tz", zone);
    load(url.href, false);
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("a[data-week-link]") : null;
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) { return; }
    event.preventDefault();
    load(link.href, true);
  });

  document.addEventListener("change", function (event) {
    var form = event.target.form;
    if (!form || !form.hasAttribute("data-week-form")) { return; }
    var url = new URL(form.action, window.location.href);
    new FormData(form).forEach(function (value, key) { url.searchParams.set(key, String(value)); });
    load(url.href, true);
  });

  window.addEventListener("popstate", function () { load(window.location.href, false); });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", detectZone);
  } else {
    detectZone();
  }
})();
