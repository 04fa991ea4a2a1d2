// Checking vktrain's one-line errors in tests (host and device): the message a call throws as vktrain::Error, and
// EXPECT_CONTAINS to look for a part of it.
#pragma once

#include <functional>
#include <string>

#include <gtest/gtest.h>

#include "vktrain/error.hpp"

namespace vkt_test {

// What f throws as vktrain::Error; "(no error)" when it returns (any other exception propagates and fails the test).
inline std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const vktrain::Error& e) {
        return e.what();
    }
    return "(no error)";
}

} // namespace vkt_test

#define EXPECT_CONTAINS(haystack, needle)                                                                              \
    EXPECT_NE(std::string(haystack).find(needle), std::string::npos)                                                   \
        << "\"" << (haystack) << "\" lacks \"" << (needle) << "\""
