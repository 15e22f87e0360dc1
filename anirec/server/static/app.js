// anirec's page: pick liked anime (autocomplete over GET /anime), or load a MAL export, set
// filters, POST /recommend, show the answer. Plain DOM code, no framework, no network but
// this server. Text from the catalog is always set with textContent, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const picked = new Map(); // mal_id -> title
let malList = null; // {name, text}
let searchTimer = null;
let active = -1;

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

async function api(path, options) {
  const response = await fetch(path, options);
  let body = null;
  try { body = await response.json(); } catch (e) { /* not JSON: said below */ }
  if (!response.ok) throw new Error((body && body.error) || `${response.status} ${response.statusText}`);
  return body;
}

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

// ------------------------------------------------------------------ options and filters

function checkboxes(container, names, prefix) {
  for (const name of names) {
    const label = el("label");
    const box = el("input");
    box.type = "checkbox";
    box.value = name;
    box.dataset.group = prefix;
    label.append(box, " " + name);
    container.append(label);
  }
}

async function loadOptions() {
  const opts = await api("/options");
  checkboxes($("types"), opts.types, "types");
  checkboxes($("seasons"), opts.seasons, "seasons");
  for (const id of ["genres", "exclude-genres"]) {
    for (const g of opts.genres) $(id).append(new Option(g, g));
  }
  $("year-min").placeholder = opts.years[0];
  $("year-max").placeholder = opts.years[1];
  $("k").max = opts.limits.k;
  $("text-row").hidden = !opts.text_query;
  const health = await api("/health");
  $("about").textContent = `Anime recommendations: ${health.method} over ${health.n_items.toLocaleString()} anime`;
}

function checked(group) {
  return [...document.querySelectorAll(`input[data-group="${group}"]:checked`)].map((b) => b.value);
}

function numberOrNull(id) {
  const v = $(id).value.trim();
  return v === "" ? null : Number(v);
}

function filters() {
  return {
    types: checked("types"),
    seasons: checked("seasons"),
    year_min: numberOrNull("year-min"),
    year_max: numberOrNull("year-max"),
    min_score: numberOrNull("min-score"),
    genres: [...$("genres").selectedOptions].map((o) => o.value),
    exclude_genres: [...$("exclude-genres").selectedOptions].map((o) => o.value),
    new_only: $("new-only").checked,
    include_adult: $("include-adult").checked,
    one_per_franchise: $("one-per-franchise").checked,
    liked_franchises: $("liked-franchises").checked,
    unstarted_sequels: $("unstarted-sequels").checked,
  };
}

// ------------------------------------------------------------------ picking anime

function renderChips() {
  const list = $("chips");
  list.replaceChildren();
  for (const [id, title] of picked) {
    const chip = el("li", "chip", title);
    chip.dataset.malId = id;
    const remove = el("button", null, "\u00d7");
    remove.type = "button";
    remove.title = "remove";
    remove.addEventListener("click", () => { picked.delete(id); renderChips(); });
    chip.append(remove);
    list.append(chip);
  }
}

function pick(item) {
  picked.set(item.mal_id, item.title);
  renderChips();
  $("search").value = "";
  hideSuggestions();
  $("search").focus();
}

function hideSuggestions() {
  $("suggestions").hidden = true;
  $("suggestions").replaceChildren();
  active = -1;
}

async function suggest() {
  const q = $("search").value.trim();
  if (q.length < 2) return hideSuggestions();
  let items;
  try {
    items = (await api(`/anime?q=${encodeURIComponent(q)}&limit=8`)).items;
  } catch (e) {
    return showError(e.message);
  }
  if ($("search").value.trim() !== q) return; // typed on meanwhile
  const list = $("suggestions");
  list.replaceChildren();
  for (const item of items) {
    const li = el("li", "suggestion", item.title);
    li.setAttribute("role", "option");
    li.dataset.malId = item.mal_id;
    const bits = [item.english_title, item.type, item.year].filter((x) => x);
    if (bits.length) li.append(el("small", null, bits.join(" \u00b7 ")));
    li.addEventListener("mousedown", (ev) => { ev.preventDefault(); pick(item); });
    list.append(li);
  }
  list.hidden = items.length === 0;
  list._items = items;
  active = -1;
}

