// Small enhancements for Gatehouse pages. Every page works without them.
(function () {
  "use strict";

  // Code form: keep digits only, accept a pasted code ("123 456",
  // "Code: 123456"), and submit once all digits are there.
  var form = document.querySelector("form[data-code-form]");
  var input = form && form.querySelector("input[name=code]");
  if (input) {
    var length = input.maxLength > 0 ? input.maxLength : 6;
    var sent = false;
    var submitIfComplete = function () {
      if (sent || input.value.length !== length) {
        return;
      }
      sent = true;
      if (form.requestSubmit) {
        form.requestSubmit();
      } else {
        form.submit();
      }
    };
    input.addEventListener("input", function () {
      var digits = input.value.replace(/\D/g, "").slice(0, length);
      if (digits !== input.value) {
        input.value = digits;
      }
      submitIfComplete();
    });
    input.addEventListener("paste", function (e) {
      var text = (e.clipboardData || window.clipboardData).getData("text") || "";
      var digits = text.replace(/\D/g, "");
      if (digits.length === 0) {
        return;
      }
      e.preventDefault();
      input.value = digits.slice(0, length);
      submitIfComplete();
    });
    form.addEventListener("submit", function () {
      sent = true;
    });
    // A page restored from the back/forward cache may be submitted again.
    window.addEventListener("pageshow", function () {
      sent = false;
    });
  }

  // "Send a new code": the server renders it with the seconds left, and
  // enabled, so that it still works without this script (the server refuses
  // a request that comes too early). Here it stays disabled while a visible
  // countdown runs, and is enabled when the wait is over.
  var resend = document.querySelector("button[data-resend-in]");
  if (resend) {
    var left = parseInt(resend.getAttribute("data-resend-in"), 10) || 0;
    var wait = resend.querySelector("[data-resend-wait]");
    var shown = resend.querySelector("[data-resend-seconds]");
    var deadline = Date.now() + left * 1000;
    if (left > 0) {
      resend.disabled = true;
    }
    var tick = function () {
      var s = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
      if (shown) {
        shown.textContent = String(s);
      }
      if (s > 0) {
        window.setTimeout(tick, 250);
        return;
      }
      resend.disabled = false;
      if (wait) {
        wait.parentNode.removeChild(wait);
      }
    };
    tick();
  }

  // Show times in the visitor's time zone; the server writes them in UTC.
  var lang = document.documentElement.lang || undefined;
  var times = document.querySelectorAll("time[data-local][datetime]");
  for (var i = 0; i < times.length; i++) {
    var d = new Date(times[i].getAttribute("datetime"));
    if (!isNaN(d.getTime())) {
      try {
        times[i].textContent = d.toLocaleString(lang, { dateStyle: "medium", timeStyle: "short" });
      } catch (err) {
        times[i].textContent = d.toLocaleString();
      }
    }
  }
})();
