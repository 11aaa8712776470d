// Times are sent in UTC (readable without this script); here each <time datetime> is shown
// in the reader's own zone with how long ago it was, the UTC time kept in its title.
(function () {
  "use strict";

  function ago(milliseconds) {
    var minutes = Math.floor(milliseconds / 60000);
    if (minutes < 1) return "just now";
    if (minutes < 60) return minutes + " min ago";
    var hours = Math.floor(minutes / 60);
    if (hours < 24) return hours + " h ago";
    return Math.floor(hours / 24) + " d ago";
  }

  function localize(root) {
    var times = root.querySelectorAll ? root.querySelectorAll("time[datetime]") : [];
    Array.prototype.forEach.call(times, function (element) {
      var when = new Date(element.getAttribute("datetime"));
      if (isNaN(when.getTime())) return;
      var local = when.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
      element.textContent = local + " · " + ago(Date.now() - when.getTime());
    });
  }

  document.addEventListener("DOMContentLoaded", function () { localize(document); });
  // Rows polled or swapped in by htmx arrive in UTC again.
  document.addEventListener("htmx:afterSwap", function (event) { localize(event.target); });
  setInterval(function () { localize(document); }, 30000);
})();

// In a change freeze, a namespace admin's emergency reason (the banner's field) goes with
// every change the page sends, as the X-Signalbox-Emergency header the server records.
(function () {
  "use strict";
  document.addEventListener("htmx:configRequest", function (event) {
    var field = document.getElementById("emergency-reason");
    if (field && field.value.trim() !== "") {
      event.detail.headers["X-Signalbox-Emergency"] = field.value.trim();
    }
  });
})();
