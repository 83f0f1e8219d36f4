/// The page of `gsasr serve`: one HTML file with its style and script inline (no build step, no
/// external resource: it works offline). Element ids are what the browser test drives.
enum Page {
    static let html = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>GSASR — arbitrary-scale super-resolution</title>
        <style>
          :root { --fg: #1b1f24; --muted: #5b6470; --line: #d5dae0; --accent: #2563eb; --bg: #f6f7f9; }
          * { box-sizing: border-box; }
          body { margin: 0; font: 15px/1.45 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
          header { padding: 14px 24px; background: #fff; border-bottom: 1px solid var(--line); }
          header h1 { margin: 0; font-size: 19px; }
          header p { margin: 2px 0 0; color: var(--muted); font-size: 13px; }
          main { max-width: 1200px; margin: 0 auto; padding: 18px 24px 40px; }
          section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 16px; margin-bottom: 16px; }
          h2 { font-size: 15px; margin: 0 0 10px; }
          #drop { border: 2px dashed var(--line); border-radius: 8px; padding: 18px; text-align: center; color: var(--muted); cursor: pointer; }
          #drop.over { border-color: var(--accent); color: var(--accent); }
          #drop img { max-height: 120px; display: block; margin: 8px auto 0; }
          .row { display: flex; flex-wrap: wrap; gap: 14px; align-items: center; margin-top: 12px; }
          label { color: var(--muted); font-size: 13px; }
          input[type=number], input[type=text], select { font: inherit; padding: 4px 6px; border: 1px solid var(--line); border-radius: 5px; }
          #scale { width: 5.5em; } #size { width: 8em; } #region { width: 11em; }
          #scaleRange { width: 260px; }
          button { font: inherit; padding: 6px 16px; border-radius: 6px; border: 1px solid var(--accent); background: var(--accent); color: #fff; cursor: pointer; }
          button:disabled { opacity: .5; cursor: default; }
          button.secondary { background: #fff; color: var(--accent); }
          #error { color: #b91c1c; margin-top: 10px; min-height: 1.2em; }
          progress { width: 320px; height: 14px; }
          #compare { position: relative; display: inline-block; max-width: 100%; overflow: hidden; user-select: none; cursor: crosshair; line-height: 0; }
          #compare img { display: block; max-width: 100%; height: auto; image-rendering: auto; }
          #imgGsasr { position: absolute; left: 0; top: 0; width: 100%; }
          #divider { position: absolute; top: 0; bottom: 0; width: 2px; background: #fff; box-shadow: 0 0 3px #000; pointer-events: none; }
          .tag { position: absolute; top: 6px; padding: 2px 6px; font: 12px/1.4 system-ui, sans-serif; color: #fff; background: rgba(0,0,0,.55); border-radius: 4px; pointer-events: none; }
          #sel { position: absolute; border: 2px solid #facc15; box-shadow: 0 0 0 9999px rgba(0,0,0,.25); pointer-events: none; display: none; }
          #slider { width: 100%; max-width: 600px; }
          .zooms { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; margin-top: 10px; }
          .zooms figure { margin: 0; }
          .zooms img { width: 100%; image-rendering: pixelated; border: 1px solid var(--line); background: #eee; min-height: 40px; }
          figcaption { color: var(--muted); font-size: 13px; }
          .muted { color: var(--muted); font-size: 13px; }
          [hidden] { display: none !important; }
        </style>
        </head>
        <body>
        <header>
          <h1>GSASR: upscale by any factor</h1>
          <p>2D Gaussian splatting for arbitrary-scale super-resolution (Chen et al., ICCV 2025), running on this machine's CPU. Nothing leaves it.</p>
        </header>
        <main>
          <section>
            <h2>1. Image and size</h2>
            <div id="drop" tabindex="0">Drop a PNG, JPEG, TIFF, HEIC or AVIF here, or click to pick one
              <input id="file" type="file" accept="image/png,image/jpeg" hidden>
              <img id="preview" alt="" hidden>
              <div id="fileInfo" class="muted"></div>
              <div id="limitInfo" class="muted"></div>
            </div>
            <div class="row">
              <label for="scaleRange">Scale</label>
              <input id="scaleRange" type="range" min="1" max="30" step="0.1" value="4">
              <input id="scale" type="number" min="1" max="30" step="0.1" value="4"> ×
              <label for="size">or size</label>
              <input id="size" type="text" placeholder="1920x1080">
              <span id="modelBox" hidden><label for="model">Model</label> <select id="model"></select></span>
              <button id="go" disabled>Upscale</button>
              <button id="cancel" class="secondary" hidden>Cancel</button>
            </div>
            <div class="row">
              <progress id="progress" max="1" value="0"></progress>
              <span id="stage" class="muted">Pick an image.</span>
            </div>
            <div id="error" role="alert"></div>
          </section>

          <section id="resultSection" hidden>
            <h2>2. Bicubic vs GSASR <span id="resultInfo" class="muted"></span></h2>
            <div id="compare">
              <img id="imgBicubic" alt="bicubic upscale">
              <img id="imgGsasr" alt="GSASR upscale">
              <div id="divider"></div>
              <span class="tag" style="left:6px">bicubic</span>
              <span class="tag" style="right:6px">GSASR</span>
              <div id="sel"></div>
            </div>
            <div class="row">
              <input id="slider" type="range" min="0" max="100" step="0.5" value="50" aria-label="comparison position">
              <a id="download" download="gsasr.png"><button class="secondary" type="button">Download PNG</button></a>
            </div>
            <p class="muted">Drag over the image to choose a region for the deep zoom.</p>
          </section>

          <section id="zoomSection" hidden>
            <h2>3. Deep zoom, re-rendered from the Gaussians (no network pass)</h2>
            <div class="row">
              <label for="region">Region x,y,w,h</label> <input id="region" type="text">
              <label for="zoom">Zoom</label>
              <select id="zoom"><option>1</option><option>2</option><option selected>4</option><option>8</option></select>
              <label><input id="overlay" type="checkbox"> show the Gaussians</label>
              <button id="zoomBtn" class="secondary">Zoom</button>
            </div>
            <div class="zooms">
              <figure><img id="zoomGsasr" alt="GSASR zoom"><figcaption id="zoomGsasrCap">GSASR</figcaption></figure>
              <figure><img id="zoomBicubic" alt="bicubic zoom"><figcaption>bicubic, same samples</figcaption></figure>
            </div>
            <p class="muted">GSASR's Gaussians are conditioned on the scale they were made for: a zoom
              re-renders that one set densely (a view of the continuous image it defines), not a new run of
              the network at the higher scale. The overlay draws each Gaussian's 1-sigma ellipse and centre
              in its own colour, its opacity relative to the most opaque one drawn.</p>
          </section>
        </main>
        <script>
        "use strict";
        const $ = (id) => document.getElementById(id);
        let file = null, job = null, info = null, result = null, pollTimer = null;

        function showError(msg) { $("error").textContent = msg || ""; }

        async function loadInfo() {
          const r = await fetch("/api/info");
          info = await r.json();
          const sel = $("model");
          for (const m of info.models) { const o = document.createElement("option"); o.textContent = m; sel.appendChild(o); }
          $("modelBox").hidden = info.models.length < 2;
          $("scaleRange").max = $("scale").max = info.limits.maxScale;
          const side = Math.floor(Math.sqrt(info.limits.maxInputPixels));
          $("limitInfo").textContent = `Up to ${info.limits.maxInputPixels.toLocaleString("en")} pixels (${side}x${side}); the gsasr command tiles larger photos.`;
        }

        function pick(f) {
          if (!f) return;
          file = f;
          $("preview").src = URL.createObjectURL(f);
          $("preview").hidden = false;
          $("preview").onload = () => {
            const w = $("preview").naturalWidth, h = $("preview").naturalHeight;
            $("fileInfo").textContent = `${f.name}: ${w}x${h}`;
            if (info && w * h > info.limits.maxInputPixels) {
              $("go").disabled = true;
              showError(`${f.name} has ${(w * h).toLocaleString("en")} pixels, over this server's ${info.limits.maxInputPixels.toLocaleString("en")}.`);
            }
          };
          $("go").disabled = false;
          $("stage").textContent = "Ready.";
          showError("");
        }

        $("drop").addEventListener("click", () => $("file").click());
        $("drop").addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") $("file").click(); });
        $("file").addEventListener("change", (e) => pick(e.target.files[0]));
        $("drop").addEventListener("dragover", (e) => { e.preventDefault(); $("drop").classList.add("over"); });
        $("drop").addEventListener("dragleave", () => $("drop").classList.remove("over"));
        $("drop").addEventListener("drop", (e) => {
          e.preventDefault(); $("drop").classList.remove("over"); pick(e.dataTransfer.files[0]);
        });
        $("scaleRange").addEventListener("input", () => { $("scale").value = $("scaleRange").value; $("size").value = ""; });
        $("scale").addEventListener("input", () => { $("scaleRange").value = $("scale").value; $("size").value = ""; });

        async function start() {
          if (!file) return;
          showError("");
          const q = new URLSearchParams();
          const size = $("size").value.trim();
          if (size) q.set("size", size); else q.set("scale", $("scale").value);
          if (info && info.models.length > 1) q.set("model", $("model").value);
          $("go").disabled = true;
          $("stage").textContent = "Uploading...";
          $("progress").value = 0;
          let r, j;
          try {
            r = await fetch("/api/jobs?" + q, { method: "POST", body: file, headers: { "Content-Type": file.type || "application/octet-stream" } });
            j = await r.json();
          } catch (e) { showError("The server did not answer: " + e); $("go").disabled = false; return; }
          if (!r.ok) {
            const retry = r.headers.get("Retry-After");
            showError(j.error + (retry ? ` (retry in ${retry} s)` : ""));
            $("go").disabled = false; $("stage").textContent = "Refused."; return;
          }
          job = j.id;
          $("cancel").hidden = false;
          poll();
        }

        async function poll() {
          let s;
          try { s = await (await fetch("/api/jobs/" + job)).json(); }
          catch (e) { pollTimer = setTimeout(poll, 1000); return; }
          $("progress").value = s.progress || 0;
          const pct = Math.round(100 * (s.progress || 0));
          $("stage").textContent = s.state === "queued" ? `Waiting in the queue (${(s.position ?? 0) + 1} ahead of you incl. running)...`
            : s.state === "running" ? `${s.stage} ${pct}%` : s.state;
          if (s.state === "done") { finished(s); return; }
          if (s.state === "failed" || s.state === "cancelled") {
            showError(s.error || s.state); $("go").disabled = false; $("cancel").hidden = true; return;
          }
          pollTimer = setTimeout(poll, 250);
        }

        $("cancel").addEventListener("click", async () => {
          if (!job) return;
          clearTimeout(pollTimer);
          await fetch(`/api/jobs/${job}/cancel`, { method: "POST" });
          $("stage").textContent = "Cancelled."; $("go").disabled = false; $("cancel").hidden = true;
        });

        function finished(s) {
          result = s;
          $("go").disabled = false; $("cancel").hidden = true;
          $("stage").textContent = `Done in ${s.seconds.toFixed(2)} s.`;
          $("resultSection").hidden = false;
          $("resultInfo").textContent = `${s.inputWidth}x${s.inputHeight} → ${s.outputWidth}x${s.outputHeight}, ${s.gaussians} Gaussians, model ${s.model}`;
          $("imgBicubic").src = `/api/jobs/${job}/bicubic.png`;
          $("imgGsasr").src = `/api/jobs/${job}/result.png`;
          $("download").href = `/api/jobs/${job}/result.png?download=1`;
          $("download").download = (file.name.replace(/\.[^.]*$/, "") || "image") + `_gsasr.png`;
          setSlider();
          const w = Math.min(64, s.outputWidth), h = Math.min(64, s.outputHeight);
          $("region").value = `${Math.floor((s.outputWidth - w) / 2)},${Math.floor((s.outputHeight - h) / 2)},${w},${h}`;
          $("zoomSection").hidden = false;
          zoom();
        }

        function setSlider() {
          const p = $("slider").value;
          $("imgGsasr").style.clipPath = `inset(0 0 0 ${p}%)`;
          $("divider").style.left = `calc(${p}% - 1px)`;
        }
        $("slider").addEventListener("input", setSlider);

        // Region selection by dragging over the comparison (coordinates in result pixels).
        let dragStart = null;
        function toImage(e) {
          const img = $("imgBicubic"), rect = img.getBoundingClientRect();
          const k = img.naturalWidth / rect.width;
          return { x: Math.max(0, Math.min(img.naturalWidth, (e.clientX - rect.left) * k)),
                   y: Math.max(0, Math.min(img.naturalHeight, (e.clientY - rect.top) * k)), k, rect };
        }
        $("compare").addEventListener("mousedown", (e) => { e.preventDefault(); dragStart = toImage(e); });
        window.addEventListener("mousemove", (e) => { if (dragStart) drawSel(dragStart, toImage(e)); });
        window.addEventListener("mouseup", (e) => {
          if (!dragStart) return;
          const a = dragStart, b = toImage(e); dragStart = null;
          const x = Math.floor(Math.min(a.x, b.x)), y = Math.floor(Math.min(a.y, b.y));
          const w = Math.max(1, Math.round(Math.abs(b.x - a.x))), h = Math.max(1, Math.round(Math.abs(b.y - a.y)));
          if (w < 4 || h < 4) { $("sel").style.display = "none"; return; }
          $("region").value = `${x},${y},${w},${h}`;
          zoom();
        });
        function drawSel(a, b) {
          const s = $("sel").style;
          s.display = "block";
          s.left = Math.min(a.x, b.x) / a.k + "px"; s.top = Math.min(a.y, b.y) / a.k + "px";
          s.width = Math.abs(b.x - a.x) / a.k + "px"; s.height = Math.abs(b.y - a.y) / a.k + "px";
        }
        function showSel() {
          const p = $("region").value.split(",").map(Number), img = $("imgBicubic");
          if (p.length !== 4 || !img.naturalWidth) return;
          const k = img.naturalWidth / img.getBoundingClientRect().width;
          drawSel({ x: p[0], y: p[1], k }, { x: p[0] + p[2], y: p[1] + p[3] });
        }

        async function fetchImage(url, img) {
          const r = await fetch(url);
          if (!r.ok) { const j = await r.json(); throw new Error(j.error); }
          const blob = await r.blob();
          await new Promise((ok) => { img.onload = ok; img.src = URL.createObjectURL(blob); });
        }

        async function zoom() {
          if (!job) return;
          showError("");
          const q = `region=${encodeURIComponent($("region").value)}&zoom=${$("zoom").value}`;
          const ov = $("overlay").checked ? "&overlay=1" : "";
          showSel();
          try {
            await Promise.all([
              fetchImage(`/api/jobs/${job}/zoom.png?${q}${ov}`, $("zoomGsasr")),
              fetchImage(`/api/jobs/${job}/zoom.png?${q}&method=bicubic`, $("zoomBicubic")),
            ]);
            $("zoomGsasrCap").textContent = "GSASR" + ($("overlay").checked ? ", with its Gaussians" : "") +
              ` (${$("zoomGsasr").naturalWidth}x${$("zoomGsasr").naturalHeight})`;
            $("zoomSection").dataset.ready = q + ov;
          } catch (e) { showError(e.message); }
        }
        $("zoomBtn").addEventListener("click", zoom);
        $("overlay").addEventListener("change", zoom);
        $("zoom").addEventListener("change", zoom);
        $("go").addEventListener("click", start);
        loadInfo().catch((e) => showError("Cannot reach the server: " + e));
        </script>
        </body>
        </html>
        """#
}
