// Cairn web console: the jobs timeline (a bar per job over the last hour, coloured
// by status) and the backup age per namespace. Drawn from system.jobs and
// system.backups through /api/sql (result(), rows(), poller(), isLive() and el()
// come from console.js), the same records GET /metrics reads for cairn_jobs_* and
// cairn_backup_age_seconds.
"use strict";

const TIMELINE_MS = 60 * 60 * 1000; // what is fetched; the window shown is this or less
const WINDOWS = { "1 h": 60, "15 min": 15, "5 min": 5 }; // minutes
let windowMinutes = WINDOWS[localStorage.getItem("cairn.timeline")] || 60;
let lastJobs = [];
let lastCut = ""; // why the hour's jobs are not all drawn, if they are not
const TIMELINE_POLL_MS = 1000; // as often as the jobs panel: a 2 s job is seen running
const TIMELINE_LIMIT = 1000; // bars fetched: the live and failed ones, then the newest
const TIMELINE_LANES = 8;
const STALE_AFTER_S = 26 * 3600; // a daily backup that is late by two hours
const AHEAD = "INTERVAL 300 SECOND"; // server/metrics.py AHEAD_SECONDS

function stamp(s) {
  if (!s) return NaN;
  return Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(s) ? s : s + "Z");
}

function sqlTimestamp(ms) {
  return new Date(ms).toISOString().replace("T", " ").replace("Z", "");
}

function ago(seconds) {
  if (seconds < 60) return `${Math.max(0, Math.floor(seconds))} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400 * 2) return `${(seconds / 3600).toFixed(1)} h ago`;
  return `${Math.floor(seconds / 86400)} days ago`;
}

function took(ms) {
  if (!Number.isFinite(ms)) return "";
  return ms < 1000 ? `${Math.round(ms)} ms` : ms < 120000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 60000)} min`;
}

// Jobs whose span touches the last hour, packed into lanes: a job goes into the
// first lane free at its start, so quick jobs share a lane and overlaps stack.
function layout(jobs, from, to) {
  const ends = [];
  const bars = [];
  for (const job of jobs) {
    const start = stamp(job.started_at || job.created_at);
    const end = isLive(job) ? to : stamp(job.finished_at || job.started_at || job.created_at);
    if (!Number.isFinite(start) || end < from) continue;
    // A bar is at least 1% wide, so a 5 ms flush still shows (and takes its room);
    // one that ends now is widened to the left, never past the end.
    const min = (to - from) * 0.01;
    let left = Math.max(start, from);
    let right = Math.max(Math.min(end, to), left);
    if (right - left < min) {
      left = Math.min(left, to - min);
      right = left + min;
    }
    const room = right;
    let lane = ends.findIndex((e) => e <= left);
    if (lane < 0) lane = ends.length < TIMELINE_LANES ? ends.length : ends.indexOf(Math.min(...ends));
    ends[lane] = room;
    bars.push({ job, lane, left: (left - from) / (to - from), width: (right - left) / (to - from), ms: end - start });
  }
  return { bars, lanes: Math.max(1, ends.length) };
}

function drawAxis() {
  const labels = [4, 3, 2, 1].map((q) => `−${(windowMinutes * q) / 4} min`);
  $("tl-axis").replaceChildren(...labels.map((t) => el("span", { text: t })), el("span", { text: "now" }));
  for (const b of document.querySelectorAll("#tl-windows button")) {
    b.setAttribute("aria-pressed", String(WINDOWS[b.textContent] === windowMinutes));
  }
}

function drawTimeline(jobs, now, cut = "") {
  lastJobs = jobs;
  lastCut = cut;
  const from = now - windowMinutes * 60 * 1000;
  const { bars, lanes } = layout(jobs, from, now);
  const track = $("timeline");
  track.style.height = `${lanes * 12 + 4}px`;
  track.replaceChildren(...bars.map((b) => {
    const j = b.job;
    const bar = el("div", {
      class: `tl-bar ${j.status}`, "data-job-id": j.job_id, "data-status": j.status,
      "data-lane": String(b.lane), role: "img",
      title: `${j.job_type}${j.namespace ? " " + j.namespace : ""} · ${j.status}` +
        (b.ms >= 0 ? ` · ${took(b.ms)}` : "") + ` · ${j.job_id}` + (j.error_message ? `\n${j.error_message}` : ""),
    });
    bar.style.left = `${(b.left * 100).toFixed(3)}%`;
    bar.style.width = `${(b.width * 100).toFixed(3)}%`;
    bar.style.top = `${b.lane * 12 + 2}px`;
    bar.setAttribute("aria-label", bar.title);
    return bar;
  }));
  const counts = {};
  for (const b of bars) counts[b.job.status] = (counts[b.job.status] || 0) + 1;
  $("timeline-note").textContent = (bars.length
    ? Object.entries(counts).map(([s, n]) => `${n} ${s}`).join(" · ")
    : "no jobs") + (cut ? ` · ${cut}` : "");
}

