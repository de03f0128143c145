// batchform console: live sections over server-sent events, and inline form checks.
// Every page works without this file; it only keeps pages current and forms helpful.
"use strict";

(function () {
  function follow(container) {
    var url = container.getAttribute("data-events");
    var log = document.getElementById("log");
    var offset = log ? log.getAttribute("data-offset") : "0";
    var source = new EventSource(url + "?offset=" + encodeURIComponent(offset || "0"));
    var state = document.getElementById("log-state");
    if (log) log.scrollTop = log.scrollHeight;
    source.addEventListener("update", function (event) {
      var fragments = JSON.parse(event.data);
      Object.keys(fragments).forEach(function (id) {
        var element = document.getElementById(id);
        if (element && !element.contains(document.activeElement)) {
          element.innerHTML = fragments[id];
        } else if (element) {
          // Keep the keyboard focus where it is: replace the section once it has moved.
          element.setAttribute("data-pending", fragments[id]);
        }
      });
    });
    source.addEventListener("log", function (event) {
      if (!log) return;
      var atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      log.appendChild(document.createTextNode(JSON.parse(event.data).join("\n") + "\n"));
      if (atBottom) log.scrollTop = log.scrollHeight;
      if (state) state.textContent = "Streaming live.";
    });
    source.addEventListener("end", function () {
      source.close();
      container.setAttribute("data-ended", "true");
      if (state) state.textContent = "The job has ended; this is its whole log tail.";
    });
    document.addEventListener("focusout", function () {
      document.querySelectorAll("[data-pending]").forEach(function (element) {
        if (!element.contains(document.activeElement)) {
          element.innerHTML = element.getAttribute("data-pending");
          element.removeAttribute("data-pending");
        }
      });
    });
  }

  function showErrors(form, answer) {
    form.querySelectorAll("[data-field]").forEach(function (box) {
      var name = box.getAttribute("data-field");
      var problems = (answer.errors || {})[name] || [];
      var message = box.querySelector(".field-error");
      var control = box.querySelector("input, select, textarea");
      message.textContent = problems.join(" ");
      box.classList.toggle("invalid", problems.length > 0);
      if (problems.length) control.setAttribute("aria-invalid", "true");
      else control.removeAttribute("aria-invalid");
    });
  }

  function validateAsYouGo(form) {
    var url = form.getAttribute("data-validate");
    var timer = null;
    function check() {
      var body = new URLSearchParams(new FormData(form));
      fetch(url, { method: "POST", body: body, credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (answer) { if (answer) showErrors(form, answer); })
        .catch(function () { /* the server checks again on submit */ });
    }
    form.addEventListener("change", function () {
      clearTimeout(timer);
      timer = setTimeout(check, 250);
    });
    var first = form.querySelector("[aria-invalid=true]");
    if (first) first.focus();
  }

  // A list with jobs or endpoints still changing reloads its rows until none is.
  function refreshList(table) {
    var every = parseInt(table.getAttribute("data-refresh"), 10);
    var timer = setInterval(function () {
      fetch(window.location.href, { credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) {
          if (!html) return;
          var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(table.id);
          if (!fresh) return;
          table.tBodies[0].innerHTML = fresh.tBodies[0].innerHTML;
          if (!fresh.hasAttribute("data-refresh")) clearInterval(timer);
        })
        .catch(function () { /* try again at the next tick */ });
    }, every);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("table[data-refresh]").forEach(refreshList);
    document.querySelectorAll("[data-events]").forEach(follow);
    document.querySelectorAll("form[data-validate]").forEach(validateAsYouGo);
    var answer = document.getElementById("try-answer");
    if (answer) answer.focus();
  });
})();
