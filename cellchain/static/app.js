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
