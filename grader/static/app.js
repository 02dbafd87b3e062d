// grade serve: keyboard scoring. n/j next, p/k previous, 0-9 points, c comment, Enter saves
// (Shift+Enter: a new line in the comment). Keys other than Enter are left alone while typing.
"use strict";
(function () {
  function form() { return document.getElementById("score"); }
  function pick(button) {
    var points = document.getElementById("points");
    if (points && button) { points.value = button.getAttribute("data-points"); }
  }
  document.addEventListener("click", function (event) {
    var target = event.target;
    if (target && target.classList && target.classList.contains("pick")) { pick(target); }
  });
  document.addEventListener("keydown", function (event) {
    var target = event.target;
    var typing = target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.isContentEditable);
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && form()) {
      if (!typing || target.form === form()) { event.preventDefault(); form().requestSubmit(); }
      return;
    }
    if (typing || event.ctrlKey || event.metaKey || event.altKey) { return; }
    var link = null;
    if (event.key === "n" || event.key === "j") { link = document.getElementById("next"); }
    else if (event.key === "p" || event.key === "k") { link = document.getElementById("prev"); }
    if (link) { event.preventDefault(); window.location.href = link.href; return; }
    if (/^[0-9]$/.test(event.key)) {
      var button = document.querySelector('button.pick[data-key="' + event.key + '"]');
      if (button) { event.preventDefault(); pick(button); }
      return;
    }
    if (event.key === "c") {
      var comment = document.getElementById("comment");
      if (comment) { event.preventDefault(); comment.focus(); }
    }
  });
}());
