// torchvision's ImageFolder layout (find_classes + make_dataset of torchvision/datasets/folder.py), and the loader
// that decodes and transforms samples on worker threads into a small ring of slots the consumer drains in order.
//
// Determinism: a sample's augmentation is seeded by (seed, epoch, sample index) and the epoch's order by (seed,
// epoch), and the consumer takes positions strictly in order, so which thread decoded what, and when, never shows.
#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>

#include "common/check.hpp"
#include "vktrain/images.hpp"

namespace vktrain {

namespace fs = std::filesystem;

namespace {

// torchvision.datasets.folder.IMG_EXTENSIONS
constexpr const char* image_extensions[] = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"};
constexpr const char* extension_list =
    ".jpg, .jpeg, .png; .ppm, .bmp, .pgm, .tif, .tiff, .webp are listed, not decoded";

bool has_image_extension(const std::string& name) {
    std::string lower = name;
    for (char& c : lower) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    for (const char* ext : image_extensions) {
        const size_t n = std::strlen(ext);
        if (lower.size() >= n && lower.compare(lower.size() - n, n, ext) == 0) return true;
    }
    return false;
}

bool is_dir(const fs::path& p) {
    std::error_code ec;
    return fs::is_directory(p, ec); // follows symbolic links, as os.scandir's is_dir() and os.walk(followlinks=True)
}

// The directories of os.walk(top, followlinks=True): top and every folder below it. A cycle through links would make
// os.walk run forever; here it is an error once the depth passes 64.
void walk(const fs::path& dir, int depth, std::vector<std::string>& dirs) {
    VKT_CHECK(depth <= 64, dir.string(), ": folders nested more than 64 deep (a symbolic link loop?)");
    dirs.push_back(dir.string());
    std::error_code ec;
    fs::directory_iterator it(dir, ec);
    VKT_CHECK(!ec, dir.string(), ": cannot list: ", ec.message());
    for (const fs::directory_entry& e : it) {
        if (is_dir(e.path())) walk(e.path(), depth + 1, dirs);
    }
}

std::vector<std::string> sorted_files(const fs::path& dir) {
    std::vector<std::string> names;
    std::error_code ec;
    fs::directory_iterator it(dir, ec);
    VKT_CHECK(!ec, dir.string(), ": cannot list: ", ec.message());
    for (const fs::directory_entry& e : it) {
        const std::string name = e.path().filename().string();
        if (!is_dir(e.path()) && has_image_extension(name)) names.push_back(name);
    }
    std::sort(names.begin(), names.end());
    return names;
}

uint64_t mix(uint64_t a, uint64_t b) {
    uint64_t z = a ^ (b + 0x9e3779b97f4a7c15ull + (a << 6) + (a >> 2));
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

} // namespace

ImageFolder scan_image_folder(const std::string& root) {
    std::error_code ec;
    VKT_CHECK(fs::exists(root, ec), root, ": no such folder");
    VKT_CHECK(is_dir(root), root, ": not a folder (an image folder has one sub-folder per class)");
    ImageFolder folder;
    folder.root = root;
    bool loose_images = false;
    fs::directory_iterator it(root, ec);
    VKT_CHECK(!ec, root, ": cannot list: ", ec.message());
    for (const fs::directory_entry& e : it) {
        if (is_dir(e.path())) {
            folder.classes.push_back(e.path().filename().string());
        } else if (has_image_extension(e.path().filename().string())) {
            loose_images = true;
        }
    }
    VKT_CHECK(!folder.classes.empty(), root, ": no class folders (expected one sub-folder per class",
              loose_images ? "; the images directly in it belong in those" : "", ")");
    std::sort(folder.classes.begin(), folder.classes.end());
    std::vector<std::string> empty;
    for (size_t c = 0; c < folder.classes.size(); ++c) {
        const size_t before = folder.files.size();
        std::vector<std::string> dirs;
        walk(fs::path(root) / folder.classes[c], 0, dirs);
        std::sort(dirs.begin(), dirs.end());
        for (const std::string& dir : dirs) {
            for (const std::string& name : sorted_files(dir)) {
                folder.files.push_back((fs::path(dir) / name).string());
                folder.labels.push_back(int32_t(c));
            }
        }
        if (folder.files.size() == before) empty.push_back(folder.classes[c]);
    }
    if (!empty.empty()) {
        std::string names;
        for (size_t i = 0; i < empty.size() && i < 5; ++i) names += (i ? ", " : "") + empty[i];
        if (empty.size() > 5) names += ", ... (" + std::to_string(empty.size()) + " in all)";
        if (empty.size() == folder.classes.size()) {
            VKT_FAIL(root, ": no image files in any class folder (", names, "; extensions ", extension_list, ")");
        }
        VKT_FAIL(root, ": ", empty.size() == 1 ? "class folder " : "class folders ", names, " hold",
                 empty.size() == 1 ? "s" : "", " no image files (", extension_list, ")");
    }
    VKT_CHECK(folder.files.size() <= UINT32_MAX, root, ": more than 2^32 images");
    return folder;
}

// ---- the loader ----

struct ImageLoader::Impl {
    struct Slot {
        uint64_t position = UINT64_MAX; // the epoch position it holds once ready
        bool ready = false;
        bool ok = false;
        std::string error;
        std::vector<float> x;
    };

