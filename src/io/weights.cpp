// read_weights: a safetensors file mapped read-only, its header checked once, each tensor a view of its bytes.
// io::read_safetensors (the fp32 reader the checkpoint code uses) reads through it too, so there is one parser.
#include "vktrain/weights.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <map>

#include "common/check.hpp"
#include "common/half.hpp"
#include "io/json.hpp"

namespace vktrain {

namespace {

using io::Json;

// Same limit as the reference implementation: a larger header is far more likely corruption than a real file.
constexpr uint64_t max_header_size = 100'000'000;
// Offsets are stored as JSON numbers (doubles); beyond 2^53 they would silently lose precision.
constexpr uint64_t max_offset = uint64_t{1} << 53;

struct TypeName {
    const char* name;
    ElementType type;
    uint32_t size;
};
constexpr TypeName k_types[] = {
    {"F64", ElementType::f64, 8},      {"F32", ElementType::f32, 4}, {"F16", ElementType::f16, 2},
    {"BF16", ElementType::bf16, 2},    {"I64", ElementType::i64, 8}, {"I32", ElementType::i32, 4},
    {"I16", ElementType::i16, 2},      {"I8", ElementType::i8, 1},   {"U8", ElementType::u8, 1},
    {"BOOL", ElementType::boolean, 1},
};
constexpr const char* k_supported = "F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL";

const TypeName& type_entry(ElementType t) {
    for (const TypeName& e : k_types)
        if (e.type == t) return e;
    VKT_FAIL("internal: unknown element type ", int(t));
}

std::string shape_string(const std::vector<int64_t>& shape) {
    std::string text = "[";
    for (size_t i = 0; i < shape.size(); ++i) text += (i > 0 ? ", " : "") + std::to_string(shape[i]);
    return text + "]";
}

// Product of the dimensions, or false when it overflows.
bool element_count(const std::vector<int64_t>& shape, uint64_t& count) {
    count = 1;
    for (const int64_t dim : shape) {
        const auto d = static_cast<uint64_t>(dim);
        if (d != 0 && count > UINT64_MAX / d) return false;
        count *= d;
    }
    return true;
}

// A non-negative integer from the header, with a message naming the file and field on failure.
uint64_t header_integer(const Json& value, const std::string& path, const std::string& what) {
    VKT_CHECK(value.is_number(), path, ": ", what, " is a JSON ", to_string(value.type()), ", expected an integer");
    const double number = value.as_number();
    VKT_CHECK(number >= 0 && number == std::trunc(number) && number <= static_cast<double>(max_offset), path, ": ",
              what, " is ", value.dump(), ", expected a non-negative integer");
    return static_cast<uint64_t>(number);
}

struct Entry {
    TensorView view;
    uint64_t begin = 0, end = 0; // byte offsets in the data section
};

Entry parse_entry(const std::string& path, const std::string& name, const Json& value, uint64_t data_size) {
    const std::string where = "tensor \"" + name + "\"";
    VKT_CHECK(value.is_object(), path, ": ", where, ": header entry is a JSON ", to_string(value.type()),
              ", expected an object");
    Entry e;
    e.view.name = name;
    const Json* dtype = value.find("dtype");
    VKT_CHECK(dtype != nullptr && dtype->is_string(), path, ": ", where, ": missing or non-string \"dtype\"");
    const std::string& dtype_name = dtype->as_string();
    const TypeName* type = nullptr;
    for (const TypeName& t : k_types)
        if (dtype_name == t.name) type = &t;
    VKT_CHECK(type != nullptr, path, ": ", where, ": unsupported dtype \"", dtype_name, "\" (supported: ", k_supported,
              ")");
    e.view.type = type->type;

    const Json* shape = value.find("shape");
    VKT_CHECK(shape != nullptr && shape->is_array(), path, ": ", where, ": missing or non-array \"shape\"");
    for (const Json& dim : shape->as_array())
        e.view.shape.push_back(static_cast<int64_t>(header_integer(dim, path, where + " shape dimension")));
    uint64_t count = 0;
    VKT_CHECK(element_count(e.view.shape, count), path, ": ", where, ": shape ", shape_string(e.view.shape),
              " overflows");

    const Json* offsets = value.find("data_offsets");
    VKT_CHECK(offsets != nullptr && offsets->is_array() && offsets->size() == 2, path, ": ", where,
              ": \"data_offsets\" must be an array of two integers");
    e.begin = header_integer(offsets->at(size_t{0}), path, where + " data_offsets[0]");
    e.end = header_integer(offsets->at(size_t{1}), path, where + " data_offsets[1]");
    VKT_CHECK(e.begin <= e.end, path, ": ", where, ": data_offsets [", e.begin, ", ", e.end, "] are reversed");
    VKT_CHECK(e.end <= data_size, path, ": ", where, ": data_offsets [", e.begin, ", ", e.end, "] out of range of the ",
              data_size, "-byte data section");
    const uint64_t bytes = e.end - e.begin;
    VKT_CHECK(count <= UINT64_MAX / type->size && bytes == count * type->size, path, ": ", where, ": ", bytes,
              " bytes of data do not match shape ", shape_string(e.view.shape), " of ", dtype_name);
    e.view.bytes = bytes;
    return e;
}

// Little-endian loads from possibly unaligned bytes, independent of the host's byte order.
uint64_t load_le(const unsigned char* b, uint32_t size) {
    uint64_t v = 0;
    for (uint32_t i = 0; i < size; ++i) v |= uint64_t{b[i]} << (8 * i);
    return v;
}

} // namespace

const char* to_string(ElementType type) {
    return type_entry(type).name;
}

uint32_t element_size(ElementType type) {
    return type_entry(type).size;
}

uint64_t TensorView::elements() const {
    uint64_t n = 1;
    for (int64_t d : shape) n *= uint64_t(d);
    return n;
}

std::vector<float> TensorView::to_f32() const {
    std::vector<float> out(elements());
    to_f32(out.data(), 0, out.size());
    return out;
}

void TensorView::to_f32(float* out, uint64_t first, uint64_t count) const {
    const uint64_t n = elements();
    VKT_CHECK(first <= n && count <= n - first, "tensor '", name, "': elements [", first, ", ", first + count,
              ") are outside its ", n);
    const auto* b = static_cast<const unsigned char*>(data) + first * element_size(type);
    // One loop per type (the switch stays outside it); the byte assembly compiles to plain loads.
    const auto each = [&](auto convert, uint32_t size) {
        for (uint64_t i = 0; i < count; ++i) out[i] = convert(load_le(b + i * size, size));
    };
    switch (type) {
    case ElementType::f64:
        each(
            [](uint64_t v) {
                double d;
                std::memcpy(&d, &v, 8);
                return static_cast<float>(d);
            },
            8);
        break;
    case ElementType::f32: each([](uint64_t v) { return detail::bits_float(uint32_t(v)); }, 4); break;
    case ElementType::f16: each([](uint64_t v) { return half_to_float(uint16_t(v)); }, 2); break;
    case ElementType::bf16: each([](uint64_t v) { return detail::bits_float(uint32_t(v) << 16); }, 2); break;
    case ElementType::i64: each([](uint64_t v) { return static_cast<float>(static_cast<int64_t>(v)); }, 8); break;
    case ElementType::i32:
        each([](uint64_t v) { return static_cast<float>(static_cast<int32_t>(uint32_t(v))); }, 4);
        break;
    case ElementType::i16:
        each([](uint64_t v) { return static_cast<float>(static_cast<int16_t>(uint16_t(v))); }, 2);
        break;
    case ElementType::i8:
        each([](uint64_t v) { return static_cast<float>(static_cast<int8_t>(uint8_t(v))); }, 1);
        break;
    case ElementType::u8: each([](uint64_t v) { return static_cast<float>(uint8_t(v)); }, 1); break;
    case ElementType::boolean: each([](uint64_t v) { return v != 0 ? 1.0f : 0.0f; }, 1); break;
    }
}

struct WeightsFile::Impl {
    std::string path;
    void* map = nullptr; // the whole file, when mapped
    size_t map_bytes = 0;
    std::vector<unsigned char> copy; // the whole file, when it could not be mapped
    std::vector<TensorView> tensors;
    std::map<std::string, size_t> index;
    CheckpointMetadata metadata;

