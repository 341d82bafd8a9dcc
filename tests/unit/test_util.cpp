// util: check macros, JSON output, log levels.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "unlearn/util/error.h"
#include "unlearn/util/log.h"

namespace unlearn {
namespace {

TEST(CheckMacro, MessageCarriesConditionLocationAndRank) {
  set_process_identity(3, "node17");
  try {
    const int n = 0;
    UNLEARN_CHECK(n > 0, "n = " << n);
    FAIL() << "no throw";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("n = 0"), std::string::npos) << what;
    EXPECT_NE(what.find("'n > 0'"), std::string::npos) << what;
    EXPECT_NE(what.find("test_util.cpp:"), std::string::npos) << what;
    EXPECT_NE(what.find("[r3/node17]"), std::string::npos) << what;
  }
  set_process_identity(-1, "host");
}

TEST(CheckMacro, ThrowMacroKeepsTheType) {
  EXPECT_THROW(UNLEARN_THROW(ConfigError, "bad " << 1), ConfigError);
  EXPECT_THROW(UNLEARN_THROW(IoError, "bad"), Error);
  EXPECT_NO_THROW(UNLEARN_CHECK(true, "never"));
}

TEST(Json, EscapesAndOrders) {
  JsonObject o;
  o.add("s", "a\"b\\c\n\x01").add("i", 42).add("d", 0.5).add("b", true).add("nan", 0.0 / 0.0).add_raw("o", "{}");
  EXPECT_EQ(o.str(), R"({"s": "a\"b\\c\n\u0001", "i": 42, "d": 0.5, "b": true, "nan": null, "o": {}})");
}

TEST(Log, LevelsParseAndRejectUnknown) {
  EXPECT_EQ(parse_log_level("debug"), LogLevel::kDebug);
  EXPECT_EQ(parse_log_level("quiet"), LogLevel::kQuiet);
  EXPECT_THROW(parse_log_level("loud"), ConfigError);
}

TEST(Metrics, WritesOneObjectPerLineWithTime) {
  const std::string path = ::testing::TempDir() + "/metrics_test.jsonl";
  std::remove(path.c_str());
  {
    MetricsWriter w(path);
    ASSERT_TRUE(w.enabled());
    w.write(JsonObject().add("event", "a"));
    w.write(JsonObject());
  }
  std::ifstream in(path);
  std::string l1, l2, l3;
  std::getline(in, l1);
  std::getline(in, l2);
  EXPECT_FALSE(std::getline(in, l3));
  EXPECT_EQ(l1.rfind("{\"time\": ", 0), 0u) << l1;
  EXPECT_NE(l1.find(", \"event\": \"a\"}"), std::string::npos) << l1;
  EXPECT_EQ(l2.rfind("{\"time\": ", 0), 0u) << l2;
  EXPECT_EQ(l2.back(), '}');
  EXPECT_EQ(l2.find(','), std::string::npos) << l2;
}

TEST(Metrics, UnwritablePathIsAnIoError) {
  EXPECT_THROW(MetricsWriter("/nonexistent-dir/x.jsonl"), IoError);
  EXPECT_FALSE(MetricsWriter("").enabled());
}

}  // namespace
}  // namespace unlearn