    ImageFolder folder;
    ImageLoaderOptions options;
    size_t floats = 0;

    // The epoch: order[position] = sample index.
    uint64_t epoch = 0;
    std::vector<uint32_t> order;
    std::vector<SkippedImage> skipped;

    std::mutex mutex;
    std::condition_variable work_cv; // workers wait for a free slot or the stop flag
    std::condition_variable done_cv; // the consumer waits for its slot
    std::vector<Slot> slots;
    uint64_t claimed = 0;  // next position a worker takes
    uint64_t consumed = 0; // next position the consumer takes
    bool stop = false;
    std::vector<std::thread> workers;
    bool running = false;

    uint64_t sample_seed(uint32_t index) const { return mix(mix(options.seed, epoch), index); }

    // Decodes and transforms position p into slot; never throws.
    void produce(uint64_t p, Slot& slot) {
        const uint32_t index = order[p];
        try {
            const Image image = decode_image(folder.files[index]);
            transform_image(image, options.transform, sample_seed(index), slot.x.data());
            slot.ok = true;
        } catch (const std::exception& e) {
            slot.ok = false;
            slot.error = e.what();
        }
    }

    void worker() {
        std::unique_lock<std::mutex> lock(mutex);
        for (;;) {
            work_cv.wait(lock, [&] { return stop || (claimed < order.size() && claimed < consumed + slots.size()); });
            if (stop) return;
            const uint64_t p = claimed++;
            Slot& slot = slots[p % slots.size()];
            lock.unlock();
            produce(p, slot);
            lock.lock();
            slot.position = p;
            slot.ready = true;
            done_cv.notify_all();
        }
    }

    void halt() {
        {
            std::lock_guard<std::mutex> lock(mutex);
            stop = true;
        }
        work_cv.notify_all();
        for (std::thread& t : workers) t.join();
        workers.clear();
        running = false;
    }

    // The sample at position `consumed`, waited for (or produced here without workers); advances consumed.
    Slot& take() {
        Slot& slot = slots[consumed % slots.size()];
        if (workers.empty()) {
            produce(consumed, slot);
        } else {
            std::unique_lock<std::mutex> lock(mutex);
            done_cv.wait(lock, [&] { return slot.ready && slot.position == consumed; });
        }
        return slot;
    }

