// Small behaviours of the pages, kept out of the templates so the Content-Security-Policy
// allows no inline script (docs/security.md). Each is switched on by a data- attribute:
//   data-select-on-focus   a scan box selects its text on focus, so the next scan replaces it
//   data-caret-to-end      a scan list puts the caret at its end on focus, so scans append
//   data-submit-on-change  a file input posts its form once a file (a photo) is chosen
//   data-print             a button prints the page
(function () {
  function focused(el) {
    if (!(el instanceof Element)) return;
    if (el.matches("[data-select-on-focus]")) {
      el.select();
    } else if (el.matches("[data-caret-to-end]")) {
      el.selectionStart = el.selectionEnd = el.value.length;
    }
  }
  document.addEventListener("focusin", function (event) { focused(event.target); });
  document.addEventListener("change", function (event) {
    var el = event.target;
    if (el instanceof Element && el.matches("[data-submit-on-change]") && el.form) {
      el.form.submit();
    }
  });
  document.addEventListener("click", function (event) {
    var el = event.target instanceof Element ? event.target.closest("[data-print]") : null;
    if (el) window.print();
  });
  // an autofocus field may have had its focus before this script ran
  focused(document.activeElement);
})();

// --- the phone and tablet shell (issue 21) ------------------------------------------------
// Below 64rem the main navigation and the account line fold behind the Menu button
// (#menu-button, aria-expanded / aria-controls); Escape closes the menu and returns to it.
(function () {
  var button = document.getElementById("menu-button");
  if (!button) return;
  var header = button.closest("header");
  var narrow = window.matchMedia("(max-width: 63.99rem)");
  function set(open) { button.setAttribute("aria-expanded", open ? "true" : "false"); }
  function layout() {
    button.hidden = !narrow.matches;
    header.classList.toggle("collapsible", narrow.matches);
    set(!narrow.matches);
  }
  button.addEventListener("click", function () {
    set(button.getAttribute("aria-expanded") !== "true");
  });
  header.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && narrow.matches && button.getAttribute("aria-expanded") === "true") {
      set(false);
      button.focus();
    }
  });
  if (narrow.addEventListener) narrow.addEventListener("change", layout);
  layout();
})();

// Tables as cards: every cell gets its column's name (data-label, from the header row), and a
// table on a phone, or wider than the page, is marked .as-cards (app.css shows each row as a
// card). Tables without a header row, and the bedside pages, are left alone.
(function () {
  if (document.body.classList.contains("bedside")) return;
  var phone = window.matchMedia("(max-width: 40rem)");
  var tables = [];
  function label(table) {
    var head = table.tHead && table.tHead.rows[table.tHead.rows.length - 1];
    if (!head || head.cells.length < 2) return;
    var names = [];
    Array.prototype.forEach.call(head.cells, function (cell) {
      for (var i = 0; i < (cell.colSpan || 1); i++) names.push(cell.textContent.trim());
    });
    Array.prototype.forEach.call(table.tBodies, function (body) {
      Array.prototype.forEach.call(body.rows, function (row) {
        var column = 0;
        Array.prototype.forEach.call(row.cells, function (cell) {
          if (!cell.hasAttribute("data-label")) {
            // a cell across several columns (a note, "nothing yet") has no single name
            cell.setAttribute("data-label", (cell.colSpan || 1) > 1 ? "" : (names[column] || ""));
          }
          column += cell.colSpan || 1;
        });
      });
    });
    if (tables.indexOf(table) < 0) tables.push(table);
  }
  function fit() {
    tables = tables.filter(function (table) { return document.contains(table); });
    tables.forEach(function (table) {
      table.classList.remove("as-cards");
      var room = table.parentElement.clientWidth;
      if (phone.matches || table.scrollWidth > room + 1) table.classList.add("as-cards");
    });
  }
  var pending = false;
  window.addEventListener("resize", function () {
    if (pending) return;
    pending = true;
    window.requestAnimationFrame(function () { pending = false; fit(); });
  });
  function labelAll(root) {
    Array.prototype.forEach.call(root.querySelectorAll("table"), label);
    if (root.matches && root.matches("table")) label(root);
  }
  // a part of the page replaced in place (the print log after a print) is labelled again
  document.addEventListener("cellchain:replaced", function (event) {
    labelAll(event.detail);
    fit();
  });
  labelAll(document.querySelector("main") || document.createElement("main"));
  fit();
})();

