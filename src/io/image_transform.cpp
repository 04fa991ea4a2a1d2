// torchvision 0.14's transforms on PIL images, reproduced on 8-bit RGB so the tensors equal torchvision's: PIL's
// bilinear resampling (Pillow's libImaging/Resample.c: precompute_coeffs, 22-bit fixed point, horizontal pass
// first, 8-bit rounding between the passes), Resize's output size, CenterCrop's half-to-even offsets, the parameter
// sampling of RandomResizedCrop, ToTensor and Normalize in float.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/check.hpp"
#include "vktrain/images.hpp"

namespace vktrain {

namespace {

constexpr int precision_bits = 32 - 8 - 2;

// Per output pixel: the first input pixel, how many, and their fixed-point weights (ksize per output).
struct Coefficients {
    int ksize = 0;
    std::vector<int> first;
    std::vector<int> count;
    std::vector<int32_t> weights;
};

double bilinear(double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

// Pillow's precompute_coeffs + normalize_coeffs_8bpc for the bilinear filter (support 1), box [0, in_size).
Coefficients coefficients(int in_size, int out_size) {
    Coefficients c;
    const double scale = static_cast<double>(in_size) / out_size;
    const double filterscale = std::max(scale, 1.0);
    const double support = 1.0 * filterscale;
    c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
    c.first.resize(out_size);
    c.count.resize(out_size);
    c.weights.assign(size_t(out_size) * c.ksize, 0);
    std::vector<double> k(c.ksize);
    for (int xx = 0; xx < out_size; ++xx) {
        const double center = (xx + 0.5) * scale;
        const double ss = 1.0 / filterscale;
        // (int) truncates toward zero as in C, which for center - support + 0.5 > -1 is what Pillow relies on.
        const int xmin = std::max(static_cast<int>(center - support + 0.5), 0);
        const int xmax = std::min(static_cast<int>(center + support + 0.5), in_size) - xmin;
        double ww = 0.0;
        for (int x = 0; x < xmax; ++x) {
            k[x] = bilinear((x + xmin - center + 0.5) * ss);
            ww += k[x];
        }
        for (int x = 0; x < xmax; ++x) {
            const double w = ww != 0.0 ? k[x] / ww : k[x];
            c.weights[size_t(xx) * c.ksize + x] =
                static_cast<int32_t>(w < 0 ? -0.5 + w * (1 << precision_bits) : 0.5 + w * (1 << precision_bits));
        }
        c.first[xx] = xmin;
        c.count[xx] = xmax;
    }
    return c;
}

uint8_t clip8(int32_t v) {
    return static_cast<uint8_t>(std::clamp(v >> precision_bits, 0, 255));
}

// Rows [row0, row0 + rows) of `in`, resampled horizontally.
Image horizontal_pass(const Image& in, const Coefficients& c, int row0, int rows, uint32_t out_width) {
    Image out;
    out.width = out_width;
    out.height = static_cast<uint32_t>(rows);
    out.rgb.resize(size_t(out_width) * rows * 3);
    for (int y = 0; y < rows; ++y) {
        const uint8_t* src = in.rgb.data() + size_t(row0 + y) * in.width * 3;
        uint8_t* dst = out.rgb.data() + size_t(y) * out_width * 3;
        for (uint32_t xx = 0; xx < out_width; ++xx) {
            const int32_t* k = &c.weights[size_t(xx) * c.ksize];
            const uint8_t* p = src + size_t(c.first[xx]) * 3;
            int32_t s0 = 1 << (precision_bits - 1), s1 = s0, s2 = s0;
            for (int x = 0; x < c.count[xx]; ++x) {
                s0 += p[3 * x + 0] * k[x];
                s1 += p[3 * x + 1] * k[x];
                s2 += p[3 * x + 2] * k[x];
            }
            dst[3 * xx + 0] = clip8(s0);
            dst[3 * xx + 1] = clip8(s1);
            dst[3 * xx + 2] = clip8(s2);
        }
    }
    return out;
}

// `first` already relative to in's first row.
Image vertical_pass(const Image& in, const Coefficients& c, const std::vector<int>& first, uint32_t out_height) {
    Image out;
    out.width = in.width;
    out.height = out_height;
    out.rgb.resize(size_t(in.width) * out_height * 3);
    const size_t stride = size_t(in.width) * 3;
    // Row by row into an accumulator row: the same sums in the same order as Pillow's column loop, read sequentially.
    std::vector<int32_t> acc(stride);
    for (uint32_t yy = 0; yy < out_height; ++yy) {
        const int32_t* k = &c.weights[size_t(yy) * c.ksize];
        std::fill(acc.begin(), acc.end(), 1 << (precision_bits - 1));
        for (int y = 0; y < c.count[yy]; ++y) {
            const uint8_t* p = in.rgb.data() + size_t(first[yy] + y) * stride;
            const int32_t w = k[y];
            for (size_t xc = 0; xc < stride; ++xc) acc[xc] += p[xc] * w;
        }
        uint8_t* dst = out.rgb.data() + yy * stride;
        for (size_t xc = 0; xc < stride; ++xc) dst[xc] = clip8(acc[xc]);
    }
    return out;
}

// splitmix64: a small generator whose output is the same on every platform (std:: distributions are not).
class Random {
public:
    explicit Random(uint64_t seed) : m_state(seed) {}
    uint64_t next() {
        uint64_t z = (m_state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    double uniform(double lo, double hi) { return lo + (hi - lo) * (double(next() >> 11) * 0x1.0p-53); }
    // Uniform in [0, bound), unbiased.
    uint64_t below(uint64_t bound) {
        const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
        uint64_t r = next();
        while (r >= limit) r = next();
        return r % bound;
    }

private:
    uint64_t m_state;
};

// Python's round() of an integer / 2: half to even.
int64_t half_even_half(int64_t n) {
    const int64_t q = n >= 0 ? n / 2 : -((-n + 1) / 2); // floor
    if (n % 2 == 0) return q;
    return q % 2 == 0 ? q : q + 1;
}

CropBox crop_box(uint32_t width, uint32_t height, const ImageTransform& t, Random& random) {
    const double area = double(width) * height;
    const double log_lo = std::log(t.ratio_min), log_hi = std::log(t.ratio_max);
    for (int attempt = 0; attempt < 10; ++attempt) {
        const double target = area * random.uniform(t.scale_min, t.scale_max);
        const double ratio = std::exp(random.uniform(log_lo, log_hi));
        // Python's round(): half to even, as std::nearbyint in the default rounding mode.
        const auto w = static_cast<int64_t>(std::nearbyint(std::sqrt(target * ratio)));
        const auto h = static_cast<int64_t>(std::nearbyint(std::sqrt(target / ratio)));
        if (w > 0 && w <= int64_t{width} && h > 0 && h <= int64_t{height}) {
            CropBox box;
            box.top = int64_t(random.below(uint64_t(height - h + 1)));
            box.left = int64_t(random.below(uint64_t(width - w + 1)));
            box.width = uint32_t(w);
            box.height = uint32_t(h);
            return box;
        }
    }
    // Fallback: the whole image, clamped to the ratio range, centred.
    const double in_ratio = double(width) / height;
    int64_t w = width, h = height;
    if (in_ratio < t.ratio_min) {
        h = static_cast<int64_t>(std::nearbyint(double(width) / t.ratio_min));
    } else if (in_ratio > t.ratio_max) {
        w = static_cast<int64_t>(std::nearbyint(double(height) * t.ratio_max));
    }
    w = std::clamp<int64_t>(w, 1, width);
    h = std::clamp<int64_t>(h, 1, height);
    CropBox box;
    box.top = (int64_t{height} - h) / 2;
    box.left = (int64_t{width} - w) / 2;
    box.width = uint32_t(w);
    box.height = uint32_t(h);
    return box;
}

void check_image(const Image& image, const char* what) {
    VKT_CHECK(image.width > 0 && image.height > 0, what, ": empty image (", image.width, "x", image.height, ")");
    VKT_CHECK(image.rgb.size() == size_t(image.width) * image.height * 3, what, ": image of ", image.width, "x",
              image.height, " holds ", image.rgb.size(), " bytes, expected ", size_t(image.width) * image.height * 3);
}

} // namespace

Image resize_bilinear(const Image& image, uint32_t width, uint32_t height) {
    check_image(image, "resize_bilinear");
    VKT_CHECK(width > 0 && height > 0 && width <= 65535 && height <= 65535, "resize_bilinear: output size ", width, "x",
              height, " out of range (1..65535)");
    const bool need_horizontal = width != image.width;
    const bool need_vertical = height != image.height;
    if (!need_horizontal && !need_vertical) return image;
    const Coefficients vert = coefficients(int(image.height), int(height));
    std::vector<int> first = vert.first;
    if (!need_horizontal) return vertical_pass(image, vert, first, height);
    // Only the rows the vertical pass reads go through the horizontal one.
    const int row0 = vert.first.front();
    const int row1 = vert.first.back() + vert.count.back();
    const Image temp = horizontal_pass(image, coefficients(int(image.width), int(width)), row0, row1 - row0, width);
    if (!need_vertical) return temp;
    for (int& f : first) f -= row0;
    return vertical_pass(temp, vert, first, height);
}

Image resize_short_side(const Image& image, uint32_t size) {
    check_image(image, "resize_short_side");
    VKT_CHECK(size > 0, "resize_short_side: size 0");
    const bool portrait = image.width <= image.height;
    const uint64_t shorter = portrait ? image.width : image.height;
    const uint64_t longer = portrait ? image.height : image.width;
    // Python's int(size * long / short): a correctly rounded double quotient, truncated.
    const auto new_long = static_cast<uint64_t>(double(uint64_t{size} * longer) / double(shorter));
    VKT_CHECK(new_long <= 65535, "resize_short_side: resizing ", image.width, "x", image.height, " to a short side of ",
              size, " makes the long side ", new_long, " (over 65535)");
    return portrait ? resize_bilinear(image, size, uint32_t(new_long))
                    : resize_bilinear(image, uint32_t(new_long), size);
}

Image crop(const Image& image, int64_t left, int64_t top, uint32_t width, uint32_t height) {
    Image out;
    out.width = width;
    out.height = height;
    out.rgb.assign(size_t(width) * height * 3, 0);
    for (uint32_t y = 0; y < height; ++y) {
        const int64_t sy = top + y;
        if (sy < 0 || sy >= int64_t{image.height}) continue;
        const int64_t x0 = std::max<int64_t>(left, 0);
        const int64_t x1 = std::min<int64_t>(left + width, image.width);
        if (x1 <= x0) continue;
        std::memcpy(out.rgb.data() + (size_t(y) * width + size_t(x0 - left)) * 3,
                    image.rgb.data() + (size_t(sy) * image.width + size_t(x0)) * 3, size_t(x1 - x0) * 3);
    }
    return out;
}

Image center_crop(const Image& image, uint32_t width, uint32_t height) {
    // Larger than the image: torchvision pads (c - i) // 2 on the left/top first, so the crop starts there.
    const auto offset = [](uint32_t image_size, uint32_t crop_size) -> int64_t {
        if (crop_size > image_size) return -int64_t((crop_size - image_size) / 2);
        return half_even_half(int64_t{image_size} - crop_size);
    };
    return crop(image, offset(image.width, width), offset(image.height, height), width, height);
}

Image flip_horizontal(const Image& image) {
    Image out = image;
    for (uint32_t y = 0; y < image.height; ++y) {
        uint8_t* row = out.rgb.data() + size_t(y) * image.width * 3;
        for (uint32_t a = 0, b = image.width - 1; a < b; ++a, --b) {
            for (int c = 0; c < 3; ++c) std::swap(row[3 * a + c], row[3 * b + c]);
        }
    }
    return out;
}

ImageTransform ImageTransform::eval(uint32_t resize, uint32_t crop) {
    ImageTransform t;
    t.mode = Mode::eval;
    t.resize = resize;
    t.crop = crop;
    return t;
}

ImageTransform ImageTransform::train(uint32_t crop) {
    ImageTransform t;
    t.mode = Mode::train;
    t.crop = crop;
    return t;
}

void ImageTransform::validate() const {
    VKT_CHECK(crop > 0 && crop <= 8192, "image transform: crop ", crop, " out of range (1..8192)");
    if (mode == Mode::eval) VKT_CHECK(resize > 0, "image transform: resize must be positive");
    VKT_CHECK(scale_min > 0 && scale_min <= scale_max && scale_max <= 1.0, "image transform: scale range [", scale_min,
              ", ", scale_max, "] must lie in (0, 1] with min <= max");
    VKT_CHECK(ratio_min > 0 && ratio_min <= ratio_max && std::isfinite(ratio_max), "image transform: ratio range [",
              ratio_min, ", ", ratio_max, "] must be positive with min <= max");
    VKT_CHECK(flip_probability >= 0 && flip_probability <= 1, "image transform: flip probability ", flip_probability,
              " outside [0, 1]");
    for (int c = 0; c < 3; ++c) {
        VKT_CHECK(std[c] > 0 && std::isfinite(std[c]) && std::isfinite(mean[c]),
                  "image transform: mean and std must be finite and std positive");
    }
}

CropBox random_resized_crop_box(uint32_t width, uint32_t height, const ImageTransform& transform, uint64_t seed) {
    VKT_CHECK(width > 0 && height > 0, "random_resized_crop_box: empty image");
    Random random(seed);
    return crop_box(width, height, transform, random);
}

void transform_image(const Image& image, const ImageTransform& t, uint64_t seed, float* out) {
    check_image(image, "transform_image");
    Image result;
    if (t.mode == ImageTransform::Mode::eval) {
        result = center_crop(resize_short_side(image, t.resize), t.crop, t.crop);
    } else {
        Random random(seed);
        const CropBox box = crop_box(image.width, image.height, t, random);
        result = resize_bilinear(crop(image, box.left, box.top, box.width, box.height), t.crop, t.crop);
        // torchvision: flip when torch.rand(1) < p.
        if (random.uniform(0.0, 1.0) < t.flip_probability) result = flip_horizontal(result);
    }
    const size_t plane = size_t(t.crop) * t.crop;
    for (int c = 0; c < 3; ++c) {
        float* dst = out + c * plane;
        const float mean = t.mean[c], std = t.std[c];
        // ToTensor divides by 255 in float; Normalize subtracts, then divides (not a multiply by 1/std).
        for (size_t i = 0; i < plane; ++i) dst[i] = (float(result.rgb[3 * i + size_t(c)]) / 255.0f - mean) / std;
    }
}

} // namespace vktrain
