// The playground's page: a CodeMirror 6 editor on the left; the diagram, the summary and the
// numbers of the layer under the cursor on the right. Every edit (after a short pause) posts
// the source to /api/check; its diagnostics become lint squiggles, its SVG the diagram.
import { EditorView, basicSetup } from "codemirror";
import { keymap } from "@codemirror/view";
import { linter, lintGutter, forceLinting } from "@codemirror/lint";

const $ = (id) => document.getElementById(id);
const CHECK_DELAY = 150; // ms of quiet before a check: a check costs the server ~20 ms

let latest = null;       // the answer to the latest check, and the text it was for
let checkedText = null;
let seq = 0;             // a check's number: answers to older checks are dropped
let savedText = null;    // the text as last loaded from or saved to the file
let canSave = false;

// --- positions: the server counts lines and columns in characters (code points) from 1 ---

function offset(doc, line, column) {
  if (line < 1) return 0;
  if (line > doc.lines) return doc.length;
  const l = doc.line(line);
  let units = 0, chars = 1;
  for (const ch of l.text) {
    if (chars >= column) break;
    units += ch.length;
    chars++;
  }
  return l.from + units;
}

function cursorPoint(state) {
  const pos = state.selection.main.head;
  const l = state.doc.lineAt(pos);
  return { line: l.number, column: [...l.text.slice(0, pos - l.from)].length + 1 };
}

function before(a, b) { return a.line < b.line || (a.line === b.line && a.column <= b.column); }

function contains(span, p) {
  if (!span || span.line < 1) return false;
  return before({ line: span.line, column: span.column }, p) && before(p, { line: span.end_line, column: span.end_column });
}

function size(span) { return (span.end_line - span.line) * 100000 + (span.end_column - span.column); }

// --- checking ---

async function check(text) {
  const mine = ++seq;
  document.body.dataset.state = "checking";
  let answer;
  try {
    const r = await fetch(`/api/check?depth=${encodeURIComponent($("depth").value)}`, {
      method: "POST", headers: { "Content-Type": "text/plain; charset=utf-8" }, body: text,
    });
    answer = await r.json();
    if (!r.ok) answer = { error: answer.error || r.statusText };
  } catch (e) {
    answer = { error: `the server does not answer (${e.message}): is netdsl serve still running?` };
  }
  if (mine !== seq) return null; // a newer check is on its way
  document.body.dataset.state = "idle";
  document.body.dataset.checks = String(Number(document.body.dataset.checks || 0) + 1);
  if (answer.error) {
    $("status").textContent = answer.error;
    return null;
  }
  latest = answer;
  checkedText = text;
  show(answer);
  return answer;
}

const netdslLinter = linter(async (view) => {
  const text = view.state.doc.toString();
  const answer = await check(text);
  if (!answer || view.state.doc.toString() !== text) return [];
  const doc = view.state.doc;
  return answer.diagnostics.map((d) => {
    let from = offset(doc, d.line, d.column);
    let to = d.end_line ? offset(doc, d.end_line, d.end_column) : from;
    if (to <= from) to = Math.min(doc.length, from + 1);
    if (to <= from) from = Math.max(0, to - 1);
    const message = `${d.code}: ${d.message}` + (d.help ? `\nhelp: ${d.help}` : "") +
      d.notes.map((n) => `\nnote: ${n.message}`).join("");
    return { from, to, severity: "error", source: "netdsl", message };
  });
}, { delay: CHECK_DELAY });

// --- what the check shows ---

function fmt(n) { return n.toLocaleString("en-US"); }
function kib(b) { return `${(b / 1024).toLocaleString("en-US", { maximumFractionDigits: 1 })} KiB`; }

function show(answer) {
  const n = answer.diagnostics.length;
  $("verdict").textContent = answer.ok ? `ok: ${answer.net}` :
    `${n} error${n === 1 ? "" : "s"}${answer.truncated ? " (and more)" : ""}`;
  $("verdict").className = answer.ok ? "ok" : "bad";
  const diagram = $("diagram");
  if (answer.svg) {
    diagram.innerHTML = answer.svg;
    // a tall diagram: bring its first failing (red) box into view
    const red = diagram.querySelector('[stroke="#cc2222"]');
    if (red) red.scrollIntoView({ block: "center", inline: "nearest" });
  } else {
    diagram.textContent = answer.svg_error || "";
  }
  diagram.dataset.ok = answer.ok ? "1" : "0";
  const table = $("summary");
  table.replaceChildren();
  if (answer.summary) {
    const head = table.createTHead().insertRow();
    for (const c of answer.summary.columns) head.appendChild(document.createElement("th")).textContent = c;
    const body = table.createTBody();
    for (const [name, what, shape, params, macs, bytes] of answer.summary.rows) {
      const row = body.insertRow();
      row.dataset.name = name.replace(/ \[train\]$/, "");
      for (const [i, v] of [name, what, shape, fmt(params), fmt(macs), kib(bytes)].entries()) {
        const cell = row.insertCell();
        cell.textContent = v;
        if (i >= 3) cell.className = "num";
      }
    }
    const t = answer.summary.totals;
    $("totals").textContent = t ? `${fmt(t.params)} params (${fmt(t.params_deploy)} deploy), ${fmt(t.macs)} MACs, ` +
      `${kib(t.activation_bytes)} of activations` : "the rows checked before the errors";
  } else {
    $("totals").textContent = "";
  }
  showCursor(view.state);
}

