// gateway::CheckConfig (`kpxd --check-config`) against a PKI made by
// deploy/pki.sh, and against broken variants of it: each problem is one
// line naming what is wrong.
#include "gateway/check_config.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "crypto/crypto.h"
#include "federation.h"

namespace kpx {
namespace {

using testing::GrpcFederation;

// Replaces `from` by `to` in `code`'s node.textpb.
void Edit(GrpcFederation& fed, const std::string& code, const std::string& from,
          const std::string& to) {
  const std::string path = fed.ConfigPath(code);
  std::string text = kpx::testing::Must(crypto::ReadFile(path));
  REQUIRE(text.find(from) != std::string::npos);
  absl::StrReplaceAll({{from, to}}, &text);
  std::ofstream(path, std::ios::trunc) << text;
}

std::vector<std::string> Check(GrpcFederation& fed, const std::string& code) {
  return gateway::CheckConfig(fed.ConfigPath(code), absl::Now());
}

bool Mentions(const std::vector<std::string>& problems, const std::string& a,
              const std::string& b) {
  for (const std::string& p : problems) {
    if (p.find(a) != std::string::npos && p.find(b) != std::string::npos) return true;
  }
  return false;
}

TEST_CASE("a config made by pki.sh checks out", "[check_config]") {
  GrpcFederation fed({"BW", "AE"});
  CHECK(Check(fed, "BW").empty());
  CHECK(Check(fed, "AE").empty());
  // Nothing was created: no ledger, no data folder.
  CHECK_FALSE(std::filesystem::exists(fed.dir() + "/BW/data"));
}

TEST_CASE("each broken part of a config is one line", "[check_config]") {
  GrpcFederation fed({"BW", "AE"});
  const std::string bw = fed.dir() + "/BW/";

  SECTION("a missing signing key file") {
    std::filesystem::remove(bw + "signing.key");
    const std::vector<std::string> p = Check(fed, "BW");
    INFO(absl::StrJoin(p, "\n"));
    REQUIRE(p.size() == 1);
    CHECK(Mentions(p, "signing_key_file", "signing.key"));
  }
  SECTION("a TLS key that is not the certificate's") {
    std::filesystem::copy_file(fed.dir() + "/AE/node.key", bw + "node.key",
                               std::filesystem::copy_options::overwrite_existing);
    const std::vector<std::string> p = Check(fed, "BW");
    INFO(absl::StrJoin(p, "\n"));
    REQUIRE(p.size() == 1);
    CHECK(Mentions(p, "tls_key_file", "not the private key of"));
  }
  SECTION("a signing key that is not on the trust list for the participant") {
    std::filesystem::copy_file(fed.dir() + "/AE/signing.key", bw + "signing.key",
                               std::filesystem::copy_options::overwrite_existing);
    const std::vector<std::string> p = Check(fed, "BW");
    INFO(absl::StrJoin(p, "\n"));
    REQUIRE(p.size() == 1);
    CHECK(Mentions(p, "signing keys", "BW"));
  }
  SECTION("bad ports, a damaged CA and a data folder without a parent: three lines") {
    Edit(fed, "BW", "peer_listen: \"127.0.0.1:", "peer_listen: \"127.0.0.1:99");
    Edit(fed, "BW", "data_dir: \"data\"", "data_dir: \"no/such/parent/data\"");
    std::ofstream(bw + "ca.pem", std::ios::trunc) << "-----BEGIN CERTIFICATE-----\nAAAA\n";
    Edit(fed, "BW", "metrics_listen: \"off\"", "metrics_listen: \"localhost\"");
    const std::vector<std::string> p = Check(fed, "BW");
    INFO(absl::StrJoin(p, "\n"));
    CHECK(p.size() == 4);
    CHECK(Mentions(p, "peer_listen", "port 0-65535"));
    CHECK(Mentions(p, "metrics_listen", "localhost"));
    CHECK(Mentions(p, "authority_client_ca_file", "ca.pem"));
    CHECK(Mentions(p, "data_dir", "does not exist"));
  }
  SECTION("a participant that is not on the trust list") {
    Edit(fed, "BW", "participant: \"BW\"", "participant: \"ZA\"");
    const std::vector<std::string> p = Check(fed, "BW");
    INFO(absl::StrJoin(p, "\n"));
    REQUIRE(p.size() == 1);
    CHECK(Mentions(p, "trust_list_file", "ZA is not a Participant"));
  }
  SECTION("a config that does not parse is the only line") {
    fed.AppendConfig("BW", "frobnicate: 1");
    const std::vector<std::string> p = Check(fed, "BW");
    REQUIRE(p.size() == 1);
    CHECK(Mentions(p, "node.textpb", "frobnicate"));
  }
}

}  // namespace
}  // namespace kpx
