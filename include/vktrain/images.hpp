// Images as training data: PNG and JPEG decoding (Debian's libpng and libjpeg-turbo), torchvision's ImageFolder
// layout, its evaluation transform and training augmentation, and a loader that decodes on worker threads.
// Every failure throws vktrain::Error with a one-line message naming the file and the problem; nothing here aborts.
// Built without image support (CMake VKTRAIN_IMAGES=OFF, or AUTO without libpng / libjpeg), decoding throws an error
// that says so and image_support() is false; the folder scan and the transforms work either way.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace vktrain {

// 8-bit RGB, row-major, pixels interleaved (R, G, B): width * height * 3 bytes.
struct Image {
    uint32_t width = 0;
    uint32_t height = 0;
    std::vector<uint8_t> rgb;
};

// Whether this build decodes PNG and JPEG.
bool image_support();

// Decodes a PNG or JPEG file (chosen by its signature, not its name) to 8-bit RGB, as PIL's
// Image.open(path).convert("RGB") does: greyscale is replicated into the three channels, alpha is dropped (not
// composited), palettes are expanded, 16-bit samples keep their high byte, 1/2/4-bit greyscale is scaled to 0..255;
// JPEG with libjpeg's defaults (islow DCT, fancy upsampling), as PIL decodes it. No gamma or colour-profile
// conversion. Refused: CMYK/YCCK JPEG, images over max_image_pixels() pixels, truncated files (a JPEG whose data ends
// early, a PNG without all its image data). Messages start with the path: "x.png: not a PNG file",
// "x.jpg: truncated JPEG file (the data ends before the image does)", "x.png: corrupt PNG file: IDAT: CRC error".
Image decode_image(const std::string& path);
// The same from memory; `name` stands for the file in messages and decides "not a PNG/JPEG file" by its extension.
Image decode_image(const uint8_t* data, size_t size, const std::string& name);
// 178,956,970: twice PIL's MAX_IMAGE_PIXELS, where PIL refuses an image as a decompression bomb.
uint64_t max_image_pixels();

// ---- transforms (torchvision 0.14 on PIL images, reproduced bit for bit on 8-bit RGB) ----

// PIL's Image.resize(..., BILINEAR): a separable triangle filter whose support widens with the downscale factor
// (antialiased), horizontal pass first, coefficients in 22-bit fixed point, each pass rounded to 8 bits.
Image resize_bilinear(const Image& image, uint32_t width, uint32_t height);
// torchvision's Resize(size): the short side becomes `size`, the long side int(size * long / short).
Image resize_short_side(const Image& image, uint32_t size);
// The rectangle [left, left + width) x [top, top + height); pixels outside the image are 0.
Image crop(const Image& image, int64_t left, int64_t top, uint32_t width, uint32_t height);
// torchvision's CenterCrop: offsets round((image - crop) / 2) with Python's half-to-even rounding; a crop larger than
// the image pads with zeros as torchvision does.
Image center_crop(const Image& image, uint32_t width, uint32_t height);
Image flip_horizontal(const Image& image);

struct ImageTransform {
    enum class Mode { eval, train };
    // eval: Resize(resize), CenterCrop(crop). train: RandomResizedCrop(crop, scale, ratio) and RandomHorizontalFlip.
    // Both then ToTensor and Normalize(mean, std).
    Mode mode = Mode::eval;
    uint32_t resize = 256;
    uint32_t crop = 224;
    double scale_min = 0.08, scale_max = 1.0;            // of the image's area
    double ratio_min = 3.0 / 4.0, ratio_max = 4.0 / 3.0; // width / height
    double flip_probability = 0.5;
    std::array<float, 3> mean{0.485f, 0.456f, 0.406f}; // ImageNet's
    std::array<float, 3> std{0.229f, 0.224f, 0.225f};

    static ImageTransform eval(uint32_t resize = 256, uint32_t crop = 224);
    static ImageTransform train(uint32_t crop = 224);
    // Throws when a field is out of range (crop 0, scale outside (0, 1], ...).
    void validate() const;
};

// The crop RandomResizedCrop picks (torchvision's get_params: ten tries of a uniform area fraction and a log-uniform
// aspect ratio, then the whole image clamped to the ratio range), drawn from a generator seeded by `seed`.
struct CropBox {
    int64_t left = 0, top = 0;
    uint32_t width = 0, height = 0;
};
CropBox random_resized_crop_box(uint32_t width, uint32_t height, const ImageTransform& transform, uint64_t seed);

// Applies the transform and writes [3, crop, crop] floats (channel-major) to out: (v / 255 - mean) / std in float,
// as ToTensor + Normalize compute it. `seed` draws the training augmentation (ignored in eval).
void transform_image(const Image& image, const ImageTransform& transform, uint64_t seed, float* out);

// ---- folders ----

// torchvision's ImageFolder layout: one sub-folder per class under root, classes sorted by name (byte order, as
// Python sorts), label = index in that order; the files of a class are every regular file under its folder
// (recursively, symbolic links followed) whose extension is one of torchvision's image extensions (case-insensitive),
// in the order of sorted(os.walk(...)) and then sorted names, so labels and sample indices equal torchvision's.
// Errors: root missing or not a folder, no class folders, a class with no image file ("<root>/cat: no image files
// (.jpg, .jpeg, .png, ...)"). Files of the extensions torchvision accepts but vktrain cannot decode (.bmp, .webp,
// ...) are listed too; decoding them fails naming the format (or they are skipped and counted).
struct ImageFolder {
    std::string root;
    std::vector<std::string> classes;
    std::vector<std::string> files; // paths, root-prefixed
    std::vector<int32_t> labels;
};
ImageFolder scan_image_folder(const std::string& root);

// ---- the loader ----

struct ImageLoaderOptions {
    uint32_t batch_size = 32;
    ImageTransform transform;
    bool shuffle = false;   // a new order each epoch, drawn from (seed, epoch)
    bool drop_last = false; // drop a last partial batch
    uint64_t seed = 0;      // the order and the augmentation: the same seed gives the same batches at any thread count
    uint32_t threads = 2;   // decoding threads; 0 decodes on the thread that calls next()
    uint32_t queue_batches = 2; // how many batches' samples may be decoded ahead of the consumer
    // An unreadable or corrupt file is skipped (and listed in skipped()) instead of failing next(). The batch is
    // filled with the next good samples, so batches stay full and the order of the good samples is kept.
    bool skip_bad_images = false;
};

struct ImageBatch {
    uint32_t count = 0;
    std::vector<float> x;          // count * 3 * crop * crop
    std::vector<int32_t> labels;   // count
    std::vector<uint32_t> indices; // the samples' indices in ImageFolder::files
};

struct SkippedImage {
    std::string path;
    std::string error; // the one-line message decoding gave
};

class ImageLoader {
public:
    ImageLoader(ImageFolder folder, const ImageLoaderOptions& options);
    ~ImageLoader();
    ImageLoader(const ImageLoader&) = delete;
    ImageLoader& operator=(const ImageLoader&) = delete;

    const ImageFolder& folder() const;
    size_t sample_floats() const; // 3 * crop * crop
    // Starts epoch `epoch` (its order and augmentation); the workers start decoding at once. Ends any epoch running.
    void start_epoch(uint64_t epoch);
    // The next batch of the epoch; false (and count 0) when the epoch is over. Without skip_bad_images a file that
    // does not decode throws its error (and ends the epoch).
    bool next(ImageBatch& batch);
    // The files skipped so far in this epoch.
    const std::vector<SkippedImage>& skipped() const;

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

} // namespace vktrain
