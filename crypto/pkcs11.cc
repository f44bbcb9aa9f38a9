#include "crypto/pkcs11.h"

#include <dlfcn.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <p11-kit/pkcs11.h>

#include <map>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "crypto/openssl_util.h"

namespace kpx::crypto {
namespace {

using internal::Absl;
using internal::Free;

// ------------------------------------------------------------------ errors

std::string_view CkrName(CK_RV rv) {
  switch (rv) {
#define KPX_CKR(name) \
  case name:          \
    return #name;
    KPX_CKR(CKR_OK)
    KPX_CKR(CKR_HOST_MEMORY)
    KPX_CKR(CKR_SLOT_ID_INVALID)
    KPX_CKR(CKR_GENERAL_ERROR)
    KPX_CKR(CKR_FUNCTION_FAILED)
    KPX_CKR(CKR_ARGUMENTS_BAD)
    KPX_CKR(CKR_CANT_LOCK)
    KPX_CKR(CKR_ATTRIBUTE_SENSITIVE)
    KPX_CKR(CKR_ATTRIBUTE_TYPE_INVALID)
    KPX_CKR(CKR_DATA_INVALID)
    KPX_CKR(CKR_DATA_LEN_RANGE)
    KPX_CKR(CKR_DEVICE_ERROR)
    KPX_CKR(CKR_DEVICE_MEMORY)
    KPX_CKR(CKR_DEVICE_REMOVED)
    KPX_CKR(CKR_FUNCTION_CANCELED)
    KPX_CKR(CKR_FUNCTION_NOT_SUPPORTED)
    KPX_CKR(CKR_KEY_HANDLE_INVALID)
    KPX_CKR(CKR_KEY_TYPE_INCONSISTENT)
    KPX_CKR(CKR_KEY_FUNCTION_NOT_PERMITTED)
    KPX_CKR(CKR_MECHANISM_INVALID)
    KPX_CKR(CKR_MECHANISM_PARAM_INVALID)
    KPX_CKR(CKR_OBJECT_HANDLE_INVALID)
    KPX_CKR(CKR_OPERATION_ACTIVE)
    KPX_CKR(CKR_OPERATION_NOT_INITIALIZED)
    KPX_CKR(CKR_PIN_INCORRECT)
    KPX_CKR(CKR_PIN_INVALID)
    KPX_CKR(CKR_PIN_LEN_RANGE)
    KPX_CKR(CKR_PIN_EXPIRED)
    KPX_CKR(CKR_PIN_LOCKED)
    KPX_CKR(CKR_SESSION_CLOSED)
    KPX_CKR(CKR_SESSION_COUNT)
    KPX_CKR(CKR_SESSION_HANDLE_INVALID)
    KPX_CKR(CKR_TOKEN_NOT_PRESENT)
    KPX_CKR(CKR_TOKEN_NOT_RECOGNIZED)
    KPX_CKR(CKR_USER_ALREADY_LOGGED_IN)
    KPX_CKR(CKR_USER_NOT_LOGGED_IN)
    KPX_CKR(CKR_USER_PIN_NOT_INITIALIZED)
    KPX_CKR(CKR_USER_TYPE_INVALID)
    KPX_CKR(CKR_USER_ANOTHER_ALREADY_LOGGED_IN)
    KPX_CKR(CKR_BUFFER_TOO_SMALL)
    KPX_CKR(CKR_CRYPTOKI_NOT_INITIALIZED)
    KPX_CKR(CKR_CRYPTOKI_ALREADY_INITIALIZED)
    KPX_CKR(CKR_CURVE_NOT_SUPPORTED)
    KPX_CKR(CKR_FUNCTION_REJECTED)
#undef KPX_CKR
    default:
      return "CKR_(other)";
  }
}

absl::StatusCode CodeFor(CK_RV rv) {
  switch (rv) {
    case CKR_PIN_INCORRECT:
    case CKR_PIN_INVALID:
    case CKR_PIN_LEN_RANGE:
    case CKR_PIN_EXPIRED:
    case CKR_PIN_LOCKED:
    case CKR_USER_PIN_NOT_INITIALIZED:
    case CKR_KEY_FUNCTION_NOT_PERMITTED:
      return absl::StatusCode::kPermissionDenied;
    case CKR_DEVICE_ERROR:
    case CKR_DEVICE_MEMORY:
    case CKR_DEVICE_REMOVED:
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_TOKEN_NOT_RECOGNIZED:
    case CKR_SESSION_CLOSED:
    case CKR_SESSION_COUNT:
    case CKR_SESSION_HANDLE_INVALID:
      return absl::StatusCode::kUnavailable;
    default:
      return absl::StatusCode::kInternal;
  }
}

// "PKCS#11 C_Login: CKR_PIN_INCORRECT (0xa0)".
absl::Status CkError(std::string_view call, CK_RV rv) {
  return absl::Status(CodeFor(rv), absl::StrCat("PKCS#11 ", Absl(call), ": ", Absl(CkrName(rv)),
                                                " (0x", absl::Hex(rv), ")"));
}

// --------------------------------------------------------------- the URI

absl::StatusOr<std::string> PercentDecode(std::string_view name, std::string_view in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    if (i + 2 >= in.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("PKCS#11 URI: bad percent-encoding in ", Absl(name)));
    }
    int hi = hex(in[i + 1]), lo = hex(in[i + 2]);
    if (hi < 0 || lo < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("PKCS#11 URI: bad percent-encoding in ", Absl(name)));
    }
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

bool HasControl(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

// Strips "file:" and requires an absolute path without control characters.
absl::StatusOr<std::string> AbsolutePath(std::string_view name, std::string value) {
  if (value.rfind("file://", 0) == 0) {
    value.erase(0, 7);
  } else if (value.rfind("file:", 0) == 0) {
    value.erase(0, 5);
  }
  if (value.empty() || value[0] != '/' || HasControl(value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("PKCS#11 URI: ", Absl(name), " must be an absolute path"));
  }
  return value;
}

// The field of `out` that `name` selects, or null if `name` is not an
// attribute kpx accepts in that part of the URI.
std::string* Field(Pkcs11Uri* out, bool query, std::string_view name) {
  if (!query) {
    if (name == "token") return &out->token;
    if (name == "object") return &out->object;
    if (name == "id") return &out->id;
  } else {
    if (name == "module-path") return &out->module_path;
    if (name == "pin-source") return &out->pin_source;
    if (name == "pin-value") return &out->pin_value;
  }
  return nullptr;
}

absl::Status ParseAttributes(std::string_view part, char sep, bool query, Pkcs11Uri* out,
                             bool* saw_type) {
  if (part.empty()) return absl::OkStatus();
  for (absl::string_view attr : absl::StrSplit(Absl(part), sep)) {
    size_t eq = attr.find('=');
    if (eq == absl::string_view::npos || eq == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("PKCS#11 URI: attribute '", attr.substr(0, 40), "' has no value"));
    }
    std::string_view name(attr.data(), eq);
    std::string_view raw(attr.data() + eq + 1, attr.size() - eq - 1);
    absl::StatusOr<std::string> value = PercentDecode(name, raw);
    if (!value.ok()) return value.status();
    if (!query && name == "type") {
      if (*value != "private") {
        return absl::InvalidArgumentError("PKCS#11 URI: type must be 'private' for a signing key");
      }
      *saw_type = true;
      continue;
    }
    std::string* field = Field(out, query, name);
    if (field == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("PKCS#11 URI: unsupported ",
                                                     query ? "query" : "path", " attribute '",
                                                     Absl(name.substr(0, 40)), "'"));
    }
    if (!field->empty() || value->empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("PKCS#11 URI: attribute '", Absl(name), "' is empty or given twice"));
    }
    if (name != "id" && HasControl(*value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("PKCS#11 URI: control character in '", Absl(name), "'"));
    }
    *field = *std::move(value);
  }
  return absl::OkStatus();
}

}  // namespace

