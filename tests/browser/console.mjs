// The console in a real headless Chromium (Debian's /usr/bin/chromium),
// driven by playwright-core. tests/browser_test.cc starts two nodes (BW and
// EU), adds an exporting officer at BW and an importing one at EU, and runs
//   node tests/browser/console.mjs CONFIG.json
// CONFIG: {bw, eu (console URLs), exporter, importer, operator ({name,
// password, secret (base32)}), certificate (a SubmitCertificateRequest's certificate
// in JSON), screenshots (a folder)}.
//
// Prints "ok STEP" per step; exits 1 at the first step that fails.
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
const number = config.certificate.number;
const path = "/console/certificates/" + encodeURIComponent(number);

// RFC 6238 TOTP: HMAC-SHA-1 over the 30 s step, 6 digits.
function totp(base32, at = Date.now()) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of base32.replace(/=+$/, "")) bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const step = Buffer.alloc(8);
  step.writeBigUInt64BE(BigInt(Math.floor(at / 1000 / 30)));
  const mac = createHmac("sha1", key).update(step).digest();
  const offset = mac[mac.length - 1] & 0xf;
  const code = (mac.readUInt32BE(offset) & 0x7fffffff) % 1000000;
  return String(code).padStart(6, "0");
}

function check(condition, what) {
  if (!condition) throw new Error("failed: " + what);
  console.log("ok " + what);
}

// Reloads `url` until `test(page)` holds (at most 30 s).
async function until(page, url, test, what) {
  for (let i = 0; i < 60; i++) {
    await page.goto(url);
    if (await test(page)) return check(true, what);
    await page.waitForTimeout(500);
  }
  check(false, what);
}

// What the page's own script says or throws goes to the output.
function watch(page, name) {
  page.on("pageerror", (e) => console.log(name + " page error: " + e));
  page.on("console", (m) => console.log(name + " console: " + m.text()));
  return page;
}

async function signIn(page, base, who) {
  await page.goto(base + "/console/");
  check(page.url().endsWith("/console/sign-in"), "without a session the console sends to sign-in");
  await page.fill("input[name=name]", who.name);
  await page.fill("input[name=password]", who.password);
  await page.fill("input[name=code]", totp(who.secret));
  await Promise.all([page.waitForURL(base + "/console/"), page.click("form button")]);
  check((await page.textContent("h1")).length > 0, "signed in as " + who.name);
}