    void release(Slot& slot) {
        if (workers.empty()) {
            ++consumed;
            return;
        }
        {
            std::lock_guard<std::mutex> lock(mutex);
            slot.ready = false;
            ++consumed;
        }
        work_cv.notify_all();
    }
};

ImageLoader::ImageLoader(ImageFolder folder, const ImageLoaderOptions& options) : m_impl(std::make_unique<Impl>()) {
    VKT_CHECK(options.batch_size > 0, "image loader: batch size must be positive");
    VKT_CHECK(options.queue_batches > 0, "image loader: queue_batches must be positive");
    VKT_CHECK(options.threads <= 256, "image loader: ", options.threads, " threads (at most 256)");
    VKT_CHECK(!folder.files.empty() && folder.files.size() == folder.labels.size(), folder.root,
              ": image folder has no samples (or labels and files differ in number)");
    options.transform.validate();
    m_impl->folder = std::move(folder);
    m_impl->options = options;
    m_impl->floats = size_t(3) * options.transform.crop * options.transform.crop;
    const size_t capacity = size_t(options.batch_size) * options.queue_batches + options.threads;
    m_impl->slots.resize(capacity);
    for (Impl::Slot& s : m_impl->slots) s.x.resize(m_impl->floats);
}

ImageLoader::~ImageLoader() {
    m_impl->halt();
}

const ImageFolder& ImageLoader::folder() const {
    return m_impl->folder;
}

size_t ImageLoader::sample_floats() const {
    return m_impl->floats;
}

const std::vector<SkippedImage>& ImageLoader::skipped() const {
    return m_impl->skipped;
}

void ImageLoader::start_epoch(uint64_t epoch) {
    Impl& m = *m_impl;
    m.halt();
    m.epoch = epoch;
    m.order.resize(m.folder.files.size());
    for (size_t i = 0; i < m.order.size(); ++i) m.order[i] = uint32_t(i);
    if (m.options.shuffle) {
        // Fisher-Yates with splitmix64 draws: the same order on every platform.
        uint64_t state = mix(m.options.seed, ~epoch);
        for (size_t i = m.order.size(); i > 1; --i) {
            const uint64_t limit = UINT64_MAX - UINT64_MAX % i;
            uint64_t r;
            do r = state = mix(state, i);
            while (r >= limit);
            std::swap(m.order[i - 1], m.order[size_t(r % i)]);
        }
    }
    m.skipped.clear();
    m.claimed = m.consumed = 0;
    m.stop = false;
    for (Impl::Slot& s : m.slots) {
        s.ready = false;
        s.position = UINT64_MAX;
    }
    m.running = true;
    for (uint32_t t = 0; t < m.options.threads; ++t) m.workers.emplace_back([&m] { m.worker(); });
}

bool ImageLoader::next(ImageBatch& batch) {
    Impl& m = *m_impl;
    batch.count = 0;
    batch.x.resize(size_t(m.options.batch_size) * m.floats);
    batch.labels.clear();
    batch.indices.clear();
    if (!m.running) return false;
    while (batch.count < m.options.batch_size && m.consumed < m.order.size()) {
        const uint32_t index = m.order[m.consumed];
        Impl::Slot& slot = m.take();
        if (slot.ok) {
            std::copy(slot.x.begin(), slot.x.end(), batch.x.begin() + ptrdiff_t(size_t(batch.count) * m.floats));
            batch.labels.push_back(m.folder.labels[index]);
            batch.indices.push_back(index);
            ++batch.count;
        } else if (m.options.skip_bad_images) {
            m.skipped.push_back({m.folder.files[index], slot.error});
        } else {
            const std::string error = slot.error;
            m.halt();
            throw Error(error);
        }
        m.release(slot);
    }
    const bool partial = batch.count < m.options.batch_size;
    if (batch.count == 0 || (partial && m.options.drop_last)) {
        m.halt();
        batch.count = 0;
        batch.x.clear();
        batch.labels.clear();
        batch.indices.clear();
        return false;
    }
    batch.x.resize(size_t(batch.count) * m.floats);
    return true;
}

} // namespace vktrain