bool IsPkcs11Uri(std::string_view location) { return location.rfind("pkcs11:", 0) == 0; }

std::string RedactPkcs11Uri(std::string_view uri) {
  std::string out(uri);
  size_t q = out.find('?');
  if (!IsPkcs11Uri(out) || q == std::string::npos) return out;
  size_t pos = q;
  while ((pos = out.find("pin-value=", pos)) != std::string::npos) {
    if (out[pos - 1] != '?' && out[pos - 1] != '&') {
      pos += 10;
      continue;
    }
    size_t start = pos + 10, end = out.find('&', start);
    out.replace(start, end == std::string::npos ? std::string::npos : end - start, "***");
    pos = start + 3;
  }
  return out;
}

absl::StatusOr<Pkcs11Uri> ParsePkcs11Uri(std::string_view uri) {
  if (!IsPkcs11Uri(uri)) return absl::InvalidArgumentError("not a PKCS#11 URI (pkcs11:...)");
  std::string_view rest = uri.substr(7);
  size_t q = rest.find('?');
  std::string_view path = rest.substr(0, q);
  std::string_view query = q == std::string_view::npos ? std::string_view() : rest.substr(q + 1);
  Pkcs11Uri out;
  bool saw_type = false;
  if (absl::Status s = ParseAttributes(path, ';', false, &out, &saw_type); !s.ok()) return s;
  if (absl::Status s = ParseAttributes(query, '&', true, &out, &saw_type); !s.ok()) return s;
  if (out.token.empty()) return absl::InvalidArgumentError("PKCS#11 URI: token= is required");
  if (out.object.empty() && out.id.empty()) {
    return absl::InvalidArgumentError("PKCS#11 URI: object= or id= is required");
  }
  if (out.module_path.empty()) {
    return absl::InvalidArgumentError("PKCS#11 URI: module-path= is required");
  }
  absl::StatusOr<std::string> module = AbsolutePath("module-path", out.module_path);
  if (!module.ok()) return module.status();
  out.module_path = *std::move(module);
  if (out.pin_source.empty() == out.pin_value.empty()) {
    return absl::InvalidArgumentError(
        "PKCS#11 URI: exactly one of pin-source= or pin-value= is required");
  }
  if (!out.pin_source.empty()) {
    absl::StatusOr<std::string> pin = AbsolutePath("pin-source", out.pin_source);
    if (!pin.ok()) return pin.status();
    out.pin_source = *std::move(pin);
  }
  return out;
}

