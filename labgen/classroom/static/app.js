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
  let readOnly = box.dataset.readOnly === "yes";
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
  term.onData((data) => { if (!readOnly) send({data}); });
  // the trainer, once the trainee allowed it: the same terminal, reconnected as a client that types
  window.classroomWritable = (yes) => {
    if (yes === !readOnly) return;
    readOnly = !yes;
    term.options.disableStdin = readOnly;
    box.dataset.ws = box.dataset.ws.split("?")[0] + (yes ? "?write=1" : "");
    if (ws) ws.close();
  };
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
  const banner = document.getElementById("handover");
  function handover(state) {  // the trainer asked to type here, or types here
    banner.hidden = !state;
    document.getElementById("handover-text").textContent = state === "allowed"
      ? "The trainer can type in your terminal now." : "The trainer asks to type in your terminal.";
    document.getElementById("allow").hidden = state === "allowed";
    document.getElementById("refuse").textContent = state === "allowed" ? "Stop it" : "No";
    if (state === "asked") document.getElementById("allow").focus();
  }
  for (const [id, allow] of [["allow", true], ["refuse", false]]) {
    const b = document.getElementById(id);
    b.addEventListener("click", () => post(b.dataset.url, {allow}).catch(() => {}));
  }
  function connect() {  // the server pushes the seat's row when its lab changes
    const ws = new WebSocket(wsUrl(ol.dataset.ws));
    ws.onmessage = (e) => JSON.parse(e.data).seats.forEach((row) => {
      if (row.steps) show(row);
      handover(row.takeover);
    });
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
    const steps = row.steps || [];
    let reached = 0;
    while (reached < steps.length && steps[reached].done) reached++;
    // an error (a read that failed, a watcher that ended) says so; the rest is the last row read
    set("lab", row.error ? "✗ " + row.error : steps.length && steps[0].done ? "✓ up (nodes running)" : "✗ not up");
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

function join() {
  // a card's QR code links here with the seat and code after "#" (never sent to the server): into the form
  const args = new URLSearchParams(location.hash.slice(1));
  if (!args.get("seat")) return;
  document.getElementById("seat").value = args.get("seat");
  document.getElementById("code").value = args.get("code") || "";
  history.replaceState(null, "", location.pathname);
}

function watching() {
  const ask = document.getElementById("ask");
  if (!ask) return;
  const state = document.getElementById("handover-state");
  const words = {asked: "asked: waiting for the trainee", allowed: "you can type (the trainee can stop it)"};
  ask.addEventListener("click", () => {
    const on = ask.dataset.on !== "yes";
    post("/trainer/takeover", {seat: ask.dataset.seat, ask: on}).catch((e) => { state.textContent = "✗ " + e.message; });
  });
  function connect() {
    const ws = new WebSocket(wsUrl("/trainer/live"));
    ws.onmessage = (e) => JSON.parse(e.data).seats.forEach((row) => {
      if (row.seat !== ask.dataset.seat) return;
      state.textContent = words[row.takeover] || "read-only";
      ask.dataset.on = row.takeover ? "yes" : "no";
      ask.textContent = row.takeover ? "Stop typing in this terminal" : "Ask to type in this terminal";
      window.classroomWritable(row.takeover === "allowed");
    });
    ws.onclose = () => setTimeout(connect, 1000);
  }
  connect();
}

terminal();
watching();
if (document.body.dataset.page === "join") join();
if (document.body.dataset.page === "seat") steps();
if (document.body.dataset.page === "dashboard") dashboard();
