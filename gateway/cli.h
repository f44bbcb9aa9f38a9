// A small command-line kit for kpx's programs: a table of commands, each
// named by one or more words ("cert get", "restore") with its own
// positional arguments and flags, strict parsing, generated help, and one
// way of reporting failures (text or JSON).
//
// Grammar:  PROGRAM [GLOBAL...] WORD... [GLOBAL | FLAG | ARG]...
//   Global options (Program::globals, plus the built-in --help, --version
//   and, with Program::output_option, -o/--output text|json) may appear
//   anywhere. A command's own flags come after its words. "--" ends
//   flags: everything after it is positional. --flag=value and
//   --flag value both work; a flag with an optional value (Flag::optional)
//   takes the next word only if it is a number.
//   Everything else is a usage error (exit 2): an unknown flag, another
//   command's flag, a flag given twice, a missing value, a missing or
//   extra positional argument.
//
// Output: a failing command returns a Failure; Main prints it on stderr as
// "PROGRAM: text" (text mode) or {"error":{"code":"NOT_FOUND","message":
// "..."}} (JSON mode, gRPC/absl code names) and exits non-zero.
//
// Not thread-safe; meant for main().
#ifndef KPX_GATEWAY_CLI_H_
#define KPX_GATEWAY_CLI_H_

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace kpx::cli {

struct Flag {
  std::string name = "";   // "state" for --state
  std::string value = "";  // placeholder shown in help ("S"); empty: a switch
  std::string help = "";
  bool optional = false;  // the value may be omitted (only numbers are taken)
  std::string env = "";   // environment variable read when the flag is absent
};

struct Arg {
  std::string name = "";  // "NUMBER"
  bool optional = false;
};

// What a command was given. Flags absent from the command line (and from
// their environment variable) are absent from `flags`.
struct Invocation {
  std::vector<std::string> args;
  std::map<std::string, std::string> flags;  // this command's and the globals
  bool json = false;                         // -o json

  bool Has(const std::string& flag) const { return flags.count(flag) > 0; }
  // The flag's value, or "" if absent.
  std::string Get(const std::string& flag) const;
};

// A failure as the user sees it.
struct Failure {
  absl::Status status;  // code (named in JSON) and message
  int exit_code = 1;    // 2 for usage errors
  // The text-mode line after "PROGRAM: "; the status message if empty.
  std::string text;
};
using Result = std::optional<Failure>;

// A usage error (exit 2, INVALID_ARGUMENT).
Failure UsageError(const std::string& message);
// A runtime failure carrying `status`; `context` prefixes the text line.
Failure Fail(const absl::Status& status, const std::string& context = "");

struct Command {
  std::vector<std::string> words = {};  // {"cert", "get"}; empty: the default command
  std::string summary = "";             // one line, for the command list
  std::vector<Arg> args = {};
  std::vector<Flag> flags = {};
  std::string details = "";  // more help text, may be several lines
  std::function<Result(const Invocation&)> run = nullptr;
};

struct Program {
  std::string name;     // "kpxctl"
  std::string version;  // printed by --version
  std::string summary;  // first line of --help
  std::vector<Flag> globals;
  bool output_option = false;  // offers -o/--output text|json
  std::vector<Command> commands;
};

// Parses argv, runs the chosen command and reports its failure. Returns the
// exit code: 0, the Failure's code, or 2 for a usage error.
int Main(const Program& program, int argc, char** argv);

// Help texts (also what --help prints).
std::string ProgramHelp(const Program& program);
std::string CommandHelp(const Program& program, const Command& command);

}  // namespace kpx::cli

#endif  // KPX_GATEWAY_CLI_H_
