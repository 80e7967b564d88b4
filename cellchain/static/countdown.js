// The thaw countdown on the bedside pages: every element with data-expires (ISO 8601) shows
// the minutes and seconds left to start the infusion, and turns red when the window closes.
// The server renders the same text, so the page reads right without JavaScript too. The
// server's time on the page (data-server-now) corrects a device whose clock is wrong. The
// words come from the page (data-left-text, data-closed-text), in the reader's language.
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
        el.textContent = el.dataset.closedText || "THAW WINDOW CLOSED";
        el.classList.add("bad");
      } else {
        var seconds = String(left % 60).padStart(2, "0");
        var shown = Math.floor(left / 60) + ":" + seconds;
        // the page's words, in the reader's language ("{left}" marks where the time goes)
        el.textContent = (el.dataset.leftText || "{left} left to start").replace("{left}", shown);
      }
    });
  }
  tick();
  setInterval(tick, 1000);
})();