// --- scanning with the camera (issue 21) --------------------------------------------------
// A [data-camera-scan] button (templates/camera.html) opens its dialog and the camera (the rear
// one preferred), reads QR codes and Data Matrix symbols from the live picture — with the
// browser's BarcodeDetector where it has one, else the vendored zxing-wasm (static/vendor),
// loaded on first use with its .wasm from this site — then fills the field and submits its form.
// The camera stops on a read, on Cancel and on Escape. No camera, or a refused one: it says so.
(function () {
  var reader = null;  // a promise of function(canvas) -> promise of the text read, or null

  function loadScript(src) {
    return new Promise(function (resolve, reject) {
      var script = document.createElement("script");
      script.src = src;
      script.onload = resolve;
      script.onerror = function () { reject(new Error("could not load " + src)); };
      document.head.appendChild(script);
    });
  }

  function nativeReader() {
    if (!("BarcodeDetector" in window)) return Promise.resolve(null);
    return window.BarcodeDetector.getSupportedFormats().then(function (formats) {
      if (formats.indexOf("qr_code") < 0) return null;
      var wanted = formats.indexOf("data_matrix") < 0 ? ["qr_code"] : ["qr_code", "data_matrix"];
      var detector = new window.BarcodeDetector({ formats: wanted });
      return function (canvas) {
        return detector.detect(canvas).then(function (found) {
          return found.length ? found[0].rawValue : null;
        });
      };
    }).catch(function () { return null; });
  }

  function zxingReader(button) {
    var wasm = button.getAttribute("data-zxing-wasm");
    return loadScript(button.getAttribute("data-zxing")).then(function () {
      var zxing = window.ZXingWASM;
      // the .wasm comes from this site's static folder, never a CDN
      zxing.prepareZXingModule({
        overrides: {
          locateFile: function (path, prefix) { return path.endsWith(".wasm") ? wasm : prefix + path; }
        },
        fireImmediately: true
      });
      var options = { formats: ["QRCode", "DataMatrix"], tryHarder: true, maxNumberOfSymbols: 1 };
      return function (canvas) {
        var context = canvas.getContext("2d", { willReadFrequently: true });
        var image = context.getImageData(0, 0, canvas.width, canvas.height);
        return zxing.readBarcodes(image, options).then(function (results) {
          var ok = results.filter(function (r) { return r.isValid && r.text; });
          return ok.length ? ok[0].text : null;
        });
      };
    });
  }

  function getReader(button) {
    if (!reader) {
      reader = nativeReader().then(function (native) { return native || zxingReader(button); });
      reader.catch(function () { reader = null; });  // try again on the next press
    }
    return reader;
  }

  function open(button) {
    var field = document.getElementById(button.getAttribute("data-camera-scan"));
    var dialog = document.getElementById(button.getAttribute("aria-controls"));
    var message = document.getElementById(button.id + "-message");
    var video = dialog.querySelector("video");
    var status = dialog.querySelector("[data-camera-status]");
    var canvas = document.createElement("canvas");
    var stream = null;
    var running = true;
    var initial = status.textContent;
    message.textContent = "";

    function stop() {
      running = false;
      if (stream) stream.getTracks().forEach(function (track) { track.stop(); });
      stream = null;
      video.srcObject = null;
    }
    function fail(text) {
      stop();
      if (dialog.open) dialog.close();
      message.textContent = text;
    }
    dialog.addEventListener("close", stop, { once: true });
    status.textContent = initial;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      message.textContent = button.getAttribute("data-no-camera");
      return;
    }
    dialog.showModal();
    navigator.mediaDevices.getUserMedia({ video: { facingMode: { ideal: "environment" } }, audio: false })
      .then(function (got) {
        stream = got;
        if (!running) { stop(); return null; }
        video.srcObject = stream;
        return video.play().then(function () { return getReader(button); });
      }, function (error) {
        var name = error && error.name;
        if (name === "NotAllowedError" || name === "SecurityError") {
          fail(button.getAttribute("data-camera-denied"));
        } else if (name === "NotFoundError" || name === "OverconstrainedError") {
          fail(button.getAttribute("data-no-camera"));
        } else {
          fail(button.getAttribute("data-camera-failed"));
        }
        return null;
      })
      .then(function (read) {
        if (!read || !running) return;
        status.textContent = status.getAttribute("data-reading");
        function frame() {
          if (!running) return;
          if (video.readyState < 2 || !video.videoWidth) { window.setTimeout(frame, 100); return; }
          var scale = Math.min(1, 1280 / Math.max(video.videoWidth, video.videoHeight));
          canvas.width = Math.round(video.videoWidth * scale);
          canvas.height = Math.round(video.videoHeight * scale);
          canvas.getContext("2d", { willReadFrequently: true }).drawImage(video, 0, 0, canvas.width, canvas.height);
          read(canvas).then(function (text) {
            if (!running) return;
            if (text) {
              stop();
              dialog.close();
              field.value = text;
              if (field.form.requestSubmit) field.form.requestSubmit(); else field.form.submit();
            } else {
              window.setTimeout(frame, 150);
            }
          }, function () { if (running) window.setTimeout(frame, 300); });
        }
        frame();
      }, function () {
        if (running) fail(button.getAttribute("data-decoder-failed"));
      });
  }

  document.addEventListener("click", function (event) {
    var target = event.target instanceof Element ? event.target : null;
    if (!target) return;
    var button = target.closest("[data-camera-scan]");
    if (button) { open(button); return; }
    var cancel = target.closest("[data-camera-cancel]");
    if (cancel) cancel.closest("dialog").close();
  });
})();

