// Test probe for the scipy oracle (skewnorm_scipy.py): reads a sample on the first line of stdin and scores on the
// second; prints the fit and the extrapolated exposure of each score as JSON.
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "unlearn/eval/skew_normal.h"

namespace {
std::vector<double> numbers(const std::string& line) {
  std::istringstream in(line);
  std::vector<double> v;
  for (double x; in >> x;) v.push_back(x);
  return v;
}
}  // namespace

int main() {
  std::string sample, scores;
  std::getline(std::cin, sample);
  std::getline(std::cin, scores);
  const unlearn::SkewNormalFit f = unlearn::fit_skew_normal(numbers(sample));
  std::cout.precision(17);
  std::cout << "{\"location\": " << f.location << ", \"scale\": " << f.scale << ", \"shape\": " << f.shape
            << ", \"log_likelihood\": " << f.log_likelihood << ", \"evaluations\": " << f.evaluations
            << ", \"exposure\": [";
  const std::vector<double> px = numbers(scores);
  for (std::size_t i = 0; i < px.size(); ++i) std::cout << (i ? ", " : "") << unlearn::extrapolated_exposure(f, px[i]);
  std::cout << "]}\n";
}
