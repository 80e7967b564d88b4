// The thaw countdown on the bedside pages: every element with data-expires (ISO 8601) shows
// the minutes and seconds left to start the infusion, and turns red when the window closes.
// The server renders the same text, so the page reads right without JavaScript too. The
// server's time on the page (data-server-now) corrects a device whose clock is wrong.
(function () {
  var loaded = Date.now();
  function serverNow(el) {
    var server = Date.parse(el.dataset.serverNow || "");
    return isNaN(server) ? Date.now() : server + (Date.now() - loaded);
  }
  function tick() {
    document.querySelectorAll("[data-expires]").forEach(function (el) {
      var left = Math.floor((Date.parse(el.dataset.expires) - serverNow(el)) / 1000);
      if (left < 0) {
        el.textContent = "THAW WINDOW CLOSED";
        el.classList.add("bad");
      } else {
        var seconds = String(left % 60).padStart(2, "0");
        el.textContent = Math.floor(left / 60) + ":" + seconds + " left to start";
      }
    });
  }
  tick();
  setInterval(tick, 1000);
})();
