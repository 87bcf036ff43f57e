// calcinosis slice viewer: one canvas, one plane at a time, deposit outlines drawn
// from label slices. Plain JS, no dependencies. View coordinates (vx, vy, vz) grow to
// the patient's left, posterior and superior (see calcinosis/web/orientation.py).
"use strict";

(function () {
  const PLANES = ["axial", "coronal", "sagittal"];

  function planeGeometry(info, plane) {
    const [nz, ny, nx] = info.shape_zyx;
    const [sx, sy, sz] = info.spacing_mm;
    if (plane === "axial") return { n: nz, w: nx, h: ny, pw: sx, ph: sy };
    if (plane === "coronal") return { n: ny, w: nx, h: nz, pw: sx, ph: sz };
    return { n: nx, w: ny, h: nz, pw: sy, ph: sz };
  }

  // Slice index and in-plane pixel of a view point, for a plane.
  function toPlane(info, plane, p) {
    const nz = info.shape_zyx[0];
    if (plane === "axial") return { slice: p[2], x: p[0], y: p[1] };
    if (plane === "coronal") return { slice: p[1], x: p[0], y: nz - 1 - p[2] };
    return { slice: p[0], x: p[1], y: nz - 1 - p[2] };
  }

  function fromPlane(info, plane, slice, x, y) {
    const nz = info.shape_zyx[0];
    if (plane === "axial") return [x, y, slice];
    if (plane === "coronal") return [x, slice, nz - 1 - y];
    return [slice, x, nz - 1 - y];
  }

  function clampPoint(info, p) {
    const [nz, ny, nx] = info.shape_zyx;
    const lim = [nx, ny, nz];
    return p.map((v, i) => Math.min(lim[i] - 1, Math.max(0, Math.round(v))));
  }

  function withToken(url) {
    return url; // the token travels in its cookie after the first page load
  }

  class Viewer {
    // opts: {key, info, colourOf(id) -> css colour, onChange(viewer, what), title}
    constructor(root, opts) {
      this.root = root;
      this.key = opts.key;
      this.info = opts.info;
      this.colourOf = opts.colourOf || (() => "#ffd400");
      this.onChange = opts.onChange || (() => {});
      this.plane = "axial";
      this.preset = "soft";
      this.zoom = 1;
      this.selected = null;
      const [nz, ny, nx] = this.info.shape_zyx;
      this.point = [Math.floor(nx / 2), Math.floor(ny / 2), Math.floor(nz / 2)];
      this.centre = null; // in-plane pixel at the canvas centre; null = image centre
      this.generation = 0;
      this.build();
      this.render();
    }

    build() {
      const r = this.root;
      r.classList.add("viewer");
      r.innerHTML = "";
      const bar = document.createElement("div");
      bar.className = "viewer-bar";
      const mk = (label, title, fn, cls) => {
        const b = document.createElement("button");
        b.type = "button"; b.textContent = label; b.title = title; b.className = cls || "";
        b.addEventListener("click", fn);
        bar.appendChild(b);
        return b;
      };
      this.planeButtons = {};
      for (const p of PLANES) {
        this.planeButtons[p] = mk(p[0].toUpperCase() + p.slice(1), p + " plane", () => this.setPlane(p), "plane");
      }
      this.presetButtons = {
        soft: mk("Soft tissue", "window 40/400 HU", () => this.setPreset("soft"), "preset"),
        bone: mk("Bone", "window 400/1800 HU", () => this.setPreset("bone"), "preset"),
      };
      mk("+", "zoom in", () => this.setZoom(this.zoom * 1.5));
      mk("−", "zoom out", () => this.setZoom(this.zoom / 1.5));
      mk("Fit", "fit the image", () => { this.zoom = 1; this.centre = null; this.render(); this.changed("zoom"); });
      this.sliceLabel = document.createElement("span");
      this.sliceLabel.className = "slice-label";
      bar.appendChild(this.sliceLabel);
      r.appendChild(bar);
      this.canvas = document.createElement("canvas");
      this.canvas.width = 560; this.canvas.height = 560;
      this.canvas.tabIndex = 0;
      r.appendChild(this.canvas);
      this.slider = document.createElement("input");
      this.slider.type = "range"; this.slider.min = 0; this.slider.className = "slice-slider";
      this.slider.addEventListener("input", () => this.setSlice(parseInt(this.slider.value, 10)));
      r.appendChild(this.slider);
      this.note = document.createElement("div");
      this.note.className = "viewer-note";
      if (!this.info.has_image) this.note.textContent = "CT not shown: " + this.info.image_note;
      r.appendChild(this.note);
      this.canvas.addEventListener("wheel", (e) => {
        e.preventDefault();
        if (e.ctrlKey) this.setZoom(this.zoom * (e.deltaY < 0 ? 1.25 : 0.8));
        else this.setSlice(this.sliceIndex() + (e.deltaY > 0 ? 1 : -1));
      }, { passive: false });
      this.canvas.addEventListener("keydown", (e) => {
        if (e.key === "ArrowUp" || e.key === "PageUp") { this.setSlice(this.sliceIndex() + 1); e.preventDefault(); }
        if (e.key === "ArrowDown" || e.key === "PageDown") { this.setSlice(this.sliceIndex() - 1); e.preventDefault(); }
        if (e.key === "+") this.setZoom(this.zoom * 1.5);
        if (e.key === "-") this.setZoom(this.zoom / 1.5);
      });
      let drag = null;
      this.canvas.addEventListener("pointerdown", (e) => {
        drag = { x: e.clientX, y: e.clientY, c: this.currentCentre() };
        this.canvas.setPointerCapture(e.pointerId);
      });
      this.canvas.addEventListener("pointermove", (e) => {
        if (!drag) return;
        const g = planeGeometry(this.info, this.plane), s = this.scale();
        this.centre = { x: drag.c.x - (e.clientX - drag.x) / (g.pw * s), y: drag.c.y - (e.clientY - drag.y) / (g.ph * s) };
        this.draw();
      });
      this.canvas.addEventListener("pointerup", () => { drag = null; });
    }

    sliceIndex() { return toPlane(this.info, this.plane, this.point).slice; }

    currentCentre() {
      if (this.centre) return this.centre;
      const g = planeGeometry(this.info, this.plane);
      return { x: (g.w - 1) / 2, y: (g.h - 1) / 2 };
    }

    scale() { // canvas pixels per mm
      const g = planeGeometry(this.info, this.plane);
      return Math.min(this.canvas.width / (g.w * g.pw), this.canvas.height / (g.h * g.ph)) * this.zoom;
    }

    changed(what) { this.onChange(this, what); }

    setPlane(plane) {
      if (!PLANES.includes(plane) || plane === this.plane) return;
      const keep = this.centre !== null;
      this.plane = plane;
      if (keep) { const q = toPlane(this.info, plane, this.point); this.centre = { x: q.x, y: q.y }; }
      this.render(); this.changed("plane");
    }

    setPreset(preset) { this.preset = preset; this.render(); this.changed("preset"); }

    setZoom(z) { this.zoom = Math.min(16, Math.max(0.5, z)); this.draw(); this.changed("zoom"); }

    setSlice(index) {
      const g = planeGeometry(this.info, this.plane);
      const i = Math.min(g.n - 1, Math.max(0, index));
      const q = toPlane(this.info, this.plane, this.point);
      this.point = fromPlane(this.info, this.plane, i, q.x, q.y);
      this.render(); this.changed("point");
    }

    // Move to a view point; centre = true also centres the canvas on it.
    setPoint(p, centre, silent) {
      this.point = clampPoint(this.info, p);
      if (centre) { const q = toPlane(this.info, this.plane, this.point); this.centre = { x: q.x, y: q.y }; }
      this.render();
      if (!silent) this.changed("point");
    }

    jumpTo(lesion) {
      this.selected = lesion.lesion_id;
      if (this.zoom < 2) this.zoom = 2;
      this.setPoint(lesion.view_index, true);
    }

    url(kind) {
      const i = this.sliceIndex();
      // v: the study's version, so that a study redone on disk is not shown from the browser's cache.
      let u = `/api/studies/${encodeURIComponent(this.key)}/${kind}/${this.plane}/${i}.png?v=${this.info.version}`;
      if (kind === "image") u += `&preset=${this.preset}`;
      return withToken(u);
    }

    async render() {
      const gen = ++this.generation;
      this.root.dataset.ready = "0";
      const g = planeGeometry(this.info, this.plane);
      this.slider.max = g.n - 1;
      this.slider.value = this.sliceIndex();
      for (const p of PLANES) this.planeButtons[p].classList.toggle("on", p === this.plane);
      for (const p in this.presetButtons) this.presetButtons[p].classList.toggle("on", p === this.preset);
      this.sliceLabel.textContent = `${this.plane} ${this.sliceIndex() + 1} / ${g.n}`;
      try {
        const imgP = this.info.has_image ? loadImage(this.url("image")).catch(() => this.imageFailed()) : Promise.resolve(null);
        const lab = await loadImage(this.url("labels"));
        if (gen !== this.generation) return; // a newer slice was asked for meanwhile
        this.outline = outlines(lab, this.colourOf, this.selected);
        // While the CT is still loading (first view of a large study), show the outlines alone.
        const first = await Promise.race([imgP, new Promise((res) => setTimeout(() => res("late"), 150))]);
        if (gen !== this.generation) return;
        if (first === "late") {
          this.img = null; this.draw();
          this.note.textContent = "loading the CT…";
        }
        const img = await imgP;
        if (gen !== this.generation) return;
        if (first === "late" && this.info.has_image) this.note.textContent = "";
        this.img = img;
        this.draw();
        this.root.dataset.plane = this.plane;
        this.root.dataset.slice = String(this.sliceIndex());
        this.root.dataset.outlined = this.outline.ids.join(",");
        this.root.dataset.ready = "1";
      } catch (err) {
        if (gen === this.generation) { this.note.textContent = "could not load the slice: " + err; }
      }
    }

    // The CT could not be served (unreadable, not on the analysed grid): outlines only, say why.
    async imageFailed() {
      this.info.has_image = false;
      try {
        const r = await fetch(this.url("image"), { credentials: "same-origin" });
        this.note.textContent = "CT not shown: " + ((await r.json()).detail || r.statusText);
      } catch (e) {
        this.note.textContent = "CT not shown: it could not be loaded";
      }
      return null;
    }

    draw() {
      const ctx = this.canvas.getContext("2d");
      const W = this.canvas.width, H = this.canvas.height;
      ctx.fillStyle = "#000"; ctx.fillRect(0, 0, W, H);
      if (!this.outline) return;
      const g = planeGeometry(this.info, this.plane), s = this.scale(), c = this.currentCentre();
      const dw = g.w * g.pw * s, dh = g.h * g.ph * s;
      const dx = W / 2 - (c.x + 0.5) * g.pw * s, dy = H / 2 - (c.y + 0.5) * g.ph * s;
      ctx.imageSmoothingEnabled = true;
      if (this.img) ctx.drawImage(this.img, dx, dy, dw, dh);
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(this.outline.canvas, dx, dy, dw, dh);
      ctx.font = "bold 13px sans-serif";
      ctx.textBaseline = "middle";
      for (const t of this.outline.labels) {
        const x = dx + (t.x + 0.5) * g.pw * s + 6 + (t.r * g.pw * s), y = dy + (t.y + 0.5) * g.ph * s;
        ctx.lineWidth = 3; ctx.strokeStyle = "#000"; ctx.strokeText(String(t.id), x, y);
        ctx.fillStyle = t.colour; ctx.fillText(String(t.id), x, y);
      }
    }
  }

  function loadImage(url) {
    return new Promise((resolve, reject) => {
      const img = new Image();
      img.onload = () => resolve(img);
      img.onerror = () => reject(new Error("HTTP error for " + url.split("?")[0]));
      img.src = url;
    });
  }

  const colourCache = {};
  function rgba(css) {
    if (colourCache[css]) return colourCache[css];
    const c = document.createElement("canvas"); c.width = c.height = 1;
    const x = c.getContext("2d"); x.fillStyle = css; x.fillRect(0, 0, 1, 1);
    return (colourCache[css] = Array.from(x.getImageData(0, 0, 1, 1).data));
  }

  // Outline pixels (a labelled pixel with a 4-neighbour of another value) and label positions.
  function outlines(labelImg, colourOf, selected) {
    const w = labelImg.naturalWidth, h = labelImg.naturalHeight;
    const src = document.createElement("canvas"); src.width = w; src.height = h;
    const sctx = src.getContext("2d", { willReadFrequently: true });
    sctx.drawImage(labelImg, 0, 0);
    const px = sctx.getImageData(0, 0, w, h).data;
    const ids = new Uint32Array(w * h);
    for (let i = 0, j = 0; i < ids.length; i++, j += 4) ids[i] = px[j] + 256 * px[j + 1];
    const out = sctx.createImageData(w, h);
    const stats = new Map();
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const i = y * w + x, id = ids[i];
        if (!id) continue;
        let st = stats.get(id);
        if (!st) { st = { n: 0, sx: 0, sy: 0, minx: x, maxx: x }; stats.set(id, st); }
        st.n++; st.sx += x; st.sy += y; st.minx = Math.min(st.minx, x); st.maxx = Math.max(st.maxx, x);
        const edge = x === 0 || y === 0 || x === w - 1 || y === h - 1 ||
          ids[i - 1] !== id || ids[i + 1] !== id || ids[i - w] !== id || ids[i + w] !== id;
        if (!edge) continue;
        const col = rgba(id === selected ? "#00e5ff" : colourOf(id));
        out.data.set(col, 4 * i);
      }
    }
    sctx.clearRect(0, 0, w, h);
    sctx.putImageData(out, 0, 0);
    const labels = [];
    for (const [id, st] of stats) {
      labels.push({ id, x: st.sx / st.n, y: st.sy / st.n, r: (st.maxx - st.minx) / 2,
        colour: id === selected ? "#00e5ff" : colourOf(id) });
    }
    return { canvas: src, labels, ids: Array.from(stats.keys()).sort((a, b) => a - b) };
  }

  async function getJSON(url) {
    const r = await fetch(url, { credentials: "same-origin" });
    if (!r.ok) {
      let detail = r.statusText;
      try { detail = (await r.json()).detail || detail; } catch (e) { /* not JSON */ }
      throw new Error(`${r.status}: ${detail}`);
    }
    return r.json();
  }

  function fmt(v, nd) {
    if (v === null || v === undefined || v === "") return "";
    const n = Number(v);
    return Number.isFinite(n) ? n.toFixed(nd) : String(v);
  }

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
    }
    for (const k of kids) e.append(k);
    return e;
  }

  // view index -> LPS mm -> other study's view index (4x4 homogeneous matrices).
  function mul(m, p) {
    return [0, 1, 2].map((r) => m[r][0] * p[0] + m[r][1] * p[1] + m[r][2] * p[2] + m[r][3]);
  }

  window.Calcinosis = { Viewer, getJSON, fmt, el, mul, planeGeometry, toPlane };
  window.calcinosisViewers = [];
})();
