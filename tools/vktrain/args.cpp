#include "args.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>

#include "vktrain/data.hpp"

namespace vktrain::cli {

bool ArgReader::next() {
    if (m_pos >= m_args.size()) return false;
    const std::string& arg = m_args[m_pos++];
    if (arg.size() < 3 || arg.compare(0, 2, "--") != 0) {
        if (arg == "-h") {
            m_name = "--help";
            m_inline.reset();
            return true;
        }
        throw UsageError("unexpected argument '" + arg + "' (options start with --)");
    }
    const size_t eq = arg.find('=');
    if (eq == std::string::npos) {
        m_name = arg;
        m_inline.reset();
    } else {
        m_name = arg.substr(0, eq);
        m_inline = arg.substr(eq + 1);
    }
    return true;
}

std::string ArgReader::value() {
    if (m_inline) {
        std::string v = *m_inline;
        m_inline.reset();
        if (v.empty()) throw UsageError(m_name + " needs a value");
        return v;
    }
    // A following "--something" is the next option, not this one's value: "--output --force" is a mistake.
    if (m_pos >= m_args.size() || (m_args[m_pos].size() > 2 && m_args[m_pos].compare(0, 2, "--") == 0))
        throw UsageError(m_name + " needs a value");
    std::string v = m_args[m_pos++];
    if (v.empty()) throw UsageError(m_name + " needs a value");
    return v;
}

void ArgReader::flag() const {
    if (m_inline) throw UsageError(m_name + " takes no value");
}

void ArgReader::unknown() const {
    throw UsageError("unknown option '" + m_name + "'");
}

uint64_t parse_uint(const std::string& option, const std::string& text, uint64_t min, uint64_t max) {
    const auto fail = [&](const std::string& why) -> UsageError {
        return UsageError(option + " expects " + why + ", got '" + text + "'");
    };
    const std::string range = max == std::numeric_limits<uint64_t>::max()
                                  ? "an integer >= " + std::to_string(min)
                                  : "an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]";
    // strtoull accepts leading spaces and '-' (wrapping around); insist on plain digits.
    if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos) throw fail(range);
    errno = 0;
    char* end = nullptr;
    const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
    if (errno == ERANGE || *end != '\0' || v < min || v > max) throw fail(range);
    return uint64_t(v);
}

double parse_real(const std::string& option, const std::string& text, bool positive) {
    const std::string what = positive ? "a positive number" : "a non-negative number";
    errno = 0;
    char* end = nullptr;
    const double v = std::strtod(text.c_str(), &end);
    const bool syntax_ok = !text.empty() && end == text.c_str() + text.size() && text.front() != ' ';
    if (!syntax_ok || errno == ERANGE || !std::isfinite(v) || (positive ? !(v > 0.0) : !(v >= 0.0)))
        throw UsageError(option + " expects " + what + ", got '" + text + "'");
    // These options are used as floats: a value that overflows to inf or (if it must be positive) underflows to 0
    // there is a usage error here, not a failure deep inside a run.
    const auto f = static_cast<float>(v);
    if (!std::isfinite(f) || (positive && !(f > 0.0f)))
        throw UsageError(option + " expects " + what + " within the float range, got '" + text + "'");
    return v;
}

Precision parse_precision(const std::string& option, const std::string& text) {
    if (text == "mixed") return Precision::mixed;
    if (text == "fp32") return Precision::fp32;
    throw UsageError(option + " expects mixed or fp32, got '" + text + "'");
}

GemmPath parse_gemm_path(const std::string& option, const std::string& text) {
    if (text == "auto") return GemmPath::auto_select;
    if (text == "coopmat") return GemmPath::coopmat;
    if (text == "tiled-fp16") return GemmPath::tiled_fp16;
    throw UsageError(option + " expects auto, coopmat or tiled-fp16, got '" + text + "'");
}

const char* precision_name(Precision precision) {
    return precision == Precision::mixed ? "mixed" : "fp32";
}

