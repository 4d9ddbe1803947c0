// Cairn web console: plain JS, no build. Talks to POST /api/sql like any client;
// every value from the server reaches the page through textContent, never HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const editor = $("editor");
const JOB_POLL_MS = 1000;
const BACKUP_POLL_MS = 5000;
const STATEMENT_CHARS = 200; // of a job's statement, for its tooltip: never the whole text
const LIVE = ["running", "queued", "paused"]; // a paused job has not ended: it can go on, or be killed
const isLive = (job) => LIVE.includes(job.status);
const NUMERIC = /^(SMALLINT|INT|INTEGER|BIGINT|REAL|FLOAT|DOUBLE|DECIMAL|HUGEINT|TINYINT|UBIGINT|NUMERIC)\b/i;

// ---- connection settings (token only for this tab's session) -----------------------

// A pasted token loses only the spaces and tabs at its ends, as the server drops
// from the header: trim() also took Unicode spaces (U+3000, U+00A0, ...) off,
// sending a token other than the one typed.
const blanksOff = (text) => text.replace(/^[ \t]+|[ \t]+$/g, "");

const settings = {
  load() {
    $("namespace").value = localStorage.getItem("cairn.namespace") || "";
    $("user").value = localStorage.getItem("cairn.user") || "";
    $("token").value = sessionStorage.getItem("cairn.token") || "";
    editor.value = localStorage.getItem("cairn.editor") || "";
  },
  save() {
    localStorage.setItem("cairn.namespace", $("namespace").value.trim());
    localStorage.setItem("cairn.user", $("user").value.trim());
    sessionStorage.setItem("cairn.token", blanksOff($("token").value));
  },
};

async function sql(text) {
  const headers = { "Content-Type": "application/json" };
  const user = $("user").value.trim();
  const token = blanksOff($("token").value);
  if (user) headers["X-User-Id"] = user;
  if (token) headers["Authorization"] = "Bearer " + token;
  const body = { sql: text };
  const ns = $("namespace").value.trim();
  if (ns) body.namespace = ns;
  let resp;
  try {
    resp = await fetch("/api/sql", { method: "POST", headers, body: JSON.stringify(body) });
  } catch (e) {
    return { status: "error", results: [], error: { code: "UNAVAILABLE", message: "cannot reach the server: " + e.message } };
  }
  try {
    return parseExact(await resp.text());
  } catch (e) {
    return { status: "error", results: [], error: { code: "INVALID_RESPONSE", message: `HTTP ${resp.status}: not JSON` } };
  }
}

// The server sends integers exactly (BIGINT, HUGEINT, and inside JSON values), but
// JSON.parse makes every number a double: 9007199254740993 became ...992 and
// 9223372036854775807 9223372036854776000. The reviver reads each number's own
// text (context.source) and keeps an integer past 2^53 as that text, a
// JSON.rawJSON that show() prints and JSON.stringify writes back as it came.
const EXACT = typeof JSON.rawJSON === "function" && typeof JSON.isRawJSON === "function";
const INTEGER = /^-?\d+$/;
function keepInteger(key, value, context) {
  if (typeof value === "number" && !Number.isSafeInteger(value) && context && INTEGER.test(context.source)) {
    return JSON.rawJSON(context.source);
  }
  return value;
}
function parseExact(text) {
  const body = EXACT ? JSON.parse(text, keepInteger) : JSON.parse(text);
  keepJsonText(body, text);
  return body;
}

