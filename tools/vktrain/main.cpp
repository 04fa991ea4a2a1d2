// vktrain command-line tool: dispatches to the subcommands and turns every failure into one
// "vktrain: error: ..." line on stderr. Exit status: 0 success, 1 runtime error, 2 usage error.
#include <cstdio>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include "args.hpp"
#include "commands.hpp"
#include "util.hpp"
#include "vktrain/error.hpp"

namespace {

using vktrain::cli::one_line;

int report_error(const std::string& message, int status) {
    std::fflush(stdout); // keep what was printed before the error in order when both go to one terminal
    std::fprintf(stderr, "vktrain: error: %s\n", one_line(message).c_str());
    return status;
}

int dispatch(const std::vector<std::string>& args) {
    using namespace vktrain::cli;
    if (args.empty()) throw UsageError("no command given (see 'vktrain --help')");
    const std::string& command = args[0];
    const std::vector<std::string> rest(args.begin() + 1, args.end());
    if (command == "--help" || command == "-h" || command == "help") {
        std::fputs(main_usage(), stdout);
        return 0;
    }
    if (command == "--version" || command == "version") {
        std::printf("vktrain %s\n", tool_version);
        return 0;
    }
    // Usage errors of a command point at that command's help, in the same single line.
    const auto run = [&](int (*fn)(const std::vector<std::string>&)) {
        try {
            return fn(rest);
        } catch (const UsageError& e) {
            throw UsageError(std::string(e.what()) + " (see 'vktrain " + command + " --help')");
        }
    };
    if (command == "train") return run(run_train);
    if (command == "eval") return run(run_eval);
    if (command == "devices") return run(run_devices);
    if (command == "generate") return run(run_generate);
    if (command == "ops") return run(run_ops);
    if (command == "import") return run(run_import);
    if (command == "export") return run(run_export);
    if (command == "predict") return run(run_predict);
    if (command == "tokenize") return run(run_tokenize);
    if (command.compare(0, 1, "-") == 0) throw UsageError("unknown option '" + command + "' (see 'vktrain --help')");
    throw UsageError("unknown command '" + command + "' (see 'vktrain --help')");
}

} // namespace

int main(int argc, char** argv) {
    const std::vector<std::string> args(argv + 1, argv + argc);
    try {
        const int status = dispatch(args);
        // A full disk or closed pipe on stdout must not pass as success.
        if (std::fflush(stdout) != 0 || std::ferror(stdout)) return report_error("cannot write to standard output", 1);
        return status;
    } catch (const vktrain::cli::UsageError& e) {
        return report_error(e.what(), 2);
    } catch (const vktrain::Error& e) {
        return report_error(e.what(), 1);
    } catch (const std::bad_alloc&) {
        return report_error("out of memory", 1);
    } catch (const std::exception& e) {
        return report_error(e.what(), 1);
    }
}
