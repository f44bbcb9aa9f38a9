// kpx::node::OfficerBook: the people who use the console, their accounts
// and their sign-ins (docs/console.md, "Officers").
//
// An account names one officer of one office of this Participant (an
// office on the trust list) with its roles. It is stored in the ledger's
// `officers` family; every change is one synced batch with an
// OFFICER_CHANGED entry saying what changed and who changed it (the
// password and second-factor secret never enter the log).
//
// Add and Reset make a random password and a fresh TOTP secret and hand
// them back once; only their Argon2id hash and the secret are kept. A reset
// or a disable bumps the account's generation, which ends its sessions.
//
// SignIn needs the password and a current TOTP code, each code once (a
// reused code counts as a wrong try). After kMaxFailures wrong tries in a
// row the account is locked for kLockout, whatever is tried; tries under
// way count against the limit, so concurrent guesses cannot outrun it.
// Every refusal is UNAUTHENTICATED with a message saying why, for the
// log; clients are told only kRefusal. Failure counts and used codes are
// kept in memory (a restart clears them).
//
// Thread-safe. SignIn holds no lock while it checks a password; Add and
// Reset hash the new password under the lock that orders account changes,
// which sign-ins do not take.
#ifndef KPX_NODE_OFFICERS_H_
#define KPX_NODE_OFFICERS_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "kpx/v1/ledger.pb.h"
#include "node/context.h"

namespace kpx::node {

class OfficerBook {
 public:
  static constexpr int kMaxFailures = 5;
  static constexpr absl::Duration kLockout = absl::Minutes(15);
  // What a client is told of any refused sign-in (SignIn's own message,
  // which says why, is for the log).
  static constexpr char kRefusal[] = "name, password or code is wrong";

  // What Add and Reset hand out, once.
  struct Credentials {
    v1::Officer officer;  // without its secrets
    std::string password;
    std::string totp_secret_base32;
    std::string totp_uri;  // otpauth://, for an authenticator app's QR code
  };

  explicit OfficerBook(const NodeContext& ctx) : ctx_(ctx) {}

  // `wanted` gives name, full_name, office and roles. ALREADY_EXISTS if the
  // name is taken; INVALID_ARGUMENT naming the field otherwise.
  absl::StatusOr<Credentials> Add(const v1::Officer& wanted, const v1::Actor& by);
  // A new password and second factor; the account's sessions end and a
  // lock is lifted.
  absl::StatusOr<Credentials> Reset(const std::string& name, const v1::Actor& by);
  // Disables or enables the account; disabling ends its sessions.
  absl::StatusOr<v1::Officer> SetDisabled(const std::string& name, bool disabled,
                                          const v1::Actor& by);
  // Every account, without secrets.
  absl::StatusOr<std::vector<v1::Officer>> List() const;
  // The account as stored (with its generation), NOT_FOUND if none.
  absl::StatusOr<v1::Officer> Get(const std::string& name) const;

  // The account, if `password` and `code` are right and it may sign in
  // now; UNAUTHENTICATED otherwise.
  absl::StatusOr<v1::Officer> SignIn(const std::string& name, const std::string& password,
                                     const std::string& code);

 private:
  struct Tries {
    int failures = 0;
    int under_way = 0;  // sign-ins being checked now
    absl::Time locked_until = absl::InfinitePast();
    uint64_t last_step = 0;  // the newest TOTP step accepted
  };
  absl::StatusOr<Credentials> Issue(v1::Officer officer, const char* what, const v1::Actor& by);
  absl::Status Write(const v1::Officer& officer, const std::string& detail, const v1::Actor& by);
  // Counts a wrong try of `name` (locking it at kMaxFailures).
  absl::Status Refuse(const std::string& name, absl::Time now, const std::string& why);
  // Reserves a try of `name`, or says why it may not be tried now.
  absl::Status Reserve(const std::string& name, absl::Time now);
  absl::Status CheckNew(const v1::Officer& wanted) const;

  const NodeContext ctx_;
  absl::Mutex write_mu_;  // one account change at a time
  mutable absl::Mutex mu_;
  std::map<std::string, Tries> tries_ ABSL_GUARDED_BY(mu_);
};

// Without password hash and second-factor secret.
v1::Officer WithoutSecrets(v1::Officer officer);

}  // namespace kpx::node

#endif  // KPX_NODE_OFFICERS_H_
