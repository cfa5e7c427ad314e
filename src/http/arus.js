/* arus browser tracker: a page view on load and on every single-page
   navigation, sent with navigator.sendBeacon; no cookies, no storage.
   <script defer src="https://ANALYTICS-HOST/arus.js"></script>
   Optional: data-user-id="…" (your own visitor id; otherwise the server
   derives a daily-changing one from address and user agent). */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) return;
  var endpoint = new URL(script.src).origin + "/v1/track";
  var userId = script.getAttribute("data-user-id");
  var last = null;
  function send() {
    var url = location.pathname + location.search;
    if (url === last) return;
    var body = { url: url };
    var referrer = last === null ? document.referrer : location.origin + last;
    if (referrer) body.referrer = referrer;
    if (userId) body.userId = userId;
    last = url;
    var data = JSON.stringify(body);
    // A string body goes as text/plain: no preflight, and it is sent even
    // while the page unloads.
    if (!(navigator.sendBeacon && navigator.sendBeacon(endpoint, data))) {
      fetch(endpoint, { method: "POST", body: data, keepalive: true, mode: "no-cors" });
    }
  }
  function wrap(name) {
    var original = history[name];
    history[name] = function () {
      var result = original.apply(this, arguments);
      send();
      return result;
    };
  }
  wrap("pushState");
  wrap("replaceState");
  window.addEventListener("popstate", send);
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", send);
  } else {
    send();
  }
})();