// A JSON column's value is its stored text, spliced into the answer as it is
// (docs/http.md); JSON.parse then JSON.stringify showed another text: both of
// {"a":1,"a":2} became {"a":2}, -0 0, 12345678901234567.89 ...568, 1.10 1.1.
// Each value of a JSON column (LIST, STRUCT and MAP columns too) is replaced by
// its text in the answer, a StoredJson that show() prints as it is. Only a
// valid answer gets here (JSON.parse took it), so the scan needs no checks.
class StoredJson {
  constructor(text) { this.text = text; }
}
function keepJsonText(body, text) {
  const results = body && Array.isArray(body.results) ? body.results : [];
  const json = results.map((r) => (Array.isArray(r.schema) ? r.schema : []).filter((s) => s.type === "JSON").map((s) => s.name));
  if (!json.some((names) => names.length)) return;
  const texts = rowTexts(text);
  results.forEach((r, i) => {
    if (!json[i].length || !Array.isArray(r.rows)) return;
    r.rows.forEach((row, j) => {
      const raw = texts[i] && texts[i][j];
      for (const name of json[i]) {
        if (raw && raw.has(name) && row[name] !== null && row[name] !== undefined) row[name] = new StoredJson(raw.get(name));
      }
    });
  });
}

// The text of every value of every row of every result, as the answer has it:
// [result][row] -> Map(column -> text).
const blanks = (text, i) => { while (" \t\r\n".includes(text[i]) && i < text.length) i++; return i; };
function stringEnd(text, i) { // i: the opening quote
  for (;;) {
    i = text.indexOf('"', i + 1);
    let k = i;
    while (text[k - 1] === "\\") k--;
    if ((i - k) % 2 === 0) return i + 1;
  }
}
function valueEnd(text, i) { // i: the value's first character
  let depth = 0;
  do {
    const c = text[i];
    if (c === '"') i = stringEnd(text, i);
    else if (c === "{" || c === "[") { depth++; i++; }
    else if (c === "}" || c === "]") { depth--; i++; }
    else if (depth && (c === "," || c === ":" || " \t\r\n".includes(c))) i++;
    else { while (i < text.length && !",:]} \t\r\n".includes(text[i])) i++; }
  } while (depth > 0);
  return i;
}
function items(text, i, each) { // i: an object's "{" or an array's "["; each(key, start, end)
  const object = text[i] === "{";
  const close = object ? "}" : "]";
  i = blanks(text, i + 1);
  while (text[i] !== close) {
    let key = null;
    if (object) {
      const end = stringEnd(text, i);
      key = JSON.parse(text.slice(i, end));
      i = blanks(text, blanks(text, end) + 1); // past the ":"
    }
    const end = valueEnd(text, i);
    each(key, i, end);
    i = blanks(text, end);
    if (text[i] === ",") i = blanks(text, i + 1);
  }
}
function rowTexts(text) {
  let out = [];
  const start = blanks(text, 0);
  if (text[start] !== "{") return out;
  items(text, start, (key, at) => {
    if (key !== "results" || text[at] !== "[") return;
    out = [];
    items(text, at, (_, result) => {
      const rowsOf = [];
      if (text[result] === "{") {
        items(text, result, (k, rows) => {
          if (k !== "rows" || text[rows] !== "[") return;
          rowsOf.length = 0;
          items(text, rows, (__, row) => {
            const values = new Map();
            if (text[row] === "{") items(text, row, (name, a, b) => values.set(name, text.slice(a, b)));
            rowsOf.push(values);
          });
        });
      }
      out.push(rowsOf);
    });
  });
  return out;
}

// The last statement's result (its rows, and `truncated` with the server's
// message when the answer was cut at the server's bounds); throws the error.
async function result(text) {
  const body = await sql(text);
  if (body.status !== "success") throw body.error;
  return body.results[body.results.length - 1];
}

async function rows(text) {
  return (await result(text)).rows;
}

// A poll that never overlaps itself: the next run is set `ms` after the last one
// ended (setInterval started one every second even while the last still waited,
// so a slow answer piled up requests on the server). Called while a run is under
// way (after a statement, a kill), it runs once more when that one ends.
function poller(fn, ms) {
  let running = null;
  let again = false;
  let timer = null;
  async function tick() {
    clearTimeout(timer);
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        try { await fn(); } catch (e) { /* each poll shows its own errors */ }
      } while (again);
    })();
    await running;
    running = null;
    timer = setTimeout(tick, ms);
  }
  return tick;
}

