// Live queue: reads this same page again every few seconds and swaps in the results, so a
// new hold appears without a reload. Without JavaScript the page is complete as served.
(function () {
  "use strict";
  var PERIOD_MS = 5000;
  var results = document.getElementById("queue-results");
  var live = document.getElementById("queue-live");
  if (!results || !window.fetch || !window.DOMParser) {
    return;
  }
  function count(root) {
    return root.querySelectorAll("tbody tr").length;
  }
  function refresh() {
    if (document.hidden) {
      return;
    }
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        // A lapsed session answers the sign-in page: leave the queue as it is.
        if (!response.ok || response.redirected) {
          return null;
        }
        return response.text();
      })
      .then(function (html) {
        if (!html) {
          return;
        }
        var page = new DOMParser().parseFromString(html, "text/html");
        var fresh = page.getElementById("queue-results");
        if (!fresh || fresh.innerHTML === results.innerHTML) {
          return;
        }
        var before = count(results);
        // Keep keyboard focus where it was when the focused link is still there.
        var focused = document.activeElement && results.contains(document.activeElement)
          ? document.activeElement.getAttribute("href") : null;
        results.innerHTML = fresh.innerHTML;
        if (focused) {
          var again = results.querySelector('a[href="' + focused + '"]');
          if (again) {
            again.focus();
          }
        }
        var after = count(results);
        if (live && after !== before) {
          live.textContent = after + " held update" + (after === 1 ? "" : "s") + " waiting";
        }
      })
      .catch(function () { /* offline for a moment: try again next period */ });
  }
  window.setInterval(refresh, PERIOD_MS);
})();
