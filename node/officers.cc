#include "node/officers.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "crypto/password.h"
#include "node/log.h"
#include "node/text.h"
#include "node/trust_list.h"
#include "node/util.h"

namespace kpx::node {
namespace {

constexpr size_t kMinName = 3;
constexpr size_t kMaxName = 32;
constexpr size_t kMaxFullName = 128;

bool ValidName(const std::string& name) {
  if (name.size() < kMinName || name.size() > kMaxName) return false;
  return name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789._-") == std::string::npos;
}

std::string Roles(const v1::Officer& o) {
  std::vector<std::string> names;
  for (int r : o.roles()) names.push_back(v1::Role_Name(static_cast<v1::Role>(r)));
  return absl::StrJoin(names, ",");
}

// A hash to compare against when the name is unknown, so that a wrong
// name costs as long as a wrong password.
const std::string& DecoyHash() {
  static const std::string* hash = [] {
    absl::StatusOr<std::string> h = crypto::HashPassword(crypto::RandomPassword());
    return new std::string(h.ok() ? *h : "");
  }();
  return *hash;
}

}  // namespace

v1::Officer WithoutSecrets(v1::Officer officer) {
  officer.clear_password_hash();
  officer.clear_totp_secret();
  return officer;
}

absl::Status OfficerBook::CheckNew(const v1::Officer& w) const {
  if (!ValidName(w.name())) {
    return absl::InvalidArgumentError(
        "officer name: 3 to 32 of a-z, 0-9, '.', '_', '-' (e.g. k.mokgosi)");
  }
  if (w.full_name().empty()) return absl::InvalidArgumentError("officer full name is required");
  if (absl::Status s = CheckText(w.full_name(), kMaxFullName, Lines::kOne, "officer full name");
      !s.ok()) {
    return s;
  }
  if (w.roles().empty()) return absl::InvalidArgumentError("an officer needs at least one role");
  for (int r : w.roles()) {
    if (r == v1::ROLE_UNSPECIFIED || !v1::Role_IsValid(r)) {
      return absl::InvalidArgumentError("officer role: EXPORTER, IMPORTER, AUDITOR or OPERATOR");
    }
  }
  const v1::Participant* self = ctx_.keyring->trust()->Find(ctx_.participant);
  if (self == nullptr || FindOffice(*self, w.office()) == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("officer office '", Printable(w.office(), 32), "' is not one of ",
                     ctx_.participant, "'s offices on the trust list (",
                     self == nullptr ? std::string("none") : OfficeCodes(*self), ")"));
  }
  return absl::OkStatus();
}

absl::Status OfficerBook::Write(const v1::Officer& officer, const std::string& detail,
                                const v1::Actor& by) {
  storage::Transition t;
  t.entry.set_kind(v1::OFFICER_CHANGED);
  *t.entry.mutable_recorded_at() = ToTimestamp(ctx_.Now());
  t.entry.set_detail(detail);
  *t.entry.mutable_actor() = by;
  t.officer = officer;
  absl::StatusOr<storage::Head> head = ctx_.ledger->Append(std::move(t));
  if (!head.ok()) return head.status();
  log::Info("officer_changed", {{"officer", officer.name()}, {"by", by.name()}, {"what", detail}});
  return absl::OkStatus();
}

absl::StatusOr<OfficerBook::Credentials> OfficerBook::Issue(v1::Officer officer, const char* what,
                                                            const v1::Actor& by) {
  Credentials c;
  c.password = crypto::RandomPassword();
  const std::string secret = crypto::NewTotpSecret();
  absl::StatusOr<std::string> hash = crypto::HashPassword(c.password);
  if (!hash.ok()) return hash.status();
  officer.set_password_hash(*hash);
  officer.set_totp_secret(secret);
  *officer.mutable_changed_at() = ToTimestamp(ctx_.Now());
  const std::string detail =
      absl::StrCat("officer '", officer.name(), "' (", officer.full_name(), ", office ",
                   officer.office(), ", roles ", Roles(officer), ") ", what);
  if (absl::Status s = Write(officer, detail, by); !s.ok()) return s;
  {
    absl::MutexLock l(&mu_);
    tries_.erase(officer.name());
  }
  c.totp_secret_base32 = crypto::TotpSecretBase32(secret);
  c.totp_uri = crypto::TotpUri(secret, absl::StrCat("kpx ", ctx_.participant), officer.name());
  c.officer = WithoutSecrets(std::move(officer));
  return c;
}

absl::StatusOr<OfficerBook::Credentials> OfficerBook::Add(const v1::Officer& wanted,
                                                          const v1::Actor& by) {
  if (absl::Status s = CheckNew(wanted); !s.ok()) return s;
  absl::MutexLock l(&write_mu_);
  absl::StatusOr<std::optional<v1::Officer>> existing = ctx_.ledger->GetOfficer(wanted.name());
  if (!existing.ok()) return existing.status();
  if (existing->has_value()) {
    return absl::AlreadyExistsError(absl::StrCat("officer '", wanted.name(), "' exists"));
  }
  v1::Officer o;
  o.set_name(wanted.name());
  o.set_full_name(wanted.full_name());
  o.set_office(wanted.office());
  *o.mutable_roles() = wanted.roles();
  o.set_generation(1);
  *o.mutable_created_at() = ToTimestamp(ctx_.Now());
  return Issue(std::move(o), "added", by);
}

