// Helpers shared by the tests: temporary folders and a valid certificate.
#ifndef KPX_TESTS_TEST_UTIL_H_
#define KPX_TESTS_TEST_UTIL_H_

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "crypto/crypto.h"
#include "kpx/v1/certificate.pb.h"
#include "kpx/v1/config.pb.h"
#include "kpx/v1/message.pb.h"
#include "node/envelope.h"
#include "node/rules.h"
#include "node/util.h"

namespace kpx::testing {

// Entries a node writes on its first start before anything else: the one
// recording its bootstrap trust list (node/trust_book.h).
inline constexpr uint64_t kBootEntries = 1;

// The value of `v`; throws (a test failure naming the status) if it holds
// an error, so no test uses a StatusOr unchecked.
template <typename T>
T Must(absl::StatusOr<T> v) {
  if (!v.ok()) throw std::runtime_error("unexpected error: " + v.status().ToString());
  return *std::move(v);
}

// A fresh folder under /tmp, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "kpx-test-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  // Set KPX_KEEP_TEST_DIRS=1 to keep the folders for a post-mortem.
  ~TempDir() {
    if (std::getenv("KPX_KEEP_TEST_DIRS") != nullptr) return;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Polls `cond` every 50 ms until it holds or `seconds` pass; returns
// whether it held.
inline bool WaitFor(const std::function<bool()>& cond, int seconds = 20) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return cond();
}

// Lists `key` on `p` as one of its signing keys (no window); returns the
// entry, for a test to set not_before, not_after or revoked_at on.
inline v1::SigningKey* ListSigningKey(v1::Participant& p, const crypto::PrivateKey& key) {
  v1::SigningKey* k = p.add_signing_keys();
  k->set_key_id(key.key_id());
  k->set_algorithm(node::ToProtoAlgorithm(key.algorithm()));
  k->set_public_key_pem(key.public_key().ToPem());
  return k;
}

// Gives `p` the issuing office "HQ" that ValidCertificate names (and, for
// the EU, the Antwerp and Prague offices), as deploy/pki.sh does.
inline void AddOffices(v1::Participant& p) {
  v1::Office* hq = p.add_offices();
  hq->set_code("HQ");
  hq->set_name(p.code() + " KP authority");
  if (p.code() == "EU") {
    v1::Office* anr = p.add_offices();
    anr->set_code("ANR");
    anr->set_name("Antwerp Diamond Office");
    v1::Office* prg = p.add_offices();
    prg->set_code("PRG");
    prg->set_name("Prague Customs Office");
  }
}

// What an importing officer records when the shipment is found exactly as
// the certificate declares it.
inline v1::ImportFindings AsDeclared(const std::string& official = "Inspector A. Peeters") {
  v1::ImportFindings f;
  f.set_as_declared(true);
  f.set_official(official);
  return f;
}

// A realistic certificate from `exporter` to `importer` that meets every
// KP rule, in canonical form: two lines (gem quality from two origins with
// shares, industrial from one), 14 parcels, issued at the exporter's "HQ"
// office (AddOffices).
inline v1::Certificate ValidCertificate(const std::string& number, const std::string& exporter,
                                        const std::string& importer,
                                        absl::Time issued = absl::Now()) {
  v1::Certificate c;
  c.set_title(node::kKpTitle);
  c.set_statement(v1::KPCS);
  c.set_type(v1::STANDARD);
  c.set_number(number);
  c.set_exporting_participant(exporter);
  c.set_importing_participant(importer);
  *c.mutable_issued_at() = node::ToTimestamp(issued);
  *c.mutable_expires_at() = node::ToTimestamp(issued + absl::Hours(24 * 30));
  c.set_issuing_office("HQ");
  c.set_validating_official("K. Mokgosi, Government Diamond Valuator");
  v1::Party* ex = c.mutable_exporter();
  ex->set_name("Okavango Diamond Company");
  ex->set_address("Plot 63016, Gaborone");
  ex->set_country("BW");
  ex->set_registration("DL-0042");
  v1::Party* im = c.mutable_importer();
  im->set_name("Antwerp Rough Trading NV");
  im->set_address("Hoveniersstraat 2, 2018 Antwerpen");
  im->set_country("BE");
  v1::CertificateLine* l1 = c.add_lines();
  l1->set_hs_code("7102.31");
  l1->set_national_code("71023100");
  l1->set_carats_hundredths(125050);  // 1250.50 ct
  l1->set_value_usd_cents(31262500);  // USD 312,625.00
  v1::OriginShare* o1 = l1->mutable_origin()->add_countries();
  o1->set_country("BW");
  o1->set_share_basis_points(7500);  // 75 %
  v1::OriginShare* o2 = l1->mutable_origin()->add_countries();
  o2->set_country("NA");
  o2->set_share_basis_points(2500);
  v1::CertificateLine* l2 = c.add_lines();
  l2->set_hs_code("7102.21");
  l2->set_carats_hundredths(40000);
  l2->set_value_usd_cents(1800000);
  l2->mutable_origin()->add_countries()->set_country("BW");
  c.set_number_of_parcels(14);
  c.set_total_carats_hundredths(165050);
  c.set_total_value_usd_cents(33062500);
  c.mutable_shipment()->add_seal_numbers("BWS-000731");
  c.mutable_shipment()->set_transport_document("AWB 176-12345675");
  return c;
}

}  // namespace kpx::testing

#endif  // KPX_TESTS_TEST_UTIL_H_
