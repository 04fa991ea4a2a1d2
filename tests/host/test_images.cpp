// Image folders without a reference library: PNGs written here (zlib), decoding and its errors, PIL's bilinear
// resampling on cases worked by hand, torchvision's crop offsets, the folder scan, and the loader's determinism and
// skip counting. tests/python/image_folder.py checks against PIL and torchvision themselves.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <functional>
#include <filesystem>
#include <fstream>

#include "scratch_dir.hpp"
#include "vktrain/error.hpp"
#include "vktrain/images.hpp"

namespace vktrain {
namespace {

namespace fs = std::filesystem;

void put32(std::string& s, uint32_t v) {
    for (int i = 3; i >= 0; --i) s.push_back(char((v >> (8 * i)) & 0xff));
}

void chunk(std::string& png, const char* kind, const std::string& data) {
    put32(png, uint32_t(data.size()));
    const std::string body = std::string(kind, 4) + data;
    png += body;
    put32(png, uint32_t(crc32(0, reinterpret_cast<const Bytef*>(body.data()), uInt(body.size()))));
}

// An 8-bit PNG: colour type 2 (RGB, 3 bytes a pixel) or 0 (grey, 1 byte), filter 0 on every row.
std::string make_png(uint32_t w, uint32_t h, const std::vector<uint8_t>& pixels, int color_type = 2) {
    const uint32_t bpp = color_type == 2 ? 3 : 1;
    std::string raw;
    for (uint32_t y = 0; y < h; ++y) {
        raw.push_back('\0');
        raw.append(reinterpret_cast<const char*>(pixels.data()) + size_t(y) * w * bpp, size_t(w) * bpp);
    }
    uLongf size = compressBound(uLong(raw.size()));
    std::string z(size, '\0');
    compress(reinterpret_cast<Bytef*>(&z[0]), &size, reinterpret_cast<const Bytef*>(raw.data()), uLong(raw.size()));
    z.resize(size);
    std::string png = "\x89PNG\r\n\x1a\n";
    std::string ihdr;
    put32(ihdr, w);
    put32(ihdr, h);
    ihdr += std::string{char(8), char(color_type), 0, 0, 0};
    chunk(png, "IHDR", ihdr);
    chunk(png, "IDAT", z);
    chunk(png, "IEND", "");
    return png;
}

Image gradient(uint32_t w, uint32_t h) {
    Image im;
    im.width = w;
    im.height = h;
    for (uint32_t y = 0; y < h; ++y) {
        for (uint32_t x = 0; x < w; ++x) {
            im.rgb.push_back(uint8_t(x));
            im.rgb.push_back(uint8_t(y));
            im.rgb.push_back(uint8_t((x * 7 + y * 3) & 0xff));
        }
    }
    return im;
}

void write(const fs::path& p, const std::string& bytes) {
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << bytes;
}

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return "(no error)";
}

#define REQUIRE_IMAGES()                                                                                               \
    if (!image_support()) GTEST_SKIP() << "built without VKTRAIN_IMAGES"

TEST(Images, DecodesPngRgbAndGrey) {
    REQUIRE_IMAGES();
    const Image g = gradient(7, 5);
    const std::string png = make_png(7, 5, g.rgb);
    const Image d = decode_image(reinterpret_cast<const uint8_t*>(png.data()), png.size(), "g.png");
    EXPECT_EQ(d.width, 7u);
    EXPECT_EQ(d.height, 5u);
    EXPECT_EQ(d.rgb, g.rgb);
    const std::vector<uint8_t> grey = {0, 50, 100, 150, 200, 250};
    const std::string gpng = make_png(3, 2, grey, 0);
    const Image dg = decode_image(reinterpret_cast<const uint8_t*>(gpng.data()), gpng.size(), "grey.png");
    ASSERT_EQ(dg.rgb.size(), 18u);
    for (size_t i = 0; i < grey.size(); ++i) {
        EXPECT_EQ(dg.rgb[3 * i], grey[i]);
        EXPECT_EQ(dg.rgb[3 * i + 1], grey[i]);
        EXPECT_EQ(dg.rgb[3 * i + 2], grey[i]);
    }
}

TEST(Images, BadFilesAreOneLineErrorsNamingTheFile) {
    REQUIRE_IMAGES();
    const std::string png = make_png(16, 16, gradient(16, 16).rgb);
    const auto decode = [](const std::string& bytes, const std::string& name) {
        return error_of([&] { decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), name); });
    };
    EXPECT_EQ(decode("", "e.png").rfind("e.png: empty file", 0), 0u);
    EXPECT_EQ(decode("GIF89a", "x.png").rfind("x.png: not a PNG file", 0), 0u);
    EXPECT_EQ(decode("GIF89a", "x.JPG").rfind("x.JPG: not a JPEG file", 0), 0u);
    EXPECT_EQ(decode("GIF89a", "x.gif").rfind("x.gif: unsupported image format \"gif\"", 0), 0u);
    EXPECT_EQ(decode(png.substr(0, png.size() / 2), "t.png").rfind("t.png: truncated PNG file", 0), 0u);
    EXPECT_EQ(decode(png.substr(0, 20), "h.png").rfind("h.png: truncated PNG file", 0), 0u);
    std::string bad_crc = png;
    bad_crc[bad_crc.find("IDAT") + 8] ^= 0x55;
    EXPECT_EQ(decode(bad_crc, "c.png").rfind("c.png: corrupt PNG file: IDAT: ", 0), 0u) << decode(bad_crc, "c.png");
    // The same damage with the chunk's CRC left alone on an unimportant byte: libpng's CRC check names it.
    std::string crc_only = png;
    crc_only[crc_only.find("IDAT") + 4 + 2 + 5] ^= 0x01;
    EXPECT_NE(decode(crc_only, "d.png").find("d.png: corrupt PNG file: IDAT: "), std::string::npos);
    // A header claiming 20000 x 20000 pixels: refused before anything of that size is allocated.
    std::string bomb = "\x89PNG\r\n\x1a\n", ihdr;
    put32(ihdr, 20000);
    put32(ihdr, 20000);
    ihdr += std::string{char(8), char(2), 0, 0, 0};
    chunk(bomb, "IHDR", ihdr);
    EXPECT_NE(decode(bomb, "b.png").find("b.png: 20000x20000 pixels is over the limit"), std::string::npos);
    const std::string jpeg_cut = std::string("\xff\xd8\xff\xe0\x00\x10JFIF", 10);
    EXPECT_EQ(decode(jpeg_cut, "j.jpg").rfind("j.jpg: ", 0), 0u);
    for (const std::string& m : {decode(png.substr(0, 40), "t.png"), decode(bad_crc, "c.png"), decode(jpeg_cut, "j")}) {
        EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
    EXPECT_EQ(error_of([] { decode_image("/nonexistent/x.png"); }).rfind("/nonexistent/x.png: cannot open", 0), 0u);
}

