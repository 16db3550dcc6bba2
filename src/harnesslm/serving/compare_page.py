"""The ``/compare`` page: one query, every served system's top 10 side by side, with overlap and timings.

Search engineers judge a student by looking at its results next to the teacher's before they trust a number.
The page is self-contained (inline CSS and a few lines of JavaScript calling ``/compare/search``): nothing is
fetched from a CDN, so it works on an offline machine. An item also in the teacher's top k is marked, so
where the student agrees with its teacher, and where the hybrid brings BM25's finds in, shows at a glance.
"""

COMPARE_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>harness-lm: compare</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d232a; background: #fafbfc; }
  h1 { font-size: 1.2rem; margin: 0 0 .8rem; }
  form { display: flex; gap: .5rem; margin-bottom: .6rem; }
  input[type=search] { flex: 1; max-width: 36rem; padding: .45rem .6rem; font-size: 1rem; }
  button { padding: .45rem 1rem; font-size: 1rem; }
  #summary { color: #4a5561; margin: .3rem 0 1rem; min-height: 1.2em; }
  #columns { display: grid; grid-template-columns: repeat(auto-fit, minmax(15rem, 1fr)); gap: .8rem; }
  .system { background: #fff; border: 1px solid #d6dce2; border-radius: 6px; padding: .6rem .7rem; }
  .system h2 { font-size: .95rem; margin: 0; }
  .took { color: #4a5561; font-size: .8rem; margin-bottom: .4rem; }
  ol { margin: 0; padding-left: 1.4rem; }
  li { margin: .25rem 0; }
  li.shared { background: #e5f3e8; }
  .score { color: #7a8591; font-size: .75rem; }
  .error { color: #a4161a; }
</style>
</head>
<body>
<h1>harness-lm: the same query, side by side</h1>
<form id="search">
  <input id="q" type="search" name="q" placeholder="a search, e.g. cordless drill 20v" autofocus>
  <button type="submit">Search</button>
</form>
<div id="summary">Top 10 of each system. Green: also in the teacher's top 10 (the student's when no teacher).</div>
<div id="columns"></div>
<script>
const form = document.getElementById("search"), box = document.getElementById("q");
const columns = document.getElementById("columns"), summary = document.getElementById("summary");

function element(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}

async function run(query) {
  if (!query.trim()) return;
  history.replaceState(null, "", "?q=" + encodeURIComponent(query));
  summary.textContent = "searching...";
  const reply = await fetch("compare/search?k=10&q=" + encodeURIComponent(query));
  const body = await reply.json();
  columns.replaceChildren();
  if (!reply.ok) { summary.replaceChildren(element("span", String(body.detail), "error")); return; }
  const reference = body.systems.find(s => s.name === "teacher") || body.systems[0];
  const shared = new Set(reference.hits.map(h => h.item_id));
  for (const system of body.systems) {
    const column = element("section", undefined, "system");
    column.dataset.system = system.name;
    column.append(element("h2", system.label), element("div", system.took_ms.toFixed(2) + " ms", "took"));
    const list = element("ol");
    for (const hit of system.hits) {
      const item = element("li", hit.title + " ", system !== reference && shared.has(hit.item_id) ? "shared" : "");
      item.append(element("span", hit.score.toFixed(3), "score"));
      list.append(item);
    }
    column.append(list);
    columns.append(column);
  }
  summary.textContent = "overlap of the top " + body.k + ": " +
    Object.entries(body.overlap).map(([pair, n]) => pair.replace("|", " & ") + " " + n).join(", ");
}

form.addEventListener("submit", event => { event.preventDefault(); run(box.value); });
const initial = new URLSearchParams(location.search).get("q");
if (initial) { box.value = initial; run(initial); }
</script>
</body>
</html>
"""