const char* optimizer_name(OptimizerKind kind) {
    return kind == OptimizerKind::sgd ? "sgd" : "adamw";
}

namespace {

constexpr uint64_t max_batch = 1u << 20;
constexpr uint64_t max_u64 = std::numeric_limits<uint64_t>::max();

// Options every device-opening command shares; true when `r` held one of them.
bool read_device_option(ArgReader& r, DeviceArgs& d) {
    if (r.is("--device")) {
        d.device = r.value();
        // An index must fit in the int ContextOptions::device_index holds.
        if (d.device.find_first_not_of("0123456789") == std::string::npos)
            parse_uint("--device", d.device, 0, uint64_t(std::numeric_limits<int>::max()));
    } else if (r.is("--validation")) {
        r.flag();
        d.validation = true;
    } else if (r.is("--no-coopmat")) {
        r.flag();
        d.no_coopmat = true;
    } else if (r.is("--no-tune")) {
        r.flag();
        d.no_tune = true;
    } else {
        return false;
    }
    return true;
}

} // namespace

namespace {
// Two output options naming one file (empty names never match).
bool same_file(const std::string& a, const std::string& b) {
    if (a.empty() || b.empty()) return false;
    std::error_code ea, eb;
    namespace fs = std::filesystem;
    const auto ca = fs::weakly_canonical(fs::absolute(a, ea), ea), cb = fs::weakly_canonical(fs::absolute(b, eb), eb);
    return ea || eb ? a == b : ca.lexically_normal() == cb.lexically_normal();
}
} // namespace