// ------------------------------------------------------------ the module

namespace {

// One loaded and initialized PKCS#11 module, shared by every signer that
// names the same module-path.
class Module {
 public:
  static absl::StatusOr<std::shared_ptr<Module>> Get(const std::string& path);
  ~Module() {
    if (initialized_) functions_->C_Finalize(nullptr);
    dlclose(handle_);
  }
  CK_FUNCTION_LIST* f() const { return functions_; }

 private:
  Module(void* handle, CK_FUNCTION_LIST* functions) : handle_(handle), functions_(functions) {}
  void* handle_;
  CK_FUNCTION_LIST* functions_;
  bool initialized_ = false;  // by us, so ours to finalize
};

absl::StatusOr<std::shared_ptr<Module>> Module::Get(const std::string& path) {
  static absl::Mutex* mu = new absl::Mutex;
  static auto* loaded = new std::map<std::string, std::weak_ptr<Module>>;
  absl::MutexLock lock(mu);
  if (std::shared_ptr<Module> m = (*loaded)[path].lock()) return m;
  // RTLD_NODELETE: the module's code stays mapped after dlclose (it is
  // finalized, and loaded again by the next key): a module may keep
  // threads or atexit handlers, and leak reports can still name it.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (handle == nullptr) {
    const char* why = dlerror();
    return absl::UnavailableError(
        absl::StrCat("PKCS#11 module ", path, " cannot be loaded: ", why ? why : "dlopen failed"));
  }
  auto get_list = reinterpret_cast<CK_C_GetFunctionList>(dlsym(handle, "C_GetFunctionList"));
  CK_FUNCTION_LIST* functions = nullptr;
  if (get_list == nullptr) {
    dlclose(handle);
    return absl::UnavailableError(
        absl::StrCat(path, " is not a PKCS#11 module (no C_GetFunctionList)"));
  }
  if (CK_RV rv = get_list(&functions); rv != CKR_OK || functions == nullptr) {
    dlclose(handle);
    return CkError("C_GetFunctionList", rv);
  }
  std::shared_ptr<Module> m(new Module(handle, functions));
  CK_C_INITIALIZE_ARGS args = {};
  args.flags = CKF_OS_LOCKING_OK;
  CK_RV rv = functions->C_Initialize(&args);
  // Already initialized: someone else in this process loaded it (e.g. under
  // another path); use it, and leave finalizing to them.
  if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) return CkError("C_Initialize", rv);
  m->initialized_ = rv == CKR_OK;
  (*loaded)[path] = m;
  return m;
}

