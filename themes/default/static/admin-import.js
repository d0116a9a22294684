/* Card-key import progress on the admin stock page.
 *
 * The import form works without this script. With it, once "Import" is
 * pressed and while that POST is in flight, the page asks the admin API
 * every second for this SKU's import runs and shows "lines read/total" of
 * the run started by this submission (one newer than any the page listed).
 */
(function () {
  "use strict";
  var form = document.getElementById("import-form");
  var box = document.getElementById("import-progress");
  if (!form || !box || !window.fetch) {
    return;
  }
  var url = form.getAttribute("data-progress-url");
  var after = parseInt(form.getAttribute("data-after") || "0", 10) || 0;
  var count = box.querySelector(".count");
  var timer = null;
  var lastButton = null;

  // event.submitter is recent; remember which button was pressed as well
  form.addEventListener("click", function (event) {
    var target = event.target;
    if (target && target.tagName === "BUTTON") {
      lastButton = target;
    }
  });

  function show(item) {
    var text = String(item.lines);
    if (item.total) {
      text += "/" + item.total;
    }
    count.textContent = text;
  }

  function poll() {
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}, cache: "no-store"})
      .then(function (resp) { return resp.ok ? resp.json() : null; })
      .then(function (data) {
        if (!data || !data.items) {
          return;
        }
        for (var i = 0; i < data.items.length; i++) {
          if (data.items[i].id > after) {  // newest first: the first newer run is ours
            show(data.items[i]);
            return;
          }
        }
      })
      .catch(function () { /* progress is a nicety: the import goes on */ });
  }

  form.addEventListener("submit", function (event) {
    var button = event.submitter || lastButton;
    if (!button || button.value !== "import" || timer !== null) {
      return;
    }
    box.hidden = false;
    timer = window.setInterval(poll, 1000);
  });
})();
