// PNG (libpng) and JPEG (libjpeg-turbo) to 8-bit RGB. Both libraries report errors through a callback that must not
// return; the callbacks longjmp back to a setjmp in a small function that holds only plain C data (no C++ object with
// a destructor lives in any frame a longjmp crosses: those frames are the libraries' own and the callback's), keep the
// message in a fixed char array, and the caller, outside those frames, throws vktrain::Error. The whole file is read
// into memory first, so truncation is found by the read callbacks and named as such.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/check.hpp"
#include "vktrain/images.hpp"

#if VKTRAIN_HAVE_IMAGES
#include <csetjmp>
// jpeglib.h needs size_t and FILE declared first.
#include <jerror.h>
#include <jpeglib.h>
#include <png.h>
#endif

namespace vktrain {

namespace {

constexpr uint64_t pixel_limit = 178956970; // 2 * PIL's Image.MAX_IMAGE_PIXELS (89,478,485)

std::string lower_extension(const std::string& name) {
    std::string ext = std::filesystem::path(name).extension().string();
    for (char& c : ext) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    return ext;
}

std::vector<uint8_t> read_whole_file(const std::string& path) {
    std::error_code ec;
    VKT_CHECK(!std::filesystem::is_directory(path, ec), path, ": cannot open: is a directory");
    errno = 0;
    std::FILE* f = std::fopen(path.c_str(), "rb");
    VKT_CHECK(f != nullptr, path, ": cannot open: ", errno != 0 ? std::strerror(errno) : "unknown error");
    std::vector<uint8_t> data;
    uint8_t chunk[1 << 16];
    for (;;) {
        const size_t got = std::fread(chunk, 1, sizeof chunk, f);
        data.insert(data.end(), chunk, chunk + got);
        if (got < sizeof chunk) break;
    }
    const bool failed = std::ferror(f) != 0;
    const int err = errno;
    std::fclose(f);
    VKT_CHECK(!failed, path, ": read error: ", err != 0 ? std::strerror(err) : "I/O error");
    return data;
}

#if VKTRAIN_HAVE_IMAGES

void check_size(const std::string& name, uint64_t width, uint64_t height) {
    VKT_CHECK(width > 0 && height > 0, name, ": image has no pixels (", width, "x", height, ")");
    VKT_CHECK(width * height <= pixel_limit, name, ": ", width, "x", height, " pixels is over the limit of ",
              pixel_limit, " (a decompression bomb?)");
}

// ---- PNG ----

struct PngState {
    const uint8_t* data;
    size_t size;
    size_t pos;
    bool truncated;
    char message[256];
    std::jmp_buf jump;
};

[[noreturn]] void png_error_callback(png_structp png, png_const_charp message) {
    auto* s = static_cast<PngState*>(png_get_error_ptr(png));
    std::snprintf(s->message, sizeof s->message, "%s", message != nullptr ? message : "unknown error");
    std::longjmp(s->jump, 1);
}

void png_warning_callback(png_structp, png_const_charp) {
    // Warnings (a bad ancillary chunk's CRC, extra data after the image) leave the pixels intact, as PIL sees them.
}

void png_read_callback(png_structp png, png_bytep out, size_t count) {
    auto* s = static_cast<PngState*>(png_get_io_ptr(png));
    if (s->size - s->pos < count) {
        s->truncated = true;
        png_error(png, "truncated");
    }
    std::memcpy(out, s->data + s->pos, count);
    s->pos += count;
}

struct PngLayout {
    png_uint_32 width;
    png_uint_32 height;
    size_t rowbytes;
    int channels;
    int passes;
};

// Reads the header and sets the transformations to 8-bit RGB. False: s.message says why.
bool png_begin(PngState& s, png_structp png, png_infop info, PngLayout& layout) {
    if (setjmp(s.jump)) return false;
    png_set_read_fn(png, &s, png_read_callback);
    png_read_info(png, info);
    layout.width = png_get_image_width(png, info);
    layout.height = png_get_image_height(png, info);
    const int color = png_get_color_type(png, info);
    const int depth = png_get_bit_depth(png, info);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    // PIL keeps the high byte of 16-bit RGB(A) samples (rawmode "RGB;16B"); the same for greyscale, where PIL's own
    // convert("RGB") from mode I would clip at 255 instead.
    if (depth == 16) png_set_strip_16(png);
    // Alpha, and a palette's transparency that the expansion turns into alpha, are dropped as convert("RGB") does.
    png_set_strip_alpha(png);
    if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    layout.passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    layout.rowbytes = png_get_rowbytes(png, info);
    layout.channels = png_get_channels(png, info);
    return true;
}

bool png_rows(PngState& s, png_structp png, png_bytepp rows) {
    if (setjmp(s.jump)) return false;
    png_read_image(png, rows);
    return true;
}

class PngRead {
public:
    explicit PngRead(PngState& s) {
        m_png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &s, png_error_callback, png_warning_callback);
        if (m_png != nullptr) m_info = png_create_info_struct(m_png);
    }
    ~PngRead() { png_destroy_read_struct(&m_png, m_info != nullptr ? &m_info : nullptr, nullptr); }
    PngRead(const PngRead&) = delete;
    PngRead& operator=(const PngRead&) = delete;
    png_structp png() const { return m_png; }
    png_infop info() const { return m_info; }

private:
    png_structp m_png = nullptr;
    png_infop m_info = nullptr;
};

[[noreturn]] void png_fail(const std::string& name, const PngState& s) {
    if (s.truncated) VKT_FAIL(name, ": truncated PNG file (the data ends before the image does)");
    VKT_FAIL(name, ": corrupt PNG file: ", s.message);
}

Image decode_png(const uint8_t* data, size_t size, const std::string& name) {
    PngState s{};
    s.data = data;
    s.size = size;
    PngRead read(s);
    VKT_CHECK(read.png() != nullptr && read.info() != nullptr, name, ": out of memory creating a PNG decoder");
    // IHDR comes first in every PNG: its size is checked before libpng reads on (to the first IDAT).
    if (size >= 24 && std::memcmp(data + 12, "IHDR", 4) == 0) {
        const auto be32 = [&](size_t at) {
            return uint64_t{data[at]} << 24 | uint64_t{data[at + 1]} << 16 | uint64_t{data[at + 2]} << 8 | data[at + 3];
        };
        check_size(name, be32(16), be32(20));
    }
    PngLayout layout{};
    if (!png_begin(s, read.png(), read.info(), layout)) png_fail(name, s);
    check_size(name, layout.width, layout.height);
    VKT_CHECK(layout.channels == 3 && layout.rowbytes == size_t{layout.width} * 3, name, ": PNG decodes to ",
              layout.channels, " channels, expected RGB");
    Image image;
    image.width = layout.width;
    image.height = layout.height;
    image.rgb.resize(layout.rowbytes * layout.height);
    std::vector<png_bytep> rows(layout.height);
    for (size_t y = 0; y < rows.size(); ++y) rows[y] = image.rgb.data() + y * layout.rowbytes;
    if (!png_rows(s, read.png(), rows.data())) png_fail(name, s);
    return image;
}

// ---- JPEG ----

struct JpegState {
    jpeg_error_mgr manager; // first: cinfo->err points here and is cast back
    bool truncated;
    char message[JMSG_LENGTH_MAX + 32];
    std::jmp_buf jump;
};

[[noreturn]] void jpeg_error_callback(j_common_ptr cinfo) {
    auto* s = reinterpret_cast<JpegState*>(cinfo->err);
    (*cinfo->err->format_message)(cinfo, s->message);
    std::longjmp(s->jump, 1);
}

void jpeg_message_callback(j_common_ptr cinfo, int level) {
    // The memory source reports the end of the data as a warning and goes on with a fake end-of-image marker (grey
    // rows); PIL calls such a file truncated and refuses it, and so does this. Other warnings (corrupt data the
    // decoder recovered from) pass as they do in PIL.
    if (level == -1 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
        auto* s = reinterpret_cast<JpegState*>(cinfo->err);
        s->truncated = true;
        std::longjmp(s->jump, 1);
    }
}

struct JpegLayout {
    JDIMENSION width;
    JDIMENSION height;
    int components;
    bool cmyk;
};

bool jpeg_begin(JpegState& s, jpeg_decompress_struct& cinfo, const uint8_t* data, size_t size, JpegLayout& layout) {
    if (setjmp(s.jump)) return false;
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
    jpeg_read_header(&cinfo, TRUE);
    layout.cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    if (layout.cmyk) return true;
    // libjpeg's defaults otherwise (JDCT_ISLOW, fancy upsampling): what PIL uses when not in draft mode.
    cinfo.out_color_space = JCS_RGB;
    layout.width = cinfo.image_width;
    layout.height = cinfo.image_height;
    return true;
}

bool jpeg_start(JpegState& s, jpeg_decompress_struct& cinfo, JpegLayout& layout) {
    if (setjmp(s.jump)) return false;
    jpeg_start_decompress(&cinfo);
    layout.width = cinfo.output_width;
    layout.height = cinfo.output_height;
    layout.components = cinfo.output_components;
    return true;
}

bool jpeg_rows(JpegState& s, jpeg_decompress_struct& cinfo, uint8_t* pixels, size_t stride) {
    if (setjmp(s.jump)) return false;
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = pixels + size_t{cinfo.output_scanline} * stride;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    return true;
}

class JpegRead {
public:
    JpegRead(JpegState& s) { m_cinfo.err = jpeg_std_error(&s.manager); }
    // Safe whether or not jpeg_create_decompress ran: a zeroed struct has no memory manager to free.
    ~JpegRead() { jpeg_destroy_decompress(&m_cinfo); }
    JpegRead(const JpegRead&) = delete;
    JpegRead& operator=(const JpegRead&) = delete;
    jpeg_decompress_struct& cinfo() { return m_cinfo; }

private:
    jpeg_decompress_struct m_cinfo{};
};

[[noreturn]] void jpeg_fail(const std::string& name, const JpegState& s) {
    if (s.truncated) VKT_FAIL(name, ": truncated JPEG file (the data ends before the image does)");
    VKT_FAIL(name, ": corrupt JPEG file: ", s.message);
}

Image decode_jpeg(const uint8_t* data, size_t size, const std::string& name) {
    JpegState s{};
    JpegRead read(s);
    s.manager.error_exit = jpeg_error_callback;
    s.manager.emit_message = jpeg_message_callback;
    JpegLayout layout{};
    if (!jpeg_begin(s, read.cinfo(), data, size, layout)) jpeg_fail(name, s);
    VKT_CHECK(!layout.cmyk, name, ": CMYK JPEG files are not supported (convert them to RGB)");
    check_size(name, layout.width, layout.height);
    if (!jpeg_start(s, read.cinfo(), layout)) jpeg_fail(name, s);
    VKT_CHECK(layout.components == 3, name, ": JPEG decodes to ", layout.components, " components, expected RGB");
    Image image;
    image.width = layout.width;
    image.height = layout.height;
    image.rgb.resize(size_t{layout.width} * layout.height * 3);
    if (!jpeg_rows(s, read.cinfo(), image.rgb.data(), size_t{layout.width} * 3)) jpeg_fail(name, s);
    return image;
}

#endif // VKTRAIN_HAVE_IMAGES

} // namespace