const browser = await chromium.launch({
  executablePath: process.env.KPX_CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
try {
  // The nodes' certificates come from the test's own CA.
  // EU's officer watches the dashboard's live activity before anything is sent.
  const euContext = await browser.newContext({ ignoreHTTPSErrors: true });
  const eu = watch(await euContext.newPage(), "EU");
  await signIn(eu, config.eu, config.importer);

  const bwContext = await browser.newContext({ ignoreHTTPSErrors: true, locale: "en-GB" });
  const bw = watch(await bwContext.newPage(), "BW");
  await signIn(bw, config.bw, config.exporter);
  const cookies = await bwContext.cookies();
  const session = cookies.find((c) => c.name === "__Host-kpx-session");
  check(session && session.httpOnly && session.secure && session.sameSite === "Strict",
        "the session cookie is HttpOnly, Secure and SameSite=Strict");
  check(await bw.evaluate(() => document.cookie.indexOf("kpx-session") < 0),
        "scripts cannot read the session cookie");

  // Issue through the form, first with two mistakes: line 1's origin shares
  // add up to 95 %, and line 2 has mixed, undisclosed origin, which EU's
  // published policy refuses. The node names both at once, beside their
  // inputs, and issues nothing.
  const c = config.certificate;
  const hundredths = (v) => (Number(v) / 100).toFixed(2);
  const originText = (o) => o.mixedUndisclosed ? "*" : o.countries.map(
    (x) => x.country + (x.shareBasisPoints ? " " + x.shareBasisPoints / 100 + "%" : "")).join(", ");
  await bw.goto(config.bw + "/console/issue");
  await bw.fill("input[name='certificate.number']", c.number);
  await bw.selectOption("select[name='certificate.importingParticipant']", c.importingParticipant);
  for (const side of ["exporter", "importer"]) {
    for (const f of ["name", "address", "country", "registration"]) {
      if (c[side][f]) await bw.fill(`input[name='certificate.${side}.${f}']`, c[side][f]);
    }
  }
  for (let i = 0; i < c.lines.length; i++) {
    if (i > 0) await bw.click("button[data-add='certificate.lines']");
    const at = `certificate.lines.${i}.`;
    await bw.selectOption(`select[name='${at}hsCode']`, c.lines[i].hsCode);
    await bw.fill(`input[name='${at}caratsHundredths']`, hundredths(c.lines[i].caratsHundredths));
    await bw.fill(`input[name='${at}valueUsdCents']`, hundredths(c.lines[i].valueUsdCents));
  }
  await bw.fill("input[name='certificate.lines.0.origin']", "BW 75%, NA 20%");
  await bw.fill("input[name='certificate.lines.1.origin']", "*");
  await bw.fill("input[name='certificate.numberOfParcels']", String(c.numberOfParcels));
  await bw.fill("textarea[name='certificate.shipment.sealNumbers']",
                c.shipment.sealNumbers.join("\n"));
  await bw.fill("input[name='certificate.shipment.transportDocument']",
                c.shipment.transportDocument);
  check((await bw.textContent("output[data-sum=caratsHundredths]")) ===
        hundredths(c.totalCaratsHundredths), "the form adds up the lines as they are typed");
  await bw.click("form.issue button[type=submit]");
  await bw.waitForSelector("form.issue .problem");
  const problemAt = (name) => bw.locator(`td:has(input[name='${name}']) .problem`)
    .textContent({ timeout: 2000 }).catch(() => "");
  check((await problemAt("certificate.lines.0.origin")).includes("add up to 9500 basis points"),
        "the form shows origin shares that do not add up beside their input");
  check((await problemAt("certificate.lines.1.origin")).includes("EU import policy"),
        "and at the same time EU's policy refusing mixed origin beside line 2");
  check(bw.url().endsWith("/console/issue"), "nothing is issued while the form has problems");
  await bw.screenshot({ path: config.screenshots + "/issue-problems.png", fullPage: true });
  await bw.fill("input[name='certificate.lines.0.origin']", originText(c.lines[0].origin));
  await bw.fill("input[name='certificate.lines.1.origin']", originText(c.lines[1].origin));
  await Promise.all([bw.waitForURL(config.bw + path), bw.click("form.issue button[type=submit]")]);
  check(true, "BW's officer issues the certificate");
  await bw.goto(config.bw + path);
  check((await bw.textContent("main")).includes("by K. Mokgosi (HQ)"),
        "BW's journey names the officer who issued it");
  await bw.screenshot({ path: config.screenshots + "/certificate-bw.png" });

  // No reload: the step appears on EU's dashboard as it happens.
  await eu.waitForSelector(`#activity a:has-text("${number}")`, { timeout: 30000 });
  check((await eu.textContent("#activity")).includes("Received"),
        "the certificate arrives live on EU's dashboard");
  await eu.screenshot({ path: config.screenshots + "/dashboard-eu.png", fullPage: true });
  await until(eu, config.eu + "/console/certificates?state=RECEIVED",
              async (p) => (await p.textContent("main")).includes(number),
              "the certificate arrives at EU");
  await eu.screenshot({ path: config.screenshots + "/list-eu.png" });
  // EU's officer weighs the 7102.31 parcels 0.10 ct short and confirms with that.
  await eu.goto(config.eu + path);
  const found = "form.action:has(input[name='findings.numberOfParcels'])";
  await eu.fill(`${found} tr:has(input[value='7102.31']) input[name$='caratsHundredths']`,
                "1250.40");
  await eu.fill(`${found} textarea[name='findings.remarks']`, "One parcel light by 0.10 ct.");
  // The form's script answers with a new page once the node has confirmed.
  await Promise.all([eu.waitForNavigation(), eu.click(`${found} button`)]);
  await until(eu, config.eu + path, async (p) => (await p.textContent(".state")) === "Confirmed",
              "EU's officer confirms it with what was found");
  await until(bw, config.bw + path, async (p) => (await p.textContent(".state")) === "Confirmed",
              "BW sees it confirmed");
  check((await bw.textContent(".discrepancies")).includes("7102.31 carats: 1250.50 → 1250.40"),
        "BW sees the difference EU found");

  // Other languages: French left to right, Arabic right to left.
  await bw.goto(config.bw + path + "?lang=fr");
  check((await bw.textContent(".state")) === "Confirmé", "the French page");
  await bw.goto(config.bw + path + "?lang=ar");
  check(await bw.evaluate(() => document.documentElement.dir) === "rtl", "the Arabic page is right to left");
  const brand = await bw.locator("header .brand").boundingBox();
  const langs = await bw.locator("header .langs").boundingBox();
  check(brand.x > langs.x, "in Arabic the header runs from the right");
  await bw.screenshot({ path: config.screenshots + "/certificate-ar.png" });
  await bw.goto(config.bw + path + "?lang=en");

  // An operator adds an officer on the officers page; the new officer signs in.
  const opsContext = await browser.newContext({ ignoreHTTPSErrors: true });
  const ops = watch(await opsContext.newPage(), "BW operator");
  await signIn(ops, config.bw, config.operator);
  await ops.goto(config.bw + "/console/officers");
  await ops.fill("input[name='officer.name']", "n.officer");
  await ops.fill("input[name='officer.fullName']", "N. Officer");
  await ops.fill("input[name='officer.office']", "HQ");
  await ops.check("input[name='officer.roles'][value='IMPORTER']");
  await ops.click("form.card button");
  const shown = await ops.waitForSelector(".credentials");
  const [password, secret] = (await shown.textContent()).split(": ").pop().split(" / ");
  check(password.length === 16 && secret.length >= 32,
        "the officers page shows a new officer's credentials once");
  const newContext = await browser.newContext({ ignoreHTTPSErrors: true });
  const fresh = watch(await newContext.newPage(), "BW new officer");
  await signIn(fresh, config.bw, { name: "n.officer", password: password, secret: secret });
  await ops.goto(config.bw + "/console/officers");
  await ops.screenshot({ path: config.screenshots + "/officers-bw.png", fullPage: true });
  await Promise.all([
    ops.waitForNavigation(),
    ops.click("tr:has-text('n.officer') form:has(input[name=disabled]) button"),
  ]);
  check((await ops.textContent("tr:has-text('n.officer')")).includes("Disabled"),
        "the operator disables the officer");
  await fresh.goto(config.bw + "/console/");
  check(fresh.url().endsWith("/console/sign-in"), "a disabled officer's session has ended");

  // Signing out ends the session.
  await Promise.all([bw.waitForURL(config.bw + "/console/sign-in"), bw.click("header form button")]);
  await bw.goto(config.bw + "/console/");
  check(bw.url().endsWith("/console/sign-in"), "after signing out the console asks to sign in");
} catch (e) {
  console.log(String(e && e.stack ? e.stack : e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
