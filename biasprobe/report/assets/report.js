/* biasprobe report: builds the scatter and differences figures from the embedded arrays.
 *
 * The page embeds, per model and pair, the union of each side's top-`exact` tokens with exact
 * float32 log-probs and ranks; for a few pairs the union of the top-`big` tokens and, per
 * sentence, the full vocabulary log-probs as 16-bit codes. The arrays come as one deflated,
 * byte-shuffled blob of columns (DATA.blob), inflated here with DecompressionStream. Traces are
 * built whenever the pair or N changes, so no figure is stored once per N.
 * window.biasprobeReport exposes the state for automated checks.
 */
(function () {
  'use strict';

  var state = {
    errors: [],
    ready: false,
    renderMs: null,
    rendered: 0,
    pair: 0,
    n: null,
    webgl: false,
    showPair: null,
    setTopN: null,
    lastRender: null,
    timings: { scriptStart: performance.now() },
  };
  window.biasprobeReport = state;
  window.addEventListener('error', function (ev) {
    state.errors.push(String(ev.message || ev.error || ev));
  });
  window.addEventListener('unhandledrejection', function (ev) {
    state.errors.push('unhandled rejection: ' + String(ev.reason));
  });

  var DATA = JSON.parse(document.getElementById('biasprobe-data').textContent);
  state.timings.dataParsed = performance.now();
  var PER_SIDE = DATA.labels_per_side;
  var LABEL = DATA.label_font;
  var TOP_FILLS = DATA.top_fills_labelled;
  var NOTE_SIZE = 11;
  var Q_NONFINITE = 65535;

  state.webgl = (function () {
    try {
      var c = document.createElement('canvas');
      return !!(c.getContext('webgl') || c.getContext('experimental-webgl'));
    } catch (e) {
      return false;
    }
  })();

  /* ---------------------------------------------------------------- decoding */

  function bytes(b64) {
    var bin = atob(b64);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  var SIZES = { f4: 4, u2: 2, u4: 4 };
  var COLS = {};

  /* Inflate the blob and undo the byte shuffle: column by column, plane b holds byte b of
   * every value. */
  function loadColumns() {
    var packed = bytes(DATA.blob.zlib);
    if (typeof DecompressionStream === 'undefined') {
      return Promise.reject(new Error('this browser cannot inflate the embedded data ' +
        '(no DecompressionStream): open the report in a current Chrome, Firefox or Safari'));
    }
    var stream = new Blob([packed]).stream().pipeThrough(new DecompressionStream('deflate'));
    return new Response(stream).arrayBuffer().then(function (buf) {
      var raw = new Uint8Array(buf);
      var pos = 0;
      DATA.blob.columns.forEach(function (col) {
        var size = SIZES[col.type];
        var n = col.n;
        var out = new Uint8Array(n * size);
        for (var b = 0; b < size; b++) {
          var plane = pos + b * n;
          for (var i = 0; i < n; i++) out[i * size + b] = raw[plane + i];
        }
        pos += n * size;
        COLS[col.name] = col.type === 'f4' ? new Float32Array(out.buffer)
          : col.type === 'u2' ? new Uint16Array(out.buffer) : new Uint32Array(out.buffer);
      });
      state.timings.dataInflated = performance.now();
    });
  }

  var vectorCache = new Map();
  function fullVector(entry, index) {
    var key = entry + ':' + index;
    if (!vectorCache.has(key)) {
      var v = DATA.entries[entry].vectors[index];
      var size = DATA.vocabs[DATA.entries[entry].vocab].length;
      var q = COLS.q.subarray(v.o, v.o + size);
      var out = new Float64Array(q.length);
      for (var i = 0; i < q.length; i++) {
        out[i] = q[i] === Q_NONFINITE ? -Infinity : v.lo + q[i] * v.step;
      }
      vectorCache.set(key, out);
    }
    return vectorCache.get(key);
  }

  var cellCache = new Map();
  function cellData(p, e) {
    var key = p + ':' + e;
    if (!cellCache.has(key)) {
      var c = DATA.pairs[p].cells[e];
      var ids = new Uint32Array(c.n);
      var gaps = COLS.id;
      var id = 0;
      for (var i = 0; i < c.n; i++) {
        id += gaps[c.o + i];
        ids[i] = id;
      }
      cellCache.set(key, {
        ids: ids,
        ra: COLS.ra.subarray(c.o, c.o + c.n),
        rb: COLS.rb.subarray(c.o, c.o + c.n),
        la: COLS.la.subarray(c.o, c.o + c.n),
        lb: COLS.lb.subarray(c.o, c.o + c.n),
        targets: c.t || [],
        depth: c.d,
        k: c.k,
        v: c.v || null,
        whole: c.n === DATA.vocabs[DATA.entries[e].vocab].length,
      });
    }
    return cellCache.get(key);
  }

  /* Whether every model's cell of pair p holds the view n (a number or 'all'). */
  function hasView(p, n) {
    return DATA.pairs[p].cells.every(function (c, e) {
      if (!c) return true;
      var d = cellData(p, e);
      if (n === 'all') return !!d.v || d.whole;
      return n <= d.depth || d.whole;
    });
  }

  /* Ranks over a full vector (1 = largest; ties → lower id), for the "all" view. */
  function ranksOf(values) {
    var n = values.length;
    var order = new Uint32Array(n);
    for (var i = 0; i < n; i++) order[i] = i;
    order.sort(function (i, j) {
      var d = values[j] - values[i];
      if (d > 0 || d < 0) return d;
      return i - j; /* equal, or both −∞ */
    });
    var ranks = new Uint32Array(n);
    for (var r = 0; r < n; r++) ranks[order[r]] = r + 1;
    return ranks;
  }

  var pointCache = new Map();
  /* The points of one (pair, entry) for one N: x, y, ranks, exactness, label pool. */
  function points(p, e, n) {
    var key = p + ':' + e + ':' + n;
    if (pointCache.has(key)) return pointCache.get(key);
    var d = cellData(p, e);
    var pts;
    if (d.whole || (n !== 'all' && n <= d.depth)) {
      var nn = n === 'all' ? Infinity : n;
      var sel = [];
      var pinned = new Set(d.targets);
      for (var i = 0; i < d.ids.length; i++) {
        if (d.ra[i] <= nn || d.rb[i] <= nn || pinned.has(i)) sel.push(i);
      }
      var m = sel.length;
      pts = {
        ids: new Uint32Array(m), x: new Float64Array(m), y: new Float64Array(m),
        ra: new Uint32Array(m), rb: new Uint32Array(m), exact: new Uint8Array(m), pool: [],
      };
      sel.forEach(function (s, k) {
        pts.ids[k] = d.ids[s];
        pts.x[k] = d.la[s];
        pts.y[k] = d.lb[s];
        pts.ra[k] = d.ra[s];
        pts.rb[k] = d.rb[s];
        pts.exact[k] = 1;
        pts.pool.push(k);
      });
    } else {
      var A = Float64Array.from(fullVector(e, d.v[0]));
      var B = Float64Array.from(fullVector(e, d.v[1]));
      var inUnion = new Int32Array(A.length).fill(-1);
      for (var u = 0; u < d.ids.length; u++) {
        A[d.ids[u]] = d.la[u];
        B[d.ids[u]] = d.lb[u];
        inUnion[d.ids[u]] = u;
      }
      var RA = ranksOf(A);
      var RB = ranksOf(B);
      var keep = [];
      for (var t = 0; t < A.length; t++) {
        if (Number.isFinite(A[t]) && Number.isFinite(B[t])) keep.push(t);
      }
      var mm = keep.length;
      pts = {
        ids: new Uint32Array(mm), x: new Float64Array(mm), y: new Float64Array(mm),
        ra: new Uint32Array(mm), rb: new Uint32Array(mm), exact: new Uint8Array(mm), pool: [],
      };
      keep.forEach(function (t, k) {
        pts.ids[k] = t;
        pts.x[k] = A[t];
        pts.y[k] = B[t];
        var uu = inUnion[t];
        if (uu >= 0) {
          pts.ra[k] = d.ra[uu];
          pts.rb[k] = d.rb[uu];
          pts.exact[k] = 1;
          pts.pool.push(k);
        } else {
          pts.ra[k] = RA[t];
          pts.rb[k] = RB[t];
        }
      });
    }
    var targetIds = new Set(d.targets.map(function (u) { return d.ids[u]; }));
    pts.targets = [];
    if (targetIds.size) {
      for (var q = 0; q < pts.ids.length; q++) {
        if (targetIds.has(pts.ids[q])) pts.targets.push(q);
      }
    }
    var len = pts.x.length;
    pts.diff = new Float64Array(len);
    pts.mean = new Float64Array(len);
    for (var k = 0; k < len; k++) {
      pts.diff[k] = pts.y[k] - pts.x[k];
      pts.mean[k] = (pts.x[k] + pts.y[k]) / 2;
    }
    pointCache.set(key, pts);
    return pts;
  }

  /* ---------------------------------------------------------------- figures */

  function esc(s) {
    return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  }

  function fmt(v) {
    return Number.isFinite(v) ? v.toFixed(3) : '−∞';
  }

  function hoverText(p, e, pts) {
    if (pts.hover) return pts.hover;
    var vocab = DATA.vocabs[DATA.entries[e].vocab];
    var g = DATA.pairs[p].groups;
    var ga = esc(g[0]);
    var gb = esc(g[1]);
    var out = new Array(pts.x.length);
    for (var k = 0; k < pts.x.length; k++) {
      var approx = pts.exact[k] ? '' : '≈';
      var diff = pts.diff[k];
      out[k] = '<b>' + esc(vocab[pts.ids[k]]) + '</b>' +
        '<br>log p(A: ' + ga + ') = ' + fmt(pts.x[k]) + ' · rank ' + approx + pts.ra[k] +
        '<br>log p(B: ' + gb + ') = ' + fmt(pts.y[k]) + ' · rank ' + approx + pts.rb[k] +
        '<br>B − A = ' + (diff >= 0 ? '+' : '') + diff.toFixed(3) +
        (pts.exact[k] ? '' : ' (16-bit values)');
    }
    pts.hover = out;
    return out;
  }

  /* Indices of the most skewed tokens (from the exact pool): B-favoured, then A-favoured. */
  function skewed(pts) {
    var pos = pts.pool.filter(function (k) { return pts.diff[k] > 0; });
    var neg = pts.pool.filter(function (k) { return pts.diff[k] < 0; });
    pos.sort(function (i, j) { return pts.diff[j] - pts.diff[i] || pts.ids[i] - pts.ids[j]; });
    neg.sort(function (i, j) { return pts.diff[i] - pts.diff[j] || pts.ids[i] - pts.ids[j]; });
    return { b: pos.slice(0, PER_SIDE), a: neg.slice(0, PER_SIDE) };
  }

  /* Which points to label, most important first (as figures.label_order): the target words,
   * each side's top-3 fills (A1, B1, A2, B2, A3, B3), then the most skewed, B and A in turn. */
  function labelOrder(pts) {
    var order = pts.targets.slice();
    for (var rank = 1; rank <= TOP_FILLS; rank++) {
      [pts.ra, pts.rb].forEach(function (ranks) {
        for (var k = 0; k < ranks.length; k++) {
          if (ranks[k] === rank && pts.exact[k]) { order.push(k); break; }
        }
      });
    }
    var s = skewed(pts);
    for (var i = 0; i < Math.max(s.a.length, s.b.length); i++) {
      if (i < s.b.length) order.push(s.b[i]);
      if (i < s.a.length) order.push(s.a[i]);
    }
    var seen = new Set();
    return order.filter(function (k) {
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
  }

  function overlaps(a, b) {
    return a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3];
  }

  function inside(a, area) {
    return a[0] >= area[0] && a[1] >= area[1] && a[2] <= area[2] && a[3] <= area[3];
  }

  var DIRECTIONS = [[1, 0], [-1, 0], [0, -1], [0, 1], [1, -1], [-1, -1], [1, 1], [-1, 1]];
  var RINGS = [0, 10, 22];

  /* Greedy, deterministic label placement (as figures.place_labels): each label tries the
   * candidate positions around its point and takes the first inside the plot area and clear of
   * the labels placed so far, the obstacles and the labelled points; else it is dropped. */
  function placeLabels(px, py, texts, order, area, obstacles) {
    var r = LABEL.radius;
    var markers = order.map(function (i) { return [px[i] - r, py[i] - r, px[i] + r, py[i] + r]; });
    var taken = obstacles.slice();
    var placed = [];
    order.forEach(function (i) {
      var x = px[i];
      var y = py[i];
      if (!Number.isFinite(x) || !Number.isFinite(y) || !inside([x, y, x, y], area)) return;
      var w = texts[i].length * LABEL.charWidth * LABEL.size + 4;
      var h = LABEL.lineHeight * LABEL.size;
      for (var ri = 0; ri < RINGS.length; ri++) {
        for (var di = 0; di < DIRECTIONS.length; di++) {
          var dx = DIRECTIONS[di][0] * (w / 2 + r + 1 + RINGS[ri]);
          var dy = DIRECTIONS[di][1] * (h / 2 + r + 1 + RINGS[ri]);
          var box = [x + dx - w / 2, y + dy - h / 2, x + dx + w / 2, y + dy + h / 2];
          if (!inside(box, area)) continue;
          if (taken.some(function (t) { return overlaps(box, t); })) continue;
          if (markers.some(function (m) { return overlaps(box, m); })) continue;
          placed.push({ index: i, box: box, dx: dx, dy: dy, ring: RINGS[ri] });
          taken.push(box);
          return;
        }
      }
    });
    return placed;
  }

  function colorMax(pts) {
    var m = 0.5;
    pts.pool.forEach(function (k) {
      var a = Math.abs(pts.diff[k]);
      if (Number.isFinite(a) && a > m) m = a;
    });
    return m;
  }

  function markerTrace(type, x, y, pts, text, cmax, n, colorbar) {
    var big = pts.x.length > 3000;
    var marker = {
      size: big ? 3 : 6,
      color: pts.diff,
      colorscale: DATA.colorscale,
      cmin: -cmax,
      cmax: cmax,
      opacity: big ? 0.6 : 0.9,
    };
    if (!big) marker.line = { width: 0.3, color: '#555' };
    if (colorbar) {
      marker.colorbar = { title: { text: 'log p(B) − log p(A)', side: 'right' }, thickness: 12,
        x: 1.02, xanchor: 'left' };
    }
    return {
      type: type, mode: 'markers', x: x, y: y, text: text, hoverinfo: 'text', marker: marker,
      name: 'tokens',
    };
  }

  /* Pixel geometry of a figure drawn in a box `width` px wide: a square drawing area for the
   * scatter (equal axes), the same height for the differences view. Margins are fixed
   * (no autoexpand), so data → pixel is known here and labels can be placed exactly. */
  var MARGIN = { l: 62, r: 92, t: 24, b: 50 };
  var MARGIN_DIFF_R = 18;
  function geometry(kind, width) {
    // a phone's box (about 340 px) still gets its whole figure: no minimum wider than that
    var side = Math.max(120, Math.min(width, 760) - MARGIN.l - MARGIN.r);
    var areaW = kind === 'scatter' ? side : Math.max(120, width - MARGIN.l - MARGIN_DIFF_R);
    return {
      width: MARGIN.l + areaW + (kind === 'scatter' ? MARGIN.r : MARGIN_DIFF_R),
      height: MARGIN.t + side + MARGIN.b,
      area: [MARGIN.l, MARGIN.t, MARGIN.l + areaW, MARGIN.t + side],
    };
  }

  function toPx(geo, xr, yr, x, y) {
    var a = geo.area;
    var px = new Float64Array(x.length);
    var py = new Float64Array(x.length);
    for (var k = 0; k < x.length; k++) {
      px[k] = a[0] + (x[k] - xr[0]) / (xr[1] - xr[0]) * (a[2] - a[0]);
      py[k] = a[1] + (yr[1] - y[k]) / (yr[1] - yr[0]) * (a[3] - a[1]);
    }
    return [px, py];
  }

  function noteBoxes(geo, notes) {
    var a = geo.area;
    var ww = a[2] - a[0];
    var hh = a[3] - a[1];
    return notes.map(function (nt) {
      var w = nt.text.length * 0.62 * NOTE_SIZE + 8;
      var h = LABEL.lineHeight * NOTE_SIZE + 4;
      return nt.corner === 'top left'
        ? [a[0], a[1], a[0] + w + 0.02 * ww, a[1] + h + 0.02 * hh]
        : [a[2] - w - 0.02 * ww, a[3] - h - 0.02 * hh, a[2], a[3]];
    });
  }

  function labelAnnotations(x, y, lab, vocab, pts) {
    return lab.map(function (l) {
      var a = {
        x: x[l.index], y: y[l.index], xanchor: 'center', yanchor: 'middle',
        borderpad: 0, borderwidth: 0, name: 'label', text: esc(vocab[pts.ids[l.index]]),
        font: { size: LABEL.size, family: LABEL.family, color: LABEL.color },
      };
      if (l.ring > 0) { /* away from its point: a thin leader line */
        a.showarrow = true; a.ax = l.dx; a.ay = l.dy; a.axref = 'pixel'; a.ayref = 'pixel';
        a.arrowhead = 0; a.arrowwidth = 0.7; a.arrowcolor = '#999'; a.standoff = LABEL.radius;
      } else {
        a.showarrow = false; a.xshift = l.dx; a.yshift = -l.dy;
      }
      return a;
    });
  }

  function baseLayout(geo) {
    return {
      showlegend: false,
      width: geo.width,
      height: geo.height,
      margin: { l: MARGIN.l, r: geo.width - geo.area[2], t: MARGIN.t, b: MARGIN.b,
        autoexpand: false },
      plot_bgcolor: 'white',
      hovermode: 'closest',
      font: { size: 12 },
    };
  }

  function scatterFigure(p, e, n, width) {
    var pts = points(p, e, n);
    var g = DATA.pairs[p].groups;
    var useGL = pts.x.length > 3000 && state.webgl;
    var cmax = colorMax(pts);
    var lo = Infinity;
    var hi = -Infinity;
    for (var k = 0; k < pts.x.length; k++) {
      lo = Math.min(lo, pts.x[k], pts.y[k]);
      hi = Math.max(hi, pts.x[k], pts.y[k]);
    }
    if (!Number.isFinite(lo)) { lo = -10; hi = 0; }
    lo = Math.floor(lo) - Math.max(0.5, 0.08 * (hi - lo));
    hi = Math.min(0, hi) + 0.5;
    var geo = geometry('scatter', width);
    var text = hoverText(p, e, pts);
    var vocab = DATA.vocabs[DATA.entries[e].vocab];
    var notes = [
      { text: 'more likely after B: ' + g[1], corner: 'top left' },
      { text: 'more likely after A: ' + g[0], corner: 'bottom right' },
    ];
    var xy = toPx(geo, [lo, hi], [lo, hi], pts.x, pts.y);
    var texts = Array.prototype.map.call(pts.ids, function (id) { return vocab[id]; });
    var lab = placeLabels(xy[0], xy[1], texts, labelOrder(pts), geo.area, noteBoxes(geo, notes));
    var layout = baseLayout(geo);
    layout.xaxis = {
      title: { text: 'log p(token | A: ' + esc(g[0]) + ')' }, range: [lo, hi],
      gridcolor: '#eee', zeroline: false, linecolor: '#bbb', mirror: true,
    };
    layout.yaxis = {
      title: { text: 'log p(token | B: ' + esc(g[1]) + ')' }, range: [lo, hi],
      gridcolor: '#eee', zeroline: false, linecolor: '#bbb', mirror: true,
    };
    layout.shapes = [{
      type: 'line', x0: lo, y0: lo, x1: hi, y1: hi, layer: 'below',
      line: { dash: 'dash', color: '#888', width: 1 },
    }];
    layout.annotations = [
      { xref: 'x domain', yref: 'y domain', x: 0.02, y: 0.98, xanchor: 'left', yanchor: 'top',
        showarrow: false, font: { color: DATA.colorscale[2][1], size: NOTE_SIZE },
        text: esc(notes[0].text), name: 'note' },
      { xref: 'x domain', yref: 'y domain', x: 0.98, y: 0.02, xanchor: 'right', yanchor: 'bottom',
        showarrow: false, font: { color: DATA.colorscale[0][1], size: NOTE_SIZE },
        text: esc(notes[1].text), name: 'note' },
    ].concat(labelAnnotations(pts.x, pts.y, lab, vocab, pts));
    var data = [
      markerTrace(useGL ? 'scattergl' : 'scatter', pts.x, pts.y, pts, text, cmax, n, true),
    ];
    return { data: data, layout: layout, count: pts.x.length, labels: lab, geo: geo };
  }

  function diffFigure(p, e, n, width) {
    var pts = points(p, e, n);
    var g = DATA.pairs[p].groups;
    var useGL = pts.x.length > 3000 && state.webgl;
    var cmax = colorMax(pts);
    var text = hoverText(p, e, pts);
    var vocab = DATA.vocabs[DATA.entries[e].vocab];
    var xmax = 0.5;
    var ylo = Infinity;
    var yhi = -Infinity;
    for (var k = 0; k < pts.diff.length; k++) {
      var a = Math.abs(pts.diff[k]);
      if (Number.isFinite(a) && a > xmax) xmax = a;
      if (Number.isFinite(pts.mean[k])) {
        ylo = Math.min(ylo, pts.mean[k]);
        yhi = Math.max(yhi, pts.mean[k]);
      }
    }
    if (!Number.isFinite(ylo)) { ylo = -10; yhi = 0; }
    var pad = Math.max(0.3, 0.06 * (yhi - ylo));
    var xr = [-xmax * 1.3, xmax * 1.3];
    var yr = [ylo - pad, yhi + pad];
    var geo = geometry('diff', width);
    var xy = toPx(geo, xr, yr, pts.diff, pts.mean);
    var texts = Array.prototype.map.call(pts.ids, function (id) { return vocab[id]; });
    var lab = placeLabels(xy[0], xy[1], texts, labelOrder(pts), geo.area, []);
    var layout = baseLayout(geo);
    layout.xaxis = {
      title: { text: 'log p(B: ' + esc(g[1]) + ') − log p(A: ' + esc(g[0]) + ')' },
      range: xr, gridcolor: '#eee', zeroline: true, zerolinecolor: '#888', linecolor: '#bbb',
      mirror: true,
    };
    layout.yaxis = { title: { text: 'mean log p(token)' }, range: yr, gridcolor: '#eee',
      zeroline: false, linecolor: '#bbb', mirror: true };
    layout.annotations = labelAnnotations(pts.diff, pts.mean, lab, vocab, pts);
    var data = [
      markerTrace(useGL ? 'scattergl' : 'scatter', pts.diff, pts.mean, pts, text, cmax, n, false),
    ];
    return { data: data, layout: layout, count: pts.x.length, labels: lab, geo: geo };
  }

  var CONFIG = {
    displaylogo: false,
    responsive: false,
    modeBarButtonsToRemove: ['select2d', 'lasso2d'],
  };

  /* ---------------------------------------------------------------- page */

  var sections = Array.prototype.slice.call(document.querySelectorAll('section.pair'));
  var select = document.getElementById('pair-select');
  var statusEl = document.getElementById('status');
  var nButtons = Array.prototype.slice.call(document.querySelectorAll('button.topn'));
  var drawn = [];

  function parseN(s) {
    return s === 'all' ? 'all' : parseInt(s, 10);
  }

  /* The N drawn for pair p: the chosen one when embedded for it, else the default, else the
   * largest N it embeds (a run that stored fewer tokens than the default view). */
  function effectiveN(p) {
    if (hasView(p, state.n)) return state.n;
    if (hasView(p, DATA.topn.default)) return DATA.topn.default;
    var numeric = DATA.topn.options.filter(function (o) { return o !== 'all'; });
    for (var i = numeric.length - 1; i >= 0; i--) {
      if (hasView(p, numeric[i])) return numeric[i];
    }
    return Math.min.apply(null, DATA.pairs[p].cells.filter(Boolean).map(function (c) {
      return c.d;
    }));
  }

  function shellQuote(s) {
    return /^[A-Za-z0-9_.,:\/@%+=-]+$/.test(s) ? s : "'" + s.replace(/'/g, "'\\''") + "'";
  }

  /* The buttons of the views this pair does not embed are disabled; the note says how to get
   * them. */
  function updateViews(p) {
    var missing = [];
    nButtons.forEach(function (b) {
      var n = parseN(b.dataset.n);
      var ok = hasView(p, n);
      b.disabled = !ok;
      b.title = ok ? '' : 'not embedded for this pair';
      if (!ok) missing.push(String(n));
    });
    var note = document.getElementById('views-note');
    if (!note) return;
    note.textContent = '';
    if (!missing.length) {
      note.textContent = 'All views of this pair are embedded.';
      return;
    }
    var pair = DATA.pairs[p];
    var stored = pair.big;
    var views = missing.map(function (m) { return '“' + m + '”'; }).join(' and ');
    var plural = missing.length > 1;
    note.appendChild(document.createTextNode(
      'The ' + views + (plural ? ' views' : ' view') + ' of this pair ' +
      (stored ? (plural ? 'need' : 'needs') + ' more than the run stored (run again with ' +
        '--store full, or a larger --store-top-n). ' :
        (plural ? 'are' : 'is') + ' not embedded, to keep the page small. To get ' +
        (plural ? 'them' : 'it') + ': ')));
    if (!stored) {
      var code = document.createElement('code');
      code.textContent = DATA.command + ' --pairs ' + shellQuote(pair.id);
      note.appendChild(code);
      note.appendChild(document.createTextNode(' (see “What this page leaves out” below).'));
    }
  }

  /* Top-k lists of a pair whose section has no static ones, from the embedded tokens. */
  function fillTopk(p) {
    var box = sections[p].querySelector('div.topks[data-topk]');
    if (!box || box.dataset.filled) return;
    var g = DATA.pairs[p].groups;
    DATA.pairs[p].cells.forEach(function (c, e) {
      if (!c || !c.k) return;
      var d = cellData(p, e);
      var vocab = DATA.vocabs[DATA.entries[e].vocab];
      var sideA = [];
      var sideB = [];
      for (var i = 0; i < d.ids.length; i++) {
        if (d.ra[i] <= c.k) sideA.push(i);
        if (d.rb[i] <= c.k) sideB.push(i);
      }
      sideA.sort(function (i, j) { return d.ra[i] - d.ra[j]; });
      sideB.sort(function (i, j) { return d.rb[i] - d.rb[j]; });
      var inA = new Set(sideA.map(function (i) { return d.ids[i]; }));
      var inB = new Set(sideB.map(function (i) { return d.ids[i]; }));
      var fig = document.createElement('figure');
      fig.className = 'topk';
      var cap = document.createElement('figcaption');
      cap.textContent = DATA.entries[e].label;
      fig.appendChild(cap);
      var table = document.createElement('table');
      var head = table.createTHead().insertRow();
      ['rank', 'A: ' + g[0], 'log p', 'B: ' + g[1], 'log p'].forEach(function (h) {
        var th = document.createElement('th');
        th.textContent = h;
        head.appendChild(th);
      });
      var body = table.createTBody();
      for (var r = 0; r < Math.max(sideA.length, sideB.length); r++) {
        var row = body.insertRow();
        var rank = row.insertCell();
        rank.className = 'num';
        rank.textContent = String(r + 1);
        [[sideA, d.la, inB], [sideB, d.lb, inA]].forEach(function (s) {
          var tok = row.insertCell();
          var val = row.insertCell();
          if (r >= s[0].length) return;
          var i = s[0][r];
          tok.className = s[2].has(d.ids[i]) ? 'tok' : 'tok excl';
          tok.textContent = vocab[d.ids[i]];
          val.className = 'num';
          val.textContent = fmt(s[1][i]);
        });
      }
      fig.appendChild(table);
      box.appendChild(fig);
    });
    box.dataset.filled = '1';
  }

  function render() {
    var t0 = performance.now();
    var p = state.pair;
    var n = effectiveN(p);
    var section = sections[p];
    var divs = Array.prototype.slice.call(section.querySelectorAll('div.plot'));
    var counts = [];
    var labelBoxes = [];
    var jobs = divs.map(function (div) {
      var e = parseInt(div.dataset.entry, 10);
      var width = Math.max(240, Math.floor(div.clientWidth || 600));
      var fig = div.dataset.kind === 'scatter'
        ? scatterFigure(p, e, n, width) : diffFigure(p, e, n, width);
      counts.push(fig.count);
      labelBoxes.push({ kind: div.dataset.kind, entry: e, area: fig.geo.area,
        boxes: fig.labels.map(function (l) { return l.box; }) });
      if (drawn.indexOf(div) < 0) drawn.push(div);
      return Plotly.react(div, fig.data, fig.layout, CONFIG);
    });
    return Promise.all(jobs).then(function () {
      state.rendered = divs.length;
      state.lastRender = { pair: p, n: n, plots: divs.length, points: counts,
        labels: labelBoxes, ms: performance.now() - t0 };
      statusEl.textContent = (n === 'all' ? 'whole vocabulary' : 'top ' + n + ' per side') +
        ': ' + counts.slice(0, Math.max(1, counts.length / 2)).join(' / ') + ' tokens';
    });
  }

  function showPair(p) {
    if (!COLS.id) return Promise.resolve(); /* the data are still being inflated */
    p = Math.max(0, Math.min(sections.length - 1, p));
    drawn.forEach(function (div) {
      if (!sections[p].contains(div)) Plotly.purge(div);
    });
    drawn = drawn.filter(function (div) { return sections[p].contains(div); });
    sections.forEach(function (s, i) { s.hidden = i !== p; });
    state.pair = p;
    select.value = String(p);
    updateViews(p);
    fillTopk(p);
    return render();
  }

  function setTopN(n) {
    state.n = n;
    nButtons.forEach(function (b) {
      var on = parseN(b.dataset.n) === n;
      b.classList.toggle('on', on);
      b.setAttribute('aria-pressed', on ? 'true' : 'false');
    });
    return render();
  }

  function pairFromHash() {
    var m = /^#pair=(.*)$/.exec(location.hash);
    if (!m) return null;
    var label = decodeURIComponent(m[1]);
    for (var i = 0; i < DATA.pairs.length; i++) {
      if (DATA.pairs[i].label === label) return i;
    }
    return null;
  }

  state.showPair = showPair;
  state.setTopN = setTopN;

  select.addEventListener('change', function () { showPair(parseInt(select.value, 10)); });
  document.getElementById('prev-pair').addEventListener('click', function () {
    showPair(state.pair - 1);
  });
  document.getElementById('next-pair').addEventListener('click', function () {
    showPair(state.pair + 1);
  });
  nButtons.forEach(function (b) {
    b.addEventListener('click', function () { setTopN(parseN(b.dataset.n)); });
  });
  var resizeTimer = null;
  window.addEventListener('resize', function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () { if (sections.length) render(); }, 150);
  });
  window.addEventListener('hashchange', function () {
    var p = pairFromHash();
    if (p !== null) {
      showPair(p);
      document.getElementById('pairs').scrollIntoView();
    }
  });

  /* Rows of the long per-pair tables wait in a <template> (parsed, neither styled nor laid
   * out) until the table comes near the screen, is sorted, or the page is printed: laying out
   * thousands of rows would otherwise hold up the first figures. */
  var deferredTables = Array.prototype.filter.call(
    document.querySelectorAll('table.sortable'),
    function (t) { return !!t.querySelector('template.deferred-rows'); });

  function showRows(table) {
    Array.prototype.forEach.call(table.querySelectorAll('template.deferred-rows'), function (t) {
      t.parentNode.replaceChild(t.content, t);
    });
    if (!document.querySelector('template.deferred-rows')) {
      if (state.timings.tablesFilled === undefined) state.timings.tablesFilled = performance.now();
    }
  }

  function showAllRows() {
    deferredTables.forEach(showRows);
    state.timings.tablesFilled = state.timings.tablesFilled || performance.now();
  }
  state.showAllRows = showAllRows;

  function watchDeferredRows() {
    if (!deferredTables.length) return;
    if (typeof IntersectionObserver === 'undefined') { showAllRows(); return; }
    var observer = new IntersectionObserver(function (seen) {
      seen.forEach(function (ent) {
        if (!ent.isIntersecting) return;
        showRows(ent.target);
        observer.unobserve(ent.target);
      });
    }, { rootMargin: '1200px 0px' });
    deferredTables.forEach(function (t) { observer.observe(t); });
    window.addEventListener('beforeprint', showAllRows);
  }

  /* Sortable tables: click a heading; numbers sort by data-v, text by locale. */
  Array.prototype.forEach.call(document.querySelectorAll('table.sortable'), function (table) {
    var ths = table.querySelectorAll('thead th');
    Array.prototype.forEach.call(ths, function (th, col) {
      th.addEventListener('click', function () {
        showRows(table);
        var asc = th.getAttribute('aria-sort') !== 'ascending';
        Array.prototype.forEach.call(ths, function (o) { o.removeAttribute('aria-sort'); });
        th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (r1, r2) {
          var c1 = r1.cells[col];
          var c2 = r2.cells[col];
          if (!c1 || !c2) return 0;
          var v1 = c1.dataset.v;
          var v2 = c2.dataset.v;
          var cmp;
          if (v1 !== undefined && v2 !== undefined) {
            var n1 = v1 === '' ? NaN : parseFloat(v1);
            var n2 = v2 === '' ? NaN : parseFloat(v2);
            if (isNaN(n1) && isNaN(n2)) cmp = 0;
            else if (isNaN(n1)) return 1; /* missing values last either way */
            else if (isNaN(n2)) return -1;
            else cmp = n1 - n2;
          } else {
            cmp = c1.textContent.localeCompare(c2.textContent);
          }
          return asc ? cmp : -cmp;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });

  state.n = DATA.topn.default;
  var first = pairFromHash();
  nButtons.forEach(function (b) {
    b.classList.toggle('on', parseN(b.dataset.n) === state.n);
  });
  if (sections.length) {
    loadColumns().then(function () {
      return showPair(first === null ? 0 : first);
    }).then(function () {
      state.renderMs = performance.now();
      state.ready = true;
      document.documentElement.setAttribute('data-report', 'ready');
      watchDeferredRows();
    }, function (err) {
      state.errors.push(String(err));
      document.documentElement.setAttribute('data-report', 'error');
      showAllRows();
    });
  } else {
    showAllRows();
    state.ready = true;
    state.renderMs = performance.now();
    document.documentElement.setAttribute('data-report', 'ready');
  }
})();
