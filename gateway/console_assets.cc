#include "gateway/console_assets.h"

namespace kpx::gateway {

// Follows the node's live activity where a page has #activity, and sends a
// page's forms (those with data-api) to the HTTP API as JSON, with
// the session's CSRF token, and shows the API's refusal in the form's
// .result element. Field names with dots nest ("findings.remarks", a
// number indexing a list); data-type="bool", "int" and "hundredths"
// (1250.50 sent as 125050) say how a value travels; data-request-id forms get a fresh
// requestId, so a double click acts once.
const char kConsoleScript[] = R"js("use strict";
(function () {
  // Sets obj.a.b = value for path "a.b"; a number in the path is an
  // index into a list ("lines.0.hsCode").
  function put(obj, path, value) {
    const keys = path.split(".");
    let o = obj;
    for (let i = 0; i < keys.length - 1; i++) {
      o = o[keys[i]] = o[keys[i]] || (/^[0-9]+$/.test(keys[i + 1]) ? [] : {});
    }
    o[keys[keys.length - 1]] = value;
  }
  // A form field's value as the API takes it.
  function typed(el) {
    if (el.dataset.type === "bool") return el.value === "true";
    if (el.dataset.type === "int") return parseInt(el.value, 10);
    // "1250.50" -> "125050": carats and dollars in hundredths.
    if (el.dataset.type === "hundredths") return String(Math.round(parseFloat(el.value) * 100));
    return el.value;
  }
  // Live activity: the node's new steps as they happen (console_events.h);
  // EventSource reconnects by itself and resumes after the last one seen.
  const activity = document.getElementById("activity");
  if (activity && activity.dataset.events) {
    const source = new EventSource(activity.dataset.events);
    source.addEventListener("entry", function (message) {
      const step = JSON.parse(message.data);
      const item = document.createElement("li");
      const link = document.createElement("a");
      link.href = "/console/certificates/" + encodeURIComponent(step.certificate);
      link.textContent = step.text;
      item.appendChild(link);
      activity.insertBefore(item, activity.firstChild);
      while (activity.children.length > 50) activity.removeChild(activity.lastChild);
    });
  }
  document.addEventListener("submit", async function (event) {
    const form = event.target;
    if (!form.dataset.api) return;
    event.preventDefault();
    const body = {};
    for (const el of form.elements) {
      if (!el.name || el.value === "") continue;
      if (el.type === "checkbox") {
        if (!el.checked) continue;
        if (el.dataset.type === "list") {  // several checkboxes, one repeated field
          const keys = el.name.split(".");
          let o = body;
          for (let i = 0; i < keys.length - 1; i++) o = o[keys[i]] = o[keys[i]] || {};
          (o[keys[keys.length - 1]] = o[keys[keys.length - 1]] || []).push(el.value);
          continue;
        }
      }
      put(body, el.name, typed(el));
    }
    if (form.dataset.requestId !== undefined) body.requestId = crypto.randomUUID();
    const headers = { "Content-Type": "application/json" };
    const token = document.querySelector('meta[name="csrf-token"]');
    if (token) headers["X-CSRF-Token"] = token.content;
    const result = form.querySelector(".result");
    const button = form.querySelector("button");
    if (button) button.disabled = true;
    try {
      const response = await fetch(form.dataset.api, {
        method: form.dataset.method || "POST",
        headers: headers,
        credentials: "same-origin",
        body: JSON.stringify(body),
      });
      if (response.ok && form.dataset.show === "credentials" && result) {
        // New credentials are shown once, here, and not kept anywhere.
        const answer = await response.json();
        result.textContent = result.dataset.label + " " + answer.officer.name + ": " +
          answer.password + " / " + answer.totpSecret;
        result.className = "credentials";
        result.hidden = false;
        return;
      }
      if (response.ok) {
        location.assign(form.dataset.next || location.pathname + location.search);
        return;
      }
      const error = await response.json().catch(function () {
        return { message: response.statusText };
      });
      if (result) {
        result.textContent = error.message;
        result.hidden = false;
      }
    } finally {
      if (button) button.disabled = false;
    }
  });
})();
)js";

// Plain, readable on a small screen, and the same left to right and right
// to left (logical properties only).
const char kConsoleStyle[] =
    R"css(:root { font-family: system-ui, sans-serif; color: #1d2430; background: #f5f6f8; }
body { margin: 0; }
header { display: flex; flex-wrap: wrap; gap: 1rem; align-items: center; padding: 0.6rem 1rem; background: #17324d; color: #fff; }
header a { color: #fff; }
header .brand { font-size: 1.2rem; }
header nav { display: flex; gap: 0.8rem; }
header .langs { margin-inline-start: auto; display: flex; gap: 0.5rem; }
main { max-width: 64rem; margin: 0 auto; padding: 1rem; }
.card { background: #fff; border: 1px solid #d5d9e0; border-radius: 6px; padding: 1rem; margin-block: 1rem; }
form.card label { display: block; margin-block: 0.6rem; }
form.card input, form.card textarea, form.card select { display: block; inline-size: 100%; max-inline-size: 28rem; padding: 0.4rem; }
form.card input[type=checkbox] { display: inline; inline-size: auto; margin-inline-end: 0.4rem; }
form.card fieldset label { display: block; margin-block: 0.3rem; }
form.inline { display: inline; }
button { padding: 0.4rem 0.9rem; }
table { border-collapse: collapse; }
th, td { text-align: start; padding: 0.3rem 0.7rem; border-block-end: 1px solid #e3e6eb; }
.state { display: inline-block; padding: 0.2rem 0.6rem; border-radius: 4px; background: #e4ecf7; font-weight: bold; }
.state-CONFIRMED { background: #dcf2e3; }
.state-REJECTED, .state-CANCELLED, .state-VOIDED, .state-REFUSED, .state-DISPUTED { background: #f8e1e1; }
.journey li { margin-block: 0.4rem; }
.result, .error { color: #a0151b; }
.credentials { font-family: monospace; background: #fff6d6; padding: 0.5rem; }
)css";

}  // namespace kpx::gateway
