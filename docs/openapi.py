# Writes docs/openapi.json: python3 docs/openapi.py > docs/openapi.json
# (http_test checks the file against the routes the node serves).
import json
routes = [
 ("post","/api/v1/certificates","SubmitCertificate","SubmitCertificateRequest","CertificateRecord","EXPORTER",
  "Sign and send a certificate to the importing Participant's node. A REPLACEMENT certificate (type REPLACEMENT, `replaces` set) replaces an earlier one. `requestId` makes a retry safe."),
 ("post","/api/v1/certificates:check","CheckCertificate","CheckCertificateRequest","CheckCertificateResponse","EXPORTER",
  "What submitting this certificate would refuse, every problem at once, each naming its field (a protobuf-JSON path in the certificate: `lines.1.hsCode`). Signs, stores and sends nothing; the answer holds the certificate in canonical form."),
 ("get","/api/v1/certificates","ListCertificates","ListCertificatesRequest","ListCertificatesResponse","any role",
  "List certificates, newest first, with filters and paging (the request's fields as query parameters: state, partner, issuedFrom, issuedUntil, overdueDays, overdue, discrepancies, pageSize, pageToken)."),
 ("get","/api/v1/certificates/{number}","GetCertificate","GetCertificateRequest","CertificateRecord","any role",
  "One certificate as this node records it: its state, the signed certificate and the confirmation."),
 ("get","/api/v1/certificates/{number}:trace","TraceCertificate","TraceCertificateRequest","TraceCertificateResponse","any role",
  "The chain of custody: the certificates it replaces, replaced it, or it arrived under."),
 ("get","/api/v1/certificates/{number}:evidence","ExportEvidence","ExportEvidenceRequest","EvidenceBundle","any role",
  "The evidence bundle: every signed step with inclusion proofs, checkable offline with `kpxctl evidence verify`."),
 ("get","/api/v1/certificates/{number}:attestation","GetAttestation","GetAttestationRequest","AttestationResponse","any role",
  "The printed certificate's QR payload (KPX1.<base64url>, a SignedAttestation by the exporting node) and its short code, for a certificate this node issued. `kpxctl cert verify-qr` checks the payload offline; the public /verify page online."),
 ("post","/api/v1/certificates/{number}:confirm","ConfirmReceipt","ConfirmReceiptRequest","CertificateRecord","IMPORTER",
  "Confirm the shipment's arrival with what was found (findings: asDeclared, or the figures found)."),
 ("post","/api/v1/certificates/{number}:reject","RejectShipment","RejectShipmentRequest","CertificateRecord","IMPORTER",
  "Refuse the shipment, with a reason."),
 ("post","/api/v1/certificates/{number}:cancel","CancelCertificate","CancelCertificateRequest","CertificateRecord","EXPORTER",
  "Cancel a certificate before the importer confirmed it."),
 ("post","/api/v1/certificates/{number}:void","VoidCertificate","VoidCertificateRequest","CertificateRecord","EXPORTER",
  "Void a certificate issued in error."),
 ("post","/api/v1/certificates/{number}:amend","AmendCertificate","AmendCertificateRequest","CertificateRecord","EXPORTER",
  "Correct a certificate; the whole corrected certificate with a reason."),
 ("post","/api/v1/certificates/{number}:resend","ResendCertificate","ResendCertificateRequest","CertificateRecord","EXPORTER",
  "Sign and send again a certificate the importer's node refused, as it stands or corrected."),
 ("get","/api/v1/trust-lists","ListTrustLists","ListTrustListsRequest","ListTrustListsResponse","any role",
  "Every trust-list version this node put in force."),
 ("get","/api/v1/peers","ListPeers","ListPeersRequest","ListPeersResponse","OPERATOR or AUDITOR",
  "Every other Participant: trust-list status and what its node showed of its log."),
 ("get","/api/v1/outbox","ListOutbox","ListOutboxRequest","ListOutboxResponse","OPERATOR or AUDITOR",
  "Messages waiting for delivery (query: stuckOnly, pageSize, pageToken)."),
 ("post","/api/v1/ledger:verify","VerifyLedger","VerifyLedgerRequest","VerifyLedgerResponse","AUDITOR",
  "Check every entry of the ledger: hashes, chain, Merkle tree and signed tree head."),
 ("post","/api/v1/officers","AddOfficer","AddOfficerRequest","OfficerCredentials","OPERATOR",
  "Add an officer's console account (name, fullName, office, roles). The answer holds the password and the second-factor secret, once."),
 ("get","/api/v1/officers","ListOfficers","ListOfficersRequest","ListOfficersResponse","OPERATOR or AUDITOR",
  "Every officer's account, without secrets."),
 ("post","/api/v1/officers/{name}:setDisabled","SetOfficerDisabled","SetOfficerDisabledRequest","Officer","OPERATOR",
  "Disable (disabled: true) or enable an officer's account; disabling ends their sessions."),
 ("post","/api/v1/officers/{name}:reset","ResetOfficer","ResetOfficerRequest","OfficerCredentials","OPERATOR",
  "A new password and second factor, answered once; ends the officer's sessions and lifts a lock."),
 ("get","/api/v1/events","Watch","WatchRequest","LedgerEntry","any role",
  "Live activity as Server-Sent Events (text/event-stream): one event per step of a certificate, id its ledger sequence, data {sequence, kind, certificate, partner, state, at, text}. Starts after the Last-Event-ID header's entry, else at fromSequence, else after the newest entry. At most 2 streams per caller and 8 in all (503 beyond)."),
 ("post","/api/v1/session","SignIn","SignInRequest","SessionInfo","anyone (an officer's name, password and code)",
  "Sign in as an officer. Sets the __Host-kpx-session cookie (Secure, HttpOnly, SameSite=Strict); the answer's csrfToken goes in X-CSRF-Token on every later request that changes something. 401 for a wrong name, password or code (the same words for each), or a locked account; 429 after 10 tries from one address in a minute."),
 ("get","/api/v1/session","GetSession","GetSessionRequest","SessionInfo","a signed-in officer",
  "The session of the cookie: the officer and the CSRF token."),
 ("delete","/api/v1/session","SignOut","SignOutRequest","SignOutResponse","a signed-in officer (with X-CSRF-Token), or any client certificate",
  "Sign out: the session ends and the cookie is cleared."),
]
paths = {}
schemas = {"Error": {"type":"object","required":["code","message"],"properties":{
  "code":{"type":"string","description":"The gRPC status code name, e.g. INVALID_ARGUMENT, PERMISSION_DENIED, NOT_FOUND."},
  "message":{"type":"string","description":"What was wrong, in one line."},
  "field":{"type":"string","description":"When the refusal is about one field of the request: its protobuf-JSON path (certificate.lines.0.hsCode; a number indexes a list from 0)."}}}}