// The slot holding the token labelled `label` (CK_TOKEN_INFO pads with blanks).
absl::StatusOr<CK_SLOT_ID> FindSlot(CK_FUNCTION_LIST* f, const std::string& label) {
  CK_ULONG count = 0;
  if (CK_RV rv = f->C_GetSlotList(CK_TRUE, nullptr, &count); rv != CKR_OK) {
    return CkError("C_GetSlotList", rv);
  }
  std::vector<CK_SLOT_ID> slots(count);
  if (CK_RV rv = f->C_GetSlotList(CK_TRUE, slots.data(), &count); rv != CKR_OK) {
    return CkError("C_GetSlotList", rv);
  }
  slots.resize(count);
  for (CK_SLOT_ID slot : slots) {
    CK_TOKEN_INFO info;
    if (f->C_GetTokenInfo(slot, &info) != CKR_OK) continue;
    std::string_view have(reinterpret_cast<const char*>(info.label), sizeof(info.label));
    while (!have.empty() && (have.back() == ' ' || have.back() == '\0')) have.remove_suffix(1);
    if (have == label) return slot;
  }
  return absl::NotFoundError(absl::StrCat("PKCS#11: no token labelled '", label, "'"));
}

CK_ATTRIBUTE Attr(CK_ATTRIBUTE_TYPE type, const void* value, CK_ULONG len) {
  CK_ATTRIBUTE a;
  a.type = type;
  a.pValue = const_cast<void*>(value);
  a.ulValueLen = len;
  return a;
}

// The one object of `cls` with the URI's label and/or id.
absl::StatusOr<CK_OBJECT_HANDLE> FindObject(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE s,
                                            const Pkcs11Uri& uri, CK_OBJECT_CLASS cls) {
  std::vector<CK_ATTRIBUTE> want = {Attr(CKA_CLASS, &cls, sizeof(cls))};
  if (!uri.object.empty()) want.push_back(Attr(CKA_LABEL, uri.object.data(), uri.object.size()));
  if (!uri.id.empty()) want.push_back(Attr(CKA_ID, uri.id.data(), uri.id.size()));
  if (CK_RV rv = f->C_FindObjectsInit(s, want.data(), want.size()); rv != CKR_OK) {
    return CkError("C_FindObjectsInit", rv);
  }
  CK_OBJECT_HANDLE found[2];
  CK_ULONG n = 0;
  CK_RV rv = f->C_FindObjects(s, found, 2, &n);
  f->C_FindObjectsFinal(s);
  if (rv != CKR_OK) return CkError("C_FindObjects", rv);
  const char* what = cls == CKO_PRIVATE_KEY ? "private" : "public";
  const std::string name = uri.object.empty() ? absl::StrCat("id ", HexEncode(uri.id))
                                              : absl::StrCat("'", uri.object, "'");
  if (n == 0) {
    return absl::NotFoundError(
        absl::StrCat("PKCS#11: no ", what, " key ", name, " in token '", uri.token, "'"));
  }
  if (n > 1) {
    return absl::InvalidArgumentError(absl::StrCat("PKCS#11: several ", what, " keys ", name,
                                                   " in token '", uri.token,
                                                   "'; name one by object= and id="));
  }
  return found[0];
}

