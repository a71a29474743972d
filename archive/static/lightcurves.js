/* Interactive light curves of extras-archive: BokehJS plots of /lightcurves JSON.
 *
 * Pages: LC.view (one product), LC.detection (pn, MOS1, MOS2, bands, background of
 * one source in one observation on one time axis), LC.longterm (flux against MJD).
 * Hovering a point shows its values in a tooltip and in the page's readout; clicking
 * (tapping) a point pins it in the readout. Time axes: seconds since the start, MJD
 * (the file's TIMESYS, TT for XMM) or UTC (TT-UTC from the server, leap seconds
 * included). Libraries: BokehJS (bokeh.min.js + bokeh-api.min.js, BSD-3-Clause),
 * served by the application; see archive/static/README.md.
 */
(function () {
  "use strict";
  const DAY = 86400, MJD_UNIX = 40587;
  const AXES = {
    s: "Time since start (s)",
    mjd: "MJD",
    utc: "UTC",
  };
  const CAMERA = {
    PN: {label: "pn", color: "#1f5fa8", marker: "circle"},
    M1: {label: "MOS1", color: "#c0392b", marker: "square"},
    M2: {label: "MOS2", color: "#2e8b3c", marker: "triangle"},
  };
  const BAND = {
    b1: {label: "0.2-1 keV (soft)", color: "#8e44ad"},
    b2: {label: "1-2 keV (medium)", color: "#e67e22"},
    b3: {label: "2-12 keV (hard)", color: "#6d4c2f"},
  };
  const BACKGROUND_COLOR = "#7f7f7f";

  // -- numbers and times ------------------------------------------------------------
  function floats(values) {
    return Float64Array.from(values, v => (v === null ? NaN : v));
  }

  function converter(time, axis, origin) {
    /* MET (s) of one file -> the axis unit; origin {met, zero, mjdref} is the zero of
       the "s" axis (the file's TSTART, or the earliest start of a detection). */
    const zero = time.timezero, ref = time.mjdref;
    if (axis === "s") {
      const shift = zero - origin.zero + (ref - origin.mjdref) * DAY - origin.met;
      return met => met + shift;
    }
    if (axis === "mjd") return met => ref + (met + zero) / DAY;
    const base = (ref - MJD_UNIX) * DAY + zero;
    return met => {
      let off = time.timesys_minus_utc;
      if (time.leap && met >= time.leap.met) off = time.leap.timesys_minus_utc;
      return (base + met - off) * 1000;              // ms since 1970 (UTC, no leap s)
    };
  }

  function fmtTime(v, axis) {
    if (v === null || Number.isNaN(v)) return "null";
    if (axis === "s") return v.toFixed(3) + " s";
    if (axis === "mjd") return v.toFixed(8);
    return new Date(Math.round(v)).toISOString().replace("T", " ").replace("Z", " UTC");
  }

  function fmtNum(v) {
    if (v === null || v === undefined || Number.isNaN(v)) return "null";
    return String(Number(v.toPrecision(6)));
  }

  // -- readout ------------------------------------------------------------------------
  function readout(root) {
    const el = document.getElementById("lc-readout");
    const pinned = {on: false};
    function show(values, pin) {
      if (!pin && pinned.on) return;
      pinned.on = pinned.on || pin;
      for (const [key, text] of Object.entries(values)) {
        const dd = el.querySelector(`[data-field="${key}"]`);
        if (dd) dd.textContent = text;
      }
      el.dataset.state = pin ? "pinned" : "hover";
    }
    function unpin() { pinned.on = false; }
    return {show, unpin, el};
  }

  // -- one curve as Bokeh glyphs ------------------------------------------------------
  function curveSource(doc, axis, origin) {
    /* ColumnDataSource data and hit positions of one product document. */
    const c = doc.columns, n = doc.length;
    if (doc.kind === "power") {
      const f = floats(c.FREQ), y = floats(c.POWER), e = floats(c.POWER_ERR);
      return {x: f, y, lo: y.map((v, i) => v - e[i]), hi: y.map((v, i) => v + e[i]), e,
              xlabel: Array.from(f, v => fmtNum(v) + " Hz"), frac: null};
    }
    const conv = converter(doc.time, axis, origin);
    if (doc.kind === "blocks") {
      const a = floats(c.TSTART).map(conv), b = floats(c.TSTOP).map(conv);
      const y = floats(c.RATE), e = floats(c.ERATE);
      return {x: a.map((v, i) => (v + b[i]) / 2), left: a, right: b, y, e,
              lo: y.map((v, i) => v - e[i]), hi: y.map((v, i) => v + e[i]),
              xlabel: Array.from(a, (v, i) => fmtTime(v, axis) + " to " + fmtTime(b[i], axis)),
              frac: floats(c.FRACEXP)};
    }
    const yname = doc.kind === "hardness" ? "HR" : "RATE";
    const ename = doc.kind === "hardness" ? "HR_ERR" : "ERROR";
    const x = floats(c.TIME).map(conv), y = floats(c[yname]), e = floats(c[ename]);
    return {x, y, e, lo: y.map((v, i) => v - e[i]), hi: y.map((v, i) => v + e[i]),
            xlabel: Array.from(x, v => fmtTime(v, axis)),
            frac: c.FRACEXP ? floats(c.FRACEXP) : null, n};
  }

  function addCurve(p, doc, d, style, label) {
    /* Glyphs of one curve on figure p; returns the renderer that hover/tap hit. */
    const data = {x: d.x, y: d.y, lo: d.lo, hi: d.hi, xlabel: d.xlabel,
                  ylabel: Array.from(d.y, fmtNum), elabel: Array.from(d.e, fmtNum),
                  flabel: d.frac ? Array.from(d.frac, fmtNum) : Array.from(d.x, () => "-"),
                  curve: Array.from(d.x, () => label)};
    if (d.left) { data.left = d.left; data.right = d.right; }
    const source = new Bokeh.ColumnDataSource({data});
    const common = {source, color: style.color};
    if (doc.kind === "blocks") {
      const band = p.quad({left: {field: "left"}, right: {field: "right"},
                           bottom: {field: "lo"}, top: {field: "hi"}, fill_alpha: 0.15,
                           line_alpha: 0, ...common});
      const r = p.segment({x0: {field: "left"}, x1: {field: "right"}, y0: {field: "y"},
                           y1: {field: "y"}, line_width: 3, ...common});
      return {hit: r, all: [band, r]};
    }
    const bars = p.segment({x0: {field: "x"}, x1: {field: "x"}, y0: {field: "lo"},
                            y1: {field: "hi"}, line_alpha: 0.6, ...common});
    const r = p.scatter({x: {field: "x"}, y: {field: "y"}, marker: style.marker || "circle",
                         size: 6, fill_alpha: style.fill === false ? 0 : 0.9, ...common});
    return {hit: r, all: [bars, r]};
  }

  function figure(axis, ylabel, opts) {
    const attrs = {
      sizing_mode: "stretch_width", height: opts.height || 400,
      x_axis_type: axis === "utc" ? "datetime" : "linear",
      x_axis_label: opts.xlabel || AXES[axis], y_axis_label: ylabel,
      y_axis_type: opts.log ? "log" : "linear",
      tools: "pan,wheel_zoom,box_zoom,reset,save", active_scroll: "wheel_zoom",
      min_border_left: 70,
    };
    if (opts.x_range) attrs.x_range = opts.x_range;
    if (opts.y_range) attrs.y_range = new Bokeh.Range1d({start: opts.y_range[0],
                                                        end: opts.y_range[1]});
    return Bokeh.Plotting.figure(attrs);
  }

  function legend(p, entries) {
    /* A legend under the plot (never over the points); a click hides a curve. */
    const items = entries.map(([label, renderers]) => new Bokeh.LegendItem({label, renderers}));
    p.add_layout(new Bokeh.Legend({items, orientation: "horizontal", click_policy: "hide"}),
                 "below");
  }

  function inspect(p, renderers, out) {
    /* Hover shows the point in a tooltip and the readout; a click pins it. */
    const tips = [["curve", "@curve"], ["time", "@xlabel"], ["value", "@ylabel"],
                  ["error", "@elabel"], ["frac. exposure", "@flabel"]];
    const pick = (source, i) => {
      const d = source.data;
      return {curve: d.curve[i], time: d.xlabel[i], rate: d.ylabel[i], error: d.elabel[i],
              fracexp: d.flabel[i], bin: String(d.row ? d.row[i] : i)};
    };
    p.add_tools(new Bokeh.HoverTool({
      renderers, tooltips: tips, mode: "mouse",
      callback: (tool, info) => {
        const idx = info.index.indices;
        if (idx.length) out.show(pick(info.renderer.data_source, idx[0]), false);
      },
    }));
    p.add_tools(new Bokeh.TapTool({
      renderers,
      callback: (tool, info) => {
        const idx = info.source.selected.indices;
        if (idx.length) out.show(pick(info.source, idx[0]), true);
        else out.unpin();
      },
    }));
  }

  // -- a plot that can be rebuilt (time axis changes) -----------------------------------
  function Plot(container) {
    this.container = container;
    this.views = [];
    this.positions = {};
  }
  Plot.prototype.draw = async function (models) {
    this.views.forEach(v => v.remove());
    this.container.replaceChildren();
    const shown = await Bokeh.Plotting.show(models, this.container);
    this.views = Array.isArray(shown) ? shown : [shown];
    this.container.dataset.ready = String(Date.now());
    return this.views;
  };
  Plot.prototype.pixel = function (key, i) {
    /* Viewport position (CSS px) of point i of curve `key` on the main plot. */
    const view = this.views[0], pos = this.positions[key];
    const sx = view.frame.x_scale.compute(pos.x[i]);
    const sy = view.frame.y_scale.compute(pos.y[i]);
    const rect = view.canvas_view.el.getBoundingClientRect();
    return {x: rect.left + sx, y: rect.top + sy};
  };

  function status(text, error) {
    const el = document.getElementById("lc-status");
    el.textContent = text;
    el.classList.toggle("error", !!error);
  }

  async function fetchJSON(url) {
    const response = await fetch(url, {headers: {Accept: "application/json"}});
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (!response.ok) {
      throw new Error((body && body.error) || `${url}: HTTP ${response.status}`);
    }
    return body;
  }

  // -- page: one light curve ----------------------------------------------------------
  async function view(opts) {
    const container = document.getElementById("lc-plot");
    const plot = new Plot(container), out = readout();
    const select = document.getElementById("lc-axis");
    let doc;
    try {
      status("Loading the light curve…");
      doc = await fetchJSON(opts.data);
    } catch (err) {
      status("The light curve cannot be shown: " + err.message, true);
      return;
    }
    const label = `${doc.instrument} ${doc.background ? "background" : doc.title}`;
    async function draw() {
      const axis = doc.kind === "power" ? "freq" : select.value;
      const origin = doc.time ? {met: doc.time.tstart, zero: doc.time.timezero,
                                 mjdref: doc.time.mjdref} : null;
      const d = curveSource(doc, axis, origin);
      plot.positions = {main: d};
      const ylabel = doc.kind === "hardness" ? "Hardness ratio" :
        doc.kind === "power" ? "Power (Leahy)" : `Rate (${doc.units.RATE || "count/s"})`;
      const style = doc.background ? {color: BACKGROUND_COLOR, marker: "circle"} :
        (CAMERA[doc.camera] || CAMERA.PN);
      const p = figure(axis, ylabel, {xlabel: doc.kind === "power" ? "Frequency (Hz)" : null,
                                      log: doc.kind === "power"});
      const r = addCurve(p, doc, d, style, label);
      inspect(p, [r.hit], out);
      const models = [p];
      if (d.frac) {
        const pf = figure(axis, "Fractional exposure", {height: 150, x_range: p.x_range,
                                                          y_range: [0, 1.05]});
        const fs = new Bokeh.ColumnDataSource({data: {x: d.x, y: d.frac}});
        pf.scatter({x: {field: "x"}, y: {field: "y"}, source: fs, size: 4, color: style.color});
        models.push(pf);
      }
      await plot.draw(models);
      status(`${doc.length} ${doc.kind === "blocks" ? "blocks" : "points"}; ` +
             "hover a point to read it, click to keep it.");
    }
    if (doc.kind === "power") select.disabled = true;
    select.addEventListener("change", draw);
    await draw();
    LC.page = {plot, doc};
  }

  // -- page: every light curve of a detection -----------------------------------------
  async function detection(opts) {
    const container = document.getElementById("lc-plot");
    const plot = new Plot(container), out = readout();
    const select = document.getElementById("lc-axis");
    const curves = opts.curves, cache = new Map();
    const tmin = Math.min(...curves.map(c => c.t_min).filter(v => v !== null));
    const origin = {met: 0, zero: 0, mjdref: tmin};
    const checked = name => Array.from(
      document.querySelectorAll(`input[name="${name}"]:checked`), el => el.value);

    function wanted() {
      const binning = document.querySelector('input[name="binning"]:checked').value;
      const cams = checked("camera"), bands = checked("band");
      const picked = [], missing = [];
      for (const cam of cams) {
        for (const band of bands) {
          const found = curves.find(c => c.camera === cam && c.band === band &&
            (binning === "bb" ? c.product_type === "bblc" :
              c.binning === binning && c.product_type.startsWith("ublc")));
          const name = `${CAMERA[cam].label} ${band === "full" ? "0.2-12 keV" : BAND[band].label}`;
          if (found) picked.push({curve: found, style: band === "full" ? CAMERA[cam] :
            {...BAND[band], marker: CAMERA[cam].marker}, label: name});
          else missing.push(name);
        }
        if (document.getElementById("lc-bg").checked) {
          const bg = curves.find(c => c.camera === cam && c.product_type.startsWith("bglc"));
          if (bg) picked.push({curve: bg, label: `${CAMERA[cam].label} background`,
                               style: {color: BACKGROUND_COLOR, marker: CAMERA[cam].marker,
                                       fill: false}});
          else missing.push(`${CAMERA[cam].label} background`);
        }
      }
      return {picked, missing};
    }

    async function draw() {
      const {picked, missing} = wanted();
      status("Loading…");
      let docs;
      try {
        docs = await Promise.all(picked.map(async w => {
          if (!cache.has(w.curve.path)) cache.set(w.curve.path, fetchJSON(w.curve.data));
          return cache.get(w.curve.path);
        }));
      } catch (err) {
        status("A light curve cannot be shown: " + err.message, true);
        return;
      }
      const axis = select.value;
      const p = figure(axis, "Rate (count/s)", {height: 440});
      const drawn = [];
      plot.positions = {};
      picked.forEach((w, k) => {
        const d = curveSource(docs[k], axis, origin);
        plot.positions[w.curve.path] = d;
        drawn.push([w.label, addCurve(p, docs[k], d, w.style, w.label)]);
      });
      if (drawn.length) {
        legend(p, drawn.map(([label, r]) => [label, r.all]));
        inspect(p, drawn.map(([, r]) => r.hit), out);
      }
      out.unpin();
      container.dataset.shown = picked.map(w => w.curve.path).join(" ");
      await plot.draw([p]);
      status((picked.length ? `${picked.length} curves shown` : "No curve selected") +
             (missing.length ? `; not in the archive: ${missing.join(", ")}` : "") + ".");
    }
    document.getElementById("lc-controls").addEventListener("change", draw);
    await draw();
    LC.page = {plot, cache};
  }

  // -- page: long-term light curve ----------------------------------------------------
  async function longterm(opts) {
    const plot = new Plot(document.getElementById("lc-plot")), out = readout();
    let doc;
    try { doc = await fetchJSON(opts.data); } catch (err) {
      status("The long-term light curve cannot be shown: " + err.message, true);
      return;
    }
    const c = doc.columns;
    const a = floats(c.mjd_start), b = floats(c.mjd_stop);
    const flux = floats(c.flux), err = floats(c.flux_err);
    const x = a.map((v, i) => (v + b[i]) / 2);
    const p = figure("mjd", "Flux 0.2-12 keV (erg/cm²/s)", {xlabel: "MJD", log: true});
    const renderers = [];
    for (const ul of [false, true]) {
      const idx = [...x.keys()].filter(i => c.ul_flag[i] === ul);
      const col = arr => Float64Array.from(idx, i => arr[i]);
      const lo = idx.map(i => (ul ? flux[i] : Math.max(flux[i] - err[i], flux[i] * 1e-3)));
      const data = {x: col(x), y: col(flux), lo, hi: idx.map(i => (ul ? flux[i] : flux[i] + err[i])),
                    xlabel: idx.map(i => `${a[i].toFixed(5)} to ${b[i].toFixed(5)} (${c.obs_id[i]})`),
                    ylabel: idx.map(i => fmtNum(flux[i]) + (ul ? " (upper limit)" : "")),
                    elabel: idx.map(i => (ul ? "upper limit" : fmtNum(err[i]))),
                    flabel: idx.map(() => "-"), curve: idx.map(() => (ul ? "upper limit" : "flux")),
                    row: idx};
      const source = new Bokeh.ColumnDataSource({data});
      if (!ul) p.segment({x0: {field: "x"}, x1: {field: "x"}, y0: {field: "lo"},
                          y1: {field: "hi"}, source, color: "#1f5fa8"});
      renderers.push(p.scatter({x: {field: "x"}, y: {field: "y"}, source, size: ul ? 10 : 7,
                                marker: ul ? "inverted_triangle" : "circle",
                                color: ul ? "#7f7f7f" : "#1f5fa8"}));
      plot.positions[ul ? "ul" : "flux"] = {x: data.x, y: data.y, index: idx};
    }
    legend(p, [["flux", [renderers[0]]], ["3σ upper limit", [renderers[1]]]]);
    inspect(p, renderers, out);
    await plot.draw([p]);
    status(`${doc.length} observations; hover a point to read it, click to keep it.`);
    LC.page = {plot, doc};
  }

  window.LC = {view, detection, longterm, converter, fmtTime, fmtNum};
}());