bool image_support() {
    return VKTRAIN_HAVE_IMAGES != 0;
}

uint64_t max_image_pixels() {
    return pixel_limit;
}

Image decode_image(const uint8_t* data, size_t size, const std::string& name) {
    VKT_CHECK(size > 0, name, ": empty file");
    static constexpr uint8_t png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    const bool png = size >= 8 && std::memcmp(data, png_signature, 8) == 0;
    const bool jpeg = size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff;
    if (!png && !jpeg) {
        const std::string ext = lower_extension(name);
        if (ext == ".png") VKT_FAIL(name, ": not a PNG file");
        if (ext == ".jpg" || ext == ".jpeg") VKT_FAIL(name, ": not a JPEG file");
        if (!ext.empty() && ext != ".") {
            VKT_FAIL(name, ": unsupported image format \"", ext.substr(1), "\" (only PNG and JPEG are decoded)");
        }
        VKT_FAIL(name, ": not a PNG or JPEG file");
    }
#if VKTRAIN_HAVE_IMAGES
    return png ? decode_png(data, size, name) : decode_jpeg(data, size, name);
#else
    VKT_FAIL(name, ": this vktrain was built without image support (VKTRAIN_IMAGES=OFF or no libpng/libjpeg)");
#endif
}

Image decode_image(const std::string& path) {
    const std::vector<uint8_t> data = read_whole_file(path);
    return decode_image(data.data(), data.size(), path);
}

} // namespace vktrain