for method, path, verb, req, resp, roles, summary in routes:
    op = {"operationId": verb, "summary": summary,
          "description": f"Allowed to: {roles}. Mirrors kpx.v1.AuthorityService/{verb}.",
          "x-kpx-request": f"kpx.v1.{req}", "x-kpx-response": f"kpx.v1.{resp}",
          "responses": {"200": {"description": f"kpx.v1.{resp}", "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{resp}"}}}},
                        "default": {"description": "An error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}
    params = []
    if "{number}" in path:
        params.append({"name":"number","in":"path","required":True,"schema":{"type":"string"},
                       "description":"The certificate number; '/' in it is sent as %2F."})
    if "{name}" in path:
        params.append({"name":"name","in":"path","required":True,"schema":{"type":"string"},
                       "description":"The officer's sign-in name."})
    if method == "get" and req not in ("GetCertificateRequest","TraceCertificateRequest","ExportEvidenceRequest","GetAttestationRequest","GetSessionRequest"):
        params.append({"name":"query","in":"query","style":"form","explode":True,
                       "schema":{"$ref": f"#/components/schemas/{req}"},
                       "description":"The request's fields, by JSON or proto name."})
    if params: op["parameters"] = params
    if verb == "SignIn":
        op["security"] = []
    if method == "post":
        op["requestBody"] = {"required": False, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{req}"}}}}
    paths.setdefault(path, {})[method] = op
    for m in (req, resp):
        schemas.setdefault(m, {"type":"object","description": f"kpx.v1.{m} in the protobuf JSON mapping (proto/kpx/v1/). Field names lowerCamelCase; either spelling is accepted on input; an unknown field is refused."})
doc = {"openapi":"3.0.3",
 "info":{"title":"kpx node HTTP API","version":"v1",
   "description":"The authority verbs of a kpx node over HTTPS (console_listen), for systems such as a customs single window. The same verbs, roles and errors as the gRPC AuthorityService (proto/kpx/v1/service.proto). Systems present a TLS client certificate from the node's authority client CA (its Common Name's roles come from authority_clients); officers sign in (POST /api/v1/session) and use their session cookie, with the CSRF token on every change. A request with a body must be Content-Type application/json; a request with an Origin header naming another origin is refused. See docs/console.md."},
 "servers":[{"url":"https://127.0.0.1:8443"}],
 "paths": paths,
 "components":{"schemas":schemas,
   "securitySchemes":{"clientCertificate":{"type":"mutualTLS","description":"A client certificate chaining to authority_client_ca_file; its Common Name's roles come from authority_clients."},
     "officerSession":{"type":"apiKey","in":"cookie","name":"__Host-kpx-session","description":"A signed-in officer's session (POST /api/v1/session). Requests that change something also need the session's csrfToken in the X-CSRF-Token header."}}},
 "security":[{"clientCertificate":[]},{"officerSession":[]}]}
doc["openapi"]="3.1.0"  # mutualTLS needs 3.1
print(json.dumps(doc, indent=2))