function onSearchKey(ev) {
  const list = $("suggestions");
  const items = list._items || [];
  if (list.hidden || !items.length) return;
  if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
    ev.preventDefault();
    active = (active + (ev.key === "ArrowDown" ? 1 : items.length - 1)) % items.length;
    [...list.children].forEach((li, i) => li.classList.toggle("active", i === active));
  } else if (ev.key === "Enter") {
    ev.preventDefault();
    pick(items[Math.max(active, 0)]);
  } else if (ev.key === "Escape") {
    hideSuggestions();
  }
}

// ------------------------------------------------------------------ MAL export

async function readExport(file) {
  const head = new Uint8Array(await file.slice(0, 2).arrayBuffer());
  if (head[0] === 0x1f && head[1] === 0x8b) { // gzip: inflate in the browser (the API takes XML text)
    const stream = file.stream().pipeThrough(new DecompressionStream("gzip"));
    return await new Response(stream).text();
  }
  return await file.text();
}

async function onMalFile() {
  const file = $("mal-file").files[0];
  malList = null;
  $("mal-status").textContent = "";
  if (!file) return;
  try {
    malList = { name: file.name, text: await readExport(file) };
    $("mal-status").textContent = `${file.name}: loaded`;
  } catch (e) {
    showError(`${file.name}: cannot be read (${e.message}); pass the animelist_*.xml or .xml.gz file MyAnimeList exported.`);
  }
}

// ------------------------------------------------------------------ recommending

function renderAnswer(answer) {
  const list = $("results");
  list.replaceChildren();
  for (const item of answer.items) {
    const li = el("li", "result");
    li.dataset.malId = item.mal_id;
    const head = el("div");
    head.append(el("span", "title", item.title));
    if (item.english_title && item.english_title !== item.title) head.append(el("span", "english", item.english_title));
    if (item.is_new) head.append(el("span", "badge new", "new"));
    const meta = [item.type, [item.season, item.year].filter((x) => x).join(" "),
      item.mal_score !== null ? `MAL ${item.mal_score.toFixed(2)}` : null, item.genres.join(", ")].filter((x) => x);
    li.append(head, el("div", "meta", meta.join(" \u00b7 ")));
    if (item.because.length) li.append(el("div", "because", "because you liked " + item.because.map((b) => b.title).join(", ")));
    list.append(li);
  }
  const notes = [...answer.notes];
  if (answer.mal_list) notes.unshift(`MAL list: ${answer.mal_list.liked} liked, ${answer.mal_list.seen} seen, ${answer.mal_list.off_catalog} not in this catalog`);
  for (const m of answer.matched) if (m.how === "fuzzy") notes.push(`"${m.query}" read as "${m.matched_title}" (${m.closeness}/100)`);
  $("notes").textContent = notes.join("; ");
  $("answer").hidden = false;
}

async function recommend() {
  showError("");
  const text = $("text-query").value.trim();
  const body = { likes: [...picked.keys()], k: Number($("k").value) || 10, filters: filters() };
  if (text) body.query = text;
  if (malList) body.mal_list = malList.text;
  if (!body.likes.length && !body.query && !body.mal_list) {
    return showError("Pick at least one anime you liked, load your MAL export, or describe what you want.");
  }
  const button = $("recommend");
  button.disabled = true;
  try {
    renderAnswer(await api("/recommend", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) }));
  } catch (e) {
    showError(e.message);
  } finally {
    button.disabled = false;
  }
}

function start() {
  $("search").addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(suggest, 150); });
  $("search").addEventListener("keydown", onSearchKey);
  $("search").addEventListener("blur", () => setTimeout(hideSuggestions, 150));
  $("mal-file").addEventListener("change", onMalFile);
  $("recommend").addEventListener("click", recommend);
  loadOptions().catch((e) => showError(e.message));
}

start();
