// node/config: the defaults of NodeConfig (ApplyDefaults, the one place they
// are set), LoadConfig, and that docs/operations.md states the same defaults.
#include "node/config.h"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "crypto/crypto.h"
#include "google/protobuf/util/message_differencer.h"
#include "test_util.h"

namespace kpx {
namespace {

using google::protobuf::util::MessageDifferencer;
using node::ApplyDefaults;

std::string SourceDir() {
  const char* src = std::getenv("KPX_SOURCE_DIR");
  return src != nullptr ? src : ".";
}

// Every field set to something other than its default.
v1::NodeConfig AllGiven() {
  v1::NodeConfig c;
  c.set_participant("BW");
  c.set_data_dir("/srv/kpx");
  c.set_peer_listen("0.0.0.0:17400");
  c.set_authority_listen("10.0.0.1:17401");
  c.set_metrics_listen("off");
  c.set_console_listen("0.0.0.0:443");
  v1::ConsoleConfig* console = c.mutable_console();
  console->set_tls_cert_file("/etc/kpx/console.pem");
  console->set_tls_key_file("/etc/kpx/console.key");
  console->set_max_connections(4);
  console->set_max_connections_per_client(2);
  console->set_max_body_kib(64);
  c.set_overdue_days(30);
  c.set_confirm_grace_days(7);
  c.set_trust_poll_seconds(5);
  c.set_authority_name("Botswana Kimberley Process Authority");
  v1::DeliveryConfig* d = c.mutable_delivery();
  d->set_initial_backoff_ms(100);
  d->set_max_backoff_ms(5000);
  d->set_batch_size(1000);
  d->set_rpc_timeout_ms(2500);
  d->set_stuck_after_hours(24);
  v1::LimitsConfig* l = c.mutable_limits();
  l->set_max_connections(10);
  l->set_max_connections_per_client(2);
  l->set_descriptor_headroom(64);
  l->set_handshake_timeout_ms(1000);
  l->set_idle_timeout_ms(2000);
  l->set_max_streams_per_connection(8);
  l->set_max_threads(16);
  l->set_memory_mib(64);
  l->set_max_watch_streams(3);
  l->set_max_watch_streams_per_client(1);
  l->set_partner_mib_per_hour(5);
  return c;
}

TEST_CASE("ApplyDefaults fills every documented default", "[config]") {
  v1::NodeConfig c;
  ApplyDefaults(&c);
  CHECK(c.data_dir() == "data");
  CHECK(c.peer_listen() == "127.0.0.1:7400");
  CHECK(c.authority_listen() == "127.0.0.1:7401");
  CHECK(c.metrics_listen() == "127.0.0.1:9464");
  CHECK(c.console_listen() == "127.0.0.1:8443");
  CHECK(c.console().max_connections() == 32);
  CHECK(c.console().max_connections_per_client() == 8);
  CHECK(c.console().max_body_kib() == 1024);
  CHECK(c.overdue_days() == 15);
  CHECK(c.authority_name().empty());  // derived from participant, which is unset
  CHECK(c.delivery().initial_backoff_ms() == 500);
  CHECK(c.delivery().max_backoff_ms() == 60000);
  CHECK(c.delivery().batch_size() == 256);
  CHECK(c.delivery().rpc_timeout_ms() == 10000);
  CHECK(c.delivery().stuck_after_hours() == 168);
  CHECK(c.confirm_grace_days() == 30);
  CHECK(c.trust_poll_seconds() == 60);
  CHECK(c.limits().max_connections() == 1024);
  CHECK(c.limits().max_connections_per_client() == 64);
  CHECK(c.limits().descriptor_headroom() == 256);
  CHECK(c.limits().handshake_timeout_ms() == 10000);
  CHECK(c.limits().idle_timeout_ms() == 300000);
  CHECK(c.limits().max_streams_per_connection() == 64);
  CHECK(c.limits().max_threads() == 128);
  CHECK(c.limits().memory_mib() == 512);
  CHECK(c.limits().max_watch_streams() == 32);
  CHECK(c.limits().max_watch_streams_per_client() == 4);
  CHECK(c.limits().partner_mib_per_hour() == 64);
  // No default for these.
  CHECK(c.participant().empty());
  CHECK(c.tls_cert_file().empty());
  CHECK(c.trust_list_file().empty());
  CHECK(c.authority_clients().empty());

  v1::NodeConfig named;
  named.set_participant("AE");
  ApplyDefaults(&named);
  CHECK(named.authority_name() == "AE KP authority");
}

TEST_CASE("ApplyDefaults keeps given values and is idempotent", "[config]") {
  const v1::NodeConfig given = AllGiven();
  v1::NodeConfig c = given;
  ApplyDefaults(&c);
  CHECK(MessageDifferencer::Equals(c, given));

  v1::NodeConfig once;
  once.set_participant("EU");
  ApplyDefaults(&once);
  v1::NodeConfig twice = once;
  ApplyDefaults(&twice);
  CHECK(MessageDifferencer::Equals(once, twice));
}

TEST_CASE("ApplyDefaults cuts delivery.batch_size to what receivers accept", "[config]") {
  CHECK(node::kMaxDeliveryBatchSize == 1000);
  for (const auto& [given, kept] : std::map<uint32_t, uint32_t>{
           {1, 1}, {999, 999}, {1000, 1000}, {1001, 1000}, {1'000'000, 1000}}) {
    v1::NodeConfig c;
    c.mutable_delivery()->set_batch_size(given);
    ApplyDefaults(&c);
    INFO("batch_size " << given);
    CHECK(c.delivery().batch_size() == kept);
  }
}

TEST_CASE("LoadConfig fills the defaults and resolves paths", "[config]") {
  testing::TempDir dir;
  const std::string path = dir.Sub("node.textpb");
  std::ofstream(path) << "participant: \"BW\"\n"
                         "tls_cert_file: \"node.pem\"\n"
                         "tls_key_file: \"node.key\"\n"
                         "authority_client_ca_file: \"ca.pem\"\n"
                         "signing_key_file: \"signing.key\"\n"
                         "trust_list_file: \"/etc/kpx/trust-list.textpb\"\n"
                         "delivery { batch_size: 5000 }\n";
  absl::StatusOr<v1::NodeConfig> loaded = node::LoadConfig(path);
  INFO(loaded.status().ToString());
  REQUIRE(loaded.ok());
  CHECK(loaded->data_dir() == dir.Sub("data"));  // the default, next to the file
  CHECK(loaded->tls_cert_file() == dir.Sub("node.pem"));
  CHECK(loaded->trust_list_file() == "/etc/kpx/trust-list.textpb");
  CHECK(loaded->authority_name() == "BW KP authority");
  CHECK(loaded->delivery().batch_size() == 1000);
  CHECK(loaded->delivery().stuck_after_hours() == 168);
  // Loading applied exactly ApplyDefaults: applying it again changes nothing.
  v1::NodeConfig again = *loaded;
  ApplyDefaults(&again);
  CHECK(MessageDifferencer::Equals(again, *loaded));
}

TEST_CASE("the example config loads with its own values", "[config]") {
  absl::StatusOr<v1::NodeConfig> loaded =
      node::LoadConfig(SourceDir() + "/deploy/config/kpxd.example.textpb");
  INFO(loaded.status().ToString());
  REQUIRE(loaded.ok());
  CHECK(loaded->participant() == "BW");
  CHECK(loaded->authority_name() == "Botswana Kimberley Process Authority");
  CHECK(loaded->delivery().stuck_after_hours() == 168);
  CHECK(loaded->overdue_days() == 15);
}

// The value of a scalar field as docs/operations.md would write it.
std::string FieldText(const google::protobuf::Message& m,
                      const google::protobuf::FieldDescriptor* f) {
  const google::protobuf::Reflection* r = m.GetReflection();
  switch (f->cpp_type()) {
    case google::protobuf::FieldDescriptor::CPPTYPE_STRING:
      return r->GetString(m, f);
    case google::protobuf::FieldDescriptor::CPPTYPE_UINT32:
      return std::to_string(r->GetUInt32(m, f));
    default:
      return "";
  }
}

TEST_CASE("docs/operations.md states the defaults ApplyDefaults sets", "[config]") {
  // "| `name` | default | what |": the default's first word, unquoted.
  std::map<std::string, std::string> documented;
  std::istringstream ops(kpx::testing::Must(crypto::ReadFile(SourceDir() + "/docs/operations.md")));
  for (std::string line; std::getline(ops, line);) {
    if (line.rfind("| `", 0) != 0) continue;
    const size_t name_end = line.find("` |", 3);
    if (name_end == std::string::npos) continue;
    const std::string name = line.substr(3, name_end - 3);
    std::string rest = line.substr(name_end + 3);
    const std::string cell(absl::StripAsciiWhitespace(rest.substr(0, rest.find(" |"))));
    absl::string_view value = cell;
    value = value.substr(0, value.find(" ("));
    absl::ConsumePrefix(&value, "`");
    absl::ConsumeSuffix(&value, "`");
    documented.emplace(name, std::string(value));
  }
  v1::NodeConfig defaults;
  defaults.set_participant("BW");
  ApplyDefaults(&defaults);
  size_t compared = 0;
  auto check = [&](const google::protobuf::Message& m, const std::string& prefix) {
    const google::protobuf::Descriptor* d = m.GetDescriptor();
    for (int i = 0; i < d->field_count(); ++i) {
      const google::protobuf::FieldDescriptor* f = d->field(i);
      if (f->is_repeated() || f->name() == "participant") continue;
      const std::string name = prefix + f->name();
      INFO(name);
      auto it = documented.find(name);
      if (it == documented.end() ||
          f->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) {
        continue;  // every field's presence is checked in node_test
      }
      if (it->second == "required") {
        CHECK(FieldText(m, f).empty());
        continue;
      }
      CHECK(absl::StrReplaceAll(it->second, {{"<participant>", "BW"}}) == FieldText(m, f));
      ++compared;
    }
  };
  check(defaults, "");
  check(defaults.delivery(), "delivery.");
  CHECK(compared == 14);  // every defaulted field
}

}  // namespace
}  // namespace kpx
