/* Vouch advocate widget. No framework, no dependencies, talks only GraphQL.
 *
 *   <div id="vouch-widget"></div>
 *   <script src="https://vouch.example.com/static/widget.js"
 *           data-token="WIDGET_TOKEN" data-target="#vouch-widget" async></script>
 *
 * The token is minted server-side by your backend (createWidgetToken, write scope) and sees
 * one advocate only. Rendering uses textContent only: nothing from the API becomes markup.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) { return; }
  var token = script.getAttribute("data-token") || "";
  var origin = new URL(script.src, window.location.href).origin;
  var endpoint = script.getAttribute("data-endpoint") || origin + "/graphql";
  var target = document.querySelector(script.getAttribute("data-target") || "#vouch-widget");
  if (!target || !token) { return; }

  var QUERY = "query VouchWidget { me { firstName referralCount points " +
    "links { code channel shareUrl clickCount referralCount } " +
    "rewards { amountMinor currency state kind } nextAsk { type moment status } " +
    "referralPrompt { show reason } } }";
  var CHANNELS = [["email", "Email"], ["linkedin", "LinkedIn"], ["x", "X"], ["whatsapp", "WhatsApp"], ["sms", "SMS"]];
  var ASKS = {
    review: "Would you write a short review?", testimonial: "Would you share a testimonial?",
    case_study: "Would you be part of a case study?", anonymous_quote: "Could we quote you anonymously?",
    reference_call: "Would you take a reference call?", referral_invite: "Know someone who would love this? Invite them.",
    social_share: "Would you share us on social media?", community_invite: "Join our customer community?",
    survey: "Two minutes for a quick survey?"
  };

  function gql(query, variables) {
    return fetch(endpoint, {
      method: "POST",
      credentials: "omit",
      headers: { "content-type": "application/json", "authorization": "Bearer " + token },
      body: JSON.stringify({ query: query, variables: variables || {} })
    }).then(function (r) { return r.json(); });
  }

  function track(kind, channel) {
    gql("mutation($k: String!, $c: String) { recordShareEvent(kind: $k, channel: $c) { recorded } }",
      { k: kind, c: channel || null }).catch(function () { /* tracking never breaks sharing */ });
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined) { node.textContent = String(text); }
    return node;
  }

  function money(minor, currency) {
    try {
      return new Intl.NumberFormat(undefined, { style: "currency", currency: currency }).format(minor / 100);
    } catch (e) { return currency + " " + (minor / 100).toFixed(2); }
  }

  function withChannel(url, channel) {
    var u = new URL(url);
    u.searchParams.set("ch", channel);
    return u.toString();
  }

  function shareHref(channel, url, name) {
    var text = "I use this and think you'd like it" + (name ? " — " + name : "") + ": ";
    var e = encodeURIComponent;
    switch (channel) {
      case "email": return "mailto:?subject=" + e("You might like this") + "&body=" + e(text + url);
      case "linkedin": return "https://www.linkedin.com/sharing/share-offsite/?url=" + e(url);
      case "x": return "https://twitter.com/intent/tweet?text=" + e(text) + "&url=" + e(url);
      case "whatsapp": return "https://wa.me/?text=" + e(text + url);
      default: return "sms:?&body=" + e(text + url);
    }
  }

  function copy(text, input, status) {
    function done() { status.textContent = "Copied!"; track("link_copied"); }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, fallback);
    } else { fallback(); }
    function fallback() {
      input.focus(); input.select();
      try { if (document.execCommand("copy")) { done(); return; } } catch (e) { /* ignore */ }
      status.textContent = "Press Ctrl+C (or ⌘C) to copy.";
    }
  }

  function render(me) {
    var root = target.attachShadow ? target.attachShadow({ mode: "open" }) : target;
    var css = el("link"); css.rel = "stylesheet"; css.href = origin + "/static/widget.css";
    root.appendChild(css);
    var box = el("section", "vw"); box.setAttribute("aria-label", "Refer a friend");
    root.appendChild(box);
    // `me.referralPrompt.show` is false while a holdout experiment withholds the referral
    // call to action: no title inviting to share, no link, no channels, no referral ask and no
    // share events; the advocate's own stats stay. Nothing is said about why (the reason is for
    // the product, not the advocate). An API without the field means "show".
    var prompt = !(me.referralPrompt && me.referralPrompt.show === false);
    target.setAttribute("data-vouch-prompt", prompt ? "shown" : "hidden");
    if (prompt) {
      box.appendChild(el("h2", "vw-title", "Share and earn" + (me.firstName ? ", " + me.firstName : "")));
      var link = (me.links || []).filter(function (l) { return l.channel === "direct"; })[0] || (me.links || [])[0];
      if (!link) { box.appendChild(el("p", "vw-muted", "You have no share link yet.")); return; }
      shareBlock(box, link, me.firstName);
    } else {
      box.setAttribute("aria-label", "Your rewards");
      box.appendChild(el("h2", "vw-title", "Your rewards" + (me.firstName ? ", " + me.firstName : "")));
    }
    statsBlock(box, me);
    if (me.nextAsk) {
      var askType = String(me.nextAsk.type).toLowerCase();  // the AskType enum: REVIEW, ...
      if (prompt || askType !== "referral_invite") {
        var ask = el("p", "vw-ask", ASKS[askType] || "We have a small favour to ask.");
        ask.setAttribute("data-ask", askType);
        box.appendChild(ask);
      }
    }
    target.setAttribute("data-vouch-ready", "true");
    if (prompt) { track("page_opened"); }
  }

  function shareBlock(box, link, firstName) {
    var row = el("div", "vw-copy");
    var input = el("input"); input.type = "text"; input.readOnly = true; input.value = link.shareUrl;
    input.setAttribute("aria-label", "Your share link");
    var button = el("button", "vw-button", "Copy link"); button.type = "button";
    var status = el("p", "vw-status"); status.setAttribute("role", "status");
    button.addEventListener("click", function () { copy(link.shareUrl, input, status); });
    row.appendChild(input); row.appendChild(button);
    box.appendChild(row); box.appendChild(status);

    var channels = el("div", "vw-channels");
    CHANNELS.forEach(function (c) {
      var a = el("a", "vw-channel", c[1]);
      a.href = shareHref(c[0], withChannel(link.shareUrl, c[0]), firstName);
      a.target = "_blank"; a.rel = "noopener noreferrer";
      a.setAttribute("data-channel", c[0]);
      a.addEventListener("click", function () { track("channel_chosen", c[0]); });
      channels.appendChild(a);
    });
    box.appendChild(channels);
  }

  function statsBlock(box, me) {
    var earned = {};
    (me.rewards || []).forEach(function (r) {
      if (r.state !== "voided") { earned[r.currency] = (earned[r.currency] || 0) + r.amountMinor; }
    });
    var rewardText = Object.keys(earned).map(function (c) { return money(earned[c], c); }).join(" + ") || money(0, "USD");
    var clicks = (me.links || []).reduce(function (n, l) { return n + (l.clickCount || 0); }, 0);
    var stats = el("dl", "vw-stats");
    [["Clicks", clicks, "clicks"], ["Friends joined", me.referralCount, "friends"], ["Rewards", rewardText, "rewards"], ["Points", me.points, "points"]]
      .forEach(function (s) {
        var cell = el("div"); cell.setAttribute("data-stat", s[2]);
        cell.appendChild(el("dt", "", s[0])); cell.appendChild(el("dd", "", s[1]));
        stats.appendChild(cell);
      });
    box.appendChild(stats);
  }

  gql(QUERY).then(function (body) {
    if (body && body.data && body.data.me) { render(body.data.me); return; }
    target.setAttribute("data-vouch-error", (body && body.errors && body.errors[0] && body.errors[0].message) || "unavailable");
  }).catch(function () { target.setAttribute("data-vouch-error", "network"); });
})();
