// The trial data export page: a form marked data-trial-export asks for the export (defer=1),
// then this script starts its generation and polls its progress until it is done, showing
// the bar, the percent and the step, then the download link. Without JavaScript the form
// posts as usual and the server generates the export in that request.
(function () {
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

  function poll(state, running) {
    fetch(state.progress_url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.json(); })
      .then(function (now) {
        report(now);
        if (now.status === "failed") {
          failed("The export failed; see its page.");
        } else if (now.status !== "done" && running.active) {
          setTimeout(function () { poll(state, running); }, 500);
        }
      });
  }

  function start(form) {
    var body = new FormData(form);
    body.append("defer", "1");
    show("export-progress", true);
    show("export-done", false);
    show("export-error", false);
    fetch(form.action, { method: "POST", body: body, credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("The export was refused (" + response.status + ").");
        return response.json();
      })
      .then(function (state) {
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
          .then(report)
          .catch(function (error) { failed(error.message); });
        poll(state, running);
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
