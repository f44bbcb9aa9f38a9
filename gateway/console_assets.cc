#include "gateway/console_assets.h"

namespace kpx::gateway {

// Follows the node's live activity where a page has #activity, and sends a
// page's forms (those with data-api) to the HTTP API as JSON, with
// the session's CSRF token, and shows the API's refusal in the form's
// .result element. Field names with dots nest ("findings.remarks", a
// number indexing a list); data-type="bool", "int" and "hundredths"
// (1250.50 sent as 125050), "date-start"/"date-end" (a day), "origin"
// ("BW 75%, NA 25%"), "lines" and "codes" (lists) say how a value travels;
// data-request-id forms get a fresh requestId, so a double click acts once.
// A form with data-check is first sent there (the issue form's
// certificates:check) and the problems the node finds are shown beside
// their inputs; data-totals fills the certificate's totals from its lines.
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
  // "1 250,50" or "1,250.50" -> 1250.5; NaN when it is not a number.
  function decimal(text) {
    let t = text.replace(/\s/g, "");
    t = t.indexOf(".") >= 0 ? t.replace(/,/g, "") : t.replace(",", ".");
    return /^[0-9]*\.?[0-9]+$/.test(t) ? parseFloat(t) : NaN;
  }
  // "BW 75%, NA 25%" / "BW 120.50 ct" / "*" -> an Origin (console_issue.h).
  function origin(text) {
    if (/^\s*\*+\s*$/.test(text)) return { mixedUndisclosed: true };
    const countries = [];
    for (const part of text.split(/[,;]/)) {
      const m = part.trim().match(/^([A-Za-z]{2})\s*(?:([0-9.,\s]+)\s*(%|ct)?)?$/);
      if (!m) throw new Error("origin");
      const share = { country: m[1].toUpperCase() };
      if (m[2] !== undefined) {
        const n = decimal(m[2]);
        if (isNaN(n)) throw new Error("origin");
        if (m[3] === "ct") share.caratsHundredths = String(Math.round(n * 100));
        else share.shareBasisPoints = Math.round(n * 100);
      }
      countries.push(share);
    }
    return { countries: countries };
  }
  // A form field's value as the API takes it; throws for a value that is
  // not one.
  function typed(el) {
    const v = el.value;
    switch (el.dataset.type) {
      case "bool": return v === "true";
      case "int": { const n = parseInt(v, 10); if (isNaN(n)) throw new Error("int"); return n; }
      case "hundredths": {  // carats and dollars in hundredths: "1250.50" -> "125050"
        const n = decimal(v);
        if (isNaN(n)) throw new Error("number");
        return String(Math.round(n * 100));
      }
      case "date-start": return v + "T00:00:00Z";
      case "date-end": return v + "T23:59:59Z";
      case "origin": return origin(v);
      case "lines": return v.split("\n").map((s) => s.trim()).filter((s) => s !== "");
      case "codes": return v.split(/[\s,;]+/).filter((s) => s !== "").map((s) => s.toUpperCase());
      default: return v;
    }
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
  // Repeated rows (goods lines, provenance): <tbody data-rows=PATH> holds
  // rows named PATH.N.field; <template data-row=PATH> is a new row with
  // __i__ for N; <button data-add=PATH> adds one.
  function rowsOf(path) { return document.querySelector('[data-rows="' + path + '"]'); }
  document.addEventListener("click", function (event) {
    const path = event.target.dataset && event.target.dataset.add;
    if (!path) return;
    const rows = rowsOf(path);
    const template = document.querySelector('template[data-row="' + path + '"]');
    const row = template.content.firstElementChild.cloneNode(true);
    for (const el of row.querySelectorAll("[name]")) {
      el.name = el.name.replace("__i__", String(rows.children.length));
    }
    rows.appendChild(row);
    const first = row.querySelector("input");
    if (first) first.focus();
  });
  // Rows with nothing typed in go; the rest are numbered 0, 1, ... so a
  // field the node names is the input of that name.
  function tidy(form) {
    for (const rows of form.querySelectorAll("[data-rows]")) {
      for (const row of Array.from(rows.children)) {
        const typedIn = Array.from(row.querySelectorAll("input")).some((el) => el.value !== "");
        if (!typedIn && rows.children.length > 1) row.remove();
      }
      Array.from(rows.children).forEach(function (row, i) {
        for (const el of row.querySelectorAll("[name]")) {
          el.name = el.name.replace(/^([^0-9]*\.)[0-9]+\./, "$1" + i + ".");
        }
      });
    }
  }
  // Totals shown as they are typed: <output data-sum=FIELD> adds up every
  // input named ...FIELD.
  function sums(form) {
    for (const out of form.querySelectorAll("output[data-sum]")) {
      let total = 0;
      for (const el of form.querySelectorAll('input[name$=".' + out.dataset.sum + '"]')) {
        const n = decimal(el.value);
        if (!isNaN(n)) total += Math.round(n * 100);
      }
      out.textContent = (total / 100).toFixed(2);
    }
  }
  document.addEventListener("input", function (event) {
    if (event.target.form) sums(event.target.form);
  });
  for (const form of document.querySelectorAll("form")) sums(form);

  // Problems shown beside their inputs: the input named `field`, else the
  // element whose data-field is, else the nearest enclosing path's.
  function clearProblems(form) {
    for (const el of form.querySelectorAll(".problem")) el.remove();
    for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  }
  function target(form, field) {
    for (let path = field; path; path = path.replace(/\.?[^.]*$/, "")) {
      const el = form.querySelector('[name="' + path + '"], [data-field="' + path + '"]');
      if (el) return el;
    }
    return null;
  }
  function showProblem(form, field, message) {
    const note = document.createElement("span");
    note.className = "problem";
    note.textContent = message.replace(/^certificate: /, "");
    const el = field ? target(form, field) : null;
    if (el) {
      el.setAttribute("aria-invalid", "true");
      const holder = el.closest("label, td");
      if (holder) holder.appendChild(note);
      else (el.closest("table") || el).insertAdjacentElement("afterend", note);
      return true;
    }
    return false;
  }
  function showProblems(form, problems) {
    const result = form.querySelector(".result");
    result.textContent = form.dataset.problems || "";
    const list = document.createElement("ul");
    for (const p of problems) {
      const item = document.createElement("li");
      item.textContent = p.message;
      list.appendChild(item);
      showProblem(form, p.field, p.message);
    }
    result.appendChild(list);
    result.hidden = false;
    const first = form.querySelector("[aria-invalid]");
    if (first) first.focus();
  }
  // The form as the request: {a: {b: value}}; a value that does not read
  // is a problem of its own.
  function read(form, problems) {
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
      try {
        put(body, el.name, typed(el));
      } catch (e) {
        problems.push({ field: el.name, message: form.dataset.notANumber || "?" });
      }
    }
    if (form.dataset.totals !== undefined && body.certificate) {
      let carats = 0, cents = 0;
      for (const l of body.certificate.lines || []) {
        carats += parseInt(l.caratsHundredths || "0", 10);
        cents += parseInt(l.valueUsdCents || "0", 10);
      }
      body.certificate.totalCaratsHundredths = String(carats);
      body.certificate.totalValueUsdCents = String(cents);
    }
    if (form.dataset.requestId !== undefined) body.requestId = crypto.randomUUID();
    return body;
  }
  async function send(url, method, body) {
    const headers = { "Content-Type": "application/json" };
    const token = document.querySelector('meta[name="csrf-token"]');
    if (token) headers["X-CSRF-Token"] = token.content;
    const response = await fetch(url, {
      method: method, headers: headers, credentials: "same-origin", body: JSON.stringify(body),
    });
    const answer = await response.json().catch(function () {
      return { message: response.statusText };
    });
    return { ok: response.ok, answer: answer };
  }
  // The issue form's check first: every problem the node finds.
  async function check(form, body) {
    const r = await send(form.dataset.check, "POST", { certificate: body.certificate });
    if (!r.ok) return [{ field: r.answer.field, message: r.answer.message }];
    return (r.answer.problems || []).map(function (p) {
      return { field: p.field ? "certificate." + p.field : "", message: p.message };
    });
  }
  document.addEventListener("submit", async function (event) {
    const form = event.target;
    if (!form.dataset.api) return;
    event.preventDefault();
    tidy(form);
    clearProblems(form);
    const result = form.querySelector(".result");
    const button = form.querySelector("button[type=submit], button:not([type])");
    if (button) button.disabled = true;
    try {
      const problems = [];
      const body = read(form, problems);
      if (problems.length === 0 && form.dataset.check) problems.push(...(await check(form, body)));
      if (problems.length > 0) return showProblems(form, problems);
      const r = await send(form.dataset.api, form.dataset.method || "POST", body);
      if (r.ok && form.dataset.show === "credentials" && result) {
        // New credentials are shown once, here, and not kept anywhere.
        result.textContent = result.dataset.label + " " + r.answer.officer.name + ": " +
          r.answer.password + " / " + r.answer.totpSecret;
        result.className = "credentials";
        result.hidden = false;
        return;
      }
      if (r.ok && form.dataset.nextCertificate !== undefined) {
        location.assign("/console/certificates/" + encodeURIComponent(r.answer.certificate.number));
        return;
      }
      if (r.ok) {
        location.assign(form.dataset.next || location.pathname + location.search);
        return;
      }
      if (result && r.answer.field && form.dataset.totals !== undefined) {
        return showProblems(form, [{ field: r.answer.field, message: r.answer.message }]);
      }
      if (result) {
        result.textContent = r.answer.message;
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
form.issue fieldset { border: 1px solid #d5d9e0; border-radius: 4px; margin-block: 1rem; }
form.issue table input, form.issue table select { inline-size: auto; max-inline-size: none; }
.problem { display: block; color: #a0151b; font-size: 0.9rem; }
[aria-invalid] { border: 2px solid #a0151b; }
.hint, .note { color: #4a5565; font-size: 0.9rem; }
.totals output { font-weight: bold; }
a.action { display: inline-block; padding: 0.4rem 0.9rem; border: 1px solid #17324d; border-radius: 4px; text-decoration: none; }
)css";

}  // namespace kpx::gateway
