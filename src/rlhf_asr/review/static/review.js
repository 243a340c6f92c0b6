// The review page: all text goes in through textContent (never innerHTML), so transcripts stay text.
"use strict";
const token = new URLSearchParams(location.search).get("token") || "";
const $ = (id) => document.getElementById(id);
let clip = null;
let editing = false;
let busy = false;

function say(text) { $("status").textContent = text; }

async function api(path, body) {
  const options = { headers: { Authorization: "Bearer " + token } };
  if (body !== undefined) {
    options.method = "POST";
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    // the server's own reason (JSON {error}) is what the page shows; the status tells what to do next
    const error = new Error(data.error || response.status + " " + response.statusText);
    error.status = response.status;
    throw error;
  }
  return data;
}

function render(data) {
  clip = data.clip;
  editing = false;
  api("/api/progress").then(showProgress).catch(() => {}); // after the clip: counting need not delay it
  const box = $("candidates");
  box.querySelectorAll(".candidate").forEach((node) => node.remove());
  $("transcript").value = "";
  $("transcript").blur(); // keys act on the page again after a saved correction
  if (!clip) {
    $("clip-title").textContent = "All clips are judged. Thank you!";
    $("audio").removeAttribute("src");
    return;
  }
  $("clip-title").textContent = "Clip " + clip.id + " (line " + clip.line + ", " + clip.duration.toFixed(1) + " s)";
  $("audio").src = "/audio/" + clip.id + "?token=" + encodeURIComponent(token);
  clip.candidates.forEach((candidate, index) => {
    const label = document.createElement("label");
    label.className = "candidate";
    const input = document.createElement("input");
    input.type = "radio";
    input.name = "candidate";
    input.value = String(candidate.rank);
    input.checked = index === 0;
    const key = document.createElement("span");
    key.className = "key";
    key.textContent = index < 9 ? String(index + 1) : "";
    key.setAttribute("aria-hidden", "true");
    label.append(input, " ", key);
    candidate.words.forEach(([word, differs], i) => {
      if (i) label.append(" ");
      const node = document.createElement(differs ? "mark" : "span");
      node.textContent = word;
      label.append(node);
    });
    const origin = document.createElement("span");
    origin.className = "origin";
    origin.textContent = "(" + candidate.origin + ")";
    label.append(origin);
    box.append(label);
  });
}

function showProgress(progress) {
  $("progress").max = Math.max(progress.clips, 1);
  $("progress").value = progress.done;
  const mine = progress.yours;
  $("counts").textContent = progress.done + " of " + progress.clips + " clips done; " +
    progress.you + ": " + mine.judged + " judged, " + mine.skipped + " skipped";
  const body = $("annotators").querySelector("tbody");
  body.replaceChildren();
  for (const [name, counts] of Object.entries(progress.annotators)) {
    const row = document.createElement("tr");
    for (const value of [name, counts.judged, counts.skipped]) {
      const cell = document.createElement("td");
      cell.textContent = String(value);
      row.append(cell);
    }
    body.append(row);
  }
  const agreement = progress.agreement;
  $("agreement").textContent = agreement.clips
    ? "Agreement: " + agreement.agreeing + " of " + agreement.clips + " clips judged by two or more people"
    : "";
}

async function send(body, message) {
  if (!clip || busy) return;
  busy = true;
  try {
    render(await api("/api/judge", Object.assign({ clip: clip.id }, body)));
    say(message);
  } catch (error) {
    // 409: the clip is no longer this page's (already judged, or it went to someone else after the
    // hold expired): say so and go on with the next clip; other refusals keep the clip to fix it
    say("Not saved: " + error.message);
    if (error.status === 409) {
      try { render(await api("/api/next")); }
      catch (next) { say("Not saved: " + error.message + "; the next clip did not load: " + next.message); }
    }
  } finally {
    busy = false;
  }
}

function selectedRank() {
  const checked = document.querySelector('input[name="candidate"]:checked');
  return checked ? Number(checked.value) : null;
}

function choose(index) {
  if (!clip || index >= clip.candidates.length) return;
  const rank = clip.candidates[index].rank;
  document.querySelector('input[name="candidate"][value="' + rank + '"]').checked = true;
  send({ action: "choose", rank: rank }, "Saved candidate " + (index + 1) + " for clip " + clip.id);
}

function edit() {
  if (!clip) return;
  const rank = selectedRank();
  const candidate = clip.candidates.find((c) => c.rank === rank) || clip.candidates[0];
  editing = true;
  $("transcript").value = candidate ? candidate.text : "";
  $("transcript").focus();
  say("Editing: Ctrl+Enter saves the correction");
}

function save() {
  if (editing || $("transcript").value.trim()) {
    send({ action: "correct", text: $("transcript").value }, "Saved the correction of clip " + (clip && clip.id));
  } else if (selectedRank() !== null) {
    send({ action: "choose", rank: selectedRank() }, "Saved clip " + (clip && clip.id));
  }
}

async function undo() {
  if (busy) return;
  busy = true;
  try {
    const data = await api("/api/undo", {});
    render(data);
    say(data.undone ? "Undone: clip " + data.undone + " is back" : "Nothing to undo");
  } catch (error) {
    say("Undo failed: " + error.message);
  } finally {
    busy = false;
  }
}

function play() { $("audio").currentTime = 0; $("audio").play().catch(() => {}); }
function skip() { send({ action: "skip" }, "Skipped clip " + (clip && clip.id)); }
function noSpeech() { send({ action: "no_speech" }, "Clip " + (clip && clip.id) + ": no speech"); }

$("play").addEventListener("click", play);
$("save").addEventListener("click", save);
$("skip").addEventListener("click", skip);
$("nospeech").addEventListener("click", noSpeech);
$("undo").addEventListener("click", undo);
$("transcript").addEventListener("input", () => { editing = true; });

document.addEventListener("keydown", (event) => {
  const inBox = event.target === $("transcript");
  if (inBox) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); save(); }
    else if (event.key === "Escape") { editing = false; $("transcript").blur(); }
    return;
  }
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.target instanceof HTMLButtonElement && (event.key === "Enter" || event.key === " ")) return;
  const handlers = { e: edit, n: noSpeech, s: skip, u: undo, p: play };
  if (/^[1-9]$/.test(event.key)) { event.preventDefault(); choose(Number(event.key) - 1); }
  else if (handlers[event.key]) { event.preventDefault(); handlers[event.key](); }
});

// the totals (other annotators, agreement) change without this page: asked again now and then
setInterval(() => api("/api/progress").then(showProgress).catch(() => {}), 3000);
api("/api/next").then(render).catch((error) => say("Cannot load: " + error.message));
