#include "softhsm.h"

#include <dlfcn.h>
#include <p11-kit/pkcs11.h>
#include <stdlib.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"

namespace kpx::testing {
namespace {

// DER of the curve OIDs: P-256 (1.2.840.10045.3.1.7), Ed25519 (1.3.101.112).
constexpr std::string_view kP256Oid("\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07", 10);
constexpr std::string_view kEd25519Oid("\x06\x03\x2b\x65\x70", 5);

CK_ATTRIBUTE Attr(CK_ATTRIBUTE_TYPE type, const void* value, CK_ULONG len) {
  return CK_ATTRIBUTE{type, const_cast<void*>(value), len};
}

#define REQUIRE_CKR_OK(call)                          \
  do {                                                \
    CK_RV rv_ = (call);                               \
    INFO(#call << " returned 0x" << std::hex << rv_); \
    REQUIRE(rv_ == CKR_OK);                           \
  } while (0)

}  // namespace

SoftHsmToken::SoftHsmToken() {
  INFO("SoftHSM2 is required (deploy/install-deps.sh installs softhsm2)");
  REQUIRE(std::filesystem::exists(kSoftHsmModule));
  std::filesystem::create_directory(tmp_.Sub("tokens"));
  std::ofstream(tmp_.Sub("softhsm2.conf"))
      << "directories.tokendir = " << tmp_.Sub("tokens") << "\n"
      << "objectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n";
  std::ofstream(PinFile()) << kPin << "\n";
  REQUIRE(::setenv("SOFTHSM2_CONF", tmp_.Sub("softhsm2.conf").c_str(), 1) == 0);
  const std::string cmd =
      absl::StrCat("softhsm2-util --init-token --free --label ", kLabel, " --pin ", kPin,
                   " --so-pin ", kSoPin, " >", tmp_.Sub("init.log"), " 2>&1");
  const int rc = std::system(cmd.c_str());
  std::ifstream log(tmp_.Sub("init.log"));
  INFO(cmd << "\n" << std::string(std::istreambuf_iterator<char>(log), {}));
  REQUIRE(rc == 0);
}

SoftHsmToken::~SoftHsmToken() { ::unsetenv("SOFTHSM2_CONF"); }

std::string SoftHsmToken::Uri(const std::string& label) const {
  return absl::StrCat("pkcs11:token=", kLabel, ";object=", label, "?module-path=", kSoftHsmModule,
                      "&pin-source=", PinFile());
}

void SoftHsmToken::Generate(crypto::Algorithm a, const std::string& label, const std::string& id,
                            const std::string& public_label) {
  void* so = dlopen(kSoftHsmModule, RTLD_NOW | RTLD_LOCAL);
  REQUIRE(so != nullptr);
  auto get_list = reinterpret_cast<CK_C_GetFunctionList>(dlsym(so, "C_GetFunctionList"));
  REQUIRE(get_list != nullptr);
  CK_FUNCTION_LIST* f = nullptr;
  REQUIRE_CKR_OK(get_list(&f));
  CK_C_INITIALIZE_ARGS args = {};
  args.flags = CKF_OS_LOCKING_OK;
  REQUIRE_CKR_OK(f->C_Initialize(&args));
  CK_ULONG n = 0;
  REQUIRE_CKR_OK(f->C_GetSlotList(CK_TRUE, nullptr, &n));
  std::vector<CK_SLOT_ID> slots(n);
  REQUIRE_CKR_OK(f->C_GetSlotList(CK_TRUE, slots.data(), &n));
  CK_SLOT_ID slot = 0;
  bool found = false;
  for (CK_ULONG i = 0; i < n && !found; ++i) {
    CK_TOKEN_INFO info;
    REQUIRE_CKR_OK(f->C_GetTokenInfo(slots[i], &info));
    const std::string have(reinterpret_cast<const char*>(info.label), sizeof(info.label));
    found = have.rfind(kLabel, 0) == 0 && have[sizeof(kLabel) - 1] == ' ';
    slot = slots[i];
  }
  REQUIRE(found);
  CK_SESSION_HANDLE s = 0;
  REQUIRE_CKR_OK(f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s));
  std::string pin = kPin;
  REQUIRE_CKR_OK(f->C_Login(s, CKU_USER, reinterpret_cast<CK_UTF8CHAR*>(pin.data()), pin.size()));

  const bool ed = a == crypto::Algorithm::kEd25519;
  const std::string_view params = ed ? kEd25519Oid : kP256Oid;
  const std::string pub_label = public_label.empty() ? label : public_label;
  CK_BBOOL yes = CK_TRUE;
  std::vector<CK_ATTRIBUTE> pub = {
      Attr(CKA_TOKEN, &yes, sizeof(yes)), Attr(CKA_VERIFY, &yes, sizeof(yes)),
      Attr(CKA_EC_PARAMS, params.data(), params.size()),
      Attr(CKA_LABEL, pub_label.data(), pub_label.size()), Attr(CKA_ID, id.data(), id.size())};
  std::vector<CK_ATTRIBUTE> priv = {
      Attr(CKA_TOKEN, &yes, sizeof(yes)),          Attr(CKA_PRIVATE, &yes, sizeof(yes)),
      Attr(CKA_SENSITIVE, &yes, sizeof(yes)),      Attr(CKA_SIGN, &yes, sizeof(yes)),
      Attr(CKA_LABEL, label.data(), label.size()), Attr(CKA_ID, id.data(), id.size())};
  CK_MECHANISM mech = {ed ? CKM_EC_EDWARDS_KEY_PAIR_GEN : CKM_EC_KEY_PAIR_GEN, nullptr, 0};
  CK_OBJECT_HANDLE pub_h = 0, priv_h = 0;
  REQUIRE_CKR_OK(f->C_GenerateKeyPair(s, &mech, pub.data(), pub.size(), priv.data(), priv.size(),
                                      &pub_h, &priv_h));
  REQUIRE_CKR_OK(f->C_CloseSession(s));
  REQUIRE_CKR_OK(f->C_Finalize(nullptr));
  dlclose(so);
}

}  // namespace kpx::testing
