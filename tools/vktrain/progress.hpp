// The training progress display on stderr. On a terminal one line is redrawn in place with '\r' at most ten times a
// second; otherwise (a log file, a CI pipe) a plain line is printed at every quarter of the epoch, so logs stay
// short and readable.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace vktrain::cli {

class ProgressBar {
public:
    // enabled = false (--quiet) makes every call a no-op.
    ProgressBar(bool enabled, uint32_t epoch, uint32_t epochs, uint64_t total);
    // Clears a half-drawn line too when an exception unwinds, so the error message starts at column 0.
    ~ProgressBar() { finish(); }
    ProgressBar(const ProgressBar&) = delete;
    ProgressBar& operator=(const ProgressBar&) = delete;

    // done: samples processed so far this epoch; mean_loss: running mean training loss.
    void update(uint64_t done, double mean_loss, double loss_scale, uint64_t skipped);
    // Clears the redrawn line so the epoch summary on stdout starts on a clean line.
    void finish();

private:
    std::string render(uint64_t done, double mean_loss, double loss_scale, uint64_t skipped, bool with_bar) const;

    using Clock = std::chrono::steady_clock;
    bool m_enabled;
    bool m_terminal;
    uint32_t m_epoch, m_epochs;
    uint64_t m_total;
    Clock::time_point m_start;
    Clock::time_point m_last_draw;
    bool m_drawn = false;
    uint32_t m_next_quarter = 1; // non-terminal: the next quarter (1..4) to report
};

} // namespace vktrain::cli
