#include "gateway/cli.h"

#include <cstdio>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "node/text.h"

namespace kpx::cli {
namespace {

const Flag kHelpFlag{"help", "", "show this help and exit"};
const Flag kVersionFlag{"version", "", "print the version and exit"};
const Flag kOutputFlag{"output", "text|json",
                       "output format; json: one object per line, errors too"};

bool IsNumber(const std::string& s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](char c) { return absl::ascii_isdigit(c); });
}

// True for "-x" and "--x" tokens ("-" alone and "--" are not flags).
bool IsFlagToken(const std::string& t) { return t.size() > 1 && t[0] == '-' && t != "--"; }

std::string Words(const Program& p, const Command* c) {
  if (c == nullptr || c->words.empty()) return p.name;
  return absl::StrCat(p.name, " ", absl::StrJoin(c->words, " "));
}

std::string Escape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      out += absl::StrFormat("\\u%04x", c);
    } else {
      out += ch;
    }
  }
  return out;
}

std::vector<Flag> Globals(const Program& p) {
  std::vector<Flag> g = p.globals;
  if (p.output_option) g.push_back(kOutputFlag);
  g.push_back(kHelpFlag);
  g.push_back(kVersionFlag);
  return g;
}

const Flag* FindFlag(const std::vector<Flag>& flags, const std::string& name) {
  for (const Flag& f : flags) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

// A flag token split into its name and inline value ("--a=b", "-o").
struct FlagToken {
  std::string name;
  std::optional<std::string> value;
};

FlagToken SplitFlag(const std::string& token) {
  if (token == "-o") return {"output", std::nullopt};
  if (!absl::StartsWith(token, "--")) return {token, std::nullopt};  // unknown short flag
  std::string name = token.substr(2);
  if (size_t eq = name.find('='); eq != std::string::npos) {
    return {name.substr(0, eq), name.substr(eq + 1)};
  }
  return {name, std::nullopt};
}

std::string Display(const std::string& name) {
  return absl::StartsWith(name, "-") ? name : "--" + name;
}

// The state of one parse: the command once known, and what it was given.
class Parser {
 public:
  Parser(const Program& p, std::vector<std::string> tokens)
      : p_(p), tokens_(std::move(tokens)), globals_(Globals(p)) {}

  // Picks the command; nullptr with *failure unset means "no command given".
  const Command* Resolve(Result* failure);
  // Parses every token against `c` (may be nullptr: globals only).
  Result Parse(const Command* c);
  const Invocation& invocation() const { return inv_; }
  // Usage error unless the positional arguments fit `c`.
  Result CheckArity(const Command& c) const;

 private:
  // Consumes the value of `flag` at tokens_[*i]; the flag's spelling is `t`.
  Result TakeValue(const Flag& flag, const FlagToken& t, size_t* i);
  Result Usage(const Command* c, const std::string& what) const {
    return UsageError(absl::StrCat(what, " (see ", Words(p_, c), " --help)"));
  }
  std::string Owners(const std::string& flag) const;

  const Program& p_;
  const std::vector<std::string> tokens_;
  const std::vector<Flag> globals_;
  size_t word_count_ = 0;
  Invocation inv_;
};

std::string Parser::Owners(const std::string& flag) const {
  std::vector<std::string> owners;
  for (const Command& c : p_.commands) {
    if (FindFlag(c.flags, flag))
      owners.push_back(c.words.empty() ? p_.name : absl::StrJoin(c.words, " "));
  }
  return absl::StrJoin(owners, ", ");
}

const Command* Parser::Resolve(Result* failure) {
  std::vector<std::string> words;
  for (size_t i = 0; i < tokens_.size(); ++i) {
    const std::string& t = tokens_[i];
    if (t == "--" || !IsFlagToken(t)) {
      if (t == "--") break;
      words.push_back(t);
      continue;
    }
    FlagToken ft = SplitFlag(t);
    const Flag* g = FindFlag(globals_, ft.name);
    if (g == nullptr) break;  // a command's flag: the words end here
    if (!g->value.empty() && !ft.value && !g->optional) ++i;
  }
  const Command* best = nullptr;
  for (const Command& c : p_.commands) {
    if (c.words.size() <= words.size() &&
        std::equal(c.words.begin(), c.words.end(), words.begin()) &&
        (best == nullptr || c.words.size() > best->words.size())) {
      best = &c;
    }
  }
  if (best != nullptr) {
    word_count_ = best->words.size();
    return best;
  }
  if (words.empty()) return nullptr;
  std::vector<std::string> verbs;
  for (const Command& c : p_.commands) {
    if (c.words.size() > 1 && c.words[0] == words[0]) verbs.push_back(c.words[1]);
  }
  *failure = verbs.empty()
                 ? Usage(nullptr, absl::StrCat("unknown command '", words[0], "'"))
                 : Usage(nullptr, absl::StrCat("'", words[0],
                                               "' needs one of: ", absl::StrJoin(verbs, ", ")));
  return nullptr;
}

Result Parser::TakeValue(const Flag& flag, const FlagToken& t, size_t* i) {
  std::string value;
  if (flag.value.empty()) {
    if (t.value) return UsageError(absl::StrCat("--", flag.name, " takes no value"));
  } else if (t.value) {
    value = *t.value;
  } else if (flag.optional) {
    if (*i + 1 < tokens_.size() && IsNumber(tokens_[*i + 1])) value = tokens_[++*i];
  } else if (*i + 1 < tokens_.size()) {
    value = tokens_[++*i];
  } else {
    return UsageError(absl::StrCat("--", flag.name, " needs a value (", flag.value, ")"));
  }
  if (!inv_.flags.emplace(flag.name, value).second) {
    return UsageError(absl::StrCat("--", flag.name, " is given twice"));
  }
  return std::nullopt;
}

Result Parser::Parse(const Command* c) {
  size_t words_skipped = 0;
  bool only_args = false;
  for (size_t i = 0; i < tokens_.size(); ++i) {
    const std::string& t = tokens_[i];
    if (only_args || !IsFlagToken(t)) {
      if (!only_args && t == "--") {
        only_args = true;
      } else if (words_skipped < word_count_) {
        ++words_skipped;
      } else {
        inv_.args.push_back(t);
      }
      continue;
    }
    FlagToken ft = SplitFlag(t);
    const Flag* f = FindFlag(globals_, ft.name);
    if (f == nullptr && c != nullptr) f = FindFlag(c->flags, ft.name);
    if (f == nullptr) {
      const std::string owners = Owners(ft.name);
      if (!owners.empty() && c == nullptr) {
        return Usage(c, absl::StrCat(Display(ft.name), " is a flag of ", owners,
                                     ": give it after the command"));
      }
      if (!owners.empty()) {
        return Usage(c, absl::StrCat(Display(ft.name), " is not a flag of '", Words(p_, c),
                                     "' but of: ", owners));
      }
      return Usage(c, absl::StrCat("unknown flag ", Display(ft.name)));
    }
    if (Result r = TakeValue(*f, ft, &i)) return Usage(c, std::string(r->status.message()));
  }
  return std::nullopt;
}

Result Parser::CheckArity(const Command& c) const {
  size_t required = 0;
  for (const Arg& a : c.args) required += a.optional ? 0 : 1;
  if (inv_.args.size() < required) {
    return UsageError(absl::StrCat("missing ", c.args[inv_.args.size()].name, " (see ",
                                   Words(p_, &c), " --help)"));
  }
  if (inv_.args.size() > c.args.size()) {
    return UsageError(absl::StrCat("unexpected argument '", inv_.args[c.args.size()], "' (see ",
                                   Words(p_, &c), " --help)"));
  }
  return std::nullopt;
}

bool WantsJson(const std::vector<std::string>& tokens) {
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] == "--") break;
    if ((tokens[i] == "-o" || tokens[i] == "--output") && i + 1 < tokens.size()) {
      if (tokens[i + 1] == "json") return true;
    }
    if (tokens[i] == "--output=json") return true;
  }
  return false;
}

