// Helpers shared by the tests: temporary folders and a valid certificate.
#ifndef KPX_TESTS_TEST_UTIL_H_
#define KPX_TESTS_TEST_UTIL_H_

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kpx/v1/certificate.pb.h"
#include "node/rules.h"
#include "node/util.h"

namespace kpx::testing {

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

// A certificate from `exporter` to `importer` that meets every KP rule.
inline v1::Certificate ValidCertificate(const std::string& number, const std::string& exporter,
                                        const std::string& importer,
                                        absl::Time issued = absl::Now()) {
  v1::Certificate c;
  c.set_title(node::kKpTitle);
  c.set_statement(node::kKpStatement);
  c.set_number(number);
  c.set_exporting_participant(exporter);
  c.set_importing_participant(importer);
  c.add_origin_countries(exporter);
  *c.mutable_issued_at() = node::ToTimestamp(issued);
  *c.mutable_expires_at() = node::ToTimestamp(issued + absl::Hours(24 * 30));
  c.set_issuing_authority("Government Diamond Valuator");
  c.mutable_exporter()->set_name("Okavango Diamond Company");
  c.mutable_exporter()->set_address("Plot 63016, Gaborone, Botswana");
  c.mutable_importer()->set_name("Antwerp Rough Trading NV");
  c.mutable_importer()->set_address("Hoveniersstraat 2, 2018 Antwerpen, Belgium");
  v1::Parcel* p1 = c.add_parcels();
  p1->set_hs_code("7102.31");
  p1->set_carats_hundredths(125050);  // 1250.50 ct
  p1->set_value_usd_cents(31262500);  // USD 312,625.00
  v1::Parcel* p2 = c.add_parcels();
  p2->set_hs_code("7102.21");
  p2->set_carats_hundredths(40000);
  p2->set_value_usd_cents(1800000);
  c.set_number_of_parcels(2);
  c.set_total_carats_hundredths(165050);
  c.set_total_value_usd_cents(33062500);
  return c;
}

}  // namespace kpx::testing

#endif  // KPX_TESTS_TEST_UTIL_H_