TrainArgs parse_train_args(const std::vector<std::string>& args) {
    TrainArgs a;
    a.data_dir = default_fashion_mnist_dir();
    bool momentum_set = false;
    ArgReader r(args);
    while (r.next()) {
        const std::string& n = r.name();
        a.given.insert(n);
        if (r.is("--help")) {
            r.flag();
            a.help = true;
        } else if (read_device_option(r, a.device)) {
            // --device, --validation, --no-coopmat
        } else if (r.is("--data")) {
            a.data_dir = r.value();
        } else if (r.is("--text")) {
            a.text_path = r.value();
        } else if (r.is("--steps")) {
            a.steps = parse_uint(n, r.value(), 1, 1ull << 40);
        } else if (r.is("--warmup")) {
            a.warmup = parse_uint(n, r.value(), 0, 1ull << 40);
        } else if (r.is("--min-lr")) {
            a.min_lr = parse_real(n, r.value(), false);
        } else if (r.is("--clip")) {
            a.clip = parse_real(n, r.value(), false);
        } else if (r.is("--micro-batch")) {
            a.micro_batch = uint32_t(parse_uint(n, r.value(), 1, max_batch));
        } else if (r.is("--eval-at")) {
            a.eval_at.clear();
            const std::string list = r.value();
            size_t start = 0;
            while (start <= list.size()) {
                const size_t comma = std::min(list.find(',', start), list.size());
                a.eval_at.push_back(parse_uint(n, list.substr(start, comma - start), 0, 1ull << 40));
                start = comma + 1;
            }
        } else if (r.is("--val-limit")) {
            a.val_limit = parse_uint(n, r.value(), 1, max_u64);
        } else if (r.is("--log-every")) {
            a.log_every = parse_uint(n, r.value(), 1, 1ull << 40);
        } else if (r.is("--model")) {
            a.model_spec = r.value();
        } else if (r.is("--precision")) {
            a.precision = parse_precision(n, r.value());
        } else if (r.is("--optimizer")) {
            const std::string v = r.value();
            if (v == "adamw")
                a.optimizer = OptimizerKind::adamw;
            else if (v == "sgd")
                a.optimizer = OptimizerKind::sgd;
            else
                throw UsageError(n + " expects adamw or sgd, got '" + v + "'");
        } else if (r.is("--lr")) {
            a.learning_rate = parse_real(n, r.value(), true);
        } else if (r.is("--momentum")) {
            const std::string text = r.value();
            a.momentum = parse_real(n, text, false);
            if (!(a.momentum < 1.0)) throw UsageError(n + " expects a number in [0, 1), got '" + text + "'");
            momentum_set = true;
        } else if (r.is("--lr-schedule")) {
            a.schedule_given = true;
            const std::string v = r.value();
            if (v == "cosine")
                a.cosine_schedule = true;
            else if (v == "constant")
                a.cosine_schedule = false;
            else
                throw UsageError(n + " expects cosine or constant, got '" + v + "'");
        } else if (r.is("--weight-decay")) {
            a.weight_decay = parse_real(n, r.value(), false);
            a.weight_decay_given = true;
        } else if (r.is("--batch-size")) {
            a.batch_size = uint32_t(parse_uint(n, r.value(), 1, max_batch));
        } else if (r.is("--epochs")) {
            a.epochs = uint32_t(parse_uint(n, r.value(), 1, 1000000));
        } else if (r.is("--seed")) {
            a.seed = parse_uint(n, r.value(), 0, max_u64);
            a.seed_given = true;
        } else if (r.is("--gemm-path")) {
            a.gemm_path = parse_gemm_path(n, r.value());
        } else if (r.is("--loss-scale")) {
            a.loss_scale = parse_real(n, r.value(), true);
        } else if (r.is("--growth-interval")) {
            a.growth_interval = uint32_t(parse_uint(n, r.value(), 1, uint64_t(std::numeric_limits<int32_t>::max())));
        } else if (r.is("--update-location")) {
            const std::string v = r.value();
            if (v == "auto")
                a.update_location = UpdateLocation::automatic;
            else if (v == "host")
                a.update_location = UpdateLocation::host;
            else if (v == "device")
                a.update_location = UpdateLocation::device;
            else
                throw UsageError(n + " expects auto, host or device, got '" + v + "'");
        } else if (r.is("--update-buckets")) {
            a.update_buckets = uint32_t(parse_uint(n, r.value(), 0, 64));
        } else if (r.is("--no-loss-scaling")) {
            r.flag();
            a.loss_scaling = false;
        } else if (r.is("--limit")) {
            a.limit = parse_uint(n, r.value(), 1, max_u64);
        } else if (r.is("--test-limit")) {
            a.test_limit = parse_uint(n, r.value(), 1, max_u64);
        } else if (r.is("--output")) {
            a.output = r.value();
        } else if (r.is("--report")) {
            a.report = r.value();
        } else if (r.is("--checkpoint")) {
            a.checkpoint = r.value();
        } else if (r.is("--resume")) {
            a.resume = r.value();
        } else if (r.is("--stop-after")) {
            a.stop_after = uint32_t(parse_uint(n, r.value(), 1, 1000000));
        } else if (r.is("--force")) {
            r.flag();
            a.force = true;
        } else if (r.is("--quiet")) {
            r.flag();
            a.quiet = true;
        } else if (r.is("--profile")) {
            r.flag();
            a.profile = true;
        } else {
            r.unknown();
        }
    }
    if (a.help) return a;
    if (momentum_set && a.optimizer != OptimizerKind::sgd)
        throw UsageError("--momentum applies only to --optimizer sgd");
    if (a.loss_scale > double(std::numeric_limits<float>::max()))
        throw UsageError("--loss-scale is too large for a float");
    if (a.loss_scale < 0x1p-24) throw UsageError("--loss-scale must be at least 2^-24 (5.96e-08)");
    if (a.device.no_coopmat && a.gemm_path == GemmPath::coopmat)
        throw UsageError("--gemm-path coopmat contradicts --no-coopmat");
    // Compared as files, not as strings: "X", "./X", "dir/../X" and a symlink to X are one file.
    if (same_file(a.output, a.report)) throw UsageError("--output and --report name the same file");
    if (same_file(a.checkpoint, a.output)) throw UsageError("--checkpoint and --output name the same file");
    if (same_file(a.checkpoint, a.report)) throw UsageError("--checkpoint and --report name the same file");
    if (a.stop_after && a.checkpoint.empty())
        throw UsageError("--stop-after needs --checkpoint (otherwise the stopped run's state is lost)");
    return a;
}