// ---- small DOM helpers ----------------------------------------------------------

// Bidirectional controls in data are shown as escapes, as `cairn sql` does
// (console/output.py): a value 'invoice_\u202efdp.exe' read as invoice_exe.pdf.
// el() escapes text, string children and every attribute (a `title` tooltip
// showed the value raw beside its escaped text).
const BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
function visible(text) {
  return String(text).replace(BIDI, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = visible(v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, visible(v));
  }
  for (const c of children) node.append(typeof c === "string" ? visible(c) : c);
  return node;
}

function show(value) {
  if (value === null || value === undefined) return "NULL";
  if (value instanceof StoredJson) return value.text;
  if (EXACT && JSON.isRawJSON(value)) return value.rawJSON;
  if (Object.is(value, -0)) return "-0"; // a DOUBLE's -0.0: String() drops the sign
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function humanBytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`;
}

function plural(n, word) { return `${n} ${word}${n === 1 ? "" : "s"}`; }

// ---- results --------------------------------------------------------------------

function resultTable(result) {
  const types = Object.fromEntries((result.schema || []).map((s) => [s.name, s.type]));
  const head = el("tr");
  for (const c of result.columns) {
    head.append(el("th", { title: types[c] || "" }, c, el("span", { class: "type", text: (types[c] || "").toLowerCase() })));
  }
  const body = el("tbody");
  for (const row of result.rows) {
    const tr = el("tr");
    for (const c of result.columns) {
      const v = row[c];
      const cls = v === null || v === undefined ? "null" : NUMERIC.test(types[c] || "") ? "num" : "";
      tr.append(el("td", { class: cls, text: show(v), title: show(v) }));
    }
    body.append(tr);
  }
  return el("div", { class: "table-wrap" }, el("table", { class: "grid" }, el("thead", {}, head), body));
}

function renderResults(results, took) {
  const box = $("results");
  box.replaceChildren();
  results.forEach((r, i) => {
    const card = el("div", { class: "result", "data-statement": String(i + 1) });
    if (r.columns && r.columns.length) card.append(resultTable(r));
    if (r.message || !(r.columns && r.columns.length)) card.append(el("div", { class: "message", text: r.message || "OK" }));
    const count = r.columns && r.columns.length ? `(${plural(r.rows.length, "row")})` : `${plural(r.row_count || 0, "row")} affected`;
    card.append(el("div", { class: "meta" }, el("span", { class: "count", text: count }), el("span", { text: `statement ${i + 1}` })));
    box.append(card);
  });
  $("status").textContent = `${plural(results.length, "statement")} · ${Number(took).toFixed(1)} ms`;
}

// The error box: code, message, line:column, the line itself with a caret; and the
// editor's cursor is put on the spot.
function renderError(err, text) {
  const box = $("error");
  box.replaceChildren(el("div", {}, el("span", { class: "code", text: `ERROR ${err.code}:` }), " " + err.message));
  if (err.line) {
    const where = `line ${err.line}, column ${err.column}` + (err.statement ? ` (statement ${err.statement})` : "");
    box.append(el("div", { class: "where", text: "at " + where }));
    const line = text.split("\n")[err.line - 1];
    if (line !== undefined) {
      const pad = line.slice(0, err.column - 1).replace(/[^\t]/g, " ");
      box.append(el("pre", {}, `${line}\n${pad}`, el("span", { class: "caret", text: "^" })));
      const offset = text.split("\n").slice(0, err.line - 1).reduce((n, l) => n + l.length + 1, 0) + err.column - 1;
      const word = /^[\w.']*/.exec(text.slice(offset))[0].length || 1;
      editor.focus();
      editor.setSelectionRange(offset, offset + word);
    }
  }
  box.hidden = false;
}

// The editor's text is kept across reloads in localStorage, which outlives
// the tab (the token is in sessionStorage): a passphrase is kept as '***'.
// As sqlgrammar/secrets.py: comments around the `=`; an odd value hidden to the end.
const GAP = String.raw`(?:\s|--[^\n\r]*|\/\*[\s\S]*?\*\/)*`;
const END = String.raw`(?=${GAP}(?:[,)]|$))`;
const SECRET = new RegExp(String.raw`(encryption_passphrase${GAP}=?${GAP})` +
  String.raw`('[^']*(?:''[^']*)*'${END}|"(?:[^"]|"")*"${END}|[A-Za-z0-9_]+${END}|[\s\S]*)`, "gi");
