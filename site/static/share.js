// The share flow: reports page_opened, link_copied, channel_chosen and message_edited, keeps
// each channel's send link in step with its (editable) message, and refreshes the counts.
(function () {
  "use strict";
  var root = document.getElementById("share");
  if (!root) { return; }
  var token = root.getAttribute("data-token");
  var program = root.getAttribute("data-program") || null;
  function report(kind, channel) {
    var body = JSON.stringify({ token: token, program: program, kind: kind, channel: channel || null });
    return fetch("/share/events", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: body,
      keepalive: true,
      credentials: "same-origin"
    }).catch(function () { return null; });
  }
  window.vouchShareReady = report("page_opened");
  document.addEventListener("vouch:copied", function (event) {
    if (event.detail && event.detail.how && event.detail.target === "share-link") {
      report("link_copied");
    }
  });
  var edited = {};
  Array.prototype.forEach.call(document.querySelectorAll("textarea[data-channel]"), function (area) {
    var channel = area.getAttribute("data-channel");
    var initial = area.value;
    area.addEventListener("input", function () {
      var send = document.getElementById("send-" + channel);
      if (send && area.getAttribute("data-carries-text")) {
        send.setAttribute("href", area.getAttribute("data-href-base") + encodeURIComponent(area.value));
      }
      if (!edited[channel] && area.value !== initial) {
        edited[channel] = true;
        report("message_edited", channel);
      }
    });
  });
  Array.prototype.forEach.call(document.querySelectorAll("a.send[data-channel]"), function (link) {
    link.addEventListener("click", function () { report("channel_chosen", link.getAttribute("data-channel")); });
  });
  function refresh() {
    var url = "/share/stats?token=" + encodeURIComponent(token) + (program ? "&program=" + encodeURIComponent(program) : "");
    fetch(url, { credentials: "same-origin" }).then(function (r) { return r.ok ? r.json() : null; }).then(function (s) {
      if (!s) { return; }
      document.getElementById("stat-clicks").textContent = s.clicks;
      document.getElementById("stat-friends").textContent = s.friendsJoined;
      document.getElementById("stat-rewards").textContent = s.rewardsEarned;
      document.getElementById("stat-amount").textContent = s.rewardsAmount;
    }).catch(function () { return null; });
  }
  window.setInterval(refresh, 30000);
})();
