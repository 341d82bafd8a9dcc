// parse: sizes and integer lists from the command line.
#include <gtest/gtest.h>

#include "unlearn/parse/units.h"
#include "unlearn/util/error.h"

namespace unlearn {
namespace {

TEST(ByteSize, AcceptsPlainAndSuffixedSizes) {
  EXPECT_EQ(parse_byte_size("4096", "x"), 4096u);
  EXPECT_EQ(parse_byte_size("4K", "x"), 4096u);
  EXPECT_EQ(parse_byte_size("64KiB", "x"), 65536u);
  EXPECT_EQ(parse_byte_size("256M", "x"), 256u << 20);
  EXPECT_EQ(parse_byte_size("1g", "x"), 1u << 30);
  EXPECT_EQ(parse_byte_size("12B", "x"), 12u);
  EXPECT_EQ(parse_byte_size("2TB", "x"), std::uint64_t{2} << 40);
}

TEST(ByteSize, RejectsGarbageAndOverflow) {
  for (const char* bad : {"", "K", "-1", "4X", "4KK", "4 K", "12Bx", "99999999999999999999", "16777216T"}) {
    EXPECT_THROW(parse_byte_size(bad, "--max-bytes"), ConfigError) << bad;
  }
  try {
    parse_byte_size("4X", "--max-bytes");
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--max-bytes"), std::string::npos);
  }
}

TEST(ByteSize, FormatsHumanSizes) {
  EXPECT_EQ(format_bytes(4096), "4 KiB");
  EXPECT_EQ(format_bytes(256u << 20), "256 MiB");
  EXPECT_EQ(format_bytes(1536), "1.5 KiB");
  EXPECT_EQ(format_bytes(7), "7 B");
}

TEST(IntList, ParsesAndRejects) {
  EXPECT_EQ(parse_int_list("1,2,4", "x"), (std::vector<int>{1, 2, 4}));
  EXPECT_EQ(parse_int_list("3", "x"), (std::vector<int>{3}));
  for (const char* bad : {"", ",", "1,", "1,,2", "0", "a", "1,-2", "1234567890"}) {
    EXPECT_THROW(parse_int_list(bad, "--tp-list"), ConfigError) << bad;
  }
}

}  // namespace
}  // namespace unlearn
