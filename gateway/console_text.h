// The console's words: one message catalogue per language (English,
// French, Portuguese, Arabic), compiled into the program so that a node
// needs no files to show them.
//
// Text(lang, key) is the catalogue's entry, the English one where a
// language lacks it, and the key itself where English does too (so a
// missing entry shows, and a test finds it). States and roles have keys
// "state.CONFIRMED", "role.IMPORTER".
//
// Pure; thread-safe.
#ifndef KPX_GATEWAY_CONSOLE_TEXT_H_
#define KPX_GATEWAY_CONSOLE_TEXT_H_

#include <string>
#include <string_view>
#include <vector>

namespace kpx::gateway {

struct Language {
  const char* code;  // "en", "fr", "pt", "ar"
  const char* name;  // in itself: "Français"
  bool right_to_left;
};

// Every language the console speaks, English first.
const std::vector<Language>& Languages();
// The language `code` names, or English.
const Language& FindLanguage(std::string_view code);

std::string Text(std::string_view lang, std::string_view key);
// Every key of the English catalogue (tests check the others against it).
std::vector<std::string> TextKeys();
// True if `lang`'s own catalogue has `key`.
bool HasText(std::string_view lang, std::string_view key);

}  // namespace kpx::gateway

#endif  // KPX_GATEWAY_CONSOLE_TEXT_H_
