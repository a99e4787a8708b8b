// The classroom's pages: a seat's terminal (xterm.js over a websocket), its tutorial steps and check, and the
// trainer's live dashboard. Everything a trainee can type is shown with textContent, never as markup.
"use strict";

const csrf = document.querySelector('meta[name="csrf"]').content;

function wsUrl(path) {
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
}

async function post(url, body) {
  const r = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: {"X-CSRF-Token": csrf, "Content-Type": "application/json"},
    body: JSON.stringify(body || {}),
  });
  if (!r.ok) throw new Error(r.status + " " + (await r.text()));
  return r.json();
}

function terminal() {
  const box = document.getElementById("term");
  if (!box) return;
  const readOnly = box.dataset.readOnly === "yes";
  const term = new Terminal({cursorBlink: !readOnly, disableStdin: readOnly, scrollback: 5000, fontSize: 14});
  const fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(box);
  fit.fit();
  let ws = null;
  const send = (doc) => { if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(doc)); };
  function connect() {
    ws = new WebSocket(wsUrl(box.dataset.ws));
    ws.binaryType = "arraybuffer";
    ws.onopen = () => { box.dataset.state = "connected"; send({resize: [term.cols, term.rows]}); };
    ws.onmessage = (e) => term.write(new Uint8Array(e.data));
    ws.onclose = () => { box.dataset.state = "reconnecting"; setTimeout(connect, 1000); };
  }
  connect();
  if (!readOnly) term.onData((data) => send({data}));
  window.addEventListener("resize", () => { fit.fit(); send({resize: [term.cols, term.rows]}); });
  document.querySelectorAll("button.shell").forEach((b) => b.addEventListener("click", () => {
    send({data: "invoke ssh " + b.dataset.node + "\r"});
    term.focus();
  }));
  window.classroomTerm = term;  // the classroom tier reads the screen from here
  term.focus();
}

function steps() {
  const ol = document.getElementById("steps");
  if (!ol) return;
  function show(doc) {
    ol.replaceChildren(...(doc.steps || []).map((s) => {
      const li = document.createElement("li");
      li.className = s.done ? "done" : "todo";
      const mark = document.createElement("span");
      mark.className = "mark";
      mark.textContent = s.done ? "✓ done: " : "○ to do: ";
      li.append(mark, s.text);
      return li;
    }));
  }
  function connect() {  // the server pushes the seat's row when its lab changes
    const ws = new WebSocket(wsUrl(ol.dataset.ws));
    ws.onmessage = (e) => JSON.parse(e.data).seats.forEach((row) => { if (row.steps) show(row); });
    ws.onclose = () => setTimeout(connect, 1000);
  }
  connect();
  const button = document.getElementById("check");
  const out = document.getElementById("check-out");
  button.addEventListener("click", async () => {
    out.textContent = "checking…";
    try {
      const doc = await post(button.dataset.url);
      out.textContent = (doc.ok ? "✓ " : "✗ ") + doc.text;
    } catch (e) {
      out.textContent = "✗ " + e.message;
    }
  });
}

function dashboard() {
  const say = document.getElementById("action-out");
  function update(row) {
    const tr = document.getElementById("row-" + row.seat);
    if (!tr) return;
    const set = (cls, text) => { tr.querySelector("." + cls).textContent = text; };
    if (row.error) { set("lab", "✗ " + row.error); return; }
    const steps = row.steps || [];
    let reached = 0;
    while (reached < steps.length && steps[reached].done) reached++;
    set("lab", steps.length && steps[0].done ? "✓ up (nodes running)" : "✗ not up");
    set("chassis", String(row.chassis || 0));
    const down = Object.entries(row.down || {}).map(([node, names]) => node + ": " + names.join(", "));
    set("daemons", down.length ? "✗ down: " + down.join("; ") : "✓ all running");
    set("step", reached ? "✓ " + steps[reached - 1].text : "○ none yet");
    set("ports", (row.ports || []).join(", ") || "none");
    const leases = steps.find((s) => s.key === "leases");
    set("leases", leases && leases.done ? "✓ every port" : "○ not every port");
    set("exercise", row.exercise || "");
    set("activity", row.activity ? new Date(row.activity * 1000).toLocaleTimeString() : "");
    tr.dataset.step = reached ? steps[reached - 1].key : "";
  }
  function connect() {
    const ws = new WebSocket(wsUrl("/trainer/live"));
    ws.onmessage = (e) => JSON.parse(e.data).seats.forEach(update);
    ws.onclose = () => setTimeout(connect, 1000);
  }
  connect();
  async function act(body) {
    say.textContent = "working…";
    try {
      const doc = await post("/trainer/action", body);
      say.textContent = doc.results.map((r) => r.seat + ": " + (r.ok ? "✓ done" : "✗ " + r.line)).join("; ");
    } catch (e) {
      say.textContent = "✗ " + e.message;
    }
  }
  document.getElementById("exercise").addEventListener("submit", (e) => {
    e.preventDefault();
    act({action: "exercise", name: document.getElementById("ex-name").value,
         seat: document.getElementById("ex-seat").value});
  });
  document.querySelectorAll("button.reset").forEach((b) => b.addEventListener("click", () => {
    act({action: "reset", seat: b.dataset.seat});
  }));
}

terminal();
if (document.body.dataset.page === "seat") steps();
if (document.body.dataset.page === "dashboard") dashboard();