function drawAges(items, now) {
  const list = $("ages");
  if (!items.length) {
    list.replaceChildren(el("li", { class: "empty", text: "No namespaces yet." }));
    return;
  }
  list.replaceChildren(...items.map((r) => {
    const newest = stamp(r.newest);
    const never = !Number.isFinite(newest);
    // Never backed up: as old as the namespace, as cairn_backup_age_seconds counts it.
    // created (by its record) past the server's clock: of unknown age
    const since = never ? (r.born_ahead ? NaN : stamp(r.created_at)) : newest;
    const seconds = Number.isFinite(since) ? (now - since) / 1000 : null;
    const state = never ? "never" : seconds > STALE_AFTER_S ? "stale" : "fresh";
    return el("li", { class: `age ${state}`, "data-namespace": r.namespace, "data-age-seconds": seconds === null ? "" : String(Math.round(seconds)) },
      el("span", { class: "dot" }),
      el("span", { class: "ns", text: r.namespace }),
      el("span", { class: "when", text: never ? "never backed up" : ago(seconds),
        title: never ? (seconds === null ? "" : `created ${ago(seconds)}`) : r.newest }),
      el("span", { class: "count", text: `${r.backups} backup${r.backups === 1 ? "" : "s"}` }));
  }));
}

// The jobs of the last hour, at most TIMELINE_LIMIT: every live (running,
// queued, paused) and failed one, then the newest others (oldest first, 1000
// quick flushes hid every job after them for an hour). Drawn oldest first, as
// layout() packs them.
const startOf = (j) => stamp(j.started_at || j.created_at);
async function loadTimeline() {
  const now = Date.now();
  try {
    const answer = await result(`SELECT job_id, job_type, status, namespace, created_at, started_at, finished_at, error_message
      FROM system.jobs WHERE finished_at IS NULL OR finished_at >= TIMESTAMP '${sqlTimestamp(now - TIMELINE_MS)}'
      ORDER BY status IN ('running', 'queued', 'paused', 'failed') DESC, coalesce(started_at, created_at) DESC, job_id DESC
      LIMIT ${TIMELINE_LIMIT}`);
    const jobs = [...answer.rows].sort((a, b) => startOf(a) - startOf(b) || (a.job_id < b.job_id ? -1 : 1));
    const cut = answer.truncated ? visible(answer.message || "answer truncated")
      : jobs.length >= TIMELINE_LIMIT ? `only the newest ${TIMELINE_LIMIT} jobs (and every live or failed one)` : "";
    drawTimeline(jobs, now, cut);
  } catch (err) {
    $("timeline-note").textContent = err ? visible(`${err.code}: ${err.message}`) : "";
  }
  try {
    // As cairn_backup_age_seconds (server/metrics.py): only backups of this
    // server's namespace (b.own: never another server's database of that name
    // in a shared target, as RESTORE tells them) that hold it whole (not
    // BACKUP TABLE) and were taken since it was created (a
    // namespace dropped and created again is another one); none dated more than
    // 5 min past the server's clock (it ran ahead, or a forged manifest), and a
    // creation time that far ahead rules out no backup.
    const ages = await rows(`SELECT n.namespace, n.created_at, max(b.created_at) AS newest, count(b.backup_id) AS backups,
        n.created_at > now() + ${AHEAD} AS born_ahead
      FROM system.namespaces n LEFT JOIN system.backups b ON b.namespace = n.namespace AND b.own
        AND (b.snapshot_at >= n.created_at OR n.created_at > now() + ${AHEAD}) AND b.created_at <= now() + ${AHEAD}
        AND (b.scope = 'database' OR b.scope LIKE 'all (set %' OR b.scope LIKE 'databases (set %')
      GROUP BY n.namespace, n.created_at
      ORDER BY max(b.created_at) IS NOT NULL, coalesce(max(b.created_at), n.created_at), n.namespace`);
    drawAges(ages, now);
    $("ages-note").textContent = "";
  } catch (err) {
    $("ages-note").textContent = err ? visible(`${err.code}: ${err.message}`) : "";
  }
}

$("tl-windows").replaceChildren(...Object.entries(WINDOWS).map(([label, minutes]) =>
  el("button", { type: "button", text: label, onclick: () => {
    windowMinutes = minutes;
    localStorage.setItem("cairn.timeline", label);
    drawAxis();
    drawTimeline(lastJobs, Date.now(), lastCut);
  } })));
drawAxis();
const pollTimeline = poller(loadTimeline, TIMELINE_POLL_MS);
pollTimeline();
