// The tracker in a real browser (Debian's Chromium, driven by
// playwright-core): a shop's page on another origin embeds arus.js, loads,
// and navigates twice without reloading (history.pushState); then a page
// of an origin arus does not allow does the same. Prints one JSON line:
// console errors and the beacons each page sent, with their answers.
//   node tracker.mjs ARUS_BASE ALLOWED_PORT REFUSED_PORT
import http from "node:http";
import { chromium } from "playwright-core";

const [arus, allowedPort, refusedPort] = process.argv.slice(2);
const page = `<!doctype html><html><head><meta charset="utf-8"><title>shop</title>
<link rel="icon" href="data:,"><script defer src="${arus}/arus.js"></script></head>
<body><a id="pricing" href="/pricing">pricing</a><a id="docs" href="/docs">docs</a>
<script>
  for (const id of ["pricing", "docs"]) {
    document.getElementById(id).addEventListener("click", (e) => {
      e.preventDefault();
      history.pushState({}, "", e.target.getAttribute("href"));
    });
  }
</script></body></html>`;
const serve = (port) => new Promise((resolve) => {
  const server = http.createServer((req, res) => { res.writeHead(200, { "content-type": "text/html" }); res.end(page); });
  server.listen(Number(port), "127.0.0.1", () => resolve(server));
});
const servers = [await serve(allowedPort), await serve(refusedPort)];
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic"],
});
const out = { errors: [], beacons: {} };
try {
  for (const [name, port] of [["allowed", allowedPort], ["refused", refusedPort]]) {
    const tab = await browser.newPage();
    const beacons = [];
    out.beacons[name] = beacons;
    if (name === "allowed") {
      tab.on("console", (m) => { if (m.type() === "error") out.errors.push(m.text()); });
      tab.on("pageerror", (e) => out.errors.push(String(e)));
    }
    tab.on("response", (r) => {
      if (r.url().endsWith("/v1/track")) beacons.push({ status: r.status(), body: r.request().postData() });
    });
    await tab.goto(`http://127.0.0.1:${port}/shop?from=ad`, { waitUntil: "load" });
    await tab.waitForTimeout(300);
    await tab.click("#pricing");
    await tab.waitForTimeout(300);
    await tab.click("#docs");
    const until = Date.now() + 10000;
    while (beacons.length < 3 && Date.now() < until) await tab.waitForTimeout(100);
    await tab.close();
  }
} finally {
  await browser.close();
  for (const s of servers) s.close();
}
console.log(JSON.stringify(out));