function showCursor(state) {
  const box = $("layer");
  if (!latest || checkedText !== state.doc.toString()) return;
  const p = cursorPoint(state);
  // the smallest span around the cursor; failing that (the cursor on a label, `conv1:`, or in
  // the gaps of a line), the smallest on the cursor's line
  const onLine = (span) => span && span.line >= 1 && span.line <= p.line && p.line <= span.end_line;
  let best = null;
  const at = [];
  for (const test of [(span) => contains(span, p), onLine]) {
    for (const l of latest.layers) {
      if (!test(l.span)) continue;
      if (!best || size(l.span) < size(best.span)) { best = l; at.length = 0; }
      if (size(l.span) === size(best.span) && l.span.line === best.span.line && l.span.column === best.span.column) at.push(l);
    }
    if (best) break;
  }
  for (const g of document.querySelectorAll("#diagram g.current")) g.classList.remove("current");
  for (const r of document.querySelectorAll("#summary tr.current")) r.classList.remove("current");
  if (!best) {
    box.replaceChildren();
    box.textContent = "Put the cursor on a layer to see its numbers.";
    return;
  }
  const params = at.reduce((s, l) => s + l.params, 0), macs = at.reduce((s, l) => s + l.macs, 0);
  box.replaceChildren();
  const title = box.appendChild(document.createElement("div"));
  title.className = "name";
  title.textContent = at.length === 1 ? best.name : `${best.name} and ${at.length - 1} more (one line of a block used ${at.length} times)`;
  const rows = [["op", best.call], ["output", best.shape], ["params", fmt(best.params) + (at.length > 1 ? ` each, ${fmt(params)} in all` : "")],
    ["MACs", fmt(best.macs) + (at.length > 1 ? ` each, ${fmt(macs)} in all` : "")]];
  if (best.train_only) rows.push(["", "training only"]);
  if (!best.ok) rows.push(["", "not checked: it or a layer before it has an error"]);
  const dl = box.appendChild(document.createElement("dl"));
  for (const [k, v] of rows) {
    dl.appendChild(document.createElement("dt")).textContent = k;
    dl.appendChild(document.createElement("dd")).textContent = v;
  }
  // the layers' rows and boxes, or at a smaller depth the rolled-up scopes they are in
  const names = new Set();
  for (const l of at) {
    const parts = l.name.split(".");
    for (let i = 1; i <= parts.length; i++) names.add(parts.slice(0, i).join("."));
  }
  for (const g of document.querySelectorAll("#diagram g.node")) {
    const t = g.querySelector("title");
    if (t && names.has(t.textContent)) g.classList.add("current");
  }
  for (const r of document.querySelectorAll("#summary tbody tr")) if (names.has(r.dataset.name)) r.classList.add("current");
  for (const el of [document.querySelector("#diagram g.current"), document.querySelector("#summary tr.current")]) {
    if (el) el.scrollIntoView({ block: "nearest", inline: "nearest" });
  }
}

// --- saving ---

function markSaved() {
  const dirty = savedText === null || view.state.doc.toString() !== savedText;
  $("save").disabled = !canSave;
  $("saved").textContent = !canSave ? "example: start netdsl serve FILE to save" : dirty ? "unsaved changes" : "saved";
  $("saved").className = dirty ? "dirty" : "clean";
}

async function save(force = false) {
  if (!canSave) return true;
  const text = view.state.doc.toString();
  const r = await fetch(`/api/save${force ? "?force=1" : ""}`, {
    method: "POST", headers: { "Content-Type": "text/plain; charset=utf-8", "X-Netdsl": "save" }, body: text,
  });
  const answer = await r.json().catch(() => ({ error: r.statusText }));
  if (r.status === 409 && answer.conflict) {
    if (window.confirm(`${answer.error}. Overwrite it with the text here?`)) return save(true);
    $("status").textContent = answer.error;
    return true;
  }
  if (!r.ok) {
    $("status").textContent = `not saved: ${answer.error}`;
    return true;
  }
  savedText = text;
  $("status").textContent = `saved ${fmt(answer.bytes)} bytes`;
  markSaved();
  return true;
}

// --- the editor ---

const view = new EditorView({
  parent: $("editor"),
  extensions: [
    basicSetup,
    keymap.of([{ key: "Mod-s", preventDefault: true, run: () => { save(); return true; } }]),
    netdslLinter,
    lintGutter(),
    EditorView.updateListener.of((u) => {
      if (u.docChanged) markSaved();
      if (u.selectionSet || u.docChanged) showCursor(u.state);
    }),
  ],
});

$("save").addEventListener("click", () => save());
$("depth").addEventListener("change", () => forceLinting(view));
window.addEventListener("beforeunload", (e) => {
  if (canSave && view.state.doc.toString() !== savedText) e.preventDefault();
});

(async () => {
  const r = await fetch("/api/source");
  const answer = await r.json();
  if (!r.ok) {
    $("status").textContent = answer.error;
    return;
  }
  canSave = answer.can_save;
  const depth = $("depth"), wanted = String(answer.depth);
  if (![...depth.options].some((o) => o.value === wanted)) depth.add(new Option(wanted, wanted));
  depth.value = wanted;
  $("file").textContent = answer.file || "example";
  document.title = `${answer.file || "example"} — netdsl playground`;
  view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: answer.source } });
  savedText = answer.saved ? answer.source : null;
  markSaved();
  view.focus();
})();

window.netdslPlayground = { view, check: () => forceLinting(view) };