void Report(const Program& p, const Failure& f, bool json) {
  if (json) {
    std::fprintf(stderr, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}\n",
                 absl::StatusCodeToString(f.status.code()).c_str(),
                 Escape(std::string(f.status.message())).c_str());
    return;
  }
  std::string text = f.text.empty() ? std::string(f.status.message()) : f.text;
  while (!text.empty() && text.back() == '\n') text.pop_back();
  // One line, whatever the server or a partner put in the message.
  std::fprintf(stderr, "%s: %s\n", p.name.c_str(), kpx::node::Printable(text).c_str());
}

std::string FlagUsage(const Flag& f) {
  if (f.value.empty()) return "--" + f.name;
  return f.optional ? absl::StrCat("--", f.name, " [", f.value, "]")
                    : absl::StrCat("--", f.name, " ", f.value);
}

std::string Synopsis(const Command& c) {
  std::vector<std::string> parts = c.words;
  for (const Arg& a : c.args) parts.push_back(a.optional ? "[" + a.name + "]" : a.name);
  return absl::StrJoin(parts, " ");
}

void AppendFlags(const std::vector<Flag>& flags, std::string* out) {
  for (const Flag& f : flags) {
    std::string line = f.name == "output" ? "-o, --output text|json" : FlagUsage(f);
    absl::StrAppendFormat(out, "  %-28s %s%s\n", line, f.help,
                          f.env.empty() ? "" : absl::StrCat(" (env ", f.env, ")"));
  }
}