GenerateArgs parse_generate_args(const std::vector<std::string>& args) {
    GenerateArgs a;
    ArgReader r(args);
    while (r.next()) {
        const std::string& n = r.name();
        if (r.is("--help")) {
            r.flag();
            a.help = true;
        } else if (read_device_option(r, a.device)) {
            // --device, --validation, --no-coopmat
        } else if (r.is("--weights")) {
            a.weights = r.value();
        } else if (r.is("--prompt")) {
            a.prompt = r.value();
        } else if (r.is("--tokens")) {
            a.tokens = uint32_t(parse_uint(n, r.value(), 0, 1u << 24));
        } else if (r.is("--temperature")) {
            a.temperature = parse_real(n, r.value(), false);
        } else if (r.is("--seed")) {
            a.seed = parse_uint(n, r.value(), 0, max_u64);
        } else if (r.is("--no-cache")) {
            r.flag();
            a.no_cache = true;
        } else if (r.is("--precision")) {
            a.precision = parse_precision(n, r.value());
        } else if (r.is("--gemm-path")) {
            a.gemm_path = parse_gemm_path(n, r.value());
        } else if (r.is("--quiet")) {
            r.flag();
            a.quiet = true;
        } else {
            r.unknown();
        }
    }
    if (a.help) return a;
    if (a.weights.empty()) throw UsageError("--weights FILE is required");
    if (a.prompt.empty()) throw UsageError("--prompt must not be empty (generation continues a text)");
    if (a.temperature > 100.0) throw UsageError("--temperature must be at most 100");
    return a;
}

EvalArgs parse_eval_args(const std::vector<std::string>& args) {
    EvalArgs a;
    a.data_dir = default_fashion_mnist_dir();
    ArgReader r(args);
    while (r.next()) {
        const std::string& n = r.name();
        if (r.is("--help")) {
            r.flag();
            a.help = true;
        } else if (read_device_option(r, a.device)) {
            // --device, --validation, --no-coopmat
        } else if (r.is("--weights")) {
            a.weights = r.value();
        } else if (r.is("--data")) {
            a.data_dir = r.value();
        } else if (r.is("--model")) {
            a.model_spec = r.value();
        } else if (r.is("--precision")) {
            a.precision = parse_precision(n, r.value());
        } else if (r.is("--gemm-path")) {
            a.gemm_path = parse_gemm_path(n, r.value());
        } else if (r.is("--test-limit")) {
            a.test_limit = parse_uint(n, r.value(), 1, max_u64);
        } else if (r.is("--batch-size")) {
            a.batch_size = uint32_t(parse_uint(n, r.value(), 1, max_batch));
        } else if (r.is("--text")) {
            a.text_path = r.value();
        } else if (r.is("--val-limit")) {
            a.val_limit = parse_uint(n, r.value(), 1, max_u64);
        } else {
            r.unknown();
        }
    }
    if (a.help) return a;
    if (a.weights.empty()) throw UsageError("eval needs --weights FILE");
    if (a.device.no_coopmat && a.gemm_path == GemmPath::coopmat)
        throw UsageError("--gemm-path coopmat contradicts --no-coopmat");
    return a;
}

DevicesArgs parse_devices_args(const std::vector<std::string>& args) {
    DevicesArgs a;
    ArgReader r(args);
    while (r.next()) {
        if (r.is("--help")) {
            r.flag();
            a.help = true;
        } else if (r.is("--validation")) {
            r.flag();
            a.validation = true;
        } else {
            r.unknown();
        }
    }
    return a;
}

} // namespace vktrain::cli
