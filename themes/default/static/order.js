/* The order and pay pages (templates/storefront/order.pt and pay.pt).
 *
 * Everything here is a convenience: the pages work without it.
 * - While an order is open, ask the order API every 3 s for its status and
 *   reload (or, on the pay page, go to the order) once it changes.
 * - Count the time left to pay down.
 * - Show times in the reader's time zone (the page says UTC).
 * - "Copy" buttons for card keys and the order link (hidden without script;
 *   the text itself stays selectable).
 * - Send a gateway's payment form on its own (its button does it without script).
 */
(function () {
  "use strict";

  var POLL_MS = 3000;

  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }

  // -- times in the reader's zone ---------------------------------------------------------------
  function localTimes() {
    var nodes = document.querySelectorAll("time[data-local]");
    for (var i = 0; i < nodes.length; i++) {
      var when = new Date(nodes[i].getAttribute("datetime"));
      if (!isNaN(when.getTime())) {
        nodes[i].textContent = when.getFullYear() + "-" + pad(when.getMonth() + 1) + "-" + pad(when.getDate()) +
          " " + pad(when.getHours()) + ":" + pad(when.getMinutes());
      }
    }
  }

  // -- the countdown ----------------------------------------------------------------------------
  function countdown() {
    var box = document.getElementById("countdown");
    if (!box) {
      return;
    }
    var end = Date.now() + (parseInt(box.getAttribute("data-seconds"), 10) || 0) * 1000;
    var over = document.querySelector(".countdown-over");
    function tick() {
      var left = Math.max(0, Math.round((end - Date.now()) / 1000));
      box.textContent = Math.floor(left / 60) + ":" + pad(left % 60);
      if (left === 0) {
        if (over) {
          over.hidden = false;
        }
        return;
      }
      window.setTimeout(tick, 1000);
    }
    tick();
  }

  // -- polling the order ------------------------------------------------------------------------
  function poll() {
    var page = document.querySelector("[data-poll-url]");
    if (!page || !window.fetch) {
      return;
    }
    var url = page.getAttribute("data-poll-url");
    var status = page.getAttribute("data-status");
    var next = page.getAttribute("data-next-url");
    function ask() {
      if (document.hidden) {
        window.setTimeout(ask, POLL_MS);
        return;
      }
      fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}, cache: "no-store"})
        .then(function (resp) { return resp.ok ? resp.json() : null; })
        .then(function (data) {
          if (data && data.status && data.status !== status) {
            if (next) {
              window.location.assign(next);
            } else {
              window.location.reload();
            }
            return;
          }
          window.setTimeout(ask, POLL_MS);
        })
        .catch(function () { window.setTimeout(ask, POLL_MS * 2); });
    }
    window.setTimeout(ask, POLL_MS);
  }

  // -- copy buttons -----------------------------------------------------------------------------
  function selectText(node) {
    if (node.select) {
      node.select();
      return;
    }
    var range = document.createRange();
    range.selectNodeContents(node);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  function copyText(node) {
    var text = node.value !== undefined && node.tagName === "INPUT" ? node.value : node.textContent;
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    selectText(node);
    return new Promise(function (resolve, reject) {
      try {
        if (document.execCommand("copy")) {
          resolve();
        } else {
          reject(new Error("copy refused"));
        }
      } catch (e) {
        reject(e);
      }
    });
  }

  function copyButtons() {
    var buttons = document.querySelectorAll("button.copy[data-copy]");
    for (var i = 0; i < buttons.length; i++) {
      (function (button) {
        var target = document.getElementById(button.getAttribute("data-copy"));
        if (!target) {
          return;
        }
        var label = button.textContent;
        button.hidden = false;
        button.addEventListener("click", function () {
          copyText(target).then(function () {
            button.textContent = button.getAttribute("data-done") || label;
            button.classList.add("done");
            window.setTimeout(function () {
              button.textContent = label;
              button.classList.remove("done");
            }, 1500);
          }, function () {
            selectText(target);  // the reader copies it by hand
          });
        });
      })(buttons[i]);
    }
  }

  // -- a gateway's form -------------------------------------------------------------------------
  function autoSubmit() {
    var form = document.querySelector("form[data-autosubmit]");
    if (form) {
      window.setTimeout(function () { form.submit(); }, 300);
    }
  }

  localTimes();
  countdown();
  copyButtons();
  poll();
  autoSubmit();
})();
