// The nas dashboard page. One script for two sources: the live server's JSON API, or the data a
// `nas report` file embeds (window.NAS_REPORT). Every text from the store goes in with textContent.
"use strict";
(() => {
  const POLL_MS = 2000;
  const PAGE_SIZE = 50;
  const COLORS = ["#2f6fde", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];
  const TABLE_COLUMNS = [
    ["seq", "#"], ["status", "status"], ["accuracy", "accuracy"], ["macs", "FLOPs (MACs)"],
    ["params", "params"], ["latency_ms", "latency ms"], ["reward", "reward"], ["train_seconds", "train s"], ["step_ms", "step ms"],
    ["controller", "controller"], ["arch", "architecture"],
  ];
  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- data sources

  function liveSource() {
    async function get(path) {
      const response = await fetch(path, { cache: "no-store", headers: { Accept: "application/json" } });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(body.error || `${path}: HTTP ${response.status}`);
      return body;
    }
    return {
      live: true,
      state: () => get("/api/state"),
      front: (run) => get(`/api/run/${run}/front`),
      progress: (run) => get(`/api/run/${run}/progress`),
      curves: (run) => get(`/api/run/${run}/curves`),
      trials: (run, q) => get(`/api/run/${run}/trials?${new URLSearchParams(q)}`),
      trial: (run, seq) => get(`/api/run/${run}/trial/${seq}`),
      csv: (run, q) => `/api/run/${run}/trials.csv?${new URLSearchParams({ status: q.status, sort: q.sort, desc: q.desc })}`,
    };
  }

  function reportSource(data) {
    const objects = data.runs.map((run) => run.rows.map((values) => Object.fromEntries(run.columns.map((c, i) => [c, values[i]]))));
    function select(run, q) {
      let rows = objects[run] || [];
      if (q.status) rows = rows.filter((r) => r.status === q.status);
      const sign = q.desc === "1" ? -1 : 1;
      // like the server's SQL: missing values last, then the column, then trial order
      return rows.slice().sort((a, b) => {
        const x = a[q.sort], y = b[q.sort];
        if ((x === null) !== (y === null)) return x === null ? 1 : -1;
        if (x !== null && x !== y) return (x < y ? -1 : 1) * sign;
        return a.seq - b.seq;
      });
    }
    let csvUrl = null;
    return {
      live: false,
      state: async () => data.state,
      front: async (run) => data.runs[run].front,
      progress: async (run) => data.runs[run].progress,
      curves: async (run) => data.runs[run].curves || { trials: [] },
      trials: async (run, q) => {
        const rows = select(run, q);
        const page = Number(q.page), size = Number(q.size);
        return { total: rows.length, page, size, rows: rows.slice(page * size, (page + 1) * size) };
      },
      trial: async (run, seq) => {
        const trial = objects[run].find((r) => r.seq === seq);
        return { trial, arch: data.runs[run].archs[trial.arch] };
      },
      csv: (run, q) => {
        const columns = data.runs[run].columns;
        const cell = (v) => (v === null || v === undefined ? "" : /[",\n]/.test(String(v)) ? `"${String(v).replace(/"/g, '""')}"` : String(v));
        const lines = [columns.join(","), ...select(run, q).map((r) => columns.map((c) => cell(r[c])).join(","))];
        if (csvUrl) URL.revokeObjectURL(csvUrl);
        csvUrl = URL.createObjectURL(new Blob([lines.join("\n") + "\n"], { type: "text/csv" }));
        return csvUrl;
      },
    };
  }

  const source = window.NAS_REPORT ? reportSource(window.NAS_REPORT) : liveSource();

  // Every request goes through one chain, so polls, page changes and clicks never overlap.
  let chain = Promise.resolve();
  function serial(task) {
    const result = chain.then(task, task);
    chain = result.catch(() => undefined);
    return result;
  }

  // ---------------------------------------------------------------- state

  const view = {
    runs: [], versions: {}, fronts: {}, progresses: {}, curves: {}, colorBy: null, polls: 0,
    table: { run: 0, status: "", sort: "seq", desc: false, page: 0, total: 0 },
    selected: null,
  };

  // ---------------------------------------------------------------- helpers

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  const num = (v, digits = 4) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
  function macs(v) {
    if (v === null || v === undefined) return "–";
    return v >= 1e9 ? `${(v / 1e9).toFixed(2)} B` : `${(v / 1e6).toFixed(1)} M`;
  }
  // A run's cost axis: multiply-adds, or batch-1 latency in milliseconds for a reward on latency.
  const costText = (v, objective) => (objective && objective.on === "latency" ? (v === null || v === undefined ? "–" : `${Number(v).toFixed(2)} ms`) : macs(v));
  const costName = (objective) => (objective && objective.on === "latency" ? "latency" : "MACs");
  const costHover = (objective) => (objective && objective.on === "latency" ? "latency %{x:.2f} ms" : "MACs %{x:.4s}");
  const count = (v) => (v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US"));
  function duration(s) {
    if (s === null || s === undefined) return "–";
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = Math.floor(s % 60);
    return h ? `${h} h ${m} min` : m ? `${m} min ${sec} s` : `${sec} s`;
  }
  const runColor = (index) => COLORS[index % COLORS.length];
  const runName = (run) => (run.summary && run.summary.name) || run.label;

  // ---------------------------------------------------------------- header and messages

  function renderRuns() {
    const cards = view.runs.map((run) => {
      const card = el("div", { class: "run-card", style: `--run-color: ${runColor(run.index)}`, dataset: { run: run.index } });
      if (!run.available) {
        card.append(el("div", { class: "name" }, run.label), el("p", { class: "failed" }, run.damaged ? "this run cannot be read" : "no run here (yet)"));
        return card;
      }
      const s = run.summary;
      const requested = s.requested ? ` / ${count(s.requested)}` : "";
      card.append(
        el("div", { class: "name" }, runName(run), el("span", { class: "muted" }, `  ${s.controller || "controller unknown"}`)),
        el("dl", {},
          el("dt", {}, "done"), el("dd", { class: "done" }, `${count(s.counts.ok + s.counts.failed + (s.counts.stopped || 0))}${requested}`),
          el("dt", {}, "running"), el("dd", { class: "running" }, count(s.counts.running)),
          ...(s.counts.stopped ? [el("dt", {}, "stopped early"), el("dd", { class: "stopped" }, count(s.counts.stopped))] : []),
          el("dt", {}, "failed"), el("dd", { class: s.counts.failed ? "failed" : "" }, count(s.counts.failed)),
          el("dt", {}, "best reward"), el("dd", { class: "best" }, s.best_reward === null ? "–" : `${num(s.best_reward)} (#${s.best_seq})`),
          el("dt", {}, "elapsed"), el("dd", {}, duration(s.elapsed_s)),
          el("dt", {}, "T, w"), el("dd", {}, `${costText(s.objective.target, s.objective)}, ${s.objective.w}${s.objective.assumed ? " (assumed)" : ""}`)));
      return card;
    });
    $("runs").replaceChildren(...cards);
  }

  function renderMessages(error) {
    const items = [];
    if (error) items.push(el("p", { class: "message error" }, error));
    for (const run of view.runs) {
      const prefix = view.runs.length > 1 ? `${runName(run)}: ` : "";
      if (!run.available) items.push(el("p", { class: "message", dataset: { kind: "missing" } }, prefix + run.message));
      else for (const text of run.summary.messages) items.push(el("p", { class: "message" }, prefix + text));
    }
    $("messages").replaceChildren(...items);
  }

  // ---------------------------------------------------------------- Pareto front

  // SVG markers only: WebGL is missing in many VMs and headless browsers, and Plotly's WebGL code
  // needs 'unsafe-eval', which the page's Content-Security-Policy does not grant.
  function pointTrace(run, data, colorBy, maxSeq) {
    const n = data.seq.length;
    const custom = data.seq.map((seq, i) => [run.index, seq, data.reward[i]]);
    const byOrder = colorBy === "order";
    return {
      type: "scatter", mode: "markers", name: `${runName(run)} trials`, uid: `points-${run.index}`,
      x: data.cost, y: data.accuracy, customdata: custom,
      hovertemplate: `#%{customdata[1]}<br>accuracy %{y:.4f}<br>${costHover(data.objective)}<br>reward %{customdata[2]:.4f}<extra></extra>`,
      marker: {
        size: n > 2000 ? 4 : 7, opacity: n > 2000 ? 0.55 : 0.8,
        color: byOrder ? data.seq : runColor(run.index),
        colorscale: byOrder ? "Viridis" : undefined, cmin: byOrder ? 0 : undefined, cmax: byOrder ? maxSeq : undefined,
        showscale: byOrder && run.index === view.runs.find((r) => view.fronts[r.index])?.index,
        colorbar: byOrder ? { title: { text: "trial #" }, thickness: 12 } : undefined,
      },
    };
  }

  function frontTrace(run, data) {
    const index = new Map(data.seq.map((seq, i) => [seq, i]));
    const at = data.front.map((seq) => index.get(seq));
    return {
      type: "scatter", mode: "lines+markers", name: `${runName(run)} non-dominated`, uid: `front-${run.index}`,
      x: at.map((i) => data.cost[i]), y: at.map((i) => data.accuracy[i]),
      customdata: at.map((i) => [run.index, data.seq[i], data.reward[i]]),
      hovertemplate: `front #%{customdata[1]}<br>accuracy %{y:.4f}<br>${costHover(data.objective)}<extra></extra>`,
      line: { shape: "hv", color: runColor(run.index), width: 2 },
      marker: { size: 9, color: "rgba(0,0,0,0)", line: { color: runColor(run.index), width: 2 } },
    };
  }

  // Trials an early-stopping scheduler stopped, one trace per rung (the epoch where each stopped), in grey
  // so that they never read as the run's full-fidelity trials; their accuracy is a lower-fidelity one.
  const RUNG_SYMBOLS = ["x", "triangle-down", "diamond", "square", "cross", "star-triangle-up"];

  function stoppedTraces(run, data) {
    const stopped = data.stopped || { seq: [] };
    const rungs = [...new Set(stopped.epochs)].sort((a, b) => a - b);
    return rungs.map((epoch, r) => {
      const at = stopped.epochs.flatMap((e, i) => (e === epoch ? [i] : []));
      return {
        type: "scatter", mode: "markers", name: `${runName(run)} stopped at epoch ${epoch}`, uid: `stopped-${run.index}-${epoch}`,
        x: at.map((i) => stopped.cost[i]), y: at.map((i) => stopped.accuracy[i]),
        customdata: at.map((i) => [run.index, stopped.seq[i], epoch]),
        hovertemplate: `#%{customdata[1]}, stopped at epoch %{customdata[2]}<br>accuracy %{y:.4f}<br>${costHover(data.objective)}<extra></extra>`,
        marker: { symbol: RUNG_SYMBOLS[r % RUNG_SYMBOLS.length], size: 7, opacity: 0.7,
                  color: `hsl(220, 8%, ${30 + (35 * r) / Math.max(1, rungs.length - 1)}%)` },
      };
    });
  }

  // Running Plotly.js takes a second of main thread on a slow machine, so it starts only after the
  // header and the table are on screen (the report inlines it, so there it is already there).
  function loadPlotly() {
    if (window.Plotly || $("plotly-js")) return;
    const script = el("script", { id: "plotly-js", src: "/static/plotly.min.js" });
    script.addEventListener("load", () => { document.body.dataset.plotly = "1"; renderPlots(); });
    script.addEventListener("error", () => {
      for (const id of ["pareto-empty", "progress-empty"]) { $(id).hidden = false; $(id).textContent = "Plotly.js could not be loaded, so the plots cannot be drawn."; }
    });
    document.body.append(script);
  }

  // Redrawing 20 000 SVG markers takes seconds on a slow machine; while a search writes every
  // second, redraw at most once per four drawing times so the page stays usable (the table is live).
  const plotCost = { ms: 0, at: -Infinity, pending: false };

  function renderPlots() {
    if (!view.runs.length) return; // the first answer has not come yet
    if (!window.Plotly) {
      for (const id of ["pareto-empty", "progress-empty"]) { $(id).hidden = false; $(id).textContent = "Drawing the plots…"; }
      return;
    }
    if (performance.now() - plotCost.at < 4 * plotCost.ms) { plotCost.pending = true; return; }
    const start = performance.now();
    renderFront();
    renderProgress();
    plotCost.ms = performance.now() - start;
    plotCost.at = performance.now();
    plotCost.pending = false;
    document.body.dataset.plotted = String(view.polls);
    if (!performance.getEntriesByName("nas:plotted").length) performance.mark("nas:plotted");
  }

  function logTicks(low, high, on) {
    // 1-2-5 ticks with SI labels (100M, 200M, 500M, 1B; or milliseconds) instead of Plotly's bare log digits
    const values = [];
    for (let decade = Math.floor(Math.log10(low)); decade <= Math.ceil(Math.log10(high)); decade++) {
      for (const m of [1, 2, 5]) { const v = m * 10 ** decade; if (v >= low && v <= high) values.push(v); }
    }
    const text = on === "latency" ? (v) => `${Number(v.toPrecision(3))} ms` : (v) => (v >= 1e9 ? `${v / 1e9}B` : `${v / 1e6}M`);
    return { tickvals: values, ticktext: values.map(text) };
  }

  function renderFront() {
    const runs = view.runs.filter((r) => view.fronts[r.index] && view.fronts[r.index].seq.length);
    const plot = $("pareto"), empty = $("pareto-empty");
    if (!runs.length) {
      if (plot.data) Plotly.purge(plot);
      plot.hidden = true;
      empty.hidden = false;
      empty.textContent = frontEmptyText();
      return;
    }
    plot.hidden = false;
    empty.hidden = true;
    const colorBy = view.colorBy || (view.runs.length > 1 ? "run" : "order");
    $("color-by").value = colorBy;
    const total = runs.reduce((n, r) => n + view.fronts[r.index].seq.length, 0);
    const maxSeq = Math.max(...runs.map((r) => Math.max(...view.fronts[r.index].seq)));
    const traces = [], labelled = { x: [], y: [], text: [], customdata: [] };
    const all = runs.map((r) => view.fronts[r.index]);
    const accuracies = (d) => d.accuracy.concat(d.stopped ? d.stopped.accuracy : []);
    const lo = Math.min(...all.map((d) => Math.min(...accuracies(d)))), hi = Math.max(...all.map((d) => Math.max(...accuracies(d))));
    const objective = all[0].objective;
    const xs = all.flatMap((d) => d.cost.concat(d.stopped ? d.stopped.cost : [])).concat([objective.target]);
    const pad = Math.max((hi - lo) * 0.08, 0.005);
    const annotations = [];
    const yRange = [lo - pad, hi + pad], xRange = [Math.min(...xs) / 1.25, Math.max(...xs) * 1.25];
    all[0].iso.forEach((curve, i) => {
      // no hover on the curves (they would steal clicks from trials); each is labelled where it leaves the plot
      traces.push({ type: "scatter", mode: "lines", name: `iso-reward ACC·(${costName(objective)}/T)^w`, legendgroup: "iso", showlegend: i === 0,
        x: curve.cost, y: curve.accuracy, hoverinfo: "skip", line: { color: "#98a2b3", width: 1, dash: "dot" } });
      const inside = curve.cost.map((m, j) => [m, curve.accuracy[j]]).filter(([m, a]) => m <= xRange[1] && a >= yRange[0] && a <= yRange[1]);
      if (inside.length) {
        const [m, a] = inside[inside.length - 1];
        annotations.push({ x: Math.log10(m), y: a, text: `R=${curve.reward.toFixed(3)}`, showarrow: false, xanchor: "right", yanchor: "bottom", font: { size: 10, color: "#667085" } });
      }
    });
    for (const run of runs) traces.push(pointTrace(run, view.fronts[run.index], colorBy, maxSeq));
    for (const run of runs) traces.push(...stoppedTraces(run, view.fronts[run.index]));
    for (const run of runs) {
      const data = view.fronts[run.index];
      traces.push(frontTrace(run, data));
      for (const [seq, label] of Object.entries(data.labels)) {
        const i = data.seq.indexOf(Number(seq));
        labelled.x.push(data.cost[i]); labelled.y.push(data.accuracy[i]); labelled.text.push(label);
        labelled.customdata.push([run.index, Number(seq), data.reward[i]]);
        const side = labelled.x.length % 2 ? -1 : 1; // alternate sides so B0 and MnasNet-A1 never overlap
        annotations.push({ x: Math.log10(data.cost[i]), y: data.accuracy[i], text: label, showarrow: true, arrowhead: 0, ax: 34 * side, ay: -28, font: { size: 12 }, bgcolor: "rgba(255,255,255,0.8)" });
      }
    }
    if (labelled.x.length) traces.push({
      type: "scatter", mode: "markers", name: "reference", uid: "reference", x: labelled.x, y: labelled.y,
      customdata: labelled.customdata, text: labelled.text, hovertemplate: "%{text} (#%{customdata[1]})<extra></extra>",
      marker: { symbol: "star", size: 15, color: "#f2b705", line: { color: "#6b4e00", width: 1 } },
    });
    annotations.push({ x: Math.log10(objective.target), y: 0, yref: "paper", text: ` T = ${costText(objective.target, objective)}`, showarrow: false, xanchor: "left", yanchor: "bottom", font: { size: 11, color: "#b42318" } });
    const layout = {
      margin: { l: 60, r: 20, t: 24, b: 48 }, uirevision: "front", hovermode: "closest",
      xaxis: { type: "log", title: { text: objective.on === "latency" ? "batch-1 latency (ms), log scale" : "FLOPs (multiply-adds), log scale" },
               range: xRange.map(Math.log10), ...logTicks(...xRange, objective.on) },
      yaxis: { title: { text: "proxy accuracy" }, range: yRange },
      legend: { orientation: "h", y: -0.2 }, annotations,
      shapes: [{ type: "line", x0: objective.target, x1: objective.target, y0: 0, y1: 1, yref: "paper", line: { color: "#b42318", width: 1, dash: "dash" } }],
    };
    Plotly.react(plot, traces, layout, { responsive: true, displaylogo: false });
    plot.dataset.points = String(total);
    if (!plot.dataset.bound) {
      plot.dataset.bound = "1";
      plot.on("plotly_click", (event) => {
        const point = event.points.find((p) => Array.isArray(p.customdata));
        if (point) openDetail(point.customdata[0], point.customdata[1]);
      });
    }
  }

  function frontEmptyText() {
    if (view.runs.every((r) => !r.available)) return "No run to plot yet: see the message above.";
    const failed = view.runs.some((r) => r.available && r.summary.counts.failed && !r.summary.counts.ok);
    if (failed) return "Nothing to plot: every finished trial failed. Their errors are in the table below.";
    return "Nothing to plot yet: no trial has finished with an accuracy and a cost (MACs, or latency for a reward on latency).";
  }

  // ---------------------------------------------------------------- learning curves

  // Accuracy after every epoch of the running trials and the latest finished ones: a trial the
  // scheduler stopped early is a curve that ends early (dashed).
  function renderCurves(base, config) {
    const plot = $("curves-plot");
    const traces = [];
    for (const run of view.runs) {
      for (const t of (view.curves[run.index] || { trials: [] }).trials) {
        traces.push({ type: "scatter", mode: "lines+markers", name: `#${t.seq} ${t.status}`, x: t.epoch, y: t.accuracy,
          line: { color: runColor(run.index), width: t.status === "running" ? 2.5 : 1, dash: t.status === "stopped" ? "dash" : "solid" },
          marker: { size: 4 }, hovertemplate: `#${t.seq} (${t.status}) epoch %{x}: %{y:.4f}<extra></extra>` });
      }
    }
    plot.hidden = !traces.length;
    if (!traces.length) { if (plot.data) Plotly.purge(plot); return; }
    Plotly.react(plot, traces, { ...base, uirevision: "curves", showlegend: false,
      title: { text: "learning curves: running and latest trials", font: { size: 13 } },
      xaxis: { title: { text: "epoch" }, dtick: 1 }, yaxis: { title: { text: "accuracy" } } }, config);
  }

  // ---------------------------------------------------------------- progress

  function renderProgress() {
    const runs = view.runs.filter((r) => view.progresses[r.index] && view.progresses[r.index].seq.length);
    const plots = [$("reward-plot"), $("hv-plot")];
    $("progress-empty").hidden = runs.length > 0;
    $("progress-empty").textContent = "No finished trial with a reward yet.";
    plots.forEach((p) => { p.hidden = !runs.length; });
    if (!runs.length) { plots.forEach((p) => p.data && Plotly.purge(p)); return; }
    const total = runs.reduce((n, r) => n + view.progresses[r.index].seq.length, 0);
    const rewards = [], hv = [];
    for (const run of runs) {
      const p = view.progresses[run.index], color = runColor(run.index);
      rewards.push({ type: "scatter", mode: "markers", name: `${runName(run)} reward`, x: p.seq, y: p.reward,
        marker: { size: total > 2000 ? 3 : 6, color, opacity: total > 2000 ? 0.35 : 0.6 }, hovertemplate: "#%{x}: %{y:.4f}<extra></extra>" });
      rewards.push({ type: "scatter", mode: "lines", name: `${runName(run)} best so far`, x: p.best_seq, y: p.best,
        line: { shape: "hv", color, width: 2 }, hoverinfo: "skip" });
      hv.push({ type: "scatter", mode: "lines", name: runName(run), x: p.hypervolume.seq, y: p.hypervolume.value,
        line: { color, width: 2 }, hovertemplate: "after #%{x}: %{y:.4f}<extra></extra>" });
    }
    const base = { margin: { l: 56, r: 12, t: 30, b: 40 }, hovermode: "closest", legend: { orientation: "h", y: -0.32 } };
    const config = { responsive: true, displaylogo: false };
    Plotly.react(plots[0], rewards, { ...base, uirevision: "reward", title: { text: "reward per trial and best so far", font: { size: 13 } },
      xaxis: { title: { text: "trial #" } }, yaxis: { title: { text: "reward" } } }, config);
    const ref = runs.map((r) => view.progresses[r.index].hypervolume.reference_cost)[0];
    const refObjective = runs.map((r) => view.fronts[r.index] && view.fronts[r.index].objective).find(Boolean);
    renderCurves(base, config);
    Plotly.react(plots[1], hv, { ...base, uirevision: "hv", title: { text: `hypervolume (accuracy × ${costName(refObjective)} ≤ ${costText(ref, refObjective)}, normalised)`, font: { size: 13 } },
      xaxis: { title: { text: "trial #" } }, yaxis: { title: { text: "hypervolume" } } }, config);
  }

  // ---------------------------------------------------------------- table

  function tableQuery() {
    const t = view.table;
    return { status: t.status, sort: t.sort, desc: t.desc ? "1" : "0", page: String(t.page), size: String(PAGE_SIZE) };
  }

  function renderTableHead() {
    const row = el("tr", {}, TABLE_COLUMNS.map(([key, title]) => el("th", {
      scope: "col", dataset: { col: key }, "aria-sort": view.table.sort === key ? (view.table.desc ? "descending" : "ascending") : null,
      onclick: () => {
        const t = view.table;
        t.desc = t.sort === key ? !t.desc : key === "reward" || key === "accuracy";
        t.sort = key; t.page = 0;
        loadTable();
      },
    }, title)));
    $("trials").tHead.replaceChildren(row);
  }

  function cell(key, r) {
    switch (key) {
      case "accuracy": case "reward": return num(r[key]);
      case "macs": return macs(r.macs);
      case "params": return r.params === null ? "–" : `${(r.params / 1e6).toFixed(2)} M`;
      case "train_seconds": return num(r.train_seconds, 1);
      case "step_ms": return num(r.step_ms, 1);
      case "latency_ms": return num(r.latency_ms, 2);
      case "arch": return r.arch;
      default: return r[key] === null ? "–" : r[key];
    }
  }

  function renderTable(page) {
    view.table.total = page.total;
    renderTableHead();
    const body = page.rows.map((r) => el("tr", { dataset: { seq: r.seq }, onclick: () => openDetail(view.table.run, r.seq), title: r.error || null },
      TABLE_COLUMNS.map(([key]) => el("td", { class: key === "arch" ? "arch" : key === "status" ? `status-${r.status}` : null, title: key === "arch" ? r.arch : null },
        cell(key, r), key === "seq" && r.label ? el("span", { class: "badge" }, r.label) : null))));
    if (!body.length) body.push(el("tr", {}, el("td", { colspan: TABLE_COLUMNS.length, class: "muted" }, view.table.status ? `No ${view.table.status} trials.` : "No trials yet.")));
    $("trials").tBodies[0].replaceChildren(...body);
    const pages = Math.max(1, Math.ceil(page.total / PAGE_SIZE));
    $("page-info").textContent = `page ${view.table.page + 1} of ${pages} · ${count(page.total)} trials`;
    $("prev").disabled = view.table.page <= 0;
    $("next").disabled = view.table.page >= pages - 1;
    $("csv").href = source.csv(view.table.run, tableQuery());
    $("trials").dataset.page = String(view.table.page);
    $("trials").dataset.sort = `${view.table.sort}:${view.table.desc ? "desc" : "asc"}`;
  }

  async function fetchTable() {
    const run = view.runs[view.table.run];
    if (!run || !run.available) {
      renderTable({ total: 0, rows: [] });
      return;
    }
    renderTable(await source.trials(view.table.run, tableQuery()));
  }
  const loadTable = () => serial(fetchTable).catch((e) => renderMessages(String(e.message || e)));

  function renderRunSelect() {
    const select = $("table-run");
    $("table-run-label").hidden = view.runs.length < 2;
    if (select.options.length !== view.runs.length) {
      select.replaceChildren(...view.runs.map((r) => el("option", { value: r.index }, runName(r))));
      select.value = String(view.table.run);
    }
  }

  // ---------------------------------------------------------------- trial detail

  function copyButton(text, label) {
    const button = el("button", { type: "button", class: "copy", onclick: async () => {
      try { await navigator.clipboard.writeText(text); } catch (_) {
        const area = el("textarea", { style: "position:fixed;opacity:0" }); area.value = text;
        document.body.append(area); area.select(); document.execCommand("copy"); area.remove();
      }
      button.textContent = "copied ✓";
      setTimeout(() => { button.textContent = label; }, 1500);
    } }, label);
    return button;
  }

  function renderDetail(run, data) {
    const t = data.trial, a = data.arch, panel = $("detail");
    const items = [["run", runName(view.runs[run])], ["status", t.status], ["accuracy", num(t.accuracy)], ["FLOPs (MACs)", t.macs === null ? "–" : `${count(t.macs)} (${macs(t.macs)})`],
      ["params", count(t.params)], ["reward", num(t.reward)], ["train time", t.train_seconds === null ? "–" : `${num(t.train_seconds, 1)} s`],
      ["epochs", t.epochs ?? "–"], ["controller", t.controller || "–"], ["node", t.node || "–"]];
    const parts = [el("h2", {}, `Trial #${t.seq}`, a.label ? el("span", { class: "badge" }, a.label) : null, el("span", { class: "muted" }, ` ${t.trial_id}`)),
      el("dl", {}, items.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]))];
    if (t.error) parts.push(el("h3", {}, "error"), el("pre", { class: "failed" }, t.error));
    parts.push(el("h3", {}, "architecture ", copyButton(t.arch, "copy string")), el("code", { id: "detail-arch" }, t.arch));
    if (a.stages) {
      parts.push(el("table", { id: "stage-table" },
        el("thead", {}, el("tr", {}, [["#", "stage"], ["op", "op"], ["r", "repeats"], ["k", "kernel"], ["s", "stride"], ["e", "expand"], ["ch", "channels"], ["SE", "squeeze-excitation ratio"], ["skip", "skip"]].map(([h, t]) => el("th", { title: t }, h)))),
        el("tbody", {},
          el("tr", { class: "muted" }, el("td", {}, "stem"), el("td", {}, "conv"), el("td", {}, 1), el("td", {}, 3), el("td", {}, a.stem.stride), el("td", {}, "–"), el("td", {}, a.stem.channels), el("td", {}, "–"), el("td", {}, "–")),
          a.stages.map((s, i) => el("tr", {}, [i + 1, s.op, s.repeats, s.kernel, s.stride, s.expand, s.channels, s.se || "–", s.skip].map((v) => el("td", {}, v)))),
          el("tr", { class: "muted" }, el("td", {}, "head"), el("td", {}, `1×1, ${a.act}`), el("td", {}, 1), el("td", {}, 1), el("td", {}, 1), el("td", {}, "–"), el("td", {}, a.head), el("td", {}, "–"), el("td", {}, "–")))));
    } else parts.push(el("p", { class: "failed" }, `cannot read this architecture: ${a.parse_error}`));
    if (a.timm) {
      const text = JSON.stringify(a.timm);
      parts.push(el("h3", {}, "timm arch_def ", copyButton(text, "copy timm blocks")), el("pre", { id: "detail-timm" }, a.timm.map((s) => JSON.stringify(s)).join(",\n")));
    } else if (a.timm_error) parts.push(el("p", { class: "muted" }, `no timm form: ${a.timm_error}`));
    panel.replaceChildren(...parts);
    panel.dataset.seq = String(t.seq);
    panel.dataset.run = String(run);
  }

  function openDetail(run, seq) {
    view.selected = { run, seq };
    return serial(async () => renderDetail(run, await source.trial(run, seq)))
      .catch((e) => $("detail").replaceChildren(el("h2", {}, "Trial"), el("p", { class: "message error" }, String(e.message || e))));
  }

  // ---------------------------------------------------------------- polling

  async function refresh() {
    const state = await source.state();
    view.runs = state.runs;
    renderRuns();
    renderRunSelect();
    renderMessages(null);
    const changed = view.runs.filter((r) => r.version !== view.versions[r.index]);
    if (!changed.length && view.polls > 0) {
      if (plotCost.pending) renderPlots();
      return;
    }
    await fetchTable(); // the table first: it is what shows up before Plotly.js has run
    if (!performance.getEntriesByName("nas:first-render").length) performance.mark("nas:first-render");
    for (const run of changed) {
      if (run.available) {
        view.fronts[run.index] = await source.front(run.index);
        view.progresses[run.index] = await source.progress(run.index);
        view.curves[run.index] = await source.curves(run.index);
      } else {
        delete view.fronts[run.index];
        delete view.progresses[run.index];
        delete view.curves[run.index];
      }
      view.versions[run.index] = run.version;
    }
    renderPlots();
  }

  async function poll() {
    try {
      await serial(refresh);
      $("live").textContent = source.live ? `live · updated ${new Date().toLocaleTimeString()}` : `report · written ${window.NAS_REPORT.written}`;
    } catch (e) {
      renderMessages(source.live ? `Cannot reach the dashboard server (${e.message || e}); retrying.` : String(e.message || e));
      $("live").textContent = "disconnected";
    } finally {
      view.polls += 1;
      document.body.dataset.polls = String(view.polls);
      if (view.polls === 1) requestAnimationFrame(() => setTimeout(loadPlotly, 0)); // after the first paint
      if (source.live) setTimeout(poll, POLL_MS); // scheduled after the answer: polls never overlap
    }
  }

  function init() {
    $("color-by").addEventListener("change", (e) => { view.colorBy = e.target.value; if (window.Plotly) renderFront(); });
    $("status-filter").addEventListener("change", (e) => { view.table.status = e.target.value; view.table.page = 0; loadTable(); });
    $("table-run").addEventListener("change", (e) => { view.table.run = Number(e.target.value); view.table.page = 0; loadTable(); });
    $("prev").addEventListener("click", () => { view.table.page = Math.max(0, view.table.page - 1); loadTable(); });
    $("next").addEventListener("click", () => { view.table.page += 1; loadTable(); });
    renderTableHead();
    poll();
  }

  init();
})();