// Fills flags left out from their environment variables and checks -o.
Result Complete(const Program& p, const Command& c, Invocation* inv) {
  std::vector<Flag> all = Globals(p);
  all.insert(all.end(), c.flags.begin(), c.flags.end());
  for (const Flag& f : all) {
    if (f.env.empty() || inv->Has(f.name)) continue;
    if (const char* v = std::getenv(f.env.c_str()); v != nullptr && *v != '\0') {
      inv->flags[f.name] = v;
    }
  }
  const std::string output = inv->Get("output");
  if (!output.empty() && output != "text" && output != "json") {
    return UsageError(absl::StrCat("-o takes text or json, not '", output, "'"));
  }
  inv->json = output == "json";
  return std::nullopt;
}

}  // namespace

std::string Invocation::Get(const std::string& flag) const {
  auto it = flags.find(flag);
  return it == flags.end() ? "" : it->second;
}

Failure UsageError(const std::string& message) {
  return Failure{absl::InvalidArgumentError(message), 2, ""};
}

Failure Fail(const absl::Status& status, const std::string& context) {
  std::string text = absl::StrCat(absl::StatusCodeToString(status.code()), ": ", status.message());
  if (!context.empty()) text = absl::StrCat(context, ": ", text);
  return Failure{status, 1, text};
}

std::string ProgramHelp(const Program& p) {
  std::string out = absl::StrCat(p.name, " ", p.version, ": ", p.summary, "\n\ncommands:\n");
  const Command* default_command = nullptr;
  for (const Command& c : p.commands) {
    if (c.words.empty()) default_command = &c;
    absl::StrAppendFormat(&out, "  %-36s %s\n", c.words.empty() ? "(none)" : Synopsis(c),
                          c.summary);
  }
  if (default_command != nullptr) {
    out += "\nflags without a command:\n";
    AppendFlags(default_command->flags, &out);
    if (!default_command->details.empty()) absl::StrAppend(&out, default_command->details, "\n");
  }
  out += "\nglobal options (anywhere on the command line):\n";
  AppendFlags(Globals(p), &out);
  absl::StrAppend(&out, "\nRun '", p.name, " COMMAND --help' for a command's flags.\n");
  return out;
}

std::string CommandHelp(const Program& p, const Command& c) {
  std::string synopsis = Synopsis(c);
  for (const Flag& f : c.flags) absl::StrAppend(&synopsis, " [", FlagUsage(f), "]");
  std::string out = absl::StrCat("usage: ", p.name, " ", synopsis, "\n\n", c.summary, "\n");
  if (!c.details.empty()) absl::StrAppend(&out, "\n", c.details, "\n");
  if (!c.flags.empty()) {
    out += "\nflags:\n";
    AppendFlags(c.flags, &out);
  }
  absl::StrAppend(&out, "\nglobal options: see '", p.name, " --help'\n");
  return out;
}

int Main(const Program& p, int argc, char** argv) {
  const std::vector<std::string> tokens(argv + 1, argv + argc);
  Parser parser(p, tokens);
  Result failure;
  const Command* c = parser.Resolve(&failure);
  if (!failure) failure = parser.Parse(c);
  Invocation inv = parser.invocation();
  // --help and --version win over a usage error elsewhere on the line.
  if (inv.Has("version")) {
    std::printf("%s %s\n", p.name.c_str(), p.version.c_str());
    return 0;
  }
  if (inv.Has("help")) {
    const bool program = c == nullptr || c->words.empty();
    std::fputs((program ? ProgramHelp(p) : CommandHelp(p, *c)).c_str(), stdout);
    return 0;
  }
  if (!failure && c == nullptr) {
    std::fputs(ProgramHelp(p).c_str(), stderr);
    return 2;
  }
  if (!failure) failure = parser.CheckArity(*c);
  if (!failure) failure = Complete(p, *c, &inv);
  if (!failure) failure = c->run(inv);
  if (!failure) return 0;
  if (failure->exit_code == 2 && !absl::StrContains(failure->status.message(), "--help)")) {
    // A usage error found by the command itself: point to its help too.
    *failure =
        UsageError(absl::StrCat(failure->status.message(), " (see ", Words(p, c), " --help)"));
  }
  Report(p, *failure, p.output_option && WantsJson(tokens));
  return failure->exit_code;
}

}  // namespace kpx::cli
