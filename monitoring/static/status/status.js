/* Progressive enhancement only: the page works without it. Arrow keys move between the days of an
   uptime bar (one tab stop per bar); times are shown in the reader's local time zone on hover. */
(function () {
  "use strict";
  document.querySelectorAll(".bar").forEach(function (bar) {
    var days = Array.prototype.slice.call(bar.querySelectorAll(".day"));
    bar.addEventListener("keydown", function (event) {
      var index = days.indexOf(document.activeElement);
      if (index < 0) { return; }
      var next = { ArrowLeft: index - 1, ArrowRight: index + 1, Home: 0, End: days.length - 1 }[event.key];
      if (next === undefined) { return; }
      event.preventDefault();
      next = Math.max(0, Math.min(days.length - 1, next));
      days[index].tabIndex = -1;
      days[next].tabIndex = 0;
      days[next].focus();
    });
  });
  document.querySelectorAll("time[datetime]").forEach(function (node) {
    var value = node.getAttribute("datetime");
    if (value.length < 11) { return; }
    var date = new Date(value);
    if (!isNaN(date.getTime())) { node.title = date.toLocaleString(); }
  });
})();