// An attribute's bytes (at most 256: EC parameters and points are small).
absl::StatusOr<std::string> GetAttribute(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE s,
                                         CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type) {
  std::string value(256, '\0');
  CK_ATTRIBUTE a = Attr(type, value.data(), value.size());
  if (CK_RV rv = f->C_GetAttributeValue(s, o, &a, 1); rv != CKR_OK) {
    return CkError("C_GetAttributeValue", rv);
  }
  if (a.ulValueLen == CK_UNAVAILABLE_INFORMATION || a.ulValueLen > value.size()) {
    return absl::InvalidArgumentError("PKCS#11: key attribute unavailable or too large");
  }
  value.resize(a.ulValueLen);
  return value;
}

// DER of the curve OIDs, and the name SoftHSM may give Ed25519 instead.
constexpr std::string_view kP256Oid("\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07", 10);
constexpr std::string_view kEd25519Oid("\x06\x03\x2b\x65\x70", 5);
constexpr std::string_view kEd25519Name(
    "\x13\x0c"
    "edwards25519",
    14);

// CKA_EC_POINT is a DER OCTET STRING around the point; some tokens give
// the point bare. Returns the point if it has `size` bytes either way.
std::optional<std::string_view> Point(std::string_view ec_point, size_t size) {
  if (ec_point.size() == size + 2 && ec_point[0] == 0x04 &&
      static_cast<unsigned char>(ec_point[1]) == size) {
    return ec_point.substr(2);
  }
  if (ec_point.size() == size) return ec_point;
  return std::nullopt;
}

absl::StatusOr<std::shared_ptr<EVP_PKEY>> PublicFromPoint(Algorithm a, std::string_view ec_point) {
  std::optional<std::string_view> p = Point(ec_point, a == Algorithm::kEd25519 ? 32 : 65);
  if (!p) return absl::InvalidArgumentError("PKCS#11: public key CKA_EC_POINT has a bad length");
  const auto* bytes = reinterpret_cast<const unsigned char*>(p->data());
  EVP_PKEY* key = nullptr;
  if (a == Algorithm::kEd25519) {
    key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, bytes, p->size());
  } else {
    std::unique_ptr<EVP_PKEY_CTX, Free<EVP_PKEY_CTX_free>> ctx(
        EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
    char group[] = "prime256v1";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY,
                                          const_cast<unsigned char*>(bytes), p->size()),
        OSSL_PARAM_construct_end()};
    if (ctx == nullptr || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
        EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params) != 1) {
      key = nullptr;
    }
  }
  if (key == nullptr) return internal::InvalidWithOpenSsl("PKCS#11: public key point");
  return std::shared_ptr<EVP_PKEY>(key, EVP_PKEY_free);
}

// The key's algorithm from CKA_KEY_TYPE and the public key's CKA_EC_PARAMS.
absl::StatusOr<Algorithm> KeyAlgorithm(CK_KEY_TYPE type, std::string_view params) {
  if (type == CKK_EC_EDWARDS && (params == kEd25519Oid || params == kEd25519Name)) {
    return Algorithm::kEd25519;
  }
  if (type == CKK_EC && params == kP256Oid) return Algorithm::kEcdsaP256;
  return absl::InvalidArgumentError(
      "PKCS#11: the key is neither Ed25519 nor ECDSA P-256; only those are accepted");
}

absl::StatusOr<std::string> ReadPin(const Pkcs11Uri& uri) {
  if (!uri.pin_value.empty()) return uri.pin_value;
  absl::StatusOr<std::string> pin = ReadFile(uri.pin_source);
  if (!pin.ok()) return pin.status();
  if (!pin->empty() && pin->back() == '\n') pin->pop_back();
  if (!pin->empty() && pin->back() == '\r') pin->pop_back();
  if (pin->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("PKCS#11 PIN file ", uri.pin_source, " is empty"));
  }
  return pin;
}