function withoutSecrets(text) { return text.replace(SECRET, "$1'***'"); }

async function run() {
  const full = editor.value;
  let { selectionStart: a, selectionEnd: b } = editor;
  // Run the selection if there is one, padded so positions match the editor.
  let text = full;
  if (b > a && full.slice(a, b).trim()) {
    const before = full.slice(0, a);
    const lines = before.split("\n");
    text = "\n".repeat(lines.length - 1) + " ".repeat(lines[lines.length - 1].length) + full.slice(a, b);
  }
  if (!text.trim()) return;
  localStorage.setItem("cairn.editor", withoutSecrets(full));
  settings.save();
  const button = $("run");
  button.disabled = true;
  $("status").textContent = "running…";
  $("error").hidden = true;
  const started = performance.now();
  const body = await sql(text);
  const took = body.took !== undefined ? body.took : Math.round(performance.now() - started);
  button.disabled = false;
  renderResults(body.results || [], took);
  if (body.status !== "success") {
    const err = body.error || { code: "UNKNOWN", message: "request failed" };
    renderError(err, full);
    $("status").textContent = `${err.statement ? "statement " + err.statement : "request"} failed · ${Number(took).toFixed(1)} ms`;
  }
  pollJobs();
}

// ---- jobs and backups panels ------------------------------------------------------

// Only the start of each statement: a job's statement can be megabytes, and the
// panel asks every second. One character more than shown says it goes on.
const JOBS_SQL = `SELECT job_id, job_type, status, namespace, target, backup_id,
  left(statement, ${STATEMENT_CHARS + 1}) AS statement, fraction_completed,
  bytes_done, bytes_total, error_message, waiting_for, created_at FROM system.jobs
  ORDER BY status IN ('running', 'queued', 'paused') DESC, created_at DESC LIMIT 12`;
let lastActive = new Set();

function jobItem(job) {
  const pct = job.status === "completed" ? 100 : Math.floor((job.fraction_completed || 0) * 100);
  const where = [job.namespace, job.target && shortTarget(job.target)].filter(Boolean).join(" → ");
  const top = el("div", { class: "top" },
    el("span", { class: "what", text: `${job.job_type}${where ? " " + where : ""}`, title: statementStart(job.statement) }),
    el("span", { class: `badge ${job.status}`, text: job.status }));
  const li = el("li", { class: "job", "data-job-id": job.job_id, "data-status": job.status }, top);
  const fill = el("div", { class: "fill" });
  fill.style.width = pct + "%";
  const bytes = job.bytes_total ? `${humanBytes(job.bytes_done || 0)} / ${humanBytes(job.bytes_total)}` : "";
  li.append(el("div", { class: "progress", role: "progressbar", "aria-valuenow": String(pct), "aria-valuemin": "0", "aria-valuemax": "100" },
    el("div", { class: "track" }, fill), el("span", { class: "pct", text: pct + "%" })));
  const foot = el("div", { class: "top" }, el("span", { class: "id", text: job.job_id + (bytes ? " · " + bytes : "") }));
  if (isLive(job)) {
    foot.append(el("button", { class: "kill", type: "button", text: "kill", onclick: () => killJob(job.job_id) }));
  }
  li.append(foot);
  // a restore's install behind a busy table: why it stands still
  if (job.waiting_for && isLive(job)) li.append(el("div", { class: "waiting", text: `waiting for ${job.waiting_for}` }));
  if (job.error_message) li.append(el("div", { class: "err", text: job.error_message }));
  return li;
}

