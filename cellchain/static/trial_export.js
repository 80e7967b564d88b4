// The trial data export page: a form marked data-trial-export asks for the export (defer=1),
// then this script starts its generation and polls its progress until it is done, showing
// the bar, the percent and the step, then the download link. Without JavaScript the form
// posts as usual and the server generates the export in that request.
(function () {
  // Each export started on the page gets the next number; an answer about an earlier one
  // (a poll still in flight when the next was asked for) is never shown.
  var current = 0;

  function show(id, on) { document.getElementById(id).hidden = !on; }
  function text(id, value) { document.getElementById(id).textContent = value; }

  function report(state) {
    document.getElementById("export-bar").value = state.percent;
    text("export-percent", state.percent + " %");
    text("export-step", state.step || "");
    if (state.status === "done") {
      document.getElementById("export-download").href = state.download_url;
      document.getElementById("export-details").href = state.page_url;
      show("export-done", true);
    }
  }

  function failed(message) {
    text("export-error", message);
    show("export-error", true);
  }

  function poll(state, running, mine) {
    if (mine !== current) return;
    fetch(state.progress_url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.json(); })
      .then(function (now) {
        if (mine !== current) return;
        report(now);
        if (now.status === "failed") {
          failed("The export failed; see its page.");
        } else if (now.status !== "done" && running.active) {
          setTimeout(function () { poll(state, running, mine); }, 500);
        }
      });
  }

  function start(form) {
    var mine = ++current;
    var body = new FormData(form);
    body.append("defer", "1");
    report({ percent: 0, step: "Asking for the export", status: "queued" });
    show("export-progress", true);
    show("export-done", false);
    show("export-error", false);
    fetch(form.action, { method: "POST", body: body, credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("The export was refused (" + response.status + ").");
        return response.json();
      })
      .then(function (state) {
        if (mine !== current) return;
        report(state);
        var running = { active: true };
        var token = new FormData();
        token.append("csrf_token", body.get("csrf_token"));
        fetch(state.run_url, { method: "POST", body: token, credentials: "same-origin", headers: { Accept: "application/json" } })
          .then(function (response) {
            running.active = false;
            if (!response.ok) throw new Error("The export stopped (" + response.status + ").");
            return response.json();
          })
          .then(function (done) { if (mine === current) report(done); })
          .catch(function (error) { if (mine === current) failed(error.message); });
        poll(state, running, mine);
      })
      .catch(function (error) { failed(error.message); });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form instanceof HTMLFormElement && form.matches("[data-trial-export]")) {
      event.preventDefault();
      start(form);
    }
  });
})();