TEST(Images, BilinearResizeIsPillowsFixedPoint) {
    // 2 -> 1: both weights 1/2 in 22-bit fixed point plus the rounding half: (10 + 21) / 2 = 15.5 rounds up to 16.
    Image two;
    two.width = 2;
    two.height = 1;
    two.rgb = {10, 0, 255, 21, 1, 254};
    const Image one = resize_bilinear(two, 1, 1);
    EXPECT_EQ(one.rgb, (std::vector<uint8_t>{16, 1, 255}));
    // 1 -> 3 (upscale): support 1, every output pixel is the single input pixel.
    Image single;
    single.width = single.height = 1;
    single.rgb = {9, 99, 199};
    const Image three = resize_bilinear(single, 3, 1);
    EXPECT_EQ(three.rgb, (std::vector<uint8_t>{9, 99, 199, 9, 99, 199, 9, 99, 199}));
    // 4 -> 2 on a ramp 0, 40, 80, 120: scale 2, support 2, centre 1, inputs [0, 3) weighted .75 .75 .25 (then / 1.75).
    Image ramp;
    ramp.width = 4;
    ramp.height = 1;
    ramp.rgb = {0, 0, 0, 40, 40, 40, 80, 80, 80, 120, 120, 120};
    const Image half = resize_bilinear(ramp, 2, 1);
    EXPECT_EQ(half.rgb[0], uint8_t(std::floor((40 * .75 + 80 * .25) / 1.75 + 0.5)));
    EXPECT_EQ(resize_bilinear(ramp, 4, 1).rgb, ramp.rgb);
    // Resize(256) of 300 x 200: int(256 * 300 / 200) = 384.
    const Image r = resize_short_side(gradient(300, 200), 256);
    EXPECT_EQ(r.width, 384u);
    EXPECT_EQ(r.height, 256u);
    const Image p = resize_short_side(gradient(33, 100), 10); // int(10 * 100 / 33) = 30
    EXPECT_EQ(p.width, 10u);
    EXPECT_EQ(p.height, 30u);
}

