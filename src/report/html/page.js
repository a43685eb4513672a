// Tooltips for the charts' elements, on hover and on keyboard focus. An element's details
// are in its SVG <title>; on first use they move to its aria-label (its accessible name
// stays the same) so the browser's own, slower tooltip does not show on top of this one.
(function () {
  "use strict";
  var tip = document.getElementById("tip");
  var SELECTOR = ".task, .density, .bin, .util";

  function details(el) {
    var title = el.querySelector("title");
    if (title) {
      el.setAttribute("aria-label", title.textContent);
      el.removeChild(title);
    }
    return el.getAttribute("aria-label") || "";
  }

  function place(x, y) {
    var box = tip.getBoundingClientRect();
    var left = Math.min(x + 14, window.innerWidth - box.width - 6);
    var top = y + 16;
    if (top + box.height > window.innerHeight - 6) {
      top = y - box.height - 10;
    }
    tip.style.left = Math.max(4, left) + "px";
    tip.style.top = Math.max(4, top) + "px";
  }

  function show(el, x, y) {
    tip.textContent = details(el);
    tip.hidden = false;
    place(x, y);
  }

  function under(event) {
    var el = event.target;
    return el && el.closest ? el.closest(SELECTOR) : null;
  }

  document.addEventListener("mouseover", function (event) {
    var el = under(event);
    if (el) {
      show(el, event.clientX, event.clientY);
    }
  });
  document.addEventListener("mousemove", function (event) {
    if (!tip.hidden && under(event)) {
      place(event.clientX, event.clientY);
    }
  });
  document.addEventListener("mouseout", function (event) {
    if (under(event)) {
      tip.hidden = true;
    }
  });
  document.addEventListener("focusin", function (event) {
    var el = under(event);
    if (el) {
      var box = el.getBoundingClientRect();
      show(el, box.left, box.bottom);
    }
  });
  document.addEventListener("focusout", function () {
    tip.hidden = true;
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      tip.hidden = true;
    }
  });
  document.documentElement.setAttribute("data-ready", "yes");
})();