// r||s (32 bytes each) as a DER ECDSA-Sig-Value, as OpenSSL signs.
absl::StatusOr<std::string> DerFromRaw(std::string_view raw) {
  std::unique_ptr<ECDSA_SIG, Free<ECDSA_SIG_free>> sig(ECDSA_SIG_new());
  const auto* p = reinterpret_cast<const unsigned char*>(raw.data());
  BIGNUM* r = BN_bin2bn(p, 32, nullptr);
  BIGNUM* s = BN_bin2bn(p + 32, 32, nullptr);
  if (sig == nullptr || r == nullptr || s == nullptr || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    return internal::InternalWithOpenSsl("ECDSA_SIG");
  }
  int len = i2d_ECDSA_SIG(sig.get(), nullptr);
  if (len <= 0) return internal::InternalWithOpenSsl("i2d_ECDSA_SIG");
  std::string der(static_cast<size_t>(len), '\0');
  unsigned char* out = reinterpret_cast<unsigned char*>(der.data());
  if (i2d_ECDSA_SIG(sig.get(), &out) != len) return internal::InternalWithOpenSsl("i2d_ECDSA_SIG");
  return der;
}

bool SessionLost(CK_RV rv) {
  switch (rv) {
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_SESSION_CLOSED:
    case CKR_USER_NOT_LOGGED_IN:
    case CKR_KEY_HANDLE_INVALID:
    case CKR_OBJECT_HANDLE_INVALID:
    case CKR_DEVICE_REMOVED:
    case CKR_TOKEN_NOT_PRESENT:
      return true;
    default:
      return false;
  }
}

}  // namespace

// ------------------------------------------------------------ the signer

struct Pkcs11Signer::State {
  // Last use: no other thread can hold `mu`.
  ~State() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    Close();
    OPENSSL_cleanse(pin.data(), pin.size());
  }
  // Opens a session on the token, logs in and finds the private key.
  absl::Status Connect() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  void Close() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (session != CK_INVALID_HANDLE) module->f()->C_CloseSession(session);
    session = CK_INVALID_HANDLE;
  }
  // One C_SignInit + C_Sign of `data` into `out` (64 bytes); the CK_RV.
  CK_RV SignOnce(std::string_view data, std::string* out, const char** call)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  std::shared_ptr<Module> module;  // outlives the session
  Pkcs11Uri uri;
  std::string pin;
  CK_MECHANISM_TYPE mechanism = CKM_EDDSA;
  absl::Mutex mu;  // guards the session for its whole use
  CK_SESSION_HANDLE session ABSL_GUARDED_BY(mu) = CK_INVALID_HANDLE;
  CK_OBJECT_HANDLE key ABSL_GUARDED_BY(mu) = CK_INVALID_HANDLE;
};

absl::Status Pkcs11Signer::State::Connect() {
  CK_FUNCTION_LIST* f = module->f();
  absl::StatusOr<CK_SLOT_ID> slot = FindSlot(f, uri.token);
  if (!slot.ok()) return slot.status();
  if (CK_RV rv = f->C_OpenSession(*slot, CKF_SERIAL_SESSION, nullptr, nullptr, &session);
      rv != CKR_OK) {
    session = CK_INVALID_HANDLE;
    return CkError("C_OpenSession", rv);
  }
  CK_RV rv = f->C_Login(session, CKU_USER, reinterpret_cast<CK_UTF8CHAR*>(pin.data()), pin.size());
  // The login is per application and token: another key on the same token
  // may have logged in already.
  if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
    Close();
    return CkError(absl::StrCat("C_Login to token '", uri.token, "'"), rv);
  }
  absl::StatusOr<CK_OBJECT_HANDLE> found = FindObject(f, session, uri, CKO_PRIVATE_KEY);
  if (!found.ok()) {
    Close();
    return found.status();
  }
  key = *found;
  return absl::OkStatus();
}