TEST(Images, CenterCropRoundsHalfToEvenAndPadsLikeTorchvision) {
    // (257 - 224) / 2 = 16.5 -> 16; (259 - 224) / 2 = 17.5 -> 18: the first column's value is its x.
    EXPECT_EQ(center_crop(gradient(257, 230), 224, 224).rgb[0], 16);
    EXPECT_EQ(center_crop(gradient(259, 230), 224, 224).rgb[0], 18);
    EXPECT_EQ(center_crop(gradient(259, 230), 224, 224).rgb[1], 3); // (230 - 224) / 2
    // Larger than the image: padded with zeros, (6 - 3) // 2 = 1 column on the left, 2 on the right.
    const Image padded = center_crop(gradient(3, 3), 6, 3);
    const std::vector<uint8_t> red = {padded.rgb[0], padded.rgb[3],  padded.rgb[6],
                                      padded.rgb[9], padded.rgb[12], padded.rgb[15]};
    EXPECT_EQ(red, (std::vector<uint8_t>{0, 0, 1, 2, 0, 0}));
    EXPECT_EQ(padded.rgb[3 * 3 + 2], 14); // the original (2, 0): blue 7 * 2
    EXPECT_EQ(flip_horizontal(gradient(5, 1)).rgb[0], 4);
}

TEST(Images, RandomResizedCropFollowsTorchvisionsRanges) {
    const ImageTransform t = ImageTransform::train(32);
    int flips_differ = 0;
    for (uint64_t seed = 0; seed < 2000; ++seed) {
        const CropBox b = random_resized_crop_box(200, 120, t, seed);
        ASSERT_GE(b.left, 0);
        ASSERT_GE(b.top, 0);
        ASSERT_LE(b.left + b.width, 200);
        ASSERT_LE(b.top + b.height, 120);
        const double area = double(b.width) * b.height / (200.0 * 120.0);
        EXPECT_GT(area, 0.07);
        const double ratio = double(b.width) / b.height;
        // The rounding of w and h moves a small box's ratio a little outside [3/4, 4/3].
        EXPECT_GT(ratio, 0.7 - 2.0 / b.height);
        EXPECT_LT(ratio, 1.34 + 2.0 / b.height);
        const CropBox again = random_resized_crop_box(200, 120, t, seed);
        EXPECT_EQ(again.left, b.left);
        EXPECT_EQ(again.width, b.width);
        flips_differ += random_resized_crop_box(200, 120, t, seed + 1).width != b.width;
    }
    EXPECT_GT(flips_differ, 1500);
    // A very wide image: the ten tries fail often; the fallback keeps the ratio at most 4/3, centred.
    const CropBox wide = random_resized_crop_box(1000, 2, t, 1);
    EXPECT_LE(wide.width, 3u);
    EXPECT_EQ(wide.height, 2u);
}

TEST(Images, TransformWritesNormalisedChannelMajorFloats) {
    Image im;
    im.width = im.height = 1;
    im.rgb = {255, 0, 128};
    ImageTransform t = ImageTransform::eval(1, 1);
    float out[3];
    transform_image(im, t, 0, out);
    EXPECT_EQ(out[0], (255.0f / 255.0f - 0.485f) / 0.229f);
    EXPECT_EQ(out[1], (0.0f - 0.456f) / 0.224f);
    EXPECT_EQ(out[2], (128.0f / 255.0f - 0.406f) / 0.225f);
    t.crop = 0;
    EXPECT_NE(error_of([&] { t.validate(); }).find("crop 0"), std::string::npos);
}

class ImageFolderTest : public ::testing::Test {
protected:
    void SetUp() override { m_root = fs::path(m_scratch.path()) / "root"; }
    void add(const std::string& rel, uint8_t value, uint32_t size = 12) {
        std::vector<uint8_t> px(size_t(size) * size * 3);
        for (size_t i = 0; i < px.size(); ++i) px[i] = uint8_t(value + i % 7);
        write(m_root / rel, make_png(size, size, px));
    }
    vkt_test::ScratchDir m_scratch{"images"};
    fs::path m_root;
};

TEST_F(ImageFolderTest, ScansLikeTorchvision) {
    add("dog/b.png", 1);
    add("dog/A.PNG", 2);
    add("dog/sub/z.jpg", 3);
    add("dog/sub-a/y.png", 4);
    add("cat/x.jpeg", 5);
    write(m_root / "cat/readme.txt", "ignored");
    write(m_root / "loose.png", "ignored: not in a class folder");
    const ImageFolder f = scan_image_folder(m_root.string());
    EXPECT_EQ(f.classes, (std::vector<std::string>{"cat", "dog"}));
    const std::string r = m_root.string();
    EXPECT_EQ(f.files, (std::vector<std::string>{r + "/cat/x.jpeg", r + "/dog/A.PNG", r + "/dog/b.png",
                                                 r + "/dog/sub/z.jpg", r + "/dog/sub-a/y.png"}));
    EXPECT_EQ(f.labels, (std::vector<int32_t>{0, 1, 1, 1, 1}));
}