absl::StatusOr<OfficerBook::Credentials> OfficerBook::Reset(const std::string& name,
                                                            const v1::Actor& by) {
  absl::MutexLock l(&write_mu_);
  absl::StatusOr<v1::Officer> o = Get(name);
  if (!o.ok()) return o.status();
  o->set_generation(o->generation() + 1);
  return Issue(*std::move(o), "given a new password and second factor", by);
}

absl::StatusOr<v1::Officer> OfficerBook::SetDisabled(const std::string& name, bool disabled,
                                                     const v1::Actor& by) {
  absl::MutexLock l(&write_mu_);
  absl::StatusOr<v1::Officer> o = Get(name);
  if (!o.ok()) return o.status();
  if (o->disabled() == disabled) return WithoutSecrets(*std::move(o));
  o->set_disabled(disabled);
  if (disabled) o->set_generation(o->generation() + 1);
  *o->mutable_changed_at() = ToTimestamp(ctx_.Now());
  const std::string detail =
      absl::StrCat("officer '", name, "' ", disabled ? "disabled" : "enabled");
  if (absl::Status s = Write(*o, detail, by); !s.ok()) return s;
  return WithoutSecrets(*std::move(o));
}

absl::StatusOr<std::vector<v1::Officer>> OfficerBook::List() const {
  absl::StatusOr<std::vector<v1::Officer>> all = ctx_.ledger->ListOfficers();
  if (!all.ok()) return all.status();
  for (v1::Officer& o : *all) o = WithoutSecrets(std::move(o));
  return all;
}

absl::StatusOr<v1::Officer> OfficerBook::Get(const std::string& name) const {
  if (!ValidName(name)) return absl::NotFoundError("no such officer");
  absl::StatusOr<std::optional<v1::Officer>> o = ctx_.ledger->GetOfficer(name);
  if (!o.ok()) return o.status();
  if (!o->has_value()) return absl::NotFoundError(absl::StrCat("no officer '", name, "'"));
  return **std::move(o);
}

absl::Status OfficerBook::Refuse(const std::string& name, absl::Time now, const std::string& why) {
  absl::MutexLock l(&mu_);
  Tries& t = tries_[name];
  --t.under_way;
  if (++t.failures >= kMaxFailures) {
    t.failures = 0;
    t.locked_until = now + kLockout;
    log::Warn("officer_locked", {{"officer", name}, {"until", absl::FormatTime(t.locked_until)}});
  }
  return absl::UnauthenticatedError(why);
}

absl::Status OfficerBook::Reserve(const std::string& name, absl::Time now) {
  absl::MutexLock l(&mu_);
  Tries& t = tries_[name];
  if (now < t.locked_until) {
    return absl::UnauthenticatedError(
        absl::StrCat("locked after too many wrong tries until ",
                     absl::FormatTime("%H:%M UTC", t.locked_until, absl::UTCTimeZone())));
  }
  if (t.failures + t.under_way >= kMaxFailures) {
    return absl::UnauthenticatedError("too many tries under way at once");
  }
  ++t.under_way;
  return absl::OkStatus();
}

absl::StatusOr<v1::Officer> OfficerBook::SignIn(const std::string& name,
                                                const std::string& password,
                                                const std::string& code) {
  const absl::Time now = ctx_.Now();
  absl::StatusOr<v1::Officer> o = Get(name);
  if (!o.ok()) {
    crypto::CheckPassword(password, DecoyHash());
    if (o.status().code() == absl::StatusCode::kNotFound) {
      return absl::UnauthenticatedError("no such officer");
    }
    return o.status();
  }
  if (absl::Status s = Reserve(name, now); !s.ok()) return s;
  const bool password_ok = crypto::CheckPassword(password, o->password_hash());
  absl::StatusOr<uint64_t> step = crypto::CheckTotp(o->totp_secret(), code, now);
  if (!password_ok) return Refuse(name, now, "wrong password");
  if (!step.ok()) return Refuse(name, now, "wrong or out-of-date code");
  if (o->disabled()) return Refuse(name, now, "the account is disabled");
  bool reused;
  {
    absl::MutexLock l(&mu_);
    Tries& t = tries_[name];
    reused = *step <= t.last_step;
    if (!reused) {
      t.failures = 0;
      --t.under_way;
      t.last_step = *step;
    }
  }
  // A code seen before: someone else may have read it.
  if (reused) return Refuse(name, now, "a code used already");
  return *std::move(o);
}

}  // namespace kpx::node
