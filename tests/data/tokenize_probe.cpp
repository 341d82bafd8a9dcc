// Command-line probe of the tokenizers for tests/data/gpt2_vs_npm.sh:
//   tokenize_probe encode DIR IN OUT    ids of IN's bytes under DIR/{encoder.json,vocab.bpe}, one per line
//   tokenize_probe decode DIR IDS OUT   bytes of the ids in IDS
//   tokenize_probe classes OUT          one of L N S O per code point (surrogates skipped), as classify() sees it
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include "unlearn/data/tokenizer.h"
#include "unlearn/parse/tokenizer_files.h"
#include "unlearn/parse/unicode.h"

int main(int argc, char** argv) {
  using namespace unlearn;
  try {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "classes" && argc == 3) {
      std::string out;
      for (char32_t cp = 0; cp <= 0x10FFFF; ++cp) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        const CharClass c = classify(cp);
        out.push_back(c == CharClass::kLetter ? 'L' : c == CharClass::kNumber ? 'N' : c == CharClass::kSpace ? 'S' : 'O');
      }
      std::ofstream(argv[2], std::ios::binary) << out;
      return 0;
    }
    if ((mode == "encode" || mode == "decode") && argc == 5) {
      const auto tok = Gpt2Tokenizer::from_directory(argv[2]);
      std::ofstream out(argv[4], std::ios::binary);
      if (mode == "encode") {
        for (TokenId id : tok->encode(read_file_bytes(argv[3]))) out << id << '\n';
      } else {
        std::ifstream in(argv[3]);
        std::vector<TokenId> ids;
        for (TokenId id; in >> id;) ids.push_back(id);
        out << tok->decode(ids);
      }
      return out ? 0 : 1;
    }
    std::cerr << "usage: tokenize_probe encode|decode DIR IN OUT | classes OUT\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "tokenize_probe: " << e.what() << '\n';
    return 1;
  }
}