TEST_F(ImageFolderTest, FolderErrors) {
    const std::string r = m_root.string();
    EXPECT_EQ(error_of([&] { scan_image_folder(r); }).rfind(r + ": no such folder", 0), 0u);
    add("x.png", 1);
    EXPECT_NE(error_of([&] { scan_image_folder(r); }).find(": no class folders"), std::string::npos);
    fs::create_directories(m_root / "empty");
    add("full/a.png", 1);
    EXPECT_NE(error_of([&] { scan_image_folder(r); }).find("class folder empty holds no image files"),
              std::string::npos);
    fs::remove_all(m_root / "full");
    EXPECT_NE(error_of([&] { scan_image_folder(r); }).find("no image files in any class folder"), std::string::npos);
}

std::vector<std::string> run_epoch(ImageLoader& loader, uint64_t epoch, std::vector<float>* all = nullptr) {
    loader.start_epoch(epoch);
    std::vector<std::string> batches;
    ImageBatch b;
    while (loader.next(b)) {
        std::string s = std::to_string(b.count) + ":";
        for (uint32_t i = 0; i < b.count; ++i) s += " " + std::to_string(b.indices[i]);
        batches.push_back(s);
        if (all) all->insert(all->end(), b.x.begin(), b.x.end());
    }
    return batches;
}

TEST_F(ImageFolderTest, LoaderIsDeterministicAtAnyThreadCount) {
    REQUIRE_IMAGES();
    for (int i = 0; i < 23; ++i) add((i % 3 ? "a/" : "b/") + std::to_string(i) + ".png", uint8_t(i * 9), 10 + i % 5);
    const ImageFolder f = scan_image_folder(m_root.string());
    for (const ImageTransform& t : {ImageTransform::eval(10, 8), ImageTransform::train(8)}) {
        ImageLoaderOptions o;
        o.batch_size = 5;
        o.shuffle = true;
        o.seed = 3;
        o.transform = t;
        std::vector<float> x0, x1, x4;
        o.threads = 0;
        ImageLoader l0(f, o);
        const auto b0 = run_epoch(l0, 1, &x0);
        o.threads = 1;
        ImageLoader l1(f, o);
        const auto b1 = run_epoch(l1, 1, &x1);
        o.threads = 4;
        o.queue_batches = 1;
        ImageLoader l4(f, o);
        const auto b4 = run_epoch(l4, 1, &x4);
        EXPECT_EQ(b0, b1);
        EXPECT_EQ(b0, b4);
        EXPECT_EQ(x0, x1);
        EXPECT_EQ(x0, x4);
        ASSERT_EQ(b0.size(), 5u); // 23 = 4 * 5 + 3
        EXPECT_EQ(b0.back().substr(0, 2), "3:");
        EXPECT_NE(run_epoch(l4, 2), b0); // another epoch, another order
        o.drop_last = true;
        ImageLoader ld(f, o);
        EXPECT_EQ(run_epoch(ld, 1).size(), 4u);
    }
}

TEST_F(ImageFolderTest, BadImagesFailOrAreSkippedAndCounted) {
    REQUIRE_IMAGES();
    for (int i = 0; i < 9; ++i) add("a/" + std::to_string(i) + ".png", uint8_t(i));
    write(m_root / "a/3.png", "not a png");
    const std::string png = make_png(4, 4, std::vector<uint8_t>(48, 7));
    write(m_root / "a/6.png", png.substr(0, png.size() - 20));
    ImageLoaderOptions o;
    o.batch_size = 4;
    o.threads = 2;
    o.transform = ImageTransform::eval(8, 8);
    {
        ImageLoader loader(scan_image_folder(m_root.string()), o);
        loader.start_epoch(0);
        ImageBatch b;
        EXPECT_EQ(error_of([&] {
                      while (loader.next(b)) {
                      }
                  }).rfind((m_root / "a/3.png").string() + ": not a PNG file", 0),
                  0u);
    }
    o.skip_bad_images = true;
    ImageLoader loader(scan_image_folder(m_root.string()), o);
    const auto batches = run_epoch(loader, 0);
    EXPECT_EQ(batches, (std::vector<std::string>{"4: 0 1 2 4", "3: 5 7 8"}));
    ASSERT_EQ(loader.skipped().size(), 2u);
    EXPECT_EQ(loader.skipped()[0].path, (m_root / "a/3.png").string());
    EXPECT_NE(loader.skipped()[1].error.find("truncated PNG file"), std::string::npos);
}

} // namespace
} // namespace vktrain
