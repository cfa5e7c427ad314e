// The dashboard in a real browser (Debian's Chromium, driven by
// playwright-core): opens the page, posts page views and user events
// through the API, and waits until the page shows what POST /v1/query
// answers for the dashboard's own query. Prints one JSON line: console
// errors, what the page showed, what the query answered, and when.
//   node dashboard.mjs BASE_URL SCREENSHOT_PATH PAGE_VIEWS EVENTS
import { chromium } from "playwright-core";

const [base, screenshot, views, events] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic"],
});
const out = { errors: [] };
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  page.on("console", (m) => { if (m.type() === "error") out.errors.push(m.text()); });
  page.on("pageerror", (e) => out.errors.push(String(e)));
  page.on("requestfailed", (r) => out.errors.push("request failed: " + r.url()));
  await page.goto(base + "/", { waitUntil: "load" });
  await page.waitForFunction(() => document.getElementById("status").textContent === "live", null, { timeout: 20000 });

  const post = async (path, body) => {
    const r = await fetch(base + path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    if (r.status !== 201) throw new Error(path + ": " + r.status + " " + (await r.text()));
  };
  for (let i = 0; i < Number(views); i++) {
    await post("/events/page-view", { userId: "b-user-" + (i % 3), url: "/b/" + (i % 4) });
  }
  const batch = [];
  for (let i = 0; i < Number(events); i++) batch.push({ userId: "b-user-" + (i % 5), eventType: ["login", "view", "purchase"][i % 3] });
  await post("/events/batch-events", batch);
  const posted = Date.now();

  // The dashboard's own query for its figures, as its stream says it.
  const body = await page.evaluate(() => window.arusLast.queries.day);
  const kpis = () => page.evaluate(() => Object.fromEntries(
    ["visitors", "visits", "pageviews", "events"].map((k) => [k, document.getElementById("kpi-" + k).textContent])));
  let queried = null, queriedAt = null;
  for (;;) {
    const r = await fetch(base + "/v1/query", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const answer = await r.json();
    const row = answer.results[0] ? answer.results[0].metrics : [];
    const value = (m) => row[answer.query.metrics.indexOf(m)];
    const now = { visitors: value("visitors"), visits: value("visits"), pageviews: value("pageviews"), events: value("events") };
    if (now.pageviews === Number(views) && now.events === Number(events)) {
      if (queriedAt === null) queriedAt = Date.now();
      queried = now;
      const shown = await kpis();
      const same = Object.keys(now).every((k) => shown[k] === now[k].toLocaleString("en-US"));
      if (same) {
        out.shown = shown;
        out.query = queried;
        out.msFromPostToShown = Date.now() - posted;
        out.msFromQueryToShown = Date.now() - queriedAt;
        break;
      }
    }
    if (Date.now() - posted > 20000) {
      out.shown = await kpis();
      out.query = queried;
      out.timedOut = true;
      break;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const texts = (id) => page.evaluate((id) => [...document.querySelectorAll("#" + id + " tr td.bar em")].map((e) => e.textContent), id);
  out.eventTypes = await texts("types");
  // Each type's row as shown: type, events, visitors.
  out.typeRows = await page.evaluate(() => [...document.querySelectorAll("#types tr")].slice(1)
    .map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent)));
  out.sources = await texts("sources");
  out.pages = await texts("pages");
  await page.screenshot({ path: screenshot, fullPage: true });
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
