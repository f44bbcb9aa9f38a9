#include "node/bounds.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/timestamp.pb.h"
#include "google/protobuf/unknown_field_set.h"
#include "node/text.h"

namespace kpx::node {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

constexpr size_t kMaxStringBytes = 1024;
constexpr size_t kMaxRemarksBytes = 4096;
constexpr size_t kMaxReasonBytes = 2048;
constexpr size_t kMaxExtensionValueBytes = 16 * 1024;
constexpr size_t kMaxBytesField = 1024;
constexpr int kMaxRepeated = 1000;

struct TextRule {
  size_t max;
  Lines lines;
};

TextRule RuleFor(const FieldDescriptor& f) {
  const std::string& name = f.name();
  if (name == "remarks" || name == "remarks_en") return {kMaxRemarksBytes, Lines::kMany};
  if (name == "reason") return {kMaxReasonBytes, Lines::kOne};
  if (name == "value" && f.containing_type()->full_name() == "kpx.v1.Certificate.ExtensionsEntry") {
    return {kMaxExtensionValueBytes, Lines::kMany};
  }
  return {kMaxStringBytes, Lines::kOne};
}

std::string PathOf(const std::string& prefix, const FieldDescriptor& f, int index) {
  std::string p = prefix.empty() ? f.name() : absl::StrCat(prefix, ".", f.name());
  if (index >= 0) absl::StrAppend(&p, "[", index, "]");
  return p;
}

absl::Status CheckMessage(const Message& m, const std::string& path);

absl::Status CheckTimestamp(const Message& m, const std::string& path) {
  const auto* ts = google::protobuf::DynamicCastToGenerated<google::protobuf::Timestamp>(&m);
  if (ts == nullptr) return CheckMessage(m, path);  // a dynamic message: walk it
  if (ts->seconds() == 0 && ts->nanos() == 0) return absl::OkStatus();
  if (ts->nanos() < 0 || ts->nanos() >= 1'000'000'000) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": nanoseconds out of range"));
  }
  const absl::Time t = absl::FromUnixSeconds(ts->seconds());
  if (t < EarliestTime() || t >= LatestTime()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": time outside ", kEarliestYear, "-",
                                                   kLatestYear, " (", ts->seconds(), " s)"));
  }
  return absl::OkStatus();
}

// One value of field `f` (element `index` of a repeated field, or -1).
absl::Status CheckValue(const Message& m, const FieldDescriptor& f, int index,
                        const std::string& path) {
  const Reflection& r = *m.GetReflection();
  const bool rep = index >= 0;
  switch (f.cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string scratch;
      const std::string& v = rep ? r.GetRepeatedStringReference(m, &f, index, &scratch)
                                 : r.GetStringReference(m, &f, &scratch);
      if (f.type() == FieldDescriptor::TYPE_BYTES) {
        if (v.size() > kMaxBytesField) {
          return absl::InvalidArgumentError(
              absl::StrCat(path, " is ", v.size(), " bytes; at most ", kMaxBytesField));
        }
        return absl::OkStatus();
      }
      const TextRule rule = RuleFor(f);
      return CheckText(v, rule.max, rule.lines, path);
    }
    case FieldDescriptor::CPPTYPE_ENUM: {
      const int v = rep ? r.GetRepeatedEnumValue(m, &f, index) : r.GetEnumValue(m, &f);
      if (f.enum_type()->FindValueByNumber(v) == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": unknown value ", v));
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_MESSAGE: {
      const Message& sub = rep ? r.GetRepeatedMessage(m, &f, index) : r.GetMessage(m, &f);
      if (f.message_type()->full_name() == "google.protobuf.Timestamp") {
        return CheckTimestamp(sub, path);
      }
      return CheckMessage(sub, path);
    }
    default:
      return absl::OkStatus();  // numbers: their ranges are field-specific rules
  }
}

absl::Status CheckMessage(const Message& m, const std::string& path) {
  const Reflection& r = *m.GetReflection();
  if (r.GetUnknownFields(m).field_count() > 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.empty() ? m.GetDescriptor()->name() : path, ": field number ",
                     r.GetUnknownFields(m).field(0).number(), " is unknown to this node"));
  }
  std::vector<const FieldDescriptor*> fields;
  r.ListFields(m, &fields);
  for (const FieldDescriptor* f : fields) {
    if (!f->is_repeated()) {
      if (absl::Status s = CheckValue(m, *f, -1, PathOf(path, *f, -1)); !s.ok()) return s;
      continue;
    }
    const int n = r.FieldSize(m, f);
    if (n > kMaxRepeated) {
      return absl::InvalidArgumentError(
          absl::StrCat(PathOf(path, *f, -1), " has ", n, " elements; at most ", kMaxRepeated));
    }
    for (int i = 0; i < n; ++i) {
      if (absl::Status s = CheckValue(m, *f, i, PathOf(path, *f, i)); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Time EarliestTime() {
  return absl::FromCivil(absl::CivilSecond(kEarliestYear, 1, 1, 0, 0, 0), absl::UTCTimeZone());
}

absl::Time LatestTime() {
  return absl::FromCivil(absl::CivilSecond(kLatestYear + 1, 1, 1, 0, 0, 0), absl::UTCTimeZone());
}

absl::Status CheckBounds(const google::protobuf::Message& m) { return CheckMessage(m, ""); }

absl::Status CheckNoUnknownFields(const Message& m) {
  const Reflection& r = *m.GetReflection();
  if (r.GetUnknownFields(m).field_count() > 0) {
    return absl::InvalidArgumentError(absl::StrCat(m.GetDescriptor()->name(), ": field number ",
                                                   r.GetUnknownFields(m).field(0).number(),
                                                   " is unknown to this node"));
  }
  std::vector<const FieldDescriptor*> fields;
  r.ListFields(m, &fields);
  for (const FieldDescriptor* f : fields) {
    if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) continue;
    const int n = f->is_repeated() ? r.FieldSize(m, f) : 1;
    for (int i = 0; i < n; ++i) {
      const Message& sub = f->is_repeated() ? r.GetRepeatedMessage(m, f, i) : r.GetMessage(m, f);
      if (absl::Status s = CheckNoUnknownFields(sub); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace kpx::node