function statementStart(text) {
  const s = String(text || "");
  return s.length > STATEMENT_CHARS ? s.slice(0, STATEMENT_CHARS) + "…" : s;
}

async function killJob(id) {
  if (!confirm(`Kill job ${id}?`)) return;
  await sql(`KILL JOB '${id.replace(/'/g, "''")}'`);
  pollJobs();
}

async function loadJobs() {
  const list = $("jobs");
  try {
    const answer = await result(JOBS_SQL);
    const jobs = answer.rows;
    $("health").className = "dot up";
    const paused = jobs.filter((j) => j.status === "paused").length;
    $("jobs-note").textContent = jobs.filter((j) => j.status === "running" || j.status === "queued").length + " running" +
      (paused ? ` · ${paused} paused` : "") + (answer.truncated ? ` · ${visible(answer.message || "answer truncated")}` : "");
    list.replaceChildren(...(jobs.length ? jobs.map(jobItem) : [el("li", { class: "empty", text: "No jobs yet." })]));
    const active = new Set(jobs.filter(isLive).map((j) => j.job_id));
    if ([...lastActive].some((id) => !active.has(id))) pollBackups(); // a job ended: backups may have changed
    lastActive = active;
  } catch (err) {
    $("health").className = err && err.code === "UNAVAILABLE" ? "dot down" : "dot up";
    $("jobs-note").textContent = err ? visible(`${err.code}: ${err.message}`) : "";
  }
}

async function loadBackups() {
  const list = $("backups");
  try {
    const backups = await rows("SELECT backup_id, namespace, target, created_at, rows, bytes, label, scope FROM system.backups ORDER BY created_at DESC LIMIT 50");
    try {
      takenNames = new Set((await rows(`SELECT namespace AS name FROM system.namespaces
        UNION ALL SELECT namespace || '.' || table_name FROM system.tables`)).map((r) => r.name));
    } catch (err) { /* not known: restore… proposes <name>_restored */ }
    $("backups-note").textContent = plural(backups.length, "backup");
    list.replaceChildren(...(backups.length ? backups.map(backupItem) : [el("li", { class: "empty", text: "No backups yet." })]));
  } catch (err) {
    $("backups-note").textContent = err ? visible(`${err.code}: ${err.message}`) : "";
  }
}

// restore…'s statement, one that runs: RESTORE TABLE for each table of a BACKUP
// TABLE backup (RESTORE DATABASE refuses it), beside it in its namespace; a
// whole namespace's under a new name. A new name is `<name>_restored` (then
// `_restored2`, ...), the first not taken when the panel last looked, cut to
// the 64-character bound (a 56-character namespace's was refused), quoted.
const NAME_MAX = 64;
let takenNames = new Set(); // "ns" and "ns.table", from the Backups panel's last poll
const quoted = (name) => `"${String(name).replace(/"/g, '""')}"`;
function restoredName(name, taken) {
  for (let n = 1; ; n++) {
    const suffix = "_restored" + (n > 1 ? n : "");
    const candidate = name.slice(0, NAME_MAX - suffix.length) + suffix;
    if (!taken.has(candidate)) return candidate;
  }
}
function restoreStatement(b, id, target) {
  const ns = String(b.namespace);
  const from = `FROM '${target}'`;
  const options = `WITH (backup_id = '${id}')`;
  const scope = String(b.scope || "");
  if (!scope.startsWith("tables: ")) {
    return `RESTORE DATABASE ${quoted(ns)} ${from} AS ${quoted(restoredName(ns, takenNames))} ${options};`;
  }
  const taken = new Set([...takenNames].filter((n) => n.startsWith(ns + ".")).map((n) => n.slice(ns.length + 1)));
  return scope.slice("tables: ".length).split(", ").map((t) => {
    const as = restoredName(t, taken);
    taken.add(as);
    return `RESTORE TABLE ${quoted(ns)}.${quoted(t)} ${from} AS ${quoted(ns)}.${quoted(as)} ${options};`;
  }).join("\n");
}

