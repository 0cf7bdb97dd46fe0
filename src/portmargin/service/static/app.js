"use strict";
// The dashboard's live updates: one WebSocket on /v1/stream (the session cookie signs it in),
// resuming from the last event id after a reconnect.
const fmt0 = (x) => (x === null || x === undefined) ? "" : Math.round(x).toLocaleString("en-US");
const pct = (x) => (x === null || x === undefined) ? "∞" : (100 * x).toFixed(1) + "%";

function pmStream(lastId, onMessage) {
  let since = lastId, delay = 500;
  const live = document.getElementById("live");
  function connect() {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${proto}://${location.host}/v1/stream?since=${since}`);
    ws.onopen = () => { delay = 500; if (live) live.textContent = "live"; };
    ws.onmessage = (m) => {
      const msg = JSON.parse(m.data);
      if (msg.type === "event") since = msg.id;
      onMessage(msg);
    };
    ws.onclose = () => {
      if (live) live.textContent = "reconnecting…";
      setTimeout(connect, delay); delay = Math.min(delay * 2, 10000);
    };
  }
  connect();
}

function pmAccounts(lastId) {
  const tbody = document.querySelector("#accounts tbody");
  function recount() {
    const n = { healthy: 0, margin_call: 0, liquidation: 0 };
    for (const tr of tbody.rows) n[tr.className.split(" ")[0]] = (n[tr.className.split(" ")[0]] || 0) + 1;
    for (const k of Object.keys(n)) { const el = document.getElementById("n-" + k); if (el) el.textContent = n[k]; }
  }
  function resort() {
    const rows = Array.from(tbody.rows);
    const key = (tr) => tr.dataset.ratio === "inf" ? Infinity : parseFloat(tr.dataset.ratio);
    rows.sort((a, b) => key(b) - key(a));
    for (const tr of rows) tbody.appendChild(tr);
  }
  let pending = false;
  function later() { if (!pending) { pending = true; setTimeout(() => { pending = false; resort(); recount(); }, 200); } }
  pmStream(lastId, (msg) => {
    if (msg.type === "margin") {
      const f = msg.figures, tr = document.getElementById("row-" + msg.account);
      if (!tr) return;
      tr.className = f.status + " flash";
      tr.dataset.ratio = f.worst_pool_ratio === null ? "inf" : f.worst_pool_ratio;
      tr.querySelector(".status").textContent = f.status;
      tr.querySelector(".ratio").textContent = pct(f.worst_pool_ratio);
      tr.querySelector(".equity").textContent = fmt0(f.equity);
      tr.querySelector(".im").textContent = fmt0(f.initial_margin);
      tr.querySelector(".mm").textContent = fmt0(f.maintenance_margin);
      tr.querySelector(".excess").textContent = fmt0(f.excess);
      later();
    } else if (msg.type === "event" && ["margin_call", "liquidation", "healthy"].includes(msg.kind)) {
      const li = document.createElement("li");
      const f = msg.payload.figures || {};
      li.className = msg.kind;
      li.textContent = `${msg.market_time} ${msg.kind} ${msg.account}: equity ${fmt0(f.equity)} / IM ${fmt0(f.initial_margin)} USD`;
      const feed = document.getElementById("feed");
      feed.insertBefore(li, feed.firstChild);
      while (feed.children.length > 200) feed.removeChild(feed.lastChild);
    }
  });
}

function pmAccount(id) {
  pmStream(0, (msg) => {
    if (msg.type === "margin" && msg.account === id) {
      const s = document.getElementById("status");
      s.textContent = msg.figures.status; s.className = "badge " + msg.figures.status;
      const eq = document.getElementById("equity"); if (eq) eq.textContent = msg.figures.equity.toFixed(2);
      const im = document.getElementById("im"); if (im) im.textContent = msg.figures.initial_margin.toFixed(2);
    }
  });
  const form = document.getElementById("whatif");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const out = document.getElementById("wi-result");
    const body = { account: id, trades: [{ instrument: form.instrument.value.trim(), quantity: parseFloat(form.quantity.value) }] };
    const r = await fetch("/v1/whatif", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Requested-With": "portmargin" },
      body: JSON.stringify(body),
    });
    const doc = await r.json();
    out.replaceChildren();
    const p = document.createElement("p");
    if (!r.ok) { p.className = "refused"; p.textContent = doc.detail; out.appendChild(p); return; }
    p.className = doc.accepted ? "accepted" : "refused";
    p.textContent = `${doc.accepted ? "ACCEPTED" : "REFUSED"}: ${doc.reason}. IM ${fmt0(doc.before.initial_margin)} → ${fmt0(doc.after.initial_margin)} USD (incremental ${fmt0(doc.incremental_initial_margin)}); status ${doc.before.status} → ${doc.after.status}`;
    out.appendChild(p);
  });
}