    Impl() = default;
    Impl(const Impl&) = delete;
    Impl& operator=(const Impl&) = delete;
    ~Impl() {
        if (map != nullptr) ::munmap(map, map_bytes);
    }
};

WeightsFile::WeightsFile(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}
WeightsFile::WeightsFile(WeightsFile&&) noexcept = default;
WeightsFile& WeightsFile::operator=(WeightsFile&&) noexcept = default;
WeightsFile::~WeightsFile() = default;

const std::string& WeightsFile::path() const {
    return m_impl->path;
}
const std::vector<TensorView>& WeightsFile::tensors() const {
    return m_impl->tensors;
}
const CheckpointMetadata& WeightsFile::metadata() const {
    return m_impl->metadata;
}
bool WeightsFile::mapped() const {
    return m_impl->map != nullptr;
}

const TensorView* WeightsFile::find(const std::string& name) const {
    const auto it = m_impl->index.find(name);
    return it == m_impl->index.end() ? nullptr : &m_impl->tensors[it->second];
}

const TensorView& WeightsFile::tensor(const std::string& name) const {
    const TensorView* t = find(name);
    VKT_CHECK(t != nullptr, m_impl->path, ": no tensor '", name, "'");
    return *t;
}

const std::string* WeightsFile::metadata_value(const std::string& key) const {
    for (const auto& [k, v] : m_impl->metadata)
        if (k == key) return &v;
    return nullptr;
}

namespace {

class Descriptor {
public:
    explicit Descriptor(int fd) : m_fd(fd) {}
    ~Descriptor() {
        if (m_fd >= 0) ::close(m_fd);
    }
    Descriptor(const Descriptor&) = delete;
    Descriptor& operator=(const Descriptor&) = delete;
    int get() const { return m_fd; }

private:
    int m_fd;
};

// The whole of a file that cannot be mapped (a pipe, a character device): read until its end.
std::vector<unsigned char> read_all(int fd, const std::string& path) {
    std::vector<unsigned char> out;
    unsigned char buffer[1 << 16];
    for (;;) {
        const ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        VKT_CHECK(n >= 0, path, ": read error: ", std::strerror(errno));
        if (n == 0) return out;
        out.insert(out.end(), buffer, buffer + n);
    }
}

} // namespace

WeightsFile read_weights(const std::string& path) {
    auto impl = std::make_unique<WeightsFile::Impl>();
    impl->path = path;
    const Descriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    VKT_CHECK(fd.get() >= 0, path, ": cannot open: ", std::strerror(errno));
    struct stat st {};
    VKT_CHECK(::fstat(fd.get(), &st) == 0, path, ": cannot determine file size: ", std::strerror(errno));
    VKT_CHECK(!S_ISDIR(st.st_mode), path, ": is a directory, not a safetensors file");
    const unsigned char* bytes = nullptr;
    uint64_t file_size = 0;
    if (S_ISREG(st.st_mode) && st.st_size > 0 && uint64_t(st.st_size) <= SIZE_MAX) {
        void* p = ::mmap(nullptr, size_t(st.st_size), PROT_READ, MAP_PRIVATE, fd.get(), 0);
        if (p != MAP_FAILED) {
            impl->map = p;
            impl->map_bytes = size_t(st.st_size);
            bytes = static_cast<const unsigned char*>(p);
            file_size = uint64_t(st.st_size);
        }
    }
    if (bytes == nullptr) { // not mappable (or empty): read once into memory
        impl->copy = read_all(fd.get(), path);
        bytes = impl->copy.data();
        file_size = impl->copy.size();
    }
    VKT_CHECK(file_size >= 8, path, ": not a safetensors file: file size ", file_size,
              " is smaller than the 8-byte header length");
    const uint64_t header_size = load_le(bytes, 8);
    VKT_CHECK(header_size <= file_size - 8, path, ": not a safetensors file: header length ", header_size,
              " exceeds file size ", file_size);
    VKT_CHECK(header_size <= max_header_size, path, ": not a safetensors file: header length ", header_size,
              " exceeds the ", max_header_size, "-byte limit");
    const std::string text(reinterpret_cast<const char*>(bytes + 8), size_t(header_size));
    const Json header = Json::parse(text, path + ": safetensors header"); // rejects duplicate names too
    VKT_CHECK(header.is_object(), path, ": safetensors header is a JSON ", to_string(header.type()),
              ", expected an object");

    const uint64_t data_start = 8 + header_size, data_size = file_size - data_start;
    std::vector<Entry> entries;
    for (const auto& [name, value] : header.as_object()) {
        if (name == "__metadata__") {
            VKT_CHECK(value.is_object(), path, ": \"__metadata__\" is a JSON ", to_string(value.type()),
                      ", expected an object");
            for (const auto& [key, item] : value.as_object()) {
                VKT_CHECK(item.is_string(), path, ": metadata \"", key, "\" is a JSON ", to_string(item.type()),
                          ", expected a string");
                impl->metadata.emplace_back(key, item.as_string());
            }
            continue;
        }
        entries.push_back(parse_entry(path, name, value, data_size));
    }
    // Overlapping tensors would alias each other's bytes; empty tensors occupy nothing and cannot overlap.
    std::vector<const Entry*> sorted;
    for (const Entry& e : entries)
        if (e.begin != e.end) sorted.push_back(&e);
    std::sort(sorted.begin(), sorted.end(), [](const Entry* a, const Entry* b) { return a->begin < b->begin; });
    for (size_t i = 1; i < sorted.size(); ++i)
        VKT_CHECK(sorted[i]->begin >= sorted[i - 1]->end, path, ": tensors \"", sorted[i - 1]->view.name, "\" and \"",
                  sorted[i]->view.name, "\" have overlapping data_offsets");
    for (Entry& e : entries) {
        e.view.data = bytes + data_start + e.begin;
        impl->index.emplace(e.view.name, impl->tensors.size());
        impl->tensors.push_back(std::move(e.view));
    }
    return WeightsFile(std::move(impl));
}

} // namespace vktrain
