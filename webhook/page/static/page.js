// pushdeploy status page: follows a deployment's event stream (and, on
// the overview of several apps, the overview's stream), lists the hosts'
// current releases, and calls the API for the buttons. Plain JS,
// no build step. The API token is only ever in this tab's sessionStorage
// (typed by the user) and in the Authorization header of the buttons'
// requests; the server never puts it into the page.
"use strict";
(function () {
  const TOKEN_KEY = "pushdeploy-token";
  const MAX_LOG_LINES = 5000;
  const $ = (sel, root) => (root || document).querySelector(sel);

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function seconds(s) {
    if (!s) return "";
    if (s < 60) return s.toFixed(1) + "s";
    return Math.floor(s / 60) + "m" + String(Math.floor(s % 60)).padStart(2, "0") + "s";
  }

  // --- Sign-in: keep the token for the buttons, in this tab only. -------
  const login = $("#login-form");
  if (login) {
    login.addEventListener("submit", () => {
      sessionStorage.setItem(TOKEN_KEY, $("#token", login).value);
    });
  }

  // --- Buttons: POST /api/... with the bearer token. --------------------
  const tokenInput = $("#action-token");
  if (tokenInput && !sessionStorage.getItem(TOKEN_KEY)) {
    tokenInput.closest("label").hidden = false;
  }

  // say shows msg next to btn's app on the overview, else in #action-msg.
  function say(msg, bad, btn) {
    const app = btn && btn.closest(".app");
    const m = (app && $("[data-role=msg]", app)) || $("#action-msg");
    if (!m) return;
    m.textContent = msg;
    m.classList.toggle("bad", !!bad);
  }

  function token() {
    if (tokenInput && tokenInput.value) sessionStorage.setItem(TOKEN_KEY, tokenInput.value);
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  async function act(btn) {
    const t = token();
    if (!t) {
      if (tokenInput) tokenInput.closest("label").hidden = false;
      say("Enter the API token first.", true, btn);
      return;
    }
    if (btn.dataset.confirm && !window.confirm(btn.dataset.confirm)) return;
    btn.disabled = true;
    say("Asking…", false, btn);
    try {
      const resp = await fetch(btn.dataset.url, {
        method: "POST",
        credentials: "omit",
        headers: { "Authorization": "Bearer " + t, "Content-Type": "application/json" },
        body: btn.dataset.body || "",
      });
      const out = await resp.json().catch(() => ({}));
      if (resp.status === 202 && out.deployment) {
        say("Queued " + out.deployment + ".", false, btn);
        // The overview follows every app live: it stays.
        if (!btn.dataset.stay) location.assign("/deployments/" + encodeURIComponent(out.deployment));
        return;
      }
      if (resp.status === 401) {
        sessionStorage.removeItem(TOKEN_KEY);
        if (tokenInput) { tokenInput.value = ""; tokenInput.closest("label").hidden = false; }
      }
      say(out.error || (out.status === "refused" ? "Refused: " + out.reason : "HTTP " + resp.status), true, btn);
    } catch (e) {
      say("The request failed: " + e.message, true, btn);
    } finally {
      btn.disabled = false;
    }
  }
  document.querySelectorAll("button[data-url]").forEach((b) => b.addEventListener("click", () => act(b)));

  // --- Current releases, asked for after the page is shown. -------------
  const rel = $("#releases");
  if (rel) loadReleases(rel);

  async function loadReleases(box) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), 60000);
    try {
      const resp = await fetch(box.dataset.src, { signal: ctl.signal, credentials: "same-origin" });
      const out = await resp.json();
      if (!resp.ok) throw new Error(out.error || "HTTP " + resp.status);
      box.replaceChildren(releasesTable(out));
    } catch (e) {
      box.replaceChildren(el("p", { class: "error" }, "Could not list the releases: " + e.message));
    } finally {
      clearTimeout(timer);
    }
  }

  function releasesTable(rep) {
    const frag = document.createDocumentFragment();
    if (rep.disagree) frag.append(el("p", { class: "msg bad" }, "The hosts do not all run the same release."));
    const wrap = el("div", { class: "scroll" });
    const table = el("table", { class: "releases" });
    const head = el("tr");
    for (const h of ["Host", "Current release", "Commit", "Previous"]) head.append(el("th", {}, h));
    const thead = el("thead");
    thead.append(head);
    table.append(thead);
    const body = el("tbody");
    for (const h of rep.hosts || []) {
      const tr = el("tr", { "data-host": h.host });
      tr.append(el("td", {}, h.host));
      if (h.error) {
        const td = el("td", { class: "error", colspan: "3" }, h.error);
        tr.append(td);
      } else {
        const cur = (h.releases || []).find((r) => r.current) || {};
        tr.append(el("td", {}, h.current || "none"));
        const c = el("td"); c.append(el("code", { title: cur.commit || "" }, (cur.commit || "").slice(0, 7))); tr.append(c);
        tr.append(el("td", {}, h.previous || ""));
      }
      body.append(tr);
    }
    table.append(body);
    wrap.append(table);
    frag.append(wrap);
    return frag;
  }

  // --- One deployment, live. --------------------------------------------
  const hosts = $("#hosts");
  if (hosts && hosts.dataset.events) follow(hosts, hosts.dataset.events);

  function setStatus(node, status) {
    node.dataset.status = status;
    const badge = $(":scope > header > .badge", node);
    if (badge) { badge.dataset.status = status; badge.textContent = status; }
  }

  function hostNode(name) {
    for (const h of hosts.querySelectorAll(".host")) if (h.dataset.host === name) return h;
    const h = el("article", { class: "host", "data-host": name, "data-status": "queued" });
    const head = el("header");
    head.append(el("h3", { title: name }, name), el("span", { class: "badge", "data-status": "queued" }, "queued"));
    h.append(head, el("ol", { class: "steps" }));
    hosts.append(h);
    return h;
  }

  function stepNode(hostName, step) {
    const h = hostNode(hostName);
    for (const s of h.querySelectorAll(".step")) if (s.dataset.step === step) return s;
    const s = el("li", { class: "step", "data-step": step, "data-status": "running" });
    s.append(el("span", { class: "name" }, step), document.createTextNode(" "), el("span", { class: "dur" }));
    $(".steps", h).append(s);
    return s;
  }

  function setDeployment(d, status) {
    const st = $("#dep-status");
    if (st && status) { st.dataset.status = status; st.textContent = status; }
    if (!d) return;
    if (d.commit) {
      const c = $("#dep-commit"); c.textContent = d.commit.slice(0, 7); c.title = d.commit;
      // A deployment that was queued when the page loaded learns its
      // commit now: its Redeploy button can name it.
      const rb = $("#redeploy");
      if (rb && rb.hidden && d.action === "deploy") {
        rb.dataset.body = JSON.stringify({ commit: d.commit });
        rb.textContent = "Redeploy " + d.commit.slice(0, 7);
        rb.hidden = false;
      }
    }
    if (d.release) $("#dep-release").textContent = d.release;
    if (d.error) { const e = $("#dep-error"); e.textContent = d.error; e.hidden = false; }
    if (d.started && d.finished) {
      $("#dep-duration").textContent = seconds((Date.parse(d.finished) - Date.parse(d.started)) / 1000);
    }
  }

  function follow(box, url) {
    const log = $("#log");
    const note = $("#stream-note");
    let lastSeq = 0;
    let lastSrc = "";
    const atBottom = () => log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    function logLine(src, line) {
      const stick = atBottom();
      if (src !== lastSrc) { log.append(el("span", { class: "src" }, "── " + src + "\n")); lastSrc = src; }
      log.append(document.createTextNode(line + "\n"));
      while (log.childNodes.length > MAX_LOG_LINES) log.firstChild.remove();
      if (stick) log.scrollTop = log.scrollHeight;
    }
    const es = new EventSource(url);
    const handle = (kind, fn) => es.addEventListener(kind, (m) => {
      const ev = JSON.parse(m.data);
      if (ev.seq) { if (ev.seq <= lastSeq) return; lastSeq = ev.seq; }
      fn(ev);
    });
    handle("step", (ev) => {
      const s = stepNode(ev.host, ev.step);
      s.dataset.status = ev.status;
      $(".dur", s).textContent = seconds(ev.duration_s);
      if (ev.error) s.title = ev.error;
    });
    handle("host", (ev) => setStatus(hostNode(ev.host), ev.status));
    handle("deployment", (ev) => setDeployment(ev.deployment, ev.status));
    handle("output", (ev) => logLine(ev.host + " " + ev.step, ev.line));
    handle("summary", (d) => {
      setDeployment(d, d.status);
      for (const h of d.hosts || []) {
        setStatus(hostNode(h.host), h.status);
        for (const st of h.steps || []) {
          const s = stepNode(h.host, st.step);
          s.dataset.status = st.status;
          $(".dur", s).textContent = seconds(st.duration_s);
          if (st.output_tail) logLine(h.host + " " + st.step + " (last lines)", st.output_tail.replace(/\n$/, ""));
        }
      }
      note.textContent = "This deployment is no longer followed live; this is its record.";
    });
    handle("end", (ev) => {
      es.close();
      setDeployment(null, ev.status);
      note.textContent = "Deployment " + ev.status + ".";
    });
    es.addEventListener("lagged", () => { note.textContent = "Catching up…"; });
    es.addEventListener("open", () => { if (!note.textContent) note.textContent = "Following live."; });
    es.addEventListener("error", () => {
      if (es.readyState !== EventSource.CLOSED) note.textContent = "Connection lost; reconnecting…";
    });
    box.dataset.live = "1";
  }

  // --- The overview of several apps, live. -------------------------------
  const apps = $("#apps");
  if (apps && apps.dataset.events) overview(apps);

  // rowOf finds an app's host row by name (names may hold any character:
  // compared, not put into a selector).
  function rowOf(section, host) {
    for (const tr of section.querySelectorAll("tr[data-host]")) if (tr.dataset.host === host) return tr;
    return null;
  }

  async function loadAppReleases(section) {
    const body = $("tbody[data-src]", section);
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), 60000);
    try {
      const resp = await fetch(body.dataset.src, { signal: ctl.signal, credentials: "same-origin" });
      const out = await resp.json();
      if (!resp.ok) throw new Error(out.error || "HTTP " + resp.status);
      $("[data-role=disagree]", section).hidden = !out.disagree;
      section.dataset.disagree = out.disagree ? "true" : "false";
      for (const h of out.hosts || []) {
        const tr = rowOf(section, h.host);
        if (!tr) continue;
        const commitCell = $("[data-role=commit]", tr);
        if (h.error) {
          tr.dataset.commit = "";
          commitCell.replaceChildren(el("span", { class: "error" }, h.error));
          $("[data-role=release]", tr).textContent = "";
          continue;
        }
        const cur = (h.releases || []).find((r) => r.current) || {};
        tr.dataset.commit = cur.commit || "";
        commitCell.replaceChildren(el("code", { title: cur.commit || "" }, (cur.commit || "").slice(0, 7) || "none"));
        $("[data-role=release]", tr).textContent = h.current || "none";
      }
      section.dataset.releases = "loaded";
    } catch (e) {
      for (const c of section.querySelectorAll("[data-role=commit]")) c.replaceChildren(el("span", { class: "error" }, "Could not list the releases: " + e.message));
      section.dataset.releases = "error";
    } finally {
      clearTimeout(timer);
    }
  }

  // deploymentLine fills a running or last line: link, status, commit.
  function deploymentLine(p, label, d) {
    p.replaceChildren(document.createTextNode(label + " "));
    if (!d) { p.append(el("span", { class: "muted" }, "none yet")); return; }
    const a = el("a", { href: "/deployments/" + encodeURIComponent(d.id) }, d.action + " " + d.id);
    p.append(a, document.createTextNode(" "), el("span", { class: "badge", "data-status": d.status }, d.status));
    if (d.commit) p.append(document.createTextNode(" "), el("code", { title: d.commit }, d.commit.slice(0, 7)));
    if (d.finished) p.append(document.createTextNode(" "), el("span", { class: "muted" }, d.finished.replace("T", " ").replace(/\.\d+/, "")));
  }

  function updateApp(a) {
    const section = document.getElementById("app-" + a.app);
    if (!section) return;
    const before = { running: section.dataset.running || "", last: $("[data-role=last]", section).dataset.deployment || "" };
    section.dataset.running = a.running ? a.running.id : "";
    section.dataset.queue = String(a.queue_length);
    const run = $("[data-role=running]", section);
    run.hidden = !a.running;
    if (a.running) deploymentLine(run, "Running:", a.running);
    const q = $("[data-role=queue]", section);
    q.hidden = !a.queue_length;
    q.textContent = a.queue_length + " queued";
    const last = $("[data-role=last]", section);
    last.dataset.deployment = a.last ? a.last.id : "";
    last.dataset.status = a.last ? a.last.status : "";
    deploymentLine(last, "Last deployment:", a.last);
    const hosts = new Map(((a.running && a.running.hosts) || []).map((h) => [h.host, h]));
    for (const tr of section.querySelectorAll("tr[data-host]")) {
      const h = hosts.get(tr.dataset.host);
      tr.dataset.status = h ? h.status : "";
      const cell = $("[data-role=state]", tr);
      cell.replaceChildren();
      if (h) cell.append(el("span", { class: "badge", "data-status": h.status }, h.status + (h.step ? " · " + h.step : "")));
    }
    // A deployment ended (or one ran and ended between two states): what
    // the hosts run has changed.
    const lastNow = a.last ? a.last.id : "";
    if ((before.running && !a.running) || (lastNow && lastNow !== before.last)) loadAppReleases(section);
  }

  function overview(box) {
    const note = $("#stream-note");
    const names = [...box.querySelectorAll("section.app")].map((s) => s.dataset.app);
    for (const section of box.querySelectorAll("section.app")) loadAppReleases(section);
    const es = new EventSource(box.dataset.events);
    es.addEventListener("apps", (m) => {
      // Apps were added or removed (the deployer re-read its apps): the
      // page is rebuilt.
      if (JSON.parse(m.data).apps.join(" ") !== names.join(" ")) location.reload();
    });
    es.addEventListener("app", (m) => updateApp(JSON.parse(m.data)));
    es.addEventListener("open", () => { note.textContent = "Following live."; box.dataset.live = "1"; });
    es.addEventListener("error", () => {
      if (es.readyState !== EventSource.CLOSED) note.textContent = "Connection lost; reconnecting…";
    });
  }

  // --- An app's page (several apps), live. --------------------------------
  // The page lists the app's deployments: a deployment on it changes its
  // status in place; a newer one than the page shows rebuilds the page.
  const appLiveBox = $("#app-live");
  if (appLiveBox) appLive(appLiveBox);

  function appLive(box) {
    let running = "";
    const es = new EventSource(box.dataset.events);
    es.addEventListener("app", (m) => {
      const a = JSON.parse(m.data);
      const rows = [...document.querySelectorAll("tr[data-deployment]")];
      const newest = rows.length ? rows[0].dataset.deployment : "";
      for (const d of [a.running, a.last]) {
        if (!d) continue;
        const row = rows.find((r) => r.dataset.deployment === d.id);
        if (!row) {
          // Ids begin with their queued time: a later id is newer.
          if (d.id > newest) { es.close(); location.reload(); return; }
          continue;
        }
        const b = $(".badge", row);
        b.dataset.status = d.status;
        b.textContent = d.status;
      }
      // A deployment ended: what the hosts run has changed.
      if (running && !a.running && rel) loadReleases(rel);
      running = a.running ? a.running.id : "";
      box.dataset.live = "1";
    });
  }
})();
