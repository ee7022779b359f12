// faultline timeline: draws the ops embedded in #data on one canvas, one row per process.
// Only visible rows are drawn, and within a row only the ops overlapping the visible time
// range (binary search on completion times, which grow along a row because a process has
// one op open at a time). Bars narrower than a pixel merge. All target strings are shown
// with textContent.
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("data").textContent);
  var N = D.s.length, R = D.procs.length;
  var ROW = 16, AXIS = 42, GUTTER = 78, RIGHT = 10;
  var canvas = document.getElementById("canvas"), ctx = canvas.getContext("2d");
  var scroll = document.getElementById("scroll"), spacer = document.getElementById("spacer");
  var tip = document.getElementById("tip"), details = document.getElementById("details");
  var statusEl = document.getElementById("status");
  var endUs = Math.max(D.end_us, 1);

  // Ops grouped by process, each in invocation order (counting sort keeps call order).
  var procStart = new Int32Array(R + 1), procOps = new Int32Array(N), fill = new Int32Array(R);
  var i, j;
  for (i = 0; i < N; i++) procStart[D.p[i] + 1]++;
  for (i = 0; i < R; i++) procStart[i + 1] += procStart[i];
  for (i = 0; i < N; i++) { var r0 = D.p[i]; procOps[procStart[r0] + fill[r0]++] = i; }
  // End of each bar: completion, or the end of the run for a call that never completed.
  var E = new Float64Array(N);
  for (i = 0; i < N; i++) E[i] = D.e[i] < 0 ? endUs : D.e[i];

  // Rows: one per process, or "lanes" packing processes whose lifetimes do not overlap
  // (after an info a worker goes on as a new process, so a run with many infos has far
  // more processes than workers). Within a row, ops stay in invocation order and their
  // ends grow, which the binary searches rely on.
  var rowOf = new Int32Array(R), rows = R, rowStart, rowOps, packed = false;
  function layout(pack) {
    packed = pack;
    var laneEnd = [];
    for (var p = 0; p < R; p++) {
      if (!pack) { rowOf[p] = p; continue; }
      var first = D.s[procOps[procStart[p]]], last = E[procOps[procStart[p + 1] - 1]];
      var lane = 0;
      while (lane < laneEnd.length && laneEnd[lane] >= first) lane++;
      laneEnd[lane] = last;
      rowOf[p] = lane;
    }
    rows = pack ? laneEnd.length : R;
    rowStart = new Int32Array(rows + 1); rowOps = new Int32Array(N);
    var count = new Int32Array(rows);
    for (p = 0; p < R; p++) rowStart[rowOf[p] + 1] += procStart[p + 1] - procStart[p];
    for (var r = 0; r < rows; r++) rowStart[r + 1] += rowStart[r];
    // Processes in order of first invocation, so a lane's ops come out sorted.
    for (p = 0; p < R; p++) {
      var l = rowOf[p];
      for (var k = procStart[p]; k < procStart[p + 1]; k++) rowOps[rowStart[l] + count[l]++] = procOps[k];
    }
    document.getElementById("rows").textContent = pack ? "rows: lanes (" + rows + ")" : "rows: processes (" + rows + ")";
  }
  function rowOfOp(op) { return rowOf[D.p[op]]; }
  var byIndex = new Map();
  for (i = 0; i < N; i++) { byIndex.set(D.i[i], i); if (D.c[i] >= 0) byIndex.set(D.c[i], i); }
  var inWindow = new Set();
  D.window.forEach(function (ix) { if (byIndex.has(ix)) inWindow.add(byIndex.get(ix)); });
  var focusOp = D.focus !== null && byIndex.has(D.focus) ? byIndex.get(D.focus) : -1;

  var view = { t0: 0, t1: endUs };
  var W = 0, H = 0, dpr = 1, hover = -1, pinned = -1, frame = 0, drawnBars = 0;

  function X(t) { return GUTTER + (t - view.t0) * (W - GUTTER - RIGHT) / (view.t1 - view.t0); }
  function T(x) { return view.t0 + (x - GUTTER) * (view.t1 - view.t0) / (W - GUTTER - RIGHT); }
  function secs(us) { return (us / 1e6).toFixed(6) + " s"; }

  function niceStep(span, target) {
    var raw = span / target, p = Math.pow(10, Math.floor(Math.log10(raw))), m = raw / p;
    return p * (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10);
  }
  function tickLabel(us, step) {
    var d = Math.max(0, Math.min(6, -Math.floor(Math.log10(step / 1e6))));
    return (us / 1e6).toFixed(d) + " s";
  }

  function resize() {
    W = scroll.clientWidth; H = scroll.clientHeight; dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(W * dpr); canvas.height = Math.round(H * dpr);
    canvas.style.width = W + "px"; canvas.style.height = H + "px";
    spacer.style.height = Math.max(0, AXIS + rows * ROW + 24 - H) + "px";
    draw();
  }
  function schedule() { if (!frame) frame = requestAnimationFrame(function () { frame = 0; draw(); }); }

  function firstEndingAfter(lo, hi, t) {
    while (lo < hi) { var mid = (lo + hi) >> 1; if (E[rowOps[mid]] < t) lo = mid + 1; else hi = mid; }
    return lo;
  }

  function outline(op, colour, width) {
    var r = rowOfOp(op), y = AXIS + r * ROW - scroll.scrollTop;
    if (y < AXIS - ROW || y > H) return;
    var x0 = X(D.s[op]), x1 = Math.max(X(E[op]), x0 + 1);
    ctx.strokeStyle = colour; ctx.lineWidth = width;
    ctx.strokeRect(x0 - 1.5, y + 0.5, x1 - x0 + 3, ROW - 1);
  }

  function draw() {
    var started = performance.now();
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W, H);
    var top = scroll.scrollTop;
    var rFirst = Math.max(0, Math.floor(top / ROW)), rLast = Math.min(rows, Math.ceil((top + H - AXIS) / ROW) + 1);
    ctx.save();
    ctx.beginPath(); ctx.rect(GUTTER, AXIS, W - GUTTER - RIGHT, H - AXIS); ctx.clip();
    // Row stripes, then fault bands, then bars.
    ctx.fillStyle = "#f6f8fa";
    for (var r = rFirst; r < rLast; r++) if (r % 2) ctx.fillRect(GUTTER, AXIS + r * ROW - top, W, ROW);
    D.faults.forEach(function (f) {
      var x0 = X(f.s), x1 = X(f.e < 0 ? endUs : f.e);
      if (x1 < GUTTER || x0 > W) return;
      ctx.globalAlpha = 0.16; ctx.fillStyle = f.colour;
      ctx.fillRect(x0, AXIS, Math.max(1, x1 - x0), H - AXIS);
      ctx.globalAlpha = 1;
    });
    ctx.font = "11px system-ui, sans-serif"; ctx.textBaseline = "middle";
    var bars = 0, pxPerUs = (W - GUTTER - RIGHT) / (view.t1 - view.t0);
    for (r = rFirst; r < rLast; r++) {
      var y = AXIS + r * ROW - top, a = rowStart[r], b = rowStart[r + 1];
      var lastX = -1e9, lastO = -1, lastTick = -1e9;
      for (j = firstEndingAfter(a, b, view.t0); j < b; j++) {
        var op = rowOps[j];
        if (D.s[op] > view.t1) break;
        var x0 = X(D.s[op]), x1 = X(E[op]), o = D.o[op];
        if (x1 - x0 < 1) x1 = x0 + 1;
        if (packed && x1 - x0 >= 4 && j > a && D.p[rowOps[j - 1]] !== D.p[op] && x0 - lastTick > 8) {
          // A new process takes over this lane (marked once ops are wide enough to see).
          ctx.fillStyle = "#24292f"; ctx.fillRect(x0 - 2, y, 1.5, ROW);
          lastTick = x0;
        }
        if (x1 <= lastX + 0.5 && o === lastO) continue;
        ctx.globalAlpha = o === 3 ? 0.45 : 0.9;
        ctx.fillStyle = D.colours[o];
        ctx.fillRect(x0, y + 2, x1 - x0, ROW - 4);
        ctx.globalAlpha = 1;
        bars++;
        if (x1 - x0 > 46) {
          ctx.fillStyle = o === 2 ? "#24292f" : "#fff";
          var label = D.fs[D.f[op]] + " " + D.v[op];
          ctx.save(); ctx.beginPath(); ctx.rect(x0, y, x1 - x0 - 2, ROW); ctx.clip();
          ctx.fillText(label, Math.max(x0, GUTTER) + 3, y + ROW / 2);
          ctx.restore();
        }
        if (x1 > lastX) { lastX = x1; lastO = o; }
      }
    }
    inWindow.forEach(function (op) { outline(op, "#cf222e", 1); });
    if (focusOp >= 0) outline(focusOp, "#cf222e", 2.5);
    if (pinned >= 0) outline(pinned, "#24292f", 2);
    if (hover >= 0 && hover !== pinned) outline(hover, "#24292f", 1);
    ctx.restore();

    // Gutter: process labels.
    ctx.fillStyle = "#fff"; ctx.fillRect(0, AXIS, GUTTER, H - AXIS);
    ctx.fillStyle = "#57606a"; ctx.font = "11px system-ui, sans-serif"; ctx.textBaseline = "middle";
    for (r = rFirst; r < rLast; r++) {
      // In lanes, name the process at the left edge of the view.
      var shown = r;
      if (packed) {
        var at = firstEndingAfter(rowStart[r], rowStart[r + 1], view.t0);
        if (at >= rowStart[r + 1]) at = rowStart[r + 1] - 1;
        shown = at >= rowStart[r] ? D.p[rowOps[at]] : -1;
      }
      if (shown >= 0) ctx.fillText("process " + D.procs[shown], 6, AXIS + r * ROW - top + ROW / 2);
    }
    ctx.strokeStyle = "#d0d7de"; ctx.lineWidth = 1;
    ctx.beginPath(); ctx.moveTo(GUTTER - 0.5, AXIS); ctx.lineTo(GUTTER - 0.5, H); ctx.stroke();

    // Axis: ticks, then the fault strip with labels, then the focus marker.
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W, AXIS);
    var step = niceStep(view.t1 - view.t0, Math.max(2, (W - GUTTER) / 110));
    ctx.fillStyle = "#24292f"; ctx.textBaseline = "alphabetic"; ctx.font = "11px system-ui, sans-serif";
    for (var t = Math.ceil(view.t0 / step) * step; t <= view.t1; t += step) {
      var tx = Math.round(X(t)) + 0.5;
      ctx.strokeStyle = "#8c959f"; ctx.beginPath(); ctx.moveTo(tx, 16); ctx.lineTo(tx, 22); ctx.stroke();
      ctx.fillText(tickLabel(t, step), tx + 3, 13);
    }
    ctx.save(); ctx.beginPath(); ctx.rect(GUTTER, 0, W - GUTTER - RIGHT, AXIS); ctx.clip();
    D.faults.forEach(function (f) {
      var x0 = Math.max(X(f.s), GUTTER), x1 = X(f.e < 0 ? endUs : f.e);
      if (x1 < GUTTER || x0 > W) return;
      ctx.globalAlpha = 0.55; ctx.fillStyle = f.colour;
      ctx.fillRect(x0, 24, Math.max(2, x1 - x0), 14);
      ctx.globalAlpha = 1;
      if (x1 - x0 > 40) { ctx.fillStyle = "#24292f"; ctx.fillText(f.kind, x0 + 3, 35); }
    });
    if (focusOp >= 0) {
      var fx = X(D.s[focusOp]);
      ctx.fillStyle = "#cf222e";
      ctx.beginPath(); ctx.moveTo(fx - 6, 24); ctx.lineTo(fx + 6, 24); ctx.lineTo(fx, 38); ctx.fill();
    }
    ctx.restore();
    ctx.fillStyle = "#57606a"; ctx.fillText("time", 6, 13); ctx.fillText("faults", 6, 35);
    ctx.strokeStyle = "#d0d7de"; ctx.beginPath(); ctx.moveTo(0, AXIS - 0.5); ctx.lineTo(W, AXIS - 0.5); ctx.stroke();
    if (R === 0) { ctx.fillStyle = "#57606a"; ctx.fillText("This run has no client ops.", GUTTER + 10, AXIS + 20); }

    drawnBars = bars;
    var ms = performance.now() - started;
    statusEl.textContent = N + " ops · " + R + " processes · " + bars + " bars drawn in " + ms.toFixed(0) + " ms";
    document.body.dataset.drawnBars = String(bars);
    if (!document.body.dataset.readyMs) document.body.dataset.readyMs = String(Math.round(performance.now()));
  }

  // The op under (x, y) in canvas coordinates, within 3 px; -1 if none.
  function opAt(x, y) {
    if (y < AXIS || x < GUTTER) return -1;
    var r = Math.floor((y - AXIS + scroll.scrollTop) / ROW);
    if (r < 0 || r >= rows) return -1;
    var tol = 3 * (view.t1 - view.t0) / (W - GUTTER - RIGHT), t = T(x);
    var a = rowStart[r], b = rowStart[r + 1], best = -1, bestD = Infinity;
    for (j = firstEndingAfter(a, b, t - tol); j < b; j++) {
      var op = rowOps[j];
      if (D.s[op] > t + tol) break;
      var d = t < D.s[op] ? D.s[op] - t : t > E[op] ? t - E[op] : 0;
      if (d < bestD) { bestD = d; best = op; }
      if (d === 0) break;
    }
    return best;
  }
  function faultAt(x) {
    var t = T(x), found = null;
    D.faults.forEach(function (f) { if (t >= f.s && t <= (f.e < 0 ? endUs : f.e)) found = f; });
    return found;
  }

  function describe(op) {
    var lines = [];
    lines.push("process " + D.procs[D.p[op]] + " · " + D.fs[D.f[op]] + " · " + D.outcomes[D.o[op]]);
    if (D.v[op]) lines.push("value: " + D.v[op]);
    var where = [];
    if (D.k[op] >= 0) where.push("key " + D.keys[D.k[op]]);
    if (D.n[op] >= 0) where.push("node " + D.nodes[D.n[op]]);
    if (where.length) lines.push(where.join(" · "));
    lines.push("invoked " + secs(D.s[op]) + " (index " + D.i[op] + ")");
    if (D.e[op] >= 0) {
      lines.push("completed " + secs(D.e[op]) + " (index " + D.c[op] + ")");
      lines.push("latency " + ((D.e[op] - D.s[op]) / 1000).toFixed(3) + " ms");
    } else {
      lines.push("never completed");
    }
    if (D.x[op] >= 0) lines.push("error: " + D.errors[D.x[op]]);
    if (op === focusOp) lines.push("✗ the call that cannot be linearized");
    else if (inWindow.has(op)) lines.push("in the counterexample's window");
    var f = faultAt(X(D.s[op]));
    if (f) lines.push("during " + f.kind + " (" + f.nodes + ")");
    return lines.join("\n");
  }
  function describeFault(f) {
    return f.f + " · " + f.kind + "\nnodes: " + f.nodes + (f.detail ? "\n" + f.detail : "") +
      "\nfrom " + secs(f.s) + (f.e < 0 ? ", never healed" : " to " + secs(f.e));
  }

  function pin(op) {
    pinned = op;
    details.textContent = "";
    var h = document.createElement("b"); h.textContent = "Details"; details.appendChild(h);
    details.appendChild(document.createTextNode("\n" + (op >= 0 ? describe(op) : "")));
    if (op >= 0 && history.replaceState) history.replaceState(null, "", "#op=" + D.i[op]);
    schedule();
  }

  function zoomAt(x, factor) {
    var t = T(x), span = (view.t1 - view.t0) * factor;
    span = Math.min(Math.max(span, 10), endUs * 1.2);
    var f = (x - GUTTER) / (W - GUTTER - RIGHT);
    view.t0 = t - f * span; view.t1 = view.t0 + span;
    clampView(); schedule();
  }
  function clampView() {
    var span = view.t1 - view.t0, lo = -endUs * 0.1, hi = endUs * 1.1;
    if (view.t0 < lo) { view.t0 = lo; view.t1 = lo + span; }
    if (view.t1 > hi) { view.t1 = hi; view.t0 = hi - span; }
  }
  function fit() { view.t0 = 0; view.t1 = endUs; schedule(); }
  function focusOn(op) {
    var span = Math.max((E[op] - D.s[op]) * 8, 2000);
    var mid = (D.s[op] + E[op]) / 2;
    view.t0 = mid - span / 2; view.t1 = mid + span / 2; clampView();
    scroll.scrollTop = Math.max(0, rowOfOp(op) * ROW - (H - AXIS) / 2);
    pin(op);
    draw();
  }

  function local(e) { var b = canvas.getBoundingClientRect(); return { x: e.clientX - b.left, y: e.clientY - b.top }; }
  var drag = null;
  scroll.addEventListener("mousedown", function (e) {
    var p = local(e); drag = { x: p.x, t0: view.t0, t1: view.t1, moved: false }; scroll.classList.add("dragging");
  });
  window.addEventListener("mouseup", function (e) {
    if (drag && !drag.moved) { var p = local(e); var op = opAt(p.x, p.y); if (op >= 0 || p.y >= AXIS) pin(op); }
    drag = null; scroll.classList.remove("dragging");
  });
  scroll.addEventListener("mousemove", function (e) {
    var p = local(e);
    if (drag) {
      var dx = p.x - drag.x;
      if (Math.abs(dx) > 3) drag.moved = true;
      if (drag.moved) {
        var dt = dx * (drag.t1 - drag.t0) / (W - GUTTER - RIGHT);
        view.t0 = drag.t0 - dt; view.t1 = drag.t1 - dt; clampView(); tip.hidden = true; schedule();
        return;
      }
    }
    var op = opAt(p.x, p.y), text = null;
    if (op >= 0) text = describe(op);
    else if (p.y < AXIS && p.y > 22 && p.x > GUTTER) { var f = faultAt(p.x); if (f) text = describeFault(f); }
    if (op !== hover) { hover = op; schedule(); }
    if (text) {
      tip.textContent = text; tip.hidden = false;
      tip.style.left = Math.min(e.clientX + 14, window.innerWidth - tip.offsetWidth - 8) + "px";
      tip.style.top = Math.min(e.clientY + 14, window.innerHeight - tip.offsetHeight - 8) + "px";
    } else tip.hidden = true;
  });
  scroll.addEventListener("mouseleave", function () { tip.hidden = true; if (hover >= 0) { hover = -1; schedule(); } });
  scroll.addEventListener("wheel", function (e) {
    var p = local(e);
    if (e.ctrlKey || e.metaKey) { e.preventDefault(); zoomAt(p.x, Math.exp(e.deltaY * 0.002)); }
    else if (Math.abs(e.deltaX) > Math.abs(e.deltaY)) {
      e.preventDefault();
      var dt = e.deltaX * (view.t1 - view.t0) / (W - GUTTER - RIGHT);
      view.t0 += dt; view.t1 += dt; clampView(); schedule();
    }
  }, { passive: false });
  scroll.addEventListener("scroll", schedule);
  window.addEventListener("resize", resize);
  document.getElementById("zoom-in").onclick = function () { zoomAt((W + GUTTER) / 2, 0.5); };
  document.getElementById("zoom-out").onclick = function () { zoomAt((W + GUTTER) / 2, 2); };
  document.getElementById("fit").onclick = fit;
  document.getElementById("rows").onclick = function () { layout(!packed); resize(); };
  document.getElementById("goto").addEventListener("change", function (e) {
    var ix = parseInt(e.target.value, 10);
    if (byIndex.has(ix)) focusOn(byIndex.get(ix));
  });
  window.addEventListener("keydown", function (e) {
    if (e.target && e.target.tagName === "INPUT") return;
    var mid = (W + GUTTER) / 2, span = view.t1 - view.t0;
    if (e.key === "+" || e.key === "=") zoomAt(mid, 0.5);
    else if (e.key === "-") zoomAt(mid, 2);
    else if (e.key === "0") fit();
    else if (e.key === "ArrowLeft") { view.t0 -= span / 5; view.t1 -= span / 5; clampView(); schedule(); }
    else if (e.key === "ArrowRight") { view.t0 += span / 5; view.t1 += span / 5; clampView(); schedule(); }
  });

  // For tests and links: where an op (by history index) is drawn, in client coordinates.
  window.faultlineTimeline = {
    ops: N,
    focus: function (index) { if (!byIndex.has(index)) return false; focusOn(byIndex.get(index)); return true; },
    locate: function (index) {
      if (!byIndex.has(index)) return null;
      var op = byIndex.get(index), b = canvas.getBoundingClientRect();
      var x0 = Math.max(X(D.s[op]), GUTTER), x1 = Math.min(Math.max(X(E[op]), x0 + 1), W - RIGHT);
      return { x: b.left + (x0 + x1) / 2, y: b.top + AXIS + rowOfOp(op) * ROW - scroll.scrollTop + ROW / 2 };
    },
    drawnBars: function () { return drawnBars; }
  };

  // Lanes by default when processes far outnumber the lanes they pack into.
  layout(true);
  if (rows * 2 > R) layout(false);
  resize();
  var m = /^#op=(\d+)$/.exec(location.hash);
  if (m && byIndex.has(+m[1])) focusOn(byIndex.get(+m[1]));
})();
