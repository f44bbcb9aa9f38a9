// libFuzzer target: the text and bounds rules every entrance and every
// exit applies (node/text.h, node/bounds.h), on any bytes.
//
// Checks, for the input as a string: Printable's output is always one
// line CheckText accepts, and leaves text CheckText accepts as it is; and,
// for the input as a MessageBody: CheckBounds never crashes, and once
// EscapeStrings has run every string of it is one printable line.
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>

#include "fuzz_util.h"
#include "kpx/v1/message.pb.h"
#include "node/bounds.h"
#include "node/text.h"

namespace {

using kpx::fuzz::Require;
using kpx::node::Lines;

constexpr size_t kAny = std::numeric_limits<size_t>::max();

void CheckStrings(const google::protobuf::Message& m) {
  const google::protobuf::Reflection& r = *m.GetReflection();
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  r.ListFields(m, &fields);
  for (const auto* f : fields) {
    const int n = f->is_repeated() ? r.FieldSize(m, f) : 1;
    for (int i = 0; i < n; ++i) {
      if (f->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) {
        CheckStrings(f->is_repeated() ? r.GetRepeatedMessage(m, f, i) : r.GetMessage(m, f));
      } else if (f->type() == google::protobuf::FieldDescriptor::TYPE_STRING) {
        const std::string v = f->is_repeated() ? r.GetRepeatedString(m, f, i) : r.GetString(m, f);
        Require(kpx::node::CheckText(v, kAny, Lines::kOne, "field").ok(), "escaped field");
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const std::string shown = kpx::node::Printable(input, 256);
  Require(kpx::node::CheckText(shown, kAny, Lines::kOne, "shown").ok(), "Printable is one line");
  if (kpx::node::CheckText(input, 256, Lines::kOne, "input").ok()) {
    Require(shown == input, "Printable leaves accepted text alone");
  }
  (void)kpx::node::CheckText(input, 4096, Lines::kMany, "input");
  (void)kpx::node::EscapeJsonControls(input);

  kpx::v1::MessageBody body;
  if (body.ParsePartialFromString(input)) {
    (void)kpx::node::CheckBounds(body);
    kpx::node::EscapeStrings(&body);
    CheckStrings(body);
  }
  return 0;
}