// --- printing without leaving the page (issue 21) -----------------------------------------
// A form with data-refresh="id id …" (a label print) is posted by fetch: a file that comes
// back is downloaded under its own name, then the page is read again and the elements of
// those ids (the print log, the reconciliation) are put in place of the ones shown, so the
// new print is in the log without a reload. Anything else that comes back (the page again,
// saying why nothing was printed) is shown as the page, as a plain post would have.
(function () {
  function filename(disposition) {
    var match = /filename\*=UTF-8''([^;]+)|filename="?([^";]+)"?/i.exec(disposition || "");
    if (!match) return "";
    return match[1] ? decodeURIComponent(match[1]) : match[2];
  }
  function download(blob, name) {
    var url = URL.createObjectURL(blob);
    var link = document.createElement("a");
    link.href = url;
    link.download = name;
    link.hidden = true;
    document.body.appendChild(link);
    link.click();
    link.remove();
    window.setTimeout(function () { URL.revokeObjectURL(url); }, 60000);
  }
  function showPage(html) {
    document.open();
    document.write(html);
    document.close();
  }
  function refresh(ids) {
    return fetch(window.location.pathname + window.location.search, {
      credentials: "same-origin", headers: { Accept: "text/html" }
    }).then(function (response) {
      // the session may have ended: a login page is not this page, and replaces nothing
      if (!response.ok || response.redirected) throw new Error("not this page");
      return response.text();
    }).then(function (html) {
      var fresh = new DOMParser().parseFromString(html, "text/html");
      ids.forEach(function (id) {
        var old = document.getElementById(id);
        if (!old) return;
        var replacement = fresh.getElementById(id);
        if (!replacement) { old.remove(); return; }
        replacement = document.importNode(replacement, true);
        old.replaceWith(replacement);
        document.dispatchEvent(new CustomEvent("cellchain:replaced", { detail: replacement }));
      });
    });
  }
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-refresh")) return;
    if (!window.fetch || !window.DOMParser) return;  // a plain post, as before
    event.preventDefault();
    var ids = form.getAttribute("data-refresh").split(/\s+/).filter(Boolean);
    var buttons = form.querySelectorAll("button[type=submit], button:not([type])");
    Array.prototype.forEach.call(buttons, function (b) { b.disabled = true; });
    function done() { Array.prototype.forEach.call(buttons, function (b) { b.disabled = false; }); }
    fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin" })
      .then(function (response) {
        var disposition = response.headers.get("Content-Disposition") || "";
        if (response.ok && /attachment/i.test(disposition)) {
          return response.blob().then(function (blob) {
            download(blob, filename(disposition) || "labels");
            // printed: should the page not be read again, a reload shows the log
            return refresh(ids).then(done, function () { window.location.reload(); });
          });
        }
        return response.text().then(showPage);
      })
      // never post a print twice: the server may have printed and logged it and only the
      // answer was lost; the page read again shows the log as it is
      .catch(function () { window.location.reload(); });
  });
})();
