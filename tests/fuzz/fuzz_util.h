// Helpers shared by the libFuzzer targets: a fixed clock, a federation
// trust list with keys generated at start-up, and a temporary folder.
// Everything here is set up once per fuzzer process, never per input.
#ifndef KPX_TESTS_FUZZ_FUZZ_UTIL_H_
#define KPX_TESTS_FUZZ_FUZZ_UTIL_H_

#include <stdlib.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "crypto/crypto.h"
#include "kpx/v1/config.pb.h"
#include "node/envelope.h"
#include "node/trust_list.h"

namespace kpx::fuzz {

// The time every fuzzer runs at, so that an input means the same thing on
// every run (seed certificates are issued on 2026-12-31, seed X.509
// certificates are valid then).
inline absl::Time FixedNow() {
  return absl::FromCivil(absl::CivilSecond(2027, 1, 1, 12, 0, 0), absl::UTCTimeZone());
}

// Aborts with `what` when `ok` is false: a set-up failure is a broken
// fuzzer, not a finding, and must not be mistaken for one.
inline void Require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzzer set-up failed: %s\n", what);
    std::abort();
  }
}

// BW, AE, EU and US active, VE suspended; one Ed25519 key each (EU: ECDSA
// P-256), valid at any time; each with office HQ, and the EU with the
// import policy deploy/pki.sh gives it. Keys are generated per process.
class Federation {
 public:
  Federation() {
    for (const char* code : {"BW", "AE", "EU", "VE", "US"}) {
      const std::string c = code;
      auto alg = c == "EU" ? crypto::Algorithm::kEcdsaP256 : crypto::Algorithm::kEd25519;
      absl::StatusOr<crypto::PrivateKey> key = crypto::PrivateKey::Generate(alg);
      Require(key.ok(), "key generation");
      v1::Participant* p = proto_.add_participants();
      p->set_code(c);
      p->set_name("Participant " + c);
      p->set_status(c == "VE" ? v1::SUSPENDED : v1::ACTIVE);
      v1::Office* office = p->add_offices();  // as tests/test_util.h AddOffices
      office->set_code("HQ");
      office->set_name(c + " KP authority");
      if (c == "EU") {
        p->mutable_import_policy()->set_refuse_mixed_undisclosed(true);
        p->mutable_import_policy()->set_require_origin_shares(true);
      }
      v1::SigningKey* k = p->add_signing_keys();
      k->set_key_id(key->key_id());
      k->set_algorithm(node::ToProtoAlgorithm(alg));
      k->set_public_key_pem(key->public_key().ToPem());
      keys_.emplace(c, *std::move(key));
    }
    absl::StatusOr<std::shared_ptr<const node::TrustList>> trust =
        node::TrustList::FromProto(proto_);
    Require(trust.ok(), "trust list");
    trust_ = *std::move(trust);
  }

  const std::shared_ptr<const node::TrustList>& trust() const { return trust_; }
  const crypto::PrivateKey& key(const std::string& code) const { return keys_.at(code); }

 private:
  v1::TrustList proto_;
  std::map<std::string, crypto::PrivateKey> keys_;
  std::shared_ptr<const node::TrustList> trust_;
};

// A fresh folder under $TMPDIR, or else on tmpfs when there is one (the
// ledger fsyncs every append), removed on destruction.
class TempDir {
 public:
  TempDir() {
    std::error_code ec;
    std::filesystem::path base = "/dev/shm";
    if (std::getenv("TMPDIR") != nullptr || !std::filesystem::is_directory(base, ec)) {
      base = std::filesystem::temp_directory_path();
    }
    std::string tmpl = (base / "kpx-fuzz-XXXXXX").string();
    Require(::mkdtemp(tmpl.data()) != nullptr, "mkdtemp");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline std::string_view AsView(const uint8_t* data, size_t size) {
  return std::string_view(reinterpret_cast<const char*>(data), size);
}

}  // namespace kpx::fuzz

#endif  // KPX_TESTS_FUZZ_FUZZ_UTIL_H_
