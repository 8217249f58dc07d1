// abconv's snippet (README, "The snippet"). It never throws into the host page.
(() => {
  const tag = document.currentScript;
  const attr = (name) => tag && tag.getAttribute(name);
  const base = tag ? tag.src.replace(/\/abconv\.js(\?.*)?$/, "") : "";
  const timeout = +attr("data-timeout") || 800;
  let consented = attr("data-consent") !== "wait";
  let engagement = !!attr("data-engagement"); // set by /lp/ pages
  let state = "idle"; // idle, waiting, shown, original
  let waiters = [], engaged = false;
  const assignments = {}, queued = window.abconv;

  const safe = (fn) => (...args) => { try { return fn(...args); } catch (e) { /* swallowed */ } };
  const id = () => Array.from(crypto.getRandomValues(new Uint8Array(16)),
    (b) => (b + 256).toString(16).slice(1)).join("");
  const cookie = (value, age) => {
    document.cookie = `abconv_visitor=${value}; path=/; max-age=${age}; SameSite=Lax` +
      (location.protocol === "https:" ? "; Secure" : "");
  };
  const visitor = () => {
    const found = document.cookie.match(/(^|; )abconv_visitor=([\w.:-]{1,128})/);
    const v = found ? found[2] : id();
    cookie(v, 31536000); // one year
    return v;
  };
  const marked = () => Array.from(document.querySelectorAll("[data-abconv]"));
  // Anti-flicker: hidden until applied
  const show = (value) => marked().forEach((el) => { el.style.visibility = value; });
  const variantOf = (key) => (state === "shown" && assignments[key] ? assignments[key].variant : null);

  // Text and attributes; `html` alone is parsed as HTML.
  const apply = (el, a) => {
    if (!a) return;
    const c = a.content || {};
    el.setAttribute("data-abconv-variant", a.variant);
    if (c.html != null) el.innerHTML = c.html;
    else if (c.text != null) el.textContent = String(c.text);
    for (const k of String(c.classes || "").split(/[\s,]+/)) if (k) el.classList.add(k);
    for (const [name, value] of Object.entries(c)) {
      const unsafe = /(^|:)(href|src|(form)?action)$/i.test(name) && /^\s*(javascript|data|vbscript):/i.test(value);
      if (/^(text|html|classes|srcdoc|on.*)$/i.test(name) || !/^[a-z][\w:-]*$/i.test(name) || unsafe) continue;
      if (/^(string|number)$/.test(typeof value)) el.setAttribute(name, value);
    }
  };

  // One request for the page's experiments.
  const request = (keys, signal) =>
    fetch(`${base}/api/assign?visitor=${visitor()}&experiments=${encodeURIComponent(keys)}`,
      { signal })
      .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
      .then((body) => body.assignments.forEach((a) => {
        assignments[a.experiment] = a;
        if (a.engagement) engagement = true;
      }));

  const finish = (outcome) => {
    if (state !== "waiting") return;
    state = outcome;
    if (outcome === "shown") {
      marked().forEach((el) => apply(el, assignments[el.dataset.abconv]));
      watchEngagement();
    }
    show("");
    settle();
  };
  const settle = () => waiters.splice(0).forEach(([key, resolve]) => resolve(variantOf(key)));
  const start = () => {
    if (state !== "idle" || !consented) return;
    const keys = new Set([...marked().map((el) => el.dataset.abconv), ...waiters.map((w) => w[0])]);
    keys.delete("");
    if (!keys.size) { state = "shown"; return watchEngagement(); }
    state = "waiting";
    show("hidden");
    const abort = new AbortController();
    const timer = setTimeout(safe(() => { abort.abort(); finish("original"); }), timeout);
    request([...keys], abort.signal)
      .then(safe(() => { clearTimeout(timer); finish("shown"); }))
      .catch(safe(() => { clearTimeout(timer); finish("original"); }));
  };

  // text/plain: no preflight
  const send = (goal, value, eventId) => {
    if (!consented || state === "original") return false;
    const event = { visitor: visitor(), goal: String(goal), event_id: eventId || id() };
    if (Number.isFinite(value)) event.value = value;
    const body = JSON.stringify(event), url = base + "/api/convert";
    if (!(navigator.sendBeacon && navigator.sendBeacon(url, body))) {
      fetch(url, { method: "POST", body, keepalive: true, mode: "no-cors" }).catch(() => {});
    }
    return true;
  };

  const goal = (target, form) => {
    const el = target.closest && target.closest("[data-abconv-goal]");
    if (!el || (el.tagName === "FORM") !== form) return;
    send(el.dataset.abconvGoal, parseFloat(el.dataset.abconvValue));
  };
  const on = (type, fn) => document.addEventListener(type, fn, true);
  on("click", safe((e) => goal(e.target, false)));
  on("submit", safe((e) => goal(e.target, true)));

  // Once a page view: a click, a field touched, past half the page, or 10 s visible.
  const watchEngagement = () => {
    if (!engagement || engaged) return;
    let seconds = 0, timer = 0;
    const done = safe(() => {
      if (!engaged) send("engaged");
      engaged = true;
      clearInterval(timer);
    });
    ["click", "input", "change"].forEach((type) => on(type, done));
    addEventListener("scroll", () => {
      if (scrollY > 0 && scrollY + innerHeight > document.documentElement.scrollHeight / 2) done();
    }, { passive: true });
    timer = setInterval(() => document.visibilityState === "visible" && ++seconds >= 10 && done(), 1000);
  };

  const api = {
    track: safe((name, options = {}) => send(name, options.value, options.event_id)),
    variant: safe((key) => new Promise((resolve) => {
      if (state === "waiting" || state === "idle" && consented) return waiters.push([key, resolve]);
      if (state !== "shown" || assignments[key]) return resolve(variantOf(key));
      request([key]).then(() => resolve(variantOf(key)), () => resolve(null));
    })),
    consent: safe((granted) => {
      consented = !!granted;
      if (consented) return start();
      cookie("", 0);
      state = "original";
      show("");
      settle();
    }),
  };
  window.abconv = api;
  // Queued calls: window.abconv = [["consent", true]]
  if (Array.isArray(queued)) queued.forEach(safe((call) => api[call[0]](...call.slice(1))));
  if (document.readyState === "loading") on("DOMContentLoaded", safe(start));
  else safe(start)();
})();
