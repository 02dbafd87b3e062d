// grade serve: keyboard scoring. n/j next answer, p/k previous, N/P next/previous question, 0-9 points,
// c comment (cursor at its end), r then 1-9 inserts a kept comment, Enter saves (Shift+Enter: a new
// line in the comment). Keys other than Enter are left alone while typing. A form is sent once: a
// second Enter while the first save is on its way does nothing.
"use strict";
(function () {
  var sending = false;
  var reuse = false;
  function form() { return document.getElementById("score"); }
  function pick(button) {
    var points = document.getElementById("points");
    if (points && button) { points.value = button.getAttribute("data-points"); }
  }
  function toEnd(area) {
    area.focus();
    var end = area.value.length;
    area.setSelectionRange(end, end);
    area.scrollTop = area.scrollHeight;
  }
  function insert(button) {
    var comment = document.getElementById("comment");
    if (!comment || !button) { return; }
    var text = button.getAttribute("data-text") || "";
    comment.value = comment.value.replace(/\s+$/, "");
    comment.value += (comment.value ? "\n" : "") + text;
    toEnd(comment);
  }
  document.addEventListener("submit", function (event) {
    if (sending) { event.preventDefault(); return; }
    sending = true;
  });
  window.addEventListener("pageshow", function () { sending = false; });  // back to a page from the cache
  document.addEventListener("click", function (event) {
    var target = event.target;
    if (target && target.classList && target.classList.contains("pick")) { pick(target); }
    if (target && target.classList && target.classList.contains("reuse")) { insert(target); }
  });
  document.addEventListener("keydown", function (event) {
    var target = event.target;
    var typing = target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.isContentEditable);
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && form()) {
      if (!typing || target.form === form()) {
        event.preventDefault();
        if (!sending) { form().requestSubmit(document.getElementById("save")); }
      }
      return;
    }
    if (typing || event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (reuse) {
      reuse = false;
      if (/^[1-9]$/.test(event.key)) {
        event.preventDefault();
        insert(document.querySelector('button.reuse[data-key="' + event.key + '"]'));
        return;
      }
    }
    var link = null;
    if (event.key === "n" || event.key === "j") { link = document.getElementById("next"); }
    else if (event.key === "p" || event.key === "k") { link = document.getElementById("prev"); }
    else if (event.key === "N") { link = document.getElementById("next-question"); }
    else if (event.key === "P") { link = document.getElementById("prev-question"); }
    if (link) { event.preventDefault(); window.location.href = link.href; return; }
    if (/^[0-9]$/.test(event.key)) {
      var button = document.querySelector('button.pick[data-key="' + event.key + '"]');
      if (button) { event.preventDefault(); pick(button); }
      return;
    }
    if (event.key === "r" && document.querySelector("button.reuse")) { event.preventDefault(); reuse = true; return; }
    if (event.key === "c") {
      var comment = document.getElementById("comment");
      if (comment) { event.preventDefault(); toEnd(comment); }
    }
  });
}());
