#include "progress.hpp"

#include <cstdio>

#include "util.hpp"

namespace vktrain::cli {

namespace {

constexpr int bar_width = 24;
constexpr auto redraw_interval = std::chrono::milliseconds(100);

} // namespace

ProgressBar::ProgressBar(bool enabled, uint32_t epoch, uint32_t epochs, uint64_t total)
    : m_enabled(enabled), m_terminal(enabled && stderr_is_terminal()), m_epoch(epoch), m_epochs(epochs), m_total(total),
      m_start(Clock::now()), m_last_draw(m_start) {}

std::string ProgressBar::render(uint64_t done, double mean_loss, double loss_scale, uint64_t skipped,
                                bool with_bar) const {
    const double fraction = m_total ? double(done) / double(m_total) : 1.0;
    const double seconds = std::chrono::duration<double>(Clock::now() - m_start).count();
    const double rate = seconds > 0 ? double(done) / seconds : 0.0;
    std::string s = "epoch " + std::to_string(m_epoch) + "/" + std::to_string(m_epochs) + " ";
    if (with_bar) {
        const int filled = int(fraction * bar_width);
        s += "[" + std::string(size_t(filled), '#') + std::string(size_t(bar_width - filled), '.') + "] ";
    } else {
        s += fixed(fraction * 100.0, 0) + "% ";
    }
    s += std::to_string(done) + "/" + std::to_string(m_total);
    s += "  loss " + fixed(mean_loss, 4) + "  scale " + number(loss_scale) + "  skipped " + std::to_string(skipped);
    s += "  " + fixed(rate, 0) + " samples/s";
    return s;
}

void ProgressBar::update(uint64_t done, double mean_loss, double loss_scale, uint64_t skipped) {
    if (!m_enabled) return;
    if (m_terminal) {
        const Clock::time_point now = Clock::now();
        // Always draw the final state so the bar ends full, otherwise rate-limit the redraws.
        if (done < m_total && m_drawn && now - m_last_draw < redraw_interval) return;
        m_last_draw = now;
        m_drawn = true;
        // \033[K erases what a longer previous line left behind.
        std::fprintf(stderr, "\r%s\033[K", render(done, mean_loss, loss_scale, skipped, true).c_str());
        std::fflush(stderr);
        return;
    }
    // Several quarters may pass in one batch when an epoch has fewer than four batches: report once.
    if (m_next_quarter > 4 || done * 4 < m_total * m_next_quarter) return;
    while (m_next_quarter <= 4 && done * 4 >= m_total * m_next_quarter) ++m_next_quarter;
    std::fprintf(stderr, "%s\n", render(done, mean_loss, loss_scale, skipped, false).c_str());
    std::fflush(stderr);
}

void ProgressBar::finish() {
    if (!m_terminal || !m_drawn) return;
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
    m_drawn = false;
}

} // namespace vktrain::cli