CK_RV Pkcs11Signer::State::SignOnce(std::string_view data, std::string* out, const char** call) {
  CK_FUNCTION_LIST* f = module->f();
  CK_MECHANISM mech = {mechanism, nullptr, 0};
  *call = "C_SignInit";
  if (CK_RV rv = f->C_SignInit(session, &mech, key); rv != CKR_OK) return rv;
  out->assign(64, '\0');
  CK_ULONG len = out->size();
  *call = "C_Sign";
  CK_RV rv = f->C_Sign(session, reinterpret_cast<CK_BYTE*>(const_cast<char*>(data.data())),
                       data.size(), reinterpret_cast<CK_BYTE*>(out->data()), &len);
  if (rv == CKR_OK && len != 64) rv = CKR_SIGNATURE_LEN_RANGE;
  return rv;
}

Pkcs11Signer::~Pkcs11Signer() = default;

absl::StatusOr<std::shared_ptr<Pkcs11Signer>> Pkcs11Signer::Open(const Pkcs11Uri& uri) {
  auto state = std::make_unique<State>();
  state->uri = uri;
  absl::StatusOr<std::string> pin = ReadPin(uri);
  if (!pin.ok()) return pin.status();
  state->pin = *std::move(pin);
  absl::StatusOr<std::shared_ptr<Module>> module = Module::Get(uri.module_path);
  if (!module.ok()) return module.status();
  state->module = *std::move(module);
  // Not shared yet; the lock is for the annotations' sake.
  absl::MutexLock lock(&state->mu);
  if (absl::Status s = state->Connect(); !s.ok()) return s;
  CK_FUNCTION_LIST* f = state->module->f();
  CK_KEY_TYPE type = 0;
  CK_ATTRIBUTE a = Attr(CKA_KEY_TYPE, &type, sizeof(type));
  if (CK_RV rv = f->C_GetAttributeValue(state->session, state->key, &a, 1); rv != CKR_OK) {
    return CkError("C_GetAttributeValue(CKA_KEY_TYPE)", rv);
  }
  absl::StatusOr<CK_OBJECT_HANDLE> pub = FindObject(f, state->session, uri, CKO_PUBLIC_KEY);
  if (!pub.ok()) return pub.status();
  absl::StatusOr<std::string> params = GetAttribute(f, state->session, *pub, CKA_EC_PARAMS);
  if (!params.ok()) return params.status();
  absl::StatusOr<Algorithm> algorithm = KeyAlgorithm(type, *params);
  if (!algorithm.ok()) return algorithm.status();
  absl::StatusOr<std::string> point = GetAttribute(f, state->session, *pub, CKA_EC_POINT);
  if (!point.ok()) return point.status();
  absl::StatusOr<std::shared_ptr<EVP_PKEY>> key = PublicFromPoint(*algorithm, *point);
  if (!key.ok()) return key.status();
  state->mechanism = *algorithm == Algorithm::kEd25519 ? CKM_EDDSA : CKM_ECDSA;
  std::shared_ptr<Pkcs11Signer> signer(new Pkcs11Signer());
  signer->algorithm_ = *algorithm;
  signer->public_key_ = *std::move(key);
  signer->state_ = std::move(state);
  return signer;
}

absl::StatusOr<std::string> Pkcs11Signer::Sign(std::string_view data) const {
  // ECDSA tokens sign a digest (CKM_ECDSA); Ed25519 signs the message.
  const std::string digest = algorithm_ == Algorithm::kEcdsaP256 ? Sha256(data) : std::string();
  const std::string_view input = algorithm_ == Algorithm::kEcdsaP256 ? digest : data;
  std::string raw;
  const char* call = "";
  {
    absl::MutexLock lock(&state_->mu);
    CK_RV rv = state_->session == CK_INVALID_HANDLE ? CKR_SESSION_CLOSED
                                                    : state_->SignOnce(input, &raw, &call);
    if (SessionLost(rv)) {  // reconnect once
      state_->Close();
      if (absl::Status s = state_->Connect(); !s.ok()) return s;
      rv = state_->SignOnce(input, &raw, &call);
    }
    if (rv != CKR_OK) return CkError(call, rv);
  }
  if (algorithm_ == Algorithm::kEd25519) return raw;
  return DerFromRaw(raw);
}

}  // namespace kpx::crypto