// One backup: what and when, and buttons that put VERIFY or RESTORE in the editor
// (never run it: a restore is a decision, not a click).
function backupItem(b) {
  const id = b.backup_id.replace(/'/g, "''");
  const target = String(b.target).replace(/'/g, "''");
  const fill = (stmt) => () => { editor.value = stmt; editor.focus(); };
  const taken = String(b.created_at || "").replace("T", " ").slice(0, 19);
  return el("li", { class: "backup", "data-backup-id": b.backup_id },
    el("div", { class: "top" },
      el("span", { class: "what", text: `${b.namespace} → ${shortTarget(b.target)}`, title: b.target }),
      el("span", { class: "when", text: taken })),
    el("div", { class: "top" },
      el("span", { class: "id", text: b.backup_id, title: b.label || "" }),
      el("span", { class: "size", text: `${show(b.rows)} rows · ${humanBytes(b.bytes)}` })),
    b.label ? el("div", { class: "label", text: b.label }) : "",
    el("div", { class: "actions" },
      el("button", { type: "button", text: "verify", title: "put a VERIFY statement in the editor", onclick: fill(`VERIFY BACKUP '${id}' IN '${target}';`) }),
      el("button", { type: "button", text: "restore…", title: "put a RESTORE statement in the editor", onclick: () => fill(restoreStatement(b, id, target))() })));
}

// ---- archiving panel: status and lag of continuous archiving (system.archives) ----

function archiveItem(a) {
  const until = String(a.archived_until || "").replace("T", " ").slice(0, 23);
  const lag = a.status === "stopped" ? "" : `lag ${show(a.lag_ms)} ms`;
  const li = el("li", { class: "archive", "data-namespace": a.namespace, "data-status": a.status },
    el("div", { class: "top" },
      el("span", { class: "what", text: `${a.namespace} → ${shortTarget(a.target)}`, title: a.target }),
      el("span", { class: `badge ${a.status === "running" ? "completed" : a.status}`, text: a.status })),
    el("div", { class: "top" },
      el("span", { class: "lag", text: lag }),
      el("span", { class: "when", text: until ? "until " + until : "", title: "archived_until" })),
    el("div", { class: "top" },
      el("span", { class: "size", text: `${show(a.segments)} segments · ${humanBytes(a.bytes || 0)}` })));
  if (a.last_error) li.append(el("div", { class: "err", text: a.last_error }));
  return li;
}

async function loadArchives() {
  const list = $("archives");
  try {
    const archives = await rows("SELECT * FROM system.archives ORDER BY namespace");
    const running = archives.filter((a) => a.status === "running").length;
    $("archives-note").textContent = archives.length ? `${running} running` : "";
    list.replaceChildren(...(archives.length ? archives.map(archiveItem)
      : [el("li", { class: "empty", text: "No namespace is archived." })]));
  } catch (err) {
    $("archives-note").textContent = err ? visible(`${err.code}: ${err.message}`) : "";
  }
}

function shortTarget(target) {
  const t = String(target || "");
  if (t.includes("://")) return t;
  const parts = t.split("/").filter(Boolean);
  return parts.length > 1 ? "…/" + parts[parts.length - 1] : t;
}

// ---- wiring ---------------------------------------------------------------------

editor.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
    e.preventDefault();
    run();
  } else if (e.key === "Tab" && !e.shiftKey) {
    e.preventDefault();
    editor.setRangeText("  ", editor.selectionStart, editor.selectionEnd, "end");
  }
});
$("run").addEventListener("click", run);
for (const id of ["namespace", "user", "token"]) $(id).addEventListener("change", () => { settings.save(); pollJobs(); pollBackups(); });

// Each panel polls on its own, never two of its requests at once.
const pollJobs = poller(loadJobs, JOB_POLL_MS);
const pollBackups = poller(loadBackups, BACKUP_POLL_MS);
const pollArchives = poller(loadArchives, JOB_POLL_MS);

settings.load();
pollJobs();
pollBackups();
pollArchives();
