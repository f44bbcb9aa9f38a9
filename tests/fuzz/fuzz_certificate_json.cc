// libFuzzer target: bytes as protobuf JSON for a kpx.v1.Certificate, read
// as kpxctl reads `kpxctl submit FILE` (JsonStringToMessage), then checked
// as the exporting node checks a submission (NormalizeCertificate, then the
// KP rules in node::ValidateCertificate against a trust list).
//
// Invariants checked: a certificate that passes the rules still passes
// after a binary round trip (what the importing node re-checks on receipt
// is the same certificate, serialized and parsed again), and normalising
// it again changes nothing.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "kpx/v1/certificate.pb.h"
#include "node/rules.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const kpx::fuzz::Federation* const federation = new kpx::fuzz::Federation();
  const kpx::node::TrustList& trust = *federation->trust();

  kpx::v1::Certificate cert;
  const std::string json(kpx::fuzz::AsView(data, size));
  if (!google::protobuf::util::JsonStringToMessage(json, &cert).ok()) return 0;
  if (!kpx::node::NormalizeCertificate(&cert).ok()) return 0;
  // The exporter is who the certificate claims, as for a node of that
  // Participant; "BW" when it names nobody.
  const std::string exporter =
      cert.exporting_participant().empty() ? "BW" : cert.exporting_participant();
  const absl::Status valid =
      kpx::node::ValidateCertificate(cert, exporter, trust, kpx::fuzz::FixedNow());
  if (!valid.ok()) return 0;

  kpx::v1::Certificate again;
  kpx::fuzz::Require(again.ParseFromString(cert.SerializeAsString()), "binary round trip parses");
  kpx::fuzz::Require(
      kpx::node::ValidateCertificate(again, exporter, trust, kpx::fuzz::FixedNow()).ok(),
      "a valid certificate stays valid after a binary round trip");
  kpx::v1::Certificate twice = cert;
  kpx::fuzz::Require(kpx::node::NormalizeCertificate(&twice).ok(), "normalising is idempotent");
  kpx::fuzz::Require(google::protobuf::util::MessageDifferencer::Equals(twice, cert),
                     "normalising a normalised certificate changes nothing");
  return 0;
}
