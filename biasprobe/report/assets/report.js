/* biasprobe report: builds the scatter and differences figures from the embedded arrays.
 *
 * The page embeds, per model and pair, the union of each side's top-`exact` tokens with exact
 * float32 log-probs and ranks, and per model and sentence the full vocabulary log-probs as
 * 16-bit codes. Traces are built here whenever the pair or N changes, so no figure is stored
 * once per N. window.biasprobeReport exposes the state for automated checks.
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
  var EXACT = DATA.topn.exact;
  var PER_SIDE = DATA.labels_per_side;
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
    return out.buffer;
  }

  function typed(b64, kind) {
    var buf = bytes(b64);
    if (kind === 'f4') return new Float32Array(buf);
    if (kind === 'u2') return new Uint16Array(buf);
    if (kind === 'u4') return new Uint32Array(buf);
    throw new Error('unknown array type ' + kind);
  }

  var vectorCache = new Map();
  function fullVector(entry, index) {
    var key = entry + ':' + index;
    if (!vectorCache.has(key)) {
      var v = DATA.entries[entry].vectors[index];
      var q = typed(v.q, 'u2');
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
      cellCache.set(key, {
        ids: typed(c.ids, c.itype),
        ra: typed(c.ra, c.itype),
        rb: typed(c.rb, c.itype),
        la: typed(c.la, 'f4'),
        lb: typed(c.lb, 'f4'),
        a: c.a,
        b: c.b,
      });
    }
    return cellCache.get(key);
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
    if (n !== 'all' && n <= EXACT) {
      var sel = [];
      for (var i = 0; i < d.ids.length; i++) {
        if (d.ra[i] <= n || d.rb[i] <= n) sel.push(i);
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
      var A = Float64Array.from(fullVector(e, d.a));
      var B = Float64Array.from(fullVector(e, d.b));
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

  /* Indices of the most skewed labelled tokens (from the exact pool). */
  function labels(pts) {
    var pos = pts.pool.filter(function (k) { return pts.diff[k] > 0; });
    var neg = pts.pool.filter(function (k) { return pts.diff[k] < 0; });
    pos.sort(function (i, j) { return pts.diff[j] - pts.diff[i] || pts.ids[i] - pts.ids[j]; });
    neg.sort(function (i, j) { return pts.diff[i] - pts.diff[j] || pts.ids[i] - pts.ids[j]; });
    return pos.slice(0, PER_SIDE).concat(neg.slice(0, PER_SIDE));
  }

  function colorMax(pts) {
    var m = 0.5;
    pts.pool.forEach(function (k) {
      var a = Math.abs(pts.diff[k]);
      if (Number.isFinite(a) && a > m) m = a;
    });
    return m;
  }

  function pick(arr, idx) {
    return idx.map(function (k) { return arr[k]; });
  }

  // The most skewed tokens, labelled: placed by the sign of their difference.
  function labelTrace(x, y, lab, vocab, pts, posB, posA) {
    return {
      type: 'scatter', mode: 'text', x: pick(x, lab), y: pick(y, lab),
      text: lab.map(function (k) { return esc(vocab[pts.ids[k]]); }),
      textposition: lab.map(function (k) { return pts.diff[k] > 0 ? posB : posA; }),
      textfont: { size: 11, color: '#222' }, hoverinfo: 'skip', name: 'labels',
    };
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
    if (colorbar) marker.colorbar = { title: { text: 'log p(B) − log p(A)', side: 'right' }, thickness: 12 };
    return {
      type: type, mode: 'markers', x: x, y: y, text: text, hoverinfo: 'text', marker: marker,
      name: 'tokens',
    };
  }

  function baseLayout() {
    return {
      showlegend: false,
      height: 460,
      margin: { l: 60, r: 10, t: 28, b: 50 },
      plot_bgcolor: 'white',
      hovermode: 'closest',
      font: { size: 12 },
    };
  }

  function scatterFigure(p, e, n) {
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
    var lab = labels(pts);
    var text = hoverText(p, e, pts);
    var vocab = DATA.vocabs[DATA.entries[e].vocab];
    var data = [
      markerTrace(useGL ? 'scattergl' : 'scatter', pts.x, pts.y, pts, text, cmax, n, true),
      labelTrace(pts.x, pts.y, lab, vocab, pts, 'top left', 'bottom right'),
    ];
    var layout = baseLayout();
    layout.xaxis = {
      title: { text: 'log p(token | A: ' + esc(g[0]) + ')' }, range: [lo, hi],
      gridcolor: '#eee', zeroline: false, constrain: 'domain',
    };
    layout.yaxis = {
      title: { text: 'log p(token | B: ' + esc(g[1]) + ')' }, range: [lo, hi],
      gridcolor: '#eee', zeroline: false, scaleanchor: 'x', constrain: 'domain',
    };
    layout.shapes = [{
      type: 'line', x0: lo, y0: lo, x1: hi, y1: hi, layer: 'below',
      line: { dash: 'dash', color: '#888', width: 1 },
    }];
    layout.annotations = [
      { xref: 'x domain', yref: 'y domain', x: 0.02, y: 0.98, xanchor: 'left', yanchor: 'top',
        showarrow: false, font: { color: DATA.colorscale[2][1], size: 11 },
        text: 'more likely after B: ' + esc(g[1]) },
      { xref: 'x domain', yref: 'y domain', x: 0.98, y: 0.02, xanchor: 'right', yanchor: 'bottom',
        showarrow: false, font: { color: DATA.colorscale[0][1], size: 11 },
        text: 'more likely after A: ' + esc(g[0]) },
    ];
    return { data: data, layout: layout, count: pts.x.length };
  }

  function diffFigure(p, e, n) {
    var pts = points(p, e, n);
    var g = DATA.pairs[p].groups;
    var useGL = pts.x.length > 3000 && state.webgl;
    var cmax = colorMax(pts);
    var lab = labels(pts);
    var text = hoverText(p, e, pts);
    var vocab = DATA.vocabs[DATA.entries[e].vocab];
    var xmax = 0.5;
    for (var k = 0; k < pts.diff.length; k++) {
      var a = Math.abs(pts.diff[k]);
      if (Number.isFinite(a) && a > xmax) xmax = a;
    }
    var data = [
      markerTrace(useGL ? 'scattergl' : 'scatter', pts.diff, pts.mean, pts, text, cmax, n, false),
      labelTrace(pts.diff, pts.mean, lab, vocab, pts, 'middle right', 'middle left'),
    ];
    var layout = baseLayout();
    layout.xaxis = {
      title: { text: 'log p(B: ' + esc(g[1]) + ') − log p(A: ' + esc(g[0]) + ')' },
      range: [-xmax * 1.3, xmax * 1.3], gridcolor: '#eee', zeroline: true,
      zerolinecolor: '#888',
    };
    layout.yaxis = { title: { text: 'mean log p(token)' }, gridcolor: '#eee', zeroline: false };
    return { data: data, layout: layout, count: pts.x.length };
  }

  var CONFIG = {
    displaylogo: false,
    responsive: true,
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

  function render() {
    var t0 = performance.now();
    var p = state.pair;
    var n = state.n;
    var section = sections[p];
    var divs = Array.prototype.slice.call(section.querySelectorAll('div.plot'));
    var counts = [];
    var jobs = divs.map(function (div) {
      var e = parseInt(div.dataset.entry, 10);
      var fig = div.dataset.kind === 'scatter' ? scatterFigure(p, e, n) : diffFigure(p, e, n);
      counts.push(fig.count);
      if (drawn.indexOf(div) < 0) drawn.push(div);
      return Plotly.react(div, fig.data, fig.layout, CONFIG);
    });
    return Promise.all(jobs).then(function () {
      state.rendered = divs.length;
      state.lastRender = { pair: p, n: n, plots: divs.length, points: counts,
        ms: performance.now() - t0 };
      statusEl.textContent = (n === 'all' ? 'whole vocabulary' : 'top ' + n + ' per side') +
        ': ' + counts.slice(0, Math.max(1, counts.length / 2)).join(' / ') + ' tokens';
    });
  }

  function showPair(p) {
    p = Math.max(0, Math.min(sections.length - 1, p));
    drawn.forEach(function (div) {
      if (!sections[p].contains(div)) Plotly.purge(div);
    });
    drawn = drawn.filter(function (div) { return sections[p].contains(div); });
    sections.forEach(function (s, i) { s.hidden = i !== p; });
    state.pair = p;
    select.value = String(p);
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
  window.addEventListener('hashchange', function () {
    var p = pairFromHash();
    if (p !== null) {
      showPair(p);
      document.getElementById('pairs').scrollIntoView();
    }
  });

  /* Sortable tables: click a heading; numbers sort by data-v, text by locale. */
  Array.prototype.forEach.call(document.querySelectorAll('table.sortable'), function (table) {
    var ths = table.querySelectorAll('thead th');
    Array.prototype.forEach.call(ths, function (th, col) {
      th.addEventListener('click', function () {
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
    showPair(first === null ? 0 : first).then(function () {
      state.renderMs = performance.now();
      state.ready = true;
      document.documentElement.setAttribute('data-report', 'ready');
    }, function (err) {
      state.errors.push(String(err));
      document.documentElement.setAttribute('data-report', 'error');
    });
  } else {
    state.ready = true;
    state.renderMs = performance.now();
    document.documentElement.setAttribute('data-report', 'ready');
  }
})();
